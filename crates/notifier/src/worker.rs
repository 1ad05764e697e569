//! The notifier's three loops: the bus consumer, the alarm scanner and the deliverer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use propdesk_bus::{Bus, ConsumeOptions, Delivery, WorkerRole};
use propdesk_proto::v1 as pb;
use prost::Message as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::consume::{Applied, Job, apply_batch};
use crate::{Notifier, NotifierError, alarms, deliver};

/// Runs until `shutdown`: the consumer stops taking messages and settles those in flight,
/// the scanner finishes the tickets it is firing, the deliverer its deliveries.
pub async fn run(bus: Bus, notifier: Arc<Notifier>, shutdown: CancellationToken) -> Result<(), NotifierError> {
    let scanner = tokio::spawn(scan(notifier.clone(), shutdown.clone()));
    let gauges = tokio::spawn(gauge_deadlines(notifier.clone(), shutdown.clone()));
    let deliverer = tokio::spawn(deliver::run(notifier.clone(), shutdown.clone()));
    let options = ConsumeOptions {
        prefetch: notifier.settings.prefetch,
        concurrency: notifier.settings.concurrency,
        batch: notifier.settings.batch,
        linger: std::time::Duration::from_millis(notifier.settings.linger_ms),
    };
    let consumed = propdesk_bus::consume(&bus, WorkerRole::Notifier, options, shutdown.clone(), |deliveries| {
        let notifier = notifier.clone();
        async move { handle(&notifier, deliveries).await }
    })
    .await;
    shutdown.cancel();
    let _ = scanner.await;
    let _ = gauges.await;
    let delivered = deliverer.await;
    consumed?;
    match delivered {
        Ok(result) => result,
        Err(join) => Err(NotifierError::Http(join.to_string())),
    }
}

/// Applies a batch in one transaction; if that fails, each message alone, so one bad
/// message is retried on its own and never holds the others back.
async fn handle(notifier: &Notifier, deliveries: Vec<Delivery>) {
    let mut jobs = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let payload = &delivery.envelope.payload[..];
        let job = if delivery.envelope.routing_key.starts_with("ticket.") {
            pb::TicketEvent::decode(payload).map(|event| Job::Event(Box::new(event)))
        } else {
            pb::Alert::decode(payload).map(Job::Alert)
        };
        match job {
            Ok(job) => jobs.push((delivery, job)),
            Err(_) => {
                metrics::counter!("propdesk_messages_total", "role" => "notifier", "outcome" => "parked").increment(1);
                let reason = format!("undecodable payload for {}", delivery.envelope.routing_key);
                let message_id = delivery.envelope.message_id.clone();
                if let Err(err) = delivery.park(&reason).await {
                    tracing::warn!(%message_id, error = %err, "could not park a message");
                }
            }
        }
    }
    if jobs.len() > 1 {
        let batch: Vec<(&Delivery, &Job)> = jobs.iter().map(|(d, job)| (d, job)).collect();
        match apply_batch(notifier, &batch).await {
            Ok(applied) => {
                notifier.applied(&applied);
                for (delivery, _) in jobs {
                    settle(delivery, Ok(())).await;
                }
                return;
            }
            Err(err) => {
                tracing::info!(size = jobs.len(), error = %err, "batch failed; applying its messages one at a time");
            }
        }
    }
    for (delivery, job) in jobs {
        let applied = apply_batch(notifier, &[(&delivery, &job)]).await;
        if let Ok(applied) = &applied {
            notifier.applied(applied);
        }
        settle(delivery, applied.map(|_| ())).await;
    }
}

