//! A stored ticket seen through the ladder: which alarms it should have now.

use propdesk_domain::ladder::{self, Clock, ClockFacts, Progress, Recipient};
use propdesk_domain::{Policy, Priority, TicketState};
use propdesk_store::alarms::PlannedAlarm;
use propdesk_store::entity::ticket;

use crate::NotifierError;

pub fn priority(t: &ticket::Model) -> Result<Priority, NotifierError> {
    Ok(t.parse_code(&t.priority)?)
}

/// The alarms the ladder plans for `t` as it stands.
pub fn planned_alarms(policy: &Policy, t: &ticket::Model) -> Result<Vec<PlannedAlarm>, NotifierError> {
    let progress = Progress {
        state: t.parse_code::<TicketState>(&t.state)?,
        accepted: t.accepted_at.is_some(),
        on_site: t.on_site_at.is_some(),
        linked_to_incident: t.incident_id.is_some() && !t.is_incident,
        is_incident: t.is_incident,
        deadlines: t.deadlines(),
    };
    let facts = ClockFacts { priority: priority(t)?, is_incident: t.is_incident, running: ladder::running(&progress) };
    let alarms = ladder::plan(&policy.sla, &policy.escalation, policy.hours_for(&t.property_id), &facts);
    Ok(alarms
        .into_iter()
        .map(|alarm| PlannedAlarm {
            clock: alarm.clock.code().to_owned(),
            rung: alarm.rung.code().to_owned(),
            deadline_at: propdesk_store::stored_time(alarm.deadline),
            fire_at: propdesk_store::stored_time(alarm.fire_at),
            level: alarm.level,
            recipients: alarm.recipients.iter().map(|r| r.code()).collect::<Vec<_>>().join(","),
        })
        .collect())
}

pub fn recipients(codes: &str) -> Vec<Recipient> {
    codes.split(',').filter_map(|code| code.parse().ok()).collect()
}

pub fn clock(code: &str) -> Option<Clock> {
    code.parse().ok()
}
