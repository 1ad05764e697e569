use chrono::{TimeDelta, TimeZone};

use super::*;
use crate::aggregate::{CategoryCode, IncidentLink, Report, Reporter, RequestKey, UnitPlace};
use crate::ticket::{Channel, Priority, Role};
use crate::{By, Ticket};

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap() + TimeDelta::minutes(minute)
}

/// A new report logged at minute 0: in unit `unit` of building b-1 when given, else in a
/// common area.
fn report(id: &str, category: &str, text: &str, unit: Option<&str>) -> Ticket {
    let policy = Policy::default();
    let default = policy.categories.get(category).map_or(Priority::P3, |c| c.default_priority);
    let report = Report {
        id: id.into(),
        property_id: "p-1".into(),
        unit: unit.map(|u| UnitPlace { unit_id: u.into(), building_id: "b-1".into(), label: format!("1-{u}") }),
        location: if unit.is_none() { "lobby".into() } else { String::new() },
        resident_id: None,
        reporter: Reporter::default(),
        kind: TicketKind::Repair,
        channel: Channel::Phone,
        category: CategoryCode::new(category),
        category_default: default,
        requested_priority: None,
        title: String::new(),
        description: text.into(),
        request: RequestKey { request_id: id.into(), fingerprint: String::new() },
        promised_reply_at: None,
        answer_on_the_spot: None,
        answer_source: None,
        callback_wanted: false,
        referred_by: None,
    };
    Ticket::log(report, &policy, By::staff("agent-1", Role::Agent), at(0)).unwrap().0
}

fn candidate(id: &str, open: u64) -> Candidate {
    Candidate { staff_id: id.into(), open_tickets: open, last_assigned_at: None }
}

/// An open incident of building b-1 worked by `assignee`.
fn open_incident(assignee: &str) -> TicketFacts {
    let mut incident = report("i-1", "water_supply", "incident", None).facts().clone();
    incident.incident = IncidentLink::IsIncident;
    incident.assignee_id = Some(assignee.into());
    incident
}

fn alone<'a>(candidates: &'a [Candidate]) -> Surroundings<'a> {
    Surroundings { candidates, last_resolution: None, open_incident: None, recent_reports: &[] }
}

#[test]
fn every_routing_rule_picks_its_department() {
    let policy = Policy::default();
    // (category, text, in a unit, department)
    let cases = [
        ("plumbing", "burst pipe in the kitchen", true, Department::Engineering),
        ("rubbish", "rubbish piled in the stairwell", false, Department::Cleaning),
        ("rubbish", "neighbour keeps rubbish in the flat", true, Department::CustomerService),
        ("clutter", "boxes in the flat's shared hall", true, Department::CustomerService),
        ("building_fabric", "glass thrown from a window above", false, Department::Security),
        ("plumbing", "陌生人 in the pump room", false, Department::Security),
        ("pets", "dog poop at the entrance", false, Department::Cleaning),
        ("pets", "dog barks all night", true, Department::CustomerService),
        ("no_such_category", "anything", false, Department::CustomerService),
    ];
    for (category, text, in_unit, expected) in cases {
        let ticket = report("t-1", category, text, in_unit.then_some("u-1"));
        assert_eq!(department_for(&ticket, &policy), Some(expected), "{category}: {text}");
    }
}

#[test]
fn only_tickets_waiting_for_routing_are_routed_and_a_transfer_keeps_its_department() {
    let policy = Policy::default();
    let system = By::System("dispatch");
    let mut ticket = report("t-1", "plumbing", "tap drips", Some("u-1"));
    let route = Route {
        department: Department::Engineering,
        assignee_id: None,
        repeat: None,
        incident_id: None,
        note: String::new(),
    };
    ticket.dispatch(route, system.clone(), at(1)).unwrap();
    assert_eq!(department_for(&ticket, &policy), None, "already dispatched");
    ticket.transfer(Department::Security, system.clone(), "theirs".into(), at(2)).unwrap();
    assert_eq!(department_for(&ticket, &policy), Some(Department::Security), "the transfer's department");
    ticket.cancel(system, "dup".into(), at(3)).unwrap();
    assert_eq!(department_for(&ticket, &policy), None, "cancelled");
}

