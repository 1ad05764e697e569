//! What the notifier does with each ticket event and alert from the bus: keep the ticket's
//! alarms in step, open and settle follow-ups, tell the first-contact owner of important
//! changes. A message's effects and its inbox record commit together; a busy notifier
//! commits a batch of messages at once.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use propdesk_bus::{Delivery, WorkerRole};
use propdesk_domain::follow_up::{FollowUpKind, FollowUpState, ReplyMethod};
use propdesk_domain::ladder::{self, Recipient};
use propdesk_domain::replies::{Notice, StandardReplyRef};
use propdesk_domain::{Cause, EventType, Ticket};
use propdesk_events::WireEnum;
use propdesk_proto::v1 as pb;
use propdesk_store::alarms;
use propdesk_store::follow_ups::{self, NewFollowUp, Settled};
use propdesk_store::tickets;
use propdesk_store::work::{self, Transaction};
use serde_json::json;

use crate::alarms::{resync_all, system};
use crate::notify::{Addressee, Message, Notifications, addressees, notify};
use crate::residents::{self, Given, ToResident};
use crate::{CONSUMER, Notifier, NotifierError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    AlreadyApplied,
    /// A message that changes no clock and no follow-up (a note, the notifier's own steps).
    NothingToDo,
    Applied,
}

/// A decoded bus message.
#[derive(Debug, Clone)]
pub enum Job {
    Event(Box<pb::TicketEvent>),
    Alert(pb::Alert),
}

impl Job {
    /// Events of the notifier's own steps, notes and attached files change nothing it keeps.
    /// (An escalation staff asked for is not the notifier's own: its people must hear of it.)
    fn needs_work(&self) -> bool {
        match self {
            Job::Event(event) => {
                let said = Said::of(event);
                match said.event_type {
                    Some(
                        EventType::Reminded
                        | EventType::NoteAdded
                        | EventType::FollowUp
                        | EventType::AttachmentAdded
                        | EventType::PersonalDataErased,
                    ) => false,
                    Some(EventType::Escalated) => said.cause == Some(Cause::Staff),
                    _ => true,
                }
            }
            Job::Alert(_) => true,
        }
    }
}

/// What a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// One per message, in order.
    pub outcomes: Vec<Outcome>,
    /// The earliest pending alarm of the tickets it touched.
    pub next_alarm_at: Option<DateTime<Utc>>,
}

/// Applies several messages exactly once, in one transaction: one commit for the lot (the
/// consumer-side group commit). The tickets' alarms are held, not their rows (dispatch is
/// working on the same new tickets; only a ticket the notifier itself changes is locked);
/// each ticket's alarms are re-planned once, from the ticket as its last message left it.
/// Any failure fails them all (the caller then applies them one by one). Each message runs
/// in its own trace.
pub async fn apply_batch(notifier: &Notifier, messages: &[(&Delivery, &Job)]) -> Result<Applied, NotifierError> {
    let mut outcomes = vec![Outcome::NothingToDo; messages.len()];
    let wanted: Vec<&str> = messages
        .iter()
        .filter(|(_, job)| job.needs_work())
        .map(|(delivery, _)| delivery.envelope.message_id.as_str())
        .collect();
    if wanted.is_empty() {
        return Ok(Applied { outcomes, next_alarm_at: None });
    }
    let store = &notifier.store;
    let now = propdesk_store::now();
    let txn = store.begin_background().await?;
    let mut claimed = work::inbox_claim(&txn, CONSUMER, &wanted, now).await?;
    let events = messages.iter().filter_map(|(delivery, job)| match job {
        Job::Event(event) if claimed.contains(&delivery.envelope.message_id) => Some(event),
        _ => None,
    });
    let (mut ticket_ids, mut to_change) = (Vec::new(), Vec::new());
    for event in events {
        ticket_ids.push(event.ticket_id.as_str());
        if Said::of(event).changes_ticket() {
            to_change.push(event.ticket_id.as_str());
        }
    }
    ticket_ids.sort_unstable();
    ticket_ids.dedup();
    to_change.sort_unstable();
    to_change.dedup();
    alarms::hold_alarms_of(&txn, &ticket_ids).await?;
    let to_read: Vec<&str> = ticket_ids.iter().copied().filter(|id| to_change.binary_search(id).is_err()).collect();
    let mut loaded: HashMap<String, Ticket> = work::tickets(&txn, &to_read)
        .await?
        .into_iter()
        .chain(work::lock_tickets(&txn, &to_change).await?)
        .map(|t| (t.id.clone(), t))
        .collect();
    let mut touched = BTreeSet::new();
    let mut told = Notifications::default();
    for (index, (delivery, job)) in messages.iter().enumerate() {
        if !job.needs_work() {
            continue;
        }
        // A message id twice in one batch (a redelivery) is applied once.
        if !claimed.remove(&delivery.envelope.message_id) {
            outcomes[index] = Outcome::AlreadyApplied;
            continue;
        }
        match job {
            Job::Event(event) => {
                let ticket = loaded
                    .get(&event.ticket_id)
                    .cloned()
                    .ok_or_else(|| NotifierError::TicketMissing(event.ticket_id.clone()))?;
                let applied = apply_event(notifier, &txn, &mut told, ticket, event, now);
                let ticket = delivery.traced(WorkerRole::Notifier, applied).await?;
                touched.insert(ticket.id.clone());
                loaded.insert(ticket.id.clone(), ticket);
            }
            Job::Alert(alert) => {
                let applied = async { apply_alert(notifier, &mut told, alert, now) };
                delivery.traced(WorkerRole::Notifier, applied).await?
            }
        }
        outcomes[index] = Outcome::Applied;
    }
    told.write(&txn).await?;
    let touched: Vec<&Ticket> = touched.iter().filter_map(|id| loaded.get(id)).collect();
    let next_alarm_at = resync_all(notifier, &txn, &touched).await?;
    store.commit(txn).await?;
    Ok(Applied { outcomes, next_alarm_at })
}

