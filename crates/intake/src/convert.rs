//! Mapping between the gRPC messages and the domain and store (bus payloads are mapped in
//! propdesk-events). Proto types stop here: nothing below intake sees them.

use chrono::{DateTime, Utc};
use propdesk_domain::case::Case;
use propdesk_domain::privacy::{mask_name, mask_phone, may_see_contact_details};
use propdesk_domain::{Actor, Ticket, Violations};
pub use propdesk_events::{
    UnknownWireValue, WireEnum, case_step_to_wire, code_to_wire, event_to_wire, timestamp, to_wire_or_unspecified,
};
use propdesk_proto::v1 as pb;
use propdesk_store::entity::follow_up;
use prost_types::Timestamp;

/// SHA-256 of `bytes`, lower-case hex (request fingerprints, attachment contents).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

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

/// A case as a viewer may see it (`clear`: they see contact details): a resident party's
/// name and contact masked otherwise; an organisation's are not personal data.
pub fn case_to_wire(case: &Case, clear: bool) -> pb::Case {
    let parties = case
        .parties
        .iter()
        .map(|p| {
            let shown = clear || p.kind.is_outside();
            pb::CaseParty {
                id: p.id.clone(),
                kind: p.kind.to_wire(),
                side: p.side.clone(),
                unit_id: text(&p.unit_id),
                resident_id: text(&p.resident_id),
                name: if shown { p.name.clone() } else { mask_name(&p.name) },
                contact: if shown { p.contact.clone() } else { mask_phone(&p.contact) },
                reference: p.reference.clone(),
                chase_by: optional_timestamp(p.chase_by),
                result: p.result.clone().unwrap_or_default(),
            }
        })
        .collect();
    pb::Case {
        parties,
        next_step: case.next_step.clone(),
        next_step_due: optional_timestamp(case.next_step_due),
        waiting: case.waiting.as_ref().map(|w| pb::CaseWaiting {
            party_id: w.party_id.clone(),
            reason: w.reason.clone(),
            review_by: Some(timestamp(w.review_by)),
            since: Some(timestamp(w.since)),
        }),
        waited_seconds: case.waited_secs,
        steps: Vec::new(),
    }
}

/// A ticket as `viewer` may see it: contact details masked unless their role needs them.
pub fn ticket_to_wire(t: &Ticket, viewer: &Actor) -> pb::Ticket {
    let is_assignee = t.assignee_id.as_deref() == Some(viewer.staff_id.as_str());
    let clear = may_see_contact_details(viewer.role, is_assignee);
    let callback = t.callback.as_ref().map(|c| pb::Callback {
        satisfaction: c.satisfaction.to_wire(),
        comment: c.comment.clone(),
        recorded_by: c.recorded_by.clone(),
        recorded_at: Some(timestamp(c.recorded_at)),
    });
    let reporter = &t.reporter;
    let times = &t.times;
    pb::Ticket {
        id: t.id.clone(),
        version: t.version,
        property_id: t.property_id.clone(),
        building_id: text(&t.building_id),
        unit_id: text(&t.unit_id),
        unit_label: text(&t.unit_label),
        location: t.location.clone(),
        resident_id: text(&t.resident_id),
        reporter_name: if clear { reporter.name.clone() } else { mask_name(&reporter.name) },
        reporter_phone: if clear { reporter.phone.clone() } else { mask_phone(&reporter.phone) },
        kind: t.kind.to_wire(),
        channel: t.channel.to_wire(),
        category: t.category.to_string(),
        department: to_wire_or_unspecified(t.department),
        priority: t.priority.to_wire(),
        state: t.state().to_wire(),
        title: t.title.clone(),
        description: t.description.clone(),
        first_contact_agent_id: t.first_contact_agent_id.clone(),
        assignee_id: text(&t.assignee_id),
        escalation_level: t.escalation_level,
        incident_id: t.incident_id().unwrap_or_default().to_owned(),
        repeat_fault: t.repeat_fault,
        duplicate_of_id: t.duplicate_of.clone().unwrap_or_default(),
        interim_measure: t.interim_measure.clone().unwrap_or_default(),
        urgency_rule: t.urgency_rule.clone().unwrap_or_default(),
        case: t.case.as_ref().map(|case| case_to_wire(case, clear)),
        review: t.review.as_ref().map(|r| pb::Review {
            trigger: r.trigger.code().to_owned(),
            opened_at: Some(timestamp(r.opened_at)),
            cause: r.cause.clone().unwrap_or_default(),
            action: r.action.clone().unwrap_or_default(),
            reviewer: r.reviewer.clone().unwrap_or_default(),
            completed_at: optional_timestamp(r.completed_at),
        }),
        delay_cause: t.delay_cause.clone().unwrap_or_default(),
        referred_by: t.referred_by.as_ref().map(|r| pb::Referrer {
            organisation: r.organisation.clone(),
            reference: r.reference.clone(),
            reply_method: r.reply_method.to_wire(),
            reply_to: r.reply_to.clone(),
        }),
        deadlines: Some(pb::Deadlines {
            acknowledge_by: optional_timestamp(t.deadlines.acknowledge_by),
            on_site_by: optional_timestamp(t.deadlines.on_site_by),
            resolve_by: optional_timestamp(t.deadlines.resolve_by),
            first_reply_by: optional_timestamp(t.deadlines.first_reply_by),
            callback_by: optional_timestamp(t.deadlines.callback_by),
        }),
        created_at: Some(timestamp(times.created_at)),
        updated_at: Some(timestamp(times.updated_at)),
        dispatched_at: optional_timestamp(times.dispatched_at),
        accepted_at: optional_timestamp(times.accepted_at),
        on_site_at: optional_timestamp(times.on_site_at),
        resolved_at: optional_timestamp(times.resolved_at),
        closed_at: optional_timestamp(times.closed_at),
        on_hold_since: optional_timestamp(times.on_hold_since),
        callback,
        promised_reply_at: optional_timestamp(t.promised_reply_at),
        is_incident: t.is_incident(),
        // Filled by the caller from the follow-ups table (see `follow_up_to_wire`).
        follow_ups: Vec::new(),
    }
}

/// A follow-up task on the wire.
pub fn follow_up_to_wire(f: &follow_up::Model) -> pb::FollowUp {
    pb::FollowUp {
        id: f.id.clone(),
        kind: to_wire_or_unspecified(f.kind()),
        method: to_wire_or_unspecified(f.method()),
        owner_id: text(&f.owner_id),
        due_by: optional_timestamp(f.due_by),
        destination: f.destination.clone(),
        state: to_wire_or_unspecified(f.state()),
        created_at: Some(timestamp(f.created_at)),
        done_at: optional_timestamp(f.done_at),
        done_by: text(&f.done_by),
        note: f.note.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use propdesk_domain::{Priority, TicketKind};

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
