//! Stands in for autovacuum on a server that runs without it. Never analysed, a table has
//! no statistics: the planner then guesses that each of the notifier's `ticket_id IN (..)`
//! lookups matches a third of the alarms and scans them all, and cleared outbox rows stay
//! behind as dead tuples. Any production server runs autovacuum; the figures should be
//! that server's, so where this one does not, the suite vacuums and analyses in its place.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::BenchError;

/// Between passes: about how often autovacuum revisits a busy table (its naptime is a
/// minute, and the bench's tables pass their thresholds within seconds).
pub const EVERY: Duration = Duration::from_secs(30);

/// What the stand-in did, for the report's notes.
#[derive(Debug, Default)]
pub struct VacuumLog {
    pub passes: usize,
    pub longest: Duration,
    pub last_error: Option<String>,
}

impl VacuumLog {
    pub fn describe(&self) -> String {
        let mut text = format!(
            "this PostgreSQL runs with autovacuum off: in its place the suite ran VACUUM (ANALYZE) on its database \
             every {} s ({} passes, the longest {:.1} s)",
            EVERY.as_secs(),
            self.passes,
            self.longest.as_secs_f64()
        );
        if let Some(err) = &self.last_error {
            text.push_str(&format!("; a pass failed: {err}"));
        }
        text
    }
}

/// The running stand-in; [`Vacuum::stop`] ends it.
pub struct Vacuum {
    stop: oneshot::Sender<()>,
    task: JoinHandle<VacuumLog>,
}

impl Vacuum {
    /// Starts passes over the database at `url` (the first at once) if its server does not
    /// run autovacuum; `None` if it does.
    pub async fn start_if_needed(url: &str) -> Result<Option<Vacuum>, BenchError> {
        let db = Database::connect(url).await?;
        let show = Statement::from_string(DbBackend::Postgres, "SHOW autovacuum");
        let setting = db.query_one_raw(show).await?.and_then(|row| row.try_get_by_index::<String>(0).ok());
        if setting.as_deref() != Some("off") {
            db.close().await?;
            return Ok(None);
        }
        let (stop, stopped) = oneshot::channel();
        Ok(Some(Vacuum { stop, task: tokio::spawn(passes(db, stopped)) }))
    }

    pub async fn stop(self) -> VacuumLog {
        // A send fails only if the task has ended, which it does only when told to.
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

async fn passes(db: DatabaseConnection, mut stopped: oneshot::Receiver<()>) -> VacuumLog {
    let mut log = VacuumLog::default();
    loop {
        let started = Instant::now();
        // VACUUM takes no lock that blocks reads or writes, as autovacuum's passes do not.
        match db.execute_unprepared("VACUUM (ANALYZE)").await {
            Ok(_) => {
                log.passes += 1;
                log.longest = log.longest.max(started.elapsed());
            }
            Err(err) => log.last_error = Some(err.to_string()),
        }
        tokio::select! {
            _ = &mut stopped => break,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
    let _ = db.close().await;
    log
}
