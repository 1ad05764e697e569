//! Delivering notifications: the log sink, and signed webhooks with retries.
//!
//! A webhook is an HTTPS (or HTTP) POST of the notification's JSON with three headers:
//! `X-Propdesk-Event-Id` (the delivery id, the same on every retry, so receivers drop
//! duplicates), `X-Propdesk-Timestamp` (Unix seconds) and `X-Propdesk-Signature`
//! (`sha256=` + hex HMAC-SHA256 of `"<timestamp>.<body>"` with the target's secret). Any
//! 2xx answer is delivered; anything else is retried with exponential back-off and jitter
//! until the attempts are used up, then the delivery is dead (kept, and replayable).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use propdesk_store::deliveries::Attempt;
use propdesk_store::entity::notification;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::notify::{LOG_SINK, WEBHOOK_SINK, WebhookTarget};
use crate::{Notifier, NotifierError};

pub const EVENT_ID_HEADER: &str = "x-propdesk-event-id";
pub const TIMESTAMP_HEADER: &str = "x-propdesk-timestamp";
pub const SIGNATURE_HEADER: &str = "x-propdesk-signature";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySettings {
    /// Attempts before a delivery is dead.
    pub max_attempts: u32,
    /// Back-off before the second attempt; it doubles each time, up to `max_backoff_ms`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Time allowed for one webhook request.
    pub timeout_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            max_attempts: 8,
            backoff_ms: 2_000,
            max_backoff_ms: 15 * 60 * 1_000,
            timeout_ms: 10_000,
            concurrency: 16,
        }
    }
}

impl DeliverySettings {
    /// The wait before attempt `attempt + 1` ("equal jitter": half fixed, half random, so
    /// receivers coming back up are not hit by every sender at once).
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let exponential = self.backoff_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
        let capped = exponential.min(self.max_backoff_ms) as f64;
        Duration::from_millis((capped / 2.0 + capped / 2.0 * random.clamp(0.0, 1.0)) as u64)
    }
}

/// The signature header value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn random_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64;
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Sends one delivery once.
async fn attempt(client: &reqwest::Client, targets: &[WebhookTarget], row: &notification::Model) -> Result<(), String> {
    match row.sink.as_str() {
        // Written as delivered by `notify`; only a replay brings one here.
        LOG_SINK => Ok(()),
        WEBHOOK_SINK => {
            let secret = targets
                .iter()
                .find(|t| t.url == row.target)
                .map(|t| t.secret.clone())
                .ok_or_else(|| format!("no webhook is configured for {} any more", row.target))?;
            let timestamp = Utc::now().timestamp();
            let response = client
                .post(&row.target)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(EVENT_ID_HEADER, &row.id)
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, signature(&secret, timestamp, &row.body))
                .body(row.body.clone())
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("receiver answered {}", response.status()))
            }
        }
        other => Err(format!("unknown sink `{other}`")),
    }
}

/// Delivers due notifications until `shutdown`; in-flight deliveries finish first.
pub async fn run(notifier: Arc<Notifier>, shutdown: CancellationToken) -> Result<(), NotifierError> {
    let settings = notifier.settings.delivery.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(settings.timeout_ms))
        .build()
        .map_err(|e| NotifierError::Http(e.to_string()))?;
    let lease =
        TimeDelta::milliseconds(i64::try_from(settings.timeout_ms).unwrap_or(i64::MAX / 2)) + TimeDelta::seconds(30);
    let batch = settings.concurrency.max(1) as u64;
    let mut commits = notifier.store.subscribe_commits();
    // Only webhooks wait for the deliverer: without any, a commit has nothing for it (a
    // replay of an old delivery is found by the next look, within the longest sleep).
    let wake_on_commits = !notifier.settings.webhooks.is_empty();
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let now = propdesk_store::now();
        let claimed = match notifier.store.claim_deliveries(now, lease, batch).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "could not claim deliveries");
                Vec::new()
            }
        };
        let full = claimed.len() as u64 == batch;
        let mut in_flight = JoinSet::new();
        for row in claimed {
            let (notifier, client, settings) = (notifier.clone(), client.clone(), settings.clone());
            in_flight.spawn(async move {
                let outcome = attempt(&client, &notifier.settings.webhooks, &row).await;
                let now = propdesk_store::now();
                let recorded = match outcome {
                    Ok(()) => {
                        metrics::counter!("propdesk_deliveries_total", "sink" => row.sink.clone(), "outcome" => "delivered").increment(1);
                        Attempt::Delivered
                    }
                    Err(error) => {
                        let attempts = u32::try_from(row.attempts).unwrap_or(0) + 1;
                        let retry_at = (attempts < settings.max_attempts).then(|| {
                            let wait = settings.backoff(attempts, random_unit());
                            now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(60))
                        });
                        let outcome = if retry_at.is_some() { "retried" } else { "dead" };
                        metrics::counter!("propdesk_deliveries_total", "sink" => row.sink.clone(), "outcome" => outcome).increment(1);
                        tracing::warn!(delivery_id = %row.id, target = %row.target, attempts, %error, outcome, "webhook delivery failed");
                        Attempt::Failed { error, retry_at }
                    }
                };
                if let Err(err) = notifier.store.record_attempt(&row.id, recorded, now).await {
                    // The lease expires and the delivery is tried again.
                    tracing::warn!(delivery_id = %row.id, error = %err, "could not record a delivery attempt");
                }
            });
        }
        while in_flight.join_next().await.is_some() {}
        if full {
            continue;
        }
        let next = notifier.store.next_delivery_at().await.ok().flatten();
        let wait = until(next, propdesk_store::now(), notifier.settings.max_sleep());
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = commits.changed(), if wake_on_commits => {
                // Most commits hold no webhook: under load, look once per burst, not per commit.
                tokio::time::sleep(COMMIT_LINGER).await;
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long the deliverer, woken by a commit, lets more commits gather before it looks.
const COMMIT_LINGER: Duration = Duration::from_millis(5);

/// How long to sleep until `next` (at most `cap`).
pub(crate) fn until(next: Option<DateTime<Utc>>, now: DateTime<Utc>, cap: Duration) -> Duration {
    match next {
        Some(at) => (at - now).to_std().unwrap_or(Duration::ZERO).min(cap),
        None => cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Expected value from Python's hmac module, computed outside this code.
        assert_eq!(
            signature("key", 1_700_000_000, r#"{"id":"x"}"#),
            "sha256=c275209bfed50f54f9b0d8dafaf250f3f08155fdaadece7fc4d3f5c7e3c8b6ba"
        );
        let sig = signature("key", 1, "{}");
        assert_ne!(sig, signature("key", 2, "{}"), "the timestamp is signed");
        assert_ne!(sig, signature("other", 1, "{}"), "the secret matters");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_cap() {
        let settings = DeliverySettings { backoff_ms: 1_000, max_backoff_ms: 5_000, ..DeliverySettings::default() };
        assert_eq!(settings.backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(settings.backoff(1, 1.0), Duration::from_millis(1_000));
        assert_eq!(settings.backoff(3, 1.0), Duration::from_millis(4_000));
        assert_eq!(settings.backoff(10, 1.0), Duration::from_millis(5_000));
    }
}
