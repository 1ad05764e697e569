//! Starts the real `propdesk` binary against a fresh database and talks to it through the
//! generated gRPC clients. Each test gets its own database and its own server process.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use propdesk_bus::rabbit::RabbitBus;

use propdesk_domain::{Actor, Role};
use propdesk_intake::TokenKeys;
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::directory_service_client::DirectoryServiceClient;
use propdesk_proto::v1::reply_service_client::ReplyServiceClient;
use propdesk_proto::v1::ticket_service_client::TicketServiceClient;
use propdesk_store::Store;
use propdesk_testkit::{Backend, TestDatabase};
use sea_orm::{ConnectionTrait, Statement};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorInfo, StatusExt};

pub const SECRET: &str = "e2e-signing-secret-that-is-long-enough-0123456789";
pub const BINARY: &str = env!("CARGO_BIN_EXE_propdesk");

/// A running `propdesk` process, killed when dropped.
pub struct Server {
    child: Child,
    pub address: String,
    /// The certificate to trust when the process serves TLS (`PROPDESK__INTAKE__TLS__CERT`).
    tls_ca: Option<Vec<u8>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("local address").port()
}

impl Server {
    /// Spawns `propdesk <args>` with `env`, and waits until its health check is SERVING.
    pub async fn start(args: &[&str], env: &[(&str, String)], workdir: Option<&std::path::Path>) -> Server {
        Server::start_on(args, env, workdir, "PROPDESK__INTAKE__LISTEN").await
    }

    /// Like [`Server::start`], with the health address given in `listen_variable`.
    pub async fn start_on(
        args: &[&str],
        env: &[(&str, String)],
        workdir: Option<&std::path::Path>,
        listen_variable: &str,
    ) -> Server {
        Server::spawn(args, env, workdir, listen_variable, None).await
    }

    /// Like [`Server::start_on`], logging everything propdesk's own code logs (trace, as
    /// JSON) with the rest at info into `log`.
    pub async fn start_logged(
        args: &[&str],
        env: &[(&str, String)],
        listen_variable: &str,
        log: &std::path::Path,
    ) -> Server {
        Server::spawn(args, env, None, listen_variable, Some(log)).await
    }

    async fn spawn(
        args: &[&str],
        env: &[(&str, String)],
        workdir: Option<&std::path::Path>,
        listen_variable: &str,
        log: Option<&std::path::Path>,
    ) -> Server {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(BINARY);
        command.args(args).env(listen_variable, &address).env_remove("PROPDESK_CONFIG");
        match log {
            Some(path) => {
                let file = std::fs::File::create(path).expect("the log file");
                let errors = file.try_clone().expect("the log file, twice");
                command
                    .env("PROPDESK__LOG__FILTER", "info,propdesk=trace,propdesk_intake=trace,propdesk_dispatch=trace,propdesk_notifier=trace,propdesk_store=trace,propdesk_bus=trace,propdesk_oidc=trace")
                    .env("PROPDESK__LOG__FORMAT", "json")
                    .stdout(file)
                    .stderr(errors);
            }
            None => {
                command.env("PROPDESK__LOG__FILTER", "warn").stdout(Stdio::null()).stderr(Stdio::inherit());
            }
        }
        for (key, value) in env {
            command.env(key, value);
        }
        if let Some(dir) = workdir {
            command.current_dir(dir);
        }
        let child = command.spawn().expect("spawn propdesk");
        let tls_ca = env
            .iter()
            .find(|(key, _)| *key == "PROPDESK__INTAKE__TLS__CERT")
            .map(|(_, path)| std::fs::read(path).expect("the test's certificate"));
        let server = Server { child, address, tls_ca };
        server.wait_serving().await;
        server
    }

