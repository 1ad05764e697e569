use chrono::{TimeDelta, TimeZone};

use super::*;

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap() + TimeDelta::minutes(minute)
}

fn agent() -> By {
    By::staff("agent-1", Role::Agent)
}

fn report(kind: TicketKind, category: &str, title: &str, description: &str) -> Report {
    Report {
        id: "t-1".into(),
        property_id: "p-1".into(),
        unit: Some(UnitPlace { unit_id: "u-1".into(), building_id: "b-1".into(), label: "1-1203".into() }),
        location: String::new(),
        resident_id: None,
        reporter: Reporter { name: "住户".into(), phone: "13800000000".into() },
        kind,
        channel: Channel::Phone,
        category: CategoryCode::new(category),
        category_default: Priority::P3,
        requested_priority: None,
        title: title.into(),
        description: description.into(),
        request: RequestKey { request_id: "r-1".into(), fingerprint: "f".into() },
        promised_reply_at: None,
        answer_on_the_spot: None,
        answer_source: None,
        callback_wanted: false,
        referred_by: None,
    }
}

fn logged(description: &str) -> Ticket {
    let (ticket, _) =
        Ticket::log(report(TicketKind::Repair, "plumbing", "", description), &Policy::default(), agent(), at(0))
            .unwrap();
    ticket
}

fn route(department: Department, assignee: &str) -> Route {
    Route {
        department,
        assignee_id: Some(assignee.into()),
        repeat: None,
        incident_id: None,
        note: format!("routed to {department}"),
    }
}

fn dispatched(description: &str) -> Ticket {
    let mut ticket = logged(description);
    ticket.dispatch(route(Department::Engineering, "plumber"), By::System("dispatch"), at(1)).unwrap();
    ticket
}

#[test]
fn logging_decides_priority_clocks_and_title_from_the_report() {
    let policy = Policy::default();
    let (ticket, events) =
        Ticket::log(report(TicketKind::Repair, "plumbing", "", "厨房爆管\n水流不止"), &policy, agent(), at(0)).unwrap();
    assert_eq!(ticket.priority, Priority::P1, "an urgent word raises a P3 category");
    assert_eq!(ticket.title, "厨房爆管", "the description's first line");
    assert_eq!(ticket.state(), TicketState::New);
    assert_eq!(ticket.version, 1);
    assert_eq!(ticket.first_contact_agent_id, "agent-1");
    assert_eq!(ticket.deadlines, policy.deadlines(Priority::P1, TicketKind::Repair, "p-1", at(0)));
    assert_eq!(ticket.deadlines.on_site_by, Some(at(15)));
    assert_eq!((ticket.unit_id.as_deref(), ticket.building_id.as_deref()), (Some("u-1"), Some("b-1")));
    assert!(ticket.is_changed());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::Created);
    assert_eq!((events[0].from, events[0].to), (None, TicketState::New));
    assert_eq!(events[0].note, "priority p1 (urgent rule burst_pipe: \"爆管\")");
    assert_eq!(ticket.urgency_rule.as_deref(), Some("burst_pipe"));

    let (plain, events) =
        Ticket::log(report(TicketKind::Repair, "plumbing", "Tap", "drips"), &policy, agent(), at(0)).unwrap();
    assert_eq!((plain.priority, plain.title.as_str()), (Priority::P3, "Tap"));
    assert_eq!(events[0].note, "priority p3");
}

#[test]
fn an_enquiry_answered_at_the_desk_is_closed_at_once_unless_a_callback_is_wanted() {
    let policy = Policy::default();
    let mut enquiry = report(TicketKind::Enquiry, "fee_enquiry", "", "物业费多少");
    enquiry.answer_on_the_spot = Some("2.5 元/平方米".into());
    let (closed, events) = Ticket::log(enquiry.clone(), &policy, agent(), at(0)).unwrap();
    assert_eq!((closed.state(), closed.times.closed_at), (TicketState::Closed, Some(at(0))));
    assert_eq!(closed.deadlines.callback_by, None, "no callback owed");
    let kinds: Vec<_> = events.iter().map(|e| (e.event_type, e.cause)).collect();
    assert_eq!(
        kinds,
        [
            (EventType::Created, None),
            (EventType::Resolved, Some(Cause::AnsweredOnTheSpot)),
            (EventType::Closed, Some(Cause::AnsweredOnTheSpot))
        ]
    );

    enquiry.callback_wanted = true;
    let (ticket, events) = Ticket::log(enquiry, &policy, agent(), at(0)).unwrap();
    assert_eq!(ticket.state(), TicketState::Resolved);
    assert_eq!(ticket.department, Some(Department::CustomerService));
    assert_eq!(ticket.times.resolved_at, Some(at(0)));
    assert_eq!(ticket.deadlines.callback_by, Some(policy.sla.callback_by(at(0))));
    let kinds: Vec<_> = events.iter().map(|e| (e.event_type, e.cause)).collect();
    assert_eq!(kinds, [(EventType::Created, None), (EventType::Resolved, Some(Cause::AnsweredOnTheSpot))]);
    assert_eq!(events[1].note, "2.5 元/平方米");

    let mut repair = report(TicketKind::Repair, "plumbing", "", "漏水");
    repair.answer_on_the_spot = Some("ok".into());
    assert_eq!(
        Ticket::log(repair, &policy, agent(), at(0)).unwrap_err(),
        RuleViolation::OnlyEnquiriesAnsweredOnTheSpot
    );
}

#[test]
fn dispatch_routes_assigns_and_stamps_the_time() {
    let ticket = dispatched("tap drips");
    assert_eq!(ticket.state(), TicketState::Dispatched);
    assert_eq!(ticket.department, Some(Department::Engineering));
    assert_eq!(ticket.assignee_id.as_deref(), Some("plumber"));
    assert_eq!(ticket.times.dispatched_at, Some(at(1)));
    assert_eq!(ticket.times.updated_at, at(1));
    assert!(!ticket.repeat_fault);
    assert_eq!(ticket.incident, IncidentLink::None);

    let mut accepted = dispatched("tap drips");
    accepted.accept(agent(), String::new(), at(2)).unwrap();
    let refused = accepted.dispatch(route(Department::Cleaning, "x"), By::System("dispatch"), at(3));
    assert!(matches!(refused, Err(RuleViolation::Transition(_))), "{refused:?}");
    assert_eq!(accepted.department, Some(Department::Engineering), "a refused command changes nothing");
}

