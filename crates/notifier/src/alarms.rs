//! Firing due alarms: one transaction per ticket, under the ticket's alarm key and row
//! lock, so two notifier replicas never fire the same step twice; the ticket's alarms are
//! brought up to date first, so a clock met or moved a moment ago never fires.

use chrono::{DateTime, Utc};
use propdesk_domain::follow_up::ReplyMethod;
use propdesk_domain::ladder::{self, Alarm, Recipient, Rung};
use propdesk_domain::replies::Notice;
use propdesk_domain::{By, Cause, Ticket};
use propdesk_store::Store;
use propdesk_store::alarms::{self, AlarmPlan};
use propdesk_store::tickets;
use propdesk_store::work::Transaction;
use propdesk_store::work::try_lock_ticket;
use serde_json::json;

use crate::clocks::planned_alarms;
use crate::notify::{Message, Notifications, addressees, notify};
use crate::residents::{Given, ToResident, notice_words, tell};
use crate::{ACTOR, Notifier, NotifierError};

/// What firing a ticket's alarms did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fired {
    /// Alarms fired.
    pub count: usize,
    /// Another replica held the ticket: try again later.
    pub busy: bool,
}

/// The notifier as the history names it.
pub(crate) fn system() -> By {
    By::System(ACTOR)
}

/// Re-plans the alarms of the locked tickets; returns the earliest pending one.
pub(crate) async fn resync_all(
    notifier: &Notifier,
    txn: &Transaction,
    tickets: &[&Ticket],
) -> Result<Option<DateTime<Utc>>, NotifierError> {
    let planned: Vec<Vec<Alarm>> = tickets.iter().map(|t| planned_alarms(&notifier.policy, t)).collect();
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
    alarms::hold_alarms_of(&txn, &[ticket_id]).await?;
    let Some(mut ticket) = try_lock_ticket(&txn, ticket_id).await? else {
        return Ok(Fired { busy: true, ..Fired::default() });
    };
    resync_all(notifier, &txn, &[&ticket]).await?;
    let due = alarms::due_alarms_of(&txn, ticket_id, now).await?;
    if due.is_empty() {
        store.commit(txn).await?;
        return Ok(Fired::default());
    }
    let ids: Vec<i64> = due.iter().map(|a| a.id).collect();
    alarms::mark_fired(&txn, &ids, now).await?;
    let mut told = Notifications::default();
    let mut events = Vec::new();
    for due in &due {
        let alarm = &due.alarm;
        let lateness = (now - alarm.fire_at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        metrics::histogram!("propdesk_escalation_lateness_seconds", "rung" => alarm.rung.code()).record(lateness);
        metrics::counter!("propdesk_alarms_fired_total", "rung" => alarm.rung.code()).increment(1);
        let note = announce(notifier, &txn, &mut told, &ticket, alarm, now).await?;
        // A reminder changes nothing on the ticket: its version stays, so the person about
        // to act on it is not refused for a stale version.
        events.extend(match alarm.rung {
            Rung::Reminder => ticket.remind(system(), note, now),
            Rung::Breach | Rung::Overdue => ticket.escalate(alarm.level, Cause::DeadlineMissed, system(), note, now),
        });
    }
    told.write(&txn).await?;
    tickets::save(&txn, ticket, &events).await?;
    store.commit(txn).await?;
    Ok(Fired { count: due.len(), busy: false })
}

/// Tells the alarm's recipients; returns the note of the history event it writes.
async fn announce(
    notifier: &Notifier,
    txn: &Transaction,
    told: &mut Notifications,
    t: &Ticket,
    alarm: &Alarm,
    now: DateTime<Utc>,
) -> Result<String, NotifierError> {
    let names: Vec<&str> = alarm.recipients.iter().map(|r| r.code()).collect();
    let deadline = alarm.deadline.format("%Y-%m-%d %H:%M:%S UTC");
    let mut details = json!({
        "clock": alarm.clock,
        "rung": alarm.rung,
        "deadline": alarm.deadline,
        "escalation_level": alarm.level,
    });
    let mut note = match alarm.rung {
        Rung::Reminder => format!("{} reminder: due {deadline}; told {}", alarm.clock, names.join(", ")),
        Rung::Breach | Rung::Overdue => {
            format!("{} {}: deadline {deadline} missed; told {}", alarm.clock, alarm.rung, names.join(", "))
        }
    };
    // 客户等待管理: at the breach the resident is told, in their words and local time,
    // when to expect the work and what stands in for it meanwhile.
    if alarm.rung == Rung::Breach
        && alarm.recipients.contains(&Recipient::Resident)
        && let Some(allowance) = ladder::allowance_secs(&notifier.policy.sla, t.priority, alarm.clock)
    {
        let expected = ladder::expected_after_breach(&notifier.policy.escalation, alarm.deadline, allowance);
        let given = Given { expected: Some(expected), ..Given::default() };
        let (text, source) = notice_words(notifier, txn, t, Notice::Breach, given).await?;
        note.push_str(&format!("; resident told: {text}"));
        details["expected_by"] = json!(expected);
        let method = ReplyMethod::for_channel(t.channel);
        tell(notifier, told, t, ToResident { subject: "resident.breach", text, method, source }, now)?;
    }
    let subject = match alarm.rung {
        Rung::Reminder => "reminder".to_owned(),
        rung => format!("escalation.{rung}"),
    };
    let staff: Vec<Recipient> = alarm.recipients.iter().copied().filter(|r| *r != Recipient::Resident).collect();
    let people = addressees(txn, t, &staff).await?;
    let message = Message {
        subject: &subject,
        ticket_id: Some(&t.id),
        property_id: &t.property_id,
        text: note.clone(),
        occurred_at: now,
        details,
        resident: None,
    };
    notify(told, &notifier.settings.webhooks, &people, &message, now)?;
    Ok(note)
}