#[test]
fn the_least_loaded_person_on_duty_is_assigned() {
    let policy = Policy::default();
    let ticket = report("t-1", "plumbing", "tap drips", Some("u-1"));
    let people = [candidate("busy", 3), candidate("free", 0)];
    let decision = decide(&ticket, Department::Engineering, &alone(&people), &policy, "i-new", at(1));
    assert_eq!(decision.route.assignee_id.as_deref(), Some("free"));
    assert_eq!(decision.route.note, "routed to engineering; assigned to free");
    assert!(decision.alerts.is_empty());
    assert!(decision.open_incident.is_none());
    assert_eq!((decision.route.repeat, decision.route.incident_id), (None, None));
}

#[test]
fn with_nobody_on_duty_the_ticket_waits_in_the_pool_and_the_supervisor_is_alerted() {
    let policy = Policy::default();
    let ticket = report("t-1", "rubbish", "rubbish in the stairwell", None);
    let decision = decide(&ticket, Department::Cleaning, &alone(&[]), &policy, "i-new", at(1));
    assert_eq!(decision.route.assignee_id, None);
    assert_eq!(decision.route.note, "routed to cleaning; nobody on duty: waiting in the cleaning pool");
    assert_eq!(
        decision.alerts,
        [Alert::NoOneOnDuty { message: "no cleaning staff on duty; ticket waits in the pool".into() }]
    );
}

#[test]
fn a_fault_soon_after_a_repair_of_the_unit_is_a_repeat_one_level_more_urgent() {
    let policy = Policy::default();
    let ticket = report("t-1", "intercom", "intercom dead again", Some("u-1"));
    assert_eq!(ticket.priority, Priority::P3);
    let people = [candidate("tech", 0)];
    let around = Surroundings { last_resolution: Some(at(-60 * 24 * 2)), ..alone(&people) };
    let decision = decide(&ticket, Department::Engineering, &around, &policy, "i-new", at(1));
    let repeat = decision.route.repeat.unwrap();
    assert_eq!(repeat.priority, Priority::P2);
    // Raised clocks run from when it was reported, not from the dispatch.
    assert_eq!(repeat.deadlines, policy.deadlines(Priority::P2, TicketKind::Repair, "p-1", at(0)));
    assert!(
        decision
            .route
            .note
            .contains("repeat fault (same unit and category resolved 2026-11-29 02:00); priority p3 -> p2")
    );
    assert_eq!(decision.alerts, [Alert::RepeatFault { message: "repeat intercom fault in 1-u-1".into() }]);

    // Only a new report from a unit is a repeat.
    let lobby = report("t-2", "intercom", "lobby intercom dead", None);
    let decision = decide(&lobby, Department::Engineering, &around, &policy, "i-new", at(1));
    assert_eq!(decision.route.repeat, None);
}

#[test]
fn a_report_joins_the_open_incident_of_its_building_and_its_person() {
    let policy = Policy::default();
    let ticket = report("t-9", "water_supply", "停水", Some("u-9"));
    let incident = open_incident("lead");
    let people = [candidate("other", 0)];
    let around = Surroundings { open_incident: Some(&incident), ..alone(&people) };
    let decision = decide(&ticket, Department::Engineering, &around, &policy, "i-new", at(1));
    assert_eq!(decision.route.incident_id.as_deref(), Some("i-1"));
    assert_eq!(decision.route.assignee_id.as_deref(), Some("lead"), "the incident's person, not the least loaded");
    assert_eq!(decision.route.note, "routed to engineering; linked to incident i-1; assigned to lead");
    assert!(decision.open_incident.is_none());
}