    async fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        loop {
            if self.health("").await == Some(serving) {
                return;
            }
            assert!(Instant::now() < deadline, "propdesk did not become SERVING on {}", self.address);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn channel(&self) -> Channel {
        self.endpoint().connect().await.expect("connect to propdesk")
    }

    /// Where to connect: plaintext, or TLS trusting the test's certificate (for `localhost`).
    pub fn endpoint(&self) -> tonic::transport::Endpoint {
        match &self.tls_ca {
            None => Channel::from_shared(self.url()).expect("url"),
            Some(ca) => {
                let tls = tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                    .domain_name("localhost");
                let endpoint = Channel::from_shared(format!("https://{}", self.address)).expect("url");
                endpoint.tls_config(tls).expect("TLS settings")
            }
        }
    }

    /// Whether the process has exited (on its own: a crash, a fatal error).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_some()
    }

    /// The status its gRPC health service reports for `service` (None: no answer in 3 s).
    pub async fn health(&self, service: &str) -> Option<i32> {
        let call = async {
            let channel = self.endpoint().connect().await.ok()?;
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
            Some(health.check(request).await.ok()?.into_inner().status)
        };
        tokio::time::timeout(Duration::from_secs(3), call).await.ok().flatten()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and returns how long the process took to exit.
    pub fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(status.success());
        loop {
            if self.child.try_wait().expect("wait").is_some() {
                return started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "propdesk ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// People and places of the test property, created through the API.
pub struct World {
    pub property_id: String,
    pub building_id: String,
    pub unit_id: String,
    pub unit_label: String,
    pub other_unit_id: String,
    pub resident_id: String,
    pub admin: String,
    pub agent: String,
    pub agent_id: String,
    pub dispatcher: String,
    pub plumber: String,
    pub plumber_id: String,
    pub electrician_id: String,
    pub cleaner_id: String,
    pub supervisor_id: String,
    pub other_technician: String,
    pub supervisor: String,
    pub outsider: String,
    /// The property the outsider serves (and the test's staff do not).
    pub other_property_id: String,
}

/// A server on a fresh database and its own exchange and queues, with a populated directory.
pub struct App {
    /// Fields drop in this order: the intake process goes before its database does.
    pub server: Server,
    pub store: Store,
    /// The test's view of the same bus topology (queues are deleted when the app drops).
    pub bus: Arc<RabbitBus>,
    /// Environment every propdesk process of this app runs with.
    pub env: Vec<(&'static str, String)>,
    pub world: World,
    pub tickets: TicketServiceClient<Channel>,
    pub directory: DirectoryServiceClient<Channel>,
    pub replies: ReplyServiceClient<Channel>,
    /// Kept for its lifetime: the database is dropped with the app, last.
    pub _db: TestDatabase,
}

pub fn keys() -> TokenKeys {
    TokenKeys::new(SECRET.as_bytes()).expect("keys")
}

pub fn token(staff_id: &str, role: Role, properties: &[&str]) -> String {
    let actor =
        Actor { staff_id: staff_id.to_owned(), role, properties: properties.iter().map(|p| (*p).to_owned()).collect() };
    keys().mint(&actor, chrono::Utc::now().timestamp(), 3600).expect("mint")
}

/// An admin token for the `propdesk dev` whose working directory is `dir`, signed with
/// the secret it keeps beside its SQLite file.
pub fn dev_admin_token(dir: &std::path::Path) -> String {
    let secret = std::fs::read_to_string(dir.join("propdesk-dev.secret")).expect("the dev secret");
    let keys = TokenKeys::new(secret.trim().as_bytes()).expect("a usable secret");
    let admin = Actor { staff_id: "dev-admin".into(), role: Role::Admin, properties: vec![] };
    keys.mint(&admin, chrono::Utc::now().timestamp(), 600).expect("mint")
}

/// A request carrying `token`.
/// A fresh idempotency key for a Create call.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The requests of the plain ticket moves (ticket, version, note), built alike.
pub trait ActionRequest {
    fn of(ticket_id: String, expected_version: i64, note: String) -> Self;
}

macro_rules! action_requests {
    ($($request:ident),+) => {$(
        impl ActionRequest for pb::$request {
            fn of(ticket_id: String, expected_version: i64, note: String) -> Self {
                pb::$request { ticket_id, expected_version, note }
            }
        }
    )+};
}

action_requests!(
    AcceptTicketRequest,
    ArriveOnSiteRequest,
    PutOnHoldRequest,
    ResumeTicketRequest,
    CancelTicketRequest,
    CloseTicketRequest,
    ReopenTicketRequest,
    AddNoteRequest
);

impl ActionRequest for pb::ResolveTicketRequest {
    fn of(ticket_id: String, expected_version: i64, note: String) -> Self {
        pb::ResolveTicketRequest { ticket_id, expected_version, note, delay_cause: String::new() }
    }
}

/// Starts an app whose processes all read `settings` (a TOML file kept in the directory
/// returned, which must outlive the app).
pub async fn start_configured(backend: Backend, settings: &str) -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("propdesk.toml");
    std::fs::write(&file, settings).expect("write settings");
    let app = App::start_with(backend, &[("PROPDESK_CONFIG", file.display().to_string())]).await;
    (app, dir)
}

pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    request
}

impl App {
    pub async fn start(backend: Backend) -> App {
        App::start_with(backend, &[]).await
    }

    /// Starts intake with extra settings (e.g. shorter policy windows).
    pub async fn start_with(backend: Backend, settings: &[(&'static str, String)]) -> App {
        let db = TestDatabase::new(backend).await;
        let prefix = propdesk_testkit::unique_bus_prefix();
        let mut env = vec![
            ("PROPDESK__DATABASE__URL", db.url.clone()),
            ("PROPDESK__AUTH__SIGNING_SECRET", SECRET.to_owned()),
            ("PROPDESK__BUS__URL", propdesk_testkit::amqp_url()),
            ("PROPDESK__BUS__PREFIX", prefix.clone()),
            ("PROPDESK__BUS__RETRY_DELAYS_MS", "100,200".to_owned()),
            ("PROPDESK__BUS__MAX_ATTEMPTS", "3".to_owned()),
        ];
        env.extend(propdesk_store::sealing::test_keys::ENV.iter().map(|(k, v)| (*k, (*v).to_owned())));
        env.extend(settings.iter().cloned());
        let topology = propdesk_bus::Topology {
            prefix,
            retry_delays: vec![Duration::from_millis(100), Duration::from_millis(200)],
            max_attempts: 3,
            delivery_limit: 20,
        };
        let bus = Arc::new(RabbitBus::new(&propdesk_testkit::amqp_url(), topology));
        let migrate = Command::new(BINARY)
            .arg("migrate")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PROPDESK__LOG__FILTER", "warn")
            .status()
            .expect("run propdesk migrate");
        assert!(migrate.success(), "propdesk migrate failed");
        let server = Server::start(&["intake"], &env, None).await;
        propdesk_store::sealing::test_keys::install();
        let store = Store::connect(&db.url, 2).await.expect("test store");
        let channel = server.channel().await;
        let tickets = TicketServiceClient::new(channel.clone());
        let replies = ReplyServiceClient::new(channel.clone());
        let mut directory = DirectoryServiceClient::new(channel);
        let world = World::create(&mut directory).await;
        App { _db: db, server, store, bus, env, world, tickets, directory, replies }
    }

    /// Starts a `propdesk dispatch` process for this app and waits until it is ready.
    pub async fn start_dispatch(&self) -> Server {
        self.start_dispatch_with(&[]).await
    }

    /// The same, with extra settings of its own.
    pub async fn start_dispatch_with(&self, extra: &[(&'static str, String)]) -> Server {
        let mut env = self.env.clone();
        env.extend(extra.iter().cloned());
        if self._db.backend == Backend::Sqlite {
            // One writer at a time on SQLite.
            env.push(("PROPDESK__DISPATCH__CONCURRENCY", "1".to_owned()));
        }
        Server::start_on(&["dispatch"], &env, None, "PROPDESK__DISPATCH__HEALTH_LISTEN").await
    }

    /// Starts a `propdesk notifier` process for this app and waits until it is ready.
    pub async fn start_notifier(&self) -> Server {
        self.start_notifier_with(&[]).await
    }

    /// The same, with extra settings of its own.
    pub async fn start_notifier_with(&self, extra: &[(&'static str, String)]) -> Server {
        let mut env = self.env.clone();
        env.extend(extra.iter().cloned());
        if self._db.backend == Backend::Sqlite {
            env.push(("PROPDESK__NOTIFIER__CONCURRENCY", "1".to_owned()));
            env.push(("PROPDESK__NOTIFIER__FIRE_CONCURRENCY", "1".to_owned()));
        }
        Server::start_on(&["notifier"], &env, None, "PROPDESK__NOTIFIER__HEALTH_LISTEN").await
    }

    /// Polls the history until `done` holds for it (at most `within`); returns it.
    pub async fn wait_history(
        &mut self,
        ticket_id: &str,
        within: Duration,
        done: impl Fn(&[pb::TicketEvent]) -> bool,
    ) -> Vec<pb::TicketEvent> {
        let started = Instant::now();
        loop {
            let history = self.history(ticket_id).await;
            if done(&history) {
                return history;
            }
            assert!(started.elapsed() < within, "ticket {ticket_id}: history never got there: {history:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&mut self, ticket_id: &str) -> pb::Ticket {
        let token = self.world.agent.clone();
        let request = pb::GetTicketRequest { ticket_id: ticket_id.to_owned() };
        self.tickets.get_ticket(authed(&token, request)).await.expect("get ticket").into_inner()
    }

    /// Polls until the ticket has left NEW (dispatched by the worker); returns it and how
    /// long that took from the call.
    pub async fn wait_dispatched(&mut self, ticket_id: &str) -> (pb::Ticket, Duration) {
        let started = Instant::now();
        let token = self.world.agent.clone();
        loop {
            let ticket = self
                .tickets
                .get_ticket(authed(&token, pb::GetTicketRequest { ticket_id: ticket_id.to_owned() }))
                .await
                .expect("get ticket")
                .into_inner();
            if ticket.state != pb::TicketState::New as i32 {
                return (ticket, started.elapsed());
            }
            assert!(started.elapsed() < Duration::from_secs(15), "ticket {ticket_id} was not dispatched");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Hires someone at the test property through the API; returns their id.
    pub async fn hire(&mut self, name: &str, role: pb::StaffRole, department: pb::Department, on_duty: bool) -> String {
        let request = pb::CreateStaffRequest {
            property_id: self.world.property_id.clone(),
            name: name.into(),
            role: role as i32,
            department: department as i32,
            supervisor_id: String::new(),
            on_duty,
            request_id: new_request_id(),
            external_id: String::new(),
        };
        let token = self.world.admin.clone();
        self.directory.create_staff(authed(&token, request)).await.expect("hire").into_inner().id
    }

    /// Adds a unit to the test building; returns its id.
    pub async fn add_unit(&mut self, room: &str) -> String {
        let request = pb::CreateUnitRequest {
            building_id: self.world.building_id.clone(),
            floor: 5,
            room: room.into(),
            postal_address: format!("Room {room}, Building 2"),
            request_id: new_request_id(),
        };
        let token = self.world.admin.clone();
        self.directory.create_unit(authed(&token, request)).await.expect("add unit").into_inner().id
    }

    /// Three units report no water: their reports, and the group incident dispatch opens
    /// for them (a dispatch worker must be running).
    pub async fn outage(&mut self) -> (Vec<String>, String) {
        let mut units = vec![self.world.unit_id.clone()];
        for room in ["1204", "1205"] {
            units.push(self.add_unit(room).await);
        }
        let mut reports = Vec::new();
        for unit in &units {
            let request =
                pb::CreateTicketRequest { unit_id: unit.clone(), ..self.new_ticket("water_supply", "家里停水了") };
            reports.push(self.create(request).await.id);
        }
        for _ in 0..300 {
            let incident_id = self.get(&reports[2]).await.incident_id;
            if !incident_id.is_empty() {
                return (reports, incident_id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("three units without water opened no incident");
    }

    /// Takes someone off duty.
    pub async fn off_duty(&mut self, staff_id: &str) {
        let token = self.world.admin.clone();
        let request = pb::SetOnDutyRequest { staff_id: staff_id.to_owned(), on_duty: false };
        self.directory.set_on_duty(authed(&token, request)).await.expect("off duty");
    }

    /// The ticket's whole history (every page).
    pub async fn history(&mut self, ticket_id: &str) -> Vec<pb::TicketEvent> {
        let token = self.world.agent.clone();
        let mut events = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::GetTicketHistoryRequest { ticket_id: ticket_id.to_owned(), page_size: 200, page_token };
            let page = self.tickets.get_ticket_history(authed(&token, request)).await.expect("history").into_inner();
            events.extend(page.events);
            if page.next_page_token.is_empty() {
                return events;
            }
            page_token = page.next_page_token;
        }
    }

    /// The next `count` messages of the notifier's queue (which hears every ticket event),
    /// as (routing key, message id).
    pub async fn bus_messages(&self, count: usize) -> Vec<(String, String)> {
        self.bus_envelopes(count).await.into_iter().map(|e| (e.routing_key, e.message_id)).collect()
    }

    /// The next `count` messages of the notifier's queue.
    pub async fn bus_envelopes(&self, count: usize) -> Vec<propdesk_bus::Envelope> {
        let mut subscription = propdesk_bus::Bus::Rabbit(self.bus.clone())
            .subscribe(propdesk_bus::WorkerRole::Notifier, 100)
            .await
            .expect("subscribe");
        let mut seen = Vec::new();
        while seen.len() < count {
            let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} bus messages arrived", seen.len()))
                .expect("subscription open");
            seen.push(delivery.envelope.clone());
            delivery.ack().await.expect("ack");
        }
        subscription.stop().await;
        seen
    }

    /// Everything a failed call must leave untouched. (Outbox rows are written only with
    /// history events, and the relay drains them at its own pace, so they are not counted.)
    pub async fn snapshot(&self) -> Vec<String> {
        let queries = [
            "SELECT COUNT(*) FROM tickets",
            "SELECT COUNT(*) FROM ticket_events",
            "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM tickets",
            "SELECT COUNT(*) FROM staff",
            "SELECT COUNT(*) FROM units",
        ];
        let db = self.store.connection();
        let mut values = Vec::new();
        for sql in queries {
            let row = db
                .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .expect("snapshot query")
                .expect("one row");
            let value: i64 = row.try_get_by_index(0).expect("count");
            values.push(format!("{sql} = {value}"));
        }
        values
    }

    /// A ticket reported by the agent in the test unit.
    pub fn new_ticket(&self, category: &str, description: &str) -> pb::CreateTicketRequest {
        pb::CreateTicketRequest {
            request_id: uuid::Uuid::now_v7().to_string(),
            property_id: self.world.property_id.clone(),
            unit_id: self.world.unit_id.clone(),
            reporter_name: "张三".into(),
            reporter_phone: "13812345678".into(),
            kind: pb::TicketKind::Repair as i32,
            channel: pb::Channel::Phone as i32,
            category: category.into(),
            description: description.into(),
            ..Default::default()
        }
    }

    /// The `n`th plumbing report of a common area: no unit, so reports never group into an
    /// incident or count as repeat faults.
    pub fn lobby_ticket(&self, n: usize) -> pb::CreateTicketRequest {
        pb::CreateTicketRequest {
            unit_id: String::new(),
            location: format!("lobby {n}"),
            ..self.new_ticket("plumbing", &format!("report {n}"))
        }
    }

    pub async fn create(&mut self, request: pb::CreateTicketRequest) -> pb::Ticket {
        let token = self.world.agent.clone();
        self.tickets.create_ticket(authed(&token, request)).await.expect("create ticket").into_inner()
    }

    /// Action request for the ticket at its current version.
    pub fn action<R: ActionRequest>(ticket: &pb::Ticket, note: &str) -> R {
        R::of(ticket.id.clone(), ticket.version, note.into())
    }

    /// Dispatches to engineering, assigned to the plumber.
    pub async fn assign_to_plumber(&mut self, ticket: &pb::Ticket) -> pb::Ticket {
        let request = pb::AssignTicketRequest {
            ticket_id: ticket.id.clone(),
            expected_version: ticket.version,
            department: pb::Department::Engineering as i32,
            assignee_id: self.world.plumber_id.clone(),
            note: String::new(),
        };
        let token = self.world.dispatcher.clone();
        self.tickets.assign_ticket(authed(&token, request)).await.expect("assign").into_inner()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let bus = self.bus.clone();
        propdesk_testkit::clean_up(async move { bus.delete_topology().await });
    }
}

impl World {
    async fn create(directory: &mut DirectoryServiceClient<Channel>) -> World {
        let root = token("bootstrap-admin", Role::Admin, &[]);
        let property = directory
            .create_property(authed(
                &root,
                pb::CreatePropertyRequest {
                    name: "Sunny Gardens".into(),
                    address: "88 Garden Road".into(),
                    request_id: new_request_id(),
                },
            ))
            .await
            .expect("create property")
            .into_inner();
        let other = directory
            .create_property(authed(
                &root,
                pb::CreatePropertyRequest {
                    name: "Other Estate".into(),
                    address: "1 Far Road".into(),
                    request_id: new_request_id(),
                },
            ))
            .await
            .expect("create other property")
            .into_inner();
        let building = directory
            .create_building(authed(
                &root,
                pb::CreateBuildingRequest {
                    property_id: property.id.clone(),
                    name: "2".into(),
                    request_id: new_request_id(),
                },
            ))
            .await
            .expect("create building")
            .into_inner();
        let unit = directory
            .create_unit(authed(
                &root,
                pb::CreateUnitRequest {
                    building_id: building.id.clone(),
                    floor: 12,
                    room: "1203".into(),
                    postal_address: "Room 1203".into(),
                    request_id: new_request_id(),
                },
            ))
            .await
            .expect("create unit")
            .into_inner();
        let other_building = directory
            .create_building(authed(
                &root,
                pb::CreateBuildingRequest {
                    property_id: other.id.clone(),
                    name: "9".into(),
                    request_id: new_request_id(),
                },
            ))
            .await
            .expect("create other building")
            .into_inner();
        let other_unit = directory
            .create_unit(authed(
                &root,
                pb::CreateUnitRequest {
                    building_id: other_building.id,
                    floor: 1,
                    room: "101".into(),
                    postal_address: String::new(),
                    request_id: new_request_id(),
                },
            ))
            .await
            .expect("create other unit")
            .into_inner();
        let resident = directory
            .create_resident(authed(
                &root,
                pb::CreateResidentRequest {
                    unit_id: unit.id.clone(),
                    name: "李四".into(),
                    phone: "13900001111".into(),
                    request_id: new_request_id(),
                    language: String::new(),
                },
            ))
            .await
            .expect("create resident")
            .into_inner();
        let mut hire = async |name: &str, role: pb::StaffRole, department: pb::Department| {
            directory
                .create_staff(authed(
                    &root,
                    pb::CreateStaffRequest {
                        property_id: property.id.clone(),
                        name: name.into(),
                        role: role as i32,
                        department: department as i32,
                        supervisor_id: String::new(),
                        on_duty: true,
                        request_id: new_request_id(),
                        external_id: String::new(),
                    },
                ))
                .await
                .expect("create staff")
                .into_inner()
                .id
        };
        let admin_id = hire("Admin", pb::StaffRole::Admin, pb::Department::Unspecified).await;
        let agent_id = hire("Agent Zhao", pb::StaffRole::Agent, pb::Department::CustomerService).await;
        let dispatcher_id = hire("Dispatcher Qian", pb::StaffRole::Dispatcher, pb::Department::CustomerService).await;
        let plumber_id = hire("Plumber Chen", pb::StaffRole::Technician, pb::Department::Engineering).await;
        let electrician_id = hire("Electrician Liu", pb::StaffRole::Technician, pb::Department::Engineering).await;
        let cleaner_id = hire("Cleaner Sun", pb::StaffRole::Technician, pb::Department::Cleaning).await;
        let supervisor_id = hire("Supervisor Li", pb::StaffRole::Supervisor, pb::Department::Engineering).await;
        let p = property.id.as_str();
        World {
            admin: token(&admin_id, Role::Admin, &[p]),
            agent: token(&agent_id, Role::Agent, &[p]),
            dispatcher: token(&dispatcher_id, Role::Dispatcher, &[p]),
            plumber: token(&plumber_id, Role::Technician, &[p]),
            other_technician: token(&electrician_id, Role::Technician, &[p]),
            supervisor: token(&supervisor_id, Role::Supervisor, &[p]),
            outsider: token("outsider-agent", Role::Agent, &[other.id.as_str()]),
            other_property_id: other.id.clone(),
            agent_id,
            plumber_id,
            electrician_id,
            cleaner_id,
            supervisor_id,
            property_id: property.id,
            building_id: building.id,
            unit_label: unit.label,
            unit_id: unit.id,
            other_unit_id: other_unit.id,
            resident_id: resident.id,
        }
    }
}

/// Asserts the status code, that it carries an ErrorInfo with a reason of common.proto's
/// list, and, for INVALID_ARGUMENT, that a field violation names `field`. Returns the reason.
pub fn assert_status(
    result: Result<impl std::fmt::Debug, Status>,
    code: Code,
    field: Option<&str>,
    case: &str,
) -> ErrorInfo {
    let status = match result {
        Ok(value) => panic!("{case}: expected {code:?}, got success {value:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{case}: {}", status.message());
    let info = status.get_details_error_info().unwrap_or_else(|| panic!("{case}: no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "propdesk.v1", "{case}");
    let known = pb::ErrorReason::from_str_name(&info.reason);
    assert!(known.is_some_and(|r| r != pb::ErrorReason::Unspecified), "{case}: unknown reason {:?}", info.reason);
    if let Some(field) = field {
        let violations = status.get_details_bad_request().map(|b| b.field_violations).unwrap_or_default();
        assert!(
            violations.iter().any(|v| v.field == field && !v.description.is_empty()),
            "{case}: no violation of `{field}` in {violations:?}"
        );
        let fields = info.metadata.get("fields").cloned().unwrap_or_default();
        assert!(fields.split(',').any(|f| f == field), "{case}: ErrorInfo fields {fields:?} lack `{field}`");
    }
    info
}

/// [`assert_status`] and that the ErrorInfo reason is `reason`; returns its metadata.
pub fn assert_reason(
    result: Result<impl std::fmt::Debug, Status>,
    code: Code,
    reason: pb::ErrorReason,
    case: &str,
) -> std::collections::HashMap<String, String> {
    let info = assert_status(result, code, None, case);
    assert_eq!(info.reason, reason.as_str_name(), "{case}");
    info.metadata
}

/// `template` with a fresh request id and a numbered description.
pub fn pb_create(template: &pb::CreateTicketRequest, n: usize) -> pb::CreateTicketRequest {
    pb::CreateTicketRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        description: format!("{} (report {n})", template.description),
        ..template.clone()
    }
}

/// One request a [`WebhookReceiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 endpoint that records every POST and answers 200.
pub struct WebhookReceiver {
    pub received: Arc<std::sync::Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookReceiver {
    pub async fn listen(port: u16) -> WebhookReceiver {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the receiver");
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, length) = loop {
                        let Ok(n) = socket.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buffer.len() < head_end + length {
                        let Ok(n) = socket.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                    let headers = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
                        .collect();
                    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).to_string();
                    sink.lock().expect("lock").push(Received { headers, body });
                    let _ =
                        socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                });
            }
        });
        WebhookReceiver { received, task }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}
