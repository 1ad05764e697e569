//! The outbox relay: a task in every process that writes outbox rows. It publishes them in
//! batches and deletes them only after the bus confirmed them.
//!
//! The messages this process commits are handed to it in memory at commit (written already
//! claimed for it), so publishing them costs no claim statement; a local commit wakes it at
//! once. Every poll interval it also claims what no relay holds: rows of other processes,
//! of a process that died, or released after a failed publish. Confirmed messages are
//! deleted a few passes at a time, in one statement, beside the publishing: on SQLite a
//! delete may wait seconds for the database's one writer, and publishing must not wait
//! with it.

use std::time::Duration;

use propdesk_store::{Claimed, RelayPass, Store, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{Bus, Envelope};

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub batch: u64,
    /// Poll for rows this process was not handed (other processes', lapsed claims).
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

/// How long a relay woken by a commit waits for more before it publishes.
const LINGER: Duration = Duration::from_millis(2);
/// How often the lag gauge is refreshed.
const LAG_EVERY: Duration = Duration::from_secs(1);
/// How long confirmed messages may wait to be deleted together. They stay claimed
/// meanwhile (well inside the claim's lease); if the process dies before, they are
/// published once more, which consumers' inboxes absorb.
const DELETE_EVERY: Duration = Duration::from_millis(50);

/// Confirmed messages not yet deleted, and the delete under way, if any.
#[derive(Default)]
struct Confirmed {
    message_ids: Vec<String>,
    since: Option<Instant>,
    deleting: Option<tokio::task::JoinHandle<Result<(), Vec<String>>>>,
}

impl Confirmed {
    fn add(&mut self, sent: Vec<String>) {
        if !sent.is_empty() {
            self.since.get_or_insert_with(Instant::now);
            self.message_ids.extend(sent);
        }
    }

    /// When they are to be deleted, if any wait (while a delete is under way, not before
    /// another interval: it is looked at again then).
    fn due(&self) -> Option<Instant> {
        let due = self.since.map(|since| since + DELETE_EVERY);
        match &self.deleting {
            Some(deleting) if !deleting.is_finished() => due.map(|due| due.max(Instant::now() + DELETE_EVERY)),
            _ => due,
        }
    }

    /// Whether the last delete is over; one that failed gives its ids back, to be deleted
    /// with the next.
    async fn settle_delete(&mut self) -> bool {
        match &self.deleting {
            Some(deleting) if !deleting.is_finished() => return false,
            Some(_) => {}
            None => return true,
        }
        if let Some(deleting) = self.deleting.take()
            && let Ok(Err(ids)) = deleting.await
        {
            self.add(ids);
        }
        true
    }
}

impl OutboxRelay {
    pub fn new(store: Store, bus: Bus, settings: RelaySettings) -> OutboxRelay {
        OutboxRelay { store, bus, settings }
    }

    /// Publishes, when `claim`, what no relay holds, else what this process committed;
    /// deletes nothing (see [`OutboxRelay::delete`]). `None`: there was nothing to publish.
    pub async fn pass(&self, claim: bool) -> Result<Option<RelayPass>, StoreError> {
        // Claims go first when due: under steady load there is always something handed
        // over, and rows a dead process left must not wait for a lull.
        let claimed = if claim { self.store.claim_outbox(self.settings.batch).await? } else { None };
        let claimed = match claimed {
            Some(claimed) => Some(claimed),
            None => self.store.take_handed(self.batch()).await?,
        };
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        let pass = self.publish(claimed).await?;
        metrics::counter!("propdesk_outbox_published_total").increment(pass.sent.len() as u64);
        metrics::counter!("propdesk_outbox_publish_failures_total").increment(pass.failed as u64);
        Ok(Some(pass))
    }

    fn batch(&self) -> usize {
        usize::try_from(self.settings.batch).unwrap_or(usize::MAX)
    }

    /// Sets the outbox lag gauge: the age of the oldest unpublished message.
    pub async fn measure_lag(&self) -> Result<(), StoreError> {
        let lag = self.store.outbox_lag(propdesk_store::now()).await?;
        metrics::gauge!("propdesk_outbox_lag_seconds").set(lag.as_seconds_f64());
        Ok(())
    }

    async fn publish(&self, claimed: Claimed) -> Result<RelayPass, StoreError> {
        let bus = self.bus.clone();
        self.store
            .publish_claimed(claimed, |messages| async move {
                let batch: Vec<Envelope> = messages.into_iter().map(Envelope::from).collect();
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

    /// Starts deleting the confirmed messages, unless a delete is still under way; on
    /// failure they wait for the next try.
    async fn delete(&self, confirmed: &mut Confirmed) {
        if confirmed.message_ids.is_empty() || !confirmed.settle_delete().await {
            return;
        }
        let ids = std::mem::take(&mut confirmed.message_ids);
        confirmed.since = None;
        let store = self.store.clone();
        confirmed.deleting = Some(tokio::spawn(async move {
            store.delete_published(&ids).await.map_err(|err| {
                tracing::warn!(error = %err, "published outbox messages not deleted; trying again");
                ids
            })
        }));
    }

    /// Runs until `shutdown`, then flushes for at most the flush timeout.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut commits = self.store.subscribe_commits();
        self.store.hand_outbox_to_relay(true);
        let mut failures = 0u32;
        let mut confirmed = Confirmed::default();
        let mut lag_measured = Instant::now() - LAG_EVERY;
        let mut next_claim = Instant::now();
        loop {
            // The lag gauge costs a query: once a second is enough for a gauge.
            if lag_measured.elapsed() >= LAG_EVERY {
                lag_measured = Instant::now();
                if let Err(err) = self.measure_lag().await {
                    tracing::warn!(error = %err, "outbox lag not measured");
                }
            }
            let claim = Instant::now() >= next_claim;
            let (full, busy) = match self.pass(claim).await {
                Ok(pass) => {
                    let pass = pass.unwrap_or_default();
                    failures = if pass.failed > 0 { failures + 1 } else { 0 };
                    let full = pass.failed == 0 && pass.sent.len() == self.batch();
                    let busy = pass.failed == 0 && !pass.sent.is_empty();
                    confirmed.add(pass.sent);
                    (full, busy)
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, "outbox relay pass failed");
                    (false, false)
                }
            };
            // While the bus fails, this process's new rows are written unclaimed and wait
            // for a claim after the back-off, instead of piling up in memory.
            self.store.hand_outbox_to_relay(failures == 0);
            if claim {
                // After failures, back off instead of hammering a broker that is away.
                let wait = if failures > 0 {
                    Duration::from_millis(100 * 2u64.pow(failures.min(6))).min(Duration::from_secs(5))
                } else {
                    self.settings.poll
                };
                // A full claim may leave more behind: claim again at once.
                next_claim = if full { Instant::now() } else { Instant::now() + wait };
            }
            if confirmed.message_ids.len() >= self.batch() || confirmed.due().is_some_and(|due| due <= Instant::now()) {
                self.delete(&mut confirmed).await;
            }
            // More may wait: a full batch, or this process's own behind a claim.
            if full || (claim && busy) {
                continue;
            }
            let wake = confirmed.due().map_or(next_claim, |due| due.min(next_claim));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = commits.changed(), if failures == 0 => {
                    // Under load, commits come every few hundred microseconds: gathering
                    // them for a moment makes one pass publish many instead of one each.
                    tokio::time::sleep(LINGER).await;
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        self.flush(confirmed).await;
    }

    /// Publishes what is left (handed or claimable) and deletes what was confirmed, for
    /// at most the flush timeout.
    async fn flush(&self, mut confirmed: Confirmed) {
        self.store.hand_outbox_to_relay(false);
        let flush = async {
            loop {
                match self.pass(true).await {
                    Ok(Some(pass)) if pass.failed == 0 => confirmed.add(pass.sent),
                    Ok(Some(pass)) => {
                        confirmed.add(pass.sent);
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            self.delete(&mut confirmed).await;
            // The last delete, and one still under way before it, finish before exit.
            while !confirmed.settle_delete().await || !confirmed.message_ids.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
                self.delete(&mut confirmed).await;
            }
        };
        if tokio::time::timeout(self.settings.flush_timeout, flush).await.is_err() {
            tracing::warn!("outbox flush timed out; the rest is published by the next start");
        }
    }
}
