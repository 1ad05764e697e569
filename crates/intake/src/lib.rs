//! The intake gRPC server: TicketService, DirectoryService, ReplyService, ReportService and
//! NotificationService, with standard health and reflection (v1 and v1alpha).
//!
//! Invariants: proto types stop here (mapped in [`convert`]); every failure becomes a
//! status through [`error::ApiError`]; no handler logs residents' names or phones; every
//! propdesk call is authenticated by [`auth::AuthLayer`].

pub mod attachments;
pub mod audit;
pub mod auth;
pub mod convert;
pub mod directory;
pub mod erasure;
pub mod error;
pub mod export;
pub mod group_commit;
pub mod idempotency;
pub mod notifications;
pub mod observe;
pub mod paging;
pub mod places;
pub mod replies;
pub mod reports;
pub mod tickets;
pub mod watch;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use propdesk_domain::Policy;
use propdesk_proto::v1::attachment_service_server::AttachmentServiceServer;
use propdesk_proto::v1::audit_service_server::AuditServiceServer;
use propdesk_proto::v1::directory_service_server::DirectoryServiceServer;
use propdesk_proto::v1::notification_service_server::NotificationServiceServer;
use propdesk_proto::v1::reply_service_server::ReplyServiceServer;
use propdesk_proto::v1::report_service_server::ReportServiceServer;
use propdesk_proto::v1::ticket_service_server::TicketServiceServer;
use propdesk_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch as signal;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower::Layer;

pub use auth::{Authenticator, SignedInStaff, TokenKeys};

/// The health service a liveness probe asks for: SERVING while the process runs.
pub const LIVENESS: &str = "liveness";
/// The health service a readiness probe asks for: SERVING while the process takes work
/// (NOT_SERVING from the start of a drain; a worker's also while its database or broker
/// does not answer).
pub const READINESS: &str = "readiness";

/// What every handler shares.
pub struct IntakeState {
    pub store: Store,
    pub policy: Policy,
    /// Cancelled when the process shuts down: watch streams end.
    pub shutdown: CancellationToken,
    /// How often watch streams look for events without a wake-up (a fallback: events
    /// committed anywhere wake them through the bus, see [`IntakeState::follow_bus`]).
    pub watch_poll: Duration,
    /// A quiet watch stream sends a heartbeat this often, so proxies keep it open.
    pub watch_heartbeat: Duration,
    /// Ticks whenever the bus carries a ticket event, from whichever process.
    bus_events: signal::Sender<u64>,
    /// Pinged when a watch stream opens.
    watchers: tokio::sync::Notify,
    /// The live events every WatchTickets stream of this process shares.
    pub watch_hub: watch::WatchHub,
    /// Where CreateTicket writes: concurrent creates share transactions.
    pub creates: group_commit::GroupCommit,
    /// The properties and units CreateTicket names, as far as they never change.
    pub places: places::Places,
    /// File storage for attachments; `None`: not configured (AttachmentService answers
    /// UNAVAILABLE).
    pub attachments: Option<attachments::Attachments>,
    /// The record of who saw residents' personal data.
    pub access: audit::AccessLog,
    /// Callers signed in through the identity provider, as the directory had them a few
    /// seconds ago at most (directory writes here drop their entry at once).
    pub signed_in: Arc<SignedInStaff>,
}

impl IntakeState {
    /// Must run inside the runtime: it starts the create writers.
    pub fn new(store: Store, policy: Policy, shutdown: CancellationToken) -> IntakeState {
        // SQLite has one writer whatever we do; PostgreSQL overlaps a few transactions.
        let writers = if store.is_sqlite() { 1 } else { 4 };
        IntakeState {
            creates: group_commit::GroupCommit::start(store.clone(), writers),
            access: audit::AccessLog::start(store.clone()),
            store,
            policy,
            shutdown,
            watch_poll: Duration::from_millis(500),
            watch_heartbeat: Duration::from_secs(15),
            bus_events: signal::Sender::new(0),
            watchers: tokio::sync::Notify::new(),
            watch_hub: watch::WatchHub::default(),
            places: places::Places::default(),
            attachments: None,
            signed_in: Arc::new(SignedInStaff::new(Duration::from_secs(3))),
        }
    }

    /// Wakes watch streams on every ticket event the bus carries, through a queue of this
    /// replica alone (every replica hears every event), until shutdown. The queue exists
    /// only while a stream is open: a replica nobody watches costs the broker nothing.
    pub fn follow_bus(self: &Arc<Self>, bus: &propdesk_bus::Bus) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        let bus = bus.clone();
        tokio::spawn(async move {
            loop {
                while state.bus_events.receiver_count() == 0 {
                    tokio::select! {
                        _ = state.shutdown.cancelled() => return,
                        _ = state.watchers.notified() => {}
                    }
                }
                let mut listener = bus.listen("ticket.#");
                loop {
                    tokio::select! {
                        _ = state.shutdown.cancelled() => {
                            listener.close().await;
                            return;
                        }
                        _ = state.bus_events.closed() => break,
                        key = listener.next() => match key {
                            Some(_) => state.bus_events.send_modify(|n| *n = n.wrapping_add(1)),
                            None => return,
                        },
                    }
                }
                listener.close().await;
            }
        })
    }

    /// A receiver that changes whenever the bus carries a ticket event.
    pub fn subscribe_bus_events(&self) -> signal::Receiver<u64> {
        let receiver = self.bus_events.subscribe();
        self.watchers.notify_one();
        receiver
    }
}

