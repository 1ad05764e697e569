//! Case records for long matters (neighbour disputes, matters with outside parties): who
//! is involved, what was done with whom and what came of it, the next step, and waiting
//! on an outside party, so that nobody can say the centre did nothing (不作为).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::follow_up::ReplyMethod;
use crate::ticket::coded_enum;

/// The longest a ticket may wait on an outside party before its review date.
pub const MAX_REVIEW_DAYS: i64 = 90;

coded_enum!(
    /// Who takes part in a case.
    PartyKind, "party kind" {
        /// A resident or unit on one side of the matter (personal data: masked as contacts are).
        Resident => "resident",
        /// 居委会 / 社区工作站.
        ResidentsCommittee => "residents_committee",
        /// 业委会.
        OwnersCommittee => "owners_committee",
        Police => "police",
        /// 城管.
        UrbanManagement => "urban_management",
        Developer => "developer",
        Other => "other",
    }
);

impl PartyKind {
    /// An organisation outside the company (its name and contact are not personal data).
    pub fn is_outside(self) -> bool {
        self != PartyKind::Resident
    }
}

/// One party of a case.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub id: String,
    pub kind: PartyKind,
    /// For residents: "a" or "b", the side of the matter they are on.
    #[serde(default)]
    pub side: String,
    #[serde(default)]
    pub unit_id: Option<String>,
    #[serde(default)]
    pub resident_id: Option<String>,
    /// The person's or organisation's name.
    pub name: String,
    /// A phone or address: a resident's is personal data.
    #[serde(default)]
    pub contact: String,
    /// For a party the matter was referred to: the reference it gave, when to chase it,
    /// and what it answered.
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub chase_by: Option<DateTime<Utc>>,
    #[serde(default)]
    pub result: Option<String>,
}

impl std::fmt::Debug for Party {
    /// A resident party's name and contact are personal data: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Party").field("id", &self.id).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// One step of a case's timeline: when, what was done, with whom, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseStep {
    pub at: DateTime<Utc>,
    pub what: String,
    #[serde(default)]
    pub party_ids: Vec<String>,
    #[serde(default)]
    pub outcome: String,
}

/// Waiting on an outside party: why, and when the owner looks again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub party_id: String,
    pub reason: String,
    pub review_by: DateTime<Utc>,
    pub since: DateTime<Utc>,
}

/// A ticket's case.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Case {
    pub parties: Vec<Party>,
    #[serde(default)]
    pub next_step: String,
    #[serde(default)]
    pub next_step_due: Option<DateTime<Utc>>,
    /// Set while the ticket waits on an outside party (it is on hold meanwhile).
    #[serde(default)]
    pub waiting: Option<Waiting>,
    /// Seconds waited on outside parties so far (waits ended).
    #[serde(default)]
    pub waited_secs: i64,
}

impl Case {
    pub fn party(&self, id: &str) -> Option<&Party> {
        self.parties.iter().find(|p| p.id == id)
    }
}

/// Why a case change is refused; each names the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("a step cannot be in the future")]
    StepInFuture,
    #[error("party {0} is not on the case")]
    UnknownParty(String),
    #[error("party {0} is not an outside party")]
    NotOutside(String),
    #[error("the review date must be in the future")]
    ReviewInPast,
    #[error("the review date must be within {MAX_REVIEW_DAYS} days")]
    ReviewTooFar,
    #[error("the next step's due date must be in the future")]
    NextStepDueInPast,
    #[error("the chase date must be in the future, within {MAX_REVIEW_DAYS} days")]
    BadChaseDate,
    #[error("party {0} was not referred the matter, or has answered already")]
    NotAwaitingResult(String),
}

impl CaseError {
    /// The request field the error is about (as RecordCaseStep and WaitOnOutsideParty
    /// name them).
    pub fn field(&self) -> &'static str {
        match self {
            CaseError::StepInFuture => "step.at",
            CaseError::UnknownParty(_) => "step.party_ids",
            CaseError::NotOutside(_) => "party_id",
            CaseError::ReviewInPast | CaseError::ReviewTooFar => "review_by",
            CaseError::NextStepDueInPast => "next_step_due",
            CaseError::BadChaseDate => "chase_by",
            CaseError::NotAwaitingResult(_) => "party_id",
        }
    }
}

/// Who referred a request to the centre (head office, an authority) and how they want the
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referrer {
    pub organisation: String,
    #[serde(default)]
    pub reference: String,
    pub reply_method: ReplyMethod,
    /// Where the answer goes: an address, a phone, a mailbox.
    pub reply_to: String,
}

/// Checks a review date set at `now`.
pub fn check_review(review_by: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), CaseError> {
    if review_by <= now {
        return Err(CaseError::ReviewInPast);
    }
    if review_by > now + TimeDelta::days(MAX_REVIEW_DAYS) {
        return Err(CaseError::ReviewTooFar);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_date_is_in_the_next_90_days() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(check_review(now, now), Err(CaseError::ReviewInPast));
        assert_eq!(check_review(now + TimeDelta::days(91), now), Err(CaseError::ReviewTooFar));
        assert_eq!(check_review(now + TimeDelta::days(2), now), Ok(()));
        assert_eq!(CaseError::ReviewTooFar.field(), "review_by");
        assert!(PartyKind::Police.is_outside() && !PartyKind::Resident.is_outside());
        let party = Party {
            id: "p".into(),
            kind: PartyKind::Resident,
            side: "a".into(),
            unit_id: None,
            resident_id: None,
            name: "张三".into(),
            contact: "13800000000".into(),
            reference: String::new(),
            chase_by: None,
            result: None,
        };
        let shown = format!("{party:?}");
        assert!(!shown.contains("张三") && !shown.contains("13800000000"), "{shown}");
    }
}
