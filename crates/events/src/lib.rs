//! The bus wire format: what travels between processes. Ticket events (also the history
//! and WatchTickets items) and alerts are protobuf messages of `propdesk.v1`; this crate
//! maps domain values to them and decides their routing keys.
//!
//! Invariants: the only place that decides a routing key or encodes a bus payload; it
//! knows no database (the store hands it history events as [`HistoryEvent`]s).

use chrono::{DateTime, Utc};
use propdesk_domain::case::{CaseStep, PartyKind};
use propdesk_domain::follow_up::{FollowUpKind, FollowUpState, ReplyMethod};
use propdesk_domain::replies::ReplySent;
use propdesk_domain::{
    Cause, Channel, Department, EventType, FieldChange, Priority, Role, Satisfaction, TicketKind, TicketState,
};
use propdesk_proto::v1 as pb;
use prost::Message as _;
use prost_types::Timestamp;

pub mod routing;

/// A number the proto enum does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownWireValue(pub i32);

/// A domain enum with a proto twin whose variants carry the same names.
pub trait WireEnum: Sized + Copy + std::str::FromStr {
    fn to_wire(self) -> i32;
    /// `Ok(None)` for `_UNSPECIFIED`.
    fn from_wire(value: i32) -> Result<Option<Self>, UnknownWireValue>;
}

macro_rules! wire_enum {
    ($domain:ident <=> $proto:ident { $($variant:ident),+ $(,)? }) => {
        impl WireEnum for $domain {
            fn to_wire(self) -> i32 {
                match self { $($domain::$variant => pb::$proto::$variant as i32),+ }
            }
            fn from_wire(value: i32) -> Result<Option<Self>, UnknownWireValue> {
                match pb::$proto::try_from(value).map_err(|_| UnknownWireValue(value))? {
                    pb::$proto::Unspecified => Ok(None),
                    $(pb::$proto::$variant => Ok(Some($domain::$variant)),)+
                }
            }
        }
    };
}

wire_enum!(TicketKind <=> TicketKind { Repair, Complaint, Enquiry, Suggestion, Assistance });
wire_enum!(Channel <=> Channel { WalkIn, Phone, Letter, App, HomeVisit, Referral });
wire_enum!(Department <=> Department { Engineering, Cleaning, Security, CustomerService });
wire_enum!(Priority <=> Priority { P1, P2, P3, P4 });
wire_enum!(TicketState <=> TicketState {
    New, Dispatched, Accepted, OnSite, OnHold, Transferred, Resolved, Closed, Cancelled, Reopened
});
wire_enum!(Role <=> StaffRole { Agent, Dispatcher, Technician, Supervisor, Manager, Admin });
wire_enum!(Satisfaction <=> Satisfaction { VeryUnsatisfied, Unsatisfied, Neutral, Satisfied, VerySatisfied });
wire_enum!(EventType <=> TicketEventType {
    Created, Dispatched, Accepted, ArrivedOnSite, PutOnHold, Resumed, Resolved, Transferred, Cancelled,
    Closed, Reopened, LinkedToIncident, NoteAdded, CallbackRecorded, Escalated, Reminded, FollowUp, Updated,
    DuplicateAdded, Replied, InterimMeasureSet, CaseUpdated, CaseStep, ReferredOut,
    ReferralResult, ReviewOpened, ReviewCompleted, AttachmentAdded, PersonalDataErased
});
wire_enum!(FollowUpKind <=> FollowUpKind { Reply, Callback, ReferrerReply, Chase });
wire_enum!(PartyKind <=> CasePartyKind {
    Resident, ResidentsCommittee, OwnersCommittee, Police, UrbanManagement, Developer, Other
});
wire_enum!(FollowUpState <=> FollowUpState { Open, Done, Cancelled });
wire_enum!(ReplyMethod <=> ReplyMethod { Letter, AppMessage, PhoneCall, CallOrVisit });
wire_enum!(Cause <=> EventCause {
    Staff, CallbackSatisfied, CallbackUnsatisfied, AnsweredOnTheSpot, IncidentResolved, DeadlineMissed, DeadlineNear,
    Duplicate, WaitingOnOutsideParty
});

