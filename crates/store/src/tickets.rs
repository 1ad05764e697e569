//! Tickets, their history and the outbox messages their changes publish.

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{
    Alias, CommonTableExpression, Condition, DynIden, Expr, ExprTrait, IntoIden, IntoTableRef, OnConflict, Order,
    PostgresQueryBuilder, Query as SqlQuery, TableRef, ValueTuple, WithClause,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityName, EntityTrait, IdenStatic, IntoActiveModel,
    Iterable, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Set, Statement, TryInsertResult, Value,
};

use propdesk_domain::follow_up::{FollowUpKind, FollowUpState};
use propdesk_domain::replies::{ReplySent, StandardReplyRef};
use propdesk_domain::search::Query;
use propdesk_domain::ticket::UnknownCode;
use propdesk_domain::{Department, FieldChange, Priority, Recorded, Ticket, TicketFacts, TicketKind, TicketState};
use propdesk_events::{BusMessage, HistoryEvent};

use crate::entity::ticket::UnreadableTicket;
use crate::entity::{outbox, ticket, ticket_event};
use crate::outbox::{Handed, Handoff};
use crate::sealing;
use crate::search;
use crate::work::Transaction;
use crate::{Store, StoreError, work};

/// A ticket changed by its commands, with the events they recorded: what one save writes.
#[derive(Debug, Clone)]
pub struct Change {
    pub ticket: Ticket,
    pub events: Vec<Recorded>,
}

/// Which reply follow-up a change completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyFollowUp {
    /// This one, which must be an open reply follow-up of the ticket.
    Id(String),
    /// Whichever the ticket has open (none is fine: a reply may come before any is owed).
    Open,
    /// The chase of this case party, which must be open.
    Chase(String),
}

/// A reply follow-up completed together with a ticket change.
#[derive(Debug, Clone)]
pub struct FollowUpDone {
    pub which: ReplyFollowUp,
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: String,
}

/// A ticket to create with its first events.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub ticket: Ticket,
    pub events: Vec<Recorded>,
    /// The trace its outbox messages travel under, when the writer runs outside the caller's
    /// trace (group commit); `None`: the writer's own.
    pub trace_parent: Option<String>,
}

/// Outcome of an idempotent create.
#[derive(Debug)]
pub enum Created {
    /// The ticket was written now.
    New(Ticket),
    /// A ticket with this request id already existed; nothing was written.
    Existing(Ticket),
}

/// What to list. `property_ids: None` means every property.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub property_ids: Option<Vec<String>>,
    pub states: Vec<TicketState>,
    pub department: Option<Department>,
    pub assignee_id: Option<String>,
    pub priority: Option<Priority>,
    pub kind: Option<TicketKind>,
    /// Only tickets whose reporter's phone has this key (`search::phone_key`).
    pub phone_key: Option<String>,
    pub resident_id: Option<String>,
    pub unit_id: Option<String>,
    pub first_contact_agent_id: Option<String>,
    /// Only the reports linked to this incident.
    pub incident_id: Option<String>,
    /// Only the duplicates closed into this original.
    pub duplicate_of: Option<String>,
    /// Only tickets whose serious-complaint review is open.
    pub review_open: bool,
    /// Only tickets with a deadline before this instant that was not met.
    pub overdue_at: Option<DateTime<Utc>>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Cursor: only ids strictly below this one (ids are time-ordered UUIDv7).
    pub before_id: Option<String>,
    pub limit: u64,
}

/// Whose work a list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The agent who received the request first (首问负责制).
    FirstContact(String),
    /// The person it is assigned to.
    Assignee(String),
}

impl Owner {
    pub(crate) fn condition(&self) -> Condition {
        match self {
            Owner::FirstContact(id) => Condition::all().add(ticket::Column::FirstContactAgentId.eq(id.as_str())),
            Owner::Assignee(id) => Condition::all().add(ticket::Column::AssigneeId.eq(id.as_str())),
        }
    }
}

