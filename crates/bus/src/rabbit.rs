//! RabbitMQ through lapin.
//!
//! Publishing: persistent, `mandatory` messages on a confirm channel; a batch is written
//! first and its confirms awaited after (pipelined), and a returned message counts as a
//! failure. Consuming: a connection per subscription, bounded prefetch, manual acks, and
//! reconnection with back-off (re-declaring the topology) whenever the broker goes away.
//!
//! A cluster is given as a list of its nodes' URLs: every connection goes to the first
//! node that answers, starting from the one that answered last, so a stopped or
//! unreachable node is skipped (each try is bounded by [`CONNECT_TIMEOUT`]). Quorum queues
//! keep their messages on every node, so any node serves any queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::Acker;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ExchangeKind};
use tokio::sync::Mutex;

use crate::topology::{Topology, WorkerRole};
use crate::{BusError, Delivery, Envelope, Settle};

const ATTEMPT_HEADER: &str = "x-propdesk-attempt";
const ROUTING_KEY_HEADER: &str = "x-propdesk-routing-key";
const REASON_HEADER: &str = "x-propdesk-reason";
const PERSISTENT: u8 = 2;
/// How long one node may take to accept a connection before the next is tried: a node cut
/// off by the network never refuses, it just does not answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A live connection with one confirm-mode channel.
struct Link {
    connection: Connection,
    channel: Channel,
}

pub struct RabbitBus {
    /// The cluster's nodes (one for a single broker), heartbeats set.
    urls: Vec<String>,
    /// The node tried first: the one that answered last.
    preferred: AtomicUsize,
    topology: Topology,
    publisher: Mutex<Option<Link>>,
    /// For `amqps://`: a private CA (PEM) the broker's certificate chains to, trusted
    /// beside the system's roots.
    tls_ca_pem: Option<String>,
}

/// A message waiting in a parking queue.
#[derive(Debug, Clone)]
pub struct ParkedMessage {
    pub message_id: String,
    pub routing_key: String,
    pub attempt: u32,
    pub reason: String,
    pub payload_bytes: usize,
}

