//! The ticket aggregate: the one value that changes when anything happens to a ticket.
//!
//! Every change is a command method ([`Ticket::accept`], [`Ticket::dispatch`],
//! [`Ticket::record_callback`], ...) that checks the rules, changes the ticket and returns
//! the history events it produced, each with its cause where one is needed to read it
//! (`Reopened` because of an unsatisfied callback, `Escalated` because a deadline was
//! missed). Readers see every fact through `Deref` to [`TicketFacts`]; nothing outside
//! this module sets a field. The store restores a ticket from its row with
//! [`Ticket::restore`] and saves it with the events, bumping the version once.
//!
//! Invariants: the state changes only through [`Lifecycle`]; `now` is always an argument;
//! an incident names itself, a report names the incident it is linked to.

use chrono::{DateTime, Utc};

use crate::attachment::Attachment;
use crate::case::{Case, CaseError, CaseStep, MAX_REVIEW_DAYS, Party, Referrer, Waiting, check_review};
use crate::follow_up::ReplyMethod;
use crate::lifecycle::{Lifecycle, Move, TransitionError};
use crate::policy::Policy;
use crate::replies::{ReplySent, StandardReplyRef};
use crate::review::{Review, ReviewTrigger};
use crate::sla::{Deadlines, SlaPolicy};
use crate::ticket::{
    Channel, Department, EventType, Priority, Role, Satisfaction, TicketKind, TicketState, coded_enum,
};

/// A category of the catalog, by its stable code. The catalog is configuration, so the
/// code is checked against it where a ticket is logged, not by the type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryCode(String);

impl CategoryCode {
    pub fn new(code: impl Into<String>) -> CategoryCode {
        CategoryCode(code.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CategoryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who reported it. Personal data: `Debug` shows neither field.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Reporter {
    pub name: String,
    pub phone: String,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter { .. }")
    }
}

/// How a ticket stands to group incidents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IncidentLink {
    #[default]
    None,
    /// A report linked to this incident: the incident carries its work clocks.
    LinkedTo(String),
    /// The ticket is itself a group incident.
    IsIncident,
}

/// The client's idempotency key of a create, and a digest of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestKey {
    pub request_id: String,
    pub fingerprint: String,
}

/// When each milestone was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Milestones {
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub on_site_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Set while on hold: when the clocks were paused.
    pub on_hold_since: Option<DateTime<Utc>>,
    /// When the resident was last answered (a reply sent); cleared by a new promise.
    pub replied_at: Option<DateTime<Utc>>,
    /// Where the current cycle's clocks count from: the report, or the last reopening,
    /// moved on by the time spent on hold. A corrected priority re-plans them from here.
    pub clocks_from: DateTime<Utc>,
}

impl Milestones {
    /// A ticket logged at `created_at` and nothing more.
    pub fn at(created_at: DateTime<Utc>) -> Milestones {
        Milestones {
            created_at,
            updated_at: created_at,
            dispatched_at: None,
            accepted_at: None,
            on_site_at: None,
            resolved_at: None,
            closed_at: None,
            on_hold_since: None,
            replied_at: None,
            clocks_from: created_at,
        }
    }
}

/// The resident's verdict at the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    pub satisfaction: Satisfaction,
    pub comment: String,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// Everything known of a ticket. Read it through a [`Ticket`]; build one only to restore a
/// stored ticket ([`Ticket::restore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    pub id: String,
    /// The stored version this value was read at (the store bumps it on save).
    pub version: i64,
    pub property_id: String,
    pub building_id: Option<String>,
    pub unit_id: Option<String>,
    pub unit_label: Option<String>,
    pub location: String,
    pub resident_id: Option<String>,
    pub reporter: Reporter,
    pub kind: TicketKind,
    pub channel: Channel,
    pub category: CategoryCode,
    pub department: Option<Department>,
    pub priority: Priority,
    pub lifecycle: Lifecycle,
    pub title: String,
    pub description: String,
    pub first_contact_agent_id: String,
    pub assignee_id: Option<String>,
    /// 0 none, 1 supervisor, 2 manager; never lowered.
    pub escalation_level: i32,
    pub incident: IncidentLink,
    pub repeat_fault: bool,
    pub request: RequestKey,
    pub times: Milestones,
    pub deadlines: Deadlines,
    /// A complex enquiry's reply time promised to the resident.
    pub promised_reply_at: Option<DateTime<Utc>>,
    pub callback: Option<CallbackRecord>,
    /// Grows by one each time the clocks restart (reopen): alarms of an earlier cycle never
    /// fire again.
    pub clock_cycle: i32,
    /// Set on a ticket closed as a duplicate: the original, which carries the work.
    pub duplicate_of: Option<String>,
    /// What stands in for the service meanwhile (the water tanker at gate 2): told to the
    /// resident with every notice.
    pub interim_measure: Option<String>,
    /// The urgent-word rule that raised the priority, if one did (e.g. "fire").
    pub urgency_rule: Option<String>,
    /// The case record of a long matter, once it has one.
    pub case: Option<Case>,
    /// Who referred the request (a REFERRAL), and how they want the answer.
    pub referred_by: Option<Referrer>,
    /// Callbacks at which the resident was unsatisfied (a second one opens a review).
    pub unsatisfied_callbacks: i32,
    /// The serious-complaint review, once one opened.
    pub review: Option<Review>,
    /// Why overdue work was late, given when it was resolved (a review cause code).
    pub delay_cause: Option<String>,
}

impl TicketFacts {
    pub fn state(&self) -> TicketState {
        self.lifecycle.state
    }

    pub fn is_incident(&self) -> bool {
        self.incident == IncidentLink::IsIncident
    }

    /// The incident this ticket belongs to: the one it is linked to, or itself.
    pub fn incident_id(&self) -> Option<&str> {
        match &self.incident {
            IncidentLink::None => None,
            IncidentLink::LinkedTo(id) => Some(id),
            IncidentLink::IsIncident => Some(&self.id),
        }
    }

    /// A report linked to a group incident (whose clocks the incident carries).
    pub fn is_linked_report(&self) -> bool {
        matches!(self.incident, IncidentLink::LinkedTo(_))
    }
}

/// A ticket: its facts, changed only by its commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    facts: TicketFacts,
    /// A command changed a fact since it was loaded: saving bumps the version.
    changed: bool,
}

impl std::ops::Deref for Ticket {
    type Target = TicketFacts;

    fn deref(&self) -> &TicketFacts {
        &self.facts
    }
}

