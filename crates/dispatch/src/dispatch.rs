//! Dispatch: the decisions of `propdesk_domain` applied to the tickets of a batch of
//! messages, in one transaction.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use propdesk_bus::{Delivery, WorkerRole};
use propdesk_domain::aggregate::CategoryCode;
use propdesk_domain::dispatching::{self, Alert, Surroundings};
use propdesk_domain::{By, Candidate, Department, Policy, RuleViolation, Ticket};
use propdesk_events::{NewAlert, alert_message};
use propdesk_proto::v1 as pb;
use propdesk_store::tickets::{self, enqueue};
use propdesk_store::work::{self, Transaction};
use propdesk_store::{Store, StoreError};

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
    /// The ticket's rules refused the decision (its state changed under the decision).
    #[error(transparent)]
    Refused(#[from] RuleViolation),
    /// Reports to link to a new incident that the batch had not locked: locking them now,
    /// out of id order, could deadlock with a batch that holds them and waits for ours.
    #[error("{} reports to link were not locked with the batch", .0.len())]
    NotLocked(Vec<String>),
}

fn system() -> By {
    By::System(ACTOR)
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
    let mut locked: HashMap<String, Ticket> =
        work::lock_tickets(&txn, &to_lock).await?.into_iter().map(|t| (t.id.clone(), t)).collect();
    let mut outcomes = Vec::with_capacity(messages.len());
    let mut pools = Pools::new(now);
    // Everyone the batch may assign, in one look-up.
    let departments = ticket_ids.iter().filter_map(|id| locked.get(*id)).filter_map(|ticket| {
        dispatching::department_for(ticket, policy).map(|department| (ticket.property_id.clone(), department))
    });
    pools.read(&txn, departments.collect()).await?;
    let mut unsaved = Unsaved::default();
    for (delivery, ticket_id) in messages {
        // A message id twice in one batch (a redelivery) is applied once.
        if !claimed.remove(&delivery.envelope.message_id) {
            outcomes.push(Outcome::AlreadyApplied);
            continue;
        }
        if unsaved.holds(ticket_id) {
            unsaved.save(&txn, &mut locked, &mut pools).await?;
        }
        let ticket =
            locked.get(*ticket_id).cloned().ok_or_else(|| DispatchError::TicketMissing((*ticket_id).to_owned()))?;
        if let Some(building) = &ticket.building_id
            && !keys.contains(&incident_key(building, &ticket.category))
        {
            // Its building or category changed after the keys were taken: start again singly.
            return Err(DispatchError::Moved((*ticket_id).to_owned()));
        }
        if dispatching::looks_for_groups(&ticket) && unsaved.holds_group_of(&ticket) {
            // Its decision reads the reports of its building and category from the database.
            unsaved.save(&txn, &mut locked, &mut pools).await?;
        }
        let held = Held { locked: &locked, lock_in_place };
        let applied = apply(&txn, policy, ticket, held, &mut pools, now);
        let (outcome, applied) = delivery.traced(WorkerRole::Dispatch, applied).await?;
        // Later messages of this batch see these tickets as this transaction left them.
        locked.extend(applied.written.into_iter().map(|t| (t.id.clone(), t)));
        unsaved.tickets.extend(applied.unsaved);
        outcomes.push(outcome);
    }
    unsaved.save(&txn, &mut locked, &mut pools).await?;
    // Last, in id order and in one statement: batches that assign the same people never
    // take their rows in opposite orders.
    let assigned: Vec<&str> = pools.assigned.iter().map(String::as_str).collect();
    work::mark_assigned(&txn, &assigned, now).await?;
    store.commit(txn).await?;
    Ok(outcomes)
}

/// The rows a batch holds, and whether it may lock more where it stands (its last round).
#[derive(Clone, Copy)]
struct Held<'a> {
    locked: &'a HashMap<String, Ticket>,
    lock_in_place: bool,
}

