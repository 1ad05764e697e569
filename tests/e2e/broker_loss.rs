//! Losing part of the broker: the node leading the dispatch queue of a three-node RabbitMQ
//! cluster crashes under load, and a worker is cut off from the broker by the network.
//! Checked as RabbitMQ's own Jepsen checker does: every acknowledged create is dispatched
//! exactly once, none is lost, none doubled, none unexpected.

use std::collections::HashSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use propdesk_bus::WorkerRole;
use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use sea_orm::{ConnectionTrait, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{App, authed};
use crate::resilience::{assert_each_dispatched_once, common_area_report, count};

/// The cluster of `scripts/rabbit-cluster`, taken down when dropped (a failed test too).
struct Cluster;

const RABBIT_CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/rabbit-cluster");

fn rabbit_cluster(args: &[&str]) -> String {
    let output = Command::new(RABBIT_CLUSTER).args(args).output().expect("run scripts/rabbit-cluster");
    assert!(
        output.status.success(),
        "scripts/rabbit-cluster {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Cluster {
    fn up() -> Cluster {
        rabbit_cluster(&["up"]);
        Cluster
    }

    fn urls(&self) -> String {
        rabbit_cluster(&["urls"])
    }

    fn leader(&self, queue: &str) -> String {
        rabbit_cluster(&["leader", queue])
    }

    fn crash(&self, node: &str) {
        rabbit_cluster(&["crash", node]);
    }

    fn start(&self, node: &str) {
        rabbit_cluster(&["start", node]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(RABBIT_CLUSTER).arg("down").output();
    }
}

/// Creates common-area tickets from 4 clients at about `per_second` in all until `stop`
/// is set; returns the ids of the creates acknowledged.
fn create_until(app: &App, per_second: u64, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<String>> {
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let mut tickets = app.tickets.clone();
            let token = app.world.agent.clone();
            let template = common_area_report(app, client);
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut pace = tokio::time::interval(Duration::from_micros(4_000_000 / per_second));
                for n in 0.. {
                    pace.tick().await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let request = pb::CreateTicketRequest {
                        location: format!("lobby {client}-{n}"),
                        request_id: crate::helpers::new_request_id(),
                        ..template.clone()
                    };
                    match tickets.create_ticket(authed(&token, request)).await {
                        Ok(ticket) => ids.push(ticket.into_inner().id),
                        Err(status) => panic!("a create failed while the broker lost a node: {status:?}"),
                    }
                }
                ids
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut ids = Vec::new();
        for client in clients {
            ids.extend(client.await.expect("creator"));
        }
        ids
    })
}

/// The tickets in the database are exactly the acknowledged creates (none lost, none
/// unexpected), each dispatched exactly once.
async fn assert_exactly_the_acknowledged(app: &App, acknowledged: &[String]) {
    assert_each_dispatched_once(app, acknowledged.len() as i64).await;
    let db = app.store.connection();
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), "SELECT id FROM tickets")).await;
    let stored: HashSet<String> = rows.unwrap().iter().map(|row| row.try_get_by_index(0).unwrap()).collect();
    let acknowledged: HashSet<String> = acknowledged.iter().cloned().collect();
    assert_eq!(stored.len(), acknowledged.len(), "no create recorded twice");
    assert_eq!(stored, acknowledged, "every acknowledged create is there and nothing else");
}

/// The earliest dispatch of a ticket created after `after`.
async fn first_dispatch_of_a_ticket_created_after(app: &App, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let db = app.store.connection();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT created_at, dispatched_at FROM tickets WHERE dispatched_at IS NOT NULL",
        ))
        .await
        .unwrap();
    rows.iter()
        .filter_map(|row| {
            let created: DateTime<Utc> = row.try_get_by_index(0).ok()?;
            let dispatched: DateTime<Utc> = row.try_get_by_index(1).ok()?;
            (created > after).then_some(dispatched)
        })
        .min()
}

