//! Benchmark: create → dispatched latency through the real processes (release build),
//! PostgreSQL and RabbitMQ, at a steady open-loop rate.
//!
//!     cargo bench -p propdesk --bench dispatch_latency
//!     BENCH_TICKETS=2000 BENCH_RATE=200 cargo bench -p propdesk --bench dispatch_latency
//!
//! Latency is taken from the recorded timestamps: `dispatched_at - created_at` of each
//! ticket (the create transaction's clock to the dispatch transaction's clock), so it
//! covers the outbox relay, the broker and the worker.

mod common;
#[allow(dead_code)]
#[path = "../e2e/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use propdesk_testkit::Backend;

use common::{print_percentiles, recorded_millis, setting};

fn main() {
    common::run(run());
}

async fn run() {
    let tickets = setting("BENCH_TICKETS", 1000) as usize;
    let rate = setting("BENCH_RATE", 100);
    let warmup = 50;
    let mut app = helpers::App::start(Backend::Postgres).await;
    let _dispatch = app.start_dispatch().await;
    let categories = ["plumbing", "rubbish", "electrical", "fee_dispute"];

    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut sent = Vec::new();
    for i in 0..(warmup + tickets) {
        let due = started + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let mut request = app.new_ticket(categories[i % categories.len()], &format!("benchmark report {i}"));
        request.unit_id.clear();
        request.location = format!("lobby {i}");
        let mut client = app.tickets.clone();
        let token = app.world.agent.clone();
        sent.push(tokio::spawn(async move {
            client.create_ticket(helpers::authed(&token, request)).await.expect("create").into_inner().id
        }));
    }
    let mut ids = Vec::new();
    for task in sent {
        ids.push(task.await.expect("create task"));
    }
    let offered = ids.len() as f64 / started.elapsed().as_secs_f64();
    for id in &ids {
        app.wait_dispatched(id).await;
    }
    let measured: Vec<String> = ids[warmup..].iter().map(|id| format!("'{id}'")).collect();
    let sql = format!(
        "SELECT CAST(EXTRACT(EPOCH FROM (dispatched_at - created_at)) * 1000000 AS BIGINT) FROM tickets WHERE id IN ({})",
        measured.join(",")
    );
    let latencies = recorded_millis(&app, &sql).await;
    println!(
        "create -> dispatched over {} tickets at {offered:.0}/s offered ({rate}/s target), PostgreSQL + RabbitMQ, release build:",
        latencies.len()
    );
    print_percentiles(&latencies);
}
