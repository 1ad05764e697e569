//! The in-process bus of embedded mode. Same contract as RabbitMQ seen from above: a
//! publish is confirmed only once every subscribed role has settled the message (acked or
//! parked), so the outbox keeps it until then; retries wait out the same back-off.
//!
//! Routing: a message goes to every role with a live subscription whose bindings match.
//! Embedded mode runs every consumer in this process, so a message no subscribed role
//! wants has no consumer anywhere and is confirmed at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::topology::{Topology, WorkerRole, topic_matches};
use crate::{BusError, Delivery, Envelope, Settle};

struct Queued {
    envelope: Envelope,
    attempt: u32,
    settled: oneshot::Sender<()>,
}

#[derive(Default)]
struct State {
    /// Each subscribed role's queue, with its bindings (named once, not per message).
    queues: HashMap<WorkerRole, (Vec<String>, mpsc::UnboundedSender<Queued>)>,
    parked: HashMap<WorkerRole, Vec<(Envelope, String)>>,
}

#[derive(Clone)]
pub struct MemoryBus {
    state: Arc<Mutex<State>>,
    topology: Arc<Topology>,
    /// Every published message, for listeners (see [`MemoryBus::listen`]).
    taps: broadcast::Sender<String>,
}

impl MemoryBus {
    pub fn new(topology: Topology) -> MemoryBus {
        MemoryBus { state: Arc::default(), topology: Arc::new(topology), taps: broadcast::channel(1024).0 }
    }

    /// Routing keys of messages matching `binding`, as they are published.
    pub fn listen(&self, binding: &str) -> MemoryListener {
        MemoryListener { receiver: self.taps.subscribe(), binding: binding.to_owned() }
    }

    fn senders_for(&self, routing_key: &str) -> Vec<(WorkerRole, mpsc::UnboundedSender<Queued>)> {
        let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state
            .queues
            .iter()
            .filter(|(_, (bindings, sender))| {
                !sender.is_closed() && bindings.iter().any(|b| topic_matches(b, routing_key))
            })
            .map(|(role, (_, sender))| (*role, sender.clone()))
            .collect()
    }

