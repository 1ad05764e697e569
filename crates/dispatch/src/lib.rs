//! The dispatch worker (`propdesk dispatch`): consumes `ticket.created`, `ticket.reopened`
//! and `ticket.transferred`, routes each ticket to a department, assigns an on-duty person,
//! flags repeat faults, groups many units' reports into one incident, and sets deadlines.
//!
//! Invariants: one message is one transaction: the ticket change, its history, the next
//! outbox messages and the inbox record commit together, and the delivery is acked only
//! after that commit; a redelivered message finds its inbox record and changes nothing.

pub mod dispatch;
pub mod worker;

pub use dispatch::{DispatchError, Outcome, dispatch};
pub use worker::{WorkerSettings, run};

/// The consumer name in the inbox table.
pub const CONSUMER: &str = "dispatch";
/// The actor recorded on the worker's history events.
pub const ACTOR: &str = "system:dispatch";