#[test]
fn a_repeat_fault_raises_the_priority_and_takes_the_new_clocks() {
    let mut ticket = logged("tap drips");
    let raised = Deadlines {
        acknowledge_by: Some(at(15)),
        on_site_by: Some(at(60)),
        resolve_by: Some(at(480)),
        ..Deadlines::default()
    };
    let mut repeat_route = route(Department::Engineering, "plumber");
    repeat_route.repeat = Some(Repeat { priority: Priority::P2, deadlines: raised });
    ticket.dispatch(repeat_route, By::System("dispatch"), at(1)).unwrap();
    assert!(ticket.repeat_fault);
    assert_eq!(ticket.priority, Priority::P2);
    assert_eq!(ticket.deadlines, raised);

    // Already at the raised level: flagged, clocks kept.
    let mut urgent = logged("厨房爆管");
    let before = urgent.deadlines;
    let mut same = route(Department::Engineering, "plumber");
    same.repeat = Some(Repeat { priority: Priority::P1, deadlines: raised });
    urgent.dispatch(same, By::System("dispatch"), at(1)).unwrap();
    assert!(urgent.repeat_fault);
    assert_eq!(urgent.deadlines, before);
}

#[test]
fn a_report_routed_into_an_incident_is_linked_to_it() {
    let mut ticket = logged("停水");
    let mut into_incident = route(Department::Engineering, "lead");
    into_incident.incident_id = Some("i-1".into());
    ticket.dispatch(into_incident, By::System("dispatch"), at(1)).unwrap();
    assert_eq!(ticket.incident, IncidentLink::LinkedTo("i-1".into()));
    assert_eq!(ticket.incident_id(), Some("i-1"));
    assert!(ticket.is_linked_report());
}

fn incident() -> Ticket {
    let new = NewIncident {
        id: "i-1".into(),
        property_id: "p-1".into(),
        building_id: "b-1".into(),
        location: "building 1".into(),
        channel: Channel::Phone,
        category: CategoryCode::new("water_supply"),
        department: Department::Engineering,
        priority: Priority::P2,
        assignee_id: Some("lead".into()),
        title: "Incident".into(),
        description: "3 reports".into(),
        first_contact_agent_id: "agent-1".into(),
        deadlines: Deadlines { resolve_by: Some(at(100)), ..Deadlines::default() },
    };
    let (incident, events) = Ticket::open_incident(new, 3, By::System("dispatch"), at(5));
    let kinds: Vec<_> = events.iter().map(|e| (e.event_type, e.from, e.to)).collect();
    assert_eq!(
        kinds,
        [
            (EventType::Created, None, TicketState::New),
            (EventType::Dispatched, Some(TicketState::New), TicketState::Dispatched),
            (EventType::ReviewOpened, Some(TicketState::Dispatched), TicketState::Dispatched)
        ]
    );
    assert_eq!(events[0].note, "incident of 3 units");
    incident
}

#[test]
fn an_incident_names_itself_and_is_dispatched_when_opened() {
    let incident = incident();
    assert!(incident.is_incident());
    assert_eq!(incident.incident_id(), Some("i-1"));
    assert!(!incident.is_linked_report());
    assert_eq!(incident.state(), TicketState::Dispatched);
    assert_eq!(incident.times.dispatched_at, Some(at(5)));
    assert_eq!(incident.request.request_id, "incident-i-1");
    assert_eq!(incident.deadlines.resolve_by, Some(at(100)));
}

#[test]
fn linking_dispatches_a_new_report_and_never_dispatches_a_routed_one_twice() {
    let incident = incident();
    let system = By::System("dispatch");

    let mut new = logged("停水");
    let events = new.link_to(&incident, system.clone(), at(6)).unwrap();
    assert_eq!((events[0].event_type, events[0].to), (EventType::Dispatched, TicketState::Dispatched));
    assert_eq!(new.assignee_id.as_deref(), Some("lead"));
    assert_eq!(new.department, Some(Department::Engineering));
    assert_eq!(new.times.dispatched_at, Some(at(6)));

    let mut routed = dispatched("停水");
    let events = routed.link_to(&incident, system.clone(), at(6)).unwrap();
    assert_eq!(events[0].event_type, EventType::LinkedToIncident);
    assert_eq!((events[0].from, events[0].to), (Some(TicketState::Dispatched), TicketState::Dispatched));
    assert_eq!(routed.assignee_id.as_deref(), Some("lead"), "handed to the incident's person");
    assert_eq!(routed.times.dispatched_at, Some(at(1)), "keeps when it was routed");
    assert_eq!(routed.incident, IncidentLink::LinkedTo("i-1".into()));

    let mut worked = dispatched("停水");
    worked.accept(By::staff("plumber", Role::Technician), String::new(), at(2)).unwrap();
    let events = worked.link_to(&incident, system.clone(), at(6)).unwrap();
    assert_eq!(events[0].event_type, EventType::LinkedToIncident);
    assert_eq!(worked.assignee_id.as_deref(), Some("plumber"), "whoever works on it keeps it");
    assert!(worked.is_changed());

    let mut other = incident.clone();
    assert_eq!(other.link_to(&incident, system, at(6)).unwrap_err(), RuleViolation::IncidentCannotBeLinked);
}

#[test]
fn the_field_moves_stamp_their_milestones() {
    let tech = By::staff("plumber", Role::Technician);
    let mut ticket = dispatched("tap");
    let accepted = ticket.accept(tech.clone(), "on my way".into(), at(2)).unwrap();
    assert_eq!(ticket.times.accepted_at, Some(at(2)));
    assert_eq!(accepted[0].note, "on my way");
    assert_eq!(accepted[0].by, tech);
    ticket.arrive(tech.clone(), String::new(), at(3)).unwrap();
    assert_eq!(ticket.times.on_site_at, Some(at(3)));
    assert_eq!(ticket.state(), TicketState::OnSite);
    let cancelled = ticket.cancel(tech, "duplicate".into(), at(4)).unwrap();
    assert_eq!((cancelled[0].event_type, ticket.state()), (EventType::Cancelled, TicketState::Cancelled));
}

