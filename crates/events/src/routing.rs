//! Routing keys: the one place that names them, for the publishers and for the queues'
//! bindings alike.
//!
//! Ticket events travel as `ticket.<event type>`, dispatches as
//! `ticket.dispatched.<department>` so each department's consumers can bind to their
//! own; alerts as `alert.<kind>`, a new group incident as `incident.opened`.

use propdesk_domain::{Department, EventType};
use propdesk_proto::v1 as pb;

/// The routing key of a ticket event.
pub fn ticket_event(event_type: EventType, department: Option<Department>) -> String {
    match (event_type, department) {
        (EventType::Dispatched, Some(department)) => format!("ticket.dispatched.{department}"),
        (event_type, _) => format!("ticket.{event_type}"),
    }
}

/// The routing key of an alert.
pub fn alert(kind: pb::AlertKind) -> &'static str {
    match kind {
        pb::AlertKind::IncidentOpened => "incident.opened",
        pb::AlertKind::NoOneOnDuty => "alert.no_one_on_duty",
        pb::AlertKind::RepeatFault => "alert.repeat_fault",
        pb::AlertKind::Unspecified => "alert.unspecified",
    }
}

/// The events dispatch routes: a new, transferred or reopened ticket waits for it.
pub const DISPATCH_EVENTS: [EventType; 3] = [EventType::Created, EventType::Reopened, EventType::Transferred];

/// Binding patterns (topic syntax) of the dispatch worker's queue.
pub fn dispatch_bindings() -> Vec<String> {
    DISPATCH_EVENTS.iter().map(|event_type| ticket_event(*event_type, None)).collect()
}

/// Binding patterns of the notifier's queue: it hears every ticket event, incident and
/// alert.
pub fn notifier_bindings() -> Vec<String> {
    ["ticket.#", "incident.#", "alert.#"].map(str::to_owned).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_event_and_a_dispatch_its_department() {
        assert_eq!(ticket_event(EventType::Created, None), "ticket.created");
        assert_eq!(ticket_event(EventType::Dispatched, Some(Department::Cleaning)), "ticket.dispatched.cleaning");
        assert_eq!(ticket_event(EventType::Dispatched, None), "ticket.dispatched");
        assert_eq!(ticket_event(EventType::Resolved, Some(Department::Cleaning)), "ticket.resolved");
        assert_eq!(dispatch_bindings(), ["ticket.created", "ticket.reopened", "ticket.transferred"]);
        assert_eq!(alert(pb::AlertKind::IncidentOpened), "incident.opened");
        assert_eq!(alert(pb::AlertKind::NoOneOnDuty), "alert.no_one_on_duty");
    }
}
