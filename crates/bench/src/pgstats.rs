//! What PostgreSQL counted while a phase ran: every statement's calls (pg_stat_statements,
//! which `scripts/ensure-services` preloads) and how many of the tickets' row updates were
//! HOT (heap-only: no index touched, the new version on the same page).

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::BenchError;

/// Counters at one moment; subtract two to get a window's.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// (statement text, calls), this database's only, most called first.
    pub statements: Vec<(String, i64)>,
    pub ticket_updates: i64,
    pub ticket_hot_updates: i64,
}

/// Installs the view in the bench's database and starts the statement counts from zero.
pub async fn reset(db: &DatabaseConnection) -> Result<(), BenchError> {
    db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await?;
    db.execute_unprepared("SELECT pg_stat_statements_reset()").await.map_err(|e| {
        BenchError::Setup(format!(
            "pg_stat_statements is not loaded (scripts/ensure-services preloads it and restarts PostgreSQL): {e}"
        ))
    })?;
    Ok(())
}

pub async fn read(db: &DatabaseConnection) -> Result<Counters, BenchError> {
    // Table counters reach the shared statistics when a backend goes idle (at most a
    // second later); this asks for them now, from this backend, and waits out the others.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT query, calls::bigint FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY calls DESC",
        ))
        .await?;
    let statements = rows
        .iter()
        .filter_map(|row| Some((row.try_get_by_index::<String>(0).ok()?, row.try_get_by_index::<i64>(1).ok()?)))
        .collect();
    let tickets = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT n_tup_upd::bigint, n_tup_hot_upd::bigint FROM pg_stat_user_tables WHERE relname = 'tickets'",
        ))
        .await?;
    let (ticket_updates, ticket_hot_updates) = tickets
        .and_then(|row| Some((row.try_get_by_index::<i64>(0).ok()?, row.try_get_by_index::<i64>(1).ok()?)))
        .unwrap_or_default();
    Ok(Counters { statements, ticket_updates, ticket_hot_updates })
}

impl Counters {
    pub fn calls(&self) -> i64 {
        self.statements.iter().map(|(_, calls)| calls).sum()
    }

    /// The window from `before` to `self` for the ticket counters (statement counts start
    /// from the reset).
    pub fn hot_ratio_since(&self, before: &Counters) -> Option<f64> {
        let updates = self.ticket_updates - before.ticket_updates;
        (updates > 0).then(|| (self.ticket_hot_updates - before.ticket_hot_updates) as f64 / updates as f64)
    }

    /// The `n` most called statements, each as calls per ticket and its text cut short.
    pub fn top(&self, n: usize, tickets: f64) -> String {
        self.statements
            .iter()
            .take(n)
            .map(|(query, calls)| {
                let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
                let short: String = query.chars().take(90).collect();
                let cut = if short.len() < query.len() { "…" } else { "" };
                format!("{:.2} × `{short}{cut}`", *calls as f64 / tickets)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Every statement as a Markdown table: calls per ticket and the full text.
    pub fn table(&self, tickets: f64) -> String {
        let mut table = String::from("| Per ticket | Calls | Statement |\n|---:|---:|---|\n");
        for (query, calls) in &self.statements {
            let query: String = query.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
            table.push_str(&format!("| {:.3} | {calls} | `{query}` |\n", *calls as f64 / tickets));
        }
        table
    }

    /// Calls of statements whose text contains `needle`.
    pub fn calls_of(&self, needle: &str) -> i64 {
        self.statements.iter().filter(|(query, _)| query.contains(needle)).map(|(_, calls)| calls).sum()
    }
}
