//! Building blocks for a consumer's unit of work, all inside one transaction: the inbox
//! (idempotency), ticket row locks, and the lookups the dispatch worker decides with (the
//! change itself is saved with `tickets::save`). Commit with [`Store::commit`] so local waiters wake.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, LockBehavior, LockType, Query, QueryStatementBuilder};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, TryInsertResult,
};

use propdesk_domain::aggregate::CategoryCode;
use propdesk_domain::{Candidate, Department, Role, TicketState};
use tokio::sync::{Notify, OwnedMutexGuard};

use crate::entity::{inbox, outbox, property, resident, staff, ticket, unit};
use crate::outbox::{Handed, Handoff};
use crate::tickets::{readable, tickets_of};
use crate::{Store, StoreError};
use propdesk_domain::Ticket;
use propdesk_events::BusMessage;

/// Codes of the states that still owe work (they count in an assignee's load), as the
/// domain defines them.
pub fn open_states() -> Vec<&'static str> {
    TicketState::ALL.iter().filter(|s| s.is_open()).map(|s| s.code()).collect()
}

impl Store {
    /// A write transaction for work someone waits on (the API). On SQLite it takes the
    /// write lock at once (`BEGIN IMMEDIATE`): a deferred transaction that reads first
    /// cannot be upgraded after another writer commits and would fail at once, while an
    /// immediate one queues on the busy timeout. Within this process, SQLite writers first
    /// queue on the store's write gate, where these go ahead of background work.
    pub async fn begin(&self) -> Result<Transaction, StoreError> {
        self.begin_as(true).await
    }

    /// A write transaction for background work (consumers, timers): on SQLite it lets the
    /// API's waiting writers go first. The same as [`Store::begin`] on PostgreSQL.
    pub async fn begin_background(&self) -> Result<Transaction, StoreError> {
        self.begin_as(false).await
    }

    async fn begin_as(&self, urgent: bool) -> Result<Transaction, StoreError> {
        let gate = match &self.write_gate {
            Some(gate) => Some(gate.enter(urgent).await),
            None => None,
        };
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        Ok(Transaction {
            inner: self.db.begin_with_options(options).await?,
            handoff: self.handoff.clone(),
            handed: Mutex::default(),
            _gate: gate,
        })
    }

    /// Commits, hands the outbox messages it wrote to this process's relay, and wakes the
    /// relay and watch streams.
    pub async fn commit(&self, txn: Transaction) -> Result<(), StoreError> {
        let handed = std::mem::take(&mut *txn.handed.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        txn.inner.commit().await?;
        self.handoff.hand(handed);
        self.notify_commit();
        Ok(())
    }

    /// Whether any ticket was closed as a duplicate of `original_id`.
    pub async fn has_duplicates(&self, original_id: &str) -> Result<bool, StoreError> {
        let found = ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Id)
            .filter(ticket::Column::DuplicateOf.eq(original_id))
            .into_tuple::<String>()
            .one(&self.db)
            .await?;
        Ok(found.is_some())
    }

    /// Reports linked to an incident.
    pub async fn linked_tickets(&self, incident_id: &str) -> Result<Vec<Ticket>, StoreError> {
        reports_of(&self.db, incident_id).await
    }
}

/// SQLite's one writer, shared by this process's write transactions in order, except that
/// background work lets writers someone waits on go first: a busy queue does not make the
/// front desk wait.
#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    lock: Arc<tokio::sync::Mutex<()>>,
    urgent_waiting: AtomicUsize,
    urgent_served: Notify,
}

/// Counts an urgent writer as waiting until it has the gate, or gave up waiting.
struct Waiting<'a>(&'a WriteGate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.urgent_waiting.fetch_sub(1, Ordering::SeqCst);
        self.0.urgent_served.notify_waiters();
    }
}

impl WriteGate {
    async fn enter(&self, urgent: bool) -> OwnedMutexGuard<()> {
        if urgent {
            self.urgent_waiting.fetch_add(1, Ordering::SeqCst);
            let waiting = Waiting(self);
            let guard = self.lock.clone().lock_owned().await;
            drop(waiting);
            return guard;
        }
        loop {
            // Registered before the check, so a wake-up between the two is not lost.
            let served = self.urgent_served.notified();
            if self.urgent_waiting.load(Ordering::SeqCst) == 0 {
                let guard = self.lock.clone().lock_owned().await;
                if self.urgent_waiting.load(Ordering::SeqCst) == 0 {
                    return guard;
                }
                // An urgent writer queued while this one waited: it goes first.
                drop(guard);
                continue;
            }
            served.await;
        }
    }
}

