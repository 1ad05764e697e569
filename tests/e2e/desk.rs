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
    every_directory_list_and_the_history_page_in_a_stable_order,
    residents_are_found_by_phone_and_name_fragment_and_masked_for_technicians,
    an_agent_works_the_follow_up_list_soonest_due_first,
    my_tickets_and_my_overdue_tickets_are_the_ones_i_own_overdue_first,
    staff_escalate_by_hand_and_the_supervisor_then_the_manager_hear_at_once,
    a_wrong_category_is_corrected_rerouted_with_its_clocks_replanned_and_the_history_shows_it,
    a_priority_is_lowered_by_a_supervisor_with_a_reason_and_refused_to_an_agent,
    bad_updates_are_refused_naming_the_field_and_write_nothing,
    a_common_area_report_is_linked_by_hand_to_an_incident_and_resolved_with_it,
    a_report_linked_by_mistake_is_unlinked_and_goes_its_own_way,
    a_duplicate_closes_into_its_original_and_its_reporter_gets_the_reply_and_callback,
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
        language: String::new(),
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

/// Every page of a list: `fetch(page_token)` returns a page and the next token.
async fn all_pages<T, F, Fut>(mut fetch: F) -> (Vec<T>, usize)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = (Vec<T>, String)>,
{
    let (mut items, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let (page, next) = fetch(token).await;
        items.extend(page);
        pages += 1;
        if next.is_empty() {
            return (items, pages);
        }
        token = next;
    }
}

async fn every_directory_list_and_the_history_page_in_a_stable_order(backend: Backend) {
    let mut app = App::start(backend).await;
    let (admin, agent) = (app.world.admin.clone(), app.world.agent.clone());
    let property_id = app.world.property_id.clone();
    for name in ["3", "1", "4"] {
        let request = pb::CreateBuildingRequest {
            property_id: property_id.clone(),
            name: name.into(),
            request_id: new_request_id(),
        };
        app.directory.create_building(authed(&admin, request)).await.expect("building");
    }
    for room in ["1201", "1202", "1205"] {
        app.add_unit(room).await;
    }
    let directory = app.directory.clone();

    let (properties, pages) = all_pages(|page_token| {
        let mut client = directory.clone();
        let admin = admin.clone();
        async move {
            let page = client
                .list_properties(authed(&admin, pb::ListPropertiesRequest { page_size: 1, page_token }))
                .await
                .unwrap()
                .into_inner();
            (page.properties.into_iter().map(|p| p.name).collect::<Vec<_>>(), page.next_page_token)
        }
    })
    .await;
    assert_eq!((properties, pages), (vec!["Other Estate".to_owned(), "Sunny Gardens".to_owned()], 2));

    let (buildings, pages) = all_pages(|page_token| {
        let (mut client, agent, property_id) = (directory.clone(), agent.clone(), property_id.clone());
        async move {
            let request = pb::ListBuildingsRequest { property_id, page_size: 2, page_token };
            let page = client.list_buildings(authed(&agent, request)).await.unwrap().into_inner();
            (page.buildings.into_iter().map(|b| b.name).collect::<Vec<_>>(), page.next_page_token)
        }
    })
    .await;
    assert_eq!((buildings, pages), (vec!["1".to_owned(), "2".into(), "3".into(), "4".into()], 2));

    let (units, pages) = all_pages(|page_token| {
        let (mut client, agent, property_id) = (directory.clone(), agent.clone(), property_id.clone());
        async move {
            let request = pb::ListUnitsRequest { property_id, page_size: 2, page_token, ..Default::default() };
            let page = client.list_units(authed(&agent, request)).await.unwrap().into_inner();
            (page.units.into_iter().map(|u| u.label).collect::<Vec<_>>(), page.next_page_token)
        }
    })
    .await;
    assert_eq!(units, ["2-1201", "2-1202", "2-1203", "2-1205"]);
    assert_eq!(pages, 2);

    let (staff, pages) = all_pages(|page_token| {
        let (mut client, agent, property_id) = (directory.clone(), agent.clone(), property_id.clone());
        async move {
            let request = pb::ListStaffRequest { property_id, page_size: 3, page_token, ..Default::default() };
            let page = client.list_staff(authed(&agent, request)).await.unwrap().into_inner();
            (page.staff.into_iter().map(|s| s.name).collect::<Vec<_>>(), page.next_page_token)
        }
    })
    .await;
    let mut sorted = staff.clone();
    sorted.sort();
    assert_eq!(staff, sorted, "name order across pages");
    assert_eq!(pages, staff.len().div_ceil(3));
    let one_page = pb::ListStaffRequest { property_id: property_id.clone(), page_size: 200, ..Default::default() };
    let whole = app.directory.list_staff(authed(&agent, one_page)).await.unwrap().into_inner();
    assert_eq!(whole.staff.len(), staff.len());
    assert!(whole.next_page_token.is_empty());

    let (categories, pages) = all_pages(|page_token| {
        let (mut client, agent) = (directory.clone(), agent.clone());
        async move {
            let page = client
                .list_categories(authed(&agent, pb::ListCategoriesRequest { page_size: 10, page_token }))
                .await
                .unwrap()
                .into_inner();
            (page.categories.into_iter().map(|c| c.code).collect::<Vec<_>>(), page.next_page_token)
        }
    })
    .await;
    let all =
        app.directory.list_categories(authed(&agent, pb::ListCategoriesRequest::default())).await.unwrap().into_inner();
    assert_eq!(categories, all.categories.iter().map(|c| c.code.clone()).collect::<Vec<_>>());
    assert_eq!(pages, categories.len().div_ceil(10));
    assert!(pages > 1);

    // A ticket's history, two events a page.
    let mut t = app.create(app.new_ticket("plumbing", "漏水")).await;
    for n in 0..4 {
        let note =
            pb::AddNoteRequest { ticket_id: t.id.clone(), expected_version: t.version, note: format!("note {n}") };
        t = app.tickets.add_note(authed(&agent, note)).await.unwrap().into_inner();
    }
    let tickets = app.tickets.clone();
    let (notes, pages) = all_pages(|page_token| {
        let (mut client, agent, ticket_id) = (tickets.clone(), agent.clone(), t.id.clone());
        async move {
            let request = pb::GetTicketHistoryRequest { ticket_id, page_size: 2, page_token };
            let page = client.get_ticket_history(authed(&agent, request)).await.unwrap().into_inner();
            (page.events.into_iter().map(|e| e.note).collect::<Vec<_>>(), page.next_page_token)
        }
    })
    .await;
    assert_eq!(pages, 3);
    assert_eq!(&notes[1..], ["note 0", "note 1", "note 2", "note 3"]);

    // A token of one kind of list is no token for another.
    let units_page = pb::ListUnitsRequest { property_id: property_id.clone(), page_size: 1, ..Default::default() };
    let token = app.directory.list_units(authed(&agent, units_page)).await.unwrap().into_inner().next_page_token;
    let history = pb::GetTicketHistoryRequest { ticket_id: t.id.clone(), page_size: 2, page_token: token.clone() };
    let result = app.tickets.get_ticket_history(authed(&agent, history)).await;
    assert_status(result, Code::InvalidArgument, Some("page_token"), "a units token for a history");
    let tickets_page = pb::ListTicketsRequest { page_token: token, ..Default::default() };
    let result = app.tickets.list_tickets(authed(&agent, tickets_page)).await;
    assert_status(result, Code::InvalidArgument, Some("page_token"), "a units token for tickets");
    let oversized = pb::ListUnitsRequest { property_id, page_size: 201, ..Default::default() };
    assert_status(
        app.directory.list_units(authed(&agent, oversized)).await,
        Code::InvalidArgument,
        Some("page_size"),
        "201 units",
    );
}

