//! One benchmark run on this machine: ceilings first, then the intake, the pipeline to
//! dispatch, the notifier's timers and embedded mode, each against real processes (the
//! release `propdesk` binary), real PostgreSQL and real RabbitMQ.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use propdesk_domain::{Actor, Policy, Role};
use propdesk_intake::TokenKeys;
use propdesk_proto::v1 as pb;
use propdesk_store::Store;
use propdesk_store::entity::{alarm, ticket, ticket_event};
use propdesk_store::sealing::test_keys;
use sea_orm::{ColumnTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

use crate::BenchError;
use crate::ceilings::{self, PgTarget};
use crate::client::Connections;
use crate::desk::{self, DeskCall};
use crate::files;
use crate::load::{self, LoadOutcome, LoadSpec, Pace, Percentiles};
use crate::mix::{self, Site};
use crate::pgstats;
use crate::procs::{self, Process};
use crate::report::{Figure, Machine, Report, Target};
use crate::vacuum::Vacuum;
use crate::watchers::Watchers;
use crate::world::{self, World, WorldSize};

#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Where the results go (`bench/results`).
    pub out: PathBuf,
    /// Process logs.
    pub logs: PathBuf,
    /// `postgres://user@host:port`, without a database: the run creates its own.
    pub postgres_server: String,
    pub amqp_url: String,
    /// The pgbench script with CreateTicket's statements.
    pub pgbench_script: PathBuf,
    /// Closed-loop callers and pgbench clients.
    pub concurrency: usize,
    pub warmup: Duration,
    /// Each intake (throughput and latency) window.
    pub intake_window: Duration,
    /// The steady end-to-end window and its rate.
    pub e2e_window: Duration,
    pub e2e_rate: f64,
    /// The steady end-to-end window in embedded mode.
    pub embedded_e2e_window: Duration,
    /// Each step of the search for the highest rate the pipeline keeps up with.
    pub e2e_step_window: Duration,
    /// The first load on an empty database, measured apart before the others.
    pub e2e_cold_window: Duration,
    /// Open deadlines in the table while escalation lateness is measured.
    pub open_deadlines: usize,
    /// Tickets whose reminders and breaches are measured, logged at `firing_rate`.
    pub firing_tickets: usize,
    pub firing_rate: f64,
    pub firing_allowance_secs: u64,
    /// Measure CreateTicket alone on PostgreSQL.
    pub intake: bool,
    /// Measure the pipeline to dispatch on PostgreSQL and RabbitMQ.
    pub end_to_end: bool,
    /// Measure escalation lateness on PostgreSQL.
    pub time: bool,
    /// Measure embedded mode.
    pub embedded: bool,
    /// Measure the desk's look-ups on PostgreSQL.
    pub desk: bool,
    /// Tickets seeded for the desk's look-ups.
    pub desk_tickets: usize,
    /// Each desk look-up's window and rate.
    pub desk_window: Duration,
    pub desk_rate: f64,
    /// Measure attachment uploads and downloads.
    pub files: bool,
    pub files_window: Duration,
    /// Measure many WatchTickets streams (PostgreSQL, then embedded mode).
    pub watch: bool,
    pub watch_streams: usize,
    pub watch_streams_embedded: usize,
    pub watch_rate: f64,
    pub watch_window: Duration,
}

impl SuiteOptions {
    pub fn new(out: PathBuf, logs: PathBuf, pgbench_script: PathBuf) -> SuiteOptions {
        SuiteOptions {
            out,
            logs,
            postgres_server: "postgres://postgres@127.0.0.1:5432".into(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            pgbench_script,
            concurrency: 32,
            warmup: Duration::from_secs(3),
            intake_window: Duration::from_secs(10),
            e2e_window: Duration::from_secs(60),
            e2e_rate: 200.0,
            embedded_e2e_window: Duration::from_secs(20),
            e2e_step_window: Duration::from_secs(10),
            e2e_cold_window: Duration::from_secs(10),
            open_deadlines: 100_000,
            firing_tickets: 600,
            firing_rate: 50.0,
            firing_allowance_secs: 10,
            intake: true,
            end_to_end: true,
            time: true,
            embedded: true,
            desk: true,
            desk_tickets: 100_000,
            desk_window: Duration::from_secs(10),
            desk_rate: 20.0,
            files: true,
            files_window: Duration::from_secs(15),
            watch: true,
            watch_streams: 1_000,
            watch_streams_embedded: 300,
            watch_rate: 50.0,
            watch_window: Duration::from_secs(30),
        }
    }
}

const SECRET: &str = "propdesk-bench-signing-secret-0123456789abcdef";
const DATABASE: &str = "propdesk_bench";
/// The pipeline's: its cold start is measured on an empty database.
const E2E_DATABASE: &str = "propdesk_bench_e2e";
const CEILING_DATABASE: &str = "propdesk_bench_ceiling";
const DESK_DATABASE: &str = "propdesk_bench_desk";
const FILES_DATABASE: &str = "propdesk_bench_files";
const WATCH_DATABASE: &str = "propdesk_bench_watch";
/// HTTP/2 connections the watch streams share (each carries at most 100 of them).
const WATCH_CONNECTIONS: usize = 10;
/// A rate is kept up with while create → dispatched p99 stays under this.
const KEPT_UP_P99_MS: f64 = 1_000.0;
/// Steps of the sustained-rate search after the steady run (its first step).
const MAX_RATE_STEPS: usize = 4;
/// The search stops once the rate that fell behind is within this factor of the one kept up with.
const BRACKET: f64 = 1.25;
/// Connections each load generator opens to the intake.
const CONNECTIONS: usize = 4;

struct Suite {
    options: SuiteOptions,
    binary: PathBuf,
    keys: TokenKeys,
    figures: Vec<Figure>,
    notes: Vec<String>,
    run: u64,
    phase: u64,
}

/// What the processes of one setup share.
struct Setup {
    database_url: String,
    bus_prefix: Option<String>,
    config: Option<PathBuf>,
}

impl Setup {
    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PROPDESK__DATABASE__URL".to_owned(), self.database_url.clone()),
            ("PROPDESK__AUTH__SIGNING_SECRET".to_owned(), SECRET.to_owned()),
            ("PROPDESK__DATABASE__MAX_CONNECTIONS".to_owned(), "16".to_owned()),
        ];
        env.extend(test_keys::ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        if let Some(prefix) = &self.bus_prefix {
            env.push(("PROPDESK__BUS__PREFIX".to_owned(), prefix.clone()));
        }
        if let Some(config) = &self.config {
            env.push(("PROPDESK_CONFIG".to_owned(), config.display().to_string()));
        }
        env
    }
}

/// Latencies from the recorded timestamps of the tickets one phase logged.
struct Recorded {
    /// dispatched_at − created_at of each ticket, µs; for one not dispatched yet, its age
    /// now (a lower bound, so a backlog shows in the percentiles instead of vanishing).
    spans: Vec<i64>,
    undispatched: u64,
}

impl Suite {
    fn next_run(&mut self) -> u64 {
        self.phase += 1;
        self.run.wrapping_add(self.phase)
    }

    fn token(&self, world: &World) -> Result<String, BenchError> {
        let actor = Actor { staff_id: world.agent_id.clone(), role: Role::Agent, properties: world.property_ids() };
        self.keys.mint(&actor, Utc::now().timestamp(), 24 * 3600).map_err(|e| BenchError::Setup(e.to_string()))
    }

    async fn start(&self, name: &str, subcommand: &str, setup: &Setup) -> Result<Process, BenchError> {
        let mut env = setup.env();
        if subcommand != "dev" {
            env.push(("PROPDESK__BUS__URL".to_owned(), self.options.amqp_url.clone()));
        }
        let listen = match subcommand {
            "dispatch" => "PROPDESK__DISPATCH__HEALTH_LISTEN",
            "notifier" => "PROPDESK__NOTIFIER__HEALTH_LISTEN",
            _ => "PROPDESK__INTAKE__LISTEN",
        };
        Process::start(&self.binary, name, &[subcommand], &env, listen, &self.options.logs).await
    }