/// A write transaction from [`Store::begin`]; use it wherever a `&DatabaseTransaction` is
/// taken. Dropped without [`Store::commit`], it rolls back.
pub struct Transaction {
    // Declared first, so it rolls back before the gate opens.
    pub(crate) inner: DatabaseTransaction,
    handoff: Arc<Handoff>,
    /// Outbox messages written here, for the relay once they commit.
    handed: Mutex<Vec<Handed>>,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl Transaction {
    /// The outbox rows of `messages` (each written at its time), claimed for this
    /// process's relay when it takes them; they reach it at commit.
    pub(crate) fn outbox_rows(&self, messages: Vec<(BusMessage, DateTime<Utc>)>) -> Vec<outbox::ActiveModel> {
        let (rows, handed) = self.handoff.rows(messages);
        if !handed.is_empty() {
            self.handed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(handed);
        }
        rows
    }
}

/// So a `&Transaction` goes wherever a connection does.
#[sea_orm_migration::async_trait::async_trait]
impl ConnectionTrait for Transaction {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
        self.inner.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
        self.inner.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
        self.inner.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
        self.inner.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.inner.support_returning()
    }
}

/// Records `message_ids` as applied by `consumer` and returns those not recorded before:
/// the caller applies exactly these, in this transaction. A concurrent transaction
/// claiming one of them waits for this one to end, then finds it taken (or free again
/// after a rollback). One statement, in one key order, so two claims never deadlock.
pub async fn inbox_claim(
    txn: &Transaction,
    consumer: &str,
    message_ids: &[&str],
    at: DateTime<Utc>,
) -> Result<HashSet<String>, StoreError> {
    let mut ids = message_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = ids.into_iter().map(|id| inbox::ActiveModel {
        consumer: Set(consumer.to_owned()),
        message_id: Set(id.to_owned()),
        processed_at: Set(at),
    });
    let claimed = inbox::Entity::insert_many(rows)
        .on_conflict_do_nothing_on([inbox::Column::Consumer, inbox::Column::MessageId])
        .exec_with_returning_keys(txn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(match claimed {
        TryInsertResult::Inserted(keys) => keys.into_iter().map(|(_, message_id)| message_id).collect(),
        TryInsertResult::Empty | TryInsertResult::Conflicted => HashSet::new(),
    })
}

/// The ticket, locked for update until the transaction ends (PostgreSQL; SQLite has one
/// writer). Everything that changes a ticket's alarms takes this lock first, so alarm
/// writers never deadlock and never interleave.
pub async fn lock_ticket(txn: &Transaction, id: &str) -> Result<Option<Ticket>, StoreError> {
    ticket::Entity::find_by_id(id.to_owned()).lock_exclusive().one(txn).await?.map(readable).transpose()
}

/// Like [`lock_ticket`], but `None` when another transaction holds the ticket: a scanner
/// replica moves on to other tickets instead of queueing behind one.
pub async fn try_lock_ticket(txn: &Transaction, id: &str) -> Result<Option<Ticket>, StoreError> {
    ticket::Entity::find_by_id(id.to_owned())
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .one(txn)
        .await?
        .map(readable)
        .transpose()
}

/// Several tickets, locked for update in id order (one order everywhere, so two batches
/// never deadlock on each other's rows); those that do not exist are missing.
pub async fn lock_tickets(txn: &Transaction, ids: &[&str]) -> Result<Vec<Ticket>, StoreError> {
    locked_tickets(txn, ids, None).await
}

/// Those of several tickets that nobody else holds, locked for update now; never waits.
pub async fn try_lock_tickets(txn: &Transaction, ids: &[&str]) -> Result<Vec<Ticket>, StoreError> {
    locked_tickets(txn, ids, Some(LockBehavior::SkipLocked)).await
}

async fn locked_tickets(
    txn: &Transaction,
    ids: &[&str],
    behavior: Option<LockBehavior>,
) -> Result<Vec<Ticket>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let select =
        ticket::Entity::find().filter(ticket::Column::Id.is_in(ids.iter().copied())).order_by_asc(ticket::Column::Id);
    let select = match behavior {
        Some(behavior) => select.lock_with_behavior(LockType::Update, behavior),
        None => select.lock_exclusive(),
    };
    select.all(txn).await?.into_iter().map(readable).collect()
}

