//! Tickets, their history and the outbox messages their changes publish.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Set, TryInsertResult,
};

use propdesk_domain::TicketState;

use crate::entity::{outbox, ticket, ticket_event};
use crate::{Store, StoreError, work};

/// A history event to append; the routing facts and version are taken from the ticket.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: String,
    pub event_type: String,
    pub actor_id: String,
    pub actor_role: Option<String>,
    pub from_state: Option<String>,
    pub to_state: String,
    pub note: String,
    pub occurred_at: DateTime<Utc>,
}

/// A bus message derived from a stored history event.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub message_id: String,
    pub routing_key: String,
    pub payload: Vec<u8>,
    /// The W3C `traceparent` the message travels under.
    pub trace_parent: Option<String>,
}

/// One conditional ticket change with the history it writes.
#[derive(Debug, Clone)]
pub struct Change {
    /// The new row; its version must be `expected_version + 1`.
    pub updated: ticket::Model,
    pub expected_version: i64,
    pub events: Vec<NewEvent>,
}

/// A reply follow-up completed together with a ticket change.
#[derive(Debug, Clone)]
pub struct FollowUpDone {
    pub id: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: String,
}

/// A ticket to create with its first events.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub ticket: ticket::Model,
    pub events: Vec<NewEvent>,
    /// The trace its outbox messages travel under, when the writer runs outside the caller's
    /// trace (group commit); `None`: whatever `publish` says.
    pub trace_parent: Option<String>,
}

/// Outcome of an idempotent create.
#[derive(Debug)]
pub enum Created {
    /// The ticket was written now.
    New(ticket::Model),
    /// A ticket with this request id already existed; nothing was written.
    Existing(ticket::Model),
}

/// What to list. `property_ids: None` means every property.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub property_ids: Option<Vec<String>>,
    pub states: Vec<String>,
    pub department: Option<String>,
    pub assignee_id: Option<String>,
    pub priority: Option<String>,
    pub kind: Option<String>,
    /// Only tickets with a deadline before this instant that was not met.
    pub overdue_at: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Cursor: only ids strictly below this one (ids are time-ordered UUIDv7).
    pub before_id: Option<String>,
    pub limit: u64,
}

/// A position in the event order: (writing transaction, sequence id). Written as
/// `"<tx_id>.<id>"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor {
    pub tx_id: i64,
    pub id: i64,
}

impl EventCursor {
    pub fn of(event: &ticket_event::Model) -> EventCursor {
        EventCursor { tx_id: event.tx_id, id: event.id }
    }

    pub fn parse(text: &str) -> Option<EventCursor> {
        let (tx_id, id) = text.split_once('.')?;
        let cursor = EventCursor { tx_id: tx_id.parse().ok()?, id: id.parse().ok()? };
        (cursor.tx_id >= 0 && cursor.id >= 0).then_some(cursor)
    }
}

impl std::fmt::Display for EventCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.tx_id, self.id)
    }
}

/// Events whose writing transaction can no longer be running (all of them on SQLite,
/// where one writer commits in id order).
fn settled_events(backend: DbBackend) -> Condition {
    match backend {
        DbBackend::Postgres => Condition::all().add(
            Expr::col(ticket_event::Column::TxId)
                .lt(Expr::cust("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")),
        ),
        _ => Condition::all(),
    }
}

/// Each milestone and its deadline: acknowledge, on site, resolve.
pub(crate) const MILESTONES: [(ticket::Column, ticket::Column); 3] = [
    (ticket::Column::AcceptedAt, ticket::Column::AcknowledgeBy),
    (ticket::Column::OnSiteAt, ticket::Column::OnSiteBy),
    (ticket::Column::ResolvedAt, ticket::Column::ResolveBy),
];

/// The ticket's clocks run: its state is open (see `TicketState::is_open`) and not on hold,
/// where the clocks are paused; and it is not a report linked to a group incident, whose
/// clocks the incident carries (an incident names itself in `incident_id`).
fn clocks_running() -> Condition {
    let running: Vec<&str> =
        work::open_states().into_iter().filter(|code| *code != TicketState::OnHold.code()).collect();
    Condition::all()
        .add(ticket::Column::State.is_in(running))
        .add(Condition::any().add(ticket::Column::IncidentId.is_null()).add(ticket::Column::IsIncident.eq(true)))
}

