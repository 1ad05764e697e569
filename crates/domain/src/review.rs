//! Serious-complaint review (case analysis of major complaints): a complaint pushed up to
//! the manager, a group incident, or a second unsatisfied callback opens a review, which
//! the manager completes with its cause and the corrective action. Causes come from one
//! configurable list, shared with the cause of delay asked for when overdue work is
//! resolved, so the monthly review groups both by cause.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ticket::coded_enum;

coded_enum!(
    /// Why a review opened.
    ReviewTrigger, "review trigger" {
        /// A complaint escalated to the manager.
        ManagerEscalation => "manager_escalation",
        /// A group incident (many units at once).
        Incident => "incident",
        /// The resident was unsatisfied at a second callback.
        RepeatedUnsatisfied => "repeated_unsatisfied",
    }
);

/// The default causes of reviews and delays.
pub fn default_causes() -> Vec<String> {
    ["staff_attitude", "workmanship", "materials", "outside_party", "resident_expectation", "other"]
        .map(str::to_owned)
        .to_vec()
}

/// A ticket's review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub trigger: ReviewTrigger,
    pub opened_at: DateTime<Utc>,
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub reviewer: Option<String>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
}

impl Review {
    pub fn open(trigger: ReviewTrigger, now: DateTime<Utc>) -> Review {
        Review { trigger, opened_at: now, cause: None, action: None, reviewer: None, completed_at: None }
    }

    pub fn is_open(&self) -> bool {
        self.completed_at.is_none()
    }
}
