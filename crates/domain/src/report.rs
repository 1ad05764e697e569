//! Rules of the monthly service review (volumes, weak spots, response times per person,
//! overdue work, callback coverage of at least 90 % of dispatched work): which periods may be
//! asked for, and how a percentile and a share are defined, so every figure is exact and
//! the same wherever it is computed.

use chrono::{DateTime, TimeDelta, Utc};

/// A report period: `[start, end)`, at most a year (a leap year's 366 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportPeriod {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("period_end must be after period_start")]
    Inverted,
    #[error("the period may not be longer than 366 days")]
    TooLong,
}

pub const MAX_PERIOD_DAYS: i64 = 366;

impl ReportPeriod {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<ReportPeriod, PeriodError> {
        if end <= start {
            return Err(PeriodError::Inverted);
        }
        if end - start > TimeDelta::days(MAX_PERIOD_DAYS) {
            return Err(PeriodError::TooLong);
        }
        Ok(ReportPeriod { start, end })
    }

    /// The period of the same length just before this one (for "change against the
    /// previous period").
    pub fn previous(self) -> ReportPeriod {
        ReportPeriod { start: self.start - (self.end - self.start), end: self.start }
    }
}

/// The 0-based index of the `percent`th percentile among `n` sorted values, by the
/// nearest-rank definition (the smallest value with at least `percent` % of the values at
/// or below it): the median of 4 values is the 2nd, their p90 the 4th. `None` when empty.
pub fn nearest_rank(n: u64, percent: u32) -> Option<u64> {
    if n == 0 {
        return None;
    }
    let rank = (n * u64::from(percent.min(100))).div_ceil(100).max(1);
    Some(rank - 1)
}

/// `part / whole`, and 0 for an empty whole (no tickets: nothing was missed).
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap()
    }

    #[test]
    fn periods_must_run_forward_and_last_at_most_a_year() {
        assert_eq!(ReportPeriod::new(day(2), day(1)), Err(PeriodError::Inverted));
        assert_eq!(ReportPeriod::new(day(1), day(1)), Err(PeriodError::Inverted), "empty");
        let year = ReportPeriod::new(day(1) - TimeDelta::days(366), day(1));
        assert!(year.is_ok());
        assert_eq!(ReportPeriod::new(day(1) - TimeDelta::days(367), day(1)), Err(PeriodError::TooLong));
        let november = ReportPeriod::new(day(1), day(1) + TimeDelta::days(30)).unwrap();
        assert_eq!(november.previous(), ReportPeriod { start: day(1) - TimeDelta::days(30), end: day(1) });
    }

    #[test]
    fn nearest_rank_percentiles() {
        // (n, percent, 0-based index)
        let cases =
            [(1, 50, 0), (4, 50, 1), (5, 50, 2), (4, 90, 3), (10, 90, 8), (100, 90, 89), (3, 0, 0), (7, 100, 6)];
        for (n, percent, index) in cases {
            assert_eq!(nearest_rank(n, percent), Some(index), "n={n} p{percent}");
        }
        assert_eq!(nearest_rank(0, 50), None);
    }

    #[test]
    fn shares_of_nothing_are_zero() {
        assert_eq!(share(0, 0), 0.0);
        assert_eq!(share(9, 10), 0.9);
    }
}
