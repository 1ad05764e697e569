//! A property's working hours and holidays: when working-hours clocks run and when
//! routine reminders may be sent (nobody is woken at 3 a.m. for a dripping tap).
//!
//! Times are the property's local wall time at a fixed offset from UTC (China has no
//! daylight saving). A window whose closing time is not after its opening time runs past
//! midnight (a night shift); equal times mean the whole day.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingHours {
    /// Local time minus UTC, in minutes (China: 480).
    pub utc_offset_minutes: i32,
    /// Working days, 1 = Monday ... 7 = Sunday.
    pub days: Vec<u8>,
    /// Local opening time of each working day, e.g. "08:30:00".
    pub opens: NaiveTime,
    /// Local closing time, e.g. "17:30:00".
    pub closes: NaiveTime,
    /// Local dates with no working hours (public holidays).
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
}

impl Default for WorkingHours {
    /// Monday to Saturday, 08:30 to 17:30 China time: a service-centre desk's usual hours.
    fn default() -> Self {
        WorkingHours {
            utc_offset_minutes: 8 * 60,
            days: vec![1, 2, 3, 4, 5, 6],
            opens: NaiveTime::from_hms_opt(8, 30, 0).unwrap_or_default(),
            closes: NaiveTime::from_hms_opt(17, 30, 0).unwrap_or_default(),
            holidays: Vec::new(),
        }
    }
}

/// How far ahead the calendar looks for an opening: a year and a bit covers any sane
/// holiday list; a calendar with nothing open in that span is refused by `validate`.
const HORIZON_DAYS: i64 = 400;

impl WorkingHours {
    /// Round the clock, every day.
    pub fn always() -> WorkingHours {
        WorkingHours {
            utc_offset_minutes: 0,
            days: vec![1, 2, 3, 4, 5, 6, 7],
            opens: NaiveTime::MIN,
            closes: NaiveTime::MIN,
            holidays: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.days.is_empty() || self.days.iter().any(|d| !(1..=7).contains(d)) {
            return Err("days must list weekdays 1 (Monday) to 7 (Sunday)".to_owned());
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return Err("utc_offset_minutes must be within ±14 hours".to_owned());
        }
        Ok(())
    }

    fn offset(&self) -> TimeDelta {
        TimeDelta::minutes(i64::from(self.utc_offset_minutes))
    }

    /// The working window (UTC, start inclusive, end exclusive) opening on a local day, if
    /// that day is worked.
    fn window_of(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let weekday = day.weekday().number_from_monday() as u8;
        if !self.days.contains(&weekday) || self.holidays.contains(&day) {
            return None;
        }
        let length = if self.closes > self.opens {
            self.closes - self.opens
        } else {
            TimeDelta::days(1) - (self.opens - self.closes)
        };
        let start = day.and_time(self.opens).and_utc() - self.offset();
        Some((start, start + length))
    }

    /// The property's calendar day at `at`.
    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        (at + self.offset()).date_naive()
    }

