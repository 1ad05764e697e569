//! The outbox relay: a task in every process that writes outbox rows. It publishes them in
//! batches and deletes them only after the bus confirmed them. A local commit wakes it at
//! once; the poll interval only matters for rows written by other processes.

use std::time::Duration;

use propdesk_store::{RelayPass, Store};
use tokio_util::sync::CancellationToken;

use crate::{Bus, Envelope};

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub batch: u64,
    /// Fallback poll for rows committed by other processes.
    pub poll: Duration,
    /// On shutdown, how long to keep flushing what is left.
    pub flush_timeout: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings { batch: 500, poll: Duration::from_millis(500), flush_timeout: Duration::from_secs(5) }
    }
}

pub struct OutboxRelay {
    store: Store,
    bus: Bus,
    settings: RelaySettings,
}

/// How long a relay woken by a commit waits for more before it claims.
const LINGER: Duration = Duration::from_millis(2);
/// How often the lag gauge is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(1);

impl OutboxRelay {
    pub fn new(store: Store, bus: Bus, settings: RelaySettings) -> OutboxRelay {
        OutboxRelay { store, bus, settings }
    }

    /// One claim-publish-delete pass; updates the outbox counters.
    pub async fn pass(&self) -> Result<RelayPass, propdesk_store::StoreError> {
        let pass = self.publish_batch().await?;
        metrics::counter!("propdesk_outbox_published_total").increment(pass.published as u64);
        metrics::counter!("propdesk_outbox_publish_failures_total").increment(pass.failed as u64);
        Ok(pass)
    }

    /// Sets the outbox lag gauge: the age of the oldest unpublished message.
    pub async fn measure_lag(&self) -> Result<(), propdesk_store::StoreError> {
        let lag = self.store.outbox_lag(propdesk_store::now()).await?;
        metrics::gauge!("propdesk_outbox_lag_seconds").set(lag.as_seconds_f64());
        Ok(())
    }

    async fn publish_batch(&self) -> Result<RelayPass, propdesk_store::StoreError> {
        let bus = self.bus.clone();
        self.store
            .relay_outbox(self.settings.batch, |rows| async move {
                let batch: Vec<Envelope> = rows
                    .into_iter()
                    .map(|row| Envelope {
                        message_id: row.message_id,
                        routing_key: row.routing_key,
                        payload: row.payload,
                        trace_parent: row.trace_parent,
                    })
                    .collect();
                let outcomes = bus.publish(&batch).await;
                for (envelope, outcome) in batch.iter().zip(&outcomes) {
                    if let Err(err) = outcome {
                        tracing::warn!(message_id = %envelope.message_id, routing_key = %envelope.routing_key, error = %err, "publish failed; kept in the outbox");
                    }
                }
                outcomes.iter().map(Result::is_ok).collect()
            })
            .await
    }

    /// Runs until `shutdown`, then flushes for at most the flush timeout.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut commits = self.store.subscribe_commits();
        let mut failures = 0u32;
        let mut lag_measured = tokio::time::Instant::now() - LAG_EVERY;
        loop {
            // The lag gauge costs a query: once a second is enough for a gauge.
            if lag_measured.elapsed() >= LAG_EVERY {
                lag_measured = tokio::time::Instant::now();
                if let Err(err) = self.measure_lag().await {
                    tracing::warn!(error = %err, "outbox lag not measured");
                }
            }
            let full = match self.pass().await {
                Ok(pass) => {
                    failures = if pass.failed > 0 { failures + 1 } else { 0 };
                    pass.failed == 0 && pass.published as u64 == self.settings.batch
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, "outbox relay pass failed");
                    false
                }
            };
            if full {
                continue;
            }
            // After failures, back off instead of hammering a broker that is away.
            let wait = if failures > 0 {
                Duration::from_millis(100 * 2u64.pow(failures.min(6))).min(Duration::from_secs(5))
            } else {
                self.settings.poll
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = commits.changed(), if failures == 0 => {
                    // Under load, commits come every few hundred microseconds: gathering
                    // them for a moment makes one pass publish many instead of one each.
                    tokio::time::sleep(LINGER).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let flush = async {
            loop {
                match self.pass().await {
                    Ok(pass) if pass.published == 0 || pass.failed > 0 => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        };
        if tokio::time::timeout(self.settings.flush_timeout, flush).await.is_err() {
            tracing::warn!("outbox flush timed out; the rest is published by the next start");
        }
    }
}