async fn residents_are_found_by_phone_and_name_fragment_and_masked_for_technicians(backend: Backend) {
    let mut app = App::start(backend).await;
    let (admin, agent) = (app.world.admin.clone(), app.world.agent.clone());
    let property_id = app.world.property_id.clone();
    for (name, phone) in [("李小明", "+86 137 0000 2222"), ("王李氏", "13700003333"), ("Li Wei", "0086-137-0000-4444")]
    {
        let request = pb::CreateResidentRequest {
            unit_id: app.world.unit_id.clone(),
            name: name.into(),
            phone: phone.into(),
            request_id: new_request_id(),
            language: String::new(),
        };
        app.directory.create_resident(authed(&admin, request)).await.expect("resident");
    }
    let list =
        |request: pb::ListResidentsRequest| pb::ListResidentsRequest { property_id: property_id.clone(), ..request };
    let names = |residents: Vec<pb::Resident>| residents.into_iter().map(|r| r.name).collect::<Vec<_>>();

    let by_phone = list(pb::ListResidentsRequest { phone: "137-0000-2222".into(), ..Default::default() });
    let found = app.directory.list_residents(authed(&agent, by_phone)).await.unwrap().into_inner().residents;
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].name.as_str(), found[0].phone.as_str()), ("李小明", "+86 137 0000 2222"));
    let by_phone = list(pb::ListResidentsRequest { phone: "+8613700004444".into(), ..Default::default() });
    let found = app.directory.list_residents(authed(&agent, by_phone)).await.unwrap().into_inner().residents;
    assert_eq!(names(found), ["Li Wei"]);

    let by_name = list(pb::ListResidentsRequest { name_contains: "李".into(), ..Default::default() });
    let found = app.directory.list_residents(authed(&agent, by_name.clone())).await.unwrap().into_inner().residents;
    assert_eq!(names(found), ["李四", "李小明", "王李氏"], "name order; 李四 is the test world's resident");
    let latin = list(pb::ListResidentsRequest { name_contains: "li W".into(), ..Default::default() });
    let found = app.directory.list_residents(authed(&agent, latin)).await.unwrap().into_inner().residents;
    assert_eq!(names(found), ["Li Wei"], "Latin names match whatever the case");
    let wildcard = list(pb::ListResidentsRequest { name_contains: "%".into(), ..Default::default() });
    assert!(app.directory.list_residents(authed(&agent, wildcard)).await.unwrap().into_inner().residents.is_empty());

    let paged = pb::ListResidentsRequest { page_size: 2, ..by_name.clone() };
    let first = app.directory.list_residents(authed(&agent, paged.clone())).await.unwrap().into_inner();
    assert_eq!(names(first.residents), ["李四", "李小明"]);
    let rest = pb::ListResidentsRequest { page_token: first.next_page_token, ..paged };
    let rest = app.directory.list_residents(authed(&agent, rest)).await.unwrap().into_inner();
    assert_eq!((names(rest.residents), rest.next_page_token), (vec!["王李氏".to_owned()], String::new()));

    let technician = app.world.other_technician.clone();
    let masked = app.directory.list_residents(authed(&technician, by_name)).await.unwrap().into_inner().residents;
    assert_eq!(masked[1].name, "李**");
    assert_eq!(masked[1].phone, "+86****2222");

    let before = app.snapshot().await;
    let bad = [
        (list(pb::ListResidentsRequest { phone: "137-abcd".into(), ..Default::default() }), "phone"),
        (list(pb::ListResidentsRequest { name_contains: "李".repeat(101), ..Default::default() }), "name_contains"),
        (list(pb::ListResidentsRequest { name_contains: "  ".into(), ..Default::default() }), "name_contains"),
        (list(pb::ListResidentsRequest { page_token: "x".into(), ..Default::default() }), "page_token"),
    ];
    for (request, field) in bad {
        let result = app.directory.list_residents(authed(&agent, request)).await;
        assert_status(result, Code::InvalidArgument, Some(field), field);
    }
    assert_eq!(app.snapshot().await, before);
}

impl App {
    async fn follow_ups(&mut self, token: &str, request: pb::ListFollowUpsRequest) -> Vec<pb::FollowUpItem> {
        self.tickets.list_follow_ups(authed(token, request)).await.expect("follow-ups").into_inner().items
    }

    /// Resolves `t` as the agent (an answer needs no dispatch).
    async fn resolve(&mut self, t: &pb::Ticket) -> pb::Ticket {
        let agent = self.world.agent.clone();
        self.tickets.resolve_ticket(authed(&agent, App::action(t, "answered"))).await.expect("resolve").into_inner()
    }
}

fn item_tickets(items: &[pb::FollowUpItem]) -> Vec<String> {
    items.iter().map(|item| item.ticket.as_ref().map(|t| t.id.clone()).unwrap_or_default()).collect()
}