impl TicketFilter {
    /// Every condition of the filter but the page cursor.
    fn condition(&self) -> Condition {
        use ticket::Column as C;
        let phone_index = self.phone_key.as_deref().map(sealing::index_of_phone_key);
        let mut condition = Condition::all();
        if let Some(ids) = &self.property_ids {
            condition = condition.add(C::PropertyId.is_in(ids.iter().cloned()));
        }
        if !self.states.is_empty() {
            condition = condition.add(C::State.is_in(self.states.iter().map(|s| s.code())));
        }
        let equal = [
            (C::Department, self.department.map(Department::code)),
            (C::AssigneeId, self.assignee_id.as_deref()),
            (C::Priority, self.priority.map(Priority::code)),
            (C::Kind, self.kind.map(TicketKind::code)),
            (C::ReporterPhoneKey, phone_index.as_deref()),
            (C::ResidentId, self.resident_id.as_deref()),
            (C::UnitId, self.unit_id.as_deref()),
            (C::FirstContactAgentId, self.first_contact_agent_id.as_deref()),
            (C::DuplicateOf, self.duplicate_of.as_deref()),
        ];
        for (column, value) in equal {
            if let Some(value) = value {
                condition = condition.add(column.eq(value));
            }
        }
        if let Some(incident_id) = &self.incident_id {
            condition = condition.add(C::IncidentId.eq(incident_id.as_str())).add(C::Id.ne(incident_id.as_str()));
        }
        if let Some(now) = self.overdue_at {
            condition = condition.add(overdue_condition(now));
        }
        if self.review_open {
            condition = condition.add(C::ReviewRecord.is_not_null()).add(C::ReviewCause.is_null());
        }
        if let Some(after) = self.created_after {
            condition = condition.add(C::CreatedAt.gte(after));
        }
        if let Some(before) = self.created_before {
            condition = condition.add(C::CreatedAt.lt(before));
        }
        condition
    }
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
    /// Writes several new tickets at once (group commit: one round of inserts and one commit
    /// for the lot). Each outcome is [`Created::New`], or [`Created::Existing`] when its agent
    /// already used its request id, before or earlier in the same batch.
    ///
    /// On PostgreSQL, a batch of up to a hundred tickets with nothing but tickets, search
    /// entries, events and their messages to write (no standard reply to count) is one
    /// statement: the ticket insert and
    /// the inserts that depend on it are data-modifying `WITH` parts, which the statement's
    /// own commit makes atomic, so no `BEGIN` and `COMMIT` go to the server. Otherwise (and
    /// on SQLite, which has no such statements) the same rows are written in a transaction.
    pub async fn create_tickets(&self, batch: Vec<NewTicket>) -> Result<Vec<Created>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let simple = batch.len() <= ONE_STATEMENT_AT_MOST
            && batch.iter().flat_map(|new| &new.events).all(|event| standard_reply(event).is_none());
        let inserted = if self.backend() == DbBackend::Postgres && simple {
            let (inserted, handed) = insert_created_in_one_statement(&self.db, &self.handoff, &batch).await?;
            self.handoff.hand(handed);
            self.notify_commit();
            inserted
        } else {
            let txn = self.begin().await?;
            let inserted = insert_created(&txn, &batch).await?;
            self.commit(txn).await?;
            inserted
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut reported = HashSet::new();
        for new in batch {
            if inserted.contains(&new.ticket.id) && reported.insert(new.ticket.id.clone()) {
                outcomes.push(Created::New(stored(new.ticket, 1)?));
                continue;
            }
            // Not written: the ticket its agent logged with this request id (committed, since
            // the insert saw it), which an earlier request or one earlier in the batch wrote.
            let existing = ticket::Entity::find()
                .filter(ticket::Column::FirstContactAgentId.eq(new.ticket.first_contact_agent_id.as_str()))
                .filter(ticket::Column::RequestId.eq(new.ticket.request.request_id.as_str()))
                .one(&self.db)
                .await?
                // Not inserted and not there: the insert failed some other way.
                .ok_or(StoreError::Vanished("a ticket neither inserted nor found"))?;
            outcomes.push(Created::Existing(existing.into_ticket()?));
        }
        Ok(outcomes)
    }

    pub async fn get_ticket(&self, id: &str) -> Result<Option<Ticket>, StoreError> {
        ticket::Entity::find_by_id(id.to_owned()).one(&self.db).await?.map(readable).transpose()
    }

    /// Saves several changed tickets (e.g. an incident and its reports) in one transaction:
    /// all of them, or none if any ticket changed meanwhile ([`StoreError::StaleVersion`]).
    /// Returns the tickets as saved.
    pub async fn save(&self, changes: Vec<Change>) -> Result<Vec<Ticket>, StoreError> {
        self.save_completing(changes, None, Vec::new()).await
    }

    /// [`Store::save`] that also marks a follow-up of the first changed ticket done
    /// ([`StoreError::FollowUpNotOpen`] when the one named is not open) and opens `opens`.
    pub async fn save_completing(
        &self,
        changes: Vec<Change>,
        follow_up: Option<FollowUpDone>,
        opens: Vec<crate::follow_ups::NewFollowUp>,
    ) -> Result<Vec<Ticket>, StoreError> {
        let txn = self.begin().await?;
        let now = crate::now();
        for task in opens {
            crate::follow_ups::insert_follow_up(&txn, task, now).await?;
        }
        if let (Some(done), Some(first)) = (&follow_up, changes.first()) {
            let ticket_id = first.ticket.id.as_str();
            match &done.which {
                ReplyFollowUp::Id(id) => {
                    let completed =
                        crate::follow_ups::complete_reply(&txn, ticket_id, id, &done.by, done.at, &done.note).await?;
                    if !completed {
                        return Err(StoreError::FollowUpNotOpen);
                    }
                }
                ReplyFollowUp::Chase(party_id) => {
                    let completed =
                        crate::follow_ups::complete_chase(&txn, ticket_id, party_id, &done.by, done.at, &done.note)
                            .await?;
                    if !completed {
                        return Err(StoreError::FollowUpNotOpen);
                    }
                }
                ReplyFollowUp::Open => {
                    let (reply, done_state) = (FollowUpKind::Reply, FollowUpState::Done);
                    crate::follow_ups::settle_open(&txn, ticket_id, reply, done_state, &done.by, done.at, &done.note)
                        .await?;
                }
            }
        }
        let mut saved = Vec::with_capacity(changes.len());
        for change in changes {
            saved.push(save(&txn, change.ticket, &change.events).await?);
        }
        self.commit(txn).await?;
        Ok(saved)
    }

