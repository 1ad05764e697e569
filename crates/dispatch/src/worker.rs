//! The consumer loop: bounded concurrency, ack after commit, retry on failure, park what
//! cannot be decoded, and a clean stop (no new deliveries, in-flight ones settled).

use std::sync::Arc;

use propdesk_bus::{Bus, BusError, Delivery, WorkerRole};
use propdesk_domain::Policy;
use propdesk_proto::v1 as pb;
use propdesk_store::Store;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{Outcome, dispatch};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Messages handled at once (1 on SQLite, which has a single writer).
    pub concurrency: usize,
    /// Unacked deliveries the broker may hand over ahead.
    pub prefetch: u16,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings { concurrency: 8, prefetch: 32 }
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
    propdesk_bus::consume(&bus, WorkerRole::Dispatch, settings.prefetch, settings.concurrency, shutdown, |delivery| {
        let (store, policy) = (store.clone(), policy.clone());
        async move { handle(&store, &policy, delivery).await }
    })
    .await
}

async fn handle(store: &Store, policy: &Policy, delivery: Delivery) {
    let message_id = delivery.envelope.message_id.clone();
    let event = match pb::TicketEvent::decode(&delivery.envelope.payload[..]) {
        Ok(event) => event,
        Err(err) => {
            metrics::counter!("propdesk_messages_total", "role" => "dispatch", "outcome" => "parked").increment(1);
            let reason = format!("undecodable TicketEvent: {err}");
            if let Err(err) = delivery.park(&reason).await {
                tracing::warn!(%message_id, error = %err, "could not park a message");
            }
            return;
        }
    };
    let settled = match dispatch(store, policy, &message_id, &event.ticket_id).await {
        Ok(outcome) => {
            if let Outcome::Dispatched { department, assignee_id, incident_id, repeat_fault } = &outcome {
                tracing::info!(ticket_id = %event.ticket_id, %department, assignee_id = ?assignee_id, incident_id = ?incident_id, repeat_fault, "ticket dispatched");
            }
            metrics::counter!("propdesk_messages_total", "role" => "dispatch", "outcome" => "acked").increment(1);
            delivery.ack().await
        }
        Err(err) => {
            metrics::counter!("propdesk_messages_total", "role" => "dispatch", "outcome" => "retried").increment(1);
            tracing::warn!(ticket_id = %event.ticket_id, %message_id, attempt = delivery.attempt, error = %err, "dispatch failed; will retry");
            delivery.retry(&err.to_string()).await
        }
    };
    if let Err(err) = settled {
        // The broker will redeliver; the inbox makes that harmless.
        tracing::warn!(%message_id, error = %err, "could not settle a delivery");
    }
}