coded_enum!(
    /// Why an event happened, where its type alone does not say.
    Cause, "event cause" {
        /// A member of staff asked for it.
        Staff => "staff",
        /// The resident was satisfied at the callback.
        CallbackSatisfied => "callback_satisfied",
        /// The resident was unsatisfied at the callback: rework (整改).
        CallbackUnsatisfied => "callback_unsatisfied",
        /// An enquiry answered at the desk when it was logged.
        AnsweredOnTheSpot => "answered_on_the_spot",
        /// Its group incident was resolved.
        IncidentResolved => "incident_resolved",
        /// A deadline passed without its milestone.
        DeadlineMissed => "deadline_missed",
        /// A deadline is near.
        DeadlineNear => "deadline_near",
        /// It repeats another ticket, which carries the work.
        Duplicate => "duplicate",
        /// Put on hold to wait on an outside party (居委会, police, the developer...).
        WaitingOnOutsideParty => "waiting_on_outside_party",
    }
);

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    Staff {
        id: String,
        role: Role,
    },
    /// A worker of the system (`dispatch`, `notifier`).
    System(&'static str),
}

impl By {
    pub fn staff(id: impl Into<String>, role: Role) -> By {
        By::Staff { id: id.into(), role }
    }

    pub fn id(&self) -> &str {
        match self {
            By::Staff { id, .. } => id,
            By::System(name) => name,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            By::Staff { role, .. } => Some(*role),
            By::System(_) => None,
        }
    }
}

/// One history event a command produced: what happened, why, the state before and after,
/// who did it and when. The store gives it an id and the ticket's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub event_type: EventType,
    pub cause: Option<Cause>,
    pub from: Option<TicketState>,
    pub to: TicketState,
    pub by: By,
    pub note: String,
    pub at: DateTime<Utc>,
    /// What a correction changed, each field with its value before and after.
    pub changes: Vec<FieldChange>,
    /// How the resident was answered (a reply, an on-the-spot answer).
    pub reply: Option<ReplySent>,
    /// A step of the ticket's case.
    pub step: Option<CaseStep>,
    /// The file an ATTACHMENT_ADDED event adds (saved with the event).
    pub attachment: Option<Box<Attachment>>,
}

impl Recorded {
    /// An event with nothing beyond its type, cause, states, actor, note and time.
    pub fn new(
        event_type: EventType,
        cause: Option<Cause>,
        from: Option<TicketState>,
        to: TicketState,
        by: By,
        note: String,
        at: DateTime<Utc>,
    ) -> Recorded {
        Recorded {
            event_type,
            cause,
            from,
            to,
            by,
            note,
            at,
            changes: Vec::new(),
            reply: None,
            step: None,
            attachment: None,
        }
    }
}

/// One field a correction changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldChange {
    /// The field's name on the wire, e.g. "category".
    pub field: String,
    pub before: String,
    pub after: String,
}

impl FieldChange {
    fn new(field: &str, before: impl Into<String>, after: impl Into<String>) -> FieldChange {
        FieldChange { field: field.to_owned(), before: before.into(), after: after.into() }
    }
}

/// A command the rules refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the ticket is already in the {0} department")]
    SameDepartment(Department),
    #[error("only an enquiry can be answered on the spot")]
    OnlyEnquiriesAnsweredOnTheSpot,
    #[error("a group incident cannot be linked to another incident")]
    IncidentCannotBeLinked,
    #[error("the ticket is already escalated to level {current}; the level never goes down")]
    NotHigherLevel { current: i32 },
    #[error("a ticket that is {0} is finished")]
    Finished(TicketState),
    #[error("a common-area ticket needs a location")]
    LocationRequired,
    #[error("ticket {0} is not a group incident")]
    NotAnIncident(String),
    #[error("the incident belongs to another property")]
    IncidentOfAnotherProperty,
    #[error("the ticket is already linked to incident {0}; unlink it first")]
    AlreadyLinked(String),
    #[error("the ticket is not linked to an incident")]
    NotLinked,
    #[error("a ticket cannot be a duplicate of itself")]
    DuplicateOfItself,
    #[error("the original belongs to another property")]
    OriginalOfAnotherProperty,
    #[error("ticket {0} is itself a duplicate: mark the duplicate of its original instead")]
    OriginalIsDuplicate(String),
    #[error("a group incident is never a duplicate; link reports to it instead")]
    IncidentNotDuplicate,
    #[error("the original is {0}: a new report of the same fault is new work, not a duplicate")]
    OriginalFinished(TicketState),
    #[error("other tickets are duplicates of this one: mark them of the original first")]
    HasDuplicates,
    #[error("the original is {0}: its duplicate's reporter is called back once it is resolved, once")]
    CallbackNotDue(TicketState),
    #[error("the ticket gives no way to reach the resident by {0}")]
    NoContact(ReplyMethod),
    #[error("moving a promised reply time needs a reason: the resident is told it")]
    PromiseMovedWithoutReason,
    #[error(transparent)]
    Case(#[from] CaseError),
    #[error("the ticket has no case yet: add a party first")]
    NoCase,
    #[error("`{cause}` is not one of the configured causes")]
    UnknownCause { field: &'static str, cause: String },
    #[error("the ticket has no open review")]
    NoOpenReview,
    #[error("the work is overdue: give the cause of the delay")]
    DelayCauseRequired,
    #[error("the ticket already has {max} attachments, the most it may have")]
    TooManyAttachments { max: u32 },
}

/// A stored ticket whose facts break an invariant of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ticket {ticket_id} is inconsistent: {detail}")]
pub struct Inconsistent {
    pub ticket_id: String,
    pub detail: &'static str,
}

/// A correction of what was logged (UpdateTicket); `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct Correction {
    /// A category of the catalog with its default priority.
    pub category: Option<(CategoryCode, Priority)>,
    /// The unit, checked against the ticket's property; `Some(None)`: a common area.
    pub unit: Option<Option<UnitPlace>>,
    pub location: Option<String>,
    pub title: Option<String>,
    /// More of the resident's words; the description keeps what was said first.
    pub description_addendum: Option<String>,
    /// `Some(None)` withdraws the promise.
    pub promised_reply_at: Option<Option<DateTime<Utc>>>,
    pub priority: Option<Priority>,
}

impl Correction {
    /// Whether the correction makes the ticket less urgent than `current` (which needs a
    /// supervisor and a reason).
    pub fn lowers_priority(&self, current: Priority) -> bool {
        self.priority.is_some_and(|asked| asked > current)
    }
}

/// What an agent logs: the request as parsed and checked against the directory.
#[derive(Debug, Clone)]
pub struct Report {
    pub id: String,
    pub property_id: String,
    /// The unit with its building and label, when reported from inside a unit.
    pub unit: Option<UnitPlace>,
    pub location: String,
    pub resident_id: Option<String>,
    pub reporter: Reporter,
    pub kind: TicketKind,
    pub channel: Channel,
    pub category: CategoryCode,
    pub category_default: Priority,
    /// The agent's judgement; urgent words and the category may raise it.
    pub requested_priority: Option<Priority>,
    pub title: String,
    pub description: String,
    pub request: RequestKey,
    pub promised_reply_at: Option<DateTime<Utc>>,
    /// An enquiry answered at the desk: it is resolved when logged.
    pub answer_on_the_spot: Option<String>,
    /// The standard reply the answer on the spot was rendered from.
    pub answer_source: Option<StandardReplyRef>,
    /// An answer on the spot is followed by a callback (else it is closed at once).
    pub callback_wanted: bool,
    /// Who referred it, for a REFERRAL.
    pub referred_by: Option<Referrer>,
}