/// Several tickets as they stand (not locked).
pub async fn tickets(txn: &Transaction, ids: &[&str]) -> Result<Vec<Ticket>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    ticket::Entity::find()
        .filter(ticket::Column::Id.is_in(ids.iter().copied()))
        .all(txn)
        .await?
        .into_iter()
        .map(readable)
        .collect()
}

/// The tickets closed as duplicates of `original_id`.
pub async fn duplicates_of(txn: &impl ConnectionTrait, original_id: &str) -> Result<Vec<Ticket>, StoreError> {
    let query = ticket::Entity::find().filter(ticket::Column::DuplicateOf.eq(original_id));
    tickets_of(query.order_by_asc(ticket::Column::Id), txn).await
}

/// The reports linked to a group incident (not the incident itself).
pub async fn reports_of(txn: &impl ConnectionTrait, incident_id: &str) -> Result<Vec<Ticket>, StoreError> {
    let query = ticket::Entity::find()
        .filter(ticket::Column::IncidentId.eq(incident_id))
        .filter(ticket::Column::Id.ne(incident_id));
    tickets_of(query.order_by_asc(ticket::Column::Id), txn).await
}

/// The language a resident reads (`None`: unknown resident, or none recorded).
pub async fn resident_language(txn: &impl ConnectionTrait, id: &str) -> Result<Option<String>, StoreError> {
    Ok(resident::Entity::find_by_id(id.to_owned()).one(txn).await?.and_then(|r| r.language))
}

/// A property's name (empty when there is no such property).
pub async fn property_name(txn: &impl ConnectionTrait, id: &str) -> Result<String, StoreError> {
    Ok(property::Entity::find_by_id(id.to_owned()).one(txn).await?.map(|p| p.name).unwrap_or_default())
}

pub async fn unit(txn: &Transaction, id: &str) -> Result<Option<unit::Model>, StoreError> {
    Ok(unit::Entity::find_by_id(id.to_owned()).one(txn).await?)
}

/// Open tickets are counted up to this many per person: past it, people count as equally
/// loaded (the longest idle is next), and an assignment costs the same however large the
/// backlog grows.
pub const LOAD_COUNTED_UP_TO: u64 = 50;

/// On-duty technicians and agents of `department` at the property, with their open load
/// (counted up to [`LOAD_COUNTED_UP_TO`]), in one statement.
pub async fn assignment_candidates(
    txn: &Transaction,
    property_id: &str,
    department: Department,
) -> Result<Vec<Candidate>, StoreError> {
    let key = (property_id.to_owned(), department);
    let mut pools = assignment_candidates_of(txn, std::slice::from_ref(&key)).await?;
    Ok(pools.remove(&key).unwrap_or_default())
}

/// [`assignment_candidates`] of several properties and departments in one statement, by
/// (property, department); each one asked for is there, empty when nobody is on duty.
pub async fn assignment_candidates_of(
    txn: &Transaction,
    wanted: &[(String, Department)],
) -> Result<HashMap<(String, Department), Vec<Candidate>>, StoreError> {
    let mut pools: HashMap<(String, Department), Vec<Candidate>> =
        wanted.iter().map(|key| (key.clone(), Vec::new())).collect();
    if wanted.is_empty() {
        return Ok(pools);
    }
    let open_of_person = Query::select()
        .expr(Expr::val(1))
        .from(ticket::Entity)
        .and_where(Expr::col((ticket::Entity, ticket::Column::AssigneeId)).equals((staff::Entity, staff::Column::Id)))
        .and_where(Expr::col((ticket::Entity, ticket::Column::State)).is_in(open_states()))
        .and_where(Expr::col((ticket::Entity, ticket::Column::IsIncident)).eq(false))
        .limit(LOAD_COUNTED_UP_TO)
        .to_owned();
    let open = Query::select().expr(Expr::cust("COUNT(*)")).from_subquery(open_of_person, "counted").to_owned();
    let pairs = wanted.iter().fold(Condition::any(), |any, (property_id, department)| {
        any.add(
            Condition::all()
                .add(staff::Column::PropertyId.eq(property_id.as_str()))
                .add(staff::Column::Department.eq(department.code())),
        )
    });
    // (property, person, department, last assigned, open tickets counted)
    type Person = (String, String, Option<String>, Option<DateTime<Utc>>, i64);
    let people: Vec<Person> = staff::Entity::find()
        .select_only()
        .column(staff::Column::PropertyId)
        .column(staff::Column::Id)
        .column(staff::Column::Department)
        .column(staff::Column::LastAssignedAt)
        .column_as(Expr::SubQuery(None, Box::new(open.into_sub_query_statement())), "open")
        .filter(pairs)
        .filter(staff::Column::OnDuty.eq(true))
        .filter(staff::Column::Role.is_in([Role::Technician.code(), Role::Agent.code()]))
        .order_by_asc(staff::Column::Id)
        .into_tuple()
        .all(txn)
        .await?;
    for (property_id, staff_id, department, last_assigned_at, open) in people {
        let Some(department) = department.and_then(|code| code.parse::<Department>().ok()) else { continue };
        if let Some(pool) = pools.get_mut(&(property_id, department)) {
            pool.push(Candidate { staff_id, open_tickets: u64::try_from(open).unwrap_or(0), last_assigned_at });
        }
    }
    Ok(pools)
}

