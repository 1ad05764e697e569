//! propdesk persistence through sea-orm, on PostgreSQL (production) and SQLite (embedded).
//!
//! Invariants:
//! - `tickets::save` (and `save_all`, `insert`, `Store::create_tickets`) is the only place
//!   that maps a `propdesk_domain::Ticket` to its row or bumps its version.
//! - A ticket change, its history events and their outbox messages commit in one
//!   transaction, or none of them does.
//! - History is append-only: nothing here updates or deletes a `ticket_events` row.
//! - Every ticket update is conditional on the version the caller read
//!   ([`StoreError::StaleVersion`] otherwise).
//! - Times are compared with bounds computed in Rust, never the database's clock (SQLite
//!   stores them as text).

pub mod access;
pub mod alarms;
pub mod attachments;
pub mod blobs;
pub mod deliveries;
pub mod directory;
pub mod entity;
pub mod follow_ups;
pub mod migration;
pub mod outbox;
pub mod rekey;
pub mod replies;
pub mod reports;
pub mod retention;
pub mod sealing;
pub mod search;
pub mod seed;
pub mod tickets;
pub mod work;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr, SqlErr};
use sea_orm_migration::MigratorTrait;

pub use access::AccessFilter;
pub use directory::{CreateKey, Inserted, Page, ResidentFilter};
pub use follow_ups::FollowUpFilter;
pub use outbox::{Claimed, RelayPass};
pub use tickets::{Change, Created, EventCursor, FollowUpDone, NewTicket, Owner, ReplyFollowUp, TicketFilter};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("the record changed meanwhile (current version {current})")]
    StaleVersion { current: i64 },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("already exists: {0}")]
    Conflict(String),
    /// A stored ticket the domain cannot read (an unknown code, a broken invariant).
    #[error(transparent)]
    Unreadable(#[from] entity::ticket::UnreadableTicket),
    /// The reply follow-up a change was to complete is not an open one of the ticket.
    #[error("no such open reply follow-up of the ticket")]
    FollowUpNotOpen,
    /// The database lost track of a row it had just written (a bug, never the caller's).
    #[error("the database lost {0}")]
    Vanished(&'static str),
    /// A process-local worker the store relies on has stopped (e.g. the create writer).
    #[error("the {0} has stopped")]
    Stopped(&'static str),
    /// Personal data could not be sealed or opened (no key ring, a removed key).
    #[error(transparent)]
    Sealing(#[from] sealing::SealError),
}

impl From<propdesk_domain::aggregate::Inconsistent> for StoreError {
    fn from(err: propdesk_domain::aggregate::Inconsistent) -> Self {
        StoreError::Unreadable(entity::ticket::UnreadableTicket {
            ticket_id: err.ticket_id.clone(),
            detail: err.to_string(),
        })
    }
}

impl StoreError {
    /// Maps unique-constraint violations to [`StoreError::Conflict`].
    pub(crate) fn from_write(err: DbErr) -> StoreError {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => StoreError::Conflict(detail),
            _ => StoreError::Db(err),
        }
    }
}

/// The database handle shared by every repository.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// Ticks after every commit that wrote outbox rows or history: the relay and watch
    /// streams of this process wake on it instead of waiting for their poll.
    commits: Arc<watch::Sender<u64>>,
    /// SQLite only: write transactions of this process queue here instead of polling
    /// SQLite's lock (its busy handler sleeps up to 100 ms between tries).
    write_gate: Option<Arc<work::WriteGate>>,
    /// Outbox messages of this process's commits on their way to its relay.
    handoff: Arc<outbox::Handoff>,
}

/// Times as stored: microsecond precision, so values read back compare equal on both
/// backends (PostgreSQL keeps microseconds).
pub fn stored_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Now, as stored.
pub fn now() -> DateTime<Utc> {
    stored_time(Utc::now())
}

impl Store {
    /// Connects to `postgres://...` or `sqlite://path?mode=rwc`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false)
            // No JIT: compiling a report query's plan took longer (~0.8 s) than running it,
            // and the short transactions gain nothing from it.
            .map_sqlx_postgres_opts(|opts| opts.options([("jit", "off")]))
            // WAL lets readers run beside the writer; the busy timeout makes concurrent
            // writers queue instead of failing with SQLITE_BUSY.
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        let db = Database::connect(options).await?;
        let write_gate = (db.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(work::WriteGate::default()));
        Ok(Store { db, commits: Arc::new(watch::Sender::new(0)), write_gate, handoff: Arc::default() })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migration::Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Wakes whoever waits on [`Store::subscribe_commits`].
    pub fn notify_commit(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes after each local commit of tickets, history or outbox.
    pub fn subscribe_commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// The raw database handle, for tests and the benchmark that check what was written
    /// with their own SQL. The services never see it (the `test-support` feature).
    #[cfg(feature = "test-support")]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// SQLite: one writer at a time, whatever the pool size.
    pub fn is_sqlite(&self) -> bool {
        self.backend() == DbBackend::Sqlite
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await?;
        Ok(())
    }
}
