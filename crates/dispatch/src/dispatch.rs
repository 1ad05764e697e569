//! Dispatch: the decisions of `propdesk_domain` applied to the tickets of a batch of
//! messages, in one transaction.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use propdesk_bus::{Delivery, WorkerRole};
use propdesk_domain::grouping::incident_priority;
use propdesk_domain::{
    Department, EventType, Lifecycle, Move, Policy, Priority, TicketKind, TicketState, choose_assignee,
};
use propdesk_events::{NewAlert, alert_message, outbox_message};
use propdesk_proto::v1 as pb;
use propdesk_store::entity::ticket::{self, UnreadableTicket};
use propdesk_store::tickets::enqueue;
use propdesk_store::work::{self, Transaction};
use propdesk_store::{NewEvent, Store, StoreError};

use crate::{ACTOR, CONSUMER};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This message was applied before (a redelivery): nothing changed.
    AlreadyApplied,
    /// The ticket no longer waits for routing (e.g. cancelled, or dispatched by hand).
    NothingToDo,
    Dispatched {
        department: Department,
        assignee_id: Option<String>,
        incident_id: Option<String>,
        repeat_fault: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ticket {0} does not exist")]
    TicketMissing(String),
    #[error("ticket {0} moved to another building or category while its batch was being locked")]
    Moved(String),
    #[error("ticket {0} holds an unreadable value: {1}")]
    Corrupt(String, String),
    /// Reports to link to a new incident that the batch had not locked: locking them now,
    /// out of id order, could deadlock with a batch that holds them and waits for ours.
    #[error("{} reports to link were not locked with the batch", .0.len())]
    NotLocked(Vec<String>),
}

impl From<UnreadableTicket> for DispatchError {
    fn from(err: UnreadableTicket) -> Self {
        DispatchError::Corrupt(err.ticket_id, err.detail)
    }
}

fn system_event(
    event_type: EventType,
    from: TicketState,
    to: TicketState,
    note: String,
    now: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: event_type.code().to_owned(),
        actor_id: ACTOR.to_owned(),
        actor_role: None,
        from_state: Some(from.code().to_owned()),
        to_state: to.code().to_owned(),
        note,
        occurred_at: now,
    }
}

/// How often a batch starts again with more rows locked up front before it takes the
/// last ones where it stands.
const LOCK_ROUNDS: usize = 3;

/// Applies several deliveries, each an event about the ticket paired with it, exactly
/// once, in one transaction: one commit for the lot (the consumer-side group commit). One
/// outcome per delivery, in order; any failure fails them all (the caller then applies
/// them one by one). Each ticket's dispatch runs in its message's trace.
///
/// Every row the batch changes is locked in one statement, in id order, before any is
/// changed: the notifier and other batches lock in that order too, so none of them waits
/// for another in a circle. An incident that forms links reports outside the batch: they
/// are locked then only if free; when one is held, the transaction rolls back and starts
/// again with it locked up front (rare: an incident opening while its reports are busy).
pub async fn dispatch_batch(
    store: &Store,
    policy: &Policy,
    messages: &[(&Delivery, &str)],
) -> Result<Vec<Outcome>, DispatchError> {
    let mut also_lock = BTreeSet::new();
    for _ in 0..LOCK_ROUNDS {
        match dispatch_locked(store, policy, messages, &also_lock, false).await {
            Err(DispatchError::NotLocked(ids)) => also_lock.extend(ids),
            done => return done,
        }
    }
    dispatch_locked(store, policy, messages, &also_lock, true).await
}

