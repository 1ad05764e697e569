//! The gRPC health endpoint of a worker, with the two services Kubernetes probes:
//! `readiness` (and "", and the worker's own name) is SERVING while its database and broker
//! answer, NOT_SERVING otherwise and from the moment shutdown begins; `liveness` is SERVING
//! for as long as the process runs its loops. An outage of PostgreSQL or RabbitMQ makes
//! every worker unready (no work is sent its way; it reconnects by itself), never dead: a
//! restart would not bring the database back, and restarting every worker at once would
//! only add a thundering herd when it returns. A worker whose loop fails exits, and is
//! restarted for that.

use std::net::SocketAddr;
use std::time::Duration;

use propdesk_bus::Bus;
use propdesk_store::Store;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

/// The health service names the probes ask for.
pub const LIVENESS: &str = propdesk_intake::LIVENESS;
pub const READINESS: &str = propdesk_intake::READINESS;

/// Serves health on `listen` until `shutdown`; `service` is the name reported besides "".
pub async fn serve(
    listen: SocketAddr,
    service: &'static str,
    store: Store,
    bus: Bus,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("health listen {listen}: {e}"))?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let checks = {
        let reporter = reporter.clone();
        let shutdown = shutdown.clone();
        async move {
            loop {
                // A check that hangs (a half-open connection) counts as a failure.
                let check = async { store.ping().await.is_ok() && bus.is_ready().await };
                let ready = tokio::time::timeout(Duration::from_secs(5), check).await.unwrap_or(false);
                let status =
                    if ready && !shutdown.is_cancelled() { ServingStatus::Serving } else { ServingStatus::NotServing };
                reporter.set_service_status(LIVENESS, ServingStatus::Serving).await;
                for name in [READINESS, service, ""] {
                    reporter.set_service_status(name, status).await;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
            for name in ["", READINESS, service] {
                reporter.set_service_status(name, ServingStatus::NotServing).await;
            }
        }
    };
    tokio::spawn(checks);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await
        .map_err(|e| format!("health server: {e}"))
}
