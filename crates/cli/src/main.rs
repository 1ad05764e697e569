//! `propdesk`: the one binary. Thin: settings, telemetry, signals and wiring; the work is
//! in the library crates.

mod dev;
mod health;
mod settings;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use propdesk_bus::memory::MemoryBus;
use propdesk_bus::rabbit::RabbitBus;
use propdesk_bus::{Bus, OutboxRelay, WorkerRole};
use propdesk_dispatch::WorkerSettings;
use propdesk_domain::{Actor, Role};
use propdesk_intake::attachments::Attachments;
use propdesk_intake::{Authenticator, IntakeState, ServerOptions, SignedInStaff, TokenKeys};
use propdesk_store::Store;
use propdesk_store::blobs::Blobs;
use propdesk_store::retention::Pace;
use tokio_util::sync::CancellationToken;

use crate::settings::{DEV_DATABASE_URL, Settings};

#[derive(Parser)]
#[command(name = "propdesk", version, about = "Customer-service centre backend for property management")]
struct Cli {
    /// A TOML settings file (defaults, then this file, then PROPDESK__* variables).
    #[arg(long, global = true, env = "PROPDESK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply database migrations, then exit.
    Migrate,
    /// Serve the intake gRPC API (TicketService, DirectoryService, health, reflection).
    Intake,
    /// Print a signed bearer token for a staff member.
    Token {
        #[arg(long)]
        staff: String,
        /// agent, dispatcher, technician, supervisor, manager or admin.
        #[arg(long)]
        role: String,
        /// A property the staff member serves (repeat for several).
        #[arg(long = "property")]
        properties: Vec<String>,
        /// Lifetime in seconds (default: auth.token_lifetime_secs).
        #[arg(long)]
        ttl_secs: Option<i64>,
    },
    /// Run the dispatch worker (routes and assigns tickets from the bus).
    Dispatch,
    /// Run the notifier worker (SLA clocks, escalations, follow-ups, notifications, webhooks).
    Notifier,
    /// Inspect or replay messages parked after failing too often.
    Parked {
        #[command(subcommand)]
        action: ParkedAction,
    },
    /// Embedded mode: everything in one process on a SQLite file with the in-process bus,
    /// demo data seeded.
    Dev,
    /// Re-seal residents' personal data under `privacy.active_key` (after adding a key, or
    /// for values from before sealing), in batches, while the service runs; when it reports
    /// nothing left, older keys can be removed.
    Rekey {
        #[arg(long, default_value_t = 500)]
        batch: u64,
    },
    /// Print a new random key (base64, 32 bytes) for `privacy.data_keys` or `privacy.index_key`.
    Keygen,
    /// Replace residents' contact data on tickets finished longer ago than their
    /// property's retention period with an anonymous marker, in batches; resumable.
    Retention {
        #[arg(long, default_value_t = 1_000)]
        batch: u64,
    },
}

impl Command {
    /// The name this command logs and exports traces as; `None` for one that prints only.
    fn service(&self) -> Option<&'static str> {
        match self {
            Command::Token { .. } | Command::Keygen => None,
            Command::Rekey { .. } => Some("propdesk-rekey"),
            Command::Retention { .. } => Some("propdesk-retention"),
            Command::Migrate => Some("propdesk-migrate"),
            Command::Intake => Some("propdesk-intake"),
            Command::Dispatch => Some("propdesk-dispatch"),
            Command::Notifier => Some("propdesk-notifier"),
            Command::Parked { .. } => Some("propdesk-parked"),
            Command::Dev => Some("propdesk-dev"),
        }
    }
}

