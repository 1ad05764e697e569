//! The load generator against a real `propdesk intake` on PostgreSQL and RabbitMQ: every
//! ticket it reports as created is in the database, with the mix's variety.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use propdesk_bench::client::Connections;
use propdesk_bench::load::{self, LoadSpec, Pace};
use propdesk_bench::procs::Process;
use propdesk_bench::world::{self, WorldSize};
use propdesk_domain::{Actor, Role};
use propdesk_intake::TokenKeys;
use propdesk_store::entity::ticket;
use propdesk_testkit::TestDatabase;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

const SECRET: &str = "load-test-signing-secret-0123456789abcdef";

/// The debug `propdesk` binary the workspace's tests build beside this test.
fn propdesk() -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("propdesk")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_and_closed_loops_create_exactly_what_they_report() {
    let db = TestDatabase::postgres().await;
    let store = db.store().await;
    let size = WorldSize { properties: 2, buildings: 2, floors: 3, units_per_floor: 2 };
    let world = world::seed(&store, size).await.expect("seed");
    let logs = tempfile::tempdir().expect("logs");
    let env = vec![
        ("PROPDESK__DATABASE__URL".to_owned(), db.url.clone()),
        ("PROPDESK__AUTH__SIGNING_SECRET".to_owned(), SECRET.to_owned()),
        ("PROPDESK__BUS__URL".to_owned(), propdesk_testkit::amqp_url()),
        ("PROPDESK__BUS__PREFIX".to_owned(), propdesk_testkit::unique_bus_prefix()),
    ];
    let mut env = env;
    env.extend(propdesk_store::sealing::test_keys::ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let intake = Process::start(&propdesk(), "intake", &["intake"], &env, "PROPDESK__INTAKE__LISTEN", logs.path())
        .await
        .expect("intake starts");
    let keys = TokenKeys::new(SECRET.as_bytes()).expect("keys");
    let agent = Actor { staff_id: world.agent_id.clone(), role: Role::Agent, properties: world.property_ids() };
    let token = keys.mint(&agent, chrono::Utc::now().timestamp(), 600).expect("token");
    let connections = Connections::open(&intake.url(), 2, Some(&token)).await.expect("connect");

    // The sites come back through DirectoryService as they were seeded.
    let sites = connections.discover_sites().await.expect("discover");
    let found: HashSet<_> = sites.iter().map(|s| (s.property_id.clone(), s.unit_ids.len())).collect();
    let seeded: HashSet<_> = world.sites.iter().map(|s| (s.property_id.clone(), s.unit_ids.len())).collect();
    assert_eq!(found, seeded);
    let sites = Arc::new(sites);

    let run = 0xfeed;
    let spec = LoadSpec {
        pace: Pace::Open { rate: 100.0 },
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(2),
    };
    let (c, s) = (connections.clone(), sites.clone());
    let open = load::drive(spec, move |n| c.create_ticket(&s, run, n)).await;
    assert_eq!(open.failed, 0, "{:?}", open.first_error);
    assert!((180..=201).contains(&open.ok), "{open:?}");
    assert!(open.latency_ms.p50 > 0.0 && open.latency_ms.p99 >= open.latency_ms.p50);

    let spec =
        LoadSpec { pace: Pace::Closed { concurrency: 4 }, warmup: Duration::ZERO, duration: Duration::from_secs(1) };
    let (c, s) = (connections.clone(), sites.clone());
    let closed = load::drive(spec, move |n| c.create_ticket(&s, run + 1, n)).await;
    assert_eq!(closed.failed, 0, "{:?}", closed.first_error);
    assert!(closed.ok > 10, "{closed:?}");

    // Warm-up calls are sent but not counted: the database holds the counted ones and more.
    let stored = ticket::Entity::find()
        .filter(ticket::Column::RequestId.starts_with(format!("bench-{run:x}-")))
        .all(store.connection())
        .await
        .expect("tickets");
    assert!(stored.len() as u64 >= open.ok && stored.len() <= 250, "{} stored", stored.len());
    let kinds: HashSet<_> = stored.iter().map(|t| t.kind.as_str()).collect();
    let categories: HashSet<_> = stored.iter().map(|t| t.category.as_str()).collect();
    assert!(kinds.len() >= 3 && categories.len() >= 8, "{kinds:?} {categories:?}");
    assert!(stored.iter().any(|t| t.unit_id.is_some()) && stored.iter().any(|t| t.unit_id.is_none()));
    intake.stop().expect("stop");
}
