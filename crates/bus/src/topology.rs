//! Names and bindings of the bus, shared by the RabbitMQ and in-process implementations.
//!
//! One durable topic exchange carries every event. Each worker role has a durable quorum
//! queue bound by routing key, retry queues whose TTL sends a message back after a delay,
//! and a parking queue for messages that keep failing.

use std::fmt;
use std::time::Duration;

/// A consumer role: one queue (shared by all replicas of the role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerRole {
    Dispatch,
    Notifier,
}

impl WorkerRole {
    pub const ALL: [WorkerRole; 2] = [WorkerRole::Dispatch, WorkerRole::Notifier];

    pub fn name(self) -> &'static str {
        match self {
            WorkerRole::Dispatch => "dispatch",
            WorkerRole::Notifier => "notifier",
        }
    }

    /// Routing-key patterns (topic syntax) this role's queue is bound with.
    pub fn bindings(self) -> Vec<String> {
        match self {
            WorkerRole::Dispatch => propdesk_events::routing::dispatch_bindings(),
            WorkerRole::Notifier => propdesk_events::routing::notifier_bindings(),
        }
    }
}

impl fmt::Display for WorkerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for WorkerRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkerRole::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown role `{s}` (dispatch, notifier)"))
    }
}

/// Retry and naming settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Prefix of every exchange and queue name (lets tests and tenants share a broker).
    pub prefix: String,
    /// Delay before each retry; the last one repeats.
    pub retry_delays: Vec<Duration>,
    /// Deliveries (first try included) before a failing message is parked.
    pub max_attempts: u32,
    /// Redeliveries without any ack (a worker crashing on the message) before RabbitMQ
    /// dead-letters it to the parking queue.
    pub delivery_limit: u32,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            prefix: "propdesk".to_owned(),
            retry_delays: vec![Duration::from_secs(1), Duration::from_secs(10), Duration::from_secs(60)],
            max_attempts: 5,
            delivery_limit: 20,
        }
    }
}

impl Topology {
    pub fn exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    pub fn queue(&self, role: WorkerRole) -> String {
        format!("{}.{role}", self.prefix)
    }

    /// Where a failed message waits out its back-off (a quorum queue, like the others:
    /// the classic `.retry.N` queues of earlier versions lived on one node, and their
    /// node's loss stopped every worker from declaring its topology).
    pub fn retry_queue(&self, role: WorkerRole, step: usize) -> String {
        format!("{}.{role}.backoff.{step}", self.prefix)
    }

    pub fn parked_queue(&self, role: WorkerRole) -> String {
        format!("{}.{role}.parked", self.prefix)
    }

    /// The retry step for a message that failed on `attempt` (1-based).
    pub fn retry_step(&self, attempt: u32) -> usize {
        (attempt.max(1) as usize - 1).min(self.retry_delays.len().saturating_sub(1))
    }
}

/// Topic matching: `*` matches one word, `#` zero or more.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    fn matches(pattern: &[&str], key: &[&str]) -> bool {
        match (pattern.first(), key.first()) {
            (None, None) => true,
            (Some(&"#"), _) => matches(&pattern[1..], key) || (!key.is_empty() && matches(pattern, &key[1..])),
            (Some(&"*"), Some(_)) => matches(&pattern[1..], &key[1..]),
            (Some(p), Some(k)) if p == k => matches(&pattern[1..], &key[1..]),
            _ => false,
        }
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = routing_key.split('.').collect();
    matches(&pattern, &key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns() {
        let cases = [
            ("ticket.created", "ticket.created", true),
            ("ticket.created", "ticket.reopened", false),
            ("ticket.#", "ticket.dispatched.engineering", true),
            ("ticket.#", "ticket", true),
            ("ticket.*", "ticket.dispatched.engineering", false),
            ("ticket.dispatched.*", "ticket.dispatched.cleaning", true),
            ("alert.#", "ticket.created", false),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(topic_matches(pattern, key), expected, "{pattern} vs {key}");
        }
    }

    #[test]
    fn retries_back_off_then_repeat_the_last_delay() {
        let topology = Topology::default();
        let steps: Vec<usize> = (1..=5).map(|attempt| topology.retry_step(attempt)).collect();
        assert_eq!(steps, [0, 1, 2, 2, 2]);
        assert_eq!(topology.retry_queue(WorkerRole::Dispatch, 1), "propdesk.dispatch.backoff.1");
    }
}