/// The department's supervisor at the property, else the property's manager.
pub async fn supervisor_of(
    txn: &Transaction,
    property_id: &str,
    department: Department,
) -> Result<Option<staff::Model>, StoreError> {
    let supervisor = staff::Entity::find()
        .filter(staff::Column::PropertyId.eq(property_id))
        .filter(staff::Column::Department.eq(department.code()))
        .filter(staff::Column::Role.eq(Role::Supervisor.code()))
        .order_by_asc(staff::Column::Id)
        .one(txn)
        .await?;
    if supervisor.is_some() {
        return Ok(supervisor);
    }
    manager_of(txn, property_id).await
}

/// The property's manager (lowest id when there are several).
pub async fn manager_of(txn: &impl ConnectionTrait, property_id: &str) -> Result<Option<staff::Model>, StoreError> {
    Ok(staff::Entity::find()
        .filter(staff::Column::PropertyId.eq(property_id))
        .filter(staff::Column::Role.eq(Role::Manager.code()))
        .order_by_asc(staff::Column::Id)
        .one(txn)
        .await?)
}

/// Records that `staff_ids` were given work at `at`, in one statement.
///
/// On PostgreSQL the rows are locked first, in id order, by a sub-select: an `UPDATE … WHERE
/// id IN (…)` alone takes its rows in the order it meets them on the page, and two
/// transactions assigning the same people can meet them in opposite orders (a row's new
/// version lands elsewhere) and deadlock.
pub async fn mark_assigned(txn: &Transaction, staff_ids: &[&str], at: DateTime<Utc>) -> Result<(), StoreError> {
    if staff_ids.is_empty() {
        return Ok(());
    }
    let update = staff::Entity::update_many().col_expr(staff::Column::LastAssignedAt, Expr::value(at));
    let update = if txn.get_database_backend() == DbBackend::Postgres {
        let in_order = Query::select()
            .column(staff::Column::Id)
            .from(staff::Entity)
            .and_where(staff::Column::Id.is_in(staff_ids.iter().copied()))
            .order_by(staff::Column::Id, sea_orm::sea_query::Order::Asc)
            .lock(LockType::NoKeyUpdate)
            .to_owned();
        update.filter(staff::Column::Id.in_subquery(in_order))
    } else {
        update.filter(staff::Column::Id.is_in(staff_ids.iter().copied()))
    };
    update.exec(txn).await?;
    Ok(())
}

/// Reports (not incidents, not cancelled) of a building and category since `since`.
pub async fn recent_reports(
    txn: &Transaction,
    building_id: &str,
    category: &CategoryCode,
    since: DateTime<Utc>,
) -> Result<Vec<Ticket>, StoreError> {
    ticket::Entity::find()
        .filter(ticket::Column::BuildingId.eq(building_id))
        .filter(ticket::Column::Category.eq(category.as_str()))
        .filter(ticket::Column::CreatedAt.gte(since))
        .filter(ticket::Column::IsIncident.eq(false))
        .filter(ticket::Column::State.is_in(open_states()))
        .order_by_asc(ticket::Column::Id)
        .all(txn)
        .await?
        .into_iter()
        .map(readable)
        .collect()
}