/// What a ticket event says, read from the wire.
struct Said {
    event_type: Option<EventType>,
    cause: Option<Cause>,
    occurred_at: Option<DateTime<Utc>>,
}

impl Said {
    fn of(event: &pb::TicketEvent) -> Said {
        Said {
            event_type: <EventType as WireEnum>::from_wire(event.r#type).ok().flatten(),
            cause: <Cause as WireEnum>::from_wire(event.cause).ok().flatten(),
            occurred_at: event
                .occurred_at
                .as_ref()
                .and_then(|at| DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))),
        }
    }

    /// An unsatisfied callback: the notifier sends the ticket back for rework, a change of
    /// its own (so it locks the ticket's row).
    fn changes_ticket(&self) -> bool {
        (self.event_type, self.cause) == (Some(EventType::Reopened), Some(Cause::CallbackUnsatisfied))
    }
}

/// Applies one ticket event to its ticket (the caller re-plans its alarms); returns
/// the ticket as it leaves it.
async fn apply_event(
    notifier: &Notifier,
    txn: &Transaction,
    told: &mut Notifications,
    ticket: Ticket,
    event: &pb::TicketEvent,
    now: DateTime<Utc>,
) -> Result<Ticket, NotifierError> {
    let said = Said::of(event);
    let actor = event.actor_id.as_str();
    match (said.event_type, said.cause) {
        (Some(EventType::Resolved), _) if !ticket.is_incident() => {
            let resolved_at = said.occurred_at.unwrap_or(now);
            let due_by = ticket.deadlines.callback_by;
            open_follow_ups(txn, &ticket, due_by, resolved_at, now).await?;
            // The reporters of its duplicates are owed the reply and the callback too.
            for duplicate in work::duplicates_of(txn, &ticket.id).await? {
                open_follow_ups(txn, &duplicate, due_by, resolved_at, now).await?;
            }
        }
        // The callback was made: whichever of its events comes first settles it.
        (Some(EventType::CallbackRecorded), _)
        | (Some(EventType::Closed), Some(Cause::CallbackSatisfied))
        | (Some(EventType::Reopened), Some(Cause::CallbackUnsatisfied)) => {
            callbacks_made(txn, &ticket, actor, now).await?
        }
        (Some(EventType::Escalated), Some(Cause::Staff)) => {
            escalated_by_staff(notifier, txn, told, &ticket, event, now).await?
        }
        (Some(EventType::Closed), _) => {
            let note = "no callback: the ticket was closed without one";
            follow_ups::settle_open(
                txn,
                &ticket.id,
                FollowUpKind::Callback,
                FollowUpState::Cancelled,
                actor,
                now,
                note,
            )
            .await?;
        }
        _ => {}
    }
    if let Some(ended @ (EventType::Cancelled | EventType::Reopened)) = said.event_type {
        let note = if ended == EventType::Cancelled { "ticket cancelled" } else { "ticket reopened" };
        follow_ups::settle_follow_ups(txn, &ticket.id, FollowUpState::Cancelled, actor, now, note).await?;
        let note = if ended == EventType::Cancelled { "original cancelled" } else { "original reopened" };
        let ended_at = said.occurred_at.unwrap_or(now);
        for duplicate in work::duplicates_of(txn, &ticket.id).await? {
            // A duplicate's reporter whose verdict reopened it was called back: that
            // callback is done (its own event settles it), not cancelled.
            let called_back = duplicate.callback.as_ref().is_some_and(|record| record.recorded_at >= ended_at);
            if called_back {
                let (reply, cancelled) = (FollowUpKind::Reply, FollowUpState::Cancelled);
                follow_ups::settle_open(txn, &duplicate.id, reply, cancelled, actor, now, note).await?;
            } else {
                follow_ups::settle_follow_ups(txn, &duplicate.id, FollowUpState::Cancelled, actor, now, note).await?;
            }
        }
    }
    let ticket = if said.changes_ticket() { escalate_rework(notifier, txn, told, ticket, now).await? } else { ticket };
    tell_owners(notifier, txn, told, &ticket, said.event_type, event, now).await?;
    tell_residents(notifier, txn, told, &ticket, said.event_type, event, now).await?;
    Ok(ticket)
}