#[derive(Subcommand)]
enum ParkedAction {
    /// List parked messages (they stay parked).
    List {
        /// dispatch or notifier.
        #[arg(long, default_value = "dispatch")]
        role: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put every parked message back on its queue, with a fresh attempt count.
    Replay {
        #[arg(long, default_value = "dispatch")]
        role: String,
    },
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Run(String),
}

fn run_error(context: &str) -> impl Fn(&dyn std::fmt::Display) -> Failure + '_ {
    move |e| Failure::Run(format!("{context}: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // ring is the one TLS provider compiled in; rustls wants it named before first use
    // (object storage over https, webhooks). An error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("propdesk: bad configuration: {err}");
            return ExitCode::from(2);
        }
    };
    // Before the runtime: the span exporter's HTTP client blocks, and the guard flushes it
    // after the runtime is gone.
    let _telemetry = match cli.command.service() {
        Some(service) => match telemetry::init(&settings.log, &settings.trace, service) {
            Ok(telemetry) => Some(telemetry),
            Err(err) => {
                eprintln!("propdesk: bad configuration: {err}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("propdesk: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err @ Failure::Config(_)) => {
            eprintln!("propdesk: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("propdesk: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> Result<(), Failure> {
    if matches!(command, Command::Intake | Command::Dispatch | Command::Notifier | Command::Dev) {
        telemetry::init_metrics(&settings.metrics).map_err(Failure::Config)?;
    }
    match command {
        Command::Token { staff, role, properties, ttl_secs } => {
            let keys = token_keys(&settings)?;
            let role = role.parse::<Role>().map_err(|e| Failure::Config(e.to_string()))?;
            let actor = Actor { staff_id: staff, role, properties };
            let ttl = ttl_secs.unwrap_or(settings.auth.token_lifetime_secs);
            let token =
                keys.mint(&actor, chrono::Utc::now().timestamp(), ttl).map_err(|e| Failure::Run(e.to_string()))?;
            println!("{token}");
            Ok(())
        }
        Command::Migrate => {
            let store = connect(&settings).await?;
            store.migrate().await.map_err(|e| run_error("migrate")(&e))?;
            tracing::info!("migrations applied");
            // Personal data written before sealing existed is sealed now.
            reseal(&store, 500).await
        }
        Command::Rekey { batch } => {
            let store = connect(&settings).await?;
            reseal(&store, batch.max(1)).await
        }
        Command::Retention { batch } => {
            let store = connect(&settings).await?;
            retention_pass(&store, &settings, batch.max(1)).await.map_err(|e| run_error("retention")(&e))
        }
        Command::Keygen => {
            let key = propdesk_store::sealing::KeyRing::generate_key().map_err(|e| run_error("keygen")(&e))?;
            println!("{key}");
            Ok(())
        }
        Command::Intake => {
            let keys = shared_secret_keys(&settings)?;
            let bus = rabbit_bus(&settings)?;
            let store = connect(&settings).await?;
            let shutdown = shutdown_on_signal();
            let relay = spawn_relay(&settings, &store, &bus, &shutdown);
            let served = serve_intake(&settings, store, &bus, keys, shutdown).await;
            let _ = relay.await;
            served
        }
        Command::Dispatch => {
            let listen = settings.dispatch.health_listen;
            run_worker(&settings, "propdesk.dispatch", listen, |settings, store, bus, stop| {
                tokio::spawn(run_dispatch_owned(settings, store, bus, stop))
            })
            .await
        }
        Command::Notifier => {
            let listen = settings.notifier.health_listen;
            run_worker(&settings, "propdesk.notifier", listen, |settings, store, bus, stop| {
                tokio::spawn(run_notifier(settings, store, bus, stop))
            })
            .await
        }
        Command::Parked { action } => {
            let Bus::Rabbit(bus) = rabbit_bus(&settings)? else {
                return Err(Failure::Config("bus.url must name a RabbitMQ broker".into()));
            };
            match action {
                ParkedAction::List { role, limit } => {
                    let role = role.parse::<WorkerRole>().map_err(Failure::Config)?;
                    let parked = bus.list_parked(role, limit).await.map_err(|e| run_error("parked list")(&e))?;
                    println!("{} parked message(s) for {role}", parked.len());
                    for message in parked {
                        println!(
                            "{}  {}  attempt {}  {} bytes  reason: {}",
                            message.message_id,
                            message.routing_key,
                            message.attempt,
                            message.payload_bytes,
                            message.reason
                        );
                    }
                }
                ParkedAction::Replay { role } => {
                    let role = role.parse::<WorkerRole>().map_err(Failure::Config)?;
                    let replayed = bus.replay_parked(role).await.map_err(|e| run_error("parked replay")(&e))?;
                    println!("replayed {replayed} message(s) to the {role} queue");
                }
            }
            Ok(())
        }
        Command::Dev => {
            let mut settings = settings;
            if settings.auth.signing_secret.0.is_empty() {
                let secret = dev::signing_secret(&settings.database.url.0).map_err(|e| run_error("dev secret")(&e))?;
                settings.auth.signing_secret.0 = secret;
            }
            if settings.attachments.store.is_empty() {
                settings.attachments.store = dev::files_url(&settings.database.url.0);
            }
            if settings.intake.allowed_origins.is_empty() {
                settings.intake.allowed_origins = settings::DEV_ORIGINS.map(str::to_owned).to_vec();
            }
            if !settings.privacy.is_set() {
                let keys = dev::privacy_keys(&settings.database.url.0).map_err(Failure::Config)?;
                settings.privacy.data_keys = keys.data_keys;
                settings.privacy.active_key = keys.active_key;
                settings.privacy.index_key = keys.index_key;
            }
            let keys = token_keys(&settings)?;
            let store = connect(&settings).await?;
            store.migrate().await.map_err(|e| run_error("migrate")(&e))?;
            // A database from before sealing gets its personal data sealed (as `migrate` does).
            reseal(&store, 500).await?;
            let demo = dev::seed(&store).await.map_err(|e| run_error("seed demo data")(&e))?;
            print_welcome(&settings, &keys, &demo)?;
            // Everything in one process: the in-process bus, one writer for SQLite.
            let bus = Bus::Memory(MemoryBus::new(settings.bus.topology()));
            settings.dispatch.concurrency = 1;
            let shutdown = shutdown_on_signal();
            settings.notifier.concurrency = 1;
            settings.notifier.fire_concurrency = 1;
            let dispatch =
                tokio::spawn(run_dispatch_owned(settings.clone(), store.clone(), bus.clone(), shutdown.clone()));
            let notifier = tokio::spawn(run_notifier(settings.clone(), store.clone(), bus.clone(), shutdown.clone()));
            let relay = spawn_relay(&settings, &store, &bus, &shutdown);
            let retention = spawn_retention(&store, &settings, &shutdown);
            let served = serve_intake(&settings, store, &bus, Some(keys), shutdown).await;
            let _ = relay.await;
            let _ = dispatch.await;
            let _ = notifier.await;
            let _ = retention.await;
            served
        }
    }
}

/// The shared-secret token keys, unless such tokens are switched off.
fn shared_secret_keys(settings: &Settings) -> Result<Option<TokenKeys>, Failure> {
    if settings.auth.shared_secret_tokens { token_keys(settings).map(Some) } else { Ok(None) }
}

/// The identity provider's verifier, when one is configured, its keys read once at start
/// (a provider that does not answer yet is retried when the first token comes).
async fn identity_provider(settings: &Settings) -> Result<Option<Arc<propdesk_oidc::Verifier>>, Failure> {
    let oidc = &settings.auth.oidc;
    if !oidc.enabled() {
        return Ok(None);
    }
    let verifier = propdesk_oidc::Verifier::new(oidc.verifier_settings().map_err(Failure::Config)?)
        .map_err(|e| Failure::Config(format!("auth.oidc: {e}")))?;
    match verifier.refresh_now().await {
        Ok(keys) => tracing::info!(issuer = %oidc.issuer, keys, "identity provider ready"),
        Err(refused) => tracing::warn!(issuer = %oidc.issuer, %refused, "identity provider not reachable yet"),
    }
    Ok(Some(Arc::new(verifier)))
}

fn token_keys(settings: &Settings) -> Result<TokenKeys, Failure> {
    if settings.auth.signing_secret.0.is_empty() {
        return Err(Failure::Config(
            "auth.signing_secret is required (set PROPDESK__AUTH__SIGNING_SECRET to at least 32 bytes)".into(),
        ));
    }
    TokenKeys::new(settings.auth.signing_secret.0.as_bytes())
        .map_err(|e| Failure::Config(format!("auth.signing_secret: {e}")))
}

/// One retention pass over every property.
async fn retention_pass(store: &Store, settings: &Settings, batch: u64) -> Result<(), propdesk_store::StoreError> {
    let started = std::time::Instant::now();
    let pace = Pace { batch, duty: settings.privacy.retention_duty };
    let anonymised = store.anonymise_expired(settings.privacy.retention_days, pace, chrono::Utc::now()).await?;
    tracing::info!(anonymised, secs = started.elapsed().as_secs_f64(), "retention pass done");
    Ok(())
}

/// Embedded mode runs the retention job itself (production runs it as a CronJob).
fn spawn_retention(store: &Store, settings: &Settings, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let (store, settings, shutdown) = (store.clone(), settings.clone(), shutdown.clone());
    tokio::spawn(async move {
        let every = Duration::from_secs(settings.privacy.retention_interval_secs.max(1));
        loop {
            if let Err(err) = retention_pass(&store, &settings, 1_000).await {
                tracing::warn!(error = %err, "retention pass failed; trying again later");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

async fn reseal(store: &Store, batch: u64) -> Result<(), Failure> {
    let done = store.reseal_personal_data(batch).await.map_err(|e| run_error("rekey")(&e))?;
    let active = propdesk_store::sealing::ring().map(|r| r.active_id().to_owned()).unwrap_or_default();
    tracing::info!(tickets = done.tickets, residents = done.residents, active_key = %active, "personal data sealed under the active key");
    Ok(())
}

/// Connects to the database, with this process's keys for personal data installed first.
async fn connect(settings: &Settings) -> Result<Store, Failure> {
    let ring = settings.privacy.key_ring().map_err(Failure::Config)?;
    propdesk_store::sealing::install(ring).map_err(|e| Failure::Run(e.to_string()))?;
    Store::connect(&settings.database.url.0, settings.database.max_connections)
        .await
        .map_err(|e| run_error("database.url: cannot connect")(&e))
}

async fn serve_intake(
    settings: &Settings,
    store: Store,
    bus: &Bus,
    shared_keys: Option<TokenKeys>,
    shutdown: CancellationToken,
) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(settings.intake.listen)
        .await
        .map_err(|e| Failure::Config(format!("intake.listen {}: {e}", settings.intake.listen)))?;
    let address = listener.local_addr().map_err(|e| run_error("intake.listen")(&e))?;
    let mut state = IntakeState::new(store, settings.policy.clone(), shutdown);
    state.watch_poll = Duration::from_millis(settings.intake.watch_poll_ms.max(10));
    state.watch_heartbeat = Duration::from_secs(settings.intake.watch_heartbeat_secs);
    state.signed_in = Arc::new(SignedInStaff::new(Duration::from_secs(settings.auth.directory_cache_secs)));
    let files = &settings.attachments;
    if !files.store.is_empty() {
        let blobs = Blobs::open(&files.store, &files.s3_access()).map_err(|e| Failure::Config(e.to_string()))?;
        state.attachments = Some(Attachments::new(blobs, files.limits()));
    }
    let authenticator = Authenticator::new(shared_keys, identity_provider(settings).await?, &state);
    let state = Arc::new(state);
    let listening = state.follow_bus(bus);
    let sweeping = spawn_orphan_sweep(&state, files);
    let options = ServerOptions {
        max_request_bytes: settings.intake.max_request_bytes,
        allowed_origins: settings.intake.origins().map_err(Failure::Config)?,
        tls: settings.intake.tls_identity().map_err(Failure::Config)?,
        max_connection_age: Duration::from_secs(settings.intake.max_connection_age_secs),
        drain_timeout: Duration::from_secs(settings.intake.drain_timeout_secs),
    };
    tracing::info!(%address, "intake serving");
    propdesk_intake::serve(listener, state, authenticator, options).await.map_err(|e| run_error("intake")(&e))?;
    listening.abort();
    if let Some(sweeping) = sweeping {
        sweeping.abort();
    }
    tracing::info!("intake stopped");
    Ok(())
}

/// Every `sweep_interval_secs`, removes stored bytes no attachment names that are older
/// than `orphan_grace_secs` (an upload that died between writing its bytes and saving).
fn spawn_orphan_sweep(
    state: &Arc<IntakeState>,
    files: &settings::AttachmentSettings,
) -> Option<tokio::task::JoinHandle<()>> {
    let state = state.clone();
    state.attachments.as_ref()?;
    let interval = Duration::from_secs(files.sweep_interval_secs);
    let grace = chrono::TimeDelta::seconds(i64::try_from(files.orphan_grace_secs).unwrap_or(i64::MAX));
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let Some(attachments) = state.attachments.as_ref() else { return };
            match attachments.blobs.sweep_orphans(&state.store, chrono::Utc::now() - grace).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed stored files no attachment names"),
                Err(e) => tracing::warn!(error = %e, "orphan sweep failed; trying again later"),
            }
        }
    }))
}

/// The RabbitMQ bus named by `bus.url` (or a cluster's `bus.urls`); required outside
/// embedded mode.
fn rabbit_bus(settings: &Settings) -> Result<Bus, Failure> {
    let nodes: Vec<String> = if settings.bus.urls.is_empty() {
        Some(settings.bus.url.0.clone()).filter(|url| !url.is_empty()).into_iter().collect()
    } else {
        settings.bus.urls.iter().map(|url| url.0.clone()).collect()
    };
    if nodes.is_empty() {
        return Err(Failure::Config(
            "bus.url is required (set PROPDESK__BUS__URL to amqp://..., or PROPDESK__BUS__URLS to a cluster's nodes; `propdesk dev` uses the in-process bus)".into(),
        ));
    }
    let mut bus = RabbitBus::cluster(&nodes, settings.bus.topology());
    let ca_file = &settings.bus.tls_ca_file;
    if !ca_file.is_empty() {
        let pem =
            std::fs::read_to_string(ca_file).map_err(|e| Failure::Config(format!("bus.tls_ca_file {ca_file}: {e}")))?;
        bus = bus.with_tls_ca(pem);
    }
    Ok(Bus::Rabbit(Arc::new(bus)))
}

/// The outbox relay of this process; it flushes and ends after `shutdown`.
fn spawn_relay(
    settings: &Settings,
    store: &Store,
    bus: &Bus,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let relay = OutboxRelay::new(store.clone(), bus.clone(), settings.bus.relay());
    tokio::spawn(relay.run(shutdown.clone()))
}

async fn run_dispatch_owned(
    settings: Settings,
    store: Store,
    bus: Bus,
    shutdown: CancellationToken,
) -> Result<(), Failure> {
    run_dispatch(&settings, store, bus, shutdown).await
}

/// A worker process: health endpoint, outbox relay, and the worker itself until SIGTERM.
async fn run_worker<F>(
    settings: &Settings,
    service: &'static str,
    health_listen: std::net::SocketAddr,
    start: F,
) -> Result<(), Failure>
where
    F: FnOnce(Settings, Store, Bus, CancellationToken) -> tokio::task::JoinHandle<Result<(), Failure>>,
{
    let bus = rabbit_bus(settings)?;
    let store = connect(settings).await?;
    let shutdown = shutdown_on_signal();
    let health = tokio::spawn(health::serve(health_listen, service, store.clone(), bus.clone(), shutdown.clone()));
    let relay = spawn_relay(settings, &store, &bus, &shutdown);
    let worker = start(settings.clone(), store, bus, shutdown.clone());
    let worked = worker.await.map_err(|e| run_error(service)(&e)).and_then(|r| r);
    // The relay flushes what the worker wrote, then ends.
    shutdown.cancel();
    let _ = relay.await;
    worked?;
    match health.await {
        Ok(Err(err)) => Err(Failure::Run(err)),
        _ => Ok(()),
    }
}

/// Waits for `shutdown`, then gives the worker its drain timeout to settle in-flight work.
async fn drain<E: std::fmt::Display>(
    name: &str,
    worker: tokio::task::JoinHandle<Result<(), E>>,
    stop: CancellationToken,
    shutdown: CancellationToken,
    drain_timeout_secs: u64,
) -> Result<(), Failure> {
    shutdown.cancelled().await;
    stop.cancel();
    match tokio::time::timeout(Duration::from_secs(drain_timeout_secs), worker).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(err))) => Err(run_error(name)(&err)),
        Ok(Err(join)) => Err(run_error(name)(&join)),
        Err(_) => {
            tracing::warn!("{name} drain timed out; unacked messages will be redelivered");
            Ok(())
        }
    }
}

/// Runs the dispatch worker until `shutdown`; in-flight messages get the drain timeout.
async fn run_dispatch(settings: &Settings, store: Store, bus: Bus, shutdown: CancellationToken) -> Result<(), Failure> {
    let worker_settings = WorkerSettings {
        concurrency: settings.dispatch.concurrency,
        prefetch: settings.dispatch.prefetch,
        batch: settings.dispatch.batch,
        linger: std::time::Duration::from_millis(settings.dispatch.linger_ms),
    };
    let policy = Arc::new(settings.policy.clone());
    let stop = CancellationToken::new();
    let worker = tokio::spawn(propdesk_dispatch::run(bus, store, policy, worker_settings, stop.clone()));
    drain("dispatch", worker, stop, shutdown, settings.dispatch.drain_timeout_secs).await
}

/// Runs the notifier until `shutdown`; in-flight work gets the drain timeout.
async fn run_notifier(settings: Settings, store: Store, bus: Bus, shutdown: CancellationToken) -> Result<(), Failure> {
    let policy = Arc::new(settings.policy.clone());
    let notifier = Arc::new(propdesk_notifier::Notifier::new(store, policy, settings.notifier.clone()));
    let stop = CancellationToken::new();
    let worker = tokio::spawn(propdesk_notifier::run(bus, notifier, stop.clone()));
    drain("notifier", worker, stop, shutdown, settings.notifier.drain_timeout_secs).await
}

/// A token cancelled on SIGTERM or Ctrl-C.
fn shutdown_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    shutdown
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}

fn print_welcome(settings: &Settings, keys: &TokenKeys, demo: &dev::Demo) -> Result<(), Failure> {
    let now = chrono::Utc::now().timestamp();
    let ttl = settings.auth.token_lifetime_secs;
    let token = |staff_id: &str, role: Role| {
        let actor = Actor { staff_id: staff_id.to_owned(), role, properties: vec![demo.property_id.clone()] };
        keys.mint(&actor, now, ttl).map_err(|e| Failure::Run(e.to_string()))
    };
    let admin = token(&demo.admin_id, Role::Admin)?;
    let agent = token(&demo.agent_id, Role::Agent)?;
    let listen = settings.intake.listen;
    let database =
        if settings.database.url.0 == DEV_DATABASE_URL { "propdesk-dev.db (SQLite)" } else { "configured database" };
    println!(
        "\npropdesk dev: intake on {listen} with the dispatch worker on the in-process bus, data in {database}\n\
         demo property: {property}\n\n\
         admin token:\n{admin}\n\n\
         agent token (reception desk):\n{agent}\n\n\
         try:\n  grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{{\"property_id\":\"{property}\"}}' {listen} propdesk.v1.TicketService/ListTickets\n",
        property = demo.property_id,
    );
    Ok(())
}
