//! The reception desk's look-ups: the caller by phone, a unit's history, a resident's and
//! an agent's tickets, free-text search in Chinese and English; idempotent directory creates.

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::Code;

use crate::helpers::{App, assert_reason, assert_status, authed, new_request_id};

crate::on_both_backends!(
    the_caller_is_found_by_phone_however_it_is_written_and_masked_for_technicians,
    a_units_history_and_a_residents_and_an_agents_tickets_are_listed_newest_first,
    search_finds_chinese_words_mixed_queries_english_and_notes_best_first,
    bad_searches_and_look_ups_are_refused_naming_the_field_and_write_nothing,
    a_retried_directory_create_returns_the_first_record,
);

impl App {
    async fn list(&mut self, token: &str, request: pb::ListTicketsRequest) -> Vec<pb::Ticket> {
        self.tickets.list_tickets(authed(token, request)).await.expect("list").into_inner().tickets
    }

    async fn search(&mut self, token: &str, query: &str) -> Vec<pb::Ticket> {
        let request = pb::SearchTicketsRequest { query: query.into(), ..Default::default() };
        self.tickets.search_tickets(authed(token, request)).await.expect("search").into_inner().tickets
    }

    async fn ticket_from(&mut self, phone: &str, description: &str) -> pb::Ticket {
        let request =
            pb::CreateTicketRequest { reporter_phone: phone.into(), ..self.new_ticket("plumbing", description) };
        self.create(request).await
    }
}

fn ids(tickets: &[pb::Ticket]) -> Vec<&str> {
    tickets.iter().map(|t| t.id.as_str()).collect()
}

fn by_phone(phone: &str) -> pb::ListTicketsRequest {
    pb::ListTicketsRequest { reporter_phone: phone.into(), ..Default::default() }
}

async fn the_caller_is_found_by_phone_however_it_is_written_and_masked_for_technicians(backend: Backend) {
    let mut app = App::start(backend).await;
    let agent = app.world.agent.clone();
    let mobile = app.ticket_from("13812345678", "厨房漏水").await;
    let spaced = app.ticket_from("+86 139 0000 1111", "卫生间漏水").await;
    let landline = app.ticket_from("021-6234-5678", "门锁坏了").await;
    let again = app.ticket_from("138 1234 5678", "又漏水了").await;

    for written in ["13812345678", "+86 138 1234 5678", "+8613812345678", "0086-138-1234-5678", "138-1234-5678"] {
        let found = app.list(&agent, by_phone(written)).await;
        assert_eq!(ids(&found), [again.id.as_str(), mobile.id.as_str()], "{written}: newest first");
    }
    let found = app.list(&agent, by_phone("13900001111")).await;
    assert_eq!(ids(&found), [spaced.id.as_str()]);
    assert_eq!(found[0].reporter_phone, "+86 139 0000 1111", "the agent sees the number as given");
    let found = app.list(&agent, by_phone("02162345678")).await;
    assert_eq!(ids(&found), [landline.id.as_str()]);
    assert!(app.list(&agent, by_phone("13800000000")).await.is_empty());

    // A technician may look the caller up, but sees the contact masked on others' jobs.
    let technician = app.world.other_technician.clone();
    let found = app.list(&technician, by_phone("+86 138 1234 5678")).await;
    assert_eq!(found.len(), 2);
    for ticket in &found {
        assert_eq!(ticket.reporter_phone, "138****5678");
        assert_eq!(ticket.reporter_name, "张*");
    }
    // The outsider serves another property: nothing of this one.
    let outsider = app.world.outsider.clone();
    assert!(app.list(&outsider, by_phone("13812345678")).await.is_empty());
}