fn header_string(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn header_u32(headers: Option<&FieldTable>, name: &str) -> Option<u32> {
    match headers?.inner().get(name)? {
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        _ => None,
    }
}

fn properties(message_id: &str, headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_message_id(message_id.into())
        .with_content_type("application/x-protobuf".into())
        .with_headers(headers)
}

fn args(pairs: Vec<(&str, AMQPValue)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert(key.into(), value);
    }
    table
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

/// `headers` plus the message's `traceparent`, when it has one.
fn with_trace(mut headers: Vec<(&'static str, AMQPValue)>, trace_parent: Option<&str>) -> FieldTable {
    if let Some(trace) = trace_parent {
        headers.push((propdesk_trace::HEADER, text(trace)));
    }
    args(headers)
}

/// Heartbeats detect a dead broker within seconds instead of the TCP timeout.
fn with_heartbeat(url: &str) -> String {
    if url.contains("heartbeat=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&heartbeat=10")
    } else {
        format!("{url}?heartbeat=10")
    }
}

impl RabbitBus {
    /// A bus for `url` (`amqp://user:pass@host:5672/vhost`, or `amqps://…:5671/…` over
    /// TLS). Connects lazily.
    pub fn new(url: &str, topology: Topology) -> RabbitBus {
        RabbitBus::cluster(&[url.to_owned()], topology)
    }

    /// A bus for the nodes of one cluster; each connection goes to the first that answers.
    /// Processes start at different nodes (by process id), which spreads connections.
    pub fn cluster(urls: &[String], topology: Topology) -> RabbitBus {
        let urls: Vec<String> = urls.iter().map(|url| with_heartbeat(url)).collect();
        let preferred = AtomicUsize::new(std::process::id() as usize % urls.len().max(1));
        RabbitBus { urls, preferred, topology, publisher: Mutex::new(None), tls_ca_pem: None }
    }

    /// Trusts `ca_pem` (a private CA) for `amqps://` besides the system's roots.
    pub fn with_tls_ca(mut self, ca_pem: String) -> RabbitBus {
        self.tls_ca_pem = Some(ca_pem);
        self
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// A connection to the first node that answers, from the preferred one on; the error
    /// of the last node tried when none does. Errors name nodes by position, never by URL
    /// (it holds the password).
    async fn open(&self, name: &str) -> Result<Link, BusError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failure = BusError::Connection("no broker URL is configured".into());
        for step in 0..self.urls.len() {
            let node = (first + step) % self.urls.len();
            match tokio::time::timeout(CONNECT_TIMEOUT, self.open_at(&self.urls[node], name)).await {
                Ok(Ok(link)) => {
                    if node != first {
                        tracing::info!(node, connection = name, "connected to another broker node");
                    }
                    self.preferred.store(node, Ordering::Relaxed);
                    return Ok(link);
                }
                Ok(Err(err)) => failure = err,
                Err(_) => {
                    failure = BusError::Connection(format!("broker node {node} did not answer in {CONNECT_TIMEOUT:?}"))
                }
            }
            if self.urls.len() > 1 {
                tracing::warn!(node, connection = name, error = %failure, "broker node unavailable; trying the next");
            }
        }
        Err(failure)
    }

    async fn open_at(&self, url: &str, name: &str) -> Result<Link, BusError> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let tls = OwnedTLSConfig { identity: None, cert_chain: self.tls_ca_pem.clone() };
        let connection =
            Connection::connect_with_config(url, properties, tls, lapin::runtime::default_runtime()?).await?;
        let channel = connection.create_channel().await?;
        declare(&channel, &self.topology).await?;
        Ok(Link { connection, channel })
    }

    /// Connects (if needed) and declares the topology; for start-up and readiness.
    pub async fn connect(&self) -> Result<(), BusError> {
        let mut publisher = self.publisher.lock().await;
        if publisher.as_ref().is_none_or(|link| !link.connection.status().connected()) {
            let link = self.open("propdesk-publisher").await?;
            link.channel.confirm_select(ConfirmSelectOptions::default()).await?;
            *publisher = Some(link);
        }
        Ok(())
    }

    pub async fn is_connected(&self) -> bool {
        self.connect().await.is_ok()
    }

    /// Publishes to the events exchange: all writes first, then all confirms.
    pub async fn publish(&self, batch: &[Envelope]) -> Vec<Result<(), BusError>> {
        let exchange = self.topology.exchange();
        let messages: Vec<_> = batch
            .iter()
            .map(|e| {
                (
                    exchange.as_str(),
                    e.routing_key.as_str(),
                    e.message_id.as_str(),
                    &e.payload[..],
                    with_trace(Vec::new(), e.trace_parent.as_deref()),
                )
            })
            .collect();
        self.publish_raw(messages).await
    }

    async fn publish_raw(&self, messages: Vec<(&str, &str, &str, &[u8], FieldTable)>) -> Vec<Result<(), BusError>> {
        if let Err(err) = self.connect().await {
            return messages.iter().map(|_| Err(err.clone())).collect();
        }
        let mut publisher = self.publisher.lock().await;
        let Some(link) = publisher.as_ref() else {
            return messages.iter().map(|_| Err(BusError::Closed)).collect();
        };
        let mut pending = Vec::with_capacity(messages.len());
        for (exchange, routing_key, message_id, payload, headers) in &messages {
            let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
            let sent = link
                .channel
                .basic_publish(
                    (*exchange).into(),
                    (*routing_key).into(),
                    options,
                    payload,
                    properties(message_id, headers.clone()),
                )
                .await;
            pending.push(sent);
        }
        // Await every confirm, in order, so a returned message is matched to its publish.
        let mut outcomes = Vec::with_capacity(pending.len());
        let mut broken = false;
        for (sent, (_, routing_key, ..)) in pending.into_iter().zip(&messages) {
            let outcome = match sent {
                Err(err) => Err(BusError::from(err)),
                Ok(confirm) => match confirm.await {
                    Ok(Confirmation::Ack(None)) => Ok(()),
                    Ok(Confirmation::Ack(Some(_returned))) => Err(BusError::Unroutable((*routing_key).to_owned())),
                    Ok(Confirmation::Nack(_)) => Err(BusError::Nacked),
                    Ok(Confirmation::NotRequested) => Err(BusError::Connection("confirms are off".into())),
                    Err(err) => Err(BusError::from(err)),
                },
            };
            broken |= matches!(outcome, Err(BusError::Connection(_)));
            outcomes.push(outcome);
        }
        if broken {
            *publisher = None;
        }
        outcomes
    }

    pub fn subscribe(self: &Arc<Self>, role: WorkerRole, prefetch: u16) -> RabbitSubscription {
        RabbitSubscription { bus: self.clone(), role, prefetch, link: None, failures: 0, stopped: false }
    }

    /// Up to `limit` parked messages of `role`, left in place.
    pub async fn list_parked(&self, role: WorkerRole, limit: usize) -> Result<Vec<ParkedMessage>, BusError> {
        let link = self.open("propdesk-parked-list").await?;
        let queue = self.topology.parked_queue(role);
        let mut found = Vec::new();
        while found.len() < limit {
            let Some(message) =
                link.channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false }).await?
            else {
                break;
            };
            let headers = message.delivery.properties.headers().as_ref();
            found.push(ParkedMessage {
                message_id: message
                    .delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                routing_key: header_string(headers, ROUTING_KEY_HEADER)
                    .unwrap_or_else(|| message.delivery.routing_key.to_string()),
                attempt: header_u32(headers, ATTEMPT_HEADER).unwrap_or(1),
                reason: header_string(headers, REASON_HEADER).unwrap_or_else(|| "delivery limit reached".into()),
                payload_bytes: message.delivery.data.len(),
            });
        }
        // Closing without acks puts every message back where it was.
        link.connection.close(200, "listed".into()).await.ok();
        Ok(found)
    }

    /// Moves every parked message of `role` back to its queue with a fresh attempt count.
    pub async fn replay_parked(&self, role: WorkerRole) -> Result<usize, BusError> {
        let link = self.open("propdesk-parked-replay").await?;
        let queue = self.topology.parked_queue(role);
        let target = self.topology.queue(role);
        let mut replayed = 0;
        while let Some(message) =
            link.channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false }).await?
        {
            let delivery = &message.delivery;
            let headers = delivery.properties.headers().as_ref();
            let routing_key =
                header_string(headers, ROUTING_KEY_HEADER).unwrap_or_else(|| delivery.routing_key.to_string());
            let message_id = delivery.properties.message_id().as_ref().map(|m| m.to_string()).unwrap_or_default();
            let trace_parent = header_string(headers, propdesk_trace::HEADER);
            let fresh = with_trace(
                vec![(ATTEMPT_HEADER, AMQPValue::LongLongInt(1)), (ROUTING_KEY_HEADER, text(&routing_key))],
                trace_parent.as_deref(),
            );
            let outcome =
                self.publish_raw(vec![("", target.as_str(), message_id.as_str(), &delivery.data[..], fresh)]).await;
            match outcome.into_iter().next() {
                Some(Ok(())) => {
                    delivery.ack(BasicAckOptions::default()).await?;
                    replayed += 1;
                }
                Some(Err(err)) => return Err(err),
                None => return Err(BusError::Closed),
            }
        }
        link.connection.close(200, "replayed".into()).await.ok();
        Ok(replayed)
    }

    /// Deletes every queue and the exchange of this topology (tests clean up with this).
    pub async fn delete_topology(&self) -> Result<(), BusError> {
        let link = self.open("propdesk-cleanup").await?;
        for role in WorkerRole::ALL {
            let mut queues = vec![self.topology.queue(role), self.topology.parked_queue(role)];
            queues.extend((0..self.topology.retry_delays.len()).map(|step| self.topology.retry_queue(role, step)));
            for queue in queues {
                link.channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
            }
        }
        link.channel.exchange_delete(self.topology.exchange().as_str().into(), Default::default()).await?;
        link.connection.close(200, "cleaned up".into()).await.ok();
        Ok(())
    }
}