    /// Tickets by id (unknown ids are left out).
    pub async fn get_tickets(&self, ids: &[String]) -> Result<Vec<Ticket>, StoreError> {
        let rows = ticket::Entity::find().filter(ticket::Column::Id.is_in(ids.iter().cloned())).all(&self.db).await?;
        rows.into_iter().map(readable).collect()
    }

    /// A page of the open tickets `owner` owns: overdue at `now` first, then the oldest
    /// first, after skipping `offset`.
    pub async fn owned_open_tickets(
        &self,
        owner: &Owner,
        property_ids: Option<&[String]>,
        now: DateTime<Utc>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Ticket>, StoreError> {
        use ticket::Column as C;
        let open = TicketState::ALL.iter().filter(|s| s.is_open()).map(|s| s.code());
        let mut query = ticket::Entity::find().filter(owner.condition()).filter(C::State.is_in(open));
        if let Some(ids) = property_ids {
            query = query.filter(C::PropertyId.is_in(ids.iter().cloned()));
        }
        let overdue_first: Expr = Expr::case(overdue_condition(now), 0).finally(1).into();
        let page = query.order_by(overdue_first, Order::Asc).order_by_asc(C::Id).offset(offset).limit(limit);
        tickets_of(page, &self.db).await
    }

    /// One page of tickets, newest first.
    pub async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>, StoreError> {
        let mut query = ticket::Entity::find().filter(filter.condition());
        if let Some(before_id) = &filter.before_id {
            query = query.filter(ticket::Column::Id.lt(before_id.as_str()));
        }
        query
            .order_by_desc(ticket::Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(readable)
            .collect()
    }

    /// One page of the tickets matching a free-text query and the filter (its `before_id`
    /// aside), after skipping `offset`: the newest [`search::SEARCH_WINDOW`] matches, best
    /// match first and newest first among equals.
    pub async fn search_tickets(
        &self,
        query: &Query,
        filter: &TicketFilter,
        offset: u64,
    ) -> Result<Vec<Ticket>, StoreError> {
        let limit = Ord::min(filter.limit, search::SEARCH_WINDOW.saturating_sub(offset));
        if limit == 0 {
            return Ok(Vec::new());
        }
        let common = search::is_common(&self.db, query).await?;
        let backend = self.db.get_database_backend();
        let page = search::matching(filter.condition(), backend, query, common).offset(offset).limit(limit);
        tickets_of(page, &self.db).await
    }

    /// The whole history of a ticket, oldest first.
    pub async fn history(&self, ticket_id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        Ok(self.history_page(ticket_id, None, None).await?.into_iter().map(|(_, event)| event).collect())
    }

    /// Up to `limit` events (`None`: all) of a ticket's history after the one with sequence
    /// id `after_id`, oldest first, each with its sequence id (the next page starts after
    /// the last).
    pub async fn history_page(
        &self,
        ticket_id: &str,
        after_id: Option<i64>,
        limit: Option<u64>,
    ) -> Result<Vec<(i64, HistoryEvent)>, StoreError> {
        let mut query = ticket_event::Entity::find().filter(ticket_event::Column::TicketId.eq(ticket_id));
        if let Some(after_id) = after_id {
            query = query.filter(ticket_event::Column::Id.gt(after_id));
        }
        query
            .order_by_asc(ticket_event::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .iter()
            .map(|row| Ok((row.id, history_event(row)?)))
            .collect()
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
        department: Option<Department>,
        assignee_id: Option<&str>,
        limit: u64,
    ) -> Result<Vec<(EventCursor, HistoryEvent)>, StoreError> {
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
            query = query.filter(C::Department.eq(department.code()));
        }
        if let Some(assignee_id) = assignee_id {
            query = query.filter(C::AssigneeId.eq(assignee_id));
        }
        let rows = query.order_by_asc(C::TxId).order_by_asc(C::Id).limit(limit).all(&self.db).await?;
        rows.iter().map(|row| Ok((EventCursor::of(row), history_event(row)?))).collect()
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

/// The tickets a query selects, as the domain reads them.
pub(crate) async fn tickets_of(
    query: Select<ticket::Entity>,
    db: &impl ConnectionTrait,
) -> Result<Vec<Ticket>, StoreError> {
    query.all(db).await?.into_iter().map(readable).collect()
}

/// A row as the domain reads it.
pub(crate) fn readable(row: ticket::Model) -> Result<Ticket, StoreError> {
    Ok(row.into_ticket()?)
}

/// The ticket as stored at `version`.
fn stored(ticket: Ticket, version: i64) -> Result<Ticket, StoreError> {
    Ok(Ticket::restore(TicketFacts { version, ..ticket.into_facts() })?)
}

/// The repository's one write of a changed ticket, inside the caller's transaction: the
/// row, only if the stored version is still the one the ticket was read at, with the
/// version bumped once; then its history events, each with its outbox message. A ticket
/// no command changed (a reminder) keeps its version and only gains the events. Returns
/// the ticket as saved.
pub async fn save(txn: &Transaction, ticket: Ticket, events: &[Recorded]) -> Result<Ticket, StoreError> {
    let unsaved = Unsaved { ticket, events: Cow::Borrowed(events), trace_parent: None };
    save_all(txn, vec![unsaved]).await?.pop().ok_or(StoreError::Vanished("a saved ticket"))
}

/// A changed ticket and its new events (borrowed from a caller that keeps them, or
/// owned), for [`save_all`].
#[derive(Debug, Clone)]
pub struct Unsaved<'a> {
    pub ticket: Ticket,
    pub events: Cow<'a, [Recorded]>,
    /// The trace its messages travel under when it is saved outside the work that changed
    /// it (`None`: the saving work's own).
    pub trace_parent: Option<String>,
}

/// [`save`] for several tickets at once: all of them, or none if any changed
/// meanwhile ([`StoreError::StaleVersion`]). On PostgreSQL the changed rows are one
/// `UPDATE … FROM (VALUES …)`; the history and messages of all of them are one insert
/// each. Returns the tickets as saved, in order.
pub async fn save_all(txn: &Transaction, changes: Vec<Unsaved<'_>>) -> Result<Vec<Ticket>, StoreError> {
    let version = |ticket: &Ticket| if ticket.is_changed() { ticket.version + 1 } else { ticket.version };
    let changed: Vec<&Ticket> = changes.iter().map(|change| &change.ticket).filter(|t| t.is_changed()).collect();
    // One statement updates a row at most once: a ticket changed twice goes in turn.
    let distinct = changed.iter().map(|t| t.id.as_str()).collect::<HashSet<_>>().len() == changed.len();
    if changed.len() > 1 && distinct && txn.get_database_backend() == DbBackend::Postgres {
        update_in_one_statement(txn, &changed).await?;
    } else {
        for ticket in changed {
            let result = ticket::Entity::update_many()
                .set(ticket::Model::of(ticket.facts(), version(ticket))?.into_active_model().reset_all())
                .filter(ticket::Column::Id.eq(ticket.id.as_str()))
                .filter(ticket::Column::Version.eq(ticket.version))
                .exec(txn)
                .await?;
            if result.rows_affected == 0 {
                return Err(stale(txn, &ticket.id).await);
            }
        }
    }
    let notes = changes.iter().flat_map(|change| {
        change.events.iter().filter_map(search::note_text).map(|note| (change.ticket.id.as_str(), note))
    });
    search::index(txn, notes.collect()).await?;
    let entries = changes.iter().flat_map(|change| {
        let (ticket, version, trace_parent) =
            (change.ticket.facts(), version(&change.ticket), change.trace_parent.as_deref());
        change.events.iter().map(move |event| Entry { ticket, version, event, trace_parent })
    });
    append(txn, entries.collect()).await?;
    changes
        .into_iter()
        .map(|change| {
            let version = version(&change.ticket);
            stored(change.ticket, version)
        })
        .collect()
}

/// Why a ticket's conditional update matched nothing: it changed meanwhile, or is gone.
async fn stale(txn: &Transaction, id: &str) -> StoreError {
    match ticket::Entity::find_by_id(id.to_owned()).one(txn).await {
        Ok(Some(current)) => StoreError::StaleVersion { current: current.version },
        Ok(None) => StoreError::NotFound("ticket"),
        Err(err) => err.into(),
    }
}

/// The rows of several changed tickets in one PostgreSQL statement, each only if its stored
/// version is still the one it was read at:
///
/// ```sql
/// UPDATE tickets SET version = v.column3, … FROM (VALUES ($read_version, $id, $version, …), …) AS v
/// WHERE tickets.id = v.column2 AND tickets.version = v.column1 RETURNING tickets.id
/// ```
async fn update_in_one_statement(txn: &Transaction, changed: &[&Ticket]) -> Result<(), StoreError> {
    use ticket::Column as C;
    let columns: Vec<C> = C::iter().collect();
    let mut tuples = Vec::with_capacity(changed.len());
    for ticket in changed {
        let row = ticket::Model::of(ticket.facts(), ticket.version + 1)?;
        let values = columns.iter().map(|column| sea_orm::ModelTrait::get(&row, *column));
        tuples.push(ValueTuple::Many(std::iter::once(Value::from(ticket.version)).chain(values).collect()));
    }
    // VALUES columns are named column1, column2, …: the version read, then every column.
    let of_values = |n: usize| Expr::col((Alias::new("v"), Alias::new(format!("column{n}"))));
    let mut update = SqlQuery::update();
    update.table(ticket::Entity);
    let mut id_at = 0;
    for (n, column) in columns.iter().enumerate() {
        if matches!(column, C::Id) {
            id_at = n + 2;
        } else {
            update.value(*column, of_values(n + 2));
        }
    }
    update
        .from(TableRef::ValuesList(tuples, Alias::new("v").into_iden()))
        .and_where(Expr::col((ticket::Entity, C::Id)).eq(of_values(id_at)))
        .and_where(Expr::col((ticket::Entity, C::Version)).eq(of_values(1)))
        .returning_col(C::Id);
    let (sql, values) = update.build(PostgresQueryBuilder);
    let rows = txn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
    let updated: HashSet<String> =
        rows.iter().map(|row| row.try_get::<String>("", C::Id.as_str())).collect::<Result<_, _>>()?;
    match changed.iter().find(|ticket| !updated.contains(&ticket.id)) {
        Some(missed) => Err(stale(txn, &missed.id).await),
        None => Ok(()),
    }
}

/// Writes a ticket that a command created (a group incident) with its first events.
pub async fn insert(txn: &Transaction, ticket: Ticket, events: &[Recorded]) -> Result<Ticket, StoreError> {
    ticket::Model::of(ticket.facts(), 1)?
        .into_active_model()
        .reset_all()
        .insert(txn)
        .await
        .map_err(StoreError::from_write)?;
    let notes = events.iter().filter_map(search::note_text);
    let texts = std::iter::once(search::logged_text(ticket.facts())).chain(notes);
    search::index(txn, texts.map(|text| (ticket.id.as_str(), text)).collect()).await?;
    let entries = events.iter().map(|event| Entry { ticket: ticket.facts(), version: 1, event, trace_parent: None });
    append(txn, entries.collect()).await?;
    stored(ticket, 1)
}

/// Each ticket of a create batch once (a request repeated in the batch carries its own id,
/// so only an exact repeat is dropped here).
fn once_each(batch: &[NewTicket]) -> Vec<&NewTicket> {
    let mut seen = HashSet::new();
    batch.iter().filter(|new| seen.insert(new.ticket.id.as_str())).collect()
}

/// The ticket rows of a create batch.
fn created_rows(batch: &[NewTicket]) -> Result<Vec<ticket::ActiveModel>, StoreError> {
    batch.iter().map(|new| Ok(ticket::Model::of(new.ticket.facts(), 1)?.into_active_model().reset_all())).collect()
}

/// The text a new ticket is found by: as logged, and its first events' notes.
fn created_texts(new: &NewTicket) -> impl Iterator<Item = (&str, String)> {
    let notes = new.events.iter().filter_map(search::note_text);
    std::iter::once(search::logged_text(new.ticket.facts())).chain(notes).map(|text| (new.ticket.id.as_str(), text))
}

/// A new ticket's first events, at version 1.
fn created_entries(new: &NewTicket) -> impl Iterator<Item = Entry<'_>> {
    new.events.iter().map(|event| Entry {
        ticket: new.ticket.facts(),
        version: 1,
        event,
        trace_parent: new.trace_parent.as_deref(),
    })
}

/// The tickets of `batch` as in [`Store::create_tickets`], in the caller's transaction:
/// the rows (a request id its agent used before is skipped), then the search entries,
/// events and messages of those written. Returns the ids written.
async fn insert_created(txn: &Transaction, batch: &[NewTicket]) -> Result<HashSet<String>, StoreError> {
    use ticket::Column as C;
    let inserted: HashSet<String> = match ticket::Entity::insert_many(created_rows(batch)?)
        .on_conflict_do_nothing_on([C::FirstContactAgentId, C::RequestId])
        .exec_with_returning_keys(txn)
        .await
        .map_err(StoreError::from_write)?
    {
        TryInsertResult::Inserted(ids) => ids.into_iter().collect(),
        TryInsertResult::Empty | TryInsertResult::Conflicted => HashSet::new(),
    };
    let written: Vec<&NewTicket> =
        once_each(batch).into_iter().filter(|new| inserted.contains(&new.ticket.id)).collect();
    search::index(txn, written.iter().flat_map(|new| created_texts(new)).collect()).await?;
    append(txn, written.iter().flat_map(|new| created_entries(new)).collect()).await?;
    Ok(inserted)
}

/// [`insert_created`] as one PostgreSQL statement, outside any transaction:
///
/// ```sql
/// WITH created AS (INSERT INTO tickets … ON CONFLICT (first_contact_agent_id, request_id)
///                  DO NOTHING RETURNING id),
///      indexed AS (INSERT INTO ticket_search (…) SELECT … FROM (VALUES ($id, …), …) AS v
///                  WHERE v.column1 IN (SELECT id FROM created)),
///      events  AS (INSERT INTO ticket_events …, the same way),
///      sent    AS (INSERT INTO outbox …, the same way)
/// SELECT id FROM created
/// ```
///
/// Each dependent row is sent with its ticket's id first, so only the rows of the tickets
/// actually written are kept. A statement is atomic on its own: all of it commits, or none.
/// Returns the ids written, and the messages of those tickets for this process's relay.
async fn insert_created_in_one_statement(
    db: &impl ConnectionTrait,
    handoff: &Handoff,
    batch: &[NewTicket],
) -> Result<(HashSet<String>, Vec<Handed>), StoreError> {
    use ticket::Column as C;
    let mut tickets = ticket::Entity::insert_many(created_rows(batch)?)
        .on_conflict(OnConflict::columns([C::FirstContactAgentId, C::RequestId]).do_nothing().to_owned())
        .into_query();
    tickets.returning_col(C::Id);
    let mut with = WithClause::new();
    with.cte(CommonTableExpression::new().query(tickets).table_name(Alias::new(CREATED)).to_owned());

    let new = once_each(batch);
    let terms = search::terms_by_ticket(new.iter().flat_map(|new| created_texts(new)).collect());
    if !terms.is_empty() {
        let rows = terms.into_iter().map(|(id, terms)| (id, vec![Value::from(id), Value::from(terms)])).collect();
        let columns = [search::TICKET_ID, search::DOCUMENT].map(|column| Alias::new(column).into_iden()).to_vec();
        let table = Alias::new(search::POSTGRES_TABLE).into_table_ref();
        let document = |n: usize, terms: Expr| if n == 1 { search::postgres_document(terms) } else { terms };
        with.cte(of_created("indexed", table, columns, rows, document));
    }
    let entries: Vec<Entry> = new.iter().flat_map(|new| created_entries(new)).collect();
    let (mut events, mut message_tickets, mut messages) = (Vec::new(), Vec::new(), Vec::new());
    for row in appended_rows(&entries) {
        events.push((row.ticket_id, row.event));
        message_tickets.push(row.ticket_id);
        messages.push(row.message);
    }
    if let Some(events) = entity_rows_of_created("events", events) {
        with.cte(events);
    }
    let (message_rows, handed) = handoff.rows(messages);
    if let Some(messages) = entity_rows_of_created("sent", message_tickets.iter().copied().zip(message_rows).collect())
    {
        with.cte(messages);
    }

    let query = SqlQuery::select().column(C::Id).from(Alias::new(CREATED)).to_owned().with(with);
    let (sql, values) = query.build(PostgresQueryBuilder);
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let rows = db.query_all_raw(statement).await.map_err(StoreError::from_write)?;
    let inserted: HashSet<String> =
        rows.iter().map(|row| row.try_get::<String>("", C::Id.as_str())).collect::<Result<_, _>>()?;
    // Handed over only when they were written: those of a ticket not written were claimed for nothing.
    let handed = if handed.is_empty() {
        handed
    } else {
        message_tickets.iter().zip(handed).filter(|(id, _)| inserted.contains(**id)).map(|(_, h)| h).collect()
    };
    Ok((inserted, handed))
}

/// The most tickets a create writes in one statement: each brings about a hundred
/// parameters with its events, and a statement takes at most 65,535. Larger batches (bulk
/// loads; the API's group commit writes at most 64) go in a transaction.
const ONE_STATEMENT_AT_MOST: usize = 100;

/// The name the one-statement create gives the tickets it wrote.
const CREATED: &str = "created";

/// A `WITH` part named `name`: `INSERT INTO table (columns) SELECT … FROM (VALUES …) AS v
/// WHERE v.column1 IN (SELECT id FROM created)`. Each row is its ticket's id, then the
/// values of `columns`; `select` makes the inserted expression of the n-th column from
/// the column of values it comes from (usually that column itself).
fn of_created(
    name: &str,
    table: TableRef,
    columns: Vec<DynIden>,
    rows: Vec<(&str, Vec<Value>)>,
    select: impl Fn(usize, Expr) -> Expr,
) -> CommonTableExpression {
    let of_values = |n: usize| Expr::col((Alias::new("v"), Alias::new(format!("column{n}"))));
    let mut selected = SqlQuery::select();
    for n in 0..columns.len() {
        // VALUES columns are named column1, column2, …; column1 is the ticket id.
        selected.expr(select(n, of_values(n + 2)));
    }
    let tuples = rows
        .into_iter()
        .map(|(ticket_id, values)| ValueTuple::Many(std::iter::once(Value::from(ticket_id)).chain(values).collect()));
    let created = SqlQuery::select().column(ticket::Column::Id).from(Alias::new(CREATED)).to_owned();
    selected.from_values(tuples, Alias::new("v")).and_where(of_values(1).in_subquery(created));
    let mut insert = SqlQuery::insert();
    insert.into_table(table).columns(columns);
    // As many expressions as columns, by construction: `select_from` cannot refuse them.
    insert.select_from(selected).ok();
    CommonTableExpression::new().query(insert).table_name(Alias::new(name)).to_owned()
}

/// [`of_created`] for rows of an entity, with the columns they set (all come from one
/// constructor, so they set the same ones). `None` when there are no rows.
fn entity_rows_of_created<A: ActiveModelTrait>(name: &str, rows: Vec<(&str, A)>) -> Option<CommonTableExpression> {
    let (_, first) = rows.first()?;
    let columns: Vec<_> =
        <A::Entity as EntityTrait>::Column::iter().filter(|column| first.get(*column).is_set()).collect();
    let values = rows
        .iter()
        .map(|(ticket_id, row)| {
            let values = columns.iter().filter_map(|column| row.get(*column).into_value());
            (*ticket_id, values.collect())
        })
        .collect();
    let table = <A::Entity as Default>::default().table_ref();
    let columns = columns.into_iter().map(IntoIden::into_iden).collect();
    Some(of_created(name, table, columns, values, |_, value| value))
}

/// One history event to append, with the ticket as it stands after it.
struct Entry<'a> {
    ticket: &'a TicketFacts,
    version: i64,
    event: &'a Recorded,
    /// Overrides the writer's trace (see [`NewTicket::trace_parent`]).
    trace_parent: Option<&'a str>,
}

/// Appends history events, their files and outbox messages in the caller's transaction:
/// one insert per table for the lot; and counts the standard replies they used.
async fn append(txn: &Transaction, entries: Vec<Entry<'_>>) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let (mut event_ids, mut events, mut messages) = (Vec::new(), Vec::new(), Vec::new());
    for row in appended_rows(&entries) {
        event_ids.push(row.event_id);
        events.push(row.event);
        messages.push(row.message);
    }
    ticket_event::Entity::insert_many(events).exec_without_returning(txn).await?;
    outbox::Entity::insert_many(txn.outbox_rows(messages)).exec_without_returning(txn).await?;
    let attached = entries
        .iter()
        .zip(&event_ids)
        .filter_map(|(entry, event_id)| Some((entry.event.attachment.as_deref()?, event_id.as_str())))
        .collect();
    crate::attachments::insert(txn, attached).await?;
    let standard_replies: Vec<&str> =
        entries.iter().filter_map(|entry| standard_reply(entry.event)).map(|reply| reply.id.as_str()).collect();
    crate::replies::count_uses(txn, &standard_replies).await
}

/// The standard reply an event answered with, if any.
fn standard_reply(event: &Recorded) -> Option<&StandardReplyRef> {
    event.reply.as_ref()?.standard.as_ref()
}

/// An entry's history row and outbox message, built before either is written.
struct AppendedRow<'a> {
    ticket_id: &'a str,
    event_id: String,
    event: ticket_event::ActiveModel,
    /// The message, written at the event's time.
    message: (BusMessage, DateTime<Utc>),
}

