//! The gRPC health endpoint of a worker: SERVING while its database and broker answer,
//! NOT_SERVING otherwise and from the moment shutdown begins.

use std::net::SocketAddr;
use std::time::Duration;

use propdesk_bus::Bus;
use propdesk_store::Store;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;

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
                let ready = store.ping().await.is_ok() && bus.is_ready().await;
                let status =
                    if ready && !shutdown.is_cancelled() { ServingStatus::Serving } else { ServingStatus::NotServing };
                reporter.set_service_status("", status).await;
                reporter.set_service_status(service, status).await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
            reporter.set_service_status("", ServingStatus::NotServing).await;
            reporter.set_service_status(service, ServingStatus::NotServing).await;
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
