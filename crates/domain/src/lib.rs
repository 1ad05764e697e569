//! propdesk's business rules, and nothing else.
//!
//! Invariant: this crate does no I/O, knows no database, broker or wire format, and never
//! reads the clock: every function takes "now" as an argument, so every rule is tested by
//! plain table-driven unit tests.

pub mod access;
pub mod aggregate;
pub mod assignment;
pub mod attachment;
pub mod calendar;
pub mod case;
pub mod category;
pub mod dispatching;
pub mod follow_up;
pub mod grouping;
pub mod ladder;
pub mod lifecycle;
pub mod policy;
pub mod privacy;
pub mod replies;
pub mod report;
pub mod review;
pub mod routing;
pub mod search;
pub mod sla;
pub mod ticket;
pub mod urgency;
pub mod validation;

pub use access::{Actor, Denied, Operation};
pub use aggregate::{By, Cause, Correction, FieldChange, Recorded, RuleViolation, Ticket, TicketFacts};
pub use assignment::{Candidate, choose_assignee};
pub use calendar::WorkingHours;
pub use category::{Category, CategoryCatalog};
pub use grouping::GroupingPolicy;
pub use ladder::{Alarm, ClockFacts, EscalationPolicy, Recipient, Rung};
pub use lifecycle::{Lifecycle, Move, TransitionError};
pub use policy::Policy;
pub use routing::RoutingRules;
pub use sla::{Deadlines, ServiceLevel, SlaPolicy};
pub use ticket::{Channel, Department, EventType, Priority, Role, Satisfaction, TicketKind, TicketState};
pub use urgency::{KeywordRule, Raised, UrgencyRules};
pub use validation::{FieldViolation, Violations};