#[test]
fn a_hold_pauses_the_clocks_for_exactly_its_length() {
    let tech = By::staff("plumber", Role::Technician);
    let mut ticket = dispatched("tap");
    let before = ticket.deadlines;
    ticket.hold(tech.clone(), "waiting for parts".into(), at(10)).unwrap();
    assert_eq!(ticket.times.on_hold_since, Some(at(10)));
    assert_eq!(ticket.lifecycle.held_from, Some(TicketState::Dispatched));
    ticket.resume(tech, String::new(), at(40)).unwrap();
    assert_eq!(ticket.times.on_hold_since, None);
    assert_eq!(ticket.state(), TicketState::Dispatched);
    assert_eq!(ticket.deadlines, before.shifted_by(TimeDelta::minutes(30)));
    assert_eq!(ticket.deadlines.resolve_by, before.resolve_by.map(|d| d + TimeDelta::minutes(30)));
}

#[test]
fn resolving_starts_the_callback_clock() {
    let sla = SlaPolicy::default();
    let mut ticket = dispatched("tap");
    let events = ticket.resolve(agent(), "fixed".into(), &sla, at(30)).unwrap();
    assert_eq!((events[0].event_type, events[0].cause), (EventType::Resolved, Some(Cause::Staff)));
    assert_eq!(ticket.times.resolved_at, Some(at(30)));
    assert_eq!(ticket.deadlines.callback_by, Some(at(30) + TimeDelta::hours(48)));
    let closed = ticket.close(agent(), "done".into(), at(40)).unwrap();
    assert_eq!((closed[0].event_type, closed[0].cause), (EventType::Closed, Some(Cause::Staff)));
    assert_eq!(ticket.times.closed_at, Some(at(40)));
}

#[test]
fn a_report_is_resolved_with_its_incident_unless_it_went_its_own_way() {
    let sla = SlaPolicy::default();
    let mut report = dispatched("停水");
    let events = report.resolve_with_incident("i-1", agent(), &sla, at(50)).unwrap();
    assert_eq!(events[0].cause, Some(Cause::IncidentResolved));
    assert_eq!(events[0].note, "resolved with incident i-1");
    assert_eq!(report.deadlines.callback_by, Some(sla.callback_by(at(50))));

    let mut held = dispatched("停水");
    held.hold(agent(), "parts".into(), at(2)).unwrap();
    let before = held.clone();
    assert_eq!(held.resolve_with_incident("i-1", agent(), &sla, at(50)), None);
    assert_eq!(held, before, "a report on hold keeps its course");
}

#[test]
fn a_satisfied_callback_closes_and_an_unsatisfied_one_reopens_with_new_clocks() {
    let policy = Policy::default();
    let mut satisfied = dispatched("tap");
    satisfied.resolve(agent(), String::new(), &policy.sla, at(30)).unwrap();
    let events = satisfied.record_callback(Satisfaction::Satisfied, "thanks".into(), agent(), &policy, at(60)).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.event_type, e.cause, e.to)).collect();
    assert_eq!(
        kinds,
        [
            (EventType::CallbackRecorded, None, TicketState::Resolved),
            (EventType::Closed, Some(Cause::CallbackSatisfied), TicketState::Closed)
        ]
    );
    assert_eq!(events[0].note, "satisfied: thanks");
    assert_eq!(satisfied.times.closed_at, Some(at(60)));
    let record = satisfied.callback.clone().unwrap();
    assert_eq!(
        (record.satisfaction, record.recorded_by.as_str(), record.recorded_at),
        (Satisfaction::Satisfied, "agent-1", at(60))
    );

    let mut unsatisfied = dispatched("tap");
    unsatisfied.accept(agent(), String::new(), at(2)).unwrap();
    unsatisfied.resolve(agent(), String::new(), &policy.sla, at(30)).unwrap();
    let events =
        unsatisfied.record_callback(Satisfaction::Unsatisfied, "still drips".into(), agent(), &policy, at(60)).unwrap();
    assert_eq!(
        (events[1].event_type, events[1].cause, events[1].to),
        (EventType::Reopened, Some(Cause::CallbackUnsatisfied), TicketState::Reopened)
    );
    assert_eq!(unsatisfied.clock_cycle, 1);
    assert_eq!(unsatisfied.deadlines, policy.deadlines(Priority::P3, TicketKind::Repair, "p-1", at(60)));
    assert_eq!(
        (unsatisfied.times.accepted_at, unsatisfied.times.resolved_at, unsatisfied.times.closed_at),
        (None, None, None)
    );
    assert_eq!(unsatisfied.times.dispatched_at, Some(at(1)), "the first dispatch is history");

    let mut open = dispatched("tap");
    assert!(open.record_callback(Satisfaction::Satisfied, String::new(), agent(), &policy, at(5)).is_err());
    assert_eq!(open.callback, None);
}

#[test]
fn a_reopen_by_hand_restarts_the_clocks_in_a_new_cycle() {
    let policy = Policy::default();
    let mut ticket = dispatched("tap");
    ticket.resolve(agent(), String::new(), &policy.sla, at(30)).unwrap();
    let events = ticket.reopen(agent(), "again".into(), &policy, at(90)).unwrap();
    assert_eq!((events[0].event_type, events[0].cause), (EventType::Reopened, Some(Cause::Staff)));
    assert_eq!(ticket.clock_cycle, 1);
    assert_eq!(
        ticket.deadlines.acknowledge_by,
        policy.deadlines(Priority::P3, TicketKind::Repair, "p-1", at(90)).acknowledge_by
    );
    assert_eq!(ticket.deadlines.callback_by, None);
    assert_eq!(ticket.times.resolved_at, None);
}

#[test]
fn a_transfer_goes_to_another_department_without_a_person() {
    let mut ticket = dispatched("tap");
    assert_eq!(
        ticket.transfer(Department::Engineering, agent(), "no".into(), at(2)).unwrap_err(),
        RuleViolation::SameDepartment(Department::Engineering)
    );
    let events = ticket.transfer(Department::Security, agent(), "theirs".into(), at(2)).unwrap();
    assert_eq!((events[0].event_type, ticket.state()), (EventType::Transferred, TicketState::Transferred));
    assert_eq!((ticket.department, ticket.assignee_id.as_deref()), (Some(Department::Security), None));
}

