//! The message bus: RabbitMQ through lapin in production, in-process in embedded mode,
//! with the same semantics seen from above, and the outbox relay that feeds it.
//!
//! Invariants:
//! - `publish` succeeds only when the broker has confirmed the message (in-process: when
//!   every subscriber has settled it). An unroutable message is a failure, never a success.
//! - A delivery is settled exactly once, by its consumer, after the consumer's database
//!   commit: `ack`, `retry` (back-off through the retry queues) or `park`.
//! - Consumers are idempotent (the inbox table): every message may arrive more than once.

pub mod consume;
pub mod memory;
pub mod rabbit;
pub mod relay;
pub mod topology;

use std::sync::Arc;

pub use consume::{ConsumeOptions, consume};
pub use relay::OutboxRelay;
pub use topology::{Topology, WorkerRole};

/// A message as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Unique id; consumers drop duplicates by it.
    pub message_id: String,
    pub routing_key: String,
    pub payload: Vec<u8>,
    /// The W3C `traceparent` of the work that sent it (AMQP header `traceparent`).
    pub trace_parent: Option<String>,
}

impl From<propdesk_events::BusMessage> for Envelope {
    fn from(message: propdesk_events::BusMessage) -> Self {
        Envelope {
            message_id: message.message_id,
            routing_key: message.routing_key,
            payload: message.payload,
            trace_parent: message.trace_parent,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("no queue is bound for routing key `{0}`")]
    Unroutable(String),
    #[error("the broker refused the message")]
    Nacked,
    #[error("broker connection: {0}")]
    Connection(String),
    #[error("the bus is closed")]
    Closed,
}

impl From<lapin::Error> for BusError {
    fn from(err: lapin::Error) -> Self {
        BusError::Connection(err.to_string())
    }
}

/// The bus handle shared by relays and consumers.
#[derive(Clone)]
pub enum Bus {
    Rabbit(Arc<rabbit::RabbitBus>),
    Memory(memory::MemoryBus),
}

impl Bus {
    /// Publishes a batch with pipelined confirms; one outcome per envelope, in order.
    pub async fn publish(&self, batch: &[Envelope]) -> Vec<Result<(), BusError>> {
        match self {
            Bus::Rabbit(bus) => bus.publish(batch).await,
            Bus::Memory(bus) => bus.publish(batch).await,
        }
    }

    /// Starts consuming the role's queue with at most `prefetch` unsettled deliveries.
    pub async fn subscribe(&self, role: WorkerRole, prefetch: u16) -> Result<Subscription, BusError> {
        match self {
            Bus::Rabbit(bus) => Ok(Subscription::Rabbit(Box::new(bus.subscribe(role, prefetch)))),
            Bus::Memory(bus) => Ok(Subscription::Memory(bus.subscribe(role))),
        }
    }

    /// Follows the routing keys of messages matching `binding` (e.g. `ticket.#`) through a
    /// queue of this process alone: every replica sees every message. For wake-ups, not
    /// for work: nothing is acknowledged or redelivered.
    pub fn listen(&self, binding: &str) -> Listener {
        match self {
            Bus::Rabbit(bus) => Listener::Rabbit(Box::new(rabbit::RabbitListener::new(bus.clone(), binding))),
            Bus::Memory(bus) => Listener::Memory(bus.listen(binding)),
        }
    }

    /// Whether the bus can take work now (for readiness).
    pub async fn is_ready(&self) -> bool {
        match self {
            Bus::Rabbit(bus) => bus.is_connected().await,
            Bus::Memory(_) => true,
        }
    }
}

/// Routing keys of published messages (see [`Bus::listen`]).
pub enum Listener {
    Rabbit(Box<rabbit::RabbitListener>),
    Memory(memory::MemoryListener),
}

impl Listener {
    /// The next routing key (empty after a reconnect or a lag: anything may have
    /// happened); `None` when the bus is closed for good. The first call starts listening.
    pub async fn next(&mut self) -> Option<String> {
        match self {
            Listener::Rabbit(listener) => listener.next().await,
            Listener::Memory(listener) => listener.next().await,
        }
    }

    /// Stops listening for now (RabbitMQ: the queue goes away with its connection).
    pub async fn close(self) {
        if let Listener::Rabbit(mut listener) = self {
            listener.close().await;
        }
    }
}

/// A stream of deliveries for one role.
pub enum Subscription {
    Rabbit(Box<rabbit::RabbitSubscription>),
    Memory(memory::MemorySubscription),
}

impl Subscription {
    /// The next delivery; reconnects on its own when the broker goes away. `None` only
    /// when the bus is closed for good.
    pub async fn next(&mut self) -> Option<Delivery> {
        match self {
            Subscription::Rabbit(sub) => sub.next().await,
            Subscription::Memory(sub) => sub.next().await,
        }
    }

    /// Stops taking new deliveries (in-flight ones can still be settled).
    pub async fn stop(&mut self) {
        match self {
            Subscription::Rabbit(sub) => sub.stop().await,
            Subscription::Memory(sub) => sub.stop(),
        }
    }
}

/// One delivered message and the right to settle it.
pub struct Delivery {
    pub envelope: Envelope,
    /// 1 for the first delivery, counting retries.
    pub attempt: u32,
    /// RabbitMQ says this delivery may have been seen before (a crash or lost ack).
    pub redelivered: bool,
    settle: Settle,
}

enum Settle {
    Rabbit(rabbit::RabbitSettle),
    Memory(memory::MemorySettle),
}

impl Delivery {
    /// Done: the message will not be delivered again.
    pub async fn ack(self) -> Result<(), BusError> {
        match self.settle {
            Settle::Rabbit(settle) => settle.ack().await,
            Settle::Memory(settle) => settle.ack(),
        }
    }

    /// Failed for now: deliver again after the back-off delay, or park it once the
    /// attempts are used up.
    pub async fn retry(self, reason: &str) -> Result<(), BusError> {
        match self.settle {
            Settle::Rabbit(settle) => settle.retry(self.envelope, self.attempt, reason).await,
            Settle::Memory(settle) => settle.retry(self.envelope, self.attempt, reason),
        }
    }

    /// Will never succeed (e.g. undecodable): keep it in the parking queue for a human.
    pub async fn park(self, reason: &str) -> Result<(), BusError> {
        match self.settle {
            Settle::Rabbit(settle) => settle.park(self.envelope, self.attempt, reason).await,
            Settle::Memory(settle) => settle.park(self.envelope, reason),
        }
    }
}