fn appended_rows<'a>(entries: &[Entry<'a>]) -> Vec<AppendedRow<'a>> {
    entries
        .iter()
        .map(|entry| {
            let event_id = uuid::Uuid::now_v7().to_string();
            let mut message = propdesk_events::event_message(&appended(entry, &event_id));
            if let Some(trace) = entry.trace_parent {
                message.trace_parent = Some(trace.to_owned());
            }
            AppendedRow {
                ticket_id: entry.ticket.id.as_str(),
                event: event_row(&event_id, entry.ticket, entry.version, entry.event),
                message: (message, entry.event.at),
                event_id,
            }
        })
        .collect()
}

/// An event as the bus carries it, from the typed entry (nothing to read back). Its
/// `cursor` is empty: the position in the event order is the database's to assign at
/// commit, and history and watch streams read it from there; bus deliveries are not in
/// that order anyway (retries, several queues).
fn appended(entry: &Entry<'_>, event_id: &str) -> HistoryEvent {
    let (ticket, event) = (entry.ticket, entry.event);
    HistoryEvent {
        event_id: event_id.to_owned(),
        cursor: String::new(),
        ticket_id: ticket.id.clone(),
        event_type: event.event_type,
        cause: event.cause,
        changes: event.changes.clone(),
        reply: event.reply.clone(),
        step: event.step.clone(),
        attachment_id: event.attachment.as_ref().map(|a| a.id.clone()),
        actor_id: event.by.id().to_owned(),
        actor_role: event.by.role(),
        from_state: event.from,
        to_state: event.to,
        note: event.note.clone(),
        occurred_at: event.at,
        ticket_version: entry.version,
        property_id: ticket.property_id.clone(),
        department: ticket.department,
        assignee_id: ticket.assignee_id.clone(),
        priority: ticket.priority,
    }
}