#[test]
fn escalation_never_lowers_the_level_and_a_reminder_changes_nothing() {
    let system = By::System("notifier");
    let mut ticket = dispatched("tap");
    let saved = Ticket::restore(ticket.facts().clone()).unwrap();
    assert!(!saved.is_changed(), "a restored ticket is unchanged");
    let ticket2 = saved.clone();
    let events = ticket2.remind(system.clone(), "ack reminder".into(), at(3));
    assert_eq!((events[0].event_type, events[0].cause), (EventType::Reminded, Some(Cause::DeadlineNear)));
    assert!(!ticket2.is_changed());

    let events = ticket.escalate(2, Cause::DeadlineMissed, system.clone(), "manager".into(), at(4));
    assert_eq!((events[0].event_type, events[0].cause), (EventType::Escalated, Some(Cause::DeadlineMissed)));
    assert_eq!(ticket.escalation_level, 2);
    for level in [1, 2] {
        let mut again = Ticket::restore(ticket.facts().clone()).unwrap();
        let events = again.escalate(level, Cause::DeadlineMissed, system.clone(), "again".into(), at(5));
        assert_eq!(events.len(), 1, "the step is recorded");
        assert_eq!(again.escalation_level, 2);
        assert!(!again.is_changed(), "level {level} leaves a level-2 ticket as it was");
    }
}

#[test]
fn notes_and_follow_ups_are_recorded_in_the_current_state() {
    let mut ticket = dispatched("tap");
    let note = ticket.add_note(agent(), "called back".into(), at(3));
    assert_eq!(
        (note[0].event_type, note[0].from, note[0].to),
        (EventType::NoteAdded, Some(TicketState::Dispatched), TicketState::Dispatched)
    );
    let done = ticket.record_follow_up(agent(), "letter sent".into(), at(4));
    assert_eq!(done[0].event_type, EventType::FollowUp);
    assert_eq!(ticket.times.updated_at, at(4));
}

#[test]
fn files_are_attached_up_to_the_limit_and_recorded_as_the_tickets() {
    use crate::attachment::{Attachment, FileName};
    let photo = |id: &str| Attachment {
        id: id.into(),
        ticket_id: String::new(),
        property_id: String::new(),
        event_id: None,
        file_name: FileName::parse("leak.jpg").unwrap(),
        content_type: "image/jpeg".into(),
        size_bytes: 2048,
        sha256: "ab".repeat(32),
        object_key: format!("attachments/{id}"),
        thumbnail: None,
        caption: "before the repair".into(),
        uploaded_by: "a1".into(),
        created_at: at(3),
    };
    let mut ticket = dispatched("tap");
    let events = ticket.attach(photo("f1"), 1, 2, agent(), at(3)).unwrap();
    assert_eq!(events[0].event_type, EventType::AttachmentAdded);
    assert_eq!(events[0].note, "attached leak.jpg (image/jpeg, 2048 bytes): before the repair");
    let attached = events[0].attachment.as_deref().unwrap();
    assert_eq!(
        (attached.ticket_id.as_str(), attached.property_id.as_str()),
        (ticket.id.as_str(), ticket.property_id.as_str())
    );
    assert!(ticket.is_changed(), "the version moves, so concurrent uploads are counted one after the other");
    assert_eq!(
        ticket.attach(photo("f2"), 2, 2, agent(), at(4)).unwrap_err(),
        RuleViolation::TooManyAttachments { max: 2 }
    );
}

#[test]
fn a_stored_ticket_that_breaks_an_invariant_is_refused() {
    let good = dispatched("tap").facts().clone();
    assert!(Ticket::restore(good.clone()).is_ok());
    let cases = [
        TicketFacts { lifecycle: Lifecycle { state: TicketState::OnHold, held_from: None }, ..good.clone() },
        TicketFacts { incident: IncidentLink::LinkedTo(good.id.clone()), ..good.clone() },
        TicketFacts { version: 0, ..good.clone() },
    ];
    for facts in cases {
        assert!(Ticket::restore(facts.clone()).is_err(), "{facts:?}");
    }
}

#[test]
fn the_actor_of_an_event_is_a_member_of_staff_with_a_role_or_a_worker() {
    let staff = By::staff("s-1", Role::Supervisor);
    assert_eq!((staff.id(), staff.role()), ("s-1", Some(Role::Supervisor)));
    let worker = By::System("system:dispatch");
    assert_eq!((worker.id(), worker.role()), ("system:dispatch", None));
}

#[test]
fn the_reporter_never_shows_in_debug_output() {
    let ticket = logged("tap");
    let shown = format!("{ticket:?}");
    assert!(!shown.contains("13800000000") && !shown.contains("住户"), "{shown}");
    assert!(shown.contains("reporter: Reporter { .. }"), "the field is there, its content hidden: {shown}");
}

#[test]
fn staff_escalate_by_hand_only_upwards_and_only_unfinished_tickets() {
    let mut t = logged("楼上漏水，物业处理不了");
    let events = t.escalate_by_hand(1, agent(), "needs the supervisor now".into(), at(1)).unwrap();
    assert_eq!(t.escalation_level, 1);
    assert_eq!((events[0].event_type, events[0].cause), (EventType::Escalated, Some(Cause::Staff)));
    assert_eq!(events[0].note, "needs the supervisor now");
    assert!(t.is_changed());
    assert_eq!(
        t.escalate_by_hand(1, agent(), "again".into(), at(2)),
        Err(RuleViolation::NotHigherLevel { current: 1 }),
        "the same level again is refused"
    );
    t.escalate_by_hand(2, agent(), "the manager".into(), at(3)).unwrap();
    assert_eq!(t.escalation_level, 2);
    assert_eq!(t.escalate_by_hand(1, agent(), "down".into(), at(4)), Err(RuleViolation::NotHigherLevel { current: 2 }));

    let mut cancelled = logged("撤销了");
    cancelled.cancel(agent(), "withdrawn".into(), at(1)).unwrap();
    assert_eq!(
        cancelled.escalate_by_hand(1, agent(), "late".into(), at(2)),
        Err(RuleViolation::Finished(TicketState::Cancelled))
    );
    assert_eq!(cancelled.escalation_level, 0);
}

fn supervisor() -> By {
    By::staff("supervisor-1", Role::Supervisor)
}

