//! Mapping between the gRPC messages and the domain and store (bus payloads are mapped in
//! propdesk-events). Proto types stop here: nothing below intake sees them.

use chrono::{DateTime, Utc};
use propdesk_domain::privacy::{mask_name, mask_phone, may_see_contact_details};
use propdesk_domain::{Actor, Channel, Department, Priority, Satisfaction, TicketKind, TicketState, Violations};
pub use propdesk_events::{UnknownWireValue, WireEnum, code_to_wire, event_to_wire, outbox_message, timestamp};
use propdesk_proto::v1 as pb;
use propdesk_store::entity::{follow_up, ticket};
use prost_types::Timestamp;

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
        is_incident: t.is_incident,
        // Filled by the caller from the follow-ups table (see `follow_up_to_wire`).
        follow_ups: Vec::new(),
    }
}

/// A follow-up task on the wire.
pub fn follow_up_to_wire(f: &follow_up::Model) -> pb::FollowUp {
    let kind = match f.kind.as_str() {
        "reply" => pb::FollowUpKind::Reply,
        "callback" => pb::FollowUpKind::Callback,
        _ => pb::FollowUpKind::Unspecified,
    };
    let method = match f.channel.as_str() {
        "letter" => pb::ReplyMethod::Letter,
        "app_message" => pb::ReplyMethod::AppMessage,
        "phone_call" => pb::ReplyMethod::PhoneCall,
        "call_or_visit" => pb::ReplyMethod::CallOrVisit,
        _ => pb::ReplyMethod::Unspecified,
    };
    let state = match f.state.as_str() {
        "open" => pb::FollowUpState::Open,
        "done" => pb::FollowUpState::Done,
        "cancelled" => pb::FollowUpState::Cancelled,
        _ => pb::FollowUpState::Unspecified,
    };
    pb::FollowUp {
        id: f.id.clone(),
        kind: kind as i32,
        method: method as i32,
        owner_id: text(&f.owner_id),
        due_by: optional_timestamp(f.due_by),
        destination: f.destination.clone(),
        state: state as i32,
        created_at: Some(timestamp(f.created_at)),
        done_at: optional_timestamp(f.done_at),
        done_by: text(&f.done_by),
        note: f.note.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
