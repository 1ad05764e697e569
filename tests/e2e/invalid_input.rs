//! Bad input: INVALID_ARGUMENT naming the field, NOT_FOUND for missing things, and nothing
//! written on any error.

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::Code;

use crate::helpers::{App, assert_status, authed, new_request_id};

crate::on_both_backends!(bad_create_requests_name_the_field_and_write_nothing, bad_reads_and_changes_are_refused);

async fn bad_create_requests_name_the_field_and_write_nothing(backend: Backend) {
    let mut app = App::start(backend).await;
    let w = &app.world;
    let valid = app.new_ticket("plumbing", "leak");
    type Edit = fn(&mut pb::CreateTicketRequest, &crate::helpers::World);
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("empty description", |r, _| r.description.clear(), "description"),
        ("blank description", |r, _| r.description = "   ".into(), "description"),
        ("oversized description", |r, _| r.description = "水".repeat(4001), "description"),
        ("oversized title", |r, _| r.title = "t".repeat(121), "title"),
        ("control characters", |r, _| r.title = "bell\u{7}".into(), "title"),
        ("missing request id", |r, _| r.request_id.clear(), "request_id"),
        ("free-text request id", |r, _| r.request_id = "my request!".into(), "request_id"),
        ("missing property", |r, _| r.property_id.clear(), "property_id"),
        ("malformed property id", |r, _| r.property_id = "sunny-gardens".into(), "property_id"),
        ("unknown unit", |r, _| r.unit_id = uuid::Uuid::now_v7().to_string(), "unit_id"),
        ("unit of another property", |r, w| r.unit_id = w.other_unit_id.clone(), "unit_id"),
        ("malformed unit id", |r, _| r.unit_id = "2-1203".into(), "unit_id"),
        ("malformed resident id", |r, _| r.resident_id = "li-si".into(), "resident_id"),
        ("unknown resident", |r, _| r.resident_id = uuid::Uuid::now_v7().to_string(), "resident_id"),
        ("no unit and no location", |r, _| r.unit_id.clear(), "location"),
        ("unspecified kind", |r, _| r.kind = 0, "kind"),
        ("unknown kind", |r, _| r.kind = 99, "kind"),
        ("unknown channel", |r, _| r.channel = -3, "channel"),
        ("unknown priority", |r, _| r.priority = 9, "priority"),
        ("missing category", |r, _| r.category.clear(), "category"),
        ("unknown category", |r, _| r.category = "dragons".into(), "category"),
        ("bad phone", |r, _| r.reporter_phone = "call me".into(), "reporter_phone"),
        ("oversized name", |r, _| r.reporter_name = "n".repeat(101), "reporter_name"),
        ("repair answered on the spot", |r, _| r.answer_on_the_spot = "fixed by talking".into(), "answer_on_the_spot"),
        (
            "promised reply in the past",
            |r, _| r.promised_reply_at = Some(prost_types::Timestamp { seconds: 1_000_000, nanos: 0 }),
            "promised_reply_at",
        ),
    ];
    let agent = w.agent.clone();
    for (case, edit, field) in cases {
        let mut request = valid.clone();
        request.request_id = uuid::Uuid::now_v7().to_string();
        edit(&mut request, &app.world);
        let before = app.snapshot().await;
        let result = app.tickets.create_ticket(authed(&agent, request)).await;
        assert_status(result, Code::InvalidArgument, Some(field), case);
        assert_eq!(app.snapshot().await, before, "{case} wrote something");
    }

    // An admin serves every property, so an unknown one is bad input, not a permission issue.
    let mut unknown_property = valid.clone();
    unknown_property.property_id = uuid::Uuid::now_v7().to_string();
    unknown_property.unit_id.clear();
    unknown_property.location = "gate".into();
    let before = app.snapshot().await;
    let result = app.tickets.create_ticket(authed(&app.world.admin, unknown_property)).await;
    assert_status(result, Code::InvalidArgument, Some("property_id"), "unknown property");
    assert_eq!(app.snapshot().await, before);

    // A real unit does not vouch for a property it is not in: both are named.
    let mut unit_elsewhere = valid.clone();
    unit_elsewhere.request_id = uuid::Uuid::now_v7().to_string();
    unit_elsewhere.property_id = uuid::Uuid::now_v7().to_string();
    let status = app.tickets.create_ticket(authed(&app.world.admin, unit_elsewhere)).await.unwrap_err();
    use tonic_types::StatusExt;
    let fields: Vec<String> =
        status.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["property_id", "unit_id"], "unknown property with another property's unit");
    assert_eq!(app.snapshot().await, before);

    // Several violations come back together.
    let mut many = valid;
    many.description.clear();
    many.kind = 0;
    let status = app.tickets.create_ticket(authed(&agent, many)).await.unwrap_err();
    let fields: Vec<String> =
        status.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| v.field).collect();
    assert!(fields.contains(&"description".to_owned()) && fields.contains(&"kind".to_owned()), "{fields:?}");
}