#[test]
fn a_wrong_category_is_corrected_rerouted_and_its_clocks_replanned_with_before_and_after() {
    let policy = Policy::default();
    let mut t = dispatched("客厅插座没电");
    assert_eq!((t.department, t.priority), (Some(Department::Engineering), Priority::P3));
    let correction = Correction { category: Some((CategoryCode::new("noise"), Priority::P3)), ..Correction::default() };
    let events = t.correct(correction, "it is the neighbour's drilling".into(), agent(), &policy, at(10)).unwrap();
    assert_eq!(events[0].event_type, EventType::Updated);
    assert_eq!(events[0].changes, [FieldChange::new("category", "plumbing", "noise")]);
    assert_eq!(events[0].note, "it is the neighbour's drilling");
    assert_eq!((events[0].from, events[0].to), (Some(TicketState::Dispatched), TicketState::Dispatched));
    assert_eq!(events[1].event_type, EventType::Transferred, "routed work goes to the new department");
    assert_eq!(
        (t.state(), t.department, t.assignee_id.as_deref()),
        (TicketState::Transferred, Some(Department::Security), None)
    );

    // A more urgent category raises the priority and re-plans the clocks from the report.
    let mut t = logged("门口有点问题");
    let before = t.deadlines;
    let correction = Correction { category: Some((CategoryCode::new("gas"), Priority::P1)), ..Correction::default() };
    let events = t.correct(correction, String::new(), agent(), &policy, at(10)).unwrap();
    assert_eq!(t.priority, Priority::P1);
    assert!(events[0].changes.contains(&FieldChange::new("priority", "p3", "p1")), "{:?}", events[0].changes);
    assert_eq!(t.deadlines, policy.deadlines(Priority::P1, TicketKind::Repair, "p-1", at(0)), "from the report");
    assert_ne!(t.deadlines, before);
    assert_eq!(events.len(), 1, "a new ticket is routed by dispatch, not transferred");
}

#[test]
fn corrections_keep_the_first_words_and_only_raise_by_themselves() {
    let policy = Policy::default();
    let mut t = logged("卫生间有点潮");
    let correction = Correction {
        description_addendum: Some("现在水管爆管了".into()),
        title: Some("卫生间爆管".into()),
        ..Correction::default()
    };
    let events = t.correct(correction, String::new(), agent(), &policy, at(5)).unwrap();
    assert!(t.description.starts_with("卫生间有点潮"), "the resident's first words stay");
    assert!(t.description.ends_with("现在水管爆管了"));
    assert_eq!(t.priority, Priority::P1, "urgent words in the addendum raise it");
    let fields: Vec<&str> = events[0].changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["title", "description_addendum", "priority"]);
    assert_eq!(events[0].note, "title, description_addendum, priority corrected");

    // Lowering is only what is asked for, and it is the caller's to authorize.
    let lower = Correction { priority: Some(Priority::P3), ..Correction::default() };
    assert!(lower.lowers_priority(t.priority));
    assert!(!Correction { priority: Some(Priority::P1), ..Correction::default() }.lowers_priority(Priority::P2));
    t.correct(lower, "contained: the valve is shut".into(), supervisor(), &policy, at(6)).unwrap();
    assert_eq!(t.priority, Priority::P3);

    // Nothing to change changes nothing; a common area needs a location; finished is finished.
    let version_before = t.clone();
    assert!(t.correct(Correction::default(), String::new(), agent(), &policy, at(7)).unwrap().is_empty());
    assert_eq!(t.facts(), version_before.facts());
    let no_place = Correction { unit: Some(None), location: Some(" ".into()), ..Correction::default() };
    assert_eq!(t.correct(no_place, String::new(), agent(), &policy, at(8)), Err(RuleViolation::LocationRequired));
    let mut cancelled = logged("撤销");
    cancelled.cancel(agent(), "withdrawn".into(), at(1)).unwrap();
    let any = Correction { title: Some("x".into()), ..Correction::default() };
    assert_eq!(
        cancelled.correct(any, String::new(), agent(), &policy, at(2)),
        Err(RuleViolation::Finished(TicketState::Cancelled))
    );
}

#[test]
fn a_hold_moves_where_the_clocks_count_from() {
    let policy = Policy::default();
    let mut t = dispatched("漏水");
    t.hold(agent(), "parts".into(), at(10)).unwrap();
    t.resume(agent(), "parts came".into(), at(40)).unwrap();
    assert_eq!(t.times.clocks_from, at(30));
    let raise = Correction { priority: Some(Priority::P2), ..Correction::default() };
    t.correct(raise, String::new(), agent(), &policy, at(41)).unwrap();
    assert_eq!(
        t.deadlines.acknowledge_by,
        policy.deadlines(Priority::P2, TicketKind::Repair, "p-1", at(30)).acknowledge_by
    );
}

fn incident_of(property: &str) -> Ticket {
    let new = NewIncident {
        id: "i-1".into(),
        property_id: property.into(),
        building_id: "b-1".into(),
        location: "building 1".into(),
        channel: Channel::Phone,
        category: CategoryCode::new("water_supply"),
        department: Department::Engineering,
        priority: Priority::P2,
        title: "No water in building 1".into(),
        description: "several units".into(),
        first_contact_agent_id: "agent-1".into(),
        assignee_id: Some("plumber".into()),
        deadlines: Deadlines::default(),
    };
    Ticket::open_incident(new, 3, By::System("dispatch"), at(0)).0
}

#[test]
fn a_report_the_grouping_missed_is_linked_by_hand_and_can_be_unlinked() {
    let incident = incident_of("p-1");
    let mut lobby = logged("大堂没水");
    let events = lobby.link_by_hand(&incident, supervisor(), "same outage".into(), at(5)).unwrap();
    assert_eq!(lobby.incident_id(), Some("i-1"));
    assert_eq!((lobby.state(), lobby.assignee_id.as_deref()), (TicketState::Dispatched, Some("plumber")));
    assert_eq!(events[0].note, "linked to incident i-1: same outage");
    assert_eq!(
        lobby.link_by_hand(&incident, supervisor(), String::new(), at(6)),
        Err(RuleViolation::AlreadyLinked("i-1".into()))
    );
    let events = lobby.unlink(supervisor(), "a different leak".into(), at(7)).unwrap();
    assert_eq!(lobby.incident_id(), None);
    assert_eq!(events[0].changes, [FieldChange::new("incident_id", "i-1", "")]);
    assert_eq!(lobby.unlink(supervisor(), String::new(), at(8)), Err(RuleViolation::NotLinked));

    let mut other = incident_of("p-1");
    assert_eq!(
        other.link_by_hand(&incident, supervisor(), String::new(), at(9)),
        Err(RuleViolation::IncidentCannotBeLinked)
    );
    let plain = logged("not an incident");
    assert_eq!(
        lobby.link_by_hand(&plain, supervisor(), String::new(), at(9)),
        Err(RuleViolation::NotAnIncident("t-1".into()))
    );
    assert_eq!(
        lobby.link_by_hand(&incident_of("p-2"), supervisor(), String::new(), at(9)),
        Err(RuleViolation::IncidentOfAnotherProperty)
    );
}