/// Declares everything; idempotent, so every process does it at start and on reconnect.
async fn declare(channel: &Channel, topology: &Topology) -> Result<(), BusError> {
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    let exchange = topology.exchange();
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
            FieldTable::default(),
        )
        .await?;
    for role in WorkerRole::ALL {
        let queue = topology.queue(role);
        let parked = topology.parked_queue(role);
        channel.queue_declare(parked.as_str().into(), durable, args(vec![("x-queue-type", text("quorum"))])).await?;
        let main_args = args(vec![
            ("x-queue-type", text("quorum")),
            // A message that crashes its consumer again and again ends up parked.
            ("x-delivery-limit", AMQPValue::LongLongInt(i64::from(topology.delivery_limit))),
            ("x-dead-letter-exchange", text("")),
            ("x-dead-letter-routing-key", text(&parked)),
        ]);
        channel.queue_declare(queue.as_str().into(), durable, main_args).await?;
        for binding in role.bindings() {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    binding.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        for (step, delay) in topology.retry_delays.iter().enumerate() {
            let retry = topology.retry_queue(role, step);
            // Replicated like the main queue, and handing an expired message on only once
            // the main queue has it (at-least-once dead-lettering needs reject-publish).
            let retry_args = args(vec![
                ("x-queue-type", text("quorum")),
                ("x-message-ttl", AMQPValue::LongLongInt(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))),
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&queue)),
                ("x-dead-letter-strategy", text("at-least-once")),
                ("x-overflow", text("reject-publish")),
            ]);
            channel.queue_declare(retry.as_str().into(), durable, retry_args).await?;
        }
    }
    Ok(())
}

