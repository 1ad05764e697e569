//! The consumer loop every worker shares: bounded concurrency, and a clean stop (no new
//! deliveries after shutdown; those in flight are settled before it returns).

use std::future::Future;
use std::sync::Arc;

use propdesk_trace::TraceParent;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{Bus, BusError, Delivery, WorkerRole};

/// Hands each delivery of `role` to `handle` (which settles it), at most `concurrency` at
/// once, until `shutdown`.
pub async fn consume<F, Fut>(
    bus: &Bus,
    role: WorkerRole,
    prefetch: u16,
    concurrency: usize,
    shutdown: CancellationToken,
    handle: F,
) -> Result<(), BusError>
where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut subscription = bus.subscribe(role, prefetch).await?;
    let concurrency = concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    tracing::info!(%role, concurrency, "consuming");
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            delivery = subscription.next() => delivery,
        };
        let Some(delivery) = delivery else { break };
        metrics::counter!("propdesk_messages_consumed_total", "role" => role.to_string()).increment(1);
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        // The message's trace continues here (or one starts): its logs and the messages
        // its handling writes carry it.
        let span = tracing::info_span!(
            "message",
            %role,
            routing_key = %delivery.envelope.routing_key,
            message_id = %delivery.envelope.message_id,
            trace_id = tracing::field::Empty
        );
        let parent = delivery.envelope.trace_parent.as_deref().and_then(TraceParent::parse);
        let trace = propdesk_trace::enter(&span, parent);
        span.record("trace_id", trace.trace_id_hex());
        let work = trace.scope(handle(delivery)).instrument(span);
        tokio::spawn(async move {
            work.await;
            drop(permit);
        });
    }
    subscription.stop().await;
    // Every permit back means every in-flight delivery is settled.
    let _ = permits.acquire_many(concurrency as u32).await;
    tracing::info!(%role, "stopped consuming");
    Ok(())
}
