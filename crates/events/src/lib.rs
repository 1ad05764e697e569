//! The bus wire format: what travels between processes. Ticket events (also the history
//! and WatchTickets items) and alerts are protobuf messages of `propdesk.v1`; this crate
//! maps stored rows and domain values to them, and names their routing keys.
//!
//! Invariant: the only place that decides a routing key or encodes a bus payload.

use chrono::{DateTime, Utc};
use propdesk_domain::{Channel, Department, EventType, Priority, Role, Satisfaction, TicketKind, TicketState};
use propdesk_proto::v1 as pb;
use propdesk_store::OutboxMessage;
use propdesk_store::entity::{ticket, ticket_event};
use prost::Message as _;
use prost_types::Timestamp;

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
    Closed, Reopened, NoteAdded, CallbackRecorded, Escalated, Reminded, FollowUp
});

/// The wire number of a stored code (0 for an absent or unreadable one).
pub fn code_to_wire<T: WireEnum>(code: Option<&str>) -> i32 {
    code.and_then(|c| c.parse::<T>().ok()).map_or(0, T::to_wire)
}

/// A time on the wire.
pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// A stored history event on the wire (history, watch stream and bus payload alike).
pub fn event_to_wire(e: &ticket_event::Model) -> pb::TicketEvent {
    pb::TicketEvent {
        event_id: e.event_id.clone(),
        cursor: propdesk_store::EventCursor::of(e).to_string(),
        ticket_id: e.ticket_id.clone(),
        r#type: code_to_wire::<EventType>(Some(&e.event_type)),
        actor_id: e.actor_id.clone(),
        actor_role: code_to_wire::<Role>(e.actor_role.as_deref()),
        from_state: code_to_wire::<TicketState>(e.from_state.as_deref()),
        to_state: code_to_wire::<TicketState>(Some(&e.to_state)),
        note: e.note.clone(),
        occurred_at: Some(timestamp(e.occurred_at)),
        ticket_version: e.ticket_version,
        property_id: e.property_id.clone(),
        department: code_to_wire::<Department>(e.department.as_deref()),
        assignee_id: text(&e.assignee_id),
        priority: code_to_wire::<Priority>(Some(&e.priority)),
    }
}

/// The trace of the work writing a message: its span is the message's parent.
fn current_trace() -> Option<String> {
    propdesk_trace::TraceParent::current().map(|trace| trace.to_string())
}

/// The bus message for a stored event: routing key `ticket.<type>`, and for dispatches
/// `ticket.dispatched.<department>` so each department's consumers bind to their own.
pub fn outbox_message(_ticket: &ticket::Model, e: &ticket_event::Model) -> OutboxMessage {
    let routing_key = match (e.event_type.as_str(), e.department.as_deref()) {
        ("dispatched", Some(department)) => format!("ticket.dispatched.{department}"),
        (event_type, _) => format!("ticket.{event_type}"),
    };
    OutboxMessage {
        message_id: e.event_id.clone(),
        routing_key,
        payload: event_to_wire(e).encode_to_vec(),
        trace_parent: current_trace(),
    }
}

/// An alert for a person, as a bus message (`alert.<kind>`, or `incident.opened`).
pub struct NewAlert<'a> {
    pub kind: pb::AlertKind,
    pub ticket: &'a ticket::Model,
    pub department: Option<Department>,
    pub recipient_id: Option<String>,
    pub message: String,
    pub raised_at: DateTime<Utc>,
}

pub fn alert_message(alert: NewAlert<'_>) -> OutboxMessage {
    let alert_id = uuid::Uuid::now_v7().to_string();
    let routing_key = match alert.kind {
        pb::AlertKind::IncidentOpened => "incident.opened".to_owned(),
        pb::AlertKind::NoOneOnDuty => "alert.no_one_on_duty".to_owned(),
        pb::AlertKind::RepeatFault => "alert.repeat_fault".to_owned(),
        pb::AlertKind::Unspecified => "alert.unspecified".to_owned(),
    };
    let payload = pb::Alert {
        alert_id: alert_id.clone(),
        kind: alert.kind as i32,
        ticket_id: alert.ticket.id.clone(),
        property_id: alert.ticket.property_id.clone(),
        department: alert.department.map_or(0, WireEnum::to_wire),
        recipient_id: alert.recipient_id.unwrap_or_default(),
        message: alert.message,
        raised_at: Some(timestamp(alert.raised_at)),
    };
    OutboxMessage { message_id: alert_id, routing_key, payload: payload.encode_to_vec(), trace_parent: current_trace() }
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
        assert_eq!(Priority::from_wire(0), Ok(None));
        assert_eq!(Priority::from_wire(99), Err(UnknownWireValue(99)));
    }
}
