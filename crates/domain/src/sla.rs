//! Service levels and the one function that computes a ticket's deadlines.
//!
//! Defaults from the centre's procedures: P1 on site in 15 minutes, P3 acknowledged within 2
//! hours, callback within 48 hours of resolution; the complaint first reply in 24 hours and
//! the P2 and P4 levels are propdesk's own defaults. Everything is configurable per deployment so tests can shrink minutes to
//! seconds.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkingHours;
use crate::ticket::{Priority, TicketKind};

/// Allowances of one priority level, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLevel {
    pub acknowledge_secs: i64,
    /// `None`: no on-site clock (e.g. P4 suggestions).
    pub on_site_secs: Option<i64>,
    pub resolve_secs: i64,
    /// Counted in the property's working hours (and reminders held until they begin)
    /// rather than round the clock.
    #[serde(default)]
    pub working_hours_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaPolicy {
    pub p1: ServiceLevel,
    pub p2: ServiceLevel,
    pub p3: ServiceLevel,
    pub p4: ServiceLevel,
    pub callback_secs: i64,
    pub complaint_first_reply_secs: i64,
}

const MINUTE: i64 = 60;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

impl Default for SlaPolicy {
    fn default() -> Self {
        SlaPolicy {
            p1: ServiceLevel {
                acknowledge_secs: 5 * MINUTE,
                on_site_secs: Some(15 * MINUTE),
                resolve_secs: 4 * HOUR,
                working_hours_only: false,
            },
            p2: ServiceLevel {
                acknowledge_secs: 15 * MINUTE,
                on_site_secs: Some(HOUR),
                resolve_secs: 8 * HOUR,
                working_hours_only: false,
            },
            p3: ServiceLevel {
                acknowledge_secs: 2 * HOUR,
                on_site_secs: Some(24 * HOUR),
                resolve_secs: 72 * HOUR,
                working_hours_only: true,
            },
            p4: ServiceLevel {
                acknowledge_secs: DAY,
                on_site_secs: None,
                resolve_secs: 7 * DAY,
                working_hours_only: true,
            },
            callback_secs: 48 * HOUR,
            complaint_first_reply_secs: DAY,
        }
    }
}

/// A ticket's milestone deadlines; `None` where the clock does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadlines {
    pub acknowledge_by: Option<DateTime<Utc>>,
    pub on_site_by: Option<DateTime<Utc>>,
    pub resolve_by: Option<DateTime<Utc>>,
    pub first_reply_by: Option<DateTime<Utc>>,
    pub callback_by: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sla.{field} must be a positive number of seconds")]
pub struct InvalidPolicy {
    pub field: String,
}

impl SlaPolicy {
    pub fn level(&self, priority: Priority) -> &ServiceLevel {
        match priority {
            Priority::P1 => &self.p1,
            Priority::P2 => &self.p2,
            Priority::P3 => &self.p3,
            Priority::P4 => &self.p4,
        }
    }

    /// Rejects zero or negative allowances, naming the setting.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        let mut checks = vec![
            ("callback_secs".to_owned(), Some(self.callback_secs)),
            ("complaint_first_reply_secs".to_owned(), Some(self.complaint_first_reply_secs)),
        ];
        for priority in Priority::ALL {
            let level = self.level(*priority);
            checks.push((format!("{priority}.acknowledge_secs"), Some(level.acknowledge_secs)));
            checks.push((format!("{priority}.on_site_secs"), level.on_site_secs));
            checks.push((format!("{priority}.resolve_secs"), Some(level.resolve_secs)));
        }
        match checks.into_iter().find(|(_, secs)| secs.is_some_and(|s| s <= 0)) {
            Some((field, _)) => Err(InvalidPolicy { field }),
            None => Ok(()),
        }
    }

    /// The deadlines of a ticket whose clocks start at `start` (when it was logged),
    /// counted in `hours` for working-hours levels. The callback clock starts at
    /// resolution: see [`SlaPolicy::callback_by`].
    pub fn deadlines(
        &self,
        priority: Priority,
        kind: TicketKind,
        start: DateTime<Utc>,
        hours: &WorkingHours,
    ) -> Deadlines {
        let level = self.level(priority);
        let after = |secs: i64| {
            let allowance = TimeDelta::seconds(secs);
            if level.working_hours_only { hours.add_working(start, allowance) } else { start + allowance }
        };
        Deadlines {
            acknowledge_by: Some(after(level.acknowledge_secs)),
            on_site_by: level.on_site_secs.map(after),
            resolve_by: Some(after(level.resolve_secs)),
            first_reply_by: (kind == TicketKind::Complaint).then(|| after(self.complaint_first_reply_secs)),
            callback_by: None,
        }
    }

    /// When the resident must be called back after a resolution at `resolved_at`.
    pub fn callback_by(&self, resolved_at: DateTime<Utc>) -> DateTime<Utc> {
        resolved_at + TimeDelta::seconds(self.callback_secs)
    }
}