    fn memory(&mut self, process: &Process, role: &str) -> Result<(), BenchError> {
        let mib = process.peak_rss_mib()?;
        let mut figure = Figure::new(
            &format!("memory.{}", process.name),
            &format!("Peak RSS, {role}"),
            mib,
            "MiB",
            format!("VmHWM of the `{}` process at the end of its phase", process.name),
        );
        if process.name.starts_with("intake") {
            figure = figure.target(Target::AtMost(100.0));
        }
        self.figures.push(figure);
        Ok(())
    }

    fn log(&self, text: &str) {
        eprintln!("[bench] {text}");
    }
}

async fn fresh_postgres(server: &str, name: &str) -> Result<String, BenchError> {
    drop_database(server, name).await?;
    let admin = Database::connect(format!("{server}/postgres")).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    admin.close().await?;
    Ok(format!("{server}/{name}"))
}

async fn migrated(url: &str) -> Result<Store, BenchError> {
    test_keys::install();
    let store = Store::connect(url, 8).await?;
    store.migrate().await?;
    Ok(store)
}

fn describe(outcome: &LoadOutcome) -> String {
    let pace = match outcome.pace {
        Pace::Open { rate } => format!("open loop at {rate:.0}/s"),
        Pace::Closed { concurrency } => format!("closed loop, {concurrency} callers"),
    };
    let failures = match (&outcome.first_error, outcome.failed) {
        (Some(error), failed) if failed > 0 => format!(", {failed} failed (first: {error})"),
        _ => String::new(),
    };
    format!(
        "{pace}: {} ok in {:.1} s = {:.0}/s; p50 {:.1} ms, p99 {:.1} ms{failures}",
        outcome.ok, outcome.seconds, outcome.throughput, outcome.latency_ms.p50, outcome.latency_ms.p99
    )
}

/// The tickets of run `run` created from `from` on, as the database recorded them.
async fn recorded(store: &Store, run: u64, from: DateTime<Utc>) -> Result<Recorded, BenchError> {
    let rows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = ticket::Entity::find()
        .filter(ticket::Column::RequestId.starts_with(format!("bench-{run:x}-")))
        .filter(ticket::Column::CreatedAt.gte(from))
        .select_only()
        .column(ticket::Column::CreatedAt)
        .column(ticket::Column::DispatchedAt)
        .into_tuple()
        .all(store.connection())
        .await?;
    let now = propdesk_store::now();
    let undispatched = rows.iter().filter(|(_, dispatched)| dispatched.is_none()).count() as u64;
    let spans = rows
        .into_iter()
        .map(|(created, dispatched)| (dispatched.unwrap_or(now) - created).num_microseconds().unwrap_or(i64::MAX))
        .collect();
    Ok(Recorded { spans, undispatched })
}

/// Incidents opened so far.
async fn incidents(store: &Store) -> Result<u64, BenchError> {
    Ok(ticket::Entity::find().filter(ticket::Column::IsIncident.eq(true)).count(store.connection()).await?)
}

/// Waits until every ticket of `run` is dispatched, or `within` passes.
async fn wait_dispatched(store: &Store, run: u64, within: Duration) -> Result<u64, BenchError> {
    let deadline = Instant::now() + within;
    loop {
        let waiting = ticket::Entity::find()
            .filter(ticket::Column::RequestId.starts_with(format!("bench-{run:x}-")))
            .filter(ticket::Column::DispatchedAt.is_null())
            .count(store.connection())
            .await?;
        if waiting == 0 || Instant::now() >= deadline {
            return Ok(waiting);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_load(
    connections: &Connections,
    sites: &Arc<Vec<Site>>,
    run: u64,
    spec: LoadSpec,
) -> Result<LoadOutcome, BenchError> {
    let (connections, sites) = (connections.clone(), sites.clone());
    Ok(load::drive(spec, move |n| connections.create_ticket(&sites, run, n)).await)
}

pub async fn run(options: SuiteOptions) -> Result<Report, BenchError> {
    let began = Instant::now();
    let started_at = Utc::now();
    std::fs::create_dir_all(&options.out)?;
    std::fs::create_dir_all(&options.logs)?;
    let keys = TokenKeys::new(SECRET.as_bytes()).map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut suite = Suite {
        binary: procs::propdesk_binary()?,
        keys,
        figures: Vec::new(),
        notes: Vec::new(),
        run: u64::from(started_at.timestamp_subsec_nanos()) << 20 ^ started_at.timestamp() as u64,
        phase: 0,
        options,
    };
    let machine = machine(&suite.options).await?;

    let (health, pgbench_tps) = ceilings_phase(&mut suite).await?;
    if suite.options.intake || suite.options.end_to_end || suite.options.time {
        postgres_phases(&mut suite, &health, pgbench_tps).await?;
    }
    if suite.options.desk {
        desk_phase(&mut suite).await?;
    }
    if suite.options.files {
        files_phase(&mut suite).await?;
    }
    if suite.options.embedded {
        embedded_phase(&mut suite, &health).await?;
    }
    if suite.options.watch {
        watch_phase(&mut suite).await?;
    }

    suite.notes.push(format!("process logs: {}", suite.options.logs.display()));
    Ok(Report {
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        took_seconds: began.elapsed().as_secs_f64(),
        machine,
        concurrency: suite.options.concurrency,
        figures: suite.figures,
        notes: suite.notes,
    })
}

async fn machine(options: &SuiteOptions) -> Result<Machine, BenchError> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = procs::kib_field(&meminfo, "MemTotal").unwrap_or_default();
    let admin = Database::connect(format!("{}/postgres", options.postgres_server)).await?;
    let row = admin
        .query_one_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            "SELECT split_part(version(), ' on ', 1) || ', synchronous_commit ' || current_setting('synchronous_commit')"
                .to_owned(),
        ))
        .await?;
    let postgres = row.and_then(|r| r.try_get_by_index::<String>(0).ok()).unwrap_or_default();
    admin.close().await?;
    let rabbitmq = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "rabbitmq-server"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "(version unknown)".into());
    Ok(Machine { cores, memory_gib: kib / 1024.0 / 1024.0, postgres, rabbitmq })
}