async fn dispatch_locked(
    store: &Store,
    policy: &Policy,
    messages: &[(&Delivery, &str)],
    also_lock: &BTreeSet<String>,
    lock_in_place: bool,
) -> Result<Vec<Outcome>, DispatchError> {
    let now = propdesk_store::now();
    let txn = store.begin_background().await?;
    let message_ids: Vec<&str> = messages.iter().map(|(delivery, _)| delivery.envelope.message_id.as_str()).collect();
    let mut claimed = work::inbox_claim(&txn, CONSUMER, &message_ids, now).await?;
    if claimed.is_empty() {
        // All applied before (redeliveries): nothing to write.
        return Ok(vec![Outcome::AlreadyApplied; messages.len()]);
    }
    let mut ticket_ids: Vec<&str> = messages
        .iter()
        .filter(|(delivery, _)| claimed.contains(&delivery.envelope.message_id))
        .map(|(_, id)| *id)
        .collect();
    ticket_ids.sort_unstable();
    ticket_ids.dedup();
    // Reports of one building and category are decided one at a time, so two replicas
    // cannot open two incidents for the same outage. Taken before any row lock, in one
    // statement and one order: one lock order (these keys, then ticket rows by id), so
    // dispatches never deadlock.
    let keys: BTreeSet<String> = work::tickets(&txn, &ticket_ids)
        .await?
        .iter()
        .filter_map(|t| t.building_id.as_ref().map(|building| incident_key(building, &t.category)))
        .collect();
    work::lock_keys(&txn, &keys).await?;
    // Locked: a concurrent change (the notifier escalating, say) waits for this commit
    // instead of making it fail on a stale version.
    let mut to_lock: Vec<&str> = ticket_ids.iter().copied().chain(also_lock.iter().map(String::as_str)).collect();
    to_lock.sort_unstable();
    to_lock.dedup();
    let mut locked: HashMap<String, ticket::Model> =
        work::lock_tickets(&txn, &to_lock).await?.into_iter().map(|t| (t.id.clone(), t)).collect();
    let mut outcomes = Vec::with_capacity(messages.len());
    let mut assigned = BTreeSet::new();
    for (delivery, ticket_id) in messages {
        // A message id twice in one batch (a redelivery) is applied once.
        if !claimed.remove(&delivery.envelope.message_id) {
            outcomes.push(Outcome::AlreadyApplied);
            continue;
        }
        let ticket =
            locked.get(*ticket_id).cloned().ok_or_else(|| DispatchError::TicketMissing((*ticket_id).to_owned()))?;
        if let Some(building) = &ticket.building_id
            && !keys.contains(&incident_key(building, &ticket.category))
        {
            // Its building or category changed after the keys were taken: start again singly.
            return Err(DispatchError::Moved((*ticket_id).to_owned()));
        }
        let held = Held { locked: &locked, lock_in_place };
        let applied = apply(&txn, policy, ticket, held, &mut assigned, now);
        let (outcome, written) = delivery.traced(WorkerRole::Dispatch, applied).await?;
        // Later messages of this batch see these tickets as this transaction left them.
        locked.extend(written.into_iter().map(|t| (t.id.clone(), t)));
        outcomes.push(outcome);
    }
    // Last, in id order and in one statement: batches that assign the same people never
    // take their rows in opposite orders.
    let assigned: Vec<&str> = assigned.iter().map(String::as_str).collect();
    work::mark_assigned(&txn, &assigned, now).await?;
    store.commit(txn).await?;
    Ok(outcomes)
}

/// The rows a batch holds, and whether it may lock more where it stands (its last round).
#[derive(Clone, Copy)]
struct Held<'a> {
    locked: &'a HashMap<String, ticket::Model>,
    lock_in_place: bool,
}

impl Held<'_> {
    /// Makes sure every one of `reports` is locked and current. Those the batch did not
    /// lock are taken now if nobody holds them (without waiting, so no circle can form);
    /// one that is held makes the batch start again with it locked up front, or, on the
    /// last round, is waited for.
    async fn cover(self, txn: &Transaction, reports: Vec<ticket::Model>) -> Result<Vec<ticket::Model>, DispatchError> {
        let missing: Vec<&str> =
            reports.iter().map(|r| r.id.as_str()).filter(|id| !self.locked.contains_key(*id)).collect();
        if missing.is_empty() {
            return Ok(reports);
        }
        let mut fresh: HashMap<String, ticket::Model> = if self.lock_in_place {
            work::lock_tickets(txn, &missing).await?
        } else {
            work::try_lock_tickets(txn, &missing).await?
        }
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
        if !self.lock_in_place && fresh.len() < missing.len() {
            let held = missing.iter().filter(|id| !fresh.contains_key(**id)).map(|id| (*id).to_owned()).collect();
            return Err(DispatchError::NotLocked(held));
        }
        Ok(reports.into_iter().map(|r| fresh.remove(&r.id).unwrap_or(r)).collect())
    }
}

fn incident_key(building_id: &str, category: &str) -> String {
    format!("incident/{building_id}/{category}")
}

