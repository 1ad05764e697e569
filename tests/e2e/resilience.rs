//! Crashes and outages: a worker killed mid-batch, and RabbitMQ restarted under load.
//! Both on PostgreSQL, the production database.

use std::process::Command;
use std::time::{Duration, Instant};

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::{App, authed};

async fn count(app: &App, sql: &str) -> i64 {
    let db = app.store.connection();
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Creates `n` common-area tickets from 8 concurrent clients; returns their ids.
async fn create_many(app: &App, n: usize) -> tokio::task::JoinHandle<Vec<String>> {
    // Departments with someone on duty, so every ticket gets an assignee.
    let categories = ["plumbing", "rubbish", "electrical", "fee_dispute"];
    let mut tasks = Vec::new();
    for client in 0..8 {
        let mut tickets = app.tickets.clone();
        let token = app.world.agent.clone();
        let requests: Vec<pb::CreateTicketRequest> = (0..n)
            .filter(|i| i % 8 == client)
            .map(|i| {
                let mut request = app.new_ticket(categories[i % categories.len()], &format!("report {i}"));
                request.unit_id.clear();
                request.location = format!("lobby {i}");
                request
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for request in requests {
                ids.push(tickets.create_ticket(authed(&token, request)).await.expect("create").into_inner().id);
            }
            ids
        }));
    }
    tokio::spawn(async move {
        let mut ids = Vec::new();
        for task in tasks {
            ids.extend(task.await.expect("creator"));
        }
        ids
    })
}

/// Waits until no ticket is NEW, then checks each was dispatched exactly once and counted
/// once in someone's load.
async fn assert_each_dispatched_once(app: &App, expected: i64) {
    let started = Instant::now();
    while count(app, "SELECT COUNT(*) FROM tickets WHERE state = 'new'").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(90), "tickets left undispatched");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(app, "SELECT COUNT(*) FROM tickets").await, expected);
    let dispatched_once = count(
        app,
        "SELECT COUNT(*) FROM (SELECT ticket_id FROM ticket_events WHERE event_type = 'dispatched' \
         GROUP BY ticket_id HAVING COUNT(*) = 1) AS once",
    )
    .await;
    assert_eq!(dispatched_once, expected, "every ticket has exactly one dispatch event");
    let doubled = count(
        app,
        "SELECT COUNT(*) FROM (SELECT ticket_id FROM ticket_events WHERE event_type = 'dispatched' \
         GROUP BY ticket_id HAVING COUNT(*) > 1) AS twice",
    )
    .await;
    assert_eq!(doubled, 0, "no ticket dispatched twice");
    let load = count(app, "SELECT COUNT(*) FROM tickets WHERE state = 'dispatched' AND assignee_id IS NOT NULL").await;
    assert_eq!(load, expected, "each ticket counts once in one person's load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dispatch_worker_killed_mid_batch_loses_nothing_and_doubles_nothing() {
    let app = App::start(Backend::Postgres).await;
    let mut worker = app.start_dispatch().await;
    let creating = create_many(&app, 500).await;
    while count(&app, "SELECT COUNT(*) FROM tickets").await < 150 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.kill();
    while count(&app, "SELECT COUNT(*) FROM tickets").await < 350 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let undispatched = count(&app, "SELECT COUNT(*) FROM tickets WHERE state = 'new'").await;
    assert!(undispatched > 0, "the kill left work behind");
    let _restarted = app.start_dispatch().await;
    assert_eq!(creating.await.unwrap().len(), 500);
    assert_each_dispatched_once(&app, 500).await;
}

/// Starts RabbitMQ again even if the test fails half-way.
struct BrokerGuard;

impl BrokerGuard {
    fn stop() -> BrokerGuard {
        let status = Command::new("rabbitmqctl").args(["stop_app"]).output().expect("rabbitmqctl");
        assert!(status.status.success(), "rabbitmqctl stop_app: {}", String::from_utf8_lossy(&status.stderr));
        BrokerGuard
    }
}

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["start_app"]).output();
        let _ = Command::new("rabbitmqctl").args(["await_startup"]).output();
    }
}

/// Runs alone (scripts/test runs it after the rest): it restarts the shared broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_during_a_run_loses_nothing() {
    let app = App::start(Backend::Postgres).await;
    let _worker = app.start_dispatch().await;
    assert_eq!(create_many(&app, 60).await.await.unwrap().len(), 60);

    let broker = BrokerGuard::stop();
    // The desk keeps working while the broker is away: tickets wait in the outbox.
    assert_eq!(create_many(&app, 60).await.await.unwrap().len(), 60);
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(broker);
    assert_eq!(create_many(&app, 60).await.await.unwrap().len(), 60);
    assert_each_dispatched_once(&app, 180).await;
}