/// A report like `logged`, under its own id.
fn logged_as(id: &str, description: &str) -> Ticket {
    let report = Report { id: id.into(), ..report(TicketKind::Repair, "plumbing", "", description) };
    Ticket::log(report, &Policy::default(), agent(), at(0)).unwrap().0
}

#[test]
fn a_duplicate_is_closed_into_its_original_which_records_it() {
    let mut original = dispatched("厨房漏水");
    let mut duplicate = logged_as("t-2", "厨房漏水 again");
    let (events, original_events) =
        duplicate.mark_duplicate(&mut original, false, agent(), "same leak".into(), at(5)).unwrap();
    assert_eq!((duplicate.state(), duplicate.duplicate_of.as_deref()), (TicketState::Closed, Some("t-1")));
    assert_eq!(duplicate.times.closed_at, Some(at(5)));
    assert_eq!((events[0].event_type, events[0].cause), (EventType::Closed, Some(Cause::Duplicate)));
    assert_eq!(events[0].note, "duplicate of ticket t-1: same leak");
    assert_eq!(original_events[0].event_type, EventType::DuplicateAdded);
    assert_eq!(original_events[0].note, "ticket t-2 closed as a duplicate of this one: same leak");
    assert_eq!(original.state(), TicketState::Dispatched, "the original carries on");
    assert!(original.is_changed(), "the original's version moves, so a racing resolve is stale");

    // Reopened by hand, a duplicate is its own work again.
    let events = duplicate.reopen(agent(), "a different leak".into(), &Policy::default(), at(6)).unwrap();
    assert_eq!(duplicate.duplicate_of, None);
    assert_eq!(events[0].changes, [FieldChange::new("duplicate_of_id", "t-1", "")]);
}

#[test]
fn a_duplicate_is_refused_of_itself_elsewhere_a_duplicate_an_incident_or_finished_work() {
    let refused = |duplicate: &mut Ticket, original: &mut Ticket, has_duplicates: bool| {
        let before = (duplicate.clone(), original.clone());
        let err = duplicate.mark_duplicate(original, has_duplicates, agent(), String::new(), at(5)).unwrap_err();
        assert_eq!((duplicate.clone(), original.clone()), before, "nothing changed: {err}");
        err
    };
    let mut itself = logged("漏水");
    let mut same = itself.clone();
    assert_eq!(refused(&mut itself, &mut same, false), RuleViolation::DuplicateOfItself);

    let mut elsewhere = Ticket::log(
        Report { id: "t-9".into(), property_id: "p-2".into(), ..report(TicketKind::Repair, "plumbing", "", "漏水") },
        &Policy::default(),
        agent(),
        at(0),
    )
    .unwrap()
    .0;
    assert_eq!(refused(&mut logged_as("t-2", "漏水"), &mut elsewhere, false), RuleViolation::OriginalOfAnotherProperty);

    let mut first = logged("漏水");
    let mut second = logged_as("t-2", "漏水");
    second.mark_duplicate(&mut first, false, agent(), String::new(), at(3)).unwrap();
    assert_eq!(
        refused(&mut logged_as("t-3", "漏水"), &mut second, false),
        RuleViolation::OriginalIsDuplicate("t-1".into())
    );
    assert_eq!(refused(&mut logged_as("t-3", "漏水"), &mut first, true), RuleViolation::HasDuplicates);
    assert_eq!(
        refused(&mut logged_as("t-3", "没水"), &mut incident_of("p-1"), false),
        RuleViolation::IncidentNotDuplicate
    );

    let mut resolved = dispatched("漏水");
    resolved.resolve(agent(), String::new(), &SlaPolicy::default(), at(4)).unwrap();
    assert_eq!(
        refused(&mut logged_as("t-3", "漏水"), &mut resolved, false),
        RuleViolation::OriginalFinished(TicketState::Resolved)
    );
    let mut cancelled = logged_as("t-4", "漏水");
    cancelled.cancel(agent(), "wrong number".into(), at(4)).unwrap();
    let err = refused(&mut cancelled, &mut logged("漏水"), false);
    assert!(matches!(err, RuleViolation::Transition(TransitionError { from: TicketState::Cancelled, .. })), "{err}");
}

#[test]
fn a_duplicates_reporter_is_called_back_on_the_originals_work_once_per_resolution() {
    let policy = Policy::default();
    let mut original = dispatched("电梯停了");
    let mut duplicate = logged_as("t-2", "电梯停了");
    duplicate.mark_duplicate(&mut original, false, agent(), String::new(), at(2)).unwrap();
    let early = duplicate.clone().record_duplicate_callback(
        &mut original.clone(),
        Satisfaction::Satisfied,
        String::new(),
        agent(),
        &policy,
        at(3),
    );
    assert_eq!(early.unwrap_err(), RuleViolation::CallbackNotDue(TicketState::Dispatched));

    original.resolve(agent(), "repaired".into(), &policy.sla, at(10)).unwrap();
    let satisfied = original.clone();
    let (events, original_events) = duplicate
        .clone()
        .record_duplicate_callback(
            &mut satisfied.clone(),
            Satisfaction::Satisfied,
            "ok".into(),
            agent(),
            &policy,
            at(20),
        )
        .unwrap();
    assert_eq!((events[0].event_type, events[0].to), (EventType::CallbackRecorded, TicketState::Closed));
    assert!(original_events.is_empty(), "a satisfied verdict leaves the original alone");

    let (_, original_events) = duplicate
        .record_duplicate_callback(
            &mut original,
            Satisfaction::Unsatisfied,
            "still stuck".into(),
            agent(),
            &policy,
            at(20),
        )
        .unwrap();
    assert_eq!(duplicate.state(), TicketState::Closed, "the duplicate stays closed");
    assert_eq!(duplicate.callback.as_ref().map(|c| c.satisfaction), Some(Satisfaction::Unsatisfied));
    assert_eq!(
        (original_events[0].event_type, original_events[0].cause),
        (EventType::Reopened, Some(Cause::CallbackUnsatisfied))
    );
    assert_eq!(original.state(), TicketState::Reopened);
    assert_eq!(original.clock_cycle, 1, "the rework runs on new clocks");

    original.dispatch(route(Department::Engineering, "plumber"), By::System("dispatch"), at(21)).unwrap();
    original.resolve(agent(), "replaced the motor".into(), &policy.sla, at(30)).unwrap();
    let again = duplicate.clone().record_duplicate_callback(
        &mut original.clone(),
        Satisfaction::Satisfied,
        String::new(),
        agent(),
        &policy,
        at(40),
    );
    assert!(again.is_ok(), "a new resolution is owed a new callback");
    let twice = {
        let mut called = duplicate.clone();
        let mut resolved = original.clone();
        called
            .record_duplicate_callback(&mut resolved, Satisfaction::Satisfied, String::new(), agent(), &policy, at(40))
            .unwrap();
        called.record_duplicate_callback(
            &mut resolved,
            Satisfaction::Satisfied,
            String::new(),
            agent(),
            &policy,
            at(41),
        )
    };
    assert_eq!(twice.unwrap_err(), RuleViolation::CallbackNotDue(TicketState::Resolved));
}

