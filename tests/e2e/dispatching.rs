//! The dispatch worker end to end: `propdesk intake` and `propdesk dispatch` processes,
//! a real database and the real RabbitMQ.

use std::time::Duration;

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use prost::Message as _;

use crate::helpers::{App, BINARY, authed};

crate::on_both_backends!(
    each_report_reaches_the_right_department_and_person_within_a_second,
    with_nobody_on_duty_the_ticket_waits_in_the_pool_and_the_supervisor_is_alerted,
    three_units_without_water_become_one_incident_and_resolve_together,
    a_second_intercom_fault_soon_after_a_repair_is_a_repeat,
    a_duplicate_message_has_one_effect,
    a_poison_message_is_parked_and_can_be_replayed,
    reports_dispatched_in_one_batch_are_shared_out_by_load,
);

async fn each_report_reaches_the_right_department_and_person_within_a_second(backend: Backend) {
    let mut app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    let electrician = app.world.electrician_id.clone();
    app.off_duty(&electrician).await;
    let guard = app.hire("Guard Wu", pb::StaffRole::Technician, pb::Department::Security, true).await;

    let common_area = |category: &str, text: &str| {
        let mut request = app.new_ticket(category, text);
        request.unit_id.clear();
        request.location = "building 2, stairwell B".into();
        request
    };
    let rubbish = common_area("rubbish", "rubbish bags piled in the stairwell");
    let stranger = common_area("stranger", "a stranger is trying door handles on floor 9");
    let throwing = common_area("building_fabric", "a bottle was thrown from a window above and hit the path");
    let mut fee = app.new_ticket("fee_dispute", "charged twice for the October property fee");
    fee.kind = pb::TicketKind::Complaint as i32;
    let burst = app.new_ticket("plumbing", "2-1203 厨房爆管，水流不止");

    use pb::Department as D;
    let cases = [
        (burst, D::Engineering, app.world.plumber_id.clone()),
        (rubbish, D::Cleaning, app.world.cleaner_id.clone()),
        (stranger, D::Security, guard.clone()),
        (throwing, D::Security, guard.clone()),
        (fee, D::CustomerService, app.world.agent_id.clone()),
    ];
    for (request, department, assignee) in cases {
        let description = request.description.clone();
        let created = app.create(request).await;
        let (ticket, took) = app.wait_dispatched(&created.id).await;
        assert!(took < Duration::from_secs(1), "{description}: dispatched after {took:?}");
        assert_eq!(ticket.state, pb::TicketState::Dispatched as i32, "{description}");
        assert_eq!(ticket.department, department as i32, "{description}");
        assert_eq!(ticket.assignee_id, assignee, "{description}");
        let deadlines = ticket.deadlines.expect("deadlines");
        assert!(deadlines.acknowledge_by.is_some() && deadlines.resolve_by.is_some(), "{description}");
        if department == D::Engineering {
            assert_eq!(ticket.priority, pb::Priority::P1 as i32, "a burst pipe is an emergency");
            let on_site = deadlines.on_site_by.expect("on site").seconds - ticket.created_at.expect("created").seconds;
            assert_eq!(on_site, 15 * 60);
        }
        let history = app.history(&created.id).await;
        let dispatched: Vec<_> =
            history.iter().filter(|e| e.r#type == pb::TicketEventType::Dispatched as i32).collect();
        assert_eq!(dispatched.len(), 1, "{description}");
        assert_eq!(dispatched[0].actor_id, "system:dispatch");
    }
}

/// Six reports wait in the queue before dispatch starts, and it lingers long enough to
/// take them in one batch: the batch reads the cleaners' loads once and keeps them in step
/// with its own assignments, so two cleaners get three each, not all six to whoever was
/// least loaded when the batch began.
async fn reports_dispatched_in_one_batch_are_shared_out_by_load(backend: Backend) {
    let mut app = App::start(backend).await;
    let second = app.hire("Cleaner Li", pb::StaffRole::Technician, pb::Department::Cleaning, true).await;
    let mut created = Vec::new();
    for floor in 1..=6 {
        let mut request = app.new_ticket("rubbish", "rubbish bags piled in the stairwell");
        request.unit_id.clear();
        request.location = format!("building 2, stairwell, floor {floor}");
        created.push(app.create(request).await.id);
    }
    let _dispatch = app.start_dispatch_with(&[("PROPDESK__DISPATCH__LINGER_MS", "300".to_owned())]).await;
    let mut shares = std::collections::BTreeMap::new();
    for id in &created {
        let (ticket, _) = app.wait_dispatched(id).await;
        *shares.entry(ticket.assignee_id).or_insert(0) += 1;
    }
    let first = app.world.cleaner_id.clone();
    assert_eq!(shares, [(first, 3), (second, 3)].into_iter().collect(), "work shared out by load");
}

async fn with_nobody_on_duty_the_ticket_waits_in_the_pool_and_the_supervisor_is_alerted(backend: Backend) {
    let mut app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    let supervisor = app.hire("Security supervisor", pb::StaffRole::Supervisor, pb::Department::Security, true).await;
    app.hire("Guard on leave", pb::StaffRole::Technician, pb::Department::Security, false).await;
    let mut request = app.new_ticket("theft", "bicycle stolen from the basement");
    request.unit_id.clear();
    request.location = "basement bicycle room".into();
    let created = app.create(request).await;
    let (ticket, _) = app.wait_dispatched(&created.id).await;
    assert_eq!(
        (ticket.state, ticket.department),
        (pb::TicketState::Dispatched as i32, pb::Department::Security as i32)
    );
    assert_eq!(ticket.assignee_id, "", "waits unassigned in the security pool");

    // created, dispatched, and the alert, in the notifier's queue.
    let messages = app.bus_envelopes(3).await;
    let alert = messages.iter().find(|m| m.routing_key == "alert.no_one_on_duty").expect("alert published");
    let alert = pb::Alert::decode(&alert.payload[..]).expect("alert payload");
    assert_eq!(alert.kind, pb::AlertKind::NoOneOnDuty as i32);
    assert_eq!((alert.ticket_id.as_str(), alert.recipient_id.as_str()), (created.id.as_str(), supervisor.as_str()));
    assert!(messages.iter().any(|m| m.routing_key == "ticket.dispatched.security"), "department in the routing key");
}

async fn three_units_without_water_become_one_incident_and_resolve_together(backend: Backend) {
    let mut app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    let mut units = vec![app.world.unit_id.clone()];
    for room in ["1204", "1205", "1206"] {
        units.push(app.add_unit(room).await);
    }
    let mut first_routed = Vec::new();
    for unit in &units[..3] {
        let mut request = app.new_ticket("water_supply", "no water since this morning");
        request.unit_id = unit.clone();
        let created = app.create(request).await;
        first_routed.push(app.wait_dispatched(&created.id).await.0);
    }
    let reports: Vec<String> = first_routed.iter().map(|t| t.id.clone()).collect();
    let mut linked = Vec::new();
    for id in &reports {
        linked.push(app.wait_dispatched(id).await.0);
    }
    for (before, after) in first_routed[..2].iter().zip(&linked) {
        assert_eq!(after.dispatched_at, before.dispatched_at, "a routed report keeps its dispatch time when linked");
    }
    let incident_id = linked[2].incident_id.clone();
    assert!(!incident_id.is_empty(), "the third unit's report opens an incident");
    let assignee = linked[2].assignee_id.clone();
    assert!(!assignee.is_empty());
    for report in &linked {
        assert_eq!(report.incident_id, incident_id, "every report is linked");
        assert_eq!(report.assignee_id, assignee, "one assignee for the incident");
    }
    let token = app.world.agent.clone();
    let incident = app
        .tickets
        .get_ticket(authed(&token, pb::GetTicketRequest { ticket_id: incident_id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert!(incident.is_incident);
    assert!(incident.priority <= pb::Priority::P2 as i32, "an incident is at least P2");
    let listed =
        app.tickets.list_tickets(authed(&token, pb::ListTicketsRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.tickets.iter().filter(|t| t.is_incident).count(), 1, "exactly one incident");

    let mut fourth = app.new_ticket("water_supply", "we have no water either");
    fourth.unit_id = units[3].clone();
    let fourth = app.create(fourth).await;
    let (fourth, _) = app.wait_dispatched(&fourth.id).await;
    assert_eq!(
        (fourth.incident_id.as_str(), fourth.assignee_id.as_str()),
        (incident_id.as_str(), assignee.as_str()),
        "joins"
    );

    let supervisor = app.world.supervisor.clone();
    let resolved = app
        .tickets
        .resolve_ticket(authed(&supervisor, App::action(&incident, "main valve repaired")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.state, pb::TicketState::Resolved as i32);
    for id in reports.iter().chain([&fourth.id]) {
        let report = app
            .tickets
            .get_ticket(authed(&token, pb::GetTicketRequest { ticket_id: id.clone() }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.state, pb::TicketState::Resolved as i32, "report {id} resolved with the incident");
        assert!(report.deadlines.and_then(|d| d.callback_by).is_some(), "each report gets its own callback");
    }
}

async fn a_second_intercom_fault_soon_after_a_repair_is_a_repeat(backend: Backend) {
    let mut app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    let first = app.create(app.new_ticket("intercom", "门禁对讲坏了")).await;
    let (first, _) = app.wait_dispatched(&first.id).await;
    assert!(!first.repeat_fault);
    let assignee_token =
        crate::helpers::token(&first.assignee_id, propdesk_domain::Role::Technician, &[&app.world.property_id]);
    app.tickets.resolve_ticket(authed(&assignee_token, App::action(&first, "replaced the handset"))).await.unwrap();

    let second = app.create(app.new_ticket("intercom", "intercom broken again")).await;
    assert_eq!(second.priority, pb::Priority::P3 as i32);
    let (second, _) = app.wait_dispatched(&second.id).await;
    assert!(second.repeat_fault, "flagged as a repeat");
    assert_eq!(second.priority, pb::Priority::P2 as i32, "raised one level");
    let messages = app.bus_envelopes(6).await;
    let alert = messages.iter().find(|m| m.routing_key == "alert.repeat_fault").expect("repeat alert");
    let alert = pb::Alert::decode(&alert.payload[..]).unwrap();
    assert_eq!(
        (alert.ticket_id.as_str(), alert.recipient_id.as_str()),
        (second.id.as_str(), app.world.supervisor_id.as_str())
    );
}

async fn a_duplicate_message_has_one_effect(backend: Backend) {
    let mut app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    let created = app.create(app.new_ticket("plumbing", "dripping tap")).await;
    let (dispatched, _) = app.wait_dispatched(&created.id).await;
    let history = app.history(&created.id).await;
    let original = &history[0];
    // The same ticket.created message, delivered twice more.
    let duplicate = propdesk_bus::Envelope {
        message_id: original.event_id.clone(),
        routing_key: "ticket.created".into(),
        payload: original.encode_to_vec(),
        trace_parent: None,
    };
    let bus = propdesk_bus::Bus::Rabbit(app.bus.clone());
    let outcomes = bus.publish(&[duplicate.clone(), duplicate]).await;
    assert!(outcomes.iter().all(Result::is_ok));
    // A later ticket is dispatched after the duplicates were delivered.
    let later = app.create(app.new_ticket("plumbing", "another drip")).await;
    app.wait_dispatched(&later.id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = app.history(&created.id).await;
    assert_eq!(after.len(), history.len(), "no new history from the duplicates");
    let now = app
        .tickets
        .get_ticket(authed(&app.world.agent, pb::GetTicketRequest { ticket_id: created.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.version, dispatched.version);
}

async fn a_poison_message_is_parked_and_can_be_replayed(backend: Backend) {
    let app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    // An event about a ticket that does not exist fails on every attempt.
    let poison = pb::TicketEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        ticket_id: uuid::Uuid::now_v7().to_string(),
        r#type: pb::TicketEventType::Created as i32,
        ..Default::default()
    };
    let envelope = propdesk_bus::Envelope {
        message_id: poison.event_id.clone(),
        routing_key: "ticket.created".into(),
        payload: poison.encode_to_vec(),
        trace_parent: None,
    };
    let bus = propdesk_bus::Bus::Rabbit(app.bus.clone());
    assert!(bus.publish(&[envelope]).await[0].is_ok());
    let parked = wait_parked(&app, &poison.event_id).await;
    assert!(parked.contains("attempt 3"), "parked after the configured attempts: {parked}");

    let replay = parked_command(&app, &["parked", "replay", "--role", "dispatch"]);
    assert!(replay.contains("replayed 1 message"), "{replay}");
    // Back on the queue, it is tried again and, still failing, parked again.
    let again = wait_parked(&app, &poison.event_id).await;
    assert!(again.contains(&poison.event_id));
}

fn parked_command(app: &App, args: &[&str]) -> String {
    let output = std::process::Command::new(BINARY)
        .args(args)
        .envs(app.env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PROPDESK__LOG__FILTER", "warn")
        .output()
        .expect("run propdesk parked");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn wait_parked(app: &App, message_id: &str) -> String {
    for _ in 0..100 {
        let listed = parked_command(app, &["parked", "list", "--role", "dispatch"]);
        if listed.contains(message_id) {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("message {message_id} was never parked");
}