/// Server limits.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest accepted request message.
    pub max_request_bytes: usize,
    /// Connections are closed after this age so clients rebalance across replicas.
    pub max_connection_age: Duration,
    /// How long in-flight calls may take to finish after shutdown begins.
    pub drain_timeout: Duration,
    /// Web pages (origins) that may call through gRPC-Web.
    pub allowed_origins: Vec<web::OriginPattern>,
    /// Serve TLS with this certificate chain and key (PEM); `None`: plaintext (behind a mesh
    /// or an Ingress that ends TLS).
    pub tls: Option<TlsIdentity>,
}

/// A server certificate chain and its private key, PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(<redacted>)")
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_request_bytes: 256 * 1024,
            allowed_origins: Vec::new(),
            tls: None,
            max_connection_age: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves until `state.shutdown` is cancelled, then turns health to NOT_SERVING, ends the
/// watch streams and lets in-flight calls finish within the drain timeout.
pub async fn serve(
    listener: TcpListener,
    state: Arc<IntakeState>,
    authenticator: Authenticator,
    options: ServerOptions,
) -> Result<(), ServeError> {
    let auth = auth::AuthLayer::new(authenticator);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<TicketServiceServer<tickets::TicketApi>>().await;
    health.set_serving::<DirectoryServiceServer<directory::DirectoryApi>>().await;
    health.set_serving::<NotificationServiceServer<notifications::NotificationApi>>().await;
    health.set_serving::<ReportServiceServer<reports::ReportApi>>().await;
    health.set_serving::<ReplyServiceServer<replies::ReplyApi>>().await;
    health.set_serving::<AttachmentServiceServer<attachments::AttachmentApi>>().await;
    health.set_serving::<AuditServiceServer<audit::AuditApi>>().await;
    health.set_service_status(READINESS, tonic_health::ServingStatus::Serving).await;
    health.set_service_status(LIVENESS, tonic_health::ServingStatus::Serving).await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(propdesk_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(propdesk_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let tickets = TicketServiceServer::new(tickets::TicketApi::new(state.clone()))
        .max_decoding_message_size(options.max_request_bytes);
    let directory = DirectoryServiceServer::new(directory::DirectoryApi::new(state.clone()))
        .max_decoding_message_size(options.max_request_bytes);
    let notifications = NotificationServiceServer::new(notifications::NotificationApi::new(state.clone()))
        .max_decoding_message_size(options.max_request_bytes);
    let reports = ReportServiceServer::new(reports::ReportApi::new(state.clone()))
        .max_decoding_message_size(options.max_request_bytes);
    let replies = ReplyServiceServer::new(replies::ReplyApi::new(state.clone()))
        .max_decoding_message_size(options.max_request_bytes);
    let audit = AuditServiceServer::new(audit::AuditApi::new(state.clone()))
        .max_decoding_message_size(options.max_request_bytes);
    // Uploads carry the file itself: this service alone takes messages as large as a file.
    let upload_bytes = state.attachments.as_ref().map_or(0, |a| a.limits.max_bytes) + attachments::REQUEST_OVERHEAD;
    let files = AttachmentServiceServer::new(attachments::AttachmentApi::new(state.clone()))
        .max_decoding_message_size(upload_bytes.max(options.max_request_bytes));

    let shutdown = state.shutdown.clone();
    // Outermost first: CORS answers a browser's preflight; gRPC-Web becomes gRPC before the
    // metrics see the call, so they count gRPC-Web calls with their real status.
    let mut builder = Server::builder();
    if let Some(identity) = &options.tls {
        let identity = tonic::transport::Identity::from_pem(&identity.cert_pem, &identity.key_pem);
        builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    let server = builder
        .max_connection_age(options.max_connection_age)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .accept_http1(true)
        .layer(web::cors(options.allowed_origins.clone()))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(observe::ObserveLayer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(auth.layer(tickets))
        .add_service(auth.layer(directory))
        .add_service(auth.layer(notifications))
        .add_service(auth.layer(reports))
        .add_service(auth.layer(replies))
        .add_service(auth.layer(files))
        .add_service(auth.layer(audit))
        // Options on our own listener: `Server::tcp_nodelay` does not reach it, and without
        // NODELAY every small response waits ~40 ms for the client's delayed ACK.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(Duration::from_secs(60))),
            shutdown.clone().cancelled_owned(),
        );
    tokio::pin!(server);

    tokio::select! {
        result = &mut server => return Ok(result?),
        _ = shutdown.cancelled() => {}
    }
    health.set_not_serving::<TicketServiceServer<tickets::TicketApi>>().await;
    health.set_not_serving::<DirectoryServiceServer<directory::DirectoryApi>>().await;
    health.set_not_serving::<NotificationServiceServer<notifications::NotificationApi>>().await;
    health.set_not_serving::<ReportServiceServer<reports::ReportApi>>().await;
    health.set_not_serving::<ReplyServiceServer<replies::ReplyApi>>().await;
    health.set_not_serving::<AttachmentServiceServer<attachments::AttachmentApi>>().await;
    health.set_not_serving::<AuditServiceServer<audit::AuditApi>>().await;
    // Draining: no new work, but alive (a liveness failure now would kill in-flight calls).
    health.set_service_status(READINESS, tonic_health::ServingStatus::NotServing).await;
    tracing::info!(drain_timeout = ?options.drain_timeout, "draining in-flight calls");
    match tokio::time::timeout(options.drain_timeout, server).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            tracing::warn!("drain timeout reached; closing remaining calls");
            Ok(())
        }
    }
}
