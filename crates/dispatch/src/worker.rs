//! The consumer loop: batches applied in one transaction each, ack after commit, retry on
//! failure, park what cannot be decoded, and a clean stop (no new deliveries, in-flight
//! ones settled).

use std::sync::Arc;

use propdesk_bus::{Bus, BusError, ConsumeOptions, Delivery, WorkerRole};
use propdesk_domain::Policy;
use propdesk_proto::v1 as pb;
use propdesk_store::Store;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{DispatchError, Outcome, dispatch_batch};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Batches handled at once (1 on SQLite, which has a single writer).
    pub concurrency: usize,
    /// Unacked deliveries the broker may hand over ahead.
    pub prefetch: u16,
    /// Most messages applied in one transaction.
    pub batch: usize,
    /// How long a batch waits, from its first message, for more.
    pub linger: std::time::Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings { concurrency: 8, prefetch: 32, batch: 16, linger: std::time::Duration::ZERO }
    }
}

/// Consumes until `shutdown`, then stops taking deliveries and settles those in flight.
pub async fn run(
    bus: Bus,
    store: Store,
    policy: Arc<Policy>,
    settings: WorkerSettings,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let options = ConsumeOptions {
        prefetch: settings.prefetch,
        concurrency: settings.concurrency,
        batch: settings.batch,
        linger: settings.linger,
    };
    propdesk_bus::consume(&bus, WorkerRole::Dispatch, options, shutdown, |deliveries| {
        let (store, policy) = (store.clone(), policy.clone());
        async move { handle(&store, &policy, deliveries).await }
    })
    .await
}

/// Applies a batch in one transaction; if that fails, each message alone, so one bad
/// message is retried on its own and never holds the others back.
async fn handle(store: &Store, policy: &Policy, deliveries: Vec<Delivery>) {
    let mut jobs = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        match pb::TicketEvent::decode(&delivery.envelope.payload[..]) {
            Ok(event) => jobs.push((delivery, event.ticket_id)),
            Err(err) => park(delivery, &format!("undecodable TicketEvent: {err}")).await,
        }
    }
    if jobs.len() > 1 {
        let batch: Vec<(&Delivery, &str)> = jobs.iter().map(|(d, id)| (d, id.as_str())).collect();
        match dispatch_batch(store, policy, &batch).await {
            Ok(outcomes) => {
                for ((delivery, ticket_id), outcome) in jobs.into_iter().zip(outcomes) {
                    settle(delivery, &ticket_id, Ok(outcome)).await;
                }
                return;
            }
            Err(err) => {
                tracing::info!(size = jobs.len(), error = %err, "batch failed; applying its messages one at a time");
            }
        }
    }
    for (delivery, ticket_id) in jobs {
        let outcome = dispatch_batch(store, policy, &[(&delivery, ticket_id.as_str())]).await;
        let outcome = outcome.and_then(|mut o| o.pop().ok_or_else(|| DispatchError::TicketMissing(ticket_id.clone())));
        settle(delivery, &ticket_id, outcome).await;
    }
}

async fn park(delivery: Delivery, reason: &str) {
    metrics::counter!("propdesk_messages_total", "role" => "dispatch", "outcome" => "parked").increment(1);
    let message_id = delivery.envelope.message_id.clone();
    if let Err(err) = delivery.park(reason).await {
        tracing::warn!(%message_id, error = %err, "could not park a message");
    }
}

/// Acks after the commit, or sends the message round the retry queues.
async fn settle(delivery: Delivery, ticket_id: &str, outcome: Result<Outcome, DispatchError>) {
    let message_id = delivery.envelope.message_id.clone();
    let settled = match outcome {
        Ok(outcome) => {
            if let Outcome::Dispatched { department, assignee_id, incident_id, repeat_fault } = &outcome {
                let log = async {
                    tracing::info!(%ticket_id, %department, assignee_id = ?assignee_id, incident_id = ?incident_id, repeat_fault, "ticket dispatched");
                };
                delivery.traced(WorkerRole::Dispatch, log).await;
            }
            metrics::counter!("propdesk_messages_total", "role" => "dispatch", "outcome" => "acked").increment(1);
            delivery.ack().await
        }
        Err(err) => {
            metrics::counter!("propdesk_messages_total", "role" => "dispatch", "outcome" => "retried").increment(1);
            let attempt = delivery.attempt;
            let log = async {
                tracing::warn!(%ticket_id, %message_id, attempt, error = %err, "dispatch failed; will retry");
            };
            delivery.traced(WorkerRole::Dispatch, log).await;
            delivery.retry(&err.to_string()).await
        }
    };
    if let Err(err) = settled {
        // The broker will redeliver; the inbox makes that harmless.
        tracing::warn!(%message_id, error = %err, "could not settle a delivery");
    }
}
