//! The consumer loop every worker shares: bounded concurrency, batches of what has already
//! arrived, and a clean stop (no new deliveries after shutdown; those in flight are
//! settled before it returns).

use std::future::Future;
use std::sync::Arc;

use propdesk_trace::TraceParent;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{Bus, BusError, Delivery, WorkerRole};

/// How a role consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// Unsettled deliveries the broker may hand over ahead.
    pub prefetch: u16,
    /// Batches handled at once.
    pub concurrency: usize,
    /// Most deliveries in one batch. A batch holds only what had already arrived when it
    /// started: an idle worker handles each message alone, at once; a busy one takes the
    /// queue in batches, so it can apply many in one transaction.
    pub batch: usize,
}

/// Hands the deliveries of `role` to `handle` in batches (it settles each delivery), at
/// most `options.concurrency` batches at once, until `shutdown`.
pub async fn consume<F, Fut>(
    bus: &Bus,
    role: WorkerRole,
    options: ConsumeOptions,
    shutdown: CancellationToken,
    handle: F,
) -> Result<(), BusError>
where
    F: Fn(Vec<Delivery>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut subscription = bus.subscribe(role, options.prefetch).await?;
    let concurrency = options.concurrency.max(1);
    let most = options.batch.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    tracing::info!(%role, concurrency, batch = most, "consuming");
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            delivery = subscription.next() => delivery,
        };
        let Some(first) = first else { break };
        // Waiting for a free slot first lets the batch gather what arrives meanwhile.
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let mut batch = vec![first];
        while batch.len() < most {
            match futures_lite::future::poll_once(subscription.next()).await {
                Some(Some(delivery)) => batch.push(delivery),
                _ => break,
            }
        }
        metrics::counter!("propdesk_messages_consumed_total", "role" => role.to_string()).increment(batch.len() as u64);
        metrics::histogram!("propdesk_consume_batch_size", "role" => role.to_string()).record(batch.len() as f64);
        let work = handle(batch);
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

impl Delivery {
    /// Runs `work` as part of this message's trace (or a new one): its logs, and the
    /// messages it writes, carry it.
    pub async fn traced<F: Future>(&self, role: WorkerRole, work: F) -> F::Output {
        let span = tracing::info_span!(
            "message",
            %role,
            routing_key = %self.envelope.routing_key,
            message_id = %self.envelope.message_id,
            trace_id = tracing::field::Empty
        );
        let parent = self.envelope.trace_parent.as_deref().and_then(TraceParent::parse);
        let trace = propdesk_trace::enter(&span, parent);
        span.record("trace_id", trace.trace_id_hex());
        trace.scope(work).instrument(span).await
    }
}