    pub async fn publish(&self, batch: &[Envelope]) -> Vec<Result<(), BusError>> {
        let mut waits = Vec::with_capacity(batch.len());
        for envelope in batch {
            // Nobody listening is fine.
            let _ = self.taps.send(envelope.routing_key.clone());
            let mut settled = Vec::new();
            for (_, sender) in self.senders_for(&envelope.routing_key) {
                let (tx, rx) = oneshot::channel();
                if sender.send(Queued { envelope: envelope.clone(), attempt: 1, settled: tx }).is_ok() {
                    settled.push(rx);
                }
            }
            waits.push(settled);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for settled in waits {
            let mut outcome = Ok(());
            for rx in settled {
                if rx.await.is_err() {
                    outcome = Err(BusError::Closed);
                }
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Subscribes `role`; a later subscription of the same role replaces this one.
    pub fn subscribe(&self, role: WorkerRole) -> MemorySubscription {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.queues.insert(role, (role.bindings(), sender.clone()));
        MemorySubscription { receiver, requeue: sender, bus: self.clone(), role }
    }

    /// Parked messages of `role` with the reason each was parked.
    pub fn parked(&self, role: WorkerRole) -> Vec<(Envelope, String)> {
        let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.parked.get(&role).cloned().unwrap_or_default()
    }
}

/// Routing keys of published messages matching a binding.
pub struct MemoryListener {
    receiver: broadcast::Receiver<String>,
    binding: String,
}

impl MemoryListener {
    /// The next matching routing key; an empty one after falling behind (something
    /// happened, look). `None` when the bus is gone.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            match self.receiver.recv().await {
                Ok(key) if topic_matches(&self.binding, &key) => return Some(key),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return Some(String::new()),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

pub struct MemorySubscription {
    receiver: mpsc::UnboundedReceiver<Queued>,
    requeue: mpsc::UnboundedSender<Queued>,
    bus: MemoryBus,
    role: WorkerRole,
}

impl MemorySubscription {
    pub async fn next(&mut self) -> Option<Delivery> {
        let queued = self.receiver.recv().await?;
        Some(Delivery {
            envelope: queued.envelope,
            attempt: queued.attempt,
            redelivered: queued.attempt > 1,
            settle: Settle::Memory(MemorySettle {
                settled: queued.settled,
                requeue: self.requeue.clone(),
                bus: self.bus.clone(),
                role: self.role,
            }),
        })
    }

    pub fn stop(&mut self) {
        self.receiver.close();
    }
}

pub struct MemorySettle {
    settled: oneshot::Sender<()>,
    requeue: mpsc::UnboundedSender<Queued>,
    bus: MemoryBus,
    role: WorkerRole,
}

impl MemorySettle {
    pub fn ack(self) -> Result<(), BusError> {
        let _ = self.settled.send(());
        Ok(())
    }

    pub fn retry(self, envelope: Envelope, attempt: u32, reason: &str) -> Result<(), BusError> {
        let topology = &self.bus.topology;
        if attempt >= topology.max_attempts {
            return self.park(envelope, reason);
        }
        let delay = topology.retry_delays.get(topology.retry_step(attempt)).copied().unwrap_or_default();
        let requeue = self.requeue.clone();
        let settled = self.settled;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // If the subscription is gone the publisher sees the message as unconfirmed and
            // the outbox keeps it.
            let _ = requeue.send(Queued { envelope, attempt: attempt + 1, settled });
        });
        Ok(())
    }

    pub fn park(self, envelope: Envelope, reason: &str) -> Result<(), BusError> {
        tracing::warn!(role = %self.role, message_id = %envelope.message_id, reason, "message parked");
        let mut state = self.bus.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.parked.entry(self.role).or_default().push((envelope, reason.to_owned()));
        let _ = self.settled.send(());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn envelope(key: &str) -> Envelope {
        Envelope {
            message_id: uuid::Uuid::now_v7().to_string(),
            routing_key: key.into(),
            payload: vec![1, 2, 3],
            trace_parent: None,
        }
    }

    fn fast() -> Topology {
        Topology { retry_delays: vec![Duration::from_millis(5)], max_attempts: 3, ..Topology::default() }
    }

    #[tokio::test]
    async fn a_publish_is_confirmed_only_after_the_consumer_acks() {
        let bus = MemoryBus::new(fast());
        let mut dispatch = bus.subscribe(WorkerRole::Dispatch);
        let publisher = bus.clone();
        let published = tokio::spawn(async move { publisher.publish(&[envelope("ticket.created")]).await });
        let delivery = dispatch.next().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!published.is_finished(), "confirmed before the ack");
        delivery.ack().await.unwrap();
        assert!(published.await.unwrap().iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_failing_message_is_retried_then_parked() {
        let bus = MemoryBus::new(fast());
        let mut dispatch = bus.subscribe(WorkerRole::Dispatch);
        let publisher = bus.clone();
        let published = tokio::spawn(async move { publisher.publish(&[envelope("ticket.created")]).await });
        let mut attempts = Vec::new();
        for _ in 0..3 {
            let delivery = dispatch.next().await.unwrap();
            attempts.push(delivery.attempt);
            delivery.retry("always fails").await.unwrap();
        }
        assert_eq!(attempts, [1, 2, 3]);
        assert!(published.await.unwrap().iter().all(Result::is_ok), "parking settles the message");
        assert_eq!(bus.parked(WorkerRole::Dispatch).len(), 1);
    }

    #[tokio::test]
    async fn only_matching_roles_receive_a_message() {
        let bus = MemoryBus::new(fast());
        let mut dispatch = bus.subscribe(WorkerRole::Dispatch);
        // No dispatch binding for ticket.accepted, and no notifier subscribed here.
        let outcome = bus.publish(&[envelope("ticket.accepted")]).await;
        assert!(outcome[0].is_ok());
        assert!(tokio::time::timeout(Duration::from_millis(20), dispatch.next()).await.is_err());
    }
}