impl Held<'_> {
    /// Makes sure every one of `reports` is locked and current. Those the batch did not
    /// lock are taken now if nobody holds them (without waiting, so no circle can form);
    /// one that is held makes the batch start again with it locked up front, or, on the
    /// last round, is waited for.
    async fn cover(self, txn: &Transaction, reports: Vec<Ticket>) -> Result<Vec<Ticket>, DispatchError> {
        let missing: Vec<&str> =
            reports.iter().map(|r| r.id.as_str()).filter(|id| !self.locked.contains_key(*id)).collect();
        if missing.is_empty() {
            return Ok(reports);
        }
        let mut fresh: HashMap<String, Ticket> = if self.lock_in_place {
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

fn incident_key(building_id: &str, category: &CategoryCode) -> String {
    format!("incident/{building_id}/{category}")
}

/// The people a batch may assign work to, read once per property and department and kept
/// in step with the batch's own assignments; and everyone it assigned (their
/// `last_assigned_at` is written at the end of the batch).
struct Pools {
    /// When the batch assigns.
    now: DateTime<Utc>,
    by_department: HashMap<(String, Department), Vec<Candidate>>,
    assigned: BTreeSet<String>,
    /// Assignments of tickets not saved yet (property, department, person): a load read
    /// from the database meanwhile does not count them.
    unsaved: Vec<(String, Department, String)>,
}

impl Pools {
    fn new(now: DateTime<Utc>) -> Pools {
        Pools { now, by_department: HashMap::new(), assigned: BTreeSet::new(), unsaved: Vec::new() }
    }

    /// Reads the pools of these properties and departments (those not read yet) in one
    /// look-up; before the batch assigns anyone (nothing to add to the loads read).
    async fn read(&mut self, txn: &Transaction, wanted: BTreeSet<(String, Department)>) -> Result<(), DispatchError> {
        let wanted: Vec<(String, Department)> =
            wanted.into_iter().filter(|key| !self.by_department.contains_key(key)).collect();
        self.by_department.extend(work::assignment_candidates_of(txn, &wanted).await?);
        Ok(())
    }

    /// The people on duty who could take work of `department` at the property, with their
    /// load as this batch has left it.
    async fn candidates(
        &mut self,
        txn: &Transaction,
        property_id: &str,
        department: Department,
    ) -> Result<Vec<Candidate>, DispatchError> {
        let key = (property_id.to_owned(), department);
        if let Some(pool) = self.by_department.get(&key) {
            return Ok(pool.clone());
        }
        let mut pool = work::assignment_candidates(txn, property_id, department).await?;
        // Their rows are written at the end of the batch: until then, say so here.
        for candidate in &mut pool {
            if self.assigned.contains(&candidate.staff_id) {
                candidate.last_assigned_at = Some(self.now);
            }
            let unsaved = self.unsaved.iter().filter(|(property, unsaved_department, person)| {
                property == property_id && *unsaved_department == department && *person == candidate.staff_id
            });
            let counted = candidate.open_tickets + unsaved.count() as u64;
            candidate.open_tickets = counted.min(work::LOAD_COUNTED_UP_TO);
        }
        self.by_department.insert(key, pool.clone());
        Ok(pool)
    }

    /// `ticket`, open and not an incident, was just given to its assignee: one more open
    /// ticket for them (counted up to the cap, as the database counts), assigned now.
    fn took(&mut self, ticket: &Ticket) {
        let now = self.now;
        let Some(assignee) = &ticket.assignee_id else { return };
        self.assigned.insert(assignee.clone());
        let Some(department) = ticket.department else { return };
        self.unsaved.push((ticket.property_id.clone(), department, assignee.clone()));
        let key = (ticket.property_id.clone(), department);
        for candidate in self.by_department.get_mut(&key).into_iter().flatten() {
            if &candidate.staff_id == assignee {
                candidate.open_tickets = (candidate.open_tickets + 1).min(work::LOAD_COUNTED_UP_TO);
                candidate.last_assigned_at = Some(now);
            }
        }
    }

    /// An incident moved reports between people: loads are read again when next needed.
    fn forget_loads(&mut self) {
        self.by_department.clear();
    }

    /// The batch's tickets are saved: the database counts their assignments now.
    fn saved(&mut self) {
        self.unsaved.clear();
    }
}

/// Dispatched tickets of a batch not saved yet: they are saved together (one update, one
/// insert of their events and messages), before anything reads them back from the database
/// and before the batch records whom it assigned.
#[derive(Default)]
struct Unsaved {
    tickets: Vec<tickets::Unsaved<'static>>,
}

impl Unsaved {
    fn holds(&self, ticket_id: &str) -> bool {
        self.tickets.iter().any(|unsaved| unsaved.ticket.id == ticket_id)
    }

    /// Whether one of them is a report of `ticket`'s building and category.
    fn holds_group_of(&self, ticket: &Ticket) -> bool {
        self.tickets.iter().any(|unsaved| {
            unsaved.ticket.building_id == ticket.building_id && unsaved.ticket.category == ticket.category
        })
    }

    /// Saves them; `locked` then holds them as saved.
    async fn save(
        &mut self,
        txn: &Transaction,
        locked: &mut HashMap<String, Ticket>,
        pools: &mut Pools,
    ) -> Result<(), DispatchError> {
        if self.tickets.is_empty() {
            return Ok(());
        }
        let saved = tickets::save_all(txn, std::mem::take(&mut self.tickets)).await?;
        locked.extend(saved.into_iter().map(|t| (t.id.clone(), t)));
        pools.saved();
        Ok(())
    }
}

/// What [`apply`] changed: tickets it wrote, and the dispatched ticket, for the batch to save.
#[derive(Default)]
struct Applied {
    written: Vec<Ticket>,
    unsaved: Option<tickets::Unsaved<'static>>,
}

/// Dispatches the locked `ticket`, if it waits for routing; returns the outcome and what it
/// changed. The people it assigns go into `pools`.
async fn apply(
    txn: &Transaction,
    policy: &Policy,
    mut ticket: Ticket,
    held: Held<'_>,
    pools: &mut Pools,
    now: DateTime<Utc>,
) -> Result<(Outcome, Applied), DispatchError> {
    let Some(department) = dispatching::department_for(&ticket, policy) else {
        return Ok((Outcome::NothingToDo, Applied::default()));
    };
    // The facts the decision needs, loaded first.
    let (mut last_resolution, mut open_incident, mut recent_reports) = (None, None, Vec::new());
    if let (true, Some(unit_id), Some(building_id)) =
        (dispatching::looks_for_groups(&ticket), &ticket.unit_id, &ticket.building_id)
    {
        let since = policy.grouping.repeat_since(now);
        last_resolution = work::last_resolution(txn, unit_id, &ticket.category, since, &ticket.id).await?;
        open_incident = work::open_incident(txn, building_id, &ticket.category).await?;
        if open_incident.is_none() {
            let since = policy.grouping.incident_since(now);
            recent_reports = work::recent_reports(txn, building_id, &ticket.category, since).await?;
            if dispatching::forms_incident(&recent_reports, policy) {
                // Read under the batch's locks, so none of them is a stale copy.
                recent_reports = held.cover(txn, recent_reports).await?;
            }
        }
    }
    // Joining an open incident takes its person: nobody else is looked for.
    let candidates = match open_incident {
        Some(_) => Vec::new(),
        None => pools.candidates(txn, &ticket.property_id, department).await?,
    };
    let around = Surroundings {
        candidates: &candidates,
        last_resolution,
        open_incident: open_incident.as_deref(),
        recent_reports: &recent_reports,
    };
    let decision = dispatching::decide(&ticket, department, &around, policy, &uuid::Uuid::now_v7().to_string(), now);

    let mut written = Vec::new();
    if let Some(opened) = decision.open_incident {
        let (incident, events) = Ticket::open_incident(opened.incident, opened.units, system(), now);
        let incident = tickets::insert(txn, incident, &events).await?;
        pools.assigned.extend(incident.assignee_id.clone());
        let alert = (pb::AlertKind::IncidentOpened, incident.title.clone());
        raise(txn, &incident, department, vec![alert], now).await?;
        for mut report in recent_reports.into_iter().filter(|r| opened.link.contains(&r.id)) {
            let events = report.link_to(&incident, system(), now)?;
            written.push(tickets::save(txn, report, &events).await?);
        }
        pools.forget_loads();
    }
    let alerts = decision
        .alerts
        .into_iter()
        .map(|alert| match alert {
            Alert::RepeatFault { message } => (pb::AlertKind::RepeatFault, message),
            Alert::NoOneOnDuty { message } => (pb::AlertKind::NoOneOnDuty, message),
        })
        .collect();
    let events = ticket.dispatch(decision.route, system(), now)?;
    pools.took(&ticket);
    raise(txn, &ticket, department, alerts, now).await?;
    let outcome = Outcome::Dispatched {
        department,
        assignee_id: ticket.assignee_id.clone(),
        incident_id: ticket.incident_id().map(str::to_owned),
        repeat_fault: ticket.repeat_fault,
    };
    // Saved with the batch's others, its messages still in this message's trace.
    let unsaved = tickets::Unsaved { ticket, events: events.into(), trace_parent: propdesk_events::current_trace() };
    Ok((outcome, Applied { written, unsaved: Some(unsaved) }))
}

/// Sends alerts about `ticket` to the department's supervisor (else the manager).
async fn raise(
    txn: &Transaction,
    ticket: &Ticket,
    department: Department,
    alerts: Vec<(pb::AlertKind, String)>,
    now: DateTime<Utc>,
) -> Result<(), DispatchError> {
    if alerts.is_empty() {
        return Ok(());
    }
    let recipient = work::supervisor_of(txn, &ticket.property_id, department).await?.map(|s| s.id);
    for (kind, message) in alerts {
        let alert = NewAlert {
            kind,
            ticket_id: &ticket.id,
            property_id: &ticket.property_id,
            department: Some(department),
            recipient_id: recipient.clone(),
            message,
            raised_at: now,
        };
        enqueue(txn, alert_message(alert), now).await?;
    }
    Ok(())
}
