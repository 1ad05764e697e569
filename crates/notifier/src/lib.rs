//! The notifier worker (`propdesk notifier`): it owns time.
//!
//! - It consumes every ticket event and alert (`ticket.#`, `alert.#`, `incident.#`) and keeps
//!   each ticket's alarms (the escalation ladder's timers, in the database) equal to what
//!   the ladder plans for the ticket as it stands; opens the reply and callback follow-ups
//!   at resolution; escalates an unsatisfied callback; tells the first-contact owner of
//!   important changes.
//! - A scanner fires due alarms, waking at the earliest one rather than on a coarse poll.
//! - A deliverer sends notifications: the log sink and signed webhooks with retries.
//!
//! Invariants: every change is one transaction with its history, outbox rows and
//! notifications; an alarm fires under its ticket's row lock and is marked fired in the
//! same transaction, so replicas never fire a step twice; a message is recorded in the
//! inbox with its effects, so a redelivery changes nothing.

pub mod alarms;
pub mod clocks;
pub mod consume;
pub mod deliver;
pub mod notify;
mod residents;
pub mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use propdesk_domain::Policy;
use propdesk_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use deliver::DeliverySettings;
pub use notify::WebhookTarget;
pub use worker::run;

/// The consumer name in the inbox table.
pub const CONSUMER: &str = "notifier";
/// The actor recorded on the notifier's history events.
pub const ACTOR: &str = "system:notifier";

#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ticket {0} does not exist")]
    TicketMissing(String),
    #[error("cannot encode a notification: {0}")]
    Encode(String),
    #[error("http client: {0}")]
    Http(String),
    #[error(transparent)]
    Bus(#[from] propdesk_bus::BusError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifierSettings {
    /// Batches of bus messages handled at once (SQLite: 1).
    pub concurrency: usize,
    /// Unacked messages the broker may hand over ahead.
    pub prefetch: u16,
    /// Most bus messages applied in one transaction.
    pub batch: usize,
    /// How long a batch waits for more messages after its first, in milliseconds: a
    /// ticket's created and dispatched events then meet in one batch (one transaction and
    /// one re-plan for both), and dispatch locks a new ticket before the notifier does.
    /// Notifications go out that much later; 0 takes only what has already arrived.
    pub linger_ms: u64,
    /// Tickets whose alarms are fired at once.
    pub fire_concurrency: usize,
    /// Tickets with due alarms taken per scan.
    pub scan_batch: u64,
    /// The longest the scanner and deliverer sleep without news, in milliseconds: the
    /// bound on how late another replica's alarm fires if that replica died.
    pub max_sleep_ms: u64,
    pub delivery: DeliverySettings,
    /// Webhook receivers.
    #[serde(default)]
    pub webhooks: Vec<WebhookTarget>,
    /// gRPC health endpoint of the worker (readiness and liveness probes).
    pub health_listen: SocketAddr,
    /// How long in-flight work may take to finish after SIGTERM, in seconds.
    pub drain_timeout_secs: u64,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        NotifierSettings {
            concurrency: 4,
            prefetch: 256,
            batch: 64,
            linger_ms: 100,
            fire_concurrency: 8,
            scan_batch: 256,
            max_sleep_ms: 2_000,
            delivery: DeliverySettings::default(),
            webhooks: Vec::new(),
            health_listen: SocketAddr::from(([127, 0, 0, 1], 50062)),
            drain_timeout_secs: 20,
        }
    }
}

impl NotifierSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0
            || self.prefetch == 0
            || self.batch == 0
            || self.fire_concurrency == 0
            || self.delivery.concurrency == 0
        {
            return Err(
                "concurrency, prefetch, batch, fire_concurrency and delivery.concurrency must be at least 1".into()
            );
        }
        if self.delivery.max_attempts == 0 {
            return Err("delivery.max_attempts must be at least 1".into());
        }
        for (index, hook) in self.webhooks.iter().enumerate() {
            if !(hook.url.starts_with("https://") || hook.url.starts_with("http://")) {
                return Err(format!("webhooks[{index}].url must be an http(s) URL"));
            }
            if hook.secret.len() < 16 {
                return Err(format!("webhooks[{index}].secret must be at least 16 bytes"));
            }
        }
        Ok(())
    }

    pub fn max_sleep(&self) -> Duration {
        Duration::from_millis(self.max_sleep_ms.max(1))
    }
}

/// What the notifier's tasks share.
pub struct Notifier {
    pub store: Store,
    pub policy: Arc<Policy>,
    pub settings: NotifierSettings,
    /// Wakes the scanner when an alarm earlier than its planned wake-up appears.
    wake: Notify,
    /// The scanner's planned wake-up, in Unix microseconds.
    scanner_wakes_at: AtomicI64,
}

impl Notifier {
    pub fn new(store: Store, policy: Arc<Policy>, settings: NotifierSettings) -> Notifier {
        Notifier { store, policy, settings, wake: Notify::new(), scanner_wakes_at: AtomicI64::new(0) }
    }
}
