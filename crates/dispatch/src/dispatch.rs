//! One dispatch: the decisions of `propdesk_domain` applied to one ticket in one
//! transaction.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use propdesk_domain::grouping::incident_priority;
use propdesk_domain::{
    Candidate, Department, EventType, Lifecycle, Move, Policy, Priority, TicketKind, TicketState, choose_assignee,
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
    #[error("ticket {0} holds an unreadable value: {1}")]
    Corrupt(String, String),
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

/// Applies `message_id` (an event about `ticket_id`) exactly once.
pub async fn dispatch(
    store: &Store,
    policy: &Policy,
    message_id: &str,
    ticket_id: &str,
) -> Result<Outcome, DispatchError> {
    let now = propdesk_store::now();
    let txn = store.begin().await?;
    if work::inbox_seen(&txn, CONSUMER, message_id).await? {
        return Ok(Outcome::AlreadyApplied);
    }
    let unlocked =
        work::ticket(&txn, ticket_id).await?.ok_or_else(|| DispatchError::TicketMissing(ticket_id.to_owned()))?;
    // Reports of one building and category are decided one at a time, so two replicas
    // cannot open two incidents for the same outage. Taken before any row lock: one lock
    // order (this key, then ticket rows), so dispatches never deadlock.
    if let Some(building) = &unlocked.building_id {
        work::lock_key(&txn, &format!("incident/{building}/{}", unlocked.category)).await?;
    }
    // Locked: a concurrent change (the notifier escalating, say) waits for this commit
    // instead of making it fail on a stale version.
    let ticket =
        work::lock_ticket(&txn, ticket_id).await?.ok_or_else(|| DispatchError::TicketMissing(ticket_id.to_owned()))?;
    let state: TicketState = ticket.parse_code(&ticket.state)?;
    if !matches!(state, TicketState::New | TicketState::Transferred | TicketState::Reopened) {
        work::inbox_record(&txn, CONSUMER, message_id, now).await?;
        store.commit(txn).await?;
        return Ok(Outcome::NothingToDo);
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
            work::last_resolution(&txn, unit_id, &ticket.category, policy.grouping.repeat_since(now), &ticket.id)
                .await?
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

    let incident =
        if state == TicketState::New { incident_for(&txn, policy, &ticket, department, now).await? } else { None };
    let assignee_id = match &incident {
        Some(incident) => {
            updated.incident_id = Some(incident.id.clone());
            notes.push(format!("linked to incident {}", incident.id));
            incident.assignee_id.clone()
        }
        None => pick_assignee(&txn, &ticket.property_id, department).await?,
    };
    match &assignee_id {
        Some(id) => {
            notes.push(format!("assigned to {id}"));
            work::mark_assigned(&txn, id, now).await?;
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
    work::update_ticket(&txn, &updated, ticket.version).await?;
    let event = system_event(EventType::Dispatched, state, lifecycle.state, notes.join("; "), now);
    work::append_events(&txn, &updated, vec![event], &outbox_message).await?;

    if !alerts.is_empty() {
        let recipient = work::supervisor_of(&txn, &ticket.property_id, department.code()).await?.map(|s| s.id);
        for (kind, message) in alerts {
            let alert = NewAlert {
                kind,
                ticket: &updated,
                department: Some(department),
                recipient_id: recipient.clone(),
                message,
                raised_at: now,
            };
            enqueue(&txn, alert_message(alert), now).await?;
        }
    }
    work::inbox_record(&txn, CONSUMER, message_id, now).await?;
    store.commit(txn).await?;
    Ok(Outcome::Dispatched {
        department,
        assignee_id,
        incident_id: updated.incident_id.clone(),
        repeat_fault: updated.repeat_fault,
    })
}

async fn pick_assignee(
    txn: &Transaction,
    property_id: &str,
    department: Department,
) -> Result<Option<String>, DispatchError> {
    let candidates: Vec<Candidate> = work::assignment_candidates(txn, property_id, department.code())
        .await?
        .into_iter()
        .map(|(person, open)| Candidate {
            staff_id: person.id,
            open_tickets: open,
            last_assigned_at: person.last_assigned_at,
        })
        .collect();
    Ok(choose_assignee(&candidates).map(|c| c.staff_id.clone()))
}

/// The incident this new report belongs to: an open one of its building and category, or
/// a new one when enough distinct units reported within the window (the other reports are
/// linked to it here; the caller links this one).
async fn incident_for(
    txn: &Transaction,
    policy: &Policy,
    report: &ticket::Model,
    department: Department,
    now: DateTime<Utc>,
) -> Result<Option<ticket::Model>, DispatchError> {
    let (Some(building_id), Some(_)) = (&report.building_id, &report.unit_id) else { return Ok(None) };
    if let Some(open) = work::open_incident(txn, building_id, &report.category).await? {
        return Ok(Some(open));
    }
    let reports = work::recent_reports(txn, building_id, &report.category, policy.grouping.incident_since(now)).await?;
    let units: BTreeSet<&str> = reports.iter().filter_map(|r| r.unit_id.as_deref()).collect();
    if !policy.grouping.forms_incident(units.len()) {
        return Ok(None);
    }
    let mut priorities = Vec::new();
    for r in &reports {
        priorities.push(r.parse_code::<Priority>(&r.priority)?);
    }
    let priority = incident_priority(priorities);
    let assignee_id = pick_assignee(txn, &report.property_id, department).await?;
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
        title: format!("Incident: {category_name}, {} units", units.len()),
        description: format!("{} reports from {} units of one building within the window", reports.len(), units.len()),
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
        system_event(
            EventType::Created,
            TicketState::New,
            TicketState::New,
            format!("incident of {} units", units.len()),
            now,
        ),
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
        work::mark_assigned(txn, id, now).await?;
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
    for other in reports.into_iter().filter(|r| r.id != report.id) {
        let mut linked = other.clone();
        linked.incident_id = Some(incident.id.clone());
        let other_state: TicketState = other.parse_code(&other.state)?;
        let (event_type, to) = match (Lifecycle { state: other_state, held_from: None }).apply(Move::Dispatch) {
            Ok(next) if matches!(other_state, TicketState::New | TicketState::Dispatched) => {
                linked.state = next.state.code().to_owned();
                linked.department = Some(department.code().to_owned());
                linked.assignee_id = assignee_id.clone();
                linked.dispatched_at = Some(now);
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
    }
    Ok(Some(incident))
}