/// Dispatches the locked `ticket`, if it waits for routing; returns the outcome and every
/// ticket written. The people it assigns join `assigned` (assigned `now`, recorded by the
/// caller).
async fn apply(
    txn: &Transaction,
    policy: &Policy,
    ticket: ticket::Model,
    held: Held<'_>,
    assigned: &mut BTreeSet<String>,
    now: DateTime<Utc>,
) -> Result<(Outcome, Vec<ticket::Model>), DispatchError> {
    let state: TicketState = ticket.parse_code(&ticket.state)?;
    if !matches!(state, TicketState::New | TicketState::Transferred | TicketState::Reopened) {
        return Ok((Outcome::NothingToDo, Vec::new()));
    }

    let mut updated = ticket.clone();
    let mut notes = Vec::new();
    let mut alerts: Vec<(pb::AlertKind, String)> = Vec::new();
    let kind: TicketKind = ticket.parse_code(&ticket.kind)?;
    let mut priority: Priority = ticket.parse_code(&ticket.priority)?;
    let department = match (state, ticket.department.as_deref()) {
        // A transfer names its department; routing rules would send it straight back.
        (TicketState::Transferred, Some(code)) => ticket.parse_code(code)?,
        _ => match policy.categories.get(&ticket.category) {
            Some(category) => {
                let text = format!("{}\n{}", ticket.title, ticket.description);
                policy.routing.route(category, &text, ticket.unit_id.is_some())
            }
            None => Department::CustomerService,
        },
    };
    notes.push(format!("routed to {department}"));

    if state == TicketState::New
        && let Some(unit_id) = &ticket.unit_id
        && let Some(resolved_at) =
            work::last_resolution(txn, unit_id, &ticket.category, policy.grouping.repeat_since(now), &ticket.id).await?
    {
        updated.repeat_fault = true;
        let raised = priority.raised();
        notes.push(format!(
            "repeat fault (same unit and category resolved {}); priority {priority} -> {raised}",
            resolved_at.format("%Y-%m-%d %H:%M")
        ));
        alerts.push((
            pb::AlertKind::RepeatFault,
            format!("repeat {} fault in {}", ticket.category, ticket.unit_label.clone().unwrap_or_default()),
        ));
        priority = raised;
    }

    let (incident, mut written) = if state == TicketState::New {
        incident_for(txn, policy, &ticket, department, held, assigned, now).await?
    } else {
        (None, Vec::new())
    };
    let assignee_id = match &incident {
        Some(incident) => {
            updated.incident_id = Some(incident.id.clone());
            notes.push(format!("linked to incident {}", incident.id));
            incident.assignee_id.clone()
        }
        None => pick_assignee(txn, &ticket.property_id, department, assigned, now).await?,
    };
    match &assignee_id {
        Some(id) => {
            notes.push(format!("assigned to {id}"));
            assigned.insert(id.clone());
        }
        None => {
            notes.push(format!("nobody on duty: waiting in the {department} pool"));
            alerts
                .push((pb::AlertKind::NoOneOnDuty, format!("no {department} staff on duty; ticket waits in the pool")));
        }
    }

    let lifecycle = Lifecycle { state, held_from: None }
        .apply(Move::Dispatch)
        .map_err(|e| DispatchError::Corrupt(ticket.id.clone(), e.to_string()))?;
    updated.state = lifecycle.state.code().to_owned();
    updated.held_from = None;
    updated.department = Some(department.code().to_owned());
    updated.assignee_id = assignee_id.clone();
    updated.dispatched_at = Some(now);
    if priority.code() != ticket.priority {
        updated.priority = priority.code().to_owned();
        // The clocks of a raised ticket run from when it was reported.
        updated.set_clocks(policy.deadlines(priority, kind, &ticket.property_id, ticket.created_at));
    }
    updated.version = ticket.version + 1;
    updated.updated_at = now;
    work::update_ticket(txn, &updated, ticket.version).await?;
    let event = system_event(EventType::Dispatched, state, lifecycle.state, notes.join("; "), now);
    work::append_events(txn, &updated, vec![event], &outbox_message).await?;

    if !alerts.is_empty() {
        let recipient = work::supervisor_of(txn, &ticket.property_id, department.code()).await?.map(|s| s.id);
        for (kind, message) in alerts {
            let alert = NewAlert {
                kind,
                ticket: &updated,
                department: Some(department),
                recipient_id: recipient.clone(),
                message,
                raised_at: now,
            };
            enqueue(txn, alert_message(alert), now).await?;
        }
    }
    let outcome = Outcome::Dispatched {
        department,
        assignee_id,
        incident_id: updated.incident_id.clone(),
        repeat_fault: updated.repeat_fault,
    };
    written.push(updated);
    Ok((outcome, written))
}