/// Every reporter of an outage hears of its progress; a resident hears the reply staff
/// sent them, exactly as sent.
async fn tell_residents(
    notifier: &Notifier,
    txn: &Transaction,
    told: &mut Notifications,
    t: &Ticket,
    event_type: Option<EventType>,
    event: &pb::TicketEvent,
    now: DateTime<Utc>,
) -> Result<(), NotifierError> {
    let progress = match event_type {
        Some(EventType::Accepted) => Some(Notice::IncidentAcknowledged),
        Some(EventType::ArrivedOnSite) => Some(Notice::IncidentOnSite),
        Some(EventType::Resolved) => Some(Notice::IncidentResolved),
        _ => None,
    };
    if let (true, Some(notice)) = (t.is_incident(), progress) {
        residents::tell_incident_reporters(notifier, txn, told, t, notice, now).await?;
    }
    // A promised reply time moved: the resident hears the new time and why.
    let promise_moved = event.changes.iter().any(|c| c.field == "promised_reply_at" && !c.before.is_empty());
    if event_type == Some(EventType::Updated) && promise_moved && t.promised_reply_at.is_some() {
        let given = Given { reason: Some(&event.note), ..Given::default() };
        let (text, source) = residents::notice_words(notifier, txn, t, Notice::PromiseMoved, given).await?;
        let method = ReplyMethod::for_channel(t.channel);
        let message = ToResident { subject: "resident.promise_moved", text, method, source };
        residents::tell(notifier, told, t, message, now)?;
    }
    if event_type == Some(EventType::ReferralResult) {
        let given = Given { result: Some(&event.note), ..Given::default() };
        let (text, source) = residents::notice_words(notifier, txn, t, Notice::ReferralResult, given).await?;
        let method = ReplyMethod::for_channel(t.channel);
        let message = ToResident { subject: "resident.referral_result", text, method, source };
        residents::tell(notifier, told, t, message, now)?;
    }
    if event_type == Some(EventType::Replied)
        && let Some(reply) = &event.reply
    {
        let method = <ReplyMethod as WireEnum>::from_wire(reply.method).ok().flatten();
        let source = (!reply.standard_reply_id.is_empty())
            .then(|| StandardReplyRef { id: reply.standard_reply_id.clone(), version: reply.standard_reply_version });
        let message = ToResident {
            subject: "resident.reply",
            text: event.note.clone(),
            method: method.unwrap_or_else(|| ReplyMethod::for_channel(t.channel)),
            source,
        };
        residents::tell(notifier, told, t, message, now)?;
    }
    Ok(())
}