async fn a_units_history_and_a_residents_and_an_agents_tickets_are_listed_newest_first(backend: Backend) {
    let mut app = App::start(backend).await;
    let agent = app.world.agent.clone();
    let unit_id = app.world.unit_id.clone();
    let neighbour = app.add_unit("1204").await;
    let first = app.create(app.new_ticket("plumbing", "漏水")).await;
    let next_door =
        app.create(pb::CreateTicketRequest { unit_id: neighbour.clone(), ..app.new_ticket("plumbing", "漏水") }).await;
    let resident_request = pb::CreateTicketRequest {
        resident_id: app.world.resident_id.clone(),
        reporter_name: String::new(),
        reporter_phone: String::new(),
        ..app.new_ticket("electrical", "插座没电")
    };
    let by_resident = app.create(resident_request).await;
    let supervisor = app.world.supervisor.clone();
    let logged_by_supervisor = app
        .tickets
        .create_ticket(authed(&supervisor, app.new_ticket("door_lock", "门锁坏了")))
        .await
        .expect("create")
        .into_inner();
    let lobby = app.create(app.lobby_ticket(1)).await;

    let history = app.list(&agent, pb::ListTicketsRequest { unit_id: unit_id.clone(), ..Default::default() }).await;
    assert_eq!(ids(&history), [logged_by_supervisor.id.as_str(), by_resident.id.as_str(), first.id.as_str()]);
    let theirs = app.list(&agent, pb::ListTicketsRequest { unit_id: neighbour, ..Default::default() }).await;
    assert_eq!(ids(&theirs), [next_door.id.as_str()]);

    let resident = pb::ListTicketsRequest { resident_id: app.world.resident_id.clone(), ..Default::default() };
    let found = app.list(&agent, resident).await;
    assert_eq!(ids(&found), [by_resident.id.as_str()]);
    assert_eq!(found[0].reporter_name, "李四", "the resident's name fills in the reporter");

    let mine = pb::ListTicketsRequest { first_contact_agent_id: app.world.agent_id.clone(), ..Default::default() };
    let found = app.list(&agent, mine).await;
    let expected = [lobby.id.as_str(), by_resident.id.as_str(), next_door.id.as_str(), first.id.as_str()];
    assert_eq!(ids(&found), expected, "the supervisor's ticket is not the agent's");

    // Look-ups combine with the other filters, and page.
    let cancelled = app.tickets.cancel_ticket(authed(&agent, App::action(&first, "duplicate call"))).await.unwrap();
    let open = pb::ListTicketsRequest {
        unit_id: unit_id.clone(),
        states: vec![pb::TicketState::Cancelled as i32],
        ..Default::default()
    };
    assert_eq!(ids(&app.list(&agent, open).await), [cancelled.into_inner().id.as_str()]);
    let page = pb::ListTicketsRequest { unit_id: unit_id.clone(), page_size: 2, ..Default::default() };
    let first_page = app.tickets.list_tickets(authed(&agent, page.clone())).await.unwrap().into_inner();
    assert_eq!(ids(&first_page.tickets), &ids(&history)[..2]);
    let rest = pb::ListTicketsRequest { page_token: first_page.next_page_token, ..page };
    let second_page = app.tickets.list_tickets(authed(&agent, rest)).await.unwrap().into_inner();
    assert_eq!(ids(&second_page.tickets), &ids(&history)[2..]);
    assert!(second_page.next_page_token.is_empty());
}