/// pgbench with CreateTicket's statements, the gRPC health check, and the broker.
async fn ceilings_phase(suite: &mut Suite) -> Result<(LoadOutcome, f64), BenchError> {
    let c = suite.options.concurrency;
    suite.log("ceiling: database (pgbench, CreateTicket's statements)");
    let url = fresh_postgres(&suite.options.postgres_server, CEILING_DATABASE).await?;
    let store = migrated(&url).await?;
    let world = world::seed(&store, WorldSize { properties: 1, buildings: 1, floors: 1, units_per_floor: 1 }).await?;
    store.connection().clone().close().await?;
    let pgbench = ceilings::pgbench(
        &PgTarget::parse(&url)?,
        &suite.options.pgbench_script,
        c,
        suite.options.intake_window.as_secs(),
        &[("property", &world.sites[0].property_id), ("agent", &world.agent_id)],
    )?;
    let tps = pgbench.transactions_per_second;
    suite.figures.push(Figure::new(
        "ceiling.database",
        "Ceiling: database, CreateTicket's statements",
        tps,
        "tx/s",
        format!(
            "pgbench -M prepared -c {c} -j 2 -T {} -f bench/create_ticket.pgbench.sql (average latency {:.1} ms)",
            pgbench.seconds, pgbench.latency_average_ms
        ),
    ));

    suite.log("ceiling: gRPC (health check through the load generator)");
    let setup =
        Setup { database_url: url.clone(), bus_prefix: Some(format!("bench{:x}", suite.next_run())), config: None };
    let intake = suite.start("intake-ceiling", "intake", &setup).await?;
    let connections = Connections::open(&intake.url(), CONNECTIONS, None).await?;
    let spec = LoadSpec {
        pace: Pace::Closed { concurrency: c },
        warmup: suite.options.warmup,
        duration: Duration::from_secs(8),
    };
    let health = {
        let connections = connections.clone();
        load::drive(spec, move |n| connections.health(n)).await
    };
    intake.stop()?;
    suite.figures.push(Figure::new(
        "ceiling.grpc",
        "Ceiling: gRPC health check",
        health.throughput,
        "calls/s",
        describe(&health),
    ));

    suite.log("ceiling: broker (publish with pipelined confirms to a quorum queue)");
    let broker = ceilings::broker_publish(&suite.options.amqp_url, 8.0, 500, 600).await?;
    suite.figures.push(Figure::new(
        "ceiling.broker",
        "Ceiling: broker, persistent publish to a quorum queue",
        broker.messages_per_second,
        "msg/s",
        format!(
            "lapin, {} B messages, {} unconfirmed in flight, 8 s after a 1 s warm-up",
            broker.payload_bytes, broker.in_flight
        ),
    ));
    cleanup_bus(suite, &setup).await;
    drop_database(&suite.options.postgres_server, CEILING_DATABASE).await?;
    Ok((health, tps))
}

async fn drop_database(server: &str, name: &str) -> Result<(), BenchError> {
    let admin = Database::connect(format!("{server}/postgres")).await?;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    admin.close().await?;
    Ok(())
}

/// Deletes a phase's exchange and queues, with whatever they still hold.
async fn cleanup_bus(suite: &Suite, setup: &Setup) {
    let Some(prefix) = &setup.bus_prefix else { return };
    let topology = propdesk_bus::Topology { prefix: prefix.clone(), ..propdesk_bus::Topology::default() };
    let bus = propdesk_bus::rabbit::RabbitBus::new(&suite.options.amqp_url, topology);
    if let Err(err) = bus.delete_topology().await {
        suite.log(&format!("could not delete the bus topology {prefix}: {err}"));
    }
}

/// Intake alone, then (on a database of its own, empty as the cold start needs it) the
/// pipeline to dispatch, then the notifier's timers.
async fn postgres_phases(suite: &mut Suite, health: &LoadOutcome, pgbench_tps: f64) -> Result<(), BenchError> {
    if suite.options.intake {
        // Intake alone: the relay publishes, nobody consumes (the phase's queues are dropped).
        let phase = PostgresPhase::prepare(suite, DATABASE).await?;
        suite.log("intake: CreateTicket, PostgreSQL");
        let setup = phase.setup(suite);
        let intake = suite.start("intake", "intake", &setup).await?;
        let connections = Connections::open(&intake.url(), CONNECTIONS, Some(&phase.token)).await?;
        intake_figures(suite, &connections, &phase.sites, "intake", "PostgreSQL", health, Some(pgbench_tps)).await?;
        suite.memory(&intake, "intake (CreateTicket load)")?;
        intake.stop()?;
        cleanup_bus(suite, &setup).await;
        phase.finish(suite).await?;
    }
    if !(suite.options.end_to_end || suite.options.time) {
        return Ok(());
    }
    let phase = PostgresPhase::prepare(suite, E2E_DATABASE).await?;
    if suite.options.end_to_end {
        suite.log("end to end: intake, dispatch, notifier, PostgreSQL, RabbitMQ");
        let setup = phase.setup(suite);
        let intake = suite.start("intake-e2e", "intake", &setup).await?;
        let dispatch = suite.start("dispatch", "dispatch", &setup).await?;
        let notifier = suite.start("notifier", "notifier", &setup).await?;
        let connections = Connections::open(&intake.url(), CONNECTIONS, Some(&phase.token)).await?;
        let processes = [&intake, &dispatch, &notifier];
        let (store, sites) = (&phase.store, &phase.sites);
        end_to_end_figures(suite, store, &connections, sites, &processes, "e2e", "PostgreSQL", pgbench_tps).await?;
        suite.memory(&intake, "intake (end to end)")?;
        suite.memory(&dispatch, "dispatch")?;
        suite.memory(&notifier, "notifier")?;
        for process in [intake, dispatch, notifier] {
            process.stop()?;
        }
        cleanup_bus(suite, &setup).await;
    }
    if suite.options.time {
        escalation_figures(suite, &phase.store, &phase.url, &phase.world, &phase.token).await?;
    }
    phase.finish(suite).await
}

/// A fresh, migrated and seeded PostgreSQL database for phases that load it.
struct PostgresPhase {
    url: String,
    store: Store,
    world: World,
    sites: Arc<Vec<Site>>,
    token: String,
    vacuum: Option<Vacuum>,
}

impl PostgresPhase {
    async fn prepare(suite: &Suite, name: &str) -> Result<PostgresPhase, BenchError> {
        let url = fresh_postgres(&suite.options.postgres_server, name).await?;
        let store = migrated(&url).await?;
        let world = world::seed(&store, WorldSize::default()).await?;
        let vacuum = Vacuum::start_if_needed(&url).await?;
        let token = suite.token(&world)?;
        let sites = Arc::new(world.sites.clone());
        Ok(PostgresPhase { url, store, world, sites, token, vacuum })
    }

    /// A new bus prefix for processes on this database.
    fn setup(&self, suite: &mut Suite) -> Setup {
        Setup { database_url: self.url.clone(), bus_prefix: Some(format!("bench{:x}", suite.next_run())), config: None }
    }

    async fn finish(self, suite: &mut Suite) -> Result<(), BenchError> {
        if let Some(vacuum) = self.vacuum {
            suite.notes.push(vacuum.stop().await.describe());
        }
        self.store.connection().clone().close().await?;
        Ok(())
    }
}

/// CreateTicket's maximum sustained rate (closed loop), then p50/p99 at half of it.
async fn intake_figures(
    suite: &mut Suite,
    connections: &Connections,
    sites: &Arc<Vec<Site>>,
    key: &str,
    label: &str,
    health: &LoadOutcome,
    pgbench_tps: Option<f64>,
) -> Result<(), BenchError> {
    let c = suite.options.concurrency;
    let warmup = suite.options.warmup;
    let window = suite.options.intake_window;
    let run = suite.next_run();
    let max = create_load(
        connections,
        sites,
        run,
        LoadSpec { pace: Pace::Closed { concurrency: c }, warmup, duration: window },
    )
    .await?;
    suite.log(&format!("  {}", describe(&max)));
    let mut sustained = Figure::new(
        &format!("{key}.create_ticket.sustained"),
        &format!("CreateTicket sustained, {label}"),
        max.throughput,
        "tickets/s",
        describe(&max),
    );
    sustained = match pgbench_tps {
        Some(tps) => sustained.against("pgbench", tps).target(Target::AtLeast(0.75 * tps)),
        None => sustained.against("gRPC", health.throughput).target(Target::AtLeast(1000.0)),
    };
    suite.figures.push(sustained);

    let half = max.throughput / 2.0;
    let run = suite.next_run();
    let steady =
        create_load(connections, sites, run, LoadSpec { pace: Pace::Open { rate: half }, warmup, duration: window })
            .await?;
    suite.log(&format!("  {}", describe(&steady)));
    let latency = |name: &str, value: f64, floor: f64| {
        Figure::new(
            &format!("{key}.create_ticket.{name}"),
            &format!("CreateTicket {name} at half that rate, {label}"),
            value,
            "ms",
            describe(&steady),
        )
        .against("health-check", floor)
    };
    suite.figures.push(latency("p50", steady.latency_ms.p50, health.latency_ms.p50));
    let mut p99 = latency("p99", steady.latency_ms.p99, health.latency_ms.p99);
    if pgbench_tps.is_some() {
        p99 = p99.target(Target::AtMost(20.0));
    }
    suite.figures.push(p99);
    if max.failed + steady.failed > 0 {
        suite.notes.push(format!(
            "{label}: {} CreateTicket calls failed; first: {}",
            max.failed + steady.failed,
            max.first_error.as_ref().or(steady.first_error.as_ref()).cloned().unwrap_or_default()
        ));
    }
    Ok(())
}

