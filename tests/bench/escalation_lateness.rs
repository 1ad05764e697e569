//! Benchmark: how late the notifier fires escalation-ladder alarms while many deadlines are
//! open (release build, real PostgreSQL, RabbitMQ and processes).
//!
//!     cargo bench -p propdesk --bench escalation_lateness
//!     BENCH_TICKETS=10000 BENCH_RATE=250 BENCH_ALLOWANCE_SECS=60 cargo bench -p propdesk --bench escalation_lateness
//!
//! `BENCH_TICKETS` P3 tickets are logged through the API at `BENCH_RATE` per second; each
//! has three running clocks (acknowledge in `BENCH_ALLOWANCE_SECS`, on site and resolve in
//! a day or more), so when the first acknowledge alarms fall due every ticket is logged and
//! 3 × `BENCH_TICKETS` deadlines are open. Lateness is `fired_at - fire_at` of each
//! acknowledge reminder (80 %) and breach, from the alarms table.

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

async fn run() {
    let tickets = setting("BENCH_TICKETS", 10_000) as usize;
    let rate = setting("BENCH_RATE", 250);
    let allowance = setting("BENCH_ALLOWANCE_SECS", 60);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("propdesk.toml");
    let settings = format!(
        "[policy.sla.p3]\nacknowledge_secs = {allowance}\non_site_secs = 86400\nresolve_secs = 172800\nworking_hours_only = false\n\n\
         [policy.working_hours]\nutc_offset_minutes = 0\ndays = [1, 2, 3, 4, 5, 6, 7]\nopens = \"00:00:00\"\ncloses = \"00:00:00\"\n"
    );
    std::fs::write(&file, settings).expect("settings");
    let app = helpers::App::start_with(
        Backend::Postgres,
        &[("PROPDESK_CONFIG", file.display().to_string()), ("PROPDESK__DATABASE__MAX_CONNECTIONS", "20".into())],
    )
    .await;
    let notifier = app.start_notifier().await;

    let started = Instant::now();
    let lanes = 8;
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let mut client = app.tickets.clone();
        let token = app.world.agent.clone();
        let template = app.new_ticket("electrical", "the balcony light flickers");
        tasks.push(tokio::spawn(async move {
            let interval = Duration::from_secs_f64(lanes as f64 / rate as f64);
            for (k, n) in (lane..tickets).step_by(lanes).enumerate() {
                tokio::time::sleep_until((started + interval * k as u32).into()).await;
                let request = helpers::pb_create(&template, n);
                client.create_ticket(helpers::authed(&token, request)).await.expect("create");
            }
        }));
    }
    for task in tasks {
        task.await.expect("creator");
    }
    let logging = started.elapsed();
    let open = count(&app, "SELECT COUNT(*) FROM alarms WHERE pending AND rung = 'breach'").await;
    println!(
        "logged {tickets} tickets in {:.1} s; {open} open deadlines (one breach alarm each) before the first fell due",
        logging.as_secs_f64()
    );

    let all_fired =
        "SELECT COUNT(*) FROM alarms WHERE clock = 'acknowledge' AND rung IN ('reminder', 'breach') AND NOT pending";
    let deadline = Instant::now() + Duration::from_secs(allowance * 2 + 120);
    while count(&app, all_fired).await < 2 * tickets as i64 {
        assert!(Instant::now() < deadline, "alarms did not all fire");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(notifier);
    let sql = "SELECT CAST(EXTRACT(EPOCH FROM (fired_at - fire_at)) * 1000000 AS BIGINT) FROM alarms \
               WHERE clock = 'acknowledge' AND rung IN ('reminder', 'breach') AND NOT pending";
    let late = recorded_millis(&app, sql).await;
    println!(
        "escalation lateness (fired_at - fire_at) over {} alarms, one notifier, PostgreSQL, release build:",
        late.len()
    );
    print_percentiles(&late);
}