/// The wire number of an optional domain value (0, `_UNSPECIFIED`, for none).
pub fn to_wire_or_unspecified<T: WireEnum>(value: Option<T>) -> i32 {
    value.map_or(0, T::to_wire)
}

/// The wire number of a stored code (0 for an absent or unreadable one).
pub fn code_to_wire<T: WireEnum>(code: Option<&str>) -> i32 {
    code.and_then(|c| c.parse::<T>().ok()).map_or(0, T::to_wire)
}

/// A time on the wire.
pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

/// A history event as kept: what a command recorded, with its id, its place in the event
/// order and the routing facts of the ticket right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    pub event_id: String,
    /// Position in the event order (see `WatchTicketsRequest.after_cursor`).
    pub cursor: String,
    pub ticket_id: String,
    pub event_type: EventType,
    pub cause: Option<Cause>,
    pub actor_id: String,
    pub actor_role: Option<Role>,
    pub from_state: Option<TicketState>,
    pub to_state: TicketState,
    pub note: String,
    pub occurred_at: DateTime<Utc>,
    pub ticket_version: i64,
    pub property_id: String,
    pub department: Option<Department>,
    pub assignee_id: Option<String>,
    pub priority: Priority,
    /// A correction's fields, before and after.
    pub changes: Vec<FieldChange>,
    /// How the resident was answered (a reply, an on-the-spot answer).
    pub reply: Option<ReplySent>,
    /// A step of the ticket's case.
    pub step: Option<CaseStep>,
    /// The file an ATTACHMENT_ADDED event added.
    pub attachment_id: Option<String>,
}

/// A history event on the wire (history, watch stream and bus payload alike).
pub fn event_to_wire(e: &HistoryEvent) -> pb::TicketEvent {
    pb::TicketEvent {
        event_id: e.event_id.clone(),
        cursor: e.cursor.clone(),
        ticket_id: e.ticket_id.clone(),
        r#type: e.event_type.to_wire(),
        actor_id: e.actor_id.clone(),
        actor_role: to_wire_or_unspecified(e.actor_role),
        from_state: to_wire_or_unspecified(e.from_state),
        to_state: e.to_state.to_wire(),
        note: e.note.clone(),
        occurred_at: Some(timestamp(e.occurred_at)),
        ticket_version: e.ticket_version,
        property_id: e.property_id.clone(),
        department: to_wire_or_unspecified(e.department),
        assignee_id: e.assignee_id.clone().unwrap_or_default(),
        priority: e.priority.to_wire(),
        cause: to_wire_or_unspecified(e.cause),
        changes: e
            .changes
            .iter()
            .map(|c| pb::FieldChange { field: c.field.clone(), before: c.before.clone(), after: c.after.clone() })
            .collect(),
        reply: e.reply.as_ref().map(|sent| pb::ResidentReply {
            method: sent.method.to_wire(),
            standard_reply_id: sent.standard.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
            standard_reply_version: sent.standard.as_ref().map_or(0, |s| s.version),
        }),
        case_step: e.step.as_ref().map(|step| case_step_to_wire(step, &e.actor_id)),
        attachment_id: e.attachment_id.clone().unwrap_or_default(),
    }
}

/// A case step on the wire.
pub fn case_step_to_wire(step: &CaseStep, recorded_by: &str) -> pb::CaseStep {
    pb::CaseStep {
        at: Some(timestamp(step.at)),
        what: step.what.clone(),
        party_ids: step.party_ids.clone(),
        outcome: step.outcome.clone(),
        recorded_by: recorded_by.to_owned(),
    }
}

/// A message for the bus, as the outbox keeps it until the broker confirms it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub message_id: String,
    pub routing_key: String,
    pub payload: Vec<u8>,
    /// The W3C `traceparent` the message travels under.
    pub trace_parent: Option<String>,
}

/// The trace of the work writing a message: its span is the message's parent.
pub fn current_trace() -> Option<String> {
    propdesk_trace::TraceParent::current().map(|trace| trace.to_string())
}

