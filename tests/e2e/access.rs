//! Who may see and do what: tokens, property scope, roles, masked personal data.

use propdesk_domain::Role;
use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::{Code, Request};

use crate::helpers::{App, SECRET, assert_reason, assert_status, authed, new_request_id, token};

crate::on_both_backends!(
    missing_garbled_forged_and_expired_tokens_are_unauthenticated,
    another_propertys_ticket_is_out_of_reach,
    role_rules_are_enforced,
    technicians_see_the_phone_only_on_their_own_jobs,
    the_actor_of_every_change_is_recorded,
);

async fn missing_garbled_forged_and_expired_tokens_are_unauthenticated(backend: Backend) {
    let mut app = App::start(backend).await;
    let request = app.new_ticket("plumbing", "leak");
    let before = app.snapshot().await;

    let result = app.tickets.create_ticket(Request::new(request.clone())).await;
    assert_reason(result, Code::Unauthenticated, pb::ErrorReason::TokenMissing, "missing token");

    let mut garbled = Request::new(request.clone());
    garbled.metadata_mut().insert("authorization", "Bearer not-a-jwt".parse().unwrap());
    assert_status(app.tickets.create_ticket(garbled).await, Code::Unauthenticated, None, "garbled token");

    let mut basic = Request::new(request.clone());
    basic.metadata_mut().insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_status(app.tickets.create_ticket(basic).await, Code::Unauthenticated, None, "not a bearer token");

    let forged_keys = propdesk_intake::TokenKeys::new(&[b'x'; 40]).unwrap();
    let actor = propdesk_domain::Actor { staff_id: app.world.agent_id.clone(), role: Role::Admin, properties: vec![] };
    let forged = forged_keys.mint(&actor, chrono::Utc::now().timestamp(), 3600).unwrap();
    assert_status(
        app.tickets.create_ticket(authed(&forged, request.clone())).await,
        Code::Unauthenticated,
        None,
        "forged",
    );

    let real_keys = propdesk_intake::TokenKeys::new(SECRET.as_bytes()).unwrap();
    let expired = real_keys.mint(&actor, chrono::Utc::now().timestamp() - 7200, 3600).unwrap();
    let result = app.tickets.create_ticket(authed(&expired, request)).await;
    assert_reason(result, Code::Unauthenticated, pb::ErrorReason::TokenExpired, "expired token");
    assert_eq!(app.snapshot().await, before);
}

async fn another_propertys_ticket_is_out_of_reach(backend: Backend) {
    let mut app = App::start(backend).await;
    let t = app.create(app.new_ticket("plumbing", "leak")).await;
    let outsider = app.world.outsider.clone();
    let before = app.snapshot().await;
    let get = app.tickets.get_ticket(authed(&outsider, pb::GetTicketRequest { ticket_id: t.id.clone() })).await;
    let denied = assert_reason(get, Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "get another's ticket");
    assert_eq!(denied["property_id"], app.world.property_id);
    let cancel = app.tickets.cancel_ticket(authed(&outsider, App::action(&t, "nope"))).await;
    assert_status(cancel, Code::PermissionDenied, None, "cancel another property's ticket");
    let history = app
        .tickets
        .get_ticket_history(authed(
            &outsider,
            pb::GetTicketHistoryRequest { ticket_id: t.id.clone(), ..Default::default() },
        ))
        .await;
    assert_status(history, Code::PermissionDenied, None, "history of another property's ticket");
    let mut create = app.new_ticket("plumbing", "leak");
    create.request_id = uuid::Uuid::now_v7().to_string();
    let created = app.tickets.create_ticket(authed(&outsider, create)).await;
    assert_status(created, Code::PermissionDenied, None, "create at another property");
    let list = pb::ListTicketsRequest { property_id: app.world.property_id.clone(), ..Default::default() };
    assert_status(
        app.tickets.list_tickets(authed(&outsider, list)).await,
        Code::PermissionDenied,
        None,
        "list another property",
    );
    let mine =
        app.tickets.list_tickets(authed(&outsider, pb::ListTicketsRequest::default())).await.unwrap().into_inner();
    assert!(mine.tickets.is_empty(), "the outsider's own scope holds none of these tickets");
    assert_eq!(app.snapshot().await, before);
}

