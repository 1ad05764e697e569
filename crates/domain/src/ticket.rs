//! The vocabulary of a ticket: kinds, channels, departments, priorities, states, roles.
//!
//! Each enum has a stable lower-case code used in storage, configuration and bus routing
//! keys; the codes must never change once data is written with them.

/// An unknown code for one of the enums of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{code}`")]
pub struct UnknownCode {
    pub what: &'static str,
    pub code: String,
}

macro_rules! coded_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable storage code.
            pub const fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::ticket::UnknownCode;
            fn from_str(code: &str) -> Result<Self, Self::Err> {
                match code {
                    $($code => Ok($name::$variant),)+
                    _ => Err($crate::ticket::UnknownCode { what: $what, code: code.to_owned() }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}
pub(crate) use coded_enum;

coded_enum!(
    /// What the resident asked for.
    TicketKind, "ticket kind" {
        Repair => "repair",
        Complaint => "complaint",
        Enquiry => "enquiry",
        Suggestion => "suggestion",
        /// Help with something outside the company's duty: never refused outright.
        Assistance => "assistance",
    }
);

coded_enum!(
    /// How the request arrived; the reply goes back the same way.
    Channel, "channel" {
        WalkIn => "walk_in",
        Phone => "phone",
        Letter => "letter",
        App => "app",
        HomeVisit => "home_visit",
        Referral => "referral",
    }
);

coded_enum!(
    /// The department that does the work.
    Department, "department" {
        Engineering => "engineering",
        Cleaning => "cleaning",
        Security => "security",
        CustomerService => "customer_service",
    }
);

coded_enum!(
    /// Service level; `P1` is the most urgent. Ordering: `P1 < P2 < P3 < P4`, so the more
    /// urgent of two priorities is their minimum.
    Priority, "priority" {
        P1 => "p1",
        P2 => "p2",
        P3 => "p3",
        P4 => "p4",
    }
);

impl Priority {
    /// One level more urgent (P1 stays P1).
    pub fn raised(self) -> Priority {
        match self {
            Priority::P1 | Priority::P2 => Priority::P1,
            Priority::P3 => Priority::P2,
            Priority::P4 => Priority::P3,
        }
    }

    /// The more urgent of the two.
    pub fn most_urgent(self, other: Priority) -> Priority {
        self.min(other)
    }
}

coded_enum!(
    /// Where a ticket is in its life. See [`crate::lifecycle`] for the allowed moves.
    TicketState, "ticket state" {
        New => "new",
        Dispatched => "dispatched",
        Accepted => "accepted",
        OnSite => "on_site",
        OnHold => "on_hold",
        Transferred => "transferred",
        Resolved => "resolved",
        Closed => "closed",
        Cancelled => "cancelled",
        Reopened => "reopened",
    }
);

impl TicketState {
    /// Work is still owed on the ticket (it counts in an assignee's load and can be overdue).
    pub fn is_open(self) -> bool {
        !matches!(self, TicketState::Resolved | TicketState::Closed | TicketState::Cancelled)
    }
}

coded_enum!(
    /// A staff member's role, carried in their token.
    Role, "role" {
        Agent => "agent",
        Dispatcher => "dispatcher",
        Technician => "technician",
        Supervisor => "supervisor",
        Manager => "manager",
        Admin => "admin",
    }
);

coded_enum!(
    /// The resident's verdict at callback.
    Satisfaction, "satisfaction" {
        VeryUnsatisfied => "very_unsatisfied",
        Unsatisfied => "unsatisfied",
        Neutral => "neutral",
        Satisfied => "satisfied",
        VerySatisfied => "very_satisfied",
    }
);

impl Satisfaction {
    /// An unsatisfied resident's ticket goes back for rectification (整改).
    pub fn requires_rework(self) -> bool {
        matches!(self, Satisfaction::VeryUnsatisfied | Satisfaction::Unsatisfied)
    }

    /// 1 (very unsatisfied) to 5 (very satisfied), for the quality figures.
    pub fn score(self) -> i32 {
        match self {
            Satisfaction::VeryUnsatisfied => 1,
            Satisfaction::Unsatisfied => 2,
            Satisfaction::Neutral => 3,
            Satisfaction::Satisfied => 4,
            Satisfaction::VerySatisfied => 5,
        }
    }
}

coded_enum!(
    /// What happened to a ticket: the history event type.
    EventType, "event type" {
        Created => "created",
        Dispatched => "dispatched",
        Accepted => "accepted",
        ArrivedOnSite => "arrived_on_site",
        PutOnHold => "put_on_hold",
        Resumed => "resumed",
        Resolved => "resolved",
        Transferred => "transferred",
        Cancelled => "cancelled",
        Closed => "closed",
        Reopened => "reopened",
        /// A report joined a group incident that formed after it was routed.
        LinkedToIncident => "linked_to_incident",
        /// Staff corrected what was logged (category, place, words, promise, priority).
        Updated => "updated",
        /// On an original: another ticket was closed as its duplicate.
        DuplicateAdded => "duplicate_added",
        /// The resident was answered (the note is the text as sent).
        Replied => "replied",
        /// An interim measure was recorded (or withdrawn): the resident is told it.
        InterimMeasureSet => "interim_measure_set",
        /// A party joined the ticket's case.
        CaseUpdated => "case_updated",
        /// A step of the case's timeline: what was done, with whom, what came of it.
        CaseStep => "case_step",
        /// The matter was referred to an outside party (police, 城管, the developer).
        ReferredOut => "referred_out",
        /// A party the matter was referred to answered (the note is its result).
        ReferralResult => "referral_result",
        /// A serious-complaint review opened (the note says why).
        ReviewOpened => "review_opened",
        /// The manager completed the review: its cause and the corrective action.
        ReviewCompleted => "review_completed",
        /// A file (a photo, a scanned letter) was attached.
        AttachmentAdded => "attachment_added",
        /// A resident's personal data was erased on their request (the note says why).
        PersonalDataErased => "personal_data_erased",
        NoteAdded => "note_added",
        CallbackRecorded => "callback_recorded",
        Escalated => "escalated",
        /// A reminder before a deadline (notifier).
        Reminded => "reminded",
        /// A follow-up task (a reply in the channel of origin, a callback) was created or done.
        FollowUp => "follow_up",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for state in TicketState::ALL {
            assert_eq!(state.code().parse::<TicketState>(), Ok(*state));
        }
        for role in Role::ALL {
            assert_eq!(role.code().parse::<Role>(), Ok(*role));
        }
        for channel in Channel::ALL {
            assert_eq!(channel.code().parse::<Channel>(), Ok(*channel));
        }
        assert!("urgent".parse::<Priority>().is_err());
    }

    #[test]
    fn raising_priority_moves_one_level_and_stops_at_p1() {
        let cases = [
            (Priority::P4, Priority::P3),
            (Priority::P3, Priority::P2),
            (Priority::P2, Priority::P1),
            (Priority::P1, Priority::P1),
        ];
        for (from, to) in cases {
            assert_eq!(from.raised(), to, "{from} raised");
        }
        assert_eq!(Priority::P3.most_urgent(Priority::P1), Priority::P1);
    }

    #[test]
    fn ratings_score_one_to_five() {
        let scores: Vec<i32> = Satisfaction::ALL.iter().map(|s| s.score()).collect();
        assert_eq!(scores, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn only_unsatisfied_ratings_require_rework() {
        let rework: Vec<_> = Satisfaction::ALL.iter().filter(|s| s.requires_rework()).collect();
        assert_eq!(rework, [&Satisfaction::VeryUnsatisfied, &Satisfaction::Unsatisfied]);
    }
}