/// The bus message of a history event (its id is the message id).
pub fn event_message(e: &HistoryEvent) -> BusMessage {
    BusMessage {
        message_id: e.event_id.clone(),
        routing_key: routing::ticket_event(e.event_type, e.department),
        payload: event_to_wire(e).encode_to_vec(),
        trace_parent: current_trace(),
    }
}

/// An alert for a person about a ticket.
pub struct NewAlert<'a> {
    pub kind: pb::AlertKind,
    pub ticket_id: &'a str,
    pub property_id: &'a str,
    pub department: Option<Department>,
    pub recipient_id: Option<String>,
    pub message: String,
    pub raised_at: DateTime<Utc>,
}

/// An alert as a bus message (see [`routing::alert`]).
pub fn alert_message(alert: NewAlert<'_>) -> BusMessage {
    let alert_id = uuid::Uuid::now_v7().to_string();
    let payload = pb::Alert {
        alert_id: alert_id.clone(),
        kind: alert.kind as i32,
        ticket_id: alert.ticket_id.to_owned(),
        property_id: alert.property_id.to_owned(),
        department: to_wire_or_unspecified(alert.department),
        recipient_id: alert.recipient_id.unwrap_or_default(),
        message: alert.message,
        raised_at: Some(timestamp(alert.raised_at)),
    };
    BusMessage {
        message_id: alert_id,
        routing_key: routing::alert(alert.kind).to_owned(),
        payload: payload.encode_to_vec(),
        trace_parent: current_trace(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_value_survives_the_wire() {
        for kind in TicketKind::ALL {
            assert_eq!(TicketKind::from_wire(kind.to_wire()), Ok(Some(*kind)));
        }
        for state in TicketState::ALL {
            assert_eq!(TicketState::from_wire(state.to_wire()), Ok(Some(*state)));
        }
        for event in EventType::ALL {
            assert_eq!(EventType::from_wire(event.to_wire()), Ok(Some(*event)));
        }
        for cause in Cause::ALL {
            assert_eq!(Cause::from_wire(cause.to_wire()), Ok(Some(*cause)));
        }
        assert_eq!(Priority::from_wire(0), Ok(None));
        assert_eq!(Priority::from_wire(99), Err(UnknownWireValue(99)));
    }

    #[test]
    fn a_history_event_carries_its_cause_and_routes_by_type_and_department() {
        let event = HistoryEvent {
            event_id: "e-1".into(),
            cursor: "7.3".into(),
            ticket_id: "t-1".into(),
            event_type: EventType::Reopened,
            cause: Some(Cause::CallbackUnsatisfied),
            actor_id: "a-1".into(),
            actor_role: Some(Role::Agent),
            from_state: Some(TicketState::Resolved),
            to_state: TicketState::Reopened,
            note: "rework".into(),
            occurred_at: DateTime::from_timestamp(1_800_000_000, 5_000).unwrap(),
            ticket_version: 4,
            property_id: "p-1".into(),
            department: Some(Department::Engineering),
            assignee_id: None,
            priority: Priority::P2,
            changes: vec![FieldChange { field: "category".into(), before: "plumbing".into(), after: "noise".into() }],
            reply: None,
            step: None,
            attachment_id: None,
        };
        let message = event_message(&event);
        assert_eq!((message.message_id.as_str(), message.routing_key.as_str()), ("e-1", "ticket.reopened"));
        let wire = pb::TicketEvent::decode(&message.payload[..]).unwrap();
        assert_eq!(wire.cause, pb::EventCause::CallbackUnsatisfied as i32);
        assert_eq!((wire.changes[0].field.as_str(), wire.changes[0].after.as_str()), ("category", "noise"));
        assert_eq!(wire.cursor, "7.3");
        assert_eq!(wire.occurred_at.unwrap().nanos, 5_000);
        let dispatched = HistoryEvent { event_type: EventType::Dispatched, cause: None, ..event };
        assert_eq!(event_message(&dispatched).routing_key, "ticket.dispatched.engineering");
        assert_eq!(pb::TicketEvent::decode(&event_message(&dispatched).payload[..]).unwrap().cause, 0);
    }
}