#[test]
fn a_common_area_report_never_joins_an_incident_it_is_shown() {
    let policy = Policy::default();
    let lobby = report("t-9", "water_supply", "停水", None);
    let incident = open_incident("lead");
    let people = [candidate("desk", 0)];
    let around = Surroundings { open_incident: Some(&incident), ..alone(&people) };
    let decision = decide(&lobby, Department::Engineering, &around, &policy, "i-new", at(1));
    assert_eq!((decision.route.incident_id, decision.route.assignee_id.as_deref()), (None, Some("desk")));
}

#[test]
fn enough_units_of_one_building_open_an_incident_that_links_the_other_reports() {
    let policy = Policy::default();
    let reports = [
        report("t-1", "water_supply", "没水了", Some("u-1")),
        report("t-2", "water_supply", "停水", Some("u-2")),
        report("t-3", "water_supply", "no water", Some("u-3")),
    ];
    let people = [candidate("lead", 0)];
    let around = Surroundings { recent_reports: &reports, ..alone(&people) };
    let decision = decide(&reports[2], Department::Engineering, &around, &policy, "i-new", at(5));
    let opened = decision.open_incident.expect("an incident opens");
    assert_eq!(opened.units, 3);
    assert_eq!(opened.link, ["t-1", "t-2"]);
    let incident = &opened.incident;
    assert_eq!((incident.id.as_str(), incident.building_id.as_str()), ("i-new", "b-1"));
    assert_eq!(incident.priority, Priority::P2, "an incident is at least P2");
    assert_eq!(incident.assignee_id.as_deref(), Some("lead"));
    assert_eq!(incident.deadlines, policy.deadlines(Priority::P2, TicketKind::Repair, "p-1", at(5)));
    assert_eq!(incident.location, "building 1");
    assert!(incident.title.starts_with("Incident: ") && incident.title.ends_with(", 3 units"), "{}", incident.title);
    assert_eq!(decision.route.incident_id.as_deref(), Some("i-new"));
    assert_eq!(decision.route.assignee_id.as_deref(), Some("lead"));

    // Two units are not enough, and a report from the same unit twice counts once.
    let few = [reports[0].clone(), reports[1].clone(), report("t-4", "water_supply", "still none", Some("u-2"))];
    assert!(!forms_incident(&few, &policy));
    let around = Surroundings { recent_reports: &few, ..alone(&people) };
    assert!(decide(&few[2], Department::Engineering, &around, &policy, "i-new", at(5)).open_incident.is_none());
}

#[test]
fn an_incident_is_as_urgent_as_its_most_urgent_report() {
    let policy = Policy::default();
    let reports = [
        report("t-1", "plumbing", "tap drips", Some("u-1")),
        report("t-2", "plumbing", "爆管了", Some("u-2")),
        report("t-3", "plumbing", "tap drips too", Some("u-3")),
    ];
    let around = Surroundings { recent_reports: &reports, ..alone(&[]) };
    let decision = decide(&reports[0], Department::Engineering, &around, &policy, "i-new", at(5));
    assert_eq!(decision.open_incident.unwrap().incident.priority, Priority::P1);
    assert_eq!(decision.alerts.len(), 1, "nobody on duty for the incident either");
}

#[test]
fn groups_are_looked_for_only_for_new_reports_from_units() {
    let mut ticket = report("t-1", "plumbing", "tap", Some("u-1"));
    assert!(looks_for_groups(&ticket));
    assert!(!looks_for_groups(&report("t-2", "plumbing", "tap", None)));
    let route = Route {
        department: Department::Engineering,
        assignee_id: None,
        repeat: None,
        incident_id: None,
        note: String::new(),
    };
    ticket.dispatch(route, By::System("dispatch"), at(1)).unwrap();
    ticket.transfer(Department::Security, By::System("dispatch"), "x".into(), at(2)).unwrap();
    assert!(!looks_for_groups(&ticket), "a transferred report was grouped when it was new");
}