#[test]
fn a_reply_is_recorded_as_sent_by_a_method_that_reaches_the_resident() {
    use crate::follow_up::ReplyMethod;
    use crate::replies::{ReplySent, StandardReplyRef};
    let mut ticket = dispatched("漏水");
    let sent = |method| ReplySent { method, standard: Some(StandardReplyRef { id: "r-1".into(), version: 2 }) };
    let events = ticket.reply(sent(ReplyMethod::Letter), "您好".into(), Some("Room 1203"), agent(), at(3)).unwrap();
    assert_eq!((events[0].event_type, events[0].note.as_str()), (EventType::Replied, "您好"));
    assert_eq!(events[0].reply, Some(sent(ReplyMethod::Letter)));
    assert!(ticket.is_changed());
    assert_eq!(
        ticket.reply(sent(ReplyMethod::Letter), "您好".into(), Some(" "), agent(), at(4)),
        Err(RuleViolation::NoContact(ReplyMethod::Letter))
    );
    let mut anonymous = Ticket::log(
        Report {
            reporter: Reporter::default(),
            unit: None,
            location: "大堂".into(),
            ..report(TicketKind::Complaint, "hygiene", "", "脏")
        },
        &Policy::default(),
        agent(),
        at(0),
    )
    .unwrap()
    .0;
    for method in [ReplyMethod::PhoneCall, ReplyMethod::AppMessage, ReplyMethod::CallOrVisit] {
        assert_eq!(
            anonymous.reply(sent(method), "您好".into(), None, agent(), at(5)),
            Err(RuleViolation::NoContact(method)),
            "{method}"
        );
    }
    anonymous.cancel(agent(), "test".into(), at(6)).unwrap();
    assert_eq!(
        anonymous.reply(sent(ReplyMethod::Letter), "x".into(), Some("Room 1"), agent(), at(7)),
        Err(RuleViolation::Finished(TicketState::Cancelled))
    );
}

#[test]
fn a_promised_reply_time_moves_only_with_a_reason_and_a_reply_keeps_it() {
    use crate::follow_up::ReplyMethod;
    use crate::replies::ReplySent;
    let policy = Policy::default();
    let mut ticket = dispatched("物业费争议");
    let promise = |at| Correction { promised_reply_at: Some(Some(at)), ..Correction::default() };
    ticket.correct(promise(at(60)), String::new(), agent(), &policy, at(2)).unwrap();
    assert_eq!(ticket.promised_reply_at, Some(at(60)), "a first promise needs no reason");
    let sent = ReplySent { method: ReplyMethod::PhoneCall, standard: None };
    ticket.reply(sent, "稍后答复".into(), None, agent(), at(3)).unwrap();
    assert_eq!(ticket.times.replied_at, Some(at(3)));
    let before = ticket.clone();
    assert_eq!(
        ticket.correct(promise(at(90)), " ".into(), agent(), &policy, at(4)),
        Err(RuleViolation::PromiseMovedWithoutReason)
    );
    assert_eq!(ticket, before, "nothing changed");
    let events = ticket.correct(promise(at(90)), "等待开发商回复".into(), agent(), &policy, at(5)).unwrap();
    assert_eq!(events[0].changes[0].field, "promised_reply_at");
    assert_eq!(ticket.times.replied_at, None, "a new promise is owed a new reply");
}

#[test]
fn a_case_keeps_its_parties_and_steps_and_waits_on_an_outside_party_apart() {
    use crate::case::{CaseError, CaseStep, Party, PartyKind};
    let party = |id: &str, kind| Party {
        id: id.into(),
        kind,
        side: if kind == PartyKind::Resident { "a".into() } else { String::new() },
        unit_id: None,
        resident_id: None,
        name: "阳光社区居委会".into(),
        contact: String::new(),
        reference: String::new(),
        chase_by: None,
        result: None,
    };
    let mut ticket = dispatched("楼上的狗每天夜里叫");
    let step = |at, ids: &[&str]| CaseStep {
        at,
        what: "约双方协调".into(),
        party_ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        outcome: String::new(),
    };
    assert_eq!(ticket.record_case_step(step(at(1), &[]), None, agent(), at(2)), Err(RuleViolation::NoCase));
    ticket.add_case_party(party("a", PartyKind::Resident), agent(), at(2));
    ticket.add_case_party(party("jwh", PartyKind::ResidentsCommittee), agent(), at(2));
    let events = ticket
        .record_case_step(step(at(1), &["a", "jwh"]), Some(("居委会上门".into(), Some(at(60)))), agent(), at(3))
        .unwrap();
    assert_eq!((events[0].event_type, events[0].step.as_ref().map(|s| s.at)), (EventType::CaseStep, Some(at(1))));
    let case = ticket.case.clone().unwrap();
    assert_eq!((case.next_step.as_str(), case.next_step_due), ("居委会上门", Some(at(60))));
    let field_of = |result: Result<Vec<Recorded>, RuleViolation>| match result {
        Err(RuleViolation::Case(err)) => err.field(),
        other => panic!("{other:?}"),
    };
    assert_eq!(field_of(ticket.record_case_step(step(at(9), &[]), None, agent(), at(4))), "step.at");
    assert_eq!(field_of(ticket.record_case_step(step(at(1), &["police"]), None, agent(), at(4))), "step.party_ids");
    assert_eq!(
        ticket.wait_on("a", "等待".into(), at(3 * 60), agent(), at(4)),
        Err(RuleViolation::Case(CaseError::NotOutside("a".into())))
    );
    assert_eq!(
        ticket.wait_on("jwh", "等待".into(), at(4), agent(), at(4)),
        Err(RuleViolation::Case(CaseError::ReviewInPast))
    );

    let resolve_by = ticket.deadlines.resolve_by.unwrap();
    let events = ticket.wait_on("jwh", "等待社区工作站调解".into(), at(2 * 24 * 60), agent(), at(10)).unwrap();
    assert_eq!((events[0].to, events[0].cause), (TicketState::OnHold, Some(Cause::WaitingOnOutsideParty)));
    assert!(ticket.case.as_ref().unwrap().waiting.is_some());
    ticket.resume(agent(), String::new(), at(70)).unwrap();
    let case = ticket.case.as_ref().unwrap();
    assert_eq!((case.waiting.clone(), case.waited_secs), (None, 3600), "an hour waited, counted apart");
    assert_eq!(ticket.deadlines.resolve_by, Some(resolve_by + TimeDelta::hours(1)), "the resolve clock paused");
}

