//! Group incidents and repeat faults: when many units report the same thing at once it is
//! one incident, handled once with every reporter kept informed; the same fault of a unit
//! soon after a repair is a repeat ("fixed on Wednesday, broken again on Friday").

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::ticket::Priority;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupingPolicy {
    /// Distinct units of one building reporting one category that make an incident.
    pub incident_min_units: usize,
    /// How close together those reports must be.
    pub incident_window_secs: i64,
    /// A report for a unit and category resolved less than this long ago is a repeat.
    pub repeat_window_secs: i64,
}

impl Default for GroupingPolicy {
    fn default() -> Self {
        GroupingPolicy { incident_min_units: 3, incident_window_secs: 30 * 60, repeat_window_secs: 30 * 24 * 3600 }
    }
}

impl GroupingPolicy {
    /// The earliest report time that still counts towards an incident at `now`.
    pub fn incident_since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - TimeDelta::seconds(self.incident_window_secs)
    }

    /// The earliest resolution that makes a new report a repeat at `now`.
    pub fn repeat_since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - TimeDelta::seconds(self.repeat_window_secs)
    }

    pub fn forms_incident(&self, distinct_units: usize) -> bool {
        distinct_units >= self.incident_min_units.max(2)
    }
}

/// An incident is at least P2 (a group complaint raises the level, as urgency does), and as urgent as
/// its most urgent report.
pub fn incident_priority(reports: impl IntoIterator<Item = Priority>) -> Priority {
    reports.into_iter().fold(Priority::P2, Priority::most_urgent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_units_make_an_incident_by_default() {
        let policy = GroupingPolicy::default();
        let outcomes: Vec<bool> = (1..=4).map(|units| policy.forms_incident(units)).collect();
        assert_eq!(outcomes, [false, false, true, true]);
    }

    #[test]
    fn the_windows_reach_back_from_now() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let policy = GroupingPolicy::default();
        assert_eq!(policy.incident_since(now), now - TimeDelta::minutes(30));
        assert_eq!(policy.repeat_since(now), now - TimeDelta::days(30));
    }

    #[test]
    fn an_incident_is_at_least_p2_and_as_urgent_as_its_worst_report() {
        assert_eq!(incident_priority([Priority::P3, Priority::P4]), Priority::P2);
        assert_eq!(incident_priority([Priority::P3, Priority::P1]), Priority::P1);
    }
}