/// Acks after the commit, or sends the message round the retry queues.
async fn settle(delivery: Delivery, applied: Result<(), NotifierError>) {
    let message_id = delivery.envelope.message_id.clone();
    let settled = match applied {
        Ok(()) => {
            metrics::counter!("propdesk_messages_total", "role" => "notifier", "outcome" => "acked").increment(1);
            delivery.ack().await
        }
        Err(err) => {
            metrics::counter!("propdesk_messages_total", "role" => "notifier", "outcome" => "retried").increment(1);
            let (routing_key, attempt) = (delivery.envelope.routing_key.clone(), delivery.attempt);
            let log = async {
                tracing::warn!(%message_id, %routing_key, attempt, error = %err, "notifier failed; will retry");
            };
            delivery.traced(WorkerRole::Notifier, log).await;
            delivery.retry(&err.to_string()).await
        }
    };
    if let Err(err) = settled {
        tracing::warn!(%message_id, error = %err, "could not settle a delivery");
    }
}

impl Notifier {
    /// After a commit: wake the scanner for an alarm earlier than it planned.
    fn applied(&self, applied: &Applied) {
        if let Some(at) = applied.next_alarm_at {
            self.alarm_planned(at);
        }
    }

    /// An alarm now fires at `at`: wake the scanner if it planned to sleep past it.
    pub fn alarm_planned(&self, at: DateTime<Utc>) {
        if at.timestamp_micros() < self.scanner_wakes_at.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }
}

/// How often the deadline gauges are read (two counts on the alarms' index).
const GAUGE_PERIOD: Duration = Duration::from_secs(5);

/// Keeps `propdesk_deadlines_pending` (alarms set) and `propdesk_deadlines_due` (due and
/// not fired yet: should stay near zero) up to date.
async fn gauge_deadlines(notifier: Arc<Notifier>, shutdown: CancellationToken) {
    loop {
        if let Ok(pending) = notifier.store.pending_alarms().await {
            metrics::gauge!("propdesk_deadlines_pending").set(pending as f64);
        }
        if let Ok(due) = notifier.store.due_alarms(propdesk_store::now()).await {
            metrics::gauge!("propdesk_deadlines_due").set(due as f64);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(GAUGE_PERIOD) => {}
        }
    }
}

/// Fires due alarms; sleeps until the earliest pending one (or a wake-up).
async fn scan(notifier: Arc<Notifier>, shutdown: CancellationToken) {
    let cap = notifier.settings.max_sleep();
    let batch = notifier.settings.scan_batch.max(1);
    let limit = notifier.settings.fire_concurrency.max(1);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let due = match notifier.store.tickets_with_due_alarms(propdesk_store::now(), batch).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "could not scan for due alarms");
                Vec::new()
            }
        };
        let full = due.len() as u64 == batch;
        let mut busy = false;
        let mut firing = JoinSet::new();
        for ticket_id in due {
            while firing.len() >= limit {
                busy |= joined(firing.join_next().await);
            }
            let notifier = notifier.clone();
            // Each firing is work of its own: a new trace, which its notifications carry.
            let span = tracing::info_span!("alarms", %ticket_id, trace_id = tracing::field::Empty);
            let trace = propdesk_trace::enter(&span, None);
            span.record("trace_id", trace.trace_id_hex());
            let fire = async move {
                let fired = alarms::fire_due(&notifier, &ticket_id, propdesk_store::now()).await;
                if let Err(err) = &fired {
                    tracing::warn!(%ticket_id, error = %err, "could not fire alarms; will retry");
                }
                fired.map(|f| f.busy).unwrap_or(true)
            };
            firing.spawn(trace.scope(fire).instrument(span));
        }
        while let Some(result) = firing.join_next().await {
            busy |= joined(Some(result));
        }
        if full {
            continue;
        }
        // On a database error, sleep the cap and look again.
        let next = notifier.store.next_alarm_at().await.ok().flatten();
        let mut wait = deliver::until(next, propdesk_store::now(), cap);
        if busy {
            // Another replica holds some of them, or firing failed: look again soon.
            wait = wait.min(Duration::from_millis(50));
        }
        let wakes_at = propdesk_store::now() + chrono::TimeDelta::from_std(wait).unwrap_or_default();
        notifier.scanner_wakes_at.store(wakes_at.timestamp_micros(), Ordering::Release);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = notifier.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn joined(result: Option<Result<bool, tokio::task::JoinError>>) -> bool {
    matches!(result, Some(Ok(true)) | Some(Err(_)))
}
