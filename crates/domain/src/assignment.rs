//! Who gets the job: the on-duty person with the fewest open tickets; ties go to whoever
//! has waited longest since their last assignment (never assigned counts as longest). The
//! store counts open tickets up to a cap (`propdesk_store::work::LOAD_COUNTED_UP_TO`):
//! people past it count as equally loaded, so the longest idle among them is next.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub staff_id: String,
    pub open_tickets: u64,
    pub last_assigned_at: Option<DateTime<Utc>>,
}

/// `None` when nobody is on duty: the ticket waits in the department's pool.
pub fn choose_assignee(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().min_by(|a, b| {
        a.open_tickets
            .cmp(&b.open_tickets)
            // `None` (never assigned) sorts before any time.
            .then_with(|| a.last_assigned_at.cmp(&b.last_assigned_at))
            .then_with(|| a.staff_id.cmp(&b.staff_id))
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn candidate(id: &str, open: u64, last_hour: Option<u32>) -> Candidate {
        Candidate {
            staff_id: id.into(),
            open_tickets: open,
            last_assigned_at: last_hour.map(|h| Utc.with_ymd_and_hms(2026, 11, 23, h, 0, 0).unwrap()),
        }
    }

    #[test]
    fn assignment_table() {
        // (candidates, expected)
        let cases: [(Vec<Candidate>, Option<&str>); 5] = [
            (vec![], None),
            (vec![candidate("a", 3, Some(9)), candidate("b", 1, Some(10))], Some("b")),
            (vec![candidate("a", 2, Some(9)), candidate("b", 2, Some(8))], Some("b")),
            (vec![candidate("a", 2, Some(9)), candidate("b", 2, None)], Some("b")),
            (vec![candidate("b", 0, None), candidate("a", 0, None)], Some("a")),
        ];
        for (candidates, expected) in cases {
            assert_eq!(choose_assignee(&candidates).map(|c| c.staff_id.as_str()), expected, "{candidates:?}");
        }
    }
}