/// Where a unit is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPlace {
    pub unit_id: String,
    pub building_id: String,
    pub label: String,
}

/// The most characters of a title made from the description's first line.
pub const DEFAULT_TITLE_CHARS: usize = crate::validation::MAX_TITLE;

/// Where dispatch sends a ticket, as decided from the rules and the people on duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub department: Department,
    pub assignee_id: Option<String>,
    /// A repeat fault: the raised priority and the clocks it runs on from the report.
    pub repeat: Option<Repeat>,
    /// The incident the report joins (its assignee does the work).
    pub incident_id: Option<String>,
    /// Why it went where it did, for the history.
    pub note: String,
}

/// A report of a fault fixed not long ago.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    pub priority: Priority,
    pub deadlines: Deadlines,
}

/// A new group incident, as dispatch decided it.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub id: String,
    pub property_id: String,
    pub building_id: String,
    pub location: String,
    pub channel: Channel,
    pub category: CategoryCode,
    pub department: Department,
    pub priority: Priority,
    pub assignee_id: Option<String>,
    pub title: String,
    pub description: String,
    pub first_contact_agent_id: String,
    pub deadlines: Deadlines,
}

impl Ticket {
    /// A stored ticket, checked.
    pub fn restore(facts: TicketFacts) -> Result<Ticket, Inconsistent> {
        let broken = |detail| Err(Inconsistent { ticket_id: facts.id.clone(), detail });
        if !facts.lifecycle.is_consistent() {
            return broken("its hold state and held-from state disagree");
        }
        if matches!(&facts.incident, IncidentLink::LinkedTo(id) if *id == facts.id) {
            return broken("it is linked to itself");
        }
        if facts.version < 1 {
            return broken("its version is below 1");
        }
        if facts.duplicate_of.as_deref() == Some(facts.id.as_str()) {
            return broken("it is a duplicate of itself");
        }
        Ok(Ticket { facts, changed: false })
    }

    /// Whether a command changed a fact since the ticket was loaded or logged.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// The facts, for the store's row mapping.
    pub fn facts(&self) -> &TicketFacts {
        &self.facts
    }

    /// The facts, given up (the store restores the saved ticket from them).
    pub fn into_facts(self) -> TicketFacts {
        self.facts
    }