async fn bad_reads_and_changes_are_refused(backend: Backend) {
    let mut app = App::start(backend).await;
    let agent = app.world.agent.clone();
    let t = app.create(app.new_ticket("plumbing", "leak")).await;
    let before = app.snapshot().await;

    let get = app.tickets.get_ticket(authed(&agent, pb::GetTicketRequest { ticket_id: "ticket-1".into() })).await;
    assert_status(get, Code::InvalidArgument, Some("ticket_id"), "malformed ticket id");
    let missing = uuid::Uuid::now_v7().to_string();
    let get = app.tickets.get_ticket(authed(&agent, pb::GetTicketRequest { ticket_id: missing.clone() })).await;
    assert_status(get, Code::NotFound, None, "unknown ticket");

    let big_page = pb::ListTicketsRequest { page_size: 500, ..Default::default() };
    assert_status(
        app.tickets.list_tickets(authed(&agent, big_page)).await,
        Code::InvalidArgument,
        Some("page_size"),
        "too-large page",
    );
    let negative = pb::ListTicketsRequest { page_size: -1, ..Default::default() };
    assert_status(
        app.tickets.list_tickets(authed(&agent, negative)).await,
        Code::InvalidArgument,
        Some("page_size"),
        "negative page",
    );
    let token = pb::ListTicketsRequest { page_token: "garbage".into(), ..Default::default() };
    assert_status(
        app.tickets.list_tickets(authed(&agent, token)).await,
        Code::InvalidArgument,
        Some("page_token"),
        "bad page token",
    );
    let state = pb::ListTicketsRequest { states: vec![42], ..Default::default() };
    assert_status(
        app.tickets.list_tickets(authed(&agent, state)).await,
        Code::InvalidArgument,
        Some("states[0]"),
        "bad state",
    );
    let range = pb::ListTicketsRequest {
        created_after: Some(prost_types::Timestamp { seconds: 2_000_000_000, nanos: 0 }),
        created_before: Some(prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 }),
        ..Default::default()
    };
    assert_status(
        app.tickets.list_tickets(authed(&agent, range)).await,
        Code::InvalidArgument,
        Some("created_before"),
        "inverted range",
    );

    let no_version = pb::CancelTicketRequest { ticket_id: t.id.clone(), expected_version: 0, note: "x".into() };
    let result = app.tickets.cancel_ticket(authed(&agent, no_version)).await;
    assert_status(result, Code::InvalidArgument, Some("expected_version"), "missing version");
    let result = app.tickets.cancel_ticket(authed(&agent, App::action(&t, ""))).await;
    assert_status(result, Code::InvalidArgument, Some("note"), "cancel without a reason");
    let result = app.tickets.add_note(authed(&agent, App::action(&t, &"n".repeat(2001)))).await;
    assert_status(result, Code::InvalidArgument, Some("note"), "oversized note");
    let result = app
        .tickets
        .cancel_ticket(authed(
            &agent,
            pb::CancelTicketRequest { ticket_id: missing, expected_version: 1, note: "x".into() },
        ))
        .await;
    assert_status(result, Code::NotFound, None, "cancel an unknown ticket");
    let transfer = pb::TransferTicketRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        to_department: 0,
        note: "x".into(),
    };
    let result = app.tickets.transfer_ticket(authed(&app.world.dispatcher, transfer)).await;
    assert_status(result, Code::InvalidArgument, Some("to_department"), "transfer nowhere");
    let assign = pb::AssignTicketRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        department: pb::Department::Cleaning as i32,
        assignee_id: app.world.plumber_id.clone(),
        note: String::new(),
    };
    let result = app.tickets.assign_ticket(authed(&app.world.dispatcher, assign)).await;
    assert_status(result, Code::InvalidArgument, Some("assignee_id"), "assignee from another department");
    let callback = pb::RecordCallbackRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        satisfaction: 0,
        comment: String::new(),
    };
    let result = app.tickets.record_callback(authed(&agent, callback)).await;
    assert_status(result, Code::InvalidArgument, Some("satisfaction"), "callback without a rating");

    let unit = pb::CreateUnitRequest {
        building_id: app.world.building_id.clone(),
        floor: 12,
        room: "1203".into(),
        postal_address: String::new(),
        request_id: new_request_id(),
    };
    let result = app.directory.create_unit(authed(&app.world.admin, unit)).await;
    assert_status(result, Code::AlreadyExists, None, "duplicate room");
    let staff = pb::CreateStaffRequest {
        property_id: app.world.property_id.clone(),
        name: "Tech".into(),
        role: pb::StaffRole::Technician as i32,
        department: 0,
        supervisor_id: String::new(),
        on_duty: true,
        request_id: new_request_id(),
        external_id: String::new(),
    };
    let result = app.directory.create_staff(authed(&app.world.admin, staff)).await;
    assert_status(result, Code::InvalidArgument, Some("department"), "technician without department");
    assert_eq!(app.snapshot().await, before);
}