/// 上报: staff pushed the ticket up; the people of that rung of the ladder hear of it,
/// with the reason given (the one who asked is not told of their own action).
async fn escalated_by_staff(
    notifier: &Notifier,
    txn: &Transaction,
    told: &mut Notifications,
    t: &Ticket,
    event: &pb::TicketEvent,
    now: DateTime<Utc>,
) -> Result<(), NotifierError> {
    let level = t.escalation_level;
    let mut people = addressees(txn, t, &ladder::escalation_recipients(level)).await?;
    people.retain(|a| a.staff_id.as_deref() != Some(event.actor_id.as_str()));
    let message = Message {
        subject: "escalation.by_staff",
        ticket_id: Some(&t.id),
        property_id: &t.property_id,
        text: format!("escalated to level {level} by staff: {}", event.note),
        occurred_at: now,
        details: json!({ "escalation_level": level, "escalated_by": event.actor_id, "event_id": event.event_id }),
        resident: None,
    };
    notify(told, &notifier.settings.webhooks, &people, &message, now)?;
    Ok(())
}

/// The resident was called back: the ticket's open callbacks are done, by whoever recorded
/// the callback.
async fn callbacks_made(txn: &Transaction, t: &Ticket, actor: &str, now: DateTime<Utc>) -> Result<(), NotifierError> {
    let (by, note) = match &t.callback {
        Some(record) => (record.recorded_by.as_str(), format!("callback recorded: {}", record.satisfaction)),
        None => (actor, "callback recorded".to_owned()),
    };
    follow_ups::settle_open(txn, &t.id, FollowUpKind::Callback, FollowUpState::Done, by, now, &note).await?;
    Ok(())
}

/// 整改: an unsatisfied resident's ticket goes back for rework under the supervisor.
async fn escalate_rework(
    notifier: &Notifier,
    txn: &Transaction,
    told: &mut Notifications,
    mut ticket: Ticket,
    now: DateTime<Utc>,
) -> Result<Ticket, NotifierError> {
    let who = addressees(txn, &ticket, &[Recipient::Supervisor, Recipient::FirstContact]).await?;
    let names: Vec<&str> = who.iter().map(|a| a.role.code()).collect();
    let note = format!("callback unsatisfied: rework under the supervisor; told {}", names.join(", "));
    let events = ticket.escalate(1, Cause::CallbackUnsatisfied, system(), note.clone(), now);
    let message = Message {
        subject: "escalation.unsatisfied_callback",
        ticket_id: Some(&ticket.id),
        property_id: &ticket.property_id,
        text: note,
        occurred_at: now,
        details: json!({ "escalation_level": ticket.escalation_level }),
        resident: None,
    };
    notify(told, &notifier.settings.webhooks, &who, &message, now)?;
    Ok(tickets::save(txn, ticket, &events).await?)
}

/// The reply in the channel of origin and the callback, both owned by the first-contact
/// agent, for the resolution at `resolved_at` (of the ticket, or of the original `t` is a
/// duplicate of); the callback is due by `due_by`.
async fn open_follow_ups(
    txn: &Transaction,
    t: &Ticket,
    due_by: Option<DateTime<Utc>>,
    resolved_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), NotifierError> {
    let method = ReplyMethod::for_channel(t.channel);
    let unit = match &t.unit_id {
        Some(id) => work::unit(txn, id).await?,
        None => None,
    };
    let place = unit.as_ref().map_or_else(|| t.location.clone(), |u| u.label.clone());
    let destination = match (method, &unit) {
        (ReplyMethod::Letter, Some(unit)) => unit.postal_address.clone(),
        _ => place.clone(),
    };
    let task = |kind, method, destination, done| NewFollowUp {
        ticket_id: t.id.clone(),
        kind,
        method,
        owner_id: Some(t.first_contact_agent_id.clone()),
        due_by,
        destination,
        done,
        subject_id: None,
    };
    // An enquiry answered at the desk was answered in its own channel, there and then.
    let answered = (t.times.resolved_at == Some(t.times.created_at)).then(|| Settled {
        by: t.first_contact_agent_id.clone(),
        at: t.times.created_at,
        note: "answered on the spot".to_owned(),
    });
    // Applied late, after the callback of this resolution was already recorded.
    let called_back = t.callback.as_ref().filter(|record| record.recorded_at >= resolved_at).map(|record| Settled {
        by: record.recorded_by.clone(),
        at: record.recorded_at,
        note: format!("callback recorded: {}", record.satisfaction),
    });
    // A referral is answered to whoever referred it, by the channel they asked for; the
    // resident, when the ticket names one, hears separately, by phone or at the unit.
    let resident_reachable = t.resident_id.is_some() || !t.reporter.phone.trim().is_empty() || unit.is_some();
    if let Some(referrer) = &t.referred_by {
        let to = format!("{} ({}): {}", referrer.organisation, referrer.reference, referrer.reply_to);
        let reply = task(FollowUpKind::ReferrerReply, referrer.reply_method, to, None);
        follow_ups::insert_follow_up(txn, reply, now).await?;
        if !resident_reachable {
            return Ok(());
        }
        let (method, destination) = match (&unit, t.reporter.phone.trim().is_empty()) {
            (_, false) => (ReplyMethod::PhoneCall, place.clone()),
            (Some(unit), true) => (ReplyMethod::Letter, unit.postal_address.clone()),
            (None, true) => (ReplyMethod::CallOrVisit, place.clone()),
        };
        follow_ups::insert_follow_up(txn, task(FollowUpKind::Reply, method, destination, None), now).await?;
    } else {
        follow_ups::insert_follow_up(txn, task(FollowUpKind::Reply, method, destination, answered), now).await?;
    }
    // Closed when it was logged (answered there, no callback asked for): none is owed.
    if t.times.closed_at == Some(t.times.created_at) {
        return Ok(());
    }
    let callback = task(FollowUpKind::Callback, ReplyMethod::PhoneCall, place, called_back);
    follow_ups::insert_follow_up(txn, callback, now).await?;
    Ok(())
}

