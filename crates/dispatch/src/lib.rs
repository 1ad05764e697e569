//! The dispatch worker (`propdesk dispatch`): consumes `ticket.created`, `ticket.reopened`
//! and `ticket.transferred`, routes each ticket to a department, assigns an on-duty person,
//! flags repeat faults, groups many units' reports into one incident, and sets deadlines.
//!
//! Invariants: a message's ticket change, its history, the next outbox messages and its
//! inbox record commit together (a busy worker commits a batch of messages at once), and
//! the delivery is acked only after that commit; a redelivered message finds its inbox
//! record and changes nothing.

pub mod dispatch;
pub mod worker;

pub use dispatch::{DispatchError, Outcome, dispatch_batch};
pub use worker::{WorkerSettings, run};

/// The consumer name in the inbox table.
pub const CONSUMER: &str = "dispatch";
/// The actor recorded on the worker's history events.
pub const ACTOR: &str = "system:dispatch";