/// Consumes one role's queue, reconnecting on its own.
pub struct RabbitSubscription {
    bus: Arc<RabbitBus>,
    role: WorkerRole,
    prefetch: u16,
    link: Option<(Link, Consumer)>,
    failures: u32,
    stopped: bool,
}

impl RabbitSubscription {
    async fn start(&self) -> Result<(Link, Consumer), BusError> {
        let link = self.bus.open(&format!("propdesk-{}", self.role)).await?;
        link.channel.basic_qos(self.prefetch, BasicQosOptions { global: false }).await?;
        let queue = self.bus.topology.queue(self.role);
        let consumer = link
            .channel
            .basic_consume(
                queue.as_str().into(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((link, consumer))
    }

    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if self.stopped {
                return None;
            }
            if self.link.is_none() {
                match self.start().await {
                    Ok(link) => {
                        if self.failures > 0 {
                            tracing::info!(role = %self.role, "consumer reconnected");
                        }
                        self.failures = 0;
                        self.link = Some(link);
                    }
                    Err(err) => {
                        self.failures += 1;
                        let backoff =
                            Duration::from_millis(200 * 2u64.pow(self.failures.min(6))).min(Duration::from_secs(10));
                        tracing::warn!(role = %self.role, error = %err, ?backoff, "consumer cannot connect; retrying");
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                }
            }
            let (_, consumer) = self.link.as_mut()?;
            match consumer.next().await {
                Some(Ok(delivery)) => {
                    let headers = delivery.properties.headers().as_ref();
                    let routing_key =
                        header_string(headers, ROUTING_KEY_HEADER).unwrap_or_else(|| delivery.routing_key.to_string());
                    let attempt = header_u32(headers, ATTEMPT_HEADER).unwrap_or(1);
                    let message_id =
                        delivery.properties.message_id().as_ref().map(|m| m.to_string()).unwrap_or_default();
                    let trace_parent = header_string(headers, propdesk_trace::HEADER);
                    return Some(Delivery {
                        envelope: Envelope { message_id, routing_key, payload: delivery.data, trace_parent },
                        attempt,
                        redelivered: delivery.redelivered,
                        settle: Settle::Rabbit(RabbitSettle {
                            acker: delivery.acker,
                            bus: self.bus.clone(),
                            role: self.role,
                        }),
                    });
                }
                Some(Err(err)) => {
                    tracing::warn!(role = %self.role, error = %err, "consumer lost its connection");
                    self.link = None;
                }
                None => {
                    tracing::warn!(role = %self.role, "consumer was cancelled by the broker");
                    self.link = None;
                }
            }
        }
    }

    /// Cancels the consumer: unacked deliveries stay with this process until settled.
    pub async fn stop(&mut self) {
        self.stopped = true;
        if let Some((link, consumer)) = &self.link {
            let _ = link.channel.basic_cancel(consumer.tag(), Default::default()).await;
        }
    }
}

pub struct RabbitSettle {
    acker: Acker,
    bus: Arc<RabbitBus>,
    role: WorkerRole,
}

impl RabbitSettle {
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack(BasicAckOptions::default()).await?;
        Ok(())
    }