/// 首问负责制: the first-contact owner hears of every important change; a new assignee
/// hears of the work.
async fn tell_owners(
    notifier: &Notifier,
    txn: &Transaction,
    told: &mut Notifications,
    t: &Ticket,
    event_type: Option<EventType>,
    event: &pb::TicketEvent,
    now: DateTime<Utc>,
) -> Result<(), NotifierError> {
    let recipients: &[Recipient] = match event_type {
        Some(EventType::Dispatched | EventType::LinkedToIncident) => &[Recipient::Assignee, Recipient::FirstContact],
        Some(
            EventType::Transferred
            | EventType::Resolved
            | EventType::Cancelled
            | EventType::Reopened
            | EventType::Closed,
        ) => &[Recipient::FirstContact],
        // A serious complaint is the manager's to review.
        Some(EventType::ReviewOpened) => &[Recipient::Manager],
        _ => return Ok(()),
    };
    let mut people: Vec<Addressee> = addressees(txn, t, recipients).await?;
    // Nobody is told of their own action.
    people.retain(|a| a.staff_id.as_deref() != Some(event.actor_id.as_str()));
    if people.is_empty() {
        return Ok(());
    }
    let subject = format!("ticket.{}", event_type.map_or("changed", |e| e.code()));
    let state = t.state();
    let message = Message {
        subject: &subject,
        ticket_id: Some(&t.id),
        property_id: &t.property_id,
        text: format!("ticket {} is now {state}", t.id),
        occurred_at: now,
        details: json!({ "event_id": event.event_id, "state": state, "priority": t.priority }),
        resident: None,
    };
    notify(told, &notifier.settings.webhooks, &people, &message, now)?;
    Ok(())
}

/// An alert raised by another worker (nobody on duty, repeat fault, incident opened).
fn apply_alert(
    notifier: &Notifier,
    told: &mut Notifications,
    alert: &pb::Alert,
    now: DateTime<Utc>,
) -> Result<(), NotifierError> {
    let kind = pb::AlertKind::try_from(alert.kind).unwrap_or(pb::AlertKind::Unspecified);
    let subject = format!("alert.{}", kind.as_str_name().trim_start_matches("ALERT_KIND_").to_lowercase());
    let people = [Addressee {
        role: Recipient::Supervisor,
        staff_id: (!alert.recipient_id.is_empty()).then(|| alert.recipient_id.clone()),
    }];
    let message = Message {
        subject: &subject,
        ticket_id: Some(&alert.ticket_id),
        property_id: &alert.property_id,
        text: alert.message.clone(),
        occurred_at: now,
        details: json!({ "alert_id": alert.alert_id }),
        resident: None,
    };
    notify(told, &notifier.settings.webhooks, &people, &message, now)
}