impl Deadlines {
    /// The deadlines after a hold of `paused`: every running clock moves by the pause.
    pub fn shifted_by(self, paused: TimeDelta) -> Deadlines {
        let shift = |at: Option<DateTime<Utc>>| at.map(|at| at + paused);
        Deadlines {
            acknowledge_by: shift(self.acknowledge_by),
            on_site_by: shift(self.on_site_by),
            resolve_by: shift(self.resolve_by),
            first_reply_by: shift(self.first_reply_by),
            callback_by: shift(self.callback_by),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
    }

    #[test]
    fn default_deadlines_by_priority() {
        let policy = SlaPolicy::default();
        // (priority, acknowledge, on site, resolve) from a ticket logged at 10:00.
        let cases = [
            (Priority::P1, at(10, 5), Some(at(10, 15)), at(14, 0)),
            (Priority::P2, at(10, 15), Some(at(11, 0)), at(18, 0)),
            (Priority::P3, at(12, 0), Some(at(10, 0) + TimeDelta::hours(24)), at(10, 0) + TimeDelta::hours(72)),
            (Priority::P4, at(10, 0) + TimeDelta::hours(24), None, at(10, 0) + TimeDelta::days(7)),
        ];
        for (priority, acknowledge, on_site, resolve) in cases {
            let d = policy.deadlines(priority, TicketKind::Repair, at(10, 0), &WorkingHours::always());
            assert_eq!(d.acknowledge_by, Some(acknowledge), "{priority} acknowledge");
            assert_eq!(d.on_site_by, on_site, "{priority} on site");
            assert_eq!(d.resolve_by, Some(resolve), "{priority} resolve");
            assert_eq!(d.first_reply_by, None);
            assert_eq!(d.callback_by, None);
        }
    }

    #[test]
    fn p1_burst_pipe_must_be_on_site_within_15_minutes() {
        let d = SlaPolicy::default().deadlines(Priority::P1, TicketKind::Repair, at(3, 0), &WorkingHours::default());
        assert_eq!(d.on_site_by, Some(at(3, 15)));
    }

    #[test]
    fn complaints_get_a_first_reply_clock_of_24_hours() {
        let d = SlaPolicy::default().deadlines(Priority::P3, TicketKind::Complaint, at(10, 0), &WorkingHours::always());
        assert_eq!(d.first_reply_by, Some(at(10, 0) + TimeDelta::hours(24)));
    }

    #[test]
    fn callback_is_due_48_hours_after_resolution() {
        assert_eq!(SlaPolicy::default().callback_by(at(9, 30)), at(9, 30) + TimeDelta::hours(48));
    }

    #[test]
    fn a_hold_moves_every_clock_by_the_time_paused() {
        let d = SlaPolicy::default().deadlines(Priority::P1, TicketKind::Complaint, at(10, 0), &WorkingHours::always());
        let shifted = d.shifted_by(TimeDelta::minutes(30));
        assert_eq!(shifted.on_site_by, Some(at(10, 45)));
        assert_eq!(shifted.acknowledge_by, Some(at(10, 35)));
        assert_eq!(shifted.first_reply_by, Some(at(10, 30) + TimeDelta::hours(24)));
        assert_eq!(shifted.callback_by, None);
    }

    #[test]
    fn a_p3_logged_after_hours_is_counted_from_the_next_opening_but_a_p1_is_not() {
        let policy = SlaPolicy::default();
        // 22:00 China time on Monday; the desk opens 08:30 Tuesday.
        let late = at(14, 0);
        let hours = WorkingHours::default();
        let p3 = policy.deadlines(Priority::P3, TicketKind::Repair, late, &hours);
        assert_eq!(p3.acknowledge_by, Some(at(0, 30) + TimeDelta::days(1) + TimeDelta::hours(2)));
        let p1 = policy.deadlines(Priority::P1, TicketKind::Repair, late, &hours);
        assert_eq!(p1.on_site_by, Some(at(14, 15)));
    }

    #[test]
    fn a_zero_allowance_is_rejected_with_its_name() {
        let mut policy = SlaPolicy::default();
        policy.p2.on_site_secs = Some(0);
        assert_eq!(
            policy.validate().unwrap_err().to_string(),
            "sla.p2.on_site_secs must be a positive number of seconds"
        );
        assert!(SlaPolicy::default().validate().is_ok());
    }
}
