//! Creating tickets and taking them through their whole life.

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::Code;

use crate::helpers::{App, assert_reason, assert_status, authed};

crate::on_both_backends!(
    the_same_request_id_creates_one_ticket,
    a_burst_pipe_is_p1_with_a_15_minute_on_site_deadline,
    list_walks_every_page_once_in_a_stable_order,
    a_ticket_walks_through_every_state_with_full_history,
    an_unsatisfied_callback_reopens_the_ticket,
    an_enquiry_answered_on_the_spot_is_created_resolved,
    every_forbidden_transition_is_refused_and_changes_nothing,
    a_stale_version_is_aborted_and_changes_nothing,
    a_hold_moves_the_deadlines_by_the_time_paused,
);

async fn the_same_request_id_creates_one_ticket(backend: Backend) {
    let mut app = App::start(backend).await;
    let request = app.new_ticket("plumbing", "kitchen tap drips");
    let first = app.create(request.clone()).await;
    let second = app.create(request.clone()).await;
    assert_eq!(first.id, second.id);
    assert_eq!(first.first_contact_agent_id, app.world.agent_id);
    let listed = app
        .tickets
        .list_tickets(authed(&app.world.agent, pb::ListTicketsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tickets.len(), 1);
    let history = app
        .tickets
        .get_ticket_history(authed(
            &app.world.agent,
            pb::GetTicketHistoryRequest { ticket_id: first.id.clone(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.events.len(), 1);
    let published = app.bus_messages(1).await;
    assert_eq!(
        published,
        [("ticket.created".to_owned(), history.events[0].event_id.clone())],
        "one ticket.created message"
    );

    // The same key for a different request is refused, not silently answered.
    let mut different = request;
    different.description = "something else entirely".into();
    let before = app.snapshot().await;
    let result = app.tickets.create_ticket(authed(&app.world.agent, different)).await;
    let info = assert_status(result, Code::InvalidArgument, Some("request_id"), "reused request id");
    assert_eq!(info.reason, "DUPLICATE_REQUEST_MISMATCH");
    assert_eq!(app.snapshot().await, before);
}

async fn a_burst_pipe_is_p1_with_a_15_minute_on_site_deadline(backend: Backend) {
    let mut app = App::start(backend).await;
    let mut request = app.new_ticket("plumbing", "2-1203 厨房爆管，水流不止");
    request.resident_id = app.world.resident_id.clone();
    request.reporter_name.clear();
    request.reporter_phone.clear();
    let ticket = app.create(request).await;
    assert_eq!(
        (ticket.reporter_name.as_str(), ticket.reporter_phone.as_str()),
        ("李四", "13900001111"),
        "taken from the resident"
    );
    assert_eq!(ticket.priority, pb::Priority::P1 as i32);
    assert_eq!(ticket.urgency_rule, "burst_pipe", "the rule that raised it is recorded");
    assert_eq!(ticket.state, pb::TicketState::New as i32);
    assert_eq!(ticket.unit_label, app.world.unit_label);
    let deadlines = ticket.deadlines.expect("deadlines");
    let created = ticket.created_at.expect("created_at").seconds;
    assert_eq!(deadlines.on_site_by.expect("on site").seconds - created, 15 * 60);
    assert_eq!(deadlines.acknowledge_by.expect("acknowledge").seconds - created, 5 * 60);
    let fetched = app
        .tickets
        .get_ticket(authed(&app.world.agent, pb::GetTicketRequest { ticket_id: ticket.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, ticket);
    // Words are read as words: a guard losing his temper (发火) is no fire.
    let temper = app.create(app.new_ticket("service_attitude", "保安对我发火")).await;
    assert_eq!((temper.priority, temper.urgency_rule.as_str()), (pb::Priority::P3 as i32, ""));
    let burst = app.create(app.new_ticket("plumbing", "厨房水管爆了")).await;
    assert_eq!((burst.priority, burst.urgency_rule.as_str()), (pb::Priority::P1 as i32, "burst_pipe"));
}

async fn list_walks_every_page_once_in_a_stable_order(backend: Backend) {
    let mut app = App::start(backend).await;
    let mut created = Vec::new();
    for i in 0..7 {
        let category = if i % 2 == 0 { "plumbing" } else { "rubbish" };
        let mut request = app.new_ticket(category, &format!("report {i}"));
        if i % 2 == 1 {
            request.unit_id.clear();
            request.location = "stairwell, floor 3".into();
        }
        created.push(app.create(request).await.id);
    }
    created.reverse();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListTicketsRequest { page_size: 3, page_token: page_token.clone(), ..Default::default() };
        let page = app.tickets.list_tickets(authed(&app.world.agent, request)).await.unwrap().into_inner();
        pages += 1;
        seen.extend(page.tickets.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    let p1 = pb::ListTicketsRequest { priority: pb::Priority::P3 as i32, ..Default::default() };
    let found = app.tickets.list_tickets(authed(&app.world.agent, p1)).await.unwrap().into_inner();
    assert_eq!(found.tickets.len(), 7, "plumbing and rubbish default to P3");
    let states = pb::ListTicketsRequest { states: vec![pb::TicketState::Dispatched as i32], ..Default::default() };
    let found = app.tickets.list_tickets(authed(&app.world.agent, states)).await.unwrap().into_inner();
    assert!(found.tickets.is_empty());
    let overdue = pb::ListTicketsRequest { overdue_only: true, ..Default::default() };
    let found = app.tickets.list_tickets(authed(&app.world.agent, overdue)).await.unwrap().into_inner();
    assert!(found.tickets.is_empty(), "nothing is late yet");
}

async fn a_ticket_walks_through_every_state_with_full_history(backend: Backend) {
    let mut app = App::start(backend).await;
    let w = &app.world;
    let (agent, plumber, supervisor, dispatcher) =
        (w.agent.clone(), w.plumber.clone(), w.supervisor.clone(), w.dispatcher.clone());
    let t = app.create(app.new_ticket("plumbing", "bathroom pipe leaking under the sink")).await;
    let t = app.assign_to_plumber(&t).await;
    assert_eq!((t.state, t.department), (pb::TicketState::Dispatched as i32, pb::Department::Engineering as i32));
    let t = app.tickets.accept_ticket(authed(&plumber, App::action(&t, ""))).await.unwrap().into_inner();
    assert!(t.accepted_at.is_some());
    let t = app.tickets.arrive_on_site(authed(&plumber, App::action(&t, "on site"))).await.unwrap().into_inner();
    let t =
        app.tickets.put_on_hold(authed(&plumber, App::action(&t, "waiting for a valve"))).await.unwrap().into_inner();
    assert_eq!(t.state, pb::TicketState::OnHold as i32);
    let t = app.tickets.resume_ticket(authed(&plumber, App::action(&t, "valve arrived"))).await.unwrap().into_inner();
    assert_eq!(t.state, pb::TicketState::OnSite as i32, "resumes where it was held");
    let t = app.tickets.add_note(authed(&plumber, App::action(&t, "replaced the valve"))).await.unwrap().into_inner();
    let t = app.tickets.resolve_ticket(authed(&plumber, App::action(&t, "fixed"))).await.unwrap().into_inner();
    let resolved_at = t.resolved_at.expect("resolved_at").seconds;
    let callback_by = t.deadlines.as_ref().and_then(|d| d.callback_by).expect("callback deadline").seconds;
    assert_eq!(callback_by - resolved_at, 48 * 3600);
    let callback = pb::RecordCallbackRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        satisfaction: pb::Satisfaction::Satisfied as i32,
        comment: "quick and tidy".into(),
    };
    let t = app.tickets.record_callback(authed(&agent, callback)).await.unwrap().into_inner();
    assert_eq!(t.state, pb::TicketState::Closed as i32);
    assert_eq!(t.callback.as_ref().map(|c| c.satisfaction), Some(pb::Satisfaction::Satisfied as i32));
    let t =
        app.tickets.reopen_ticket(authed(&supervisor, App::action(&t, "leaking again"))).await.unwrap().into_inner();
    assert_eq!(t.state, pb::TicketState::Reopened as i32);
    let t = app.assign_to_plumber(&t).await;
    let transfer = pb::TransferTicketRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        to_department: pb::Department::CustomerService as i32,
        note: "really a fee question".into(),
    };
    let t = app.tickets.transfer_ticket(authed(&dispatcher, transfer)).await.unwrap().into_inner();
    assert_eq!((t.state, t.assignee_id.as_str()), (pb::TicketState::Transferred as i32, ""));
    let t = app.tickets.cancel_ticket(authed(&agent, App::action(&t, "resident withdrew"))).await.unwrap().into_inner();
    assert_eq!(t.state, pb::TicketState::Cancelled as i32);

    let history = app
        .tickets
        .get_ticket_history(authed(
            &agent,
            pb::GetTicketHistoryRequest { ticket_id: t.id.clone(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    use pb::TicketEventType as E;
    let types: Vec<i32> = history.iter().map(|e| e.r#type).collect();
    let expected = [
        E::Created,
        E::Dispatched,
        E::Accepted,
        E::ArrivedOnSite,
        E::PutOnHold,
        E::Resumed,
        E::NoteAdded,
        E::Resolved,
        E::CallbackRecorded,
        E::Closed,
        E::Reopened,
        E::Dispatched,
        E::Transferred,
        E::Cancelled,
    ]
    .map(|e| e as i32);
    assert_eq!(types, expected);
    assert!(history.iter().all(|e| !e.actor_id.is_empty() && e.occurred_at.is_some()));
    assert_eq!(history[2].actor_id, app.world.plumber_id, "the actor is recorded");
    assert_eq!(history[4].note, "waiting for a valve");
    let versions: Vec<i64> = history.iter().map(|e| e.ticket_version).collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "versions only grow: {versions:?}");
    let published: Vec<String> = app.bus_messages(history.len()).await.into_iter().map(|(_, id)| id).collect();
    let event_ids: Vec<String> = history.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(published, event_ids, "every event reached the bus, once, in order");
}

async fn an_unsatisfied_callback_reopens_the_ticket(backend: Backend) {
    let mut app = App::start(backend).await;
    let plumber = app.world.plumber.clone();
    let t = app.create(app.new_ticket("plumbing", "toilet blocked")).await;
    let t = app.assign_to_plumber(&t).await;
    let t = app.tickets.resolve_ticket(authed(&plumber, App::action(&t, "cleared"))).await.unwrap().into_inner();
    let callback = pb::RecordCallbackRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        satisfaction: pb::Satisfaction::VeryUnsatisfied as i32,
        comment: "still blocked".into(),
    };
    let t = app.tickets.record_callback(authed(&app.world.agent, callback)).await.unwrap().into_inner();
    assert_eq!(t.state, pb::TicketState::Reopened as i32);
    assert!(t.resolved_at.is_none(), "the resolve clock restarts");
    let history = app
        .tickets
        .get_ticket_history(authed(
            &app.world.agent,
            pb::GetTicketHistoryRequest { ticket_id: t.id.clone(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let last: Vec<i32> = history.iter().rev().take(2).map(|e| e.r#type).collect();
    assert_eq!(last, [pb::TicketEventType::Reopened as i32, pb::TicketEventType::CallbackRecorded as i32]);
}

async fn an_enquiry_answered_on_the_spot_is_created_resolved(backend: Backend) {
    let mut app = App::start(backend).await;
    let mut request = app.new_ticket("general_enquiry", "When is the property fee due?");
    request.kind = pb::TicketKind::Enquiry as i32;
    request.channel = pb::Channel::WalkIn as i32;
    request.answer_on_the_spot = "By the 15th of each month, at the service centre or in the app.".into();
    request.callback_wanted = true;
    let t = app.create(request).await;
    assert_eq!(t.state, pb::TicketState::Resolved as i32);
    assert!(t.deadlines.and_then(|d| d.callback_by).is_some());
}

/// Brings a fresh ticket to `state` through the API.
async fn ticket_in(app: &mut App, state: pb::TicketState) -> pb::Ticket {
    use pb::TicketState as S;
    let plumber = app.world.plumber.clone();
    let agent = app.world.agent.clone();
    let t = app.create(app.new_ticket("plumbing", "test ticket")).await;
    if state == S::New {
        return t;
    }
    if state == S::Cancelled {
        return app.tickets.cancel_ticket(authed(&agent, App::action(&t, "withdrawn"))).await.unwrap().into_inner();
    }
    let t = app.assign_to_plumber(&t).await;
    match state {
        S::Dispatched => t,
        S::Resolved | S::Closed => {
            let t = app.tickets.resolve_ticket(authed(&plumber, App::action(&t, "done"))).await.unwrap().into_inner();
            if state == S::Resolved {
                return t;
            }
            app.tickets
                .close_ticket(authed(&agent, App::action(&t, "resident unreachable")))
                .await
                .unwrap()
                .into_inner()
        }
        _ => {
            let t = app.tickets.accept_ticket(authed(&plumber, App::action(&t, ""))).await.unwrap().into_inner();
            if state == S::Accepted {
                return t;
            }
            let t = app.tickets.arrive_on_site(authed(&plumber, App::action(&t, ""))).await.unwrap().into_inner();
            if state == S::OnSite {
                return t;
            }
            app.tickets.put_on_hold(authed(&plumber, App::action(&t, "parts"))).await.unwrap().into_inner()
        }
    }
}

async fn every_forbidden_transition_is_refused_and_changes_nothing(backend: Backend) {
    use pb::TicketState as S;
    let mut app = App::start(backend).await;
    let supervisor = app.world.supervisor.clone();
    // (state, move name) pairs the state machine refuses. The supervisor may do every move,
    // so only the state machine can say no.
    let cases = [
        (S::New, "accept"),
        (S::New, "arrive"),
        (S::New, "hold"),
        (S::New, "resume"),
        (S::New, "close"),
        (S::New, "reopen"),
        (S::New, "callback"),
        (S::New, "transfer"),
        (S::Dispatched, "arrive"),
        (S::Dispatched, "resume"),
        (S::Dispatched, "close"),
        (S::Dispatched, "reopen"),
        (S::Accepted, "accept"),
        (S::Accepted, "assign"),
        (S::OnSite, "arrive"),
        (S::OnSite, "close"),
        (S::OnHold, "resolve"),
        (S::OnHold, "hold"),
        (S::OnHold, "transfer"),
        (S::Resolved, "cancel"),
        (S::Resolved, "accept"),
        (S::Resolved, "resolve"),
        (S::Closed, "callback"),
        (S::Closed, "close"),
        (S::Closed, "cancel"),
        (S::Cancelled, "reopen"),
        (S::Cancelled, "assign"),
        (S::Cancelled, "cancel"),
        (S::Cancelled, "resolve"),
    ];
    for (state, mv) in cases {
        let t = ticket_in(&mut app, state).await;
        assert_eq!(t.state, state as i32, "setup for {state:?}");
        let before = app.snapshot().await;
        let result = match mv {
            "accept" => app.tickets.accept_ticket(authed(&supervisor, App::action(&t, "a note"))).await,
            "arrive" => app.tickets.arrive_on_site(authed(&supervisor, App::action(&t, "a note"))).await,
            "hold" => app.tickets.put_on_hold(authed(&supervisor, App::action(&t, "a note"))).await,
            "resume" => app.tickets.resume_ticket(authed(&supervisor, App::action(&t, "a note"))).await,
            "resolve" => app.tickets.resolve_ticket(authed(&supervisor, App::action(&t, "a note"))).await,
            "cancel" => app.tickets.cancel_ticket(authed(&supervisor, App::action(&t, "a note"))).await,
            "close" => app.tickets.close_ticket(authed(&supervisor, App::action(&t, "a note"))).await,
            "reopen" => app.tickets.reopen_ticket(authed(&supervisor, App::action(&t, "a note"))).await,
            "assign" => {
                let request = pb::AssignTicketRequest {
                    ticket_id: t.id.clone(),
                    expected_version: t.version,
                    department: pb::Department::Engineering as i32,
                    assignee_id: String::new(),
                    note: String::new(),
                };
                app.tickets.assign_ticket(authed(&supervisor, request)).await
            }
            "transfer" => {
                let request = pb::TransferTicketRequest {
                    ticket_id: t.id.clone(),
                    expected_version: t.version,
                    to_department: pb::Department::Security as i32,
                    note: "wrong team".into(),
                };
                app.tickets.transfer_ticket(authed(&supervisor, request)).await
            }
            "callback" => {
                let request = pb::RecordCallbackRequest {
                    ticket_id: t.id.clone(),
                    expected_version: t.version,
                    satisfaction: pb::Satisfaction::Satisfied as i32,
                    comment: String::new(),
                };
                app.tickets.record_callback(authed(&supervisor, request)).await
            }
            other => panic!("unknown move {other}"),
        };
        let case = format!("{mv} from {state:?}");
        let refused = assert_reason(result, Code::FailedPrecondition, pb::ErrorReason::TransitionNotAllowed, &case);
        assert_eq!(refused["from_state"], state.as_str_name(), "{case}");
        assert_eq!(app.snapshot().await, before, "{mv} from {state:?} wrote something");
    }
}

async fn a_stale_version_is_aborted_and_changes_nothing(backend: Backend) {
    let mut app = App::start(backend).await;
    let plumber = app.world.plumber.clone();
    let t = app.create(app.new_ticket("plumbing", "drip")).await;
    let dispatched = app.assign_to_plumber(&t).await;
    let before = app.snapshot().await;
    // `t` is the version before the assignment.
    let result = app.tickets.cancel_ticket(authed(&app.world.agent, App::action(&t, "withdrawn"))).await;
    let stale = assert_reason(result, Code::Aborted, pb::ErrorReason::StaleVersion, "stale cancel");
    assert_eq!(stale["current_version"], dispatched.version.to_string());
    assert_eq!(stale["expected_version"], t.version.to_string());
    let mut future: pb::AcceptTicketRequest = App::action(&dispatched, "");
    future.expected_version += 5;
    let result = app.tickets.accept_ticket(authed(&plumber, future)).await;
    assert_status(result, Code::Aborted, None, "version from the future");
    assert_eq!(app.snapshot().await, before);
}

async fn a_hold_moves_the_deadlines_by_the_time_paused(backend: Backend) {
    let mut app = App::start(backend).await;
    let plumber = app.world.plumber.clone();
    let t = ticket_in(&mut app, pb::TicketState::Accepted).await;
    let t = app.tickets.put_on_hold(authed(&plumber, App::action(&t, "waiting for parts"))).await.unwrap().into_inner();
    let held_since = t.on_hold_since.expect("on_hold_since");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let before = t.deadlines.expect("deadlines");
    let t = app.tickets.resume_ticket(authed(&plumber, App::action(&t, ""))).await.unwrap().into_inner();
    let after = t.deadlines.expect("deadlines");
    let nanos = |ts: &prost_types::Timestamp| ts.seconds as i128 * 1_000_000_000 + ts.nanos as i128;
    let shift = nanos(after.resolve_by.as_ref().unwrap()) - nanos(before.resolve_by.as_ref().unwrap());
    let paused = nanos(t.updated_at.as_ref().unwrap()) - nanos(&held_since);
    assert_eq!(shift, paused, "the resolve deadline moved by exactly the time on hold");
    assert!(shift >= 1_500_000_000);
    assert_eq!(
        nanos(after.on_site_by.as_ref().unwrap()) - nanos(before.on_site_by.as_ref().unwrap()),
        shift,
        "every clock moves together"
    );
}
