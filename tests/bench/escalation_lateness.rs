//! Benchmark: how late the notifier fires escalation-ladder alarms while many deadlines are
//! open (release build, real PostgreSQL, RabbitMQ and processes).
//!
//!     cargo bench -p propdesk --bench escalation_lateness
//!     BENCH_OPEN=10000 BENCH_FIRING=2000 BENCH_RATE=50 BENCH_ALLOWANCE_SECS=20 cargo bench -p propdesk --bench escalation_lateness
//!
//! First `BENCH_OPEN` P3 tickets are logged through the API; their three clocks (a day and
//! more) stay open the whole run: 3 × `BENCH_OPEN` open deadlines, each with its ladder of
//! alarms in the table. Then `BENCH_FIRING` P2 tickets are logged at `BENCH_RATE` per second
//! with an acknowledge clock of `BENCH_ALLOWANCE_SECS`: their reminders (80 %) and breaches
//! fire among the open ones. Lateness is `fired_at - fire_at` of those alarms, from the
//! alarms table: the time from when an alarm was due to when its step committed.

mod common;
#[allow(dead_code)]
#[path = "../e2e/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use propdesk_testkit::Backend;
use sea_orm::{ConnectionTrait, Statement};

use common::{print_percentiles, recorded_millis, setting};

fn main() {
    common::run(run());
}

async fn count(app: &helpers::App, sql: &str) -> i64 {
    let db = app.store.connection();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .expect("count query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("count")
}

async fn log_tickets(app: &helpers::App, category: &str, count: usize, rate: Option<u64>) -> Duration {
    let started = Instant::now();
    let lanes = 8;
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let mut client = app.tickets.clone();
        let token = app.world.agent.clone();
        let template = app.new_ticket(category, "the balcony light flickers");
        tasks.push(tokio::spawn(async move {
            for (k, n) in (lane..count).step_by(lanes).enumerate() {
                if let Some(rate) = rate {
                    let interval = Duration::from_secs_f64(lanes as f64 / rate as f64);
                    tokio::time::sleep_until((started + interval * k as u32).into()).await;
                }
                let request = helpers::pb_create(&template, n);
                client.create_ticket(helpers::authed(&token, request)).await.expect("create");
            }
        }));
    }
    for task in tasks {
        task.await.expect("creator");
    }
    started.elapsed()
}

async fn wait_for(app: &helpers::App, sql: &str, target: i64, within: Duration) {
    let deadline = Instant::now() + within;
    while count(app, sql).await < target {
        assert!(Instant::now() < deadline, "timed out waiting for: {sql}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn run() {
    let open = setting("BENCH_OPEN", 10_000) as usize;
    let firing = setting("BENCH_FIRING", 2_000) as usize;
    let rate = setting("BENCH_RATE", 50);
    let allowance = setting("BENCH_ALLOWANCE_SECS", 20);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("propdesk.toml");
    let settings = format!(
        "[policy.sla.p3]\nacknowledge_secs = 86400\non_site_secs = 172800\nresolve_secs = 259200\nworking_hours_only = false\n\n\
         [policy.sla.p2]\nacknowledge_secs = {allowance}\non_site_secs = 86400\nresolve_secs = 172800\nworking_hours_only = false\n"
    );
    std::fs::write(&file, settings).expect("settings");
    let app = helpers::App::start_with(
        Backend::Postgres,
        &[("PROPDESK_CONFIG", file.display().to_string()), ("PROPDESK__DATABASE__MAX_CONNECTIONS", "20".into())],
    )
    .await;
    let notifier = app.start_notifier().await;

    let took = log_tickets(&app, "electrical", open, None).await;
    let planned = "SELECT COUNT(*) FROM alarms WHERE pending AND rung = 'breach'";
    wait_for(&app, planned, 3 * open as i64, Duration::from_secs(600)).await;
    println!(
        "{open} P3 tickets logged in {:.1} s; {} open deadlines, {} pending alarms",
        took.as_secs_f64(),
        count(&app, planned).await,
        count(&app, "SELECT COUNT(*) FROM alarms WHERE pending").await
    );

    let took = log_tickets(&app, "door_lock", firing, Some(rate)).await;
    println!(
        "{firing} P2 tickets logged at {:.0}/s with a {allowance} s acknowledge clock",
        firing as f64 / took.as_secs_f64()
    );
    let measured = "clock = 'acknowledge' AND rung IN ('reminder', 'breach') AND NOT pending";
    let fired = format!("SELECT COUNT(*) FROM alarms WHERE {measured}");
    wait_for(&app, &fired, 2 * firing as i64, Duration::from_secs(allowance * 3 + 120)).await;
    drop(notifier);
    let sql = format!(
        "SELECT CAST(EXTRACT(EPOCH FROM (fired_at - fire_at)) * 1000000 AS BIGINT) FROM alarms WHERE {measured}"
    );
    let late = recorded_millis(&app, &sql).await;
    println!(
        "escalation lateness (fired_at - fire_at) over {} reminders and breaches, one notifier, PostgreSQL, release build:",
        late.len()
    );
    print_percentiles(&late);
}