/// Adds a message to the outbox inside the caller's transaction.
pub async fn enqueue(txn: &Transaction, message: BusMessage, at: DateTime<Utc>) -> Result<(), StoreError> {
    outbox::Entity::insert_many(txn.outbox_rows(vec![(message, at)])).exec_without_returning(txn).await?;
    Ok(())
}

/// The history row of `event`, with the ticket's routing facts after it.
fn event_row(id: &str, ticket: &TicketFacts, version: i64, event: &Recorded) -> ticket_event::ActiveModel {
    ticket_event::ActiveModel {
        event_id: Set(id.to_owned()),
        ticket_id: Set(ticket.id.clone()),
        event_type: Set(event.event_type.code().to_owned()),
        cause: Set(event.cause.map(|c| c.code().to_owned())),
        changes: Set((!event.changes.is_empty()).then(|| written_changes(&event.changes))),
        reply_method: Set(event.reply.as_ref().map(|r| r.method.code().to_owned())),
        standard_reply_id: Set(event.reply.as_ref().and_then(|r| r.standard.as_ref()).map(|s| s.id.clone())),
        standard_reply_version: Set(event.reply.as_ref().and_then(|r| r.standard.as_ref()).map(|s| s.version)),
        case_step: Set(event.step.as_ref().map(|step| serde_json::to_string(step).unwrap_or_default())),
        attachment_id: Set(event.attachment.as_ref().map(|a| a.id.clone())),
        actor_id: Set(event.by.id().to_owned()),
        actor_role: Set(event.by.role().map(|r| r.code().to_owned())),
        from_state: Set(event.from.map(|s| s.code().to_owned())),
        to_state: Set(event.to.code().to_owned()),
        note: Set(event.note.clone()),
        occurred_at: Set(event.at),
        ticket_version: Set(version),
        property_id: Set(ticket.property_id.clone()),
        department: Set(ticket.department.map(|d| d.code().to_owned())),
        assignee_id: Set(ticket.assignee_id.clone()),
        priority: Set(ticket.priority.code().to_owned()),
        ..Default::default()
    }
}