    /// Logs a new report: its priority (the most urgent of the category's, the agent's and
    /// any urgent words'), its clocks from now, and for an enquiry answered at the desk,
    /// its resolution there and then.
    pub fn log(
        report: Report,
        policy: &Policy,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<(Ticket, Vec<Recorded>), RuleViolation> {
        if report.answer_on_the_spot.is_some() && report.kind != TicketKind::Enquiry {
            return Err(RuleViolation::OnlyEnquiriesAnsweredOnTheSpot);
        }
        let text = format!("{}\n{}", report.title, report.description);
        let rules = policy.urgency_for(&report.property_id);
        let decided = rules.decide(report.category_default, report.requested_priority, &text);
        let title = if report.title.trim().is_empty() {
            report.description.lines().next().unwrap_or_default().chars().take(DEFAULT_TITLE_CHARS).collect()
        } else {
            report.title
        };
        let (unit_id, building_id, unit_label) = match report.unit {
            Some(place) => (Some(place.unit_id), Some(place.building_id), Some(place.label)),
            None => (None, None, None),
        };
        let facts = TicketFacts {
            id: report.id,
            version: 1,
            property_id: report.property_id,
            building_id,
            unit_id,
            unit_label,
            location: report.location,
            resident_id: report.resident_id,
            reporter: report.reporter,
            kind: report.kind,
            channel: report.channel,
            category: report.category,
            department: None,
            priority: decided.priority,
            lifecycle: Lifecycle::new(),
            title,
            description: report.description,
            first_contact_agent_id: by.id().to_owned(),
            assignee_id: None,
            escalation_level: 0,
            incident: IncidentLink::None,
            repeat_fault: false,
            request: report.request,
            times: Milestones::at(now),
            deadlines: Deadlines::default(),
            promised_reply_at: report.promised_reply_at,
            callback: None,
            clock_cycle: 0,
            duplicate_of: None,
            interim_measure: None,
            urgency_rule: decided.raised_by.as_ref().map(|r| r.rule.clone()),
            case: None,
            referred_by: report.referred_by,
            unsatisfied_callbacks: 0,
            review: None,
            delay_cause: None,
        };
        let mut ticket = Ticket { facts, changed: true };
        ticket.facts.deadlines = policy.deadlines(decided.priority, report.kind, &ticket.property_id, now);
        let note = match &decided.raised_by {
            Some(raised) => {
                format!("priority {} (urgent rule {}: \"{}\")", decided.priority, raised.rule, raised.keyword)
            }
            None => format!("priority {}", decided.priority),
        };
        let mut events = vec![Recorded::new(EventType::Created, None, None, TicketState::New, by.clone(), note, now)];
        if let Some(answer) = report.answer_on_the_spot {
            ticket.facts.department = Some(Department::CustomerService);
            let mut resolved =
                ticket.resolve_as(by.clone(), answer, Some(Cause::AnsweredOnTheSpot), &policy.sla, now)?;
            resolved.reply =
                Some(ReplySent { method: ReplyMethod::for_channel(ticket.channel), standard: report.answer_source });
            events.push(resolved);
            // Answered there and then: nothing more is owed unless a callback is asked for.
            if !report.callback_wanted {
                let note = "answered on the spot; no callback asked for".to_owned();
                events.push(ticket.step(
                    Move::Close,
                    EventType::Closed,
                    Some(Cause::AnsweredOnTheSpot),
                    by.clone(),
                    note,
                    now,
                )?);
                ticket.facts.times.closed_at = Some(now);
                ticket.facts.deadlines.callback_by = None;
            }
        }
        Ok((ticket, events))
    }

    /// Opens a group incident, already dispatched to its department.
    pub fn open_incident(new: NewIncident, units: usize, by: By, now: DateTime<Utc>) -> (Ticket, Vec<Recorded>) {
        let facts = TicketFacts {
            id: new.id.clone(),
            version: 1,
            property_id: new.property_id,
            building_id: Some(new.building_id),
            unit_id: None,
            unit_label: None,
            location: new.location,
            resident_id: None,
            reporter: Reporter::default(),
            kind: TicketKind::Repair,
            channel: new.channel,
            category: new.category,
            department: Some(new.department),
            priority: new.priority,
            lifecycle: Lifecycle { state: TicketState::Dispatched, held_from: None },
            title: new.title,
            description: new.description,
            first_contact_agent_id: new.first_contact_agent_id,
            assignee_id: new.assignee_id,
            escalation_level: 0,
            incident: IncidentLink::IsIncident,
            repeat_fault: false,
            request: RequestKey { request_id: format!("incident-{}", new.id), fingerprint: String::new() },
            times: Milestones { dispatched_at: Some(now), ..Milestones::at(now) },
            deadlines: new.deadlines,
            promised_reply_at: None,
            callback: None,
            clock_cycle: 0,
            duplicate_of: None,
            interim_measure: None,
            urgency_rule: None,
            case: None,
            referred_by: None,
            unsatisfied_callbacks: 0,
            // A group incident is reviewed by the manager (a serious matter by its size).
            review: Some(Review::open(ReviewTrigger::Incident, now)),
            delay_cause: None,
        };
        let event =
            |event_type, from, to, note: String| Recorded::new(event_type, None, from, to, by.clone(), note, now);
        let events = vec![
            event(EventType::Created, None, TicketState::New, format!("incident of {units} units")),
            event(
                EventType::Dispatched,
                Some(TicketState::New),
                TicketState::Dispatched,
                format!("routed to {}", new.department),
            ),
            event(
                EventType::ReviewOpened,
                Some(TicketState::Dispatched),
                TicketState::Dispatched,
                format!("review opened: {}", ReviewTrigger::Incident),
            ),
        ];
        (Ticket { facts, changed: true }, events)
    }

    /// Applies a state-machine move and records it.
    fn step(
        &mut self,
        mv: Move,
        event_type: EventType,
        cause: Option<Cause>,
        by: By,
        note: String,
        now: DateTime<Utc>,
    ) -> Result<Recorded, TransitionError> {
        let from = self.facts.lifecycle.state;
        self.facts.lifecycle = self.facts.lifecycle.apply(mv)?;
        self.touch(now);
        let to = self.facts.lifecycle.state;
        Ok(Recorded::new(event_type, cause, Some(from), to, by, note, now))
    }

    /// An event that changes no state.
    fn remark(
        &self,
        event_type: EventType,
        cause: Option<Cause>,
        by: By,
        note: String,
        now: DateTime<Utc>,
    ) -> Recorded {
        let state = self.facts.lifecycle.state;
        Recorded::new(event_type, cause, Some(state), state, by, note, now)
    }

    fn touch(&mut self, now: DateTime<Utc>) {
        self.facts.times.updated_at = now;
        self.changed = true;
    }

    /// Routes a ticket that waits for it (new, transferred or reopened) to a department
    /// and maybe a person; a repeat fault raises the priority and runs the clocks from when
    /// it was reported.
    pub fn dispatch(&mut self, route: Route, by: By, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        let event = self.step(Move::Dispatch, EventType::Dispatched, None, by, route.note, now)?;
        let facts = &mut self.facts;
        facts.department = Some(route.department);
        facts.assignee_id = route.assignee_id;
        facts.times.dispatched_at = Some(now);
        if let Some(repeat) = route.repeat {
            facts.repeat_fault = true;
            if repeat.priority != facts.priority {
                facts.priority = repeat.priority;
                facts.deadlines = repeat.deadlines;
            }
        }
        if let Some(incident_id) = route.incident_id {
            facts.incident = IncidentLink::LinkedTo(incident_id);
        }
        Ok(vec![event])
    }

    /// Links this report to a group incident that has just formed. A report nobody has
    /// started on goes to the incident's department and person (dispatching a new one);
    /// one already routed keeps when it was, and one being worked keeps its person.
    pub fn link_to(&mut self, incident: &Ticket, by: By, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        if self.is_incident() {
            return Err(RuleViolation::IncidentCannotBeLinked);
        }
        let note = format!("linked to incident {}", incident.id);
        self.facts.incident = IncidentLink::LinkedTo(incident.id.clone());
        let state = self.facts.lifecycle.state;
        let event = match state {
            TicketState::New => {
                let event = self.step(Move::Dispatch, EventType::Dispatched, None, by, note, now)?;
                self.facts.times.dispatched_at = Some(now);
                self.facts.department = incident.department;
                self.facts.assignee_id = incident.assignee_id.clone();
                event
            }
            TicketState::Dispatched => {
                self.facts.department = incident.department;
                self.facts.assignee_id = incident.assignee_id.clone();
                self.remark(EventType::LinkedToIncident, None, by, note, now)
            }
            _ => self.remark(EventType::LinkedToIncident, None, by, note, now),
        };
        self.touch(now);
        Ok(vec![event])
    }

    /// Links a report to an incident by hand, for what the automatic grouping missed (a
    /// common-area report, another category describing the same outage): from then on it
    /// is worked, and resolved, with the incident.
    pub fn link_by_hand(
        &mut self,
        incident: &Ticket,
        by: By,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        if !incident.is_incident() {
            return Err(RuleViolation::NotAnIncident(incident.id.clone()));
        }
        if incident.property_id != self.facts.property_id {
            return Err(RuleViolation::IncidentOfAnotherProperty);
        }
        if let IncidentLink::LinkedTo(current) = &self.facts.incident {
            return Err(RuleViolation::AlreadyLinked(current.clone()));
        }
        let state = self.facts.lifecycle.state;
        if matches!(state, TicketState::Resolved | TicketState::Closed | TicketState::Cancelled) {
            return Err(RuleViolation::Finished(state));
        }
        let mut events = self.link_to(incident, by, now)?;
        if let Some(event) = events.first_mut()
            && !reason.trim().is_empty()
        {
            event.note = format!("{}: {reason}", event.note);
        }
        Ok(events)
    }

    /// Takes a report out of its incident: it keeps its department and person, and is
    /// worked and resolved on its own again.
    pub fn unlink(&mut self, by: By, reason: String, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        let IncidentLink::LinkedTo(incident_id) = &self.facts.incident else {
            return Err(RuleViolation::NotLinked);
        };
        let change = FieldChange::new("incident_id", incident_id.as_str(), "");
        self.facts.incident = IncidentLink::None;
        self.touch(now);
        let note = if reason.trim().is_empty() { "unlinked from the incident".to_owned() } else { reason };
        let mut event = self.remark(EventType::Updated, Some(Cause::Staff), by, note, now);
        event.changes = vec![change];
        Ok(vec![event])
    }

    pub fn accept(&mut self, by: By, note: String, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        let event = self.step(Move::Accept, EventType::Accepted, None, by, note, now)?;
        self.facts.times.accepted_at = Some(now);
        Ok(vec![event])
    }

    pub fn arrive(&mut self, by: By, note: String, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        let event = self.step(Move::ArriveOnSite, EventType::ArrivedOnSite, None, by, note, now)?;
        self.facts.times.on_site_at = Some(now);
        Ok(vec![event])
    }

    /// Puts the work on hold: the clocks pause until it resumes.
    pub fn hold(&mut self, by: By, note: String, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        let event = self.step(Move::PutOnHold, EventType::PutOnHold, None, by, note, now)?;
        self.facts.times.on_hold_since = Some(now);
        Ok(vec![event])
    }

    /// Resumes held work: every deadline moves by the time paused.
    pub fn resume(&mut self, by: By, note: String, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        let event = self.step(Move::Resume, EventType::Resumed, None, by, note, now)?;
        if let Some(since) = self.facts.times.on_hold_since.take() {
            self.facts.deadlines = self.facts.deadlines.shifted_by(now - since);
            self.facts.times.clocks_from += now - since;
        }
        self.stop_waiting(now);
        Ok(vec![event])
    }

    /// Ends a wait on an outside party: its time is counted apart.
    fn stop_waiting(&mut self, now: DateTime<Utc>) {
        if let Some(case) = &mut self.facts.case
            && let Some(waiting) = case.waiting.take()
        {
            case.waited_secs += (now - waiting.since).num_seconds().max(0);
        }
    }

    /// Adds a party to the ticket's case (opening the case with its first party).
    pub fn add_case_party(&mut self, party: Party, by: By, now: DateTime<Utc>) -> Vec<Recorded> {
        // Ids only: a resident party's name is personal data.
        let note = format!("{} joined the case as party {}", party.kind, party.id);
        self.facts.case.get_or_insert_with(Case::default).parties.push(party);
        self.touch(now);
        vec![self.remark(EventType::CaseUpdated, Some(Cause::Staff), by, note, now)]
    }

    /// Records a step of the case (it happened at `step.at`, not after now) with the parties
    /// of the case it involved, and what is to happen next.
    pub fn record_case_step(
        &mut self,
        step: CaseStep,
        next: Option<(String, Option<DateTime<Utc>>)>,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let case = self.facts.case.as_mut().ok_or(RuleViolation::NoCase)?;
        if step.at > now {
            return Err(CaseError::StepInFuture.into());
        }
        if let Some(unknown) = step.party_ids.iter().find(|id| case.party(id).is_none()) {
            return Err(CaseError::UnknownParty(unknown.clone()).into());
        }
        if let Some((_, Some(due))) = &next
            && *due <= now
        {
            return Err(CaseError::NextStepDueInPast.into());
        }
        if let Some((next_step, due)) = next {
            case.next_step = next_step;
            case.next_step_due = due;
        }
        self.touch(now);
        let mut event = self.remark(EventType::CaseStep, Some(Cause::Staff), by, step.what.clone(), now);
        event.step = Some(step);
        Ok(vec![event])
    }

    /// Refers the matter out to an outside party (police, 城管, the developer), who joins the
    /// case with the reference it gave; the owner chases its result by `party.chase_by`.
    pub fn refer_out(&mut self, party: Party, by: By, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        if !party.kind.is_outside() {
            return Err(CaseError::NotOutside(party.id).into());
        }
        let chase_ok =
            party.chase_by.is_some_and(|at| at > now && at <= now + chrono::TimeDelta::days(MAX_REVIEW_DAYS));
        if !chase_ok {
            return Err(CaseError::BadChaseDate.into());
        }
        let chase = party.chase_by.map(|at| at.to_rfc3339()).unwrap_or_default();
        let note =
            format!("referred to {} {} (reference {}); chase by {chase}", party.kind, party.name, party.reference);
        self.facts.case.get_or_insert_with(Case::default).parties.push(party);
        self.touch(now);
        Ok(vec![self.remark(EventType::ReferredOut, Some(Cause::Staff), by, note, now)])
    }

    /// Records what a party the matter was referred to answered: the resident is told.
    pub fn record_referral_result(
        &mut self,
        party_id: &str,
        result: String,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let case = self.facts.case.as_mut().ok_or(RuleViolation::NoCase)?;
        let awaiting = |p: &&mut Party| p.id == party_id && p.chase_by.is_some() && p.result.is_none();
        let Some(party) = case.parties.iter_mut().find(awaiting) else {
            return Err(CaseError::NotAwaitingResult(party_id.to_owned()).into());
        };
        party.result = Some(result.clone());
        self.touch(now);
        Ok(vec![self.remark(EventType::ReferralResult, Some(Cause::Staff), by, result, now)])
    }

    /// Waits on an outside party of the case: the work goes on hold (its clocks pause), for
    /// `reason`, until the owner reviews it by `review_by` (within 90 days).
    pub fn wait_on(
        &mut self,
        party_id: &str,
        reason: String,
        review_by: DateTime<Utc>,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let case = self.facts.case.as_ref().ok_or(RuleViolation::NoCase)?;
        let party = case.party(party_id).ok_or_else(|| CaseError::UnknownParty(party_id.to_owned()))?;
        if !party.kind.is_outside() {
            return Err(CaseError::NotOutside(party_id.to_owned()).into());
        }
        check_review(review_by, now)?;
        let note =
            format!("waiting on {} ({}): {reason}; review by {}", party.name, party.kind, review_by.to_rfc3339());
        let event =
            self.step(Move::PutOnHold, EventType::PutOnHold, Some(Cause::WaitingOnOutsideParty), by, note, now)?;
        self.facts.times.on_hold_since = Some(now);
        if let Some(case) = &mut self.facts.case {
            case.waiting = Some(Waiting { party_id: party_id.to_owned(), reason, review_by, since: now });
        }
        Ok(vec![event])
    }

    /// Resolves the work; the callback clock starts.
    pub fn resolve(
        &mut self,
        by: By,
        note: String,
        sla: &SlaPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        Ok(vec![self.resolve_as(by, note, Some(Cause::Staff), sla, now)?])
    }

    /// Resolves the work from the API: work resolved after its resolve deadline needs the
    /// cause of the delay (one of the policy's causes), kept for the monthly review.
    pub fn resolve_reporting_delay(
        &mut self,
        by: By,
        note: String,
        delay_cause: Option<String>,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let late = self.facts.deadlines.resolve_by.is_some_and(|due| due < now);
        match &delay_cause {
            None if late => return Err(RuleViolation::DelayCauseRequired),
            Some(cause) if !policy.review_causes.contains(cause) => {
                return Err(RuleViolation::UnknownCause { field: "delay_cause", cause: cause.clone() });
            }
            _ => {}
        }
        let events = self.resolve(by, note, &policy.sla, now)?;
        if delay_cause.is_some() {
            self.facts.delay_cause = delay_cause;
        }
        Ok(events)
    }

    /// Resolves a report with its group incident. `Ok(None)`: the report keeps its own
    /// course (already resolved, on hold or cancelled).
    pub fn resolve_with_incident(
        &mut self,
        incident_id: &str,
        by: By,
        sla: &SlaPolicy,
        now: DateTime<Utc>,
    ) -> Option<Vec<Recorded>> {
        self.facts.lifecycle.apply(Move::Resolve).ok()?;
        let note = format!("resolved with incident {incident_id}");
        self.resolve_as(by, note, Some(Cause::IncidentResolved), sla, now).ok().map(|event| vec![event])
    }

    fn resolve_as(
        &mut self,
        by: By,
        note: String,
        cause: Option<Cause>,
        sla: &SlaPolicy,
        now: DateTime<Utc>,
    ) -> Result<Recorded, TransitionError> {
        let event = self.step(Move::Resolve, EventType::Resolved, cause, by, note, now)?;
        self.facts.times.resolved_at = Some(now);
        self.facts.deadlines.callback_by = Some(sla.callback_by(now));
        Ok(event)
    }

    pub fn close(&mut self, by: By, note: String, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        let event = self.step(Move::Close, EventType::Closed, Some(Cause::Staff), by, note, now)?;
        self.facts.times.closed_at = Some(now);
        Ok(vec![event])
    }

    pub fn cancel(&mut self, by: By, note: String, now: DateTime<Utc>) -> Result<Vec<Recorded>, RuleViolation> {
        let event = self.step(Move::Cancel, EventType::Cancelled, None, by, note, now)?;
        self.stop_waiting(now);
        Ok(vec![event])
    }

    /// Reopens resolved or closed work by hand: new work, its clocks start again.
    pub fn reopen(
        &mut self,
        by: By,
        note: String,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let mut event = self.step(Move::Reopen, EventType::Reopened, Some(Cause::Staff), by, note, now)?;
        // A duplicate reopened by hand is its own work again (it was not the same fault).
        if let Some(original) = self.facts.duplicate_of.take() {
            event.changes = vec![FieldChange::new("duplicate_of_id", original, "")];
        }
        self.restart_clocks(policy, now);
        Ok(vec![event])
    }

    /// A reopened ticket is new work: its clocks start again from now in a new cycle (the
    /// escalation ladder starts over), and its milestones are cleared.
    fn restart_clocks(&mut self, policy: &Policy, now: DateTime<Utc>) {
        let facts = &mut self.facts;
        facts.deadlines = policy.deadlines(facts.priority, facts.kind, &facts.property_id, now);
        facts.times.clocks_from = now;
        facts.clock_cycle += 1;
        facts.times.accepted_at = None;
        facts.times.on_site_at = None;
        facts.times.resolved_at = None;
        facts.times.closed_at = None;
    }

    /// Hands the work to another department, which assigns its own person.
    pub fn transfer(
        &mut self,
        to: Department,
        by: By,
        note: String,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        if self.facts.department == Some(to) {
            return Err(RuleViolation::SameDepartment(to));
        }
        let event = self.step(Move::Transfer, EventType::Transferred, None, by, note, now)?;
        self.facts.department = Some(to);
        self.facts.assignee_id = None;
        Ok(vec![event])
    }

    /// The callback (回访): a satisfied resident closes the ticket; an unsatisfied one
    /// reopens it for rework, with its clocks started again.
    pub fn record_callback(
        &mut self,
        satisfaction: Satisfaction,
        comment: String,
        by: By,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let rework = satisfaction.requires_rework();
        let recorded = self.remark(
            EventType::CallbackRecorded,
            None,
            by.clone(),
            format!("{}: {comment}", satisfaction.code()),
            now,
        );
        let mut reviewed = Vec::new();
        let outcome = if rework {
            let note = "unsatisfied callback: sent back for rework".to_owned();
            let mv = Move::RecordCallback { requires_rework: true };
            let event = self.step(mv, EventType::Reopened, Some(Cause::CallbackUnsatisfied), by.clone(), note, now)?;
            self.restart_clocks(policy, now);
            self.facts.unsatisfied_callbacks += 1;
            if self.facts.unsatisfied_callbacks >= 2 {
                reviewed = self.open_review(ReviewTrigger::RepeatedUnsatisfied, by.clone(), now);
            }
            event
        } else {
            let mv = Move::RecordCallback { requires_rework: false };
            let event =
                self.step(mv, EventType::Closed, Some(Cause::CallbackSatisfied), by.clone(), String::new(), now)?;
            self.facts.times.closed_at = Some(now);
            event
        };
        self.facts.callback =
            Some(CallbackRecord { satisfaction, comment, recorded_by: by.id().to_owned(), recorded_at: now });
        let mut events = vec![recorded, outcome];
        events.extend(reviewed);
        Ok(events)
    }

    /// Opens a serious-complaint review, unless one is open already.
    fn open_review(&mut self, trigger: ReviewTrigger, by: By, now: DateTime<Utc>) -> Vec<Recorded> {
        if self.facts.review.as_ref().is_some_and(Review::is_open) {
            return Vec::new();
        }
        self.facts.review = Some(Review::open(trigger, now));
        self.touch(now);
        vec![self.remark(EventType::ReviewOpened, None, by, format!("review opened: {trigger}"), now)]
    }

    /// The manager completes the open review with its cause (one of `causes`) and the
    /// corrective action.
    pub fn complete_review(
        &mut self,
        cause: String,
        action: String,
        causes: &[String],
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        if !causes.contains(&cause) {
            return Err(RuleViolation::UnknownCause { field: "cause", cause });
        }
        let reviewer = by.id().to_owned();
        let Some(review) = self.facts.review.as_mut().filter(|r| r.is_open()) else {
            return Err(RuleViolation::NoOpenReview);
        };
        review.cause = Some(cause.clone());
        review.action = Some(action.clone());
        review.reviewer = Some(reviewer);
        review.completed_at = Some(now);
        self.touch(now);
        let note = format!("review completed: {cause}; action: {action}");
        Ok(vec![self.remark(EventType::ReviewCompleted, Some(Cause::Staff), by, note, now)])
    }

    /// Adds a file (already stored) to the ticket, in any state: evidence may come after
    /// the work is closed. `attached` is how many files the ticket has; at most
    /// `max_per_ticket`. The file is recorded as this ticket's, of its property.
    pub fn attach(
        &mut self,
        mut attachment: Attachment,
        attached: u32,
        max_per_ticket: u32,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        if attached >= max_per_ticket {
            return Err(RuleViolation::TooManyAttachments { max: max_per_ticket });
        }
        attachment.ticket_id = self.facts.id.clone();
        attachment.property_id = self.facts.property_id.clone();
        self.touch(now);
        let mut event = self.remark(EventType::AttachmentAdded, None, by, attachment.note(), now);
        event.attachment = Some(Box::new(attachment));
        Ok(vec![event])
    }

    pub fn add_note(&mut self, by: By, note: String, now: DateTime<Utc>) -> Vec<Recorded> {
        self.touch(now);
        vec![self.remark(EventType::NoteAdded, None, by, note, now)]
    }

    /// Erases a resident's personal data from this ticket on their request: the reporter's
    /// name and phone, and the name and contact of the resident's entries among the case's
    /// parties. The ticket, its notes and its figures stay; the reason is recorded.
    pub fn erase_personal_data(
        &mut self,
        resident_id: &str,
        by: By,
        reason: String,
        now: DateTime<Utc>,
    ) -> Vec<Recorded> {
        self.facts.reporter = Reporter::default();
        if let Some(case) = &mut self.facts.case {
            for party in case.parties.iter_mut().filter(|p| p.resident_id.as_deref() == Some(resident_id)) {
                party.name.clear();
                party.contact.clear();
            }
        }
        self.touch(now);
        vec![self.remark(EventType::PersonalDataErased, None, by, reason, now)]
    }

    /// A follow-up (a reply in the channel of origin, a callback) done or opened.
    pub fn record_follow_up(&mut self, by: By, note: String, now: DateTime<Utc>) -> Vec<Recorded> {
        self.touch(now);
        vec![self.remark(EventType::FollowUp, None, by, note, now)]
    }

    /// Raises the escalation level (never lowers it) and records why.
    pub fn escalate(&mut self, level: i32, cause: Cause, by: By, note: String, now: DateTime<Utc>) -> Vec<Recorded> {
        if level > self.facts.escalation_level {
            self.facts.escalation_level = level;
            self.touch(now);
        }
        let mut events = vec![self.remark(EventType::Escalated, Some(cause), by.clone(), note, now)];
        // A complaint the manager must see is a serious one: it is reviewed.
        if level >= 2 && self.facts.kind == TicketKind::Complaint {
            events.extend(self.open_review(ReviewTrigger::ManagerEscalation, by, now));
        }
        events
    }

    /// Corrects what was logged: each change is recorded with its value before and after
    /// (the description only grows: the resident's first words stay). A new category or
    /// added words may make the ticket more urgent (never less: only an explicit priority
    /// lowers it); a changed priority re-plans the running clocks from where they count; a
    /// category of another department hands routed work over to it, or re-aims a ticket
    /// waiting to be routed.
    pub fn correct(
        &mut self,
        correction: Correction,
        reason: String,
        by: By,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let state = self.facts.lifecycle.state;
        if matches!(state, TicketState::Closed | TicketState::Cancelled) {
            return Err(RuleViolation::Finished(state));
        }
        let mut changes = Vec::new();
        let facts = &mut self.facts;
        let mut urgent_text = String::new();
        let mut category_default = None;
        if let Some((code, default_priority)) = correction.category
            && code != facts.category
        {
            changes.push(FieldChange::new("category", facts.category.as_str(), code.as_str()));
            facts.category = code;
            category_default = Some(default_priority);
        }
        if let Some(unit) = correction.unit {
            let label = |place: &Option<UnitPlace>| place.as_ref().map(|p| p.label.clone()).unwrap_or_default();
            let before = facts.unit_label.clone().unwrap_or_default();
            if unit.as_ref().map(|p| &p.unit_id) != facts.unit_id.as_ref() {
                changes.push(FieldChange::new("unit_id", before, label(&unit)));
                (facts.unit_id, facts.building_id, facts.unit_label) = match unit {
                    Some(place) => (Some(place.unit_id), Some(place.building_id), Some(place.label)),
                    None => (None, None, None),
                };
            }
        }
        if let Some(location) = correction.location
            && location != facts.location
        {
            changes.push(FieldChange::new("location", facts.location.as_str(), location.as_str()));
            facts.location = location;
        }
        if facts.unit_id.is_none() && facts.location.trim().is_empty() {
            return Err(RuleViolation::LocationRequired);
        }
        if let Some(title) = correction.title
            && title != facts.title
        {
            urgent_text.push_str(&title);
            changes.push(FieldChange::new("title", facts.title.as_str(), title.as_str()));
            facts.title = title;
        }
        if let Some(words) = correction.description_addendum.filter(|w| !w.trim().is_empty()) {
            urgent_text.push('\n');
            urgent_text.push_str(&words);
            changes.push(FieldChange::new("description_addendum", "", words.as_str()));
            facts.description = format!("{}\n{words}", facts.description);
        }
        if let Some(promised) = correction.promised_reply_at
            && promised != facts.promised_reply_at
        {
            // The resident was given a time: moving it needs a reason they can be told.
            if facts.promised_reply_at.is_some() && reason.trim().is_empty() {
                return Err(RuleViolation::PromiseMovedWithoutReason);
            }
            let text = |at: Option<DateTime<Utc>>| at.map(|at| at.to_rfc3339()).unwrap_or_default();
            changes.push(FieldChange::new("promised_reply_at", text(facts.promised_reply_at), text(promised)));
            facts.promised_reply_at = promised;
            // A new promise is owed a new reply.
            facts.times.replied_at = None;
        }
        // The asked priority, else the current one raised by the new category's default
        // or by urgent words among the new text.
        let priority = match correction.priority {
            Some(asked) => asked,
            None => {
                let base = category_default.map_or(facts.priority, |d| d.most_urgent(facts.priority));
                let decided = policy.urgency_for(&facts.property_id).decide(base, Some(base), &urgent_text);
                if let Some(raised) = decided.raised_by {
                    facts.urgency_rule = Some(raised.rule);
                }
                decided.priority
            }
        };
        if priority != facts.priority {
            changes.push(FieldChange::new("priority", facts.priority.code(), priority.code()));
            facts.priority = priority;
            let planned = policy.deadlines(priority, facts.kind, &facts.property_id, facts.times.clocks_from);
            // Only the clocks of this cycle: the callback's runs from the resolution.
            facts.deadlines = Deadlines { callback_by: facts.deadlines.callback_by, ..planned };
            if let Some(since) = facts.times.on_hold_since {
                facts.deadlines = facts.deadlines.shifted_by(now - since);
            }
        }
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let note = if reason.trim().is_empty() {
            changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>().join(", ") + " corrected"
        } else {
            reason
        };
        self.touch(now);
        let mut corrected = self.remark(EventType::Updated, Some(Cause::Staff), by.clone(), note.clone(), now);
        corrected.changes = changes;
        let rerouted = corrected.changes.iter().any(|c| c.field == "category" || c.field == "unit_id");
        let mut events = vec![corrected];
        if rerouted && let Some(department) = self.corrected_department(policy) {
            match state {
                // Routed work goes to the right department (on hold: resume it first).
                TicketState::Dispatched | TicketState::Accepted | TicketState::OnSite | TicketState::OnHold => {
                    let handed_over = format!("handed to {department} after a correction: {note}");
                    events.extend(self.transfer(department, by, handed_over, now)?);
                }
                // Waiting for dispatch: a transfer names its department; new and reopened
                // tickets are routed by their category when dispatch takes them.
                TicketState::Transferred => self.facts.department = Some(department),
                _ => {}
            }
        }
        Ok(events)
    }

    /// The department the ticket's category and place route to, when it is not the one
    /// the ticket is with.
    fn corrected_department(&self, policy: &Policy) -> Option<Department> {
        let facts = &self.facts;
        let category = policy.categories.get(facts.category.as_str())?;
        let text = format!("{}\n{}", facts.title, facts.description);
        let department = policy.routing.route(category, &text, facts.unit_id.is_some());
        (facts.department != Some(department)).then_some(department)
    }

    /// Records what stands in for the service meanwhile (`None` or blank: nothing any
    /// more); the resident is told it with every notice. Any state but closed or cancelled.
    pub fn set_interim_measure(
        &mut self,
        measure: Option<String>,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let state = self.facts.lifecycle.state;
        if matches!(state, TicketState::Closed | TicketState::Cancelled) {
            return Err(RuleViolation::Finished(state));
        }
        let measure = measure.map(|m| m.trim().to_owned()).filter(|m| !m.is_empty());
        let before = self.facts.interim_measure.clone().unwrap_or_default();
        let after = measure.clone().unwrap_or_default();
        self.facts.interim_measure = measure;
        self.touch(now);
        let note = if after.is_empty() { "interim measure withdrawn".to_owned() } else { after.clone() };
        let mut event = self.remark(EventType::InterimMeasureSet, Some(Cause::Staff), by, note, now);
        event.changes = vec![FieldChange::new("interim_measure", before, after)];
        Ok(vec![event])
    }

    /// Answers the resident by `sent.method` with `text`, exactly as sent: a public reply
    /// (notes are internal). The method needs a way to reach them: a phone for a call or an
    /// app message, `postal_address` (the unit's) for a letter, either for a call or visit.
    pub fn reply(
        &mut self,
        sent: ReplySent,
        text: String,
        postal_address: Option<&str>,
        by: By,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let state = self.facts.lifecycle.state;
        if state == TicketState::Cancelled {
            return Err(RuleViolation::Finished(state));
        }
        let has_phone = !self.facts.reporter.phone.trim().is_empty();
        let has_address = postal_address.is_some_and(|address| !address.trim().is_empty());
        let reachable = match sent.method {
            ReplyMethod::PhoneCall | ReplyMethod::AppMessage => has_phone,
            ReplyMethod::Letter => has_address,
            ReplyMethod::CallOrVisit => has_phone || self.facts.unit_id.is_some(),
        };
        if !reachable {
            return Err(RuleViolation::NoContact(sent.method));
        }
        self.touch(now);
        self.facts.times.replied_at = Some(now);
        let mut event = self.remark(EventType::Replied, None, by, text, now);
        event.reply = Some(sent);
        Ok(vec![event])
    }

    /// Closes this report as a duplicate of `original`, an open ticket of the same property
    /// that carries the same work; the original's history records it. `has_duplicates`:
    /// other tickets are already duplicates of this one (they would be left without an
    /// original that ever resolves). Returns the events of this ticket and of the original.
    pub fn mark_duplicate(
        &mut self,
        original: &mut Ticket,
        has_duplicates: bool,
        by: By,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Recorded>, Vec<Recorded>), RuleViolation> {
        if original.id == self.facts.id {
            return Err(RuleViolation::DuplicateOfItself);
        }
        if original.property_id != self.facts.property_id {
            return Err(RuleViolation::OriginalOfAnotherProperty);
        }
        if let Some(first) = &original.duplicate_of {
            return Err(RuleViolation::OriginalIsDuplicate(first.clone()));
        }
        if self.is_incident() || original.is_incident() {
            return Err(RuleViolation::IncidentNotDuplicate);
        }
        let original_state = original.state();
        if matches!(original_state, TicketState::Resolved | TicketState::Closed | TicketState::Cancelled) {
            return Err(RuleViolation::OriginalFinished(original_state));
        }
        if let IncidentLink::LinkedTo(incident_id) = &self.facts.incident {
            return Err(RuleViolation::AlreadyLinked(incident_id.clone()));
        }
        if has_duplicates {
            return Err(RuleViolation::HasDuplicates);
        }
        let because = if reason.trim().is_empty() { String::new() } else { format!(": {reason}") };
        let note = format!("duplicate of ticket {}{because}", original.id);
        let closed =
            self.step(Move::CloseAsDuplicate, EventType::Closed, Some(Cause::Duplicate), by.clone(), note, now)?;
        self.facts.times.closed_at = Some(now);
        self.facts.duplicate_of = Some(original.id.clone());
        // The original changes version too: a resolve racing this mark is refused as stale,
        // so the duplicate's reporter is never missed when the follow-ups open.
        original.touch(now);
        let note = format!("ticket {} closed as a duplicate of this one{because}", self.facts.id);
        let added = original.remark(EventType::DuplicateAdded, Some(Cause::Duplicate), by, note, now);
        Ok((vec![closed], vec![added]))
    }

    /// The callback (回访) of a duplicate's reporter, on the original's work, once the
    /// original is resolved or closed and once per resolution. The duplicate stays closed;
    /// an unsatisfied verdict sends the original back for rework, as its own reporter's
    /// would. Returns the events of this ticket and of the original.
    pub fn record_duplicate_callback(
        &mut self,
        original: &mut Ticket,
        satisfaction: Satisfaction,
        comment: String,
        by: By,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Recorded>, Vec<Recorded>), RuleViolation> {
        if self.facts.duplicate_of.as_deref() != Some(original.id.as_str()) {
            return Err(RuleViolation::Transition(TransitionError {
                from: self.state(),
                to: None,
                verb: Move::RecordCallback { requires_rework: false }.verb(),
            }));
        }
        let original_state = original.state();
        let resolved_at = original.times.resolved_at;
        let done = matches!(original_state, TicketState::Resolved | TicketState::Closed);
        let already = self.facts.callback.as_ref().is_some_and(|c| resolved_at.is_some_and(|at| c.recorded_at >= at));
        if !done || already {
            return Err(RuleViolation::CallbackNotDue(original_state));
        }
        self.touch(now);
        // The callback was owed by the original's deadline: kept, so a late one shows.
        self.facts.deadlines.callback_by = original.deadlines.callback_by;
        let verdict = format!("{}: {comment}", satisfaction.code());
        let recorded = self.remark(EventType::CallbackRecorded, None, by.clone(), verdict, now);
        self.facts.callback =
            Some(CallbackRecord { satisfaction, comment, recorded_by: by.id().to_owned(), recorded_at: now });
        let mut original_events = Vec::new();
        if satisfaction.requires_rework() {
            let note = format!("unsatisfied callback of duplicate {}: sent back for rework", self.facts.id);
            let event =
                original.step(Move::Reopen, EventType::Reopened, Some(Cause::CallbackUnsatisfied), by, note, now)?;
            original.restart_clocks(policy, now);
            original_events.push(event);
        }
        Ok((vec![recorded], original_events))
    }

    /// 上报: a member of staff pushes the ticket up at once (1: the supervisor, 2: the
    /// manager), whatever its clocks say. The level only ever goes up, and a closed or
    /// cancelled ticket has nothing left to escalate.
    pub fn escalate_by_hand(
        &mut self,
        level: i32,
        by: By,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, RuleViolation> {
        let state = self.facts.lifecycle.state;
        if matches!(state, TicketState::Closed | TicketState::Cancelled) {
            return Err(RuleViolation::Finished(state));
        }
        if level <= self.facts.escalation_level {
            return Err(RuleViolation::NotHigherLevel { current: self.facts.escalation_level });
        }
        Ok(self.escalate(level, Cause::Staff, by, reason, now))
    }

    /// A reminder before a deadline: recorded, but the ticket is unchanged, so whoever is
    /// about to act on it is not refused for a stale version.
    pub fn remind(&self, by: By, note: String, now: DateTime<Utc>) -> Vec<Recorded> {
        vec![self.remark(EventType::Reminded, Some(Cause::DeadlineNear), by, note, now)]
    }
}

#[cfg(test)]
mod tests;
