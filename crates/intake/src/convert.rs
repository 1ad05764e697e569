//! Mapping between the wire (propdesk-proto) and the domain and store. Proto types stop
//! here: nothing below intake sees them.

use chrono::{DateTime, Utc};
use propdesk_domain::privacy::{mask_name, mask_phone, may_see_contact_details};
use propdesk_domain::{
    Actor, Channel, Department, EventType, Priority, Role, Satisfaction, TicketKind, TicketState, Violations,
};
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
    Closed, Reopened, NoteAdded, CallbackRecorded, Escalated
});

/// An enum field that must be set to a known value.
pub fn required_enum<T: WireEnum>(violations: &mut Violations, field: &str, value: i32) -> Option<T> {
    match T::from_wire(value) {
        Ok(Some(known)) => Some(known),
        Ok(None) => {
            violations.add(field, "is required");
            None
        }
        Err(UnknownWireValue(value)) => {
            violations.add(field, format!("{value} is not a known value"));
            None
        }
    }
}

/// An enum field where `_UNSPECIFIED` means "not given".
pub fn optional_enum<T: WireEnum>(violations: &mut Violations, field: &str, value: i32) -> Option<T> {
    match T::from_wire(value) {
        Ok(known) => known,
        Err(UnknownWireValue(value)) => {
            violations.add(field, format!("{value} is not a known value"));
            None
        }
    }
}

/// The wire number of a stored code (0 for an absent or unreadable one).
pub fn code_to_wire<T: WireEnum>(code: Option<&str>) -> i32 {
    code.and_then(|c| c.parse::<T>().ok()).map_or(0, T::to_wire)
}

pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

fn optional_timestamp(at: Option<DateTime<Utc>>) -> Option<Timestamp> {
    at.map(timestamp)
}

/// A timestamp from the wire, or a violation of `field`.
pub fn from_timestamp(violations: &mut Violations, field: &str, at: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    let at = at?;
    match DateTime::from_timestamp(at.seconds, at.nanos.try_into().unwrap_or(u32::MAX)) {
        Some(at) => Some(propdesk_store::stored_time(at)),
        None => {
            violations.add(field, "is not a valid time");
            None
        }
    }
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// A ticket as `viewer` may see it: contact details masked unless their role needs them.
pub fn ticket_to_wire(t: &ticket::Model, viewer: &Actor) -> pb::Ticket {
    let is_assignee = t.assignee_id.as_deref() == Some(viewer.staff_id.as_str());
    let clear = may_see_contact_details(viewer.role, is_assignee);
    let callback = t.callback_recorded_at.map(|recorded_at| pb::Callback {
        satisfaction: code_to_wire::<Satisfaction>(t.callback_satisfaction.as_deref()),
        comment: text(&t.callback_comment),
        recorded_by: text(&t.callback_recorded_by),
        recorded_at: Some(timestamp(recorded_at)),
    });
    pb::Ticket {
        id: t.id.clone(),
        version: t.version,
        property_id: t.property_id.clone(),
        building_id: text(&t.building_id),
        unit_id: text(&t.unit_id),
        unit_label: text(&t.unit_label),
        location: t.location.clone(),
        resident_id: text(&t.resident_id),
        reporter_name: if clear { t.reporter_name.clone() } else { mask_name(&t.reporter_name) },
        reporter_phone: if clear { t.reporter_phone.clone() } else { mask_phone(&t.reporter_phone) },
        kind: code_to_wire::<TicketKind>(Some(&t.kind)),
        channel: code_to_wire::<Channel>(Some(&t.channel)),
        category: t.category.clone(),
        department: code_to_wire::<Department>(t.department.as_deref()),
        priority: code_to_wire::<Priority>(Some(&t.priority)),
        state: code_to_wire::<TicketState>(Some(&t.state)),
        title: t.title.clone(),
        description: t.description.clone(),
        first_contact_agent_id: t.first_contact_agent_id.clone(),
        assignee_id: text(&t.assignee_id),
        escalation_level: t.escalation_level,
        incident_id: text(&t.incident_id),
        repeat_fault: t.repeat_fault,
        deadlines: Some(pb::Deadlines {
            acknowledge_by: optional_timestamp(t.acknowledge_by),
            on_site_by: optional_timestamp(t.on_site_by),
            resolve_by: optional_timestamp(t.resolve_by),
            first_reply_by: optional_timestamp(t.first_reply_by),
            callback_by: optional_timestamp(t.callback_by),
        }),
        created_at: Some(timestamp(t.created_at)),
        updated_at: Some(timestamp(t.updated_at)),
        dispatched_at: optional_timestamp(t.dispatched_at),
        accepted_at: optional_timestamp(t.accepted_at),
        on_site_at: optional_timestamp(t.on_site_at),
        resolved_at: optional_timestamp(t.resolved_at),
        closed_at: optional_timestamp(t.closed_at),
        on_hold_since: optional_timestamp(t.on_hold_since),
        callback,
        promised_reply_at: optional_timestamp(t.promised_reply_at),
    }
}

/// A stored history event on the wire (history, watch stream and bus payload alike).
pub fn event_to_wire(e: &ticket_event::Model) -> pb::TicketEvent {
    pb::TicketEvent {
        event_id: e.event_id.clone(),
        cursor: e.id.to_string(),
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

/// The bus message for a stored event: routing key `ticket.<type>`, and for dispatches
/// `ticket.dispatched.<department>` so each department's consumers bind to their own.
pub fn outbox_message(_ticket: &ticket::Model, e: &ticket_event::Model) -> OutboxMessage {
    let routing_key = match (e.event_type.as_str(), e.department.as_deref()) {
        ("dispatched", Some(department)) => format!("ticket.dispatched.{department}"),
        (event_type, _) => format!("ticket.{event_type}"),
    };
    OutboxMessage { message_id: e.event_id.clone(), routing_key, payload: event_to_wire(e).encode_to_vec() }
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

    #[test]
    fn enum_violations_name_the_field() {
        let mut violations = Violations::new();
        assert_eq!(required_enum::<TicketKind>(&mut violations, "kind", 0), None);
        assert_eq!(optional_enum::<Priority>(&mut violations, "priority", 42), None);
        assert_eq!(optional_enum::<Priority>(&mut violations, "priority", 0), None);
        let got: Vec<_> = violations.0.iter().map(|v| (v.field.as_str(), v.description.as_str())).collect();
        assert_eq!(got, [("kind", "is required"), ("priority", "42 is not a known value")]);
    }
}