    /// The working windows that end after `at`, earliest first.
    fn windows_after(&self, at: DateTime<Utc>) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        // A night window of yesterday may still be open.
        let first_day = self.local_date(at) - TimeDelta::days(1);
        (0..HORIZON_DAYS)
            .filter_map(move |n| self.window_of(first_day + TimeDelta::days(n)))
            .filter(move |(_, end)| *end > at)
    }

    /// The working windows that start before `at`, latest first.
    fn windows_before(&self, at: DateTime<Utc>) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let last_day = self.local_date(at);
        (0..HORIZON_DAYS)
            .filter_map(move |n| self.window_of(last_day - TimeDelta::days(n)))
            .filter(move |(start, _)| *start < at)
    }

    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.windows_after(at).next().is_some_and(|(start, _)| start <= at)
    }

    /// `at` itself when the centre is open then, else the next opening.
    pub fn next_opening(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.windows_after(at).next().map_or(at, |(start, _)| start.max(at))
    }

    /// The instant when `work` of working time has passed since `start`.
    pub fn add_working(&self, start: DateTime<Utc>, work: TimeDelta) -> DateTime<Utc> {
        let mut remaining = work.max(TimeDelta::zero());
        let mut last = start;
        for (open, close) in self.windows_after(start) {
            let from = open.max(start);
            let available = close - from;
            if remaining <= available {
                return from + remaining;
            }
            remaining -= available;
            last = close;
        }
        // Unreachable for a validated calendar; never earlier than the work done.
        last + remaining
    }

    /// The instant `work` of working time before `end`.
    pub fn sub_working(&self, end: DateTime<Utc>, work: TimeDelta) -> DateTime<Utc> {
        let mut remaining = work.max(TimeDelta::zero());
        let mut last = end;
        for (open, close) in self.windows_before(end) {
            let to = close.min(end);
            let available = to - open;
            if remaining <= available {
                return to - remaining;
            }
            remaining -= available;
            last = open;
        }
        last - remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A UTC instant from China local time on 2026-11-23 (a Monday) plus `days`.
    fn local(days: i64, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap() + TimeDelta::days(days) - TimeDelta::hours(8)
    }

    #[test]
    fn default_hours_are_monday_to_saturday_half_past_eight_to_half_past_five() {
        let hours = WorkingHours::default();
        assert!(hours.is_open(local(0, 9, 0)));
        assert!(!hours.is_open(local(0, 8, 29)));
        assert!(!hours.is_open(local(0, 17, 30)));
        assert!(!hours.is_open(local(6, 10, 0)), "Sunday");
        assert_eq!(hours.next_opening(local(0, 22, 0)), local(1, 8, 30));
        assert_eq!(hours.next_opening(local(5, 18, 0)), local(7, 8, 30), "Saturday evening -> Monday");
        assert_eq!(hours.next_opening(local(0, 10, 0)), local(0, 10, 0));
    }

    #[test]
    fn working_time_skips_nights_weekends_and_holidays() {
        let mut hours = WorkingHours::default();
        // Two working hours from 16:30 Monday: one today, one from 08:30 Tuesday.
        assert_eq!(hours.add_working(local(0, 16, 30), TimeDelta::seconds(2 * 3600)), local(1, 9, 30));
        // Logged on Saturday night: counting starts Monday morning.
        assert_eq!(hours.add_working(local(5, 23, 0), TimeDelta::seconds(3600)), local(7, 9, 30));
        hours.holidays.push((local(1, 12, 0) + TimeDelta::hours(8)).date_naive());
        assert_eq!(
            hours.add_working(local(0, 16, 30), TimeDelta::seconds(2 * 3600)),
            local(2, 9, 30),
            "Tuesday is a holiday"
        );
        assert_eq!(hours.sub_working(local(2, 9, 30), TimeDelta::seconds(2 * 3600)), local(0, 16, 30), "and back");
        assert_eq!(hours.sub_working(local(0, 10, 0), TimeDelta::seconds(1800)), local(0, 9, 30));
    }

    #[test]
    fn a_night_window_runs_past_midnight_and_equal_times_mean_all_day() {
        let night = WorkingHours {
            opens: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            closes: NaiveTime::from_hms_opt(6, 0, 0).unwrap(),
            days: vec![1, 2, 3, 4, 5, 6, 7],
            ..WorkingHours::default()
        };
        assert!(night.is_open(local(1, 2, 0)));
        assert!(!night.is_open(local(1, 12, 0)));
        assert_eq!(night.add_working(local(1, 5, 0), TimeDelta::seconds(2 * 3600)), local(1, 23, 0));
        let always = WorkingHours::always();
        assert!(always.is_open(local(3, 3, 0)));
        assert_eq!(always.add_working(local(0, 23, 0), TimeDelta::seconds(7200)), local(1, 1, 0));
    }

    #[test]
    fn zero_working_time_before_an_opening_is_the_last_close() {
        let hours = WorkingHours::default();
        // Tuesday 08:30 (opening) back to Monday 17:30 (the close): the same working instant.
        assert_eq!(hours.sub_working(local(1, 8, 30), TimeDelta::zero()), local(0, 17, 30));
        assert_eq!(hours.add_working(local(0, 17, 30), TimeDelta::zero()), local(1, 8, 30));
    }

    #[test]
    fn a_calendar_with_no_working_time_never_moves_a_clock_backwards() {
        // Refused by validation, yet the arithmetic stays on the safe side: the plain time.
        let never = WorkingHours { days: vec![], ..WorkingHours::default() };
        let start = local(0, 10, 0);
        assert_eq!(never.add_working(start, TimeDelta::hours(2)), start + TimeDelta::hours(2));
        assert_eq!(never.sub_working(start, TimeDelta::hours(2)), start - TimeDelta::hours(2));
    }

    #[test]
    fn a_calendar_without_working_days_is_refused() {
        let none = WorkingHours { days: vec![], ..WorkingHours::default() };
        assert!(none.validate().is_err());
        assert!(WorkingHours::default().validate().is_ok());
        let sunday_and_eighth = WorkingHours { days: vec![7, 8], ..WorkingHours::default() };
        assert!(sunday_and_eighth.validate().is_err(), "8 is no weekday");
        // UTC offsets run from -14 h to +14 h.
        for (minutes, valid) in [(-841, false), (-840, true), (0, true), (480, true), (840, true), (841, false)] {
            let hours = WorkingHours { utc_offset_minutes: minutes, ..WorkingHours::default() };
            assert_eq!(hours.validate().is_ok(), valid, "offset {minutes} min");
        }
    }
}