/// The on-duty person to assign; `assigned` were assigned `now` earlier in this batch
/// (their rows are written at its end).
async fn pick_assignee(
    txn: &Transaction,
    property_id: &str,
    department: Department,
    assigned: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> Result<Option<String>, DispatchError> {
    let mut candidates = work::assignment_candidates(txn, property_id, department.code()).await?;
    for candidate in &mut candidates {
        if assigned.contains(&candidate.staff_id) {
            candidate.last_assigned_at = Some(now);
        }
    }
    Ok(choose_assignee(&candidates).map(|c| c.staff_id.clone()))
}

/// The incident this new report belongs to: an open one of its building and category, or
/// a new one when enough distinct units reported within the window (the other reports are
/// linked to it here; the caller links this one). Also returns the reports it linked.
async fn incident_for(
    txn: &Transaction,
    policy: &Policy,
    report: &ticket::Model,
    department: Department,
    held: Held<'_>,
    assigned: &mut BTreeSet<String>,
    now: DateTime<Utc>,
) -> Result<(Option<ticket::Model>, Vec<ticket::Model>), DispatchError> {
    let (Some(building_id), Some(_)) = (&report.building_id, &report.unit_id) else { return Ok((None, Vec::new())) };
    if let Some(open) = work::open_incident(txn, building_id, &report.category).await? {
        return Ok((Some(open), Vec::new()));
    }
    let reports = work::recent_reports(txn, building_id, &report.category, policy.grouping.incident_since(now)).await?;
    let units = reports.iter().filter_map(|r| r.unit_id.as_deref()).collect::<BTreeSet<&str>>().len();
    if !policy.grouping.forms_incident(units) {
        return Ok((None, Vec::new()));
    }
    // Read under the batch's locks, so none of them is a stale copy.
    let reports = held.cover(txn, reports).await?;
    let mut priorities = Vec::new();
    for r in &reports {
        priorities.push(r.parse_code::<Priority>(&r.priority)?);
    }
    let priority = incident_priority(priorities);
    let assignee_id = pick_assignee(txn, &report.property_id, department, assigned, now).await?;
    let deadlines = policy.deadlines(priority, TicketKind::Repair, &report.property_id, now);
    let category_name = policy.categories.get(&report.category).map_or(report.category.clone(), |c| c.name.clone());
    let incident_id = uuid::Uuid::now_v7().to_string();
    let mut incident = ticket::Model {
        building_id: report.building_id.clone(),
        location: format!("building {}", report.unit_label.as_deref().and_then(|l| l.split('-').next()).unwrap_or("?")),
        kind: TicketKind::Repair.code().to_owned(),
        channel: report.channel.clone(),
        category: report.category.clone(),
        department: Some(department.code().to_owned()),
        priority: priority.code().to_owned(),
        state: TicketState::Dispatched.code().to_owned(),
        title: format!("Incident: {category_name}, {units} units"),
        description: format!("{} reports from {units} units of one building within the window", reports.len()),
        first_contact_agent_id: report.first_contact_agent_id.clone(),
        assignee_id: assignee_id.clone(),
        incident_id: Some(incident_id.clone()),
        request_id: format!("incident-{incident_id}"),
        dispatched_at: Some(now),
        is_incident: true,
        ..ticket::Model::blank(incident_id.clone(), report.property_id.clone(), now)
    };
    incident.set_clocks(deadlines);
    let incident = work::insert_ticket(txn, incident).await?;
    let opened = vec![
        system_event(EventType::Created, TicketState::New, TicketState::New, format!("incident of {units} units"), now),
        system_event(
            EventType::Dispatched,
            TicketState::New,
            TicketState::Dispatched,
            format!("routed to {department}"),
            now,
        ),
    ];
    work::append_events(txn, &incident, opened, &outbox_message).await?;
    if let Some(id) = &assignee_id {
        assigned.insert(id.clone());
    }
    let recipient = work::supervisor_of(txn, &report.property_id, department.code()).await?.map(|s| s.id);
    let alert = NewAlert {
        kind: pb::AlertKind::IncidentOpened,
        ticket: &incident,
        department: Some(department),
        recipient_id: recipient,
        message: incident.title.clone(),
        raised_at: now,
    };
    enqueue(txn, alert_message(alert), now).await?;

    // Link the other reports; those not yet worked on go to the incident's assignee.
    let mut linked_reports = Vec::new();
    for other in reports.into_iter().filter(|r| r.id != report.id) {
        let mut linked = other.clone();
        linked.incident_id = Some(incident.id.clone());
        let other_state: TicketState = other.parse_code(&other.state)?;
        let (event_type, to) = match (Lifecycle { state: other_state, held_from: None }).apply(Move::Dispatch) {
            Ok(next) if matches!(other_state, TicketState::New | TicketState::Dispatched) => {
                linked.state = next.state.code().to_owned();
                linked.department = Some(department.code().to_owned());
                linked.assignee_id = assignee_id.clone();
                // A report already routed keeps the time it was: joining the incident
                // hands it to another person, it does not dispatch it again.
                linked.dispatched_at = other.dispatched_at.or(Some(now));
                (EventType::Dispatched, next.state)
            }
            _ => (EventType::NoteAdded, other_state),
        };
        linked.version = other.version + 1;
        linked.updated_at = now;
        work::update_ticket(txn, &linked, other.version).await?;
        let note = format!("linked to incident {}", incident.id);
        work::append_events(txn, &linked, vec![system_event(event_type, other_state, to, note, now)], &outbox_message)
            .await?;
        linked_reports.push(linked);
    }
    Ok((Some(incident), linked_reports))
}
