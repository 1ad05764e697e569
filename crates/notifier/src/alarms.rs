//! Firing due alarms: one transaction per ticket, under the ticket's row lock, so two
//! notifier replicas never fire the same step twice; the ticket's alarms are brought up to
//! date first, so a clock met or moved a moment ago never fires.

use chrono::{DateTime, Utc};
use propdesk_domain::EventType;
use propdesk_domain::ladder::{self, Recipient, Rung};
use propdesk_events::outbox_message;
use propdesk_store::alarms::{self, AlarmPlan};
use propdesk_store::entity::{alarm, ticket};
use propdesk_store::work::try_lock_ticket;
use propdesk_store::work::{self, Transaction};
use propdesk_store::{NewEvent, Store};
use serde_json::json;

use crate::clocks::{clock, planned_alarms, priority, recipients};
use crate::notify::{Message, Notifications, addressees, notify};
use crate::{ACTOR, Notifier, NotifierError};

/// What firing a ticket's alarms did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fired {
    /// Alarms fired.
    pub count: usize,
    /// Another replica held the ticket: try again later.
    pub busy: bool,
}

pub(crate) fn system_event(event_type: EventType, state: &str, note: String, now: DateTime<Utc>) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: event_type.code().to_owned(),
        actor_id: ACTOR.to_owned(),
        actor_role: None,
        from_state: Some(state.to_owned()),
        to_state: state.to_owned(),
        note,
        occurred_at: now,
    }
}

/// Re-plans the alarms of the locked tickets; returns the earliest pending one.
pub(crate) async fn resync_all(
    notifier: &Notifier,
    txn: &Transaction,
    tickets: &[&ticket::Model],
) -> Result<Option<DateTime<Utc>>, NotifierError> {
    let planned = tickets.iter().map(|t| planned_alarms(&notifier.policy, t)).collect::<Result<Vec<_>, _>>()?;
    let plans: Vec<AlarmPlan> = tickets
        .iter()
        .zip(&planned)
        .map(|(t, planned)| AlarmPlan { ticket_id: &t.id, cycle: t.clock_cycle, planned })
        .collect();
    Ok(alarms::sync_alarms_of(txn, &plans).await?.into_iter().filter_map(|s| s.next_fire_at).min())
}

/// Fires the alarms of `ticket_id` due at `now`.
pub async fn fire_due(notifier: &Notifier, ticket_id: &str, now: DateTime<Utc>) -> Result<Fired, NotifierError> {
    let store: &Store = &notifier.store;
    let txn = store.begin_background().await?;
    let Some(ticket) = try_lock_ticket(&txn, ticket_id).await? else {
        return Ok(Fired { busy: true, ..Fired::default() });
    };
    resync_all(notifier, &txn, &[&ticket]).await?;
    let due = alarms::due_alarms_of(&txn, ticket_id, now).await?;
    if due.is_empty() {
        store.commit(txn).await?;
        return Ok(Fired::default());
    }
    let mut updated = ticket.clone();
    let mut events = Vec::new();
    let ids: Vec<i64> = due.iter().map(|a| a.id).collect();
    alarms::mark_fired(&txn, &ids, now).await?;
    let mut told = Notifications::default();
    for alarm in &due {
        let lateness = (now - alarm.fire_at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        metrics::histogram!("propdesk_escalation_lateness_seconds", "rung" => alarm.rung.clone()).record(lateness);
        metrics::counter!("propdesk_alarms_fired_total", "rung" => alarm.rung.clone()).increment(1);
        let (event_type, note) = announce(notifier, &txn, &mut told, &ticket, alarm, now).await?;
        updated.escalation_level = updated.escalation_level.max(alarm.level);
        events.push(system_event(event_type, &ticket.state, note, now));
    }
    // Reminders change nothing on the ticket: its version stays, so the person about to
    // act on it is not refused for a stale version.
    if updated.escalation_level != ticket.escalation_level {
        updated.version = ticket.version + 1;
        updated.updated_at = now;
        work::update_ticket(&txn, &updated, ticket.version).await?;
    }
    told.write(&txn).await?;
    work::append_events(&txn, &updated, events, &outbox_message).await?;
    store.commit(txn).await?;
    Ok(Fired { count: due.len(), busy: false })
}

/// Tells the alarm's recipients; returns the history event it writes.
async fn announce(
    notifier: &Notifier,
    txn: &Transaction,
    told: &mut Notifications,
    t: &ticket::Model,
    alarm: &alarm::Model,
    now: DateTime<Utc>,
) -> Result<(EventType, String), NotifierError> {
    let who = recipients(&alarm.recipients);
    let names: Vec<&str> = who.iter().map(|r| r.code()).collect();
    let deadline = alarm.deadline_at.format("%Y-%m-%d %H:%M:%S UTC");
    let rung: Option<Rung> = alarm.rung.parse().ok();
    let mut details = json!({
        "clock": alarm.clock,
        "rung": alarm.rung,
        "deadline": alarm.deadline_at,
        "escalation_level": alarm.level,
    });
    let (event_type, mut note) = match rung {
        Some(Rung::Reminder) => {
            (EventType::Reminded, format!("{} reminder: due {deadline}; told {}", alarm.clock, names.join(", ")))
        }
        _ => (
            EventType::Escalated,
            format!("{} {}: deadline {deadline} missed; told {}", alarm.clock, alarm.rung, names.join(", ")),
        ),
    };
    // 客户等待管理: at the breach the resident is told when to expect the work.
    if rung == Some(Rung::Breach) && who.contains(&Recipient::Resident) {
        let allowance =
            clock(&alarm.clock).and_then(|c| ladder::allowance_secs(&notifier.policy.sla, priority(t).ok()?, c));
        if let Some(allowance) = allowance {
            let expected = ladder::expected_after_breach(&notifier.policy.escalation, alarm.deadline_at, allowance);
            note.push_str(&format!("; resident told to expect it by {}", expected.format("%Y-%m-%d %H:%M:%S UTC")));
            details["expected_by"] = json!(expected);
        }
    }
    let subject = match rung {
        Some(Rung::Reminder) => "reminder".to_owned(),
        _ => format!("escalation.{}", alarm.rung),
    };
    let people = addressees(txn, t, &who).await?;
    let message = Message {
        subject: &subject,
        ticket_id: Some(&t.id),
        property_id: &t.property_id,
        text: note.clone(),
        occurred_at: now,
        details,
    };
    notify(told, &notifier.settings.webhooks, &people, &message, now)?;
    Ok((event_type, note))
}