#[test]
fn a_matter_referred_out_is_chased_and_its_result_recorded_once() {
    use crate::case::{CaseError, Party, PartyKind};
    let police = |chase_by| Party {
        id: "police".into(),
        kind: PartyKind::Police,
        side: String::new(),
        unit_id: None,
        resident_id: None,
        name: "城西派出所".into(),
        contact: "110".into(),
        reference: "JQ-2026-0113".into(),
        chase_by,
        result: None,
    };
    let mut ticket = dispatched("高空抛物，砸坏了车");
    assert_eq!(
        ticket.refer_out(police(Some(at(1))), agent(), at(2)),
        Err(RuleViolation::Case(CaseError::BadChaseDate)),
        "the chase is in the future"
    );
    let events = ticket.refer_out(police(Some(at(3 * 24 * 60))), agent(), at(2)).unwrap();
    assert_eq!(events[0].event_type, EventType::ReferredOut);
    assert!(events[0].note.contains("JQ-2026-0113"), "{}", events[0].note);
    let events = ticket.record_referral_result("police", "已立案调查".into(), agent(), at(5)).unwrap();
    assert_eq!((events[0].event_type, events[0].note.as_str()), (EventType::ReferralResult, "已立案调查"));
    assert_eq!(
        ticket.record_referral_result("police", "again".into(), agent(), at(6)),
        Err(RuleViolation::Case(CaseError::NotAwaitingResult("police".into())))
    );
}

#[test]
fn serious_complaints_open_a_review_the_manager_completes_with_a_listed_cause() {
    use crate::review::ReviewTrigger;
    let policy = Policy::default();
    let manager = By::staff("manager-1", Role::Manager);
    // A complaint pushed up to the manager.
    let mut complaint =
        Ticket::log(report(TicketKind::Complaint, "service_attitude", "", "保安态度恶劣"), &policy, agent(), at(0))
            .unwrap()
            .0;
    let events = complaint.escalate(2, Cause::DeadlineMissed, By::System("notifier"), "overdue".into(), at(5));
    assert_eq!(events.last().map(|e| e.event_type), Some(EventType::ReviewOpened));
    assert_eq!(complaint.review.as_ref().map(|r| r.trigger), Some(ReviewTrigger::ManagerEscalation));
    let causes = policy.review_causes.clone();
    assert_eq!(
        complaint.complete_review("bad_luck".into(), "培训".into(), &causes, manager.clone(), at(6)),
        Err(RuleViolation::UnknownCause { field: "cause", cause: "bad_luck".into() })
    );
    complaint
        .complete_review("staff_attitude".into(), "保安培训并道歉".into(), &causes, manager.clone(), at(6))
        .unwrap();
    let review = complaint.review.clone().unwrap();
    assert_eq!((review.cause.as_deref(), review.reviewer.as_deref()), (Some("staff_attitude"), Some("manager-1")));
    assert_eq!(
        complaint.complete_review("other".into(), "x".into(), &causes, manager, at(7)),
        Err(RuleViolation::NoOpenReview)
    );

    // A second unsatisfied callback.
    let mut repair = dispatched("漏水");
    for round in 0..2 {
        repair.dispatch(route(Department::Engineering, "plumber"), By::System("dispatch"), at(10 + round)).ok();
        repair.resolve(agent(), String::new(), &policy.sla, at(20 + round)).unwrap();
        let events =
            repair.record_callback(Satisfaction::Unsatisfied, "还漏".into(), agent(), &policy, at(30 + round)).unwrap();
        let opened = events.iter().any(|e| e.event_type == EventType::ReviewOpened);
        assert_eq!(opened, round == 1, "the second unsatisfied callback opens the review");
    }

    // Late work needs the cause of its delay.
    let mut late = dispatched("漏水");
    let after = late.deadlines.resolve_by.unwrap() + TimeDelta::minutes(1);
    assert_eq!(
        late.resolve_reporting_delay(agent(), String::new(), None, &policy, after),
        Err(RuleViolation::DelayCauseRequired)
    );
    late.resolve_reporting_delay(agent(), String::new(), Some("materials".into()), &policy, after).unwrap();
    assert_eq!(late.delay_cause.as_deref(), Some("materials"));
}

#[test]
fn erasing_a_residents_data_clears_the_reporter_and_their_case_entries_and_says_why() {
    use crate::case::{Party, PartyKind};
    let party = |id: &str, resident_id: Option<&str>, name: &str| Party {
        id: id.into(),
        kind: if resident_id.is_some() { PartyKind::Resident } else { PartyKind::Police },
        side: String::new(),
        unit_id: None,
        resident_id: resident_id.map(str::to_owned),
        name: name.into(),
        contact: "13900000000".into(),
        reference: String::new(),
        chase_by: None,
        result: None,
    };
    let mut ticket = dispatched("楼上漏水到我家");
    ticket.add_case_party(party("a", Some("r-1"), "王五"), agent(), at(2));
    ticket.add_case_party(party("b", Some("r-2"), "赵六"), agent(), at(2));
    ticket.add_case_party(party("c", None, "派出所"), agent(), at(2));
    let events = ticket.erase_personal_data("r-1", By::staff("m-1", Role::Manager), "本人书面申请删除".into(), at(5));
    assert_eq!(ticket.reporter, Reporter::default());
    let parties = &ticket.case.as_ref().expect("a case").parties;
    let kept: Vec<(&str, &str, &str)> =
        parties.iter().map(|p| (p.id.as_str(), p.name.as_str(), p.contact.as_str())).collect();
    assert_eq!(kept, [("a", "", ""), ("b", "赵六", "13900000000"), ("c", "派出所", "13900000000")]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::PersonalDataErased);
    assert_eq!(events[0].note, "本人书面申请删除");
    assert_eq!(ticket.times.updated_at, at(5));
    assert_eq!(ticket.lifecycle.state, TicketState::Dispatched, "the work goes on");
}
