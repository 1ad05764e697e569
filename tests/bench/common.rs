//! What the benchmarks share: settings from the environment and percentiles of latencies
//! the database recorded.

use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::App;

/// A numeric setting from the environment (`BENCH_*`), or its default.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs `sql` (one column of microseconds) and returns the values in milliseconds, sorted.
pub async fn recorded_millis(app: &App, sql: &str) -> Vec<f64> {
    let db = app.store.connection();
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await.expect("rows");
    let mut millis: Vec<f64> =
        rows.iter().map(|row| row.try_get_by_index::<i64>(0).expect("micros") as f64 / 1000.0).collect();
    millis.sort_by(|a, b| a.total_cmp(b));
    millis
}

/// One line: p50, p90, p99 and max.
pub fn print_percentiles(sorted: &[f64]) {
    println!(
        "  p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        percentile(sorted, 50.0),
        percentile(sorted, 90.0),
        percentile(sorted, 99.0),
        sorted.last().copied().unwrap_or_default()
    );
}

pub fn run(benchmark: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(benchmark);
}
