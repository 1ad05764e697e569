//! Crashes and outages: a worker killed mid-batch, RabbitMQ restarted under load and
//! away for a minute (on PostgreSQL, the production database), and the embedded mode
//! killed under load.

use std::process::Command;
use std::time::{Duration, Instant};

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::{App, Server, authed, dev_admin_token};

crate::on_both_backends!(
    threads = 4;
    a_dispatch_worker_killed_mid_batch_loses_nothing_and_doubles_nothing,
    broker_restart_during_a_run_loses_nothing,
);

pub(crate) async fn count(app: &App, sql: &str) -> i64 {
    let db = app.store.connection();
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// The `n`th common-area report (no unit, so none groups into an incident), in turn to
/// departments with someone on duty, so every ticket gets an assignee.
pub(crate) fn common_area_report(app: &App, n: usize) -> pb::CreateTicketRequest {
    const CATEGORIES: [&str; 4] = ["plumbing", "rubbish", "electrical", "fee_dispute"];
    pb::CreateTicketRequest {
        unit_id: String::new(),
        location: format!("lobby {n}"),
        ..app.new_ticket(CATEGORIES[n % CATEGORIES.len()], &format!("report {n}"))
    }
}

/// Creates `n` common-area tickets from 8 concurrent clients; returns their ids.
async fn create_many(app: &App, n: usize) -> tokio::task::JoinHandle<Vec<String>> {
    let mut tasks = Vec::new();
    for client in 0..8 {
        let mut tickets = app.tickets.clone();
        let token = app.world.agent.clone();
        let requests: Vec<pb::CreateTicketRequest> =
            (0..n).filter(|i| i % 8 == client).map(|i| common_area_report(app, i)).collect();
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
pub(crate) async fn assert_each_dispatched_once(app: &App, expected: i64) {
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

async fn a_dispatch_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(backend: Backend) {
    let app = App::start(backend).await;
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
async fn broker_restart_during_a_run_loses_nothing(backend: Backend) {
    let app = App::start(backend).await;
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

/// Runs alone, with the broker restarts: RabbitMQ stopped for a minute. The workers stay
/// live (a liveness probe would not restart them), turn unready, and are ready and working
/// again soon after it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_after_a_minute_away_finds_the_workers_live_and_ready_again() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let serving = Some(ServingStatus::Serving as i32);
    let mut app = App::start(Backend::Postgres).await;
    let mut workers = [app.start_dispatch().await, app.start_notifier().await];
    let started = Instant::now();
    for worker in &workers {
        while (worker.health("liveness").await, worker.health("readiness").await) != (serving, serving) {
            assert!(started.elapsed() < Duration::from_secs(10), "a worker is not live and ready after its start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let broker = BrokerGuard::stop();
    let away = Instant::now();
    let mut unready_after = None;
    while away.elapsed() < Duration::from_secs(60) {
        for worker in &mut workers {
            assert!(!worker.exited(), "a worker exited while the broker was away");
            assert_eq!(worker.health("liveness").await, serving, "live at {:?}", away.elapsed());
        }
        let mut unready = true;
        for worker in &workers {
            unready &= worker.health("readiness").await != serving;
        }
        if unready && unready_after.is_none() {
            unready_after = Some(away.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let unready_after = unready_after.expect("the workers turned unready while the broker was away");
    assert!(unready_after < Duration::from_secs(15), "unready after {unready_after:?}");
    drop(broker);

    let back = Instant::now();
    for worker in &workers {
        while worker.health("readiness").await != serving {
            assert!(back.elapsed() < Duration::from_secs(60), "a worker was not ready again");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(worker.health("liveness").await == serving);
    }
    let ticket = app.create(app.new_ticket("plumbing", "停电后水泵不转")).await;
    app.wait_dispatched(&ticket.id).await;
}

/// Embedded mode killed under load (SIGKILL, as a crash or an OOM kill would) and started
/// again on the same file while the clients go on: every acknowledged create is there and
/// dispatched exactly once, and what the dead process left unsent in its outbox is
/// published within seconds of the restart, not when some long lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_mode_killed_under_load_loses_nothing_doubles_nothing_and_resumes_at_once() {
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&["dev"], &[], Some(dir.path())).await;
    let token = dev_admin_token(dir.path());
    let mut directory = pb::directory_service_client::DirectoryServiceClient::new(server.channel().await);
    let property_id = directory
        .list_properties(authed(&token, pb::ListPropertiesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .properties[0]
        .id
        .clone();
    let units = directory
        .list_units(authed(&token, pb::ListUnitsRequest { property_id: property_id.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .units;
    assert!(units.len() >= 6, "the demo has units in two buildings");

    // Clients follow the server to its new address and retry a failed create with the same
    // request id, as a real client would.
    let (address, follow) = tokio::sync::watch::channel(server.url());
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, bool)>::new()));
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut clients = Vec::new();
    for client in 0..6 {
        let (mut follow, acknowledged, killed, stop) =
            (follow.clone(), acknowledged.clone(), killed.clone(), stop.clone());
        let (token, property_id) = (token.clone(), property_id.clone());
        let unit_ids: Vec<String> = units.iter().map(|u| u.id.clone()).collect();
        clients.push(tokio::spawn(async move {
            // Outages in one building (incidents form and link reports already routed),
            // in-unit repairs and common-area reports.
            let categories = ["water_supply", "plumbing", "electrical", "rubbish"];
            let mut n = 0usize;
            while !stop.is_cancelled() {
                let category = categories[(n + client) % categories.len()];
                let in_unit = category != "rubbish";
                let request = pb::CreateTicketRequest {
                    request_id: format!("crash-{client}-{n}"),
                    property_id: property_id.clone(),
                    unit_id: if in_unit {
                        unit_ids[(n / 4 + client * 3 + n) % unit_ids.len()].clone()
                    } else {
                        String::new()
                    },
                    location: if in_unit { String::new() } else { format!("lobby {n}") },
                    kind: pb::TicketKind::Repair as i32,
                    channel: pb::Channel::Phone as i32,
                    category: category.to_owned(),
                    description: format!("report {client}-{n}"),
                    ..Default::default()
                };
                loop {
                    let url = follow.borrow_and_update().clone();
                    let created = async {
                        let channel = tonic::transport::Channel::from_shared(url).ok()?.connect().await.ok()?;
                        let mut tickets = pb::ticket_service_client::TicketServiceClient::new(channel);
                        tickets.create_ticket(authed(&token, request.clone())).await.ok()
                    };
                    if let Some(ticket) = created.await {
                        let before_kill = !killed.load(std::sync::atomic::Ordering::SeqCst);
                        acknowledged.lock().unwrap().push((ticket.into_inner().id, before_kill));
                        break;
                    }
                    if stop.is_cancelled() {
                        return;
                    }
                    tokio::select! {
                        _ = follow.changed() => {}
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
                n += 1;
                // A busy desk, not a flood: the pipeline keeps up, so what is late after
                // the restart is what the crash left behind.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(4)).await;
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    server.kill();
    let file = format!("sqlite://{}?mode=rw", dir.path().join("propdesk-dev.db").display());
    let db = propdesk_store::Store::connect(&file, 2).await.unwrap();
    let scalar = async |sql: &str| {
        let connection = db.connection();
        let row = connection.query_one_raw(Statement::from_string(connection.get_database_backend(), sql)).await;
        row.unwrap().unwrap().try_get_by_index::<i64>(0).unwrap()
    };
    let left_unsent = scalar("SELECT COALESCE(MAX(id), 0) FROM outbox").await;
    let claimed = scalar("SELECT COUNT(*) FROM outbox WHERE claimed_until IS NOT NULL").await;

    let server = Server::start(&["dev"], &[], Some(dir.path())).await;
    let restarted = Instant::now();
    address.send_replace(server.url());
    loop {
        let old = scalar(&format!("SELECT COUNT(*) FROM outbox WHERE id <= {left_unsent}")).await;
        if old == 0 {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "{old} messages the dead process left ({claimed} of its claims) were still unsent 5 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    for client in clients {
        client.await.unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    let before = acknowledged.iter().filter(|(_, before_kill)| *before_kill).count();
    assert!(
        before > 50 && acknowledged.len() > before,
        "{before} created before the kill, {} in all",
        acknowledged.len()
    );
    let started = Instant::now();
    while scalar("SELECT COUNT(*) FROM tickets WHERE state = 'new'").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "tickets left undispatched");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: std::collections::BTreeSet<&str> = acknowledged.iter().map(|(id, _)| id.as_str()).collect();
    let reports = scalar("SELECT COUNT(*) FROM tickets WHERE is_incident = false").await;
    assert_eq!(reports as usize, ids.len(), "every acknowledged create is there, and nothing else");
    let not_once = scalar(
        "SELECT COUNT(*) FROM tickets t WHERE t.is_incident = false AND (SELECT COUNT(*) FROM ticket_events e \
         WHERE e.ticket_id = t.id AND e.event_type = 'dispatched') <> 1",
    )
    .await;
    assert_eq!(not_once, 0, "every report is dispatched exactly once");
    let linked = scalar("SELECT COUNT(*) FROM ticket_events WHERE event_type = 'linked_to_incident'").await;
    let incidents = scalar("SELECT COUNT(*) FROM tickets WHERE is_incident = true").await;
    assert!(incidents > 0, "outages formed incidents ({linked} reports joined one after being routed)");
}