async fn role_rules_are_enforced(backend: Backend) {
    let mut app = App::start(backend).await;
    let t = app.create(app.new_ticket("plumbing", "leak")).await;
    let (plumber, other, agent) =
        (app.world.plumber.clone(), app.world.other_technician.clone(), app.world.agent.clone());
    let before = app.snapshot().await;
    let assign = pb::AssignTicketRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        department: pb::Department::Engineering as i32,
        assignee_id: app.world.plumber_id.clone(),
        note: String::new(),
    };
    assert_status(
        app.tickets.assign_ticket(authed(&plumber, assign.clone())).await,
        Code::PermissionDenied,
        None,
        "technician assigns",
    );
    assert_status(
        app.tickets.assign_ticket(authed(&agent, assign)).await,
        Code::PermissionDenied,
        None,
        "agent assigns",
    );
    assert_eq!(app.snapshot().await, before);

    let t = app.assign_to_plumber(&t).await;
    let before = app.snapshot().await;
    let result = app.tickets.accept_ticket(authed(&other, App::action(&t, ""))).await;
    assert_status(result, Code::PermissionDenied, None, "a technician accepts someone else's job");
    let result = app.tickets.cancel_ticket(authed(&plumber, App::action(&t, "no"))).await;
    let denied = assert_reason(result, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "a technician cancels");
    assert_eq!(denied["role"], "STAFF_ROLE_TECHNICIAN");
    let staff = pb::CreateStaffRequest {
        property_id: app.world.property_id.clone(),
        name: "Intruder".into(),
        role: pb::StaffRole::Admin as i32,
        department: 0,
        supervisor_id: String::new(),
        on_duty: true,
        request_id: new_request_id(),
        external_id: String::new(),
    };
    assert_status(app.directory.create_staff(authed(&agent, staff)).await, Code::PermissionDenied, None, "agent hires");
    assert_eq!(app.snapshot().await, before);

    let accepted = app.tickets.accept_ticket(authed(&plumber, App::action(&t, ""))).await.unwrap().into_inner();
    assert_eq!(accepted.state, pb::TicketState::Accepted as i32);
}

async fn technicians_see_the_phone_only_on_their_own_jobs(backend: Backend) {
    let mut app = App::start(backend).await;
    let t = app.create(app.new_ticket("plumbing", "leak")).await;
    assert_eq!(t.reporter_phone, "13812345678", "the agent sees it");
    let t = app.assign_to_plumber(&t).await;
    let get = |token: &str| authed(token, pb::GetTicketRequest { ticket_id: t.id.clone() });
    let seen_by_other = app.tickets.get_ticket(get(&app.world.other_technician)).await.unwrap().into_inner();
    assert_eq!(seen_by_other.reporter_phone, "138****5678");
    assert_eq!(seen_by_other.reporter_name, "张*");
    let seen_by_assignee = app.tickets.get_ticket(get(&app.world.plumber)).await.unwrap().into_inner();
    assert_eq!(seen_by_assignee.reporter_phone, "13812345678");
    let listed = app
        .tickets
        .list_tickets(authed(&app.world.other_technician, pb::ListTicketsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tickets[0].reporter_phone, "138****5678", "lists are masked too");
    let residents = app
        .directory
        .list_residents(authed(
            &app.world.other_technician,
            pb::ListResidentsRequest { property_id: app.world.property_id.clone(), ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(residents.residents[0].phone, "139****1111");
}

async fn the_actor_of_every_change_is_recorded(backend: Backend) {
    let mut app = App::start(backend).await;
    let supervisor_id = "supervisor-on-call";
    let supervisor = token(supervisor_id, Role::Supervisor, &[&app.world.property_id]);
    let t = app.create(app.new_ticket("plumbing", "leak")).await;
    app.tickets.add_note(authed(&supervisor, App::action(&t, "called the resident"))).await.unwrap();
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
    let actors: Vec<(&str, i32)> = history.iter().map(|e| (e.actor_id.as_str(), e.actor_role)).collect();
    assert_eq!(
        actors,
        [(app.world.agent_id.as_str(), pb::StaffRole::Agent as i32), (supervisor_id, pb::StaffRole::Supervisor as i32)]
    );
}
