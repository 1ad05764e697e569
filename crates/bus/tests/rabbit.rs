//! The RabbitMQ bus against the real broker. Each test has its own exchange and queues.

use std::sync::Arc;
use std::time::Duration;

use propdesk_bus::rabbit::RabbitBus;
use propdesk_bus::{Bus, BusError, Envelope, Topology, WorkerRole};

struct Broker {
    bus: Arc<RabbitBus>,
}

impl Broker {
    async fn new(retry_delays: Vec<Duration>, max_attempts: u32) -> Broker {
        let topology =
            Topology { prefix: propdesk_testkit::unique_bus_prefix(), retry_delays, max_attempts, delivery_limit: 20 };
        let bus = Arc::new(RabbitBus::new(&propdesk_testkit::amqp_url(), topology));
        bus.connect().await.expect("RabbitMQ is required for this test (run scripts/test)");
        Broker { bus }
    }

    fn handle(&self) -> Bus {
        Bus::Rabbit(self.bus.clone())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let bus = self.bus.clone();
        propdesk_testkit::clean_up(async move { bus.delete_topology().await });
    }
}

fn envelope(key: &str, n: usize) -> Envelope {
    Envelope {
        message_id: format!("m-{n}-{}", uuid::Uuid::now_v7()),
        routing_key: key.into(),
        payload: n.to_be_bytes().to_vec(),
        // Compared whole after delivery, retries, parking and replay: the trace survives them.
        trace_parent: Some(propdesk_trace::TraceParent::start().to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_batch_reaches_the_consumer_in_order() {
    let broker = Broker::new(vec![Duration::from_secs(1)], 3).await;
    let bus = broker.handle();
    let batch: Vec<Envelope> = (0..200).map(|n| envelope("ticket.created", n)).collect();
    let outcomes = bus.publish(&batch).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let mut subscription = bus.subscribe(WorkerRole::Dispatch, 50).await.unwrap();
    for expected in &batch {
        let delivery = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.unwrap().unwrap();
        assert_eq!(&delivery.envelope, expected);
        assert_eq!(delivery.attempt, 1);
        delivery.ack().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_message_is_a_failure_not_a_success() {
    let broker = Broker::new(vec![Duration::from_secs(1)], 3).await;
    let outcomes = broker.handle().publish(&[envelope("nobody.listens", 1), envelope("ticket.created", 2)]).await;
    assert!(matches!(&outcomes[0], Err(BusError::Unroutable(key)) if key == "nobody.listens"), "{outcomes:?}");
    assert!(outcomes[1].is_ok(), "a returned message does not spoil the next one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_backs_off_is_parked_and_can_be_replayed() {
    let broker = Broker::new(vec![Duration::from_millis(200), Duration::from_millis(400)], 3).await;
    let bus = broker.handle();
    let poison = envelope("ticket.created", 7);
    assert!(bus.publish(std::slice::from_ref(&poison)).await[0].is_ok());
    let mut subscription = bus.subscribe(WorkerRole::Dispatch, 10).await.unwrap();
    let mut seen = Vec::new();
    let mut last = std::time::Instant::now();
    for _ in 0..3 {
        let delivery = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.unwrap().unwrap();
        seen.push((delivery.attempt, last.elapsed()));
        last = std::time::Instant::now();
        assert_eq!(delivery.envelope, poison, "the routing key and id survive the retries");
        delivery.retry("cannot be processed").await.unwrap();
    }
    assert_eq!(seen.iter().map(|(attempt, _)| *attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(seen[1].1 >= Duration::from_millis(200), "first back-off: {:?}", seen[1].1);
    assert!(seen[2].1 >= Duration::from_millis(400), "second back-off: {:?}", seen[2].1);

    let parked = broker.bus.list_parked(WorkerRole::Dispatch, 10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].message_id.as_str(), parked[0].routing_key.as_str()),
        (poison.message_id.as_str(), "ticket.created")
    );
    assert_eq!(parked[0].reason, "cannot be processed");
    assert_eq!(broker.bus.list_parked(WorkerRole::Dispatch, 10).await.unwrap().len(), 1, "listing leaves it in place");

    assert_eq!(broker.bus.replay_parked(WorkerRole::Dispatch).await.unwrap(), 1);
    let replayed = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.unwrap().unwrap();
    assert_eq!((replayed.envelope.clone(), replayed.attempt), (poison, 1));
    replayed.ack().await.unwrap();
    assert!(broker.bus.list_parked(WorkerRole::Dispatch, 10).await.unwrap().is_empty());
}