/// The highest rate the whole pipeline keeps up with, then create → dispatched latency at
/// the steady rate, with the CPU each of `processes` (and the database and broker) took.
#[allow(clippy::too_many_arguments)]
async fn end_to_end_figures(
    suite: &mut Suite,
    store: &Store,
    connections: &Connections,
    sites: &Arc<Vec<Site>>,
    processes: &[&Process],
    key: &str,
    label: &str,
    ceiling: f64,
) -> Result<(), BenchError> {
    let warmup = suite.options.warmup;
    let rate = suite.options.e2e_rate;

    // The first seconds on an empty database are not the steady state: nearly every
    // building and category sees its first reports, and incidents open and link them.
    // Measured apart, then the figures below are taken on the warmed system.
    let run = suite.next_run();
    let from = Utc::now();
    let cold_window = suite.options.e2e_cold_window;
    let spec = LoadSpec { pace: Pace::Open { rate }, warmup: Duration::ZERO, duration: cold_window };
    let cold = create_load(connections, sites, run, spec).await?;
    wait_dispatched(store, run, Duration::from_secs(90)).await?;
    let cold_recorded = recorded(store, run, from).await?;
    let cold_p99 = Percentiles::of_micros(cold_recorded.spans.iter().copied()).p99;
    suite.log(&format!("  cold start: {}; create → dispatched p99 {cold_p99:.0} ms", describe(&cold)));
    suite.figures.push(Figure::new(
        &format!("{key}.cold_start.p99"),
        &format!("Create → dispatched p99 in the first {} s on an empty database, {label}", cold_window.as_secs()),
        cold_p99,
        "ms",
        format!(
            "{} tickets offered at {rate:.0}/s from the first ticket on; incidents opened: {}; the other end-to-end \
             figures are taken after it",
            cold_recorded.spans.len(),
            incidents(store).await?
        ),
    )
    .target(Target::AtMost(1_000.0)));

    let window = if key == "e2e" { suite.options.e2e_window } else { suite.options.embedded_e2e_window };
    let run = suite.next_run();
    let postgres = key == "e2e";
    let counted_from = if postgres {
        pgstats::reset(store.connection()).await?;
        Some(pgstats::read(store.connection()).await?)
    } else {
        None
    };
    let from = Utc::now() + chrono::Duration::from_std(warmup).unwrap_or_default();
    let cpu_before = cpu_shares(processes)?;
    let steady =
        create_load(connections, sites, run, LoadSpec { pace: Pace::Open { rate }, warmup, duration: window }).await?;
    suite.log(&format!("  {}", describe(&steady)));
    let cpu = cpu_shares(processes)?
        .into_iter()
        .zip(cpu_before)
        .map(|((name, after), (_, before))| format!("{name} {:.2}", (after - before) / (window + warmup).as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    suite.log(&format!("  CPU (cores) during it: {cpu}"));
    suite.notes.push(format!("{label}: CPU (cores) during the steady run at {rate:.0}/s: {cpu}"));
    let left_after_5s = wait_dispatched(store, run, Duration::from_secs(5)).await?;
    let waiting = if left_after_5s == 0 { 0 } else { wait_dispatched(store, run, Duration::from_secs(5)).await? };
    if let Some(before) = counted_from {
        statement_figures(suite, store, run, &before).await?;
        noted_tickets_hot(suite, store, connections, run).await?;
    }
    let steady_recorded = recorded(store, run, from).await?;
    let spans = Percentiles::of_micros(steady_recorded.spans.iter().copied());
    // The steady run is the search's first step: the same test, at the steady rate.
    let steady_kept_up = kept_up(spans.p99, left_after_5s, &steady);
    let how = format!(
        "{} tickets offered at {rate:.0}/s for {} s after a {} s warm-up; dispatched_at − created_at of each \
         (create transaction to dispatch transaction, through relay, broker and worker); {waiting} not dispatched \
         10 s after the run, counted at their age then",
        steady_recorded.spans.len(),
        window.as_secs(),
        warmup.as_secs(),
    );
    // Open-loop steps from the steady rate (the steady run was the first): up ×1.5 while
    // the pipeline keeps up, down ×0.6 while it does not; once a rate kept up with and one
    // not are known, the geometric middle between them. Each step's backlog drains before
    // the next.
    wait_dispatched(store, run, Duration::from_secs(90)).await?;
    let (mut best, mut fell) = if steady_kept_up { (Some(rate), None) } else { (None, Some(rate)) };
    let mut trail = vec![format!(
        "{rate:.0}/s: p99 {:.0} ms{}",
        spans.p99,
        if steady_kept_up { " (the steady run)" } else { " (the steady run, fell behind)" }
    )];
    let mut step_rate = if steady_kept_up { rate * 1.5 } else { rate * 0.6 };
    for _ in 0..MAX_RATE_STEPS {
        let run = suite.next_run();
        let from = Utc::now() + chrono::Duration::from_std(warmup).unwrap_or_default();
        let spec = LoadSpec { pace: Pace::Open { rate: step_rate }, warmup, duration: suite.options.e2e_step_window };
        let step = create_load(connections, sites, run, spec).await?;
        let waiting = wait_dispatched(store, run, Duration::from_secs(5)).await?;
        let p99 = Percentiles::of_micros(recorded(store, run, from).await?.spans).p99;
        let kept_up = kept_up(p99, waiting, &step);
        suite.log(&format!(
            "  {}; create → dispatched p99 {p99:.0} ms, {}",
            describe(&step),
            if kept_up { "kept up" } else { "fell behind" }
        ));
        trail.push(format!("{step_rate:.0}/s: p99 {p99:.0} ms{}", if kept_up { "" } else { " (fell behind)" }));
        if kept_up {
            best = Some(best.map_or(step_rate, |b| b.max(step_rate)));
        } else {
            fell = Some(fell.map_or(step_rate, |f| f.min(step_rate)));
        }
        // What is still queued drains before the next step.
        wait_dispatched(store, run, Duration::from_secs(90)).await?;
        step_rate = match (best, fell) {
            (Some(kept), Some(behind)) if behind / kept <= BRACKET => break,
            (Some(kept), Some(behind)) => (kept * behind).sqrt().round(),
            (Some(_), None) => step_rate * 1.5,
            (None, _) => step_rate * 0.6,
        };
    }
    let mut sustained = Figure::new(
        &format!("{key}.sustained"),
        &format!("End to end sustained, {label}"),
        best.unwrap_or_default(),
        "tickets/s",
        format!(
            "the highest open-loop rate (the steady run at {rate:.0}/s, then steps of {} s, ×1.5 up or ×0.6 down, \
             then the middle of the bracket) at which create → dispatched p99 stayed ≤ {KEPT_UP_P99_MS:.0} ms with \
             nothing left 5 s later: {}",
            suite.options.e2e_step_window.as_secs(),
            trail.join("; ")
        ),
    )
    .against(if key == "e2e" { "pgbench" } else { "CreateTicket" }, ceiling);
    if key == "e2e" {
        sustained = sustained.target(Target::AtLeast(0.25 * ceiling));
    } else {
        sustained = sustained.target(Target::AtLeast(800.0));
    }
    suite.figures.push(sustained);

    let latency = |name: &str, value: f64| {
        Figure::new(
            &format!("{key}.dispatched.{name}"),
            &format!("Create → dispatched {name} at {rate:.0}/s, {label}"),
            value,
            "ms",
            how.clone(),
        )
    };
    suite.figures.push(latency("p50", spans.p50));
    let mut p99 = latency("p99", spans.p99);
    if key == "e2e" {
        p99 = p99.target(Target::AtMost(50.0));
    }
    suite.figures.push(p99);
    if steady_recorded.undispatched > 0 {
        suite.notes.push(format!(
            "{label}: {} of the steady run's tickets were not dispatched 10 s after it ended",
            steady_recorded.undispatched
        ));
    }
    Ok(())
}

/// SQL statements per ticket through the whole pipeline (create, relay, dispatch, notifier)
/// in the steady run, and how many of the tickets' row updates were HOT.
async fn statement_figures(
    suite: &mut Suite,
    store: &Store,
    run: u64,
    before: &pgstats::Counters,
) -> Result<(), BenchError> {
    let after = pgstats::read(store.connection()).await?;
    let tickets = ticket::Entity::find()
        .filter(ticket::Column::RequestId.starts_with(format!("bench-{run:x}-")))
        .count(store.connection())
        .await? as f64;
    let per_ticket = after.calls() as f64 / tickets.max(1.0);
    suite.log(&format!("  {per_ticket:.1} statements per ticket: {}", after.top(12, tickets)));
    let listed = suite.options.out.join("statements.md");
    let heading = format!(
        "# SQL statements of the steady end-to-end run\n\n{} statements for {tickets:.0} tickets ({per_ticket:.1} per \
         ticket), from pg_stat_statements, most called first.\n\n",
        after.calls()
    );
    std::fs::write(&listed, heading + &after.table(tickets))?;
    suite.figures.push(
        Figure::new(
            "e2e.statements_per_ticket",
            "SQL statements per ticket, whole pipeline, PostgreSQL",
            per_ticket,
            "statements",
            format!(
                "pg_stat_statements over the steady run and its drain ({} statements for {tickets:.0} tickets, every \
                 process and the suite's own look-ups, BEGIN and COMMIT included; all of them in statements.md); the \
                 most called, per ticket: {}",
                after.calls(),
                after.top(12, tickets)
            ),
        )
        .target(Target::AtMost(8.0)),
    );
    if let Some(ratio) = after.hot_ratio_since(before) {
        suite.figures.push(Figure::new(
            "e2e.ticket_updates_hot",
            "Ticket row updates by the pipeline (dispatch: state, assignee) that were HOT, PostgreSQL",
            100.0 * ratio,
            "%",
            format!(
                "pg_stat_user_tables for `tickets` over the same window: {} updates, {} HOT",
                after.ticket_updates - before.ticket_updates,
                after.ticket_hot_updates - before.ticket_hot_updates
            ),
        ));
    }
    Ok(())
}

/// A note on each of 2,000 dispatched tickets of `run` at 200/s: an update that changes no
/// indexed column (the version, the time of the change), which should stay on its page.
async fn noted_tickets_hot(
    suite: &mut Suite,
    store: &Store,
    connections: &Connections,
    run: u64,
) -> Result<(), BenchError> {
    let tickets: Vec<(String, i64)> = ticket::Entity::find()
        .filter(ticket::Column::RequestId.starts_with(format!("bench-{run:x}-")))
        .filter(ticket::Column::DispatchedAt.is_not_null())
        .select_only()
        .column(ticket::Column::Id)
        .column(ticket::Column::Version)
        .limit(2_000)
        .into_tuple()
        .all(store.connection())
        .await?;
    let before = pgstats::read(store.connection()).await?;
    let notes = Arc::new(tickets);
    let outcome = {
        let (connections, notes) = (connections.clone(), notes.clone());
        let spec = LoadSpec {
            pace: Pace::Open { rate: 200.0 },
            warmup: Duration::ZERO,
            duration: Duration::from_secs_f64(notes.len() as f64 / 200.0),
        };
        load::drive(spec, move |n| {
            let (id, version) = notes[n as usize % notes.len()].clone();
            connections.add_note(n, id, version)
        })
        .await
    };
    let after = pgstats::read(store.connection()).await?;
    if let Some(ratio) = after.hot_ratio_since(&before) {
        suite.log(&format!("  notes: {}; HOT {:.1} %", describe(&outcome), 100.0 * ratio));
        suite.figures.push(Figure::new(
            "e2e.note_updates_hot",
            "Ticket row updates changing no indexed column (AddNote) that were HOT, PostgreSQL",
            100.0 * ratio,
            "%",
            format!(
                "AddNote on {} dispatched tickets ({}): {} updates of `tickets`, {} HOT (fillfactor 80 leaves room on \
                 each page)",
                notes.len(),
                describe(&outcome),
                after.ticket_updates - before.ticket_updates,
                after.ticket_hot_updates - before.ticket_hot_updates
            ),
        ));
    }
    Ok(())
}

/// CPU seconds so far of each process, then of PostgreSQL's and RabbitMQ's processes.
fn cpu_shares(processes: &[&Process]) -> Result<Vec<(String, f64)>, BenchError> {
    let mut shares = Vec::with_capacity(processes.len() + 2);
    for process in processes {
        shares.push((process.name.clone(), process.cpu_seconds()?));
    }
    shares.push(("PostgreSQL".to_owned(), procs::cpu_seconds_of_command("postgres")));
    shares.push(("RabbitMQ".to_owned(), procs::cpu_seconds_of_command("beam.smp")));
    Ok(shares)
}

/// Whether the pipeline kept up with a run: create → dispatched p99 within
/// [`KEPT_UP_P99_MS`], nothing still waiting 5 s after it, and no create refused.
fn kept_up(p99_ms: f64, left_after_5s: u64, run: &LoadOutcome) -> bool {
    p99_ms <= KEPT_UP_P99_MS && left_after_5s == 0 && run.failed == 0
}

/// Escalation lateness (fired_at − fire_at of reminders and breaches) while
/// `open_deadlines` deadlines are open.
async fn escalation_figures(
    suite: &mut Suite,
    store: &Store,
    url: &str,
    world: &World,
    token: &str,
) -> Result<(), BenchError> {
    let allowance = suite.options.firing_allowance_secs;
    let config = suite.options.logs.join("escalation.toml");
    std::fs::write(
        &config,
        format!(
            "[policy.sla.p2]\nacknowledge_secs = {allowance}\non_site_secs = 86400\nresolve_secs = 172800\n\
             working_hours_only = false\n"
        ),
    )?;
    let open_now = open_deadlines(store).await?;
    let to_seed = suite.options.open_deadlines.saturating_sub(open_now as usize).div_ceil(3);
    suite.log(&format!("time: {open_now} deadlines open; seeding {to_seed} tickets with three open clocks each"));
    let policy = Policy::default();
    world::seed_open_deadlines(store, &policy, &world.sites[0], &world.agent_id, to_seed).await?;
    let open = open_deadlines(store).await?;

    let setup = Setup {
        database_url: url.to_owned(),
        bus_prefix: Some(format!("bench{:x}", suite.next_run())),
        config: Some(config.clone()),
    };
    let notifier = suite.start("notifier-escalation", "notifier", &setup).await?;
    let intake = suite.start("intake-escalation", "intake", &setup).await?;
    let connections = Connections::open(&intake.url(), CONNECTIONS, Some(token)).await?;
    let sites = Arc::new(world.sites.clone());
    let run = suite.next_run();
    let firing = suite.options.firing_tickets as u64;
    let logged_from = propdesk_store::now();
    let spec = LoadSpec {
        pace: Pace::Open { rate: suite.options.firing_rate },
        warmup: Duration::ZERO,
        duration: Duration::from_secs_f64(firing as f64 / suite.options.firing_rate),
    };
    let logged = {
        let connections = connections.clone();
        load::drive(spec, move |n| connections.create(n, door_lock_report(&sites, run, n))).await
    };
    suite.log(&format!("  logged {}", describe(&logged)));
    let fired = || {
        alarm::Entity::find()
            .filter(alarm::Column::Clock.eq("acknowledge"))
            .filter(alarm::Column::Rung.is_in(["reminder", "breach"]))
            .filter(alarm::Column::FireAt.gte(logged_from))
            .filter(alarm::Column::Pending.eq(false))
            .filter(alarm::Column::FiredAt.is_not_null())
    };
    let expected = 2 * logged.ok;
    let deadline = Instant::now() + Duration::from_secs(allowance * 3 + 60);
    while fired().count(store.connection()).await? < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = fired()
        .select_only()
        .column(alarm::Column::FireAt)
        .column(alarm::Column::FiredAt)
        .into_tuple()
        .all(store.connection())
        .await?;
    let lateness = Percentiles::of_micros(
        rows.iter().filter_map(|(due, fired)| fired.map(|at| (at - *due).num_microseconds().unwrap_or(i64::MAX))),
    );
    let how = format!(
        "{} reminders and breaches of {} P2 tickets logged at {:.0}/s with a {allowance} s acknowledge clock \
         (expected {expected}), among {open} open deadlines; fired_at − fire_at from the alarms table; one notifier",
        rows.len(),
        logged.ok,
        suite.options.firing_rate,
    );
    suite.figures.push(Figure::new("time.lateness.p50", "Escalation lateness p50", lateness.p50, "ms", how.clone()));
    suite.figures.push(
        Figure::new("time.lateness.p99", "Escalation lateness p99", lateness.p99, "ms", how)
            .target(Target::AtMost(1000.0)),
    );
    suite.figures.push(
        Figure::new(
            "time.open_deadlines",
            "Open deadlines during the lateness run",
            open as f64,
            "deadlines",
            "distinct (ticket, clock) with a pending alarm".to_owned(),
        )
        .target(Target::AtLeast(suite.options.open_deadlines as f64)),
    );
    if (rows.len() as u64) < expected {
        suite.notes.push(format!("escalation: only {} of {expected} alarms fired in time", rows.len()));
    }
    suite.memory(&notifier, "notifier (100k deadlines)")?;
    intake.stop()?;
    notifier.stop()?;
    cleanup_bus(suite, &setup).await;
    Ok(())
}

/// A P2 door-lock report in a common area (no unit, so no incidents form).
fn door_lock_report(sites: &[Site], run: u64, n: u64) -> pb::CreateTicketRequest {
    let mut request = mix::ticket_request(sites, run, n);
    request.kind = pb::TicketKind::Repair as i32;
    request.category = "door_lock".to_owned();
    request.priority = pb::Priority::P2 as i32;
    request.unit_id.clear();
    request.location = format!("bike-store door {n}");
    // No urgent words: each stays P2, with the configured acknowledge clock.
    request.description = format!("自行车棚门锁坏了 The bike-store door lock is broken ({n})");
    request
}

/// Distinct (ticket, clock) pairs with a pending alarm.
async fn open_deadlines(store: &Store) -> Result<u64, BenchError> {
    let pairs: Vec<(String, String)> = alarm::Entity::find()
        .filter(alarm::Column::Pending.eq(true))
        .select_only()
        .column(alarm::Column::TicketId)
        .column(alarm::Column::Clock)
        .distinct()
        .into_tuple()
        .all(store.connection())
        .await?;
    Ok(pairs.len() as u64)
}

/// `propdesk dev` on a fresh SQLite file with the world seeded, and a client for it.
async fn start_embedded(
    suite: &Suite,
    name: &str,
) -> Result<(Process, Store, Connections, Arc<Vec<Site>>), BenchError> {
    let folder = suite.options.logs.join(name);
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder)?;
    let url = format!("sqlite://{}?mode=rwc", folder.join("propdesk.db").display());
    let store = migrated(&url).await?;
    let world = world::seed(&store, WorldSize::default()).await?;
    let token = suite.token(&world)?;
    let dev = suite.start(name, "dev", &Setup { database_url: url, bus_prefix: None, config: None }).await?;
    let connections = Connections::open(&dev.url(), CONNECTIONS, Some(&token)).await?;
    Ok((dev, store, connections, Arc::new(world.sites)))
}

/// The desk's look-ups among many tickets: free-text search for a very common, a common
/// and a rare two-character word, and the look-ups by phone and by unit.
async fn desk_phase(suite: &mut Suite) -> Result<(), BenchError> {
    let tickets = suite.options.desk_tickets;
    suite.log(&format!("desk: seeding {tickets} tickets with history through the store"));
    let url = fresh_postgres(&suite.options.postgres_server, DESK_DATABASE).await?;
    let store = migrated(&url).await?;
    let world = world::seed(&store, WorldSize::default()).await?;
    let seeded = desk::seed(&store, &world.sites, &world.agent_id, tickets).await?;
    let token = suite.token(&world)?;
    let setup =
        Setup { database_url: url.clone(), bus_prefix: Some(format!("bench{:x}", suite.next_run())), config: None };
    let intake = suite.start("intake-desk", "intake", &setup).await?;
    let (rate, window) = (suite.options.desk_rate, suite.options.desk_window);
    let words = |word: &str| DeskCall::Search(Arc::new(vec![word.to_owned()]));
    let calls = [
        ("search.very_common", "SearchTickets \"住户\" (in about half the tickets)", words("住户"), 50.0),
        ("search.common", "SearchTickets \"电梯\" (lifts: about one ticket in seven)", words("电梯"), 50.0),
        ("search.rare", "SearchTickets \"燃气\" (gas: well under 1 %)", words("燃气"), 50.0),
        ("lookup.phone", "ListTickets by the reporter's phone", DeskCall::Phone(Arc::new(seeded.phones.clone())), 10.0),
        ("lookup.unit", "ListTickets by unit (its history)", DeskCall::Unit(Arc::new(seeded.units.clone())), 10.0),
    ];
    for (key, name, call, target_ms) in calls {
        let outcome = desk::measure(&intake.url(), &token, call, rate, window).await?;
        suite.log(&format!("  {key}: {}", describe(&outcome)));
        let p = outcome.latency_ms;
        let how = format!(
            "{tickets} tickets on PostgreSQL, page of 20, open loop at {rate:.0}/s for {} s: p50 {:.1} ms, p99 {:.1} ms, {} ok, {} failed{}",
            window.as_secs(),
            p.p50,
            p.p99,
            outcome.ok,
            outcome.failed,
            outcome.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        );
        let figure = Figure::new(&format!("desk.{key}.p95"), &format!("{name}, p95"), p.p95, "ms", how);
        suite.figures.push(figure.target(Target::AtMost(target_ms)));
    }
    suite.memory(&intake, "intake (desk look-ups)")?;
    retention_beside_creates(suite, &store, &world, &intake, &setup, &token).await?;
    intake.stop()?;
    cleanup_bus(suite, &setup).await;
    store.connection().clone().close().await?;
    drop_database(&suite.options.postgres_server, DESK_DATABASE).await?;
    Ok(())
}

/// Creates per second while the retention job runs (and without it, for comparison).
const RETENTION_CREATE_RATE: f64 = 200.0;

/// The retention job over the desk's tickets, every one finished four years ago, while
/// CreateTicket runs at a steady rate: how fast it anonymises, and what it does to the
/// creates' p99 (against the same load without it).
async fn retention_beside_creates(
    suite: &mut Suite,
    store: &Store,
    world: &World,
    intake: &Process,
    setup: &Setup,
    token: &str,
) -> Result<(), BenchError> {
    let db = store.connection();
    db.execute_unprepared("UPDATE tickets SET state = 'closed', closed_at = now() - interval '4 years'").await?;
    db.execute_unprepared("VACUUM ANALYZE tickets").await?;
    let expired: u64 = ticket::Entity::find().count(db).await?;
    let connections = Connections::open(&intake.url(), 4, Some(token)).await?;
    let sites = Arc::new(world.sites.clone());
    let window = Duration::from_secs(10);
    let spec = || LoadSpec {
        pace: Pace::Open { rate: RETENTION_CREATE_RATE },
        warmup: Duration::from_secs(2),
        duration: window,
    };
    let alone = create_load(&connections, &sites, suite.next_run(), spec()).await?;
    suite.log(&format!("  creates without retention: {}", describe(&alone)));
    let log = std::fs::File::create(suite.options.logs.join("retention.log"))?;
    let started = Instant::now();
    let mut job = tokio::process::Command::new(&suite.binary)
        .arg("retention")
        .envs(setup.env())
        .env("PROPDESK__LOG__FORMAT", "json")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let beside = create_load(&connections, &sites, suite.next_run(), spec()).await?;
    let load_ended = started.elapsed();
    let status = job.wait().await?;
    let took = started.elapsed();
    if !status.success() {
        return Err(BenchError::Setup(format!("propdesk retention failed ({status}); see retention.log")));
    }
    suite.log(&format!("  creates beside retention: {}", describe(&beside)));
    let anonymised: u64 = ticket::Entity::find().filter(ticket::Column::AnonymisedAt.is_not_null()).count(db).await?;
    let rate = anonymised as f64 / took.as_secs_f64();
    let how = format!(
        "`propdesk retention` (batches of 1,000, the default duty of half the time) over {expired} tickets finished four years ago on PostgreSQL: {anonymised} anonymised in {:.1} s, while CreateTicket ran open loop at {RETENTION_CREATE_RATE:.0}/s",
        took.as_secs_f64()
    );
    suite.figures.push(
        Figure::new("retention.rate", "Retention: tickets anonymised per second", rate, "tickets/s", how)
            .target(Target::AtLeast(2_000.0)),
    );
    let ratio = beside.latency_ms.p99 / alone.latency_ms.p99.max(0.001);
    let how = format!(
        "CreateTicket open loop at {RETENTION_CREATE_RATE:.0}/s, {} s after a 2 s warm-up: p99 {:.1} ms during the retention run (which lasted {:.1} s; the load {:.1} s) against {:.1} ms without; p50 {:.1} / {:.1} ms",
        window.as_secs(),
        beside.latency_ms.p99,
        took.as_secs_f64(),
        load_ended.as_secs_f64(),
        alone.latency_ms.p99,
        beside.latency_ms.p50,
        alone.latency_ms.p50,
    );
    suite.figures.push(
        Figure::new("retention.create_p99_ratio", "CreateTicket p99 during retention ÷ without", ratio, "×", how)
            .target(Target::AtMost(2.0)),
    );
    Ok(())
}

/// Attachments: a 3 MiB phone photo uploaded one at a time (the latency of the type check,
/// EXIF strip, thumbnail, store write and save) and by eight clients at once (the intake's
/// memory), and its streamed download.
async fn files_phase(suite: &mut Suite) -> Result<(), BenchError> {
    suite.log("files: uploads and downloads of a 3 MiB photo, files kept in a folder");
    let url = fresh_postgres(&suite.options.postgres_server, FILES_DATABASE).await?;
    let store = migrated(&url).await?;
    let world = world::seed(&store, WorldSize::default()).await?;
    desk::seed(&store, &world.sites, &world.agent_id, 2_000).await?;
    let tickets: Vec<String> =
        ticket::Entity::find().select_only().column(ticket::Column::Id).into_tuple().all(store.connection()).await?;
    let folder = suite.options.logs.join("files-store");
    let _ = std::fs::remove_dir_all(&folder);
    let config = suite.options.logs.join("files.toml");
    let settings = format!(
        "[attachments]\nstore = \"file://{}\"\nuploads_per_minute = 1000000\nupload_burst = 1000\n",
        folder.display()
    );
    std::fs::write(&config, settings)?;
    let token = suite.token(&world)?;
    let setup = Setup {
        database_url: url.clone(),
        bus_prefix: Some(format!("bench{:x}", suite.next_run())),
        config: Some(config),
    };
    let intake = suite.start("files-intake", "intake", &setup).await?;
    let photo = Arc::new(files::phone_photo());
    let mib = photo.len() as f64 / (1024.0 * 1024.0);
    let window = suite.options.files_window;
    let (first, rest) = tickets.split_at(tickets.len() / 2);
    let one = files::uploads(&intake.url(), &token, Arc::new(first.to_vec()), photo.clone(), 1, window).await?;
    suite.log(&format!("  upload, one client: {}", describe(&one)));
    let how = |outcome: &LoadOutcome, clients: usize| {
        format!(
            "{mib:.2} MiB JPEG, 4000×3000, with GPS EXIF; {clients} client(s) for {} s, each upload to another ticket: p50 {:.1} ms, p99 {:.1} ms, {:.1} uploads/s, {} ok, {} failed{}",
            window.as_secs(),
            outcome.latency_ms.p50,
            outcome.latency_ms.p99,
            outcome.throughput,
            outcome.ok,
            outcome.failed,
            outcome.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        )
    };
    let figure = Figure::new(
        "files.upload_3mib.p95",
        "AddAttachment of a 3 MiB photo, p95",
        one.latency_ms.p95,
        "ms",
        how(&one, 1),
    );
    suite.figures.push(figure.target(Target::AtMost(150.0)));
    let eight = files::uploads(&intake.url(), &token, Arc::new(rest.to_vec()), photo.clone(), 8, window).await?;
    suite.log(&format!("  upload, eight clients: {}", describe(&eight)));
    let figure = Figure::new(
        "files.upload_3mib.eight_clients",
        "AddAttachment, 8 clients at once",
        eight.throughput,
        "uploads/s",
        how(&eight, 8),
    );
    suite.figures.push(figure);
    let peak = intake.peak_rss_mib()?;
    let figure = Figure::new(
        "memory.files-intake",
        "Peak RSS, intake while 8 clients upload 3 MiB photos",
        peak,
        "MiB",
        "VmHWM of the intake after the one-client and eight-client upload runs",
    );
    suite.figures.push(figure.target(Target::AtMost(150.0)));

    let id = files::upload_one(&intake.url(), &token, &tickets[0], (*photo).clone()).await?;
    let (down, bytes) = files::downloads(&intake.url(), &token, &id, Duration::from_secs(10)).await?;
    suite.log(&format!("  download: {}", describe(&down)));
    let rate = down.throughput * bytes as f64 / (1024.0 * 1024.0);
    let how = format!(
        "DownloadAttachment of the stored photo ({:.2} MiB after stripping) in 256 KiB messages, one client for 10 s: {:.1} downloads/s, p50 {:.1} ms",
        bytes as f64 / (1024.0 * 1024.0),
        down.throughput,
        down.latency_ms.p50
    );
    suite.figures.push(
        Figure::new("files.download", "DownloadAttachment throughput", rate, "MiB/s", how)
            .target(Target::AtLeast(50.0)),
    );
    intake.stop()?;
    cleanup_bus(suite, &setup).await;
    store.connection().clone().close().await?;
    drop_database(&suite.options.postgres_server, FILES_DATABASE).await?;
    let _ = std::fs::remove_dir_all(&folder);
    Ok(())
}

/// `propdesk dev` on SQLite: the same intake and end-to-end figures.
async fn embedded_phase(suite: &mut Suite, health: &LoadOutcome) -> Result<(), BenchError> {
    suite.log("embedded: propdesk dev, SQLite, in-process bus");
    let (dev, store, connections, sites) = start_embedded(suite, "dev").await?;
    intake_figures(suite, &connections, &sites, "embedded", "embedded (SQLite)", health, None).await?;
    suite.memory(&dev, "dev (embedded, CreateTicket load)")?;
    dev.stop()?;
    store.connection().clone().close().await?;
    let create_max =
        suite.figures.iter().find(|f| f.key == "embedded.create_ticket.sustained").map(|f| f.value).unwrap_or_default();

    // A fresh file: the intake run's tickets would otherwise still queue for dispatch.
    let (dev, store, connections, sites) = start_embedded(suite, "dev-e2e").await?;
    end_to_end_figures(suite, &store, &connections, &sites, &[&dev], "embedded", "embedded (SQLite)", create_max)
        .await?;
    suite.memory(&dev, "dev (embedded, end to end)")?;
    dev.stop()?;
    store.connection().clone().close().await?;
    Ok(())
}

/// Many screens watching: WatchTickets streams held open while tickets come in and are
/// dispatched, on PostgreSQL (intake, dispatch, notifier) and in embedded mode.
async fn watch_phase(suite: &mut Suite) -> Result<(), BenchError> {
    let streams = suite.options.watch_streams;
    suite.log(&format!("watch: {streams} WatchTickets streams, PostgreSQL"));
    let url = fresh_postgres(&suite.options.postgres_server, WATCH_DATABASE).await?;
    let store = migrated(&url).await?;
    let world = world::seed(&store, WorldSize::default()).await?;
    let token = suite.token(&world)?;
    let setup =
        Setup { database_url: url.clone(), bus_prefix: Some(format!("bench{:x}", suite.next_run())), config: None };
    let intake = suite.start("intake-watch", "intake", &setup).await?;
    let dispatch = suite.start("dispatch-watch", "dispatch", &setup).await?;
    let notifier = suite.start("notifier-watch", "notifier", &setup).await?;
    let connections = Connections::open(&intake.url(), CONNECTIONS, Some(&token)).await?;
    pgstats::reset(store.connection()).await?;
    let sites = Arc::new(world.sites.clone());
    watch_figures(suite, &store, &intake, &connections, &sites, &token, streams, "watch", "PostgreSQL").await?;
    let reads = pgstats::read(store.connection()).await?.calls_of("pg_snapshot_xmin");
    let seconds = suite.options.watch_window.as_secs_f64();
    suite.figures.push(Figure::new(
        "watch.reads_per_second",
        "WatchTickets history reads per second, PostgreSQL",
        reads as f64 / seconds,
        "reads/s",
        format!(
            "pg_stat_statements: {reads} reads of new events (one per batch for all {streams} streams) while the \
             window and its set-up ran"
        ),
    ));
    suite.memory(&intake, "intake (1,000 watch streams)")?;
    for process in [intake, dispatch, notifier] {
        process.stop()?;
    }
    cleanup_bus(suite, &setup).await;
    store.connection().clone().close().await?;
    drop_database(&suite.options.postgres_server, WATCH_DATABASE).await?;

    let streams = suite.options.watch_streams_embedded;
    suite.log(&format!("watch: {streams} WatchTickets streams, embedded"));
    let (dev, store, connections, sites) = start_embedded(suite, "dev-watch").await?;
    let token = {
        let actor = Actor { staff_id: "bench-watcher".into(), role: Role::Admin, properties: vec![] };
        suite.keys.mint(&actor, Utc::now().timestamp(), 3600).map_err(|e| BenchError::Setup(e.to_string()))?
    };
    watch_figures(suite, &store, &dev, &connections, &sites, &token, streams, "watch.embedded", "embedded (SQLite)")
        .await?;
    dev.stop()?;
    store.connection().clone().close().await?;
    Ok(())
}

/// Opens `streams` streams on `server`, logs tickets at the watch rate for the window,
/// and records delivery delay, completeness and the server's CPU.
#[allow(clippy::too_many_arguments)]
async fn watch_figures(
    suite: &mut Suite,
    store: &Store,
    server: &Process,
    connections: &Connections,
    sites: &Arc<Vec<Site>>,
    token: &str,
    streams: usize,
    key: &str,
    label: &str,
) -> Result<(), BenchError> {
    let (rate, window) = (suite.options.watch_rate, suite.options.watch_window);
    let watchers = Watchers::open(&server.url(), token, streams, WATCH_CONNECTIONS).await?;
    let cpu_before = server.cpu_seconds()?;
    let from = propdesk_store::now();
    let to = from + chrono::Duration::from_std(window).unwrap_or_default();
    watchers.count_between(from, to);
    let run = suite.next_run();
    let load = create_load(
        connections,
        sites,
        run,
        LoadSpec { pace: Pace::Open { rate }, warmup: Duration::ZERO, duration: window },
    )
    .await?;
    let cpu = (server.cpu_seconds()? - cpu_before) / load.seconds.max(1.0);
    // Events of the window still on their way: the dispatches of its last tickets.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let expected = ticket_event::Entity::find()
        .filter(ticket_event::Column::OccurredAt.gte(from))
        .filter(ticket_event::Column::OccurredAt.lt(to))
        .count(store.connection())
        .await?;
    let watched = watchers.finish(expected).await?;
    suite.log(&format!(
        "  {}; {expected} events; {} of {} streams got them all (fewest {}, most {}); delay p50 {:.1} ms, p99 {:.1} ms; \
         server CPU {cpu:.2} cores",
        describe(&load),
        watched.complete,
        watched.streams,
        watched.fewest,
        watched.most,
        watched.delay_ms.p50,
        watched.delay_ms.p99
    ));
    let how = format!(
        "{} streams open (the suite's own Rust client, {WATCH_CONNECTIONS} HTTP/2 connections) while {} tickets were \
         logged at {rate:.0}/s and dispatched: {expected} events in {} s; receipt − occurred_at of every event on \
         every stream; p50 {:.1} ms, max {:.0} ms",
        watched.streams,
        load.ok,
        window.as_secs(),
        watched.delay_ms.p50,
        watched.delay_ms.max
    );
    suite.figures.push(
        Figure::new(
            &format!("{key}.delay.p99"),
            &format!("Watch delivery p99, {streams} streams, {label}"),
            watched.delay_ms.p99,
            "ms",
            how,
        )
        .target(Target::AtMost(250.0)),
    );
    suite.figures.push(
        Figure::new(
            &format!("{key}.complete"),
            &format!("Watch streams that received every event, {label}"),
            watched.complete as f64,
            "streams",
            format!(
                "each of {expected} events of the window on every stream (fewest {}, most {}); {} streams failed{}",
                watched.fewest,
                watched.most,
                watched.failures.len(),
                watched.failures.first().map(|f| format!(" (first: {f})")).unwrap_or_default()
            ),
        )
        .target(Target::AtLeast(streams as f64)),
    );
    suite.figures.push(Figure::new(
        &format!("{key}.cpu"),
        &format!("Server CPU with {streams} streams at {rate:.0} tickets/s, {label}"),
        cpu,
        "cores",
        format!("utime + stime of the `{}` process over the window, per second", server.name),
    ));
    Ok(())
}

/// Writes `results.json` and `results.md` into `out`.
pub fn write(report: &Report, out: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(out)?;
    let json = serde_json::to_string_pretty(report).map_err(|e| BenchError::Setup(e.to_string()))?;
    std::fs::write(out.join("results.json"), json + "\n")?;
    std::fs::write(out.join("results.md"), report.markdown())?;
    Ok(())
}
