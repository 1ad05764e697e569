//! The consumer loop every worker shares: bounded concurrency, batches of what has already
//! arrived, and a clean stop (no new deliveries after shutdown; those in flight are
//! settled before it returns).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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
    /// How long a batch waits, from its first delivery, for more to arrive. Zero: a batch
    /// holds only what had already arrived. A worker off the critical path (the notifier)
    /// waits a moment, so the events of one ticket meet in one batch and it writes far
    /// fewer transactions; it also lets dispatch lock a new ticket first.
    pub linger: Duration,
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
        let gathered_by = tokio::time::Instant::now() + options.linger;
        while batch.len() < most {
            let next = match futures_lite::future::poll_once(subscription.next()).await {
                Some(next) => next,
                None if options.linger.is_zero() => break,
                None => tokio::select! {
                    _ = shutdown.cancelled() => None,
                    _ = tokio::time::sleep_until(gathered_by) => None,
                    next = subscription.next() => next,
                },
            };
            match next {
                Some(delivery) => batch.push(delivery),
                None => break,
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::memory::MemoryBus;
    use crate::{Envelope, Topology};

    fn envelope(n: u32) -> Envelope {
        Envelope {
            message_id: format!("m-{n}"),
            routing_key: "ticket.created".into(),
            payload: Vec::new(),
            trace_parent: None,
        }
    }

    /// Publishes two messages `gap` apart while `role` consumes with `linger`; returns the
    /// sizes of the batches the handler saw.
    async fn batches(linger: Duration, gap: Duration) -> Vec<usize> {
        let bus = Bus::Memory(MemoryBus::new(Topology::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shutdown = CancellationToken::new();
        let options = ConsumeOptions { prefetch: 16, concurrency: 1, batch: 16, linger };
        let consumer = {
            let (bus, seen, shutdown) = (bus.clone(), seen.clone(), shutdown.clone());
            tokio::spawn(async move {
                consume(&bus, WorkerRole::Dispatch, options, shutdown, |deliveries| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(deliveries.len());
                        for delivery in deliveries {
                            delivery.ack().await.unwrap();
                        }
                    }
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A publish returns once its message is settled: send both without waiting.
        let first = tokio::spawn({
            let bus = bus.clone();
            async move { bus.publish(&[envelope(1)]).await }
        });
        tokio::time::sleep(gap).await;
        let second = bus.publish(&[envelope(2)]).await;
        assert!(second.iter().all(Result::is_ok));
        assert!(first.await.unwrap().iter().all(Result::is_ok));
        shutdown.cancel();
        consumer.await.unwrap().unwrap();
        seen.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_lingering_batch_takes_what_arrives_meanwhile() {
        assert_eq!(batches(Duration::from_millis(300), Duration::from_millis(50)).await, vec![2]);
    }

    #[tokio::test]
    async fn without_linger_each_message_goes_at_once() {
        assert_eq!(batches(Duration::ZERO, Duration::from_millis(50)).await, vec![1, 1]);
    }

    #[tokio::test]
    async fn a_batch_stops_lingering_when_its_time_is_up() {
        assert_eq!(batches(Duration::from_millis(30), Duration::from_millis(150)).await, vec![1, 1]);
    }
}