async fn wait_until_dispatched(app: &App, at_least: i64, within: Duration) {
    let started = Instant::now();
    while count(app, "SELECT COUNT(*) FROM tickets WHERE dispatched_at IS NOT NULL").await < at_least {
        assert!(started.elapsed() < within, "fewer than {at_least} tickets dispatched in {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs alone, after the rest (scripts/test): three RabbitMQ nodes take two cores' worth
/// of start-up. Intake, two dispatch replicas and a notifier know the cluster by
/// `bus.urls`; while tickets come in at 100/s, the node leading the dispatch quorum queue
/// is killed (SIGKILL), and started again 5 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_cluster_losing_the_dispatch_queue_leader_under_load_loses_nothing_and_doubles_nothing() {
    let cluster = Cluster::up();
    let nodes = [("PROPDESK__BUS__URL", String::new()), ("PROPDESK__BUS__URLS", cluster.urls())];
    let app = App::start_with(Backend::Postgres, &nodes).await;
    let _dispatchers = [app.start_dispatch().await, app.start_dispatch().await];
    let _notifier = app.start_notifier().await;

    let stop = Arc::new(AtomicBool::new(false));
    let creating = create_until(&app, 100, stop.clone());
    wait_until_dispatched(&app, 300, Duration::from_secs(60)).await;

    let queue = app.bus.topology().queue(WorkerRole::Dispatch);
    let leader = cluster.leader(&queue);
    let crashed_at = Utc::now();
    cluster.crash(&leader);
    let gone_at = Utc::now();
    let started = Instant::now();
    let recovered_at = loop {
        if let Some(at) = first_dispatch_of_a_ticket_created_after(&app, gone_at).await {
            break at;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no ticket dispatched in the minute after the crash");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let new_leader = cluster.leader(&queue);
    assert_ne!(new_leader, leader, "another node leads the dispatch queue");
    println!(
        "node {leader} (leader of {queue}) killed; node {new_leader} leads it now; the first ticket created after \
         the kill was dispatched {} ms after it",
        (recovered_at - crashed_at).num_milliseconds()
    );

    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.start(&leader);
    while count(&app, "SELECT COUNT(*) FROM tickets").await < 1_200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let acknowledged = creating.await.expect("creators");
    assert!(acknowledged.len() >= 1_200, "{} creates", acknowledged.len());
    assert_exactly_the_acknowledged(&app, &acknowledged).await;
}

/// A TCP proxy on the loopback address that the test can cut, as a network partition
/// would: while cut nothing passes either way and nothing is refused (TCP holds the bytes;
/// only the peers' heartbeats can tell), and when healed what was held goes on.
struct Partition {
    port: u16,
    cut: watch::Sender<bool>,
}

impl Partition {
    async fn between_here_and(target: &str) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (cut, _) = watch::channel(false);
        let target = target.to_owned();
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, cuts.subscribe()));
                tokio::spawn(pump(server_read, client_write, cuts.subscribe()));
            }
        });
        Partition { port, cut }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn heal(&self) {
        self.cut.send_replace(false);
    }
}

/// Copies one direction, holding whatever it read while the link is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).await;
        if cut.wait_for(|cut| !*cut).await.is_err() {
            return;
        }
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// A dispatch worker reaches the broker through a link that is cut for 30 s while tickets
/// keep coming: nothing is dispatched meanwhile, the desk's watch streams still see new
/// tickets at once (the worker's stalled publish holds no transaction open), and after the
/// link heals the worker finds the broker again on its own and dispatches every ticket
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_partition_of_30_s_from_a_worker_loses_nothing() {
    let mut app = App::start(Backend::Postgres).await;
    let watch = pb::WatchTicketsRequest { property_id: app.world.property_id.clone(), ..Default::default() };
    let mut watching = app.tickets.watch_tickets(authed(&app.world.agent, watch)).await.expect("watch").into_inner();
    let broker = propdesk_testkit::amqp_url();
    let host = broker.split('@').nth(1).and_then(|rest| rest.split('/').next()).expect("host:port in the AMQP URL");
    let partition = Partition::between_here_and(host).await;
    let through_the_link = broker.replace(host, &format!("127.0.0.1:{}", partition.port));
    let worker = app.start_dispatch_with(&[("PROPDESK__BUS__URL", through_the_link)]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let before = create_until(&app, 40, stop.clone());
    wait_until_dispatched(&app, 40, Duration::from_secs(30)).await;
    partition.cut();
    let cut_at = Utc::now();
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = app.create(app.new_ticket("plumbing", "水管漏水")).await;
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = watching.message().await.expect("watch stream") {
            if event.ticket_id == during.id {
                return;
            }
        }
    })
    .await;
    assert!(seen.is_ok(), "a ticket created while the worker was cut off did not reach the watch stream in 5 s");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(cut.elapsed())).await;
    let dispatched_while_cut = count(&app, "SELECT COUNT(*) FROM tickets WHERE dispatched_at IS NOT NULL").await;
    assert!(
        first_dispatch_of_a_ticket_created_after(&app, cut_at + chrono::Duration::seconds(1)).await.is_none(),
        "the worker dispatched through a cut link"
    );
    partition.heal();
    let healed = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let acknowledged = before.await.expect("creators");
    assert!(
        acknowledged.len() as i64 > dispatched_while_cut + 500,
        "tickets waited while the link was cut ({} created, {dispatched_while_cut} dispatched)",
        acknowledged.len()
    );
    let mut acknowledged = acknowledged;
    acknowledged.push(during.id);
    assert_exactly_the_acknowledged(&app, &acknowledged).await;
    drop(worker);
    println!(
        "link cut for {:?}; every ticket dispatched {} ms after it healed",
        healed - cut,
        healed.elapsed().as_millis()
    );
}