/// A stored history row as the domain and the wire read it.
fn history_event(row: &ticket_event::Model) -> Result<HistoryEvent, StoreError> {
    let unreadable = |e: UnknownCode| {
        StoreError::Unreadable(UnreadableTicket { ticket_id: row.ticket_id.clone(), detail: e.to_string() })
    };
    Ok(HistoryEvent {
        event_id: row.event_id.clone(),
        cursor: EventCursor::of(row).to_string(),
        ticket_id: row.ticket_id.clone(),
        event_type: row.event_type.parse().map_err(unreadable)?,
        cause: parse_optional(row.cause.as_deref()).map_err(unreadable)?,
        actor_id: row.actor_id.clone(),
        actor_role: parse_optional(row.actor_role.as_deref()).map_err(unreadable)?,
        from_state: parse_optional(row.from_state.as_deref()).map_err(unreadable)?,
        to_state: row.to_state.parse().map_err(unreadable)?,
        note: row.note.clone(),
        occurred_at: row.occurred_at,
        ticket_version: row.ticket_version,
        property_id: row.property_id.clone(),
        department: parse_optional(row.department.as_deref()).map_err(unreadable)?,
        assignee_id: row.assignee_id.clone(),
        priority: row.priority.parse().map_err(unreadable)?,
        changes: match &row.changes {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                StoreError::Unreadable(UnreadableTicket {
                    ticket_id: row.ticket_id.clone(),
                    detail: format!("changes of event {}: {e}", row.event_id),
                })
            })?,
            None => Vec::new(),
        },
        step: match &row.case_step {
            Some(json) => Some(serde_json::from_str(json).map_err(|e| {
                StoreError::Unreadable(UnreadableTicket {
                    ticket_id: row.ticket_id.clone(),
                    detail: format!("case step of event {}: {e}", row.event_id),
                })
            })?),
            None => None,
        },
        attachment_id: row.attachment_id.clone(),
        reply: match &row.reply_method {
            Some(method) => Some(ReplySent {
                method: method.parse().map_err(unreadable)?,
                standard: row
                    .standard_reply_id
                    .clone()
                    .map(|id| StandardReplyRef { id, version: row.standard_reply_version.unwrap_or_default() }),
            }),
            None => None,
        },
    })
}

/// A correction's changes as stored: a JSON array of `{field, before, after}`.
fn written_changes(changes: &[FieldChange]) -> String {
    // Plain strings in a derived structure: serializing cannot fail.
    serde_json::to_string(changes).unwrap_or_default()
}

fn parse_optional<T: std::str::FromStr<Err = UnknownCode>>(code: Option<&str>) -> Result<Option<T>, UnknownCode> {
    code.map(str::parse).transpose()
}