async fn an_agent_works_the_follow_up_list_soonest_due_first(backend: Backend) {
    let mut app = App::start(backend).await;
    let _notifier = app.start_notifier().await;
    let (agent, supervisor) = (app.world.agent.clone(), app.world.supervisor.clone());
    let first = app.create(app.new_ticket("plumbing", "一号")).await;
    let second = app.create(app.new_ticket("plumbing", "二号")).await;
    let third = app.create(app.new_ticket("plumbing", "三号")).await;
    let theirs = app
        .tickets
        .create_ticket(authed(&supervisor, app.new_ticket("plumbing", "主管接的")))
        .await
        .expect("create")
        .into_inner();
    // Resolved in this order, so owed in this order (48 hours after each resolution).
    let mut resolved = Vec::new();
    for t in [&second, &first, &third] {
        resolved.push(app.resolve(t).await);
    }
    let resolved_theirs = app
        .tickets
        .resolve_ticket(authed(&supervisor, App::action(&theirs, "answered")))
        .await
        .expect("resolve")
        .into_inner();
    let open = pb::ListFollowUpsRequest::default();
    let mut items = Vec::new();
    for _ in 0..200 {
        items = app.follow_ups(&agent, open.clone()).await;
        if items.len() == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let order =
        [second.id.clone(), second.id.clone(), first.id.clone(), first.id.clone(), third.id.clone(), third.id.clone()];
    assert_eq!(item_tickets(&items), order, "soonest due first, the reply and the callback of each");
    let due: Vec<i64> =
        items.iter().map(|i| i.follow_up.as_ref().and_then(|f| f.due_by).map_or(0, |t| t.seconds)).collect();
    assert!(due.windows(2).all(|w| w[0] <= w[1]), "{due:?}");
    let ticket = items[0].ticket.as_ref().expect("the ticket comes along");
    assert_eq!(ticket.reporter_phone, "13812345678", "the agent calls the resident back");

    let callbacks = pb::ListFollowUpsRequest { kind: pb::FollowUpKind::Callback as i32, ..Default::default() };
    let found = app.follow_ups(&agent, callbacks.clone()).await;
    assert_eq!(item_tickets(&found), [second.id.clone(), first.id.clone(), third.id.clone()]);

    // Pages of two walk the same list.
    let mut paged = Vec::new();
    let mut request = pb::ListFollowUpsRequest { page_size: 2, ..Default::default() };
    loop {
        let page = app.tickets.list_follow_ups(authed(&agent, request.clone())).await.unwrap().into_inner();
        paged.extend(page.items);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(item_tickets(&paged), order);

    // The callback made leaves the list of what is owed and joins what is done.
    let callback = pb::RecordCallbackRequest {
        ticket_id: second.id.clone(),
        expected_version: app.get(&second.id).await.version,
        satisfaction: pb::Satisfaction::Satisfied as i32,
        comment: "满意".into(),
    };
    app.tickets.record_callback(authed(&agent, callback)).await.expect("callback");
    // The notifier settles the callback follow-up when it hears of the callback.
    let mut found = Vec::new();
    for _ in 0..200 {
        found = app.follow_ups(&agent, callbacks.clone()).await;
        if found.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(item_tickets(&found), [first.id.clone(), third.id.clone()]);
    let done = pb::ListFollowUpsRequest { state: pb::FollowUpState::Done as i32, ..callbacks.clone() };
    assert_eq!(item_tickets(&app.follow_ups(&agent, done).await), [second.id.as_str()]);
    let soon = pb::ListFollowUpsRequest {
        due_before: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 3600, nanos: 0 }),
        ..Default::default()
    };
    assert!(app.follow_ups(&agent, soon).await.is_empty(), "nothing is due within the hour");
    let overdue = pb::ListFollowUpsRequest { overdue_only: true, ..Default::default() };
    assert!(app.follow_ups(&agent, overdue).await.is_empty());

    // A supervisor reads an agent's list; an agent reads only their own.
    let agents = pb::ListFollowUpsRequest { owner_id: app.world.agent_id.clone(), ..callbacks.clone() };
    assert_eq!(app.follow_ups(&supervisor, agents).await.len(), 2);
    let supervisor_id = app.world.supervisor_id.clone();
    let peeking = pb::ListFollowUpsRequest { owner_id: supervisor_id.clone(), ..Default::default() };
    let result = app.tickets.list_follow_ups(authed(&agent, peeking)).await;
    assert_reason(result, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "an agent reads another's list");
    let own = app.follow_ups(&supervisor, pb::ListFollowUpsRequest::default()).await;
    assert_eq!(item_tickets(&own), [resolved_theirs.id.clone(), resolved_theirs.id.clone()]);
    let outsider = app.world.outsider.clone();
    let elsewhere = pb::ListFollowUpsRequest { property_id: app.world.property_id.clone(), ..Default::default() };
    let result = app.tickets.list_follow_ups(authed(&outsider, elsewhere)).await;
    assert_reason(result, Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "another property's list");
    let bad = pb::ListFollowUpsRequest { kind: 9, ..Default::default() };
    assert_status(
        app.tickets.list_follow_ups(authed(&agent, bad)).await,
        Code::InvalidArgument,
        Some("kind"),
        "kind 9",
    );
    assert_eq!(resolved.len(), 3);
}

/// Makes a ticket's acknowledge deadline a minute past.
async fn overdue(app: &App, ticket_id: &str) {
    use propdesk_store::entity::ticket;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let past = propdesk_store::now() - chrono::TimeDelta::minutes(1);
    ticket::Entity::update_many()
        .col_expr(ticket::Column::AcknowledgeBy, Expr::value(past))
        .filter(ticket::Column::Id.eq(ticket_id))
        .exec(app.store.connection())
        .await
        .expect("deadline moved");
}

async fn my_tickets_and_my_overdue_tickets_are_the_ones_i_own_overdue_first(backend: Backend) {
    let mut app = App::start(backend).await;
    let (agent, supervisor, plumber) =
        (app.world.agent.clone(), app.world.supervisor.clone(), app.world.plumber.clone());
    let older = app.create(app.new_ticket("plumbing", "旧的")).await;
    let late = app.create(app.new_ticket("plumbing", "超时的")).await;
    let newer = app.create(app.new_ticket("plumbing", "新的")).await;
    let done = app.create(app.new_ticket("plumbing", "已解决")).await;
    app.resolve(&done).await;
    let theirs = app
        .tickets
        .create_ticket(authed(&supervisor, app.new_ticket("plumbing", "主管接的")))
        .await
        .expect("create")
        .into_inner();
    let assigned = app.assign_to_plumber(&newer).await;
    overdue(&app, &late.id).await;
    overdue(&app, &theirs.id).await;

    let mine = |token: &str| (token.to_owned(), pb::ListMyTicketsRequest::default());
    let (token, request) = mine(&agent);
    let found = app.tickets.list_my_tickets(authed(&token, request)).await.unwrap().into_inner().tickets;
    assert_eq!(ids(&found), [late.id.as_str(), older.id.as_str(), newer.id.as_str()], "overdue first, then the oldest");
    let paged = pb::ListMyTicketsRequest { page_size: 2, ..Default::default() };
    let first_page = app.tickets.list_my_tickets(authed(&agent, paged.clone())).await.unwrap().into_inner();
    assert_eq!(first_page.tickets.len(), 2);
    let rest = pb::ListMyTicketsRequest { page_token: first_page.next_page_token, ..paged };
    let rest = app.tickets.list_my_tickets(authed(&agent, rest)).await.unwrap().into_inner();
    assert_eq!(ids(&rest.tickets), [newer.id.as_str()]);

    let (token, request) = mine(&plumber);
    let found = app.tickets.list_my_tickets(authed(&token, request)).await.unwrap().into_inner().tickets;
    assert_eq!(ids(&found), [assigned.id.as_str()], "a technician's are the ones assigned to them");

    // Agents read what is late of their own work; managers and admins read it all.
    let late_list = pb::ListOverdueTicketsRequest { property_id: app.world.property_id.clone(), ..Default::default() };
    let mut reports = propdesk_proto::v1::report_service_client::ReportServiceClient::new(app.server.channel().await);
    let own = reports.list_overdue_tickets(authed(&agent, late_list.clone())).await.expect("agent").into_inner();
    assert_eq!(ids(&own.tickets), [late.id.as_str()]);
    let admin = app.world.admin.clone();
    let all = reports.list_overdue_tickets(authed(&admin, late_list.clone())).await.expect("admin").into_inner();
    let mut everyone: Vec<&str> = ids(&all.tickets);
    everyone.sort();
    let mut expected = [late.id.as_str(), theirs.id.as_str()];
    expected.sort();
    assert_eq!(everyone, expected);
    let dispatcher = app.world.dispatcher.clone();
    let result = reports.list_overdue_tickets(authed(&dispatcher, late_list)).await;
    assert_reason(result, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "a dispatcher reads reports");
}

/// Waits until `recipient` has a notification with `subject`; returns how long it took.
async fn notified(app: &App, recipient: &str, subject: &str) -> std::time::Duration {
    let started = std::time::Instant::now();
    let all = propdesk_store::deliveries::DeliveryFilter { limit: 1000, ..Default::default() };
    loop {
        let rows = app.store.list_deliveries(&all).await.expect("deliveries");
        if rows.iter().any(|n| n.recipient_id.as_deref() == Some(recipient) && n.subject == subject) {
            return started.elapsed();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "{recipient} never got {subject}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn staff_escalate_by_hand_and_the_supervisor_then_the_manager_hear_at_once(backend: Backend) {
    let mut app = App::start(backend).await;
    let manager_id = app.hire("Manager Wang", pb::StaffRole::Manager, pb::Department::Unspecified, true).await;
    let _notifier = app.start_notifier().await;
    let (agent, supervisor) = (app.world.agent.clone(), app.world.supervisor.clone());
    let t = app.create(app.new_ticket("plumbing", "楼上漏水，邻居不开门，物业处理不了")).await;
    // Dispatched, so the supervisor of its department is known.
    let t = app.assign_to_plumber(&t).await;

    let escalate = |t: &pb::Ticket, level: i32, reason: &str| pb::EscalateTicketRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        level,
        reason: reason.into(),
    };
    let up = app
        .tickets
        .escalate_ticket(authed(&agent, escalate(&t, 1, "住户情绪激动，需主管出面")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up.escalation_level, 1);
    let took = notified(&app, &app.world.supervisor_id, "escalation.by_staff").await;
    assert!(took < std::time::Duration::from_secs(5), "the supervisor heard after {took:?}");
    let history = app.history(&t.id).await;
    let event = history.iter().find(|e| e.r#type == pb::TicketEventType::Escalated as i32).expect("escalated");
    assert_eq!((event.cause, event.actor_id.as_str()), (pb::EventCause::Staff as i32, app.world.agent_id.as_str()));
    assert_eq!(event.note, "住户情绪激动，需主管出面");
    notified(&app, &app.world.plumber_id, "escalation.by_staff").await;

    let before = app.snapshot().await;
    let again = app.tickets.escalate_ticket(authed(&agent, escalate(&up, 1, "再次"))).await;
    let refused = assert_reason(again, Code::FailedPrecondition, pb::ErrorReason::EscalationNotHigher, "level 1 twice");
    assert_eq!(refused["current_level"], "1");
    let cases = [(escalate(&up, 3, "x"), "level"), (escalate(&up, 0, "x"), "level"), (escalate(&up, 2, " "), "reason")];
    for (request, field) in cases {
        let result = app.tickets.escalate_ticket(authed(&agent, request)).await;
        assert_status(result, Code::InvalidArgument, Some(field), field);
    }
    let stale = app.tickets.escalate_ticket(authed(&agent, escalate(&t, 2, "stale"))).await;
    assert_reason(stale, Code::Aborted, pb::ErrorReason::StaleVersion, "an escalation on a stale version");
    assert_eq!(app.snapshot().await, before);

    let top =
        app.tickets.escalate_ticket(authed(&supervisor, escalate(&up, 2, "需经理协调"))).await.unwrap().into_inner();
    assert_eq!(top.escalation_level, 2);
    notified(&app, &manager_id, "escalation.by_staff").await;
    let all = propdesk_store::deliveries::DeliveryFilter { limit: 1000, ..Default::default() };
    let rows = app.store.list_deliveries(&all).await.expect("deliveries");
    let agent_id = app.world.agent_id.clone();
    let told_agent = rows
        .iter()
        .filter(|n| n.recipient_id.as_deref() == Some(agent_id.as_str()) && n.subject == "escalation.by_staff");
    assert_eq!(told_agent.count(), 1, "the agent is told of the supervisor's escalation, not of their own");

    let cancelled = app.create(app.new_ticket("plumbing", "撤销")).await;
    let cancelled = app
        .tickets
        .cancel_ticket(authed(&agent, App::action(&cancelled, "resident withdrew")))
        .await
        .unwrap()
        .into_inner();
    let result = app.tickets.escalate_ticket(authed(&agent, escalate(&cancelled, 1, "late"))).await;
    let finished =
        assert_reason(result, Code::FailedPrecondition, pb::ErrorReason::TicketFinished, "a cancelled ticket");
    assert_eq!(finished["state"], "TICKET_STATE_CANCELLED");
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() })
}

fn update(t: &pb::Ticket, ticket: pb::TicketCorrection, paths: &[&str], reason: &str) -> pb::UpdateTicketRequest {
    pb::UpdateTicketRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        ticket: Some(ticket),
        update_mask: mask(paths),
        reason: reason.into(),
    }
}

fn seconds_between(from: &Option<prost_types::Timestamp>, to: &Option<prost_types::Timestamp>) -> i64 {
    to.as_ref().map_or(0, |t| t.seconds) - from.as_ref().map_or(0, |t| t.seconds)
}

async fn a_wrong_category_is_corrected_rerouted_with_its_clocks_replanned_and_the_history_shows_it(backend: Backend) {
    let mut app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    let agent = app.world.agent.clone();
    let created = app.create(app.new_ticket("plumbing", "卫生间地漏返味")).await;
    let (t, _) = app.wait_dispatched(&created.id).await;
    assert_eq!((t.department, t.priority), (pb::Department::Engineering as i32, pb::Priority::P3 as i32));

    // It is the neighbour's noise, not the plumbing: security's, not engineering's.
    let noise = pb::TicketCorrection { category: "noise".into(), ..Default::default() };
    let moved = app
        .tickets
        .update_ticket(authed(&agent, update(&t, noise, &["category"], "是楼上装修噪音")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.category, "noise");
    assert_eq!((moved.state, moved.department), (pb::TicketState::Transferred as i32, pb::Department::Security as i32));
    let history = app
        .wait_history(&t.id, std::time::Duration::from_secs(10), |h| {
            h.iter().filter(|e| e.r#type == pb::TicketEventType::Dispatched as i32).count() == 2
        })
        .await;
    let updated = history.iter().find(|e| e.r#type == pb::TicketEventType::Updated as i32).expect("an UPDATED event");
    assert_eq!(updated.note, "是楼上装修噪音");
    assert_eq!(updated.actor_id, app.world.agent_id);
    let change = &updated.changes[0];
    assert_eq!(
        (change.field.as_str(), change.before.as_str(), change.after.as_str()),
        ("category", "plumbing", "noise")
    );
    assert!(history.iter().any(|e| e.r#type == pb::TicketEventType::Transferred as i32));
    let routed = app.get(&t.id).await;
    assert_eq!(routed.department, pb::Department::Security as i32, "dispatch routed it to security");

    // A gas smell is P1: the clocks are re-planned from the report.
    let gas = pb::TicketCorrection { category: "gas".into(), ..Default::default() };
    let urgent =
        app.tickets.update_ticket(authed(&agent, update(&routed, gas, &["category"], ""))).await.unwrap().into_inner();
    assert_eq!(urgent.priority, pb::Priority::P1 as i32);
    let deadlines = urgent.deadlines.expect("deadlines");
    assert_eq!(
        seconds_between(&urgent.created_at, &deadlines.on_site_by),
        15 * 60,
        "on site within 15 minutes of the report"
    );
    assert_eq!(
        (urgent.state, urgent.department),
        (pb::TicketState::Transferred as i32, pb::Department::Engineering as i32),
        "gas is engineering's again"
    );
    let history = app
        .wait_history(&t.id, std::time::Duration::from_secs(10), |h| {
            h.iter().filter(|e| e.r#type == pb::TicketEventType::Dispatched as i32).count() == 3
        })
        .await;
    let last = history.iter().rev().find(|e| e.r#type == pb::TicketEventType::Updated as i32).expect("updated");
    let fields: Vec<(&str, &str, &str)> =
        last.changes.iter().map(|c| (c.field.as_str(), c.before.as_str(), c.after.as_str())).collect();
    assert_eq!(fields, [("category", "noise", "gas"), ("priority", "p3", "p1")]);

    // More words: the first ones stay, the new ones are found.
    let words = pb::TicketCorrection {
        description_addendum: "住户补充：晚上也有异味".into(),
        title: "地漏异味".into(),
        ..Default::default()
    };
    let latest = app.get(&t.id).await;
    let more = app
        .tickets
        .update_ticket(authed(&agent, update(&latest, words, &["description_addendum", "title"], "")))
        .await
        .unwrap()
        .into_inner();
    assert!(more.description.starts_with("卫生间地漏返味"), "{}", more.description);
    assert!(more.description.ends_with("住户补充：晚上也有异味"));
    assert_eq!(more.title, "地漏异味");
    assert_eq!(ids(&app.search(&agent, "异味").await), [t.id.as_str()]);
}

async fn a_priority_is_lowered_by_a_supervisor_with_a_reason_and_refused_to_an_agent(backend: Backend) {
    let mut app = App::start(backend).await;
    let (agent, supervisor) = (app.world.agent.clone(), app.world.supervisor.clone());
    let t = app.create(app.new_ticket("plumbing", "2-1203 厨房爆管，水流不止")).await;
    assert_eq!(t.priority, pb::Priority::P1 as i32, "raised by the urgent word");
    let p3 = pb::TicketCorrection { priority: pb::Priority::P3 as i32, ..Default::default() };
    let before = app.snapshot().await;
    let result = app.tickets.update_ticket(authed(&agent, update(&t, p3.clone(), &["priority"], "水已关"))).await;
    let denied = assert_reason(result, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "an agent lowers");
    assert_eq!(denied["action"], "lower a priority");
    let result = app.tickets.update_ticket(authed(&supervisor, update(&t, p3.clone(), &["priority"], " "))).await;
    assert_status(result, Code::InvalidArgument, Some("reason"), "lowering without a reason");
    assert_eq!(app.snapshot().await, before);

    let lowered = app
        .tickets
        .update_ticket(authed(&supervisor, update(&t, p3, &["priority"], "总阀已关，改为普通维修")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lowered.priority, pb::Priority::P3 as i32);
    assert_ne!(lowered.deadlines, t.deadlines, "the clocks are re-planned");
    // Raising is anyone's.
    let p2 = pb::TicketCorrection { priority: pb::Priority::P2 as i32, ..Default::default() };
    let raised =
        app.tickets.update_ticket(authed(&agent, update(&lowered, p2, &["priority"], ""))).await.unwrap().into_inner();
    assert_eq!(raised.priority, pb::Priority::P2 as i32);
    let history = app.history(&t.id).await;
    let priorities: Vec<(String, String)> = history
        .iter()
        .flat_map(|e| e.changes.iter())
        .filter(|c| c.field == "priority")
        .map(|c| (c.before.clone(), c.after.clone()))
        .collect();
    assert_eq!(priorities, [("p1".to_owned(), "p3".to_owned()), ("p3".to_owned(), "p2".to_owned())]);
}

async fn bad_updates_are_refused_naming_the_field_and_write_nothing(backend: Backend) {
    let mut app = App::start(backend).await;
    let agent = app.world.agent.clone();
    let t = app.create(app.new_ticket("plumbing", "漏水")).await;
    let before = app.snapshot().await;
    let none = pb::TicketCorrection::default();
    let other_unit = pb::TicketCorrection { unit_id: app.world.other_unit_id.clone(), ..Default::default() };
    let past = pb::TicketCorrection {
        promised_reply_at: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 60, nanos: 0 }),
        ..Default::default()
    };
    let cases: Vec<(&str, pb::UpdateTicketRequest, &str, &str)> = vec![
        ("no mask", update(&t, none.clone(), &[], ""), "update_mask", "INVALID_FIELD"),
        ("an unknown field", update(&t, none.clone(), &["colour"], ""), "update_mask", "INVALID_FIELD"),
        ("a field that cannot change", update(&t, none.clone(), &["state"], ""), "update_mask", "FIELD_NOT_UPDATABLE"),
        (
            "an unknown category",
            update(&t, pb::TicketCorrection { category: "nope".into(), ..Default::default() }, &["category"], ""),
            "ticket.category",
            "INVALID_FIELD",
        ),
        ("a unit of another property", update(&t, other_unit, &["unit_id"], ""), "ticket.unit_id", "INVALID_FIELD"),
        (
            "no unit and no location",
            update(&t, none.clone(), &["unit_id", "location"], ""),
            "ticket.location",
            "INVALID_FIELD",
        ),
        (
            "an empty addendum",
            update(&t, none.clone(), &["description_addendum"], ""),
            "ticket.description_addendum",
            "INVALID_FIELD",
        ),
        (
            "a title too long",
            update(&t, pb::TicketCorrection { title: "长".repeat(121), ..Default::default() }, &["title"], ""),
            "ticket.title",
            "INVALID_FIELD",
        ),
        (
            "a promise in the past",
            update(&t, past, &["promised_reply_at"], ""),
            "ticket.promised_reply_at",
            "INVALID_FIELD",
        ),
        ("no priority", update(&t, none.clone(), &["priority"], ""), "ticket.priority", "INVALID_FIELD"),
    ];
    for (case, request, field, reason) in cases {
        let result = app.tickets.update_ticket(authed(&agent, request)).await;
        let info = assert_status(result, Code::InvalidArgument, Some(field), case);
        assert_eq!(info.reason, reason, "{case}");
    }
    let stale = pb::UpdateTicketRequest { expected_version: t.version + 1, ..update(&t, none.clone(), &["title"], "") };
    let stale = pb::UpdateTicketRequest {
        ticket: Some(pb::TicketCorrection { title: "新".into(), ..Default::default() }),
        ..stale
    };
    assert_reason(
        app.tickets.update_ticket(authed(&agent, stale)).await,
        Code::Aborted,
        pb::ErrorReason::StaleVersion,
        "stale",
    );
    assert_eq!(app.snapshot().await, before);

    // The same value again changes nothing and writes nothing.
    let same = pb::TicketCorrection { category: "plumbing".into(), ..Default::default() };
    let unchanged =
        app.tickets.update_ticket(authed(&agent, update(&t, same, &["category"], ""))).await.unwrap().into_inner();
    assert_eq!(unchanged.version, t.version);
    assert_eq!(app.snapshot().await, before);
}

async fn a_common_area_report_is_linked_by_hand_to_an_incident_and_resolved_with_it(backend: Backend) {
    let mut app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    let (agent, supervisor, dispatcher) =
        (app.world.agent.clone(), app.world.supervisor.clone(), app.world.dispatcher.clone());
    let (_, incident_id) = app.outage().await;
    // The lobby's report has no unit: the grouping cannot see it.
    let lobby = app.create(app.lobby_ticket(1)).await;
    let (lobby, _) = app.wait_dispatched(&lobby.id).await;
    assert!(lobby.incident_id.is_empty());

    let link = |t: &pb::Ticket, incident_id: &str| pb::LinkToIncidentRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        incident_id: incident_id.to_owned(),
        reason: "大堂也停水，同一次停水".into(),
    };
    let result = app.tickets.link_to_incident(authed(&agent, link(&lobby, &incident_id))).await;
    assert_reason(result, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "an agent links");
    let linked =
        app.tickets.link_to_incident(authed(&dispatcher, link(&lobby, &incident_id))).await.unwrap().into_inner();
    assert_eq!(linked.incident_id, incident_id);
    let incident = app.get(&incident_id).await;
    assert_eq!(linked.assignee_id, incident.assignee_id, "the incident's person does the work");
    let reports_of = pb::ListTicketsRequest { incident_id: incident_id.clone(), ..Default::default() };
    let found = app.list(&agent, reports_of).await;
    assert_eq!(found.len(), 4, "the incident's reports, the lobby's among them");
    assert!(ids(&found).contains(&lobby.id.as_str()));

    // Bad links change nothing.
    let plain = app.create(app.lobby_ticket(2)).await;
    let (plain, _) = app.wait_dispatched(&plain.id).await;
    let before = app.snapshot().await;
    let again = app.tickets.link_to_incident(authed(&dispatcher, link(&linked, &incident_id))).await;
    let already = assert_reason(again, Code::FailedPrecondition, pb::ErrorReason::AlreadyLinked, "linked twice");
    assert_eq!(already["incident_id"], incident_id);
    let itself = app.tickets.link_to_incident(authed(&dispatcher, link(&incident, &incident_id))).await;
    assert_reason(
        itself,
        Code::FailedPrecondition,
        pb::ErrorReason::IncidentCannotBeLinked,
        "an incident to an incident",
    );
    let to_plain = app.tickets.link_to_incident(authed(&dispatcher, link(&plain, &lobby.id))).await;
    assert_reason(to_plain, Code::FailedPrecondition, pb::ErrorReason::NotAnIncident, "a ticket that is no incident");
    let missing = pb::LinkToIncidentRequest { incident_id: String::new(), ..link(&plain, &incident_id) };
    let result = app.tickets.link_to_incident(authed(&dispatcher, missing)).await;
    assert_status(result, Code::InvalidArgument, Some("incident_id"), "no incident named");
    let unlinked = pb::UnlinkFromIncidentRequest {
        ticket_id: plain.id.clone(),
        expected_version: plain.version,
        reason: String::new(),
    };
    let result = app.tickets.unlink_from_incident(authed(&dispatcher, unlinked)).await;
    assert_reason(result, Code::FailedPrecondition, pb::ErrorReason::NotLinked, "unlinking what is not linked");
    assert_eq!(app.snapshot().await, before);

    // Resolving the incident resolves the lobby's report with it.
    let incident = app.get(&incident_id).await;
    app.tickets.resolve_ticket(authed(&supervisor, App::action(&incident, "总阀修好"))).await.expect("resolve");
    let lobby_after = app.get(&lobby.id).await;
    assert_eq!(lobby_after.state, pb::TicketState::Resolved as i32, "resolved with the incident");
    let history = app.history(&lobby.id).await;
    let resolved = history.iter().find(|e| e.r#type == pb::TicketEventType::Resolved as i32).expect("resolved");
    assert_eq!(resolved.cause, pb::EventCause::IncidentResolved as i32);
    assert!(history.iter().any(|e| e.note.ends_with("大堂也停水，同一次停水")), "the reason is in the history");
}

async fn a_report_linked_by_mistake_is_unlinked_and_goes_its_own_way(backend: Backend) {
    let mut app = App::start(backend).await;
    let dispatcher = app.world.dispatcher.clone();
    // An incident written as dispatch opens one, for a report to join by hand.
    let incident = {
        use propdesk_domain::aggregate::NewIncident;
        let new = NewIncident {
            id: uuid::Uuid::now_v7().to_string(),
            property_id: app.world.property_id.clone(),
            building_id: app.world.building_id.clone(),
            location: "2号楼".into(),
            channel: propdesk_domain::Channel::Phone,
            category: propdesk_domain::aggregate::CategoryCode::new("water_supply"),
            department: propdesk_domain::Department::Engineering,
            priority: propdesk_domain::Priority::P2,
            assignee_id: Some(app.world.plumber_id.clone()),
            title: "2号楼停水".into(),
            description: "several units".into(),
            first_contact_agent_id: app.world.agent_id.clone(),
            deadlines: propdesk_domain::Deadlines::default(),
        };
        let now = propdesk_store::now();
        let (ticket, events) =
            propdesk_domain::Ticket::open_incident(new, 3, propdesk_domain::By::System("dispatch"), now);
        let created = app
            .store
            .create_tickets(vec![propdesk_store::NewTicket { ticket, events, trace_parent: None }])
            .await
            .unwrap();
        match created.into_iter().next() {
            Some(propdesk_store::Created::New(t)) => t.id.clone(),
            other => panic!("incident not written: {other:?}"),
        }
    };
    let lobby = app.create(app.lobby_ticket(7)).await;
    let request = pb::LinkToIncidentRequest {
        ticket_id: lobby.id.clone(),
        expected_version: lobby.version,
        incident_id: incident.clone(),
        reason: String::new(),
    };
    let linked = app.tickets.link_to_incident(authed(&dispatcher, request)).await.unwrap().into_inner();
    assert_eq!((linked.state, linked.incident_id.as_str()), (pb::TicketState::Dispatched as i32, incident.as_str()));
    let request = pb::UnlinkFromIncidentRequest {
        ticket_id: linked.id.clone(),
        expected_version: linked.version,
        reason: "不是同一件事".into(),
    };
    let alone = app.tickets.unlink_from_incident(authed(&dispatcher, request)).await.unwrap().into_inner();
    assert!(alone.incident_id.is_empty());
    assert_eq!(alone.assignee_id, app.world.plumber_id, "it keeps its person");
    let history = app.history(&lobby.id).await;
    let updated = history.iter().find(|e| e.r#type == pb::TicketEventType::Updated as i32).expect("updated");
    assert_eq!(
        (updated.changes[0].field.as_str(), updated.changes[0].before.as_str()),
        ("incident_id", incident.as_str())
    );
    assert_eq!(updated.note, "不是同一件事");
}

fn mark(t: &pb::Ticket, of: &str) -> pb::MarkDuplicateRequest {
    pb::MarkDuplicateRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        of_ticket_id: of.to_owned(),
        reason: "同一处漏水".into(),
    }
}

/// Polls until the ticket's follow-ups satisfy `done`; returns them.
async fn follow_ups_until(app: &mut App, ticket_id: &str, done: impl Fn(&[pb::FollowUp]) -> bool) -> Vec<pb::FollowUp> {
    let mut follow_ups = Vec::new();
    for _ in 0..300 {
        follow_ups = app.get(ticket_id).await.follow_ups;
        if done(&follow_ups) {
            return follow_ups;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the follow-ups of {ticket_id} never settled: {follow_ups:?}");
}

fn of_kind(follow_ups: &[pb::FollowUp], kind: pb::FollowUpKind) -> Vec<(i32, i32)> {
    follow_ups.iter().filter(|f| f.kind == kind as i32).map(|f| (f.state, f.method)).collect()
}

async fn a_duplicate_closes_into_its_original_and_its_reporter_gets_the_reply_and_callback(backend: Backend) {
    let mut app = App::start(backend).await;
    let _notifier = app.start_notifier().await;
    let (agent, admin, dispatcher) = (app.world.agent.clone(), app.world.admin.clone(), app.world.dispatcher.clone());
    let original = app.create(app.new_ticket("plumbing", "厨房漏水很严重")).await;
    // The neighbour below writes about the same leak.
    let letter = pb::CreateTicketRequest {
        reporter_name: "李四".into(),
        reporter_phone: "139 0000 1111".into(),
        channel: pb::Channel::Letter as i32,
        ..app.new_ticket("plumbing", "楼上漏水到我家厨房")
    };
    let duplicate = app.create(letter).await;

    let marked = app.tickets.mark_duplicate(authed(&agent, mark(&duplicate, &original.id))).await.unwrap().into_inner();
    assert_eq!(marked.state, pb::TicketState::Closed as i32);
    assert_eq!(marked.duplicate_of_id, original.id);
    let closed = app.history(&duplicate.id).await.pop().expect("an event");
    assert_eq!((closed.r#type, closed.cause), (pb::TicketEventType::Closed as i32, pb::EventCause::Duplicate as i32));
    let added = app.history(&original.id).await.pop().expect("an event");
    assert_eq!(added.r#type, pb::TicketEventType::DuplicateAdded as i32);
    assert!(added.note.contains(&duplicate.id) && added.note.ends_with("同一处漏水"), "{}", added.note);
    let original = app.get(&original.id).await;
    assert_eq!(original.state, pb::TicketState::New as i32, "the original carries the work");
    let duplicates = pb::ListTicketsRequest { duplicate_of_id: original.id.clone(), ..Default::default() };
    assert_eq!(ids(&app.list(&agent, duplicates).await), [duplicate.id.as_str()]);

    // Bad marks write nothing.
    let elsewhere = pb::CreateTicketRequest {
        property_id: app.world.other_property_id.clone(),
        unit_id: String::new(),
        location: "东门".into(),
        ..app.new_ticket("plumbing", "别的小区漏水")
    };
    let elsewhere = app.tickets.create_ticket(authed(&admin, elsewhere)).await.unwrap().into_inner();
    let third = app.create(app.new_ticket("plumbing", "厨房又漏水")).await;
    let before = app.snapshot().await;
    let refused = |result, field: &str, reason: pb::ErrorReason, case: &str| {
        let info = assert_status(result, Code::InvalidArgument, Some(field), case);
        assert_eq!(info.reason, reason.as_str_name(), "{case}");
    };
    let itself = app.tickets.mark_duplicate(authed(&agent, mark(&third, &third.id))).await;
    refused(itself, "of_ticket_id", pb::ErrorReason::DuplicateOfItself, "a duplicate of itself");
    let other_property = app.tickets.mark_duplicate(authed(&admin, mark(&third, &elsewhere.id))).await;
    refused(other_property, "of_ticket_id", pb::ErrorReason::OfAnotherProperty, "another property's original");
    let unnamed = app.tickets.mark_duplicate(authed(&agent, mark(&third, ""))).await;
    refused(unnamed, "of_ticket_id", pb::ErrorReason::InvalidField, "no original named");
    let unseen = app.tickets.mark_duplicate(authed(&agent, mark(&third, &elsewhere.id))).await;
    assert_reason(
        unseen,
        Code::PermissionDenied,
        pb::ErrorReason::PropertyNotServed,
        "an original the agent cannot see",
    );
    let chained = app.tickets.mark_duplicate(authed(&agent, mark(&third, &duplicate.id))).await;
    let metadata =
        assert_reason(chained, Code::FailedPrecondition, pb::ErrorReason::OriginalIsDuplicate, "of a duplicate");
    assert_eq!(metadata["duplicate_of_id"], original.id, "names the original to use");
    let has_duplicates = app.tickets.mark_duplicate(authed(&agent, mark(&original, &third.id))).await;
    assert_reason(
        has_duplicates,
        Code::FailedPrecondition,
        pb::ErrorReason::HasDuplicates,
        "an original with duplicates",
    );
    let marked_again = app.tickets.mark_duplicate(authed(&agent, mark(&marked, &third.id))).await;
    assert_reason(marked_again, Code::FailedPrecondition, pb::ErrorReason::TransitionNotAllowed, "closed already");
    let plumber = app.world.plumber.clone();
    let technician = app.tickets.mark_duplicate(authed(&plumber, mark(&third, &original.id))).await;
    assert_reason(technician, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "a technician marks");
    let early = pb::RecordCallbackRequest {
        ticket_id: duplicate.id.clone(),
        expected_version: marked.version,
        satisfaction: pb::Satisfaction::Satisfied as i32,
        comment: String::new(),
    };
    let early = app.tickets.record_callback(authed(&agent, early)).await;
    let metadata = assert_reason(early, Code::FailedPrecondition, pb::ErrorReason::CallbackNotDue, "before the work");
    assert_eq!(metadata["original_state"], "TICKET_STATE_NEW");
    assert_eq!(app.snapshot().await, before);

    // The original resolved, the duplicate's reporter is owed the reply in their own channel
    // (a letter to the unit) and the callback, by the original's callback deadline.
    let resolved = app.resolve(&original).await;
    let owed = follow_ups_until(&mut app, &duplicate.id, |f| f.len() == 2).await;
    let open = pb::FollowUpState::Open as i32;
    assert_eq!(of_kind(&owed, pb::FollowUpKind::Reply), [(open, pb::ReplyMethod::Letter as i32)]);
    assert_eq!(of_kind(&owed, pb::FollowUpKind::Callback), [(open, pb::ReplyMethod::PhoneCall as i32)]);
    let reply = owed.iter().find(|f| f.kind == pb::FollowUpKind::Reply as i32).expect("reply");
    assert_eq!(reply.destination, "Room 1203", "the letter goes to the unit's postal address");
    let callback_by = resolved.deadlines.as_ref().and_then(|d| d.callback_by);
    assert!(owed.iter().all(|f| f.due_by == callback_by && f.owner_id == app.world.agent_id));
    let callbacks = pb::ListFollowUpsRequest { kind: pb::FollowUpKind::Callback as i32, ..Default::default() };
    let items = app.follow_ups(&agent, callbacks).await;
    let theirs = items.iter().filter_map(|i| i.ticket.as_ref()).find(|t| t.id == duplicate.id).expect("on the list");
    assert_eq!(theirs.reporter_phone, "139 0000 1111", "the agent calls the duplicate's reporter");

    // Unsatisfied, the duplicate's reporter sends the original back for rework.
    let unsatisfied = pb::RecordCallbackRequest {
        ticket_id: duplicate.id.clone(),
        expected_version: app.get(&duplicate.id).await.version,
        satisfaction: pb::Satisfaction::Unsatisfied as i32,
        comment: "还在漏".into(),
    };
    let called = app.tickets.record_callback(authed(&agent, unsatisfied)).await.unwrap().into_inner();
    assert_eq!(called.state, pb::TicketState::Closed as i32, "the duplicate stays closed");
    assert_eq!(called.callback.map(|c| c.satisfaction), Some(pb::Satisfaction::Unsatisfied as i32));
    let reopened = app.get(&original.id).await;
    assert_eq!(reopened.state, pb::TicketState::Reopened as i32);
    let rework = app.history(&original.id).await.pop().expect("an event");
    assert_eq!(rework.cause, pb::EventCause::CallbackUnsatisfied as i32);
    let (done, cancelled) = (pb::FollowUpState::Done as i32, pb::FollowUpState::Cancelled as i32);
    let settled = follow_ups_until(&mut app, &duplicate.id, |f| f.iter().all(|f| f.state != open)).await;
    assert_eq!(of_kind(&settled, pb::FollowUpKind::Callback), [(done, pb::ReplyMethod::PhoneCall as i32)]);
    assert_eq!(of_kind(&settled, pb::FollowUpKind::Reply), [(cancelled, pb::ReplyMethod::Letter as i32)]);

    // The rework goes to the supervisor, as the original reporter's verdict would.
    let mut reopened = reopened;
    for _ in 0..300 {
        if reopened.escalation_level == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        reopened = app.get(&original.id).await;
    }
    assert_eq!(reopened.escalation_level, 1, "rework under the supervisor");

    // Reworked and resolved again: owed again, and this time satisfied.
    let assign = pb::AssignTicketRequest {
        ticket_id: reopened.id.clone(),
        expected_version: reopened.version,
        department: pb::Department::Engineering as i32,
        assignee_id: String::new(),
        note: String::new(),
    };
    let redispatched = app.tickets.assign_ticket(authed(&dispatcher, assign)).await.unwrap().into_inner();
    app.resolve(&redispatched).await;
    follow_ups_until(&mut app, &duplicate.id, |f| f.len() == 4).await;
    let satisfied = pb::RecordCallbackRequest {
        ticket_id: duplicate.id.clone(),
        expected_version: app.get(&duplicate.id).await.version,
        satisfaction: pb::Satisfaction::Satisfied as i32,
        comment: "修好了".into(),
    };
    app.tickets.record_callback(authed(&agent, satisfied.clone())).await.expect("callback");
    let settled = follow_ups_until(&mut app, &duplicate.id, |f| {
        of_kind(f, pb::FollowUpKind::Callback).iter().filter(|(state, _)| *state == done).count() == 2
    })
    .await;
    assert_eq!(settled.len(), 4);
    assert_eq!(app.get(&original.id).await.state, pb::TicketState::Resolved as i32, "a satisfied verdict leaves it");
    let twice = pb::RecordCallbackRequest { expected_version: app.get(&duplicate.id).await.version, ..satisfied };
    let twice = app.tickets.record_callback(authed(&agent, twice)).await;
    assert_reason(twice, Code::FailedPrecondition, pb::ErrorReason::CallbackNotDue, "called back twice");
}