/// `reached` not reached and its `deadline` passed at `now`, while the clocks run.
pub(crate) fn missed_open(reached: ticket::Column, deadline: ticket::Column, now: DateTime<Utc>) -> Condition {
    clocks_running().add(reached.is_null()).add(deadline.lt(now))
}

/// Tickets with a milestone missed and still open at `now` (see [`missed_open`]).
pub(crate) fn overdue_condition(now: DateTime<Utc>) -> Condition {
    MILESTONES.iter().fold(Condition::any(), |any, (reached, deadline)| any.add(missed_open(*reached, *deadline, now)))
}

impl Store {
    /// Writes a new ticket with its first events and their outbox messages, unless the same
    /// first-contact agent already created one with this request id.
    pub async fn create_ticket(
        &self,
        ticket: ticket::Model,
        events: Vec<NewEvent>,
        publish: impl Fn(&ticket::Model, &ticket_event::Model) -> OutboxMessage,
    ) -> Result<Created, StoreError> {
        let new = NewTicket { ticket, events, trace_parent: None };
        self.create_tickets(vec![new], publish).await?.pop().ok_or(StoreError::NotFound("ticket"))
    }

    /// Writes several new tickets in one transaction (group commit: one round of inserts and
    /// one commit for the lot). Each outcome is [`Created::New`], or [`Created::Existing`] when
    /// its agent already used its request id, before or earlier in the same batch.
    pub async fn create_tickets(
        &self,
        batch: Vec<NewTicket>,
        publish: impl Fn(&ticket::Model, &ticket_event::Model) -> OutboxMessage,
    ) -> Result<Vec<Created>, StoreError> {
        use ticket::Column as C;
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.begin().await?;
        let rows = batch.iter().map(|new| new.ticket.clone().into_active_model().reset_all());
        let inserted: HashSet<String> = match ticket::Entity::insert_many(rows)
            .on_conflict_do_nothing_on([C::FirstContactAgentId, C::RequestId])
            .exec_with_returning_keys(&*txn)
            .await
            .map_err(StoreError::from_write)?
        {
            TryInsertResult::Inserted(ids) => ids.into_iter().collect(),
            TryInsertResult::Empty | TryInsertResult::Conflicted => HashSet::new(),
        };
        let mut events = Vec::new();
        let mut event_tickets = HashMap::new();
        for new in batch.iter().filter(|new| inserted.contains(&new.ticket.id)) {
            for event in &new.events {
                event_tickets.insert(event.event_id.clone(), new);
                events.push(event_row(&new.ticket, event.clone()));
            }
        }
        if !events.is_empty() {
            let stored = ticket_event::Entity::insert_many(events).exec_with_returning(&*txn).await?;
            let mut messages = Vec::with_capacity(stored.len());
            for event in &stored {
                let new = event_tickets.get(&event.event_id).ok_or(StoreError::NotFound("event's ticket"))?;
                let mut message = publish(&new.ticket, event);
                if new.trace_parent.is_some() {
                    message.trace_parent.clone_from(&new.trace_parent);
                }
                messages.push(outbox_row(message, event.occurred_at));
            }
            outbox::Entity::insert_many(messages).exec_without_returning(&*txn).await?;
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut written = HashSet::new();
        for new in batch {
            // A ticket is new once: a second request with the same key in this batch is a retry.
            if inserted.contains(&new.ticket.id) && written.insert(new.ticket.id.clone()) {
                outcomes.push(Created::New(new.ticket));
                continue;
            }
            let existing = ticket::Entity::find()
                .filter(C::FirstContactAgentId.eq(new.ticket.first_contact_agent_id.as_str()))
                .filter(C::RequestId.eq(new.ticket.request_id.as_str()))
                .one(&*txn)
                .await?
                // Not inserted and not there: the insert failed some other way.
                .ok_or(StoreError::NotFound("ticket"))?;
            outcomes.push(Created::Existing(existing));
        }
        self.commit(txn).await?;
        Ok(outcomes)
    }

    pub async fn get_ticket(&self, id: &str) -> Result<Option<ticket::Model>, StoreError> {
        Ok(ticket::Entity::find_by_id(id.to_owned()).one(&self.db).await?)
    }

    /// Saves `updated` (whose version must be `expected_version + 1`) only if the stored
    /// version is still `expected_version`, with its history events and outbox messages.
    /// Returns the stored events.
    pub async fn save_change(
        &self,
        updated: &ticket::Model,
        expected_version: i64,
        events: Vec<NewEvent>,
        publish: impl Fn(&ticket::Model, &ticket_event::Model) -> OutboxMessage,
    ) -> Result<Vec<ticket_event::Model>, StoreError> {
        let change = Change { updated: updated.clone(), expected_version, events };
        Ok(self.save_changes(vec![change], publish).await?.into_iter().flatten().collect())
    }

    /// Several conditional changes (e.g. an incident and its reports) in one transaction:
    /// all of them, or none if any ticket changed meanwhile.
    pub async fn save_changes(
        &self,
        changes: Vec<Change>,
        publish: impl Fn(&ticket::Model, &ticket_event::Model) -> OutboxMessage,
    ) -> Result<Vec<Vec<ticket_event::Model>>, StoreError> {
        self.save_changes_completing(changes, None, publish).await
    }

    /// [`Store::save_changes`] that also marks an open reply follow-up of the first
    /// changed ticket done; [`StoreError::NotFound`] when there is no such open follow-up.
    pub async fn save_changes_completing(
        &self,
        changes: Vec<Change>,
        follow_up: Option<FollowUpDone>,
        publish: impl Fn(&ticket::Model, &ticket_event::Model) -> OutboxMessage,
    ) -> Result<Vec<Vec<ticket_event::Model>>, StoreError> {
        let txn = self.begin().await?;
        if let (Some(done), Some(first)) = (&follow_up, changes.first()) {
            let completed =
                crate::follow_ups::complete_reply(&*txn, &first.updated.id, &done.id, &done.by, done.at, &done.note)
                    .await?;
            if !completed {
                return Err(StoreError::NotFound("open reply follow-up"));
            }
        }
        let mut stored = Vec::with_capacity(changes.len());
        for change in changes {
            debug_assert_eq!(change.updated.version, change.expected_version + 1);
            work::update_ticket(&txn, &change.updated, change.expected_version).await?;
            stored.push(work::append_events(&txn, &change.updated, change.events, &publish).await?);
        }
        self.commit(txn).await?;
        Ok(stored)
    }

    /// One page of tickets, newest first.
    pub async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<ticket::Model>, StoreError> {
        use ticket::Column as C;
        let mut query = ticket::Entity::find();
        if let Some(ids) = &filter.property_ids {
            query = query.filter(C::PropertyId.is_in(ids.iter().cloned()));
        }
        if !filter.states.is_empty() {
            query = query.filter(C::State.is_in(filter.states.iter().cloned()));
        }
        let equal = [
            (C::Department, &filter.department),
            (C::AssigneeId, &filter.assignee_id),
            (C::Priority, &filter.priority),
            (C::Kind, &filter.kind),
        ];
        for (column, value) in equal {
            if let Some(value) = value {
                query = query.filter(column.eq(value.as_str()));
            }
        }
        if let Some(now) = filter.overdue_at {
            query = query.filter(overdue_condition(now));
        }
        if let Some(after) = filter.created_after {
            query = query.filter(C::CreatedAt.gte(after));
        }
        if let Some(before) = filter.created_before {
            query = query.filter(C::CreatedAt.lt(before));
        }
        if let Some(before_id) = &filter.before_id {
            query = query.filter(C::Id.lt(before_id.as_str()));
        }
        Ok(query.order_by_desc(C::Id).limit(filter.limit).all(&self.db).await?)
    }

    /// The whole history of a ticket, oldest first.
    pub async fn history(&self, ticket_id: &str) -> Result<Vec<ticket_event::Model>, StoreError> {
        Ok(ticket_event::Entity::find()
            .filter(ticket_event::Column::TicketId.eq(ticket_id))
            .order_by_asc(ticket_event::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Events after `cursor` in commit order, for watchers. `property_ids: None`: all.
    ///
    /// On PostgreSQL, sequence ids are taken at insert but become visible at commit, so a
    /// later id can commit first. Only events of transactions older than every running one
    /// (`pg_snapshot_xmin`) are returned, ordered by (transaction id, id): anything that
    /// commits later has a higher transaction id, so a cursor never steps past an event.
    pub async fn events_after(
        &self,
        cursor: EventCursor,
        property_ids: Option<&[String]>,
        department: Option<&str>,
        assignee_id: Option<&str>,
        limit: u64,
    ) -> Result<Vec<ticket_event::Model>, StoreError> {
        use ticket_event::Column as C;
        let mut query = ticket_event::Entity::find()
            .filter(
                Condition::any()
                    .add(C::TxId.gt(cursor.tx_id))
                    .add(Condition::all().add(C::TxId.eq(cursor.tx_id)).add(C::Id.gt(cursor.id))),
            )
            .filter(settled_events(self.backend()));
        if let Some(ids) = property_ids {
            query = query.filter(C::PropertyId.is_in(ids.iter().cloned()));
        }
        if let Some(department) = department {
            query = query.filter(C::Department.eq(department));
        }
        if let Some(assignee_id) = assignee_id {
            query = query.filter(C::AssigneeId.eq(assignee_id));
        }
        Ok(query.order_by_asc(C::TxId).order_by_asc(C::Id).limit(limit).all(&self.db).await?)
    }

    /// The cursor of the newest settled event (the start when there is none).
    pub async fn last_event_cursor(&self) -> Result<EventCursor, StoreError> {
        use ticket_event::Column as C;
        let last = ticket_event::Entity::find()
            .filter(settled_events(self.backend()))
            .order_by_desc(C::TxId)
            .order_by_desc(C::Id)
            .one(&self.db)
            .await?;
        Ok(last.as_ref().map(EventCursor::of).unwrap_or_default())
    }

    /// Number of unsent outbox messages (for tests and the relay's lag metric).
    pub async fn outbox_len(&self) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(outbox::Entity::find().count(&self.db).await?)
    }
}

pub(crate) async fn append_event(
    txn: &DatabaseTransaction,
    ticket: &ticket::Model,
    event: NewEvent,
    publish: &impl Fn(&ticket::Model, &ticket_event::Model) -> OutboxMessage,
) -> Result<ticket_event::Model, StoreError> {
    let row = event_row(ticket, event);
    let stored = row.insert(txn).await?;
    let message = publish(ticket, &stored);
    enqueue(txn, message, stored.occurred_at).await?;
    Ok(stored)
}

/// Adds a message to the outbox inside the caller's transaction.
pub async fn enqueue(txn: &impl ConnectionTrait, message: OutboxMessage, at: DateTime<Utc>) -> Result<(), StoreError> {
    outbox_row(message, at).insert(txn).await?;
    Ok(())
}

/// The history row of `event` about `ticket`, with the ticket's routing facts and version.
fn event_row(ticket: &ticket::Model, event: NewEvent) -> ticket_event::ActiveModel {
    ticket_event::ActiveModel {
        event_id: Set(event.event_id),
        ticket_id: Set(ticket.id.clone()),
        event_type: Set(event.event_type),
        actor_id: Set(event.actor_id),
        actor_role: Set(event.actor_role),
        from_state: Set(event.from_state),
        to_state: Set(event.to_state),
        note: Set(event.note),
        occurred_at: Set(event.occurred_at),
        ticket_version: Set(ticket.version),
        property_id: Set(ticket.property_id.clone()),
        department: Set(ticket.department.clone()),
        assignee_id: Set(ticket.assignee_id.clone()),
        priority: Set(ticket.priority.clone()),
        ..Default::default()
    }
}

fn outbox_row(message: OutboxMessage, at: DateTime<Utc>) -> outbox::ActiveModel {
    outbox::ActiveModel {
        message_id: Set(message.message_id),
        routing_key: Set(message.routing_key),
        payload: Set(message.payload),
        created_at: Set(at),
        attempts: Set(0),
        claim_token: Set(None),
        claimed_until: Set(None),
        trace_parent: Set(message.trace_parent),
        ..Default::default()
    }
}