async fn search_finds_chinese_words_mixed_queries_english_and_notes_best_first(backend: Backend) {
    let mut app = App::start(backend).await;
    let agent = app.world.agent.clone();
    let often = app.create(app.new_ticket("plumbing", "漏水，漏水，还是漏水：卫生间漏水")).await;
    let kitchen = app.create(app.new_ticket("plumbing", "厨房漏水很严重")).await;
    let balcony_1 = app.create(app.new_ticket("plumbing", "阳台漏水")).await;
    let balcony_2 = app.create(app.new_ticket("plumbing", "阳台漏水")).await;
    let lift = pb::CreateTicketRequest {
        unit_id: String::new(),
        location: "3号楼大堂".into(),
        ..app.new_ticket("lift", "3号楼电梯停了")
    };
    let lift = app.create(lift).await;
    let decoy = app.create(app.new_ticket("electrical", "电视坏了，梯子倒了")).await;
    let english = pb::CreateTicketRequest {
        unit_id: String::new(),
        location: "Block 5 lobby".into(),
        ..app.new_ticket("lift", "The Elevator is stuck between floors")
    };
    let english = app.create(english).await;

    let found = app.search(&agent, "漏水").await;
    assert_eq!(found.len(), 4, "{:?}", ids(&found));
    assert_eq!(found[0].id, often.id, "the report that says it most comes first");
    let twins: Vec<&str> = ids(&found).into_iter().filter(|id| *id == balcony_1.id || *id == balcony_2.id).collect();
    assert_eq!(twins, [balcony_2.id.as_str(), balcony_1.id.as_str()], "newest first among equals");
    assert!(ids(&found).contains(&kitchen.id.as_str()));

    assert_eq!(ids(&app.search(&agent, "电梯").await), [lift.id.as_str()], "not the decoy {}", decoy.id);
    assert_eq!(ids(&app.search(&agent, "3号楼 电梯").await), [lift.id.as_str()]);
    assert_eq!(ids(&app.search(&agent, "号楼电梯").await), [lift.id.as_str()]);
    assert_eq!(ids(&app.search(&agent, "大堂").await), [lift.id.as_str()], "the location is searched");
    assert_eq!(ids(&app.search(&agent, "elev").await), [english.id.as_str()]);
    assert_eq!(ids(&app.search(&agent, "ELEVATOR stuck").await), [english.id.as_str()]);
    assert_eq!(ids(&app.search(&agent, "block 5").await), [english.id.as_str()]);
    assert!(app.search(&agent, "漏水 电梯").await.is_empty(), "every word must match");
    let unit_label = app.world.unit_label.clone();
    assert_eq!(app.search(&agent, &unit_label).await.len(), 5, "the unit label is searched");

    // Notes staff add are found too.
    assert!(app.search(&agent, "阀门").await.is_empty());
    let note = pb::AddNoteRequest {
        ticket_id: kitchen.id.clone(),
        expected_version: kitchen.version,
        note: "更换了阀门".into(),
    };
    app.tickets.add_note(authed(&agent, note)).await.expect("note");
    assert_eq!(ids(&app.search(&agent, "阀门").await), [kitchen.id.as_str()]);
    assert_eq!(ids(&app.search(&agent, "阀门 漏水").await), [kitchen.id.as_str()]);

    // Pages cover every match once.
    let mut seen = Vec::new();
    let mut request = pb::SearchTicketsRequest { query: "漏水".into(), page_size: 3, ..Default::default() };
    loop {
        let page = app.tickets.search_tickets(authed(&agent, request.clone())).await.unwrap().into_inner();
        assert!(page.tickets.len() <= 3);
        seen.extend(page.tickets.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(seen, ids(&found));

    // Filters combine with the text; other properties stay out of reach and contacts masked.
    let in_lobby = pb::SearchTicketsRequest {
        query: "电梯".into(),
        states: vec![pb::TicketState::Cancelled as i32],
        ..Default::default()
    };
    let none = app.tickets.search_tickets(authed(&agent, in_lobby)).await.unwrap().into_inner();
    assert!(none.tickets.is_empty());
    let outsider = app.world.outsider.clone();
    assert!(app.search(&outsider, "漏水").await.is_empty());
    let elsewhere = pb::SearchTicketsRequest {
        query: "漏水".into(),
        property_id: app.world.property_id.clone(),
        ..Default::default()
    };
    let refused = app.tickets.search_tickets(authed(&outsider, elsewhere)).await;
    assert_reason(refused, Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "search another property");
    let technician = app.world.other_technician.clone();
    let masked = app.search(&technician, "厨房").await;
    assert_eq!(masked[0].reporter_phone, "138****5678");
}

async fn bad_searches_and_look_ups_are_refused_naming_the_field_and_write_nothing(backend: Backend) {
    let mut app = App::start(backend).await;
    let agent = app.world.agent.clone();
    app.create(app.new_ticket("plumbing", "漏水")).await;
    let before = app.snapshot().await;
    let search = |query: &str| pb::SearchTicketsRequest { query: query.into(), ..Default::default() };
    let cases = [
        ("an empty query", search(""), "query"),
        ("one character", search(" 漏 "), "query"),
        ("over 200 characters", search(&"漏水".repeat(101)), "query"),
        ("punctuation only", search("？！…"), "query"),
        (
            "a forged page token",
            pb::SearchTicketsRequest { page_token: "bm9wZQ".into(), ..search("漏水") },
            "page_token",
        ),
        ("a list token", pb::SearchTicketsRequest { page_token: "MDE5MzZmMGU".into(), ..search("漏水") }, "page_token"),
        ("an oversized page", pb::SearchTicketsRequest { page_size: 201, ..search("漏水") }, "page_size"),
        ("a bad unit id", pb::SearchTicketsRequest { unit_id: "2-1203".into(), ..search("漏水") }, "unit_id"),
        ("an unknown state", pb::SearchTicketsRequest { states: vec![99], ..search("漏水") }, "states[0]"),
    ];
    for (case, request, field) in cases {
        let result = app.tickets.search_tickets(authed(&agent, request)).await;
        let info = assert_status(result, Code::InvalidArgument, Some(field), case);
        assert_eq!(info.reason, "INVALID_FIELD", "{case}");
    }
    let list_cases = [
        ("letters in a phone", by_phone("138-abcd-5678"), "reporter_phone"),
        ("a phone too short", by_phone("1234"), "reporter_phone"),
        (
            "a bad resident id",
            pb::ListTicketsRequest { resident_id: "李四".into(), ..Default::default() },
            "resident_id",
        ),
        ("a bad unit id", pb::ListTicketsRequest { unit_id: "1203".into(), ..Default::default() }, "unit_id"),
        (
            "a bad agent id",
            pb::ListTicketsRequest { first_contact_agent_id: "me".into(), ..Default::default() },
            "first_contact_agent_id",
        ),
        ("a bad incident id", pb::ListTicketsRequest { incident_id: "x".into(), ..Default::default() }, "incident_id"),
    ];
    for (case, request, field) in list_cases {
        let result = app.tickets.list_tickets(authed(&agent, request)).await;
        assert_status(result, Code::InvalidArgument, Some(field), case);
    }
    assert_eq!(app.snapshot().await, before);
}

async fn a_retried_directory_create_returns_the_first_record(backend: Backend) {
    let mut app = App::start(backend).await;
    let admin = app.world.admin.clone();
    let unit = pb::CreateUnitRequest {
        building_id: app.world.building_id.clone(),
        floor: 7,
        room: "0701".into(),
        postal_address: "Room 0701".into(),
        request_id: new_request_id(),
    };
    let first = app.directory.create_unit(authed(&admin, unit.clone())).await.expect("create").into_inner();
    let before = app.snapshot().await;
    let retried = app.directory.create_unit(authed(&admin, unit.clone())).await.expect("retry").into_inner();
    assert_eq!(retried, first, "a retry gets the first unit back");
    assert_eq!(app.snapshot().await, before, "and writes nothing");

    let other_room = pb::CreateUnitRequest { room: "0702".into(), ..unit.clone() };
    let result = app.directory.create_unit(authed(&admin, other_room)).await;
    let info = assert_status(result, Code::InvalidArgument, Some("request_id"), "a key reused for another unit");
    assert_eq!(info.reason, "DUPLICATE_REQUEST_MISMATCH");
    let resident = pb::CreateResidentRequest {
        unit_id: first.id.clone(),
        name: "王五".into(),
        phone: "13700001111".into(),
        request_id: unit.request_id.clone(),
    };
    let result = app.directory.create_resident(authed(&admin, resident.clone())).await;
    assert_reason(
        result,
        Code::InvalidArgument,
        pb::ErrorReason::DuplicateRequestMismatch,
        "a unit's key for a resident",
    );
    assert_eq!(app.snapshot().await, before);

    let missing = pb::CreateResidentRequest { request_id: String::new(), ..resident };
    let result = app.directory.create_resident(authed(&admin, missing)).await;
    assert_status(result, Code::InvalidArgument, Some("request_id"), "no request id");
    let duplicate_room = pb::CreateUnitRequest { request_id: new_request_id(), ..unit };
    let result = app.directory.create_unit(authed(&admin, duplicate_room)).await;
    assert_reason(result, Code::AlreadyExists, pb::ErrorReason::AlreadyExists, "the same room again");
    assert_eq!(app.snapshot().await, before);
}