    /// Copies the message to the retry queue of its step (confirmed), then acks it; if the
    /// copy fails the message is requeued instead, so it is never lost.
    pub async fn retry(self, envelope: Envelope, attempt: u32, reason: &str) -> Result<(), BusError> {
        let topology = &self.bus.topology;
        if attempt >= topology.max_attempts {
            return self.park(envelope, attempt, reason).await;
        }
        let queue = topology.retry_queue(self.role, topology.retry_step(attempt));
        self.move_to(&queue, envelope, attempt + 1, reason).await
    }

    pub async fn park(self, envelope: Envelope, attempt: u32, reason: &str) -> Result<(), BusError> {
        let queue = self.bus.topology.parked_queue(self.role);
        tracing::warn!(role = %self.role, message_id = %envelope.message_id, routing_key = %envelope.routing_key, reason, "message parked");
        self.move_to(&queue, envelope, attempt, reason).await
    }

    async fn move_to(self, queue: &str, envelope: Envelope, attempt: u32, reason: &str) -> Result<(), BusError> {
        let headers = with_trace(
            vec![
                (ATTEMPT_HEADER, AMQPValue::LongLongInt(i64::from(attempt))),
                (ROUTING_KEY_HEADER, text(&envelope.routing_key)),
                (REASON_HEADER, text(reason)),
            ],
            envelope.trace_parent.as_deref(),
        );
        let outcome =
            self.bus.publish_raw(vec![("", queue, envelope.message_id.as_str(), &envelope.payload[..], headers)]).await;
        match outcome.into_iter().next() {
            Some(Ok(())) => self.ack().await,
            Some(Err(err)) => {
                self.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await?;
                Err(err)
            }
            None => Err(BusError::Closed),
        }
    }
}

/// Follows the events exchange through an exclusive, server-named queue of this process
/// (it disappears with the connection). Auto-acked: listeners use messages as wake-ups,
/// the database stays the source of truth, so a message lost in a reconnect costs nothing
/// but a poll interval.
pub struct RabbitListener {
    bus: Arc<RabbitBus>,
    binding: String,
    link: Option<(Link, Consumer)>,
    failures: u32,
}

impl RabbitListener {
    pub(crate) fn new(bus: Arc<RabbitBus>, binding: &str) -> RabbitListener {
        RabbitListener { bus, binding: binding.to_owned(), link: None, failures: 0 }
    }

    async fn start(&self) -> Result<(Link, Consumer), BusError> {
        let link = self.bus.open("propdesk-listener").await?;
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            durable: false,
            ..QueueDeclareOptions::default()
        };
        let queue = link.channel.queue_declare(ShortString::from(""), exclusive, FieldTable::default()).await?;
        let exchange = self.bus.topology.exchange();
        link.channel
            .queue_bind(
                queue.name().clone(),
                exchange.as_str().into(),
                self.binding.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let no_ack = BasicConsumeOptions { no_ack: true, exclusive: true, ..BasicConsumeOptions::default() };
        let consumer = link
            .channel
            .basic_consume(queue.name().clone(), ShortString::from(""), no_ack, FieldTable::default())
            .await?;
        Ok((link, consumer))
    }

    /// Closes the connection, so the broker deletes the queue and stops copying messages
    /// to it; the next `next` opens a new one.
    pub async fn close(&mut self) {
        if let Some((link, _)) = self.link.take() {
            link.connection.close(200, "no more listening".into()).await.ok();
        }
    }

    /// The routing key of the next message; reconnects on its own.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if self.link.is_none() {
                match self.start().await {
                    Ok(link) => {
                        self.failures = 0;
                        self.link = Some(link);
                        // Anything may have happened while disconnected.
                        return Some(String::new());
                    }
                    Err(err) => {
                        self.failures += 1;
                        let backoff =
                            Duration::from_millis(200 * 2u64.pow(self.failures.min(6))).min(Duration::from_secs(10));
                        tracing::warn!(error = %err, ?backoff, "event listener cannot connect; retrying");
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                }
            }
            let (_, consumer) = self.link.as_mut()?;
            match consumer.next().await {
                Some(Ok(delivery)) => return Some(delivery.routing_key.to_string()),
                Some(Err(_)) | None => self.link = None,
            }
        }
    }
}