/// The open incident of a building and category, if any. Read through the partial index
/// of incidents: its predicate is written literally, not bound, so the planner can use it.
pub async fn open_incident(
    txn: &Transaction,
    building_id: &str,
    category: &CategoryCode,
) -> Result<Option<Ticket>, StoreError> {
    ticket::Entity::find()
        .filter(ticket::Column::BuildingId.eq(building_id))
        .filter(ticket::Column::Category.eq(category.as_str()))
        .filter(ticket::Column::IsIncident.into_expr())
        .filter(ticket::Column::State.is_in(open_states()))
        .order_by_desc(ticket::Column::Id)
        .one(txn)
        .await?
        .map(readable)
        .transpose()
}

/// The latest resolution of the unit and category since `since`, other than `excluding`.
pub async fn last_resolution(
    txn: &Transaction,
    unit_id: &str,
    category: &CategoryCode,
    since: DateTime<Utc>,
    excluding: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let last: Option<Option<DateTime<Utc>>> = ticket::Entity::find()
        .select_only()
        .column(ticket::Column::ResolvedAt)
        .filter(ticket::Column::UnitId.eq(unit_id))
        .filter(ticket::Column::Category.eq(category.as_str()))
        .filter(ticket::Column::ResolvedAt.gte(since))
        .filter(ticket::Column::Id.ne(excluding))
        .order_by_desc(ticket::Column::ResolvedAt)
        .into_tuple()
        .one(txn)
        .await?;
    Ok(last.flatten())
}

/// Serializes transactions on each of `keys` until commit (PostgreSQL advisory locks), all
/// taken in one statement and in one order (of their hashes), so two transactions that
/// share keys never wait for each other in a circle. SQLite needs none: it has a single
/// writer.
pub async fn lock_keys(txn: &Transaction, keys: impl IntoIterator<Item = impl AsRef<str>>) -> Result<(), StoreError> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut hashes: Vec<i64> = keys.into_iter().map(|key| key_hash(key.as_ref())).collect();
    if hashes.is_empty() {
        return Ok(());
    }
    hashes.sort_unstable();
    hashes.dedup();
    // A function scan yields the array in order, so the locks are taken in that order.
    let placeholders: Vec<String> = (1..=hashes.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT pg_advisory_xact_lock(k) FROM unnest(ARRAY[{}]::bigint[]) AS k", placeholders.join(","));
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, hashes.into_iter().map(Into::into));
    txn.execute_raw(statement).await?;
    Ok(())
}

/// FNV-1a: stable across processes and releases.
fn key_hash(key: &str) -> i64 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    hash as i64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Enters the gate as `name`, records the order of entry, holds it for a moment.
    async fn enter(
        gate: Arc<WriteGate>,
        urgent: bool,
        name: &'static str,
        order: Arc<std::sync::Mutex<Vec<&'static str>>>,
    ) {
        let _held = gate.enter(urgent).await;
        order.lock().unwrap().push(name);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    #[tokio::test]
    async fn waiting_api_writers_go_before_background_work() {
        let gate = Arc::new(WriteGate::default());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = gate.enter(false).await;
        let background = tokio::spawn(enter(gate.clone(), false, "background", order.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let api = tokio::spawn(enter(gate.clone(), true, "api", order.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(held);
        background.await.unwrap();
        api.await.unwrap();
        // The background writer queued before the API writer came, yet lets it go first...
        assert_eq!(*order.lock().unwrap(), ["api", "background"]);

        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = gate.enter(true).await;
        let api = tokio::spawn(enter(gate.clone(), true, "api", order.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let background = tokio::spawn(enter(gate.clone(), false, "background", order.clone()));
        let (gate_again, order_again) = (gate.clone(), order.clone());
        let api_again = async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            enter(gate_again, true, "api again", order_again).await;
        };
        let api_again = tokio::spawn(api_again);
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(held);
        for task in [api, background, api_again] {
            task.await.unwrap();
        }
        // ...and background work that arrives while API writers wait lets them all go first.
        assert_eq!(*order.lock().unwrap(), ["api", "api again", "background"]);
    }

    #[tokio::test]
    async fn an_api_writer_that_gives_up_does_not_block_background_work() {
        let gate = Arc::new(WriteGate::default());
        let held = gate.enter(true).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(100), gate.enter(true)).await;
        assert!(gave_up.is_err(), "the gate was held");
        drop(held);
        let background = tokio::time::timeout(Duration::from_secs(1), gate.enter(false)).await;
        assert!(background.is_ok(), "background work waited for a writer that was gone");
    }
}
