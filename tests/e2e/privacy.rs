//! Residents' personal data at rest: after creates, no column of any table holds a test
//! resident's or reporter's name or phone in clear (read straight from the database), and
//! look-ups by phone still find them; a rekey under load re-seals everything under a new
//! key, after which the old key can go.

use std::time::Duration;

use propdesk_proto::v1 as pb;
use propdesk_store::sealing::test_keys;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::helpers::{App, BINARY, Server, authed, new_request_id};
use crate::on_both_backends;

on_both_backends!(
    no_name_or_phone_is_stored_in_clear_and_a_rekey_lets_the_old_key_go,
    an_erased_resident_leaves_no_name_or_phone_even_sealed_and_their_tickets_stay,
    every_unmasked_read_is_recorded_and_only_admins_list_the_records,
    the_retention_job_anonymises_exactly_the_old_finished_tickets_and_no_figure_moves,
);

const RESIDENT_NAME: &str = "欧阳明月";
const RESIDENT_PHONE: &str = "13912340001";
const REPORTER_NAME: &str = "司马青山";
/// As the caller wrote it; stored nowhere in any of its forms.
const REPORTER_PHONE: &str = "+86 139-1234-0002";
const SECRETS: [&str; 6] = [RESIDENT_NAME, RESIDENT_PHONE, REPORTER_NAME, "13912340002", "139-1234-0002", "1234-0002"];

/// The test resident, in the test unit, created by the admin.
async fn the_resident(app: &mut App) -> pb::Resident {
    let resident = pb::CreateResidentRequest {
        unit_id: app.world.unit_id.clone(),
        name: RESIDENT_NAME.into(),
        phone: RESIDENT_PHONE.into(),
        request_id: new_request_id(),
        language: String::new(),
    };
    let admin = app.world.admin.clone();
    app.directory.create_resident(authed(&admin, resident)).await.expect("resident").into_inner()
}

/// A ticket naming `resident` (their contact details come from the directory).
fn theirs(app: &App, resident: &pb::Resident, description: &str) -> pb::CreateTicketRequest {
    pb::CreateTicketRequest {
        resident_id: resident.id.clone(),
        reporter_name: String::new(),
        reporter_phone: String::new(),
        ..app.new_ticket("plumbing", description)
    }
}

/// Every value of every table, as text, one string per row.
async fn every_row(app: &App) -> Vec<String> {
    let db = app.store.connection();
    let backend = db.get_database_backend();
    let tables_sql = match backend {
        DbBackend::Postgres => "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        _ => "SELECT name FROM sqlite_master WHERE type = 'table'",
    };
    let tables: Vec<String> = db
        .query_all_raw(Statement::from_string(backend, tables_sql))
        .await
        .expect("tables")
        .iter()
        .map(|row| row.try_get_by_index(0).expect("table name"))
        .collect();
    assert!(tables.iter().any(|t| t == "tickets") && tables.iter().any(|t| t == "residents"), "{tables:?}");
    let mut rows = Vec::new();
    for table in tables {
        let sql = match backend {
            DbBackend::Postgres => format!("SELECT t::text FROM \"{table}\" t"),
            _ => {
                let columns: Vec<String> = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT name FROM pragma_table_info('{table}')"),
                    ))
                    .await
                    .expect("columns")
                    .iter()
                    .map(|row| row.try_get_by_index(0).expect("column name"))
                    .collect();
                if columns.is_empty() {
                    continue;
                }
                let quoted: Vec<String> = columns.iter().map(|c| format!("quote(\"{c}\")")).collect();
                format!("SELECT {} FROM \"{table}\"", quoted.join(" || '|' || "))
            }
        };
        for row in db.query_all_raw(Statement::from_string(backend, sql)).await.expect("rows") {
            let text: Option<String> = row.try_get_by_index(0).expect("row as text");
            rows.push(format!("{table}: {}", text.unwrap_or_default()));
        }
    }
    rows
}

fn leaks(rows: &[String]) -> Vec<&String> {
    rows.iter().filter(|row| SECRETS.iter().any(|secret| row.contains(secret))).collect()
}

/// Every sealed value in `rows` opened with the test keys (a sealed field names its column).
fn opened_values(rows: &[String]) -> Vec<String> {
    const FIELDS: [&str; 6] = [
        "tickets.reporter_name",
        "tickets.reporter_phone",
        "tickets.case_record",
        "residents.name",
        "residents.phone",
        "notifications.body",
    ];
    let keys = test_keys::install();
    let mut opened = Vec::new();
    for row in rows {
        for (start, _) in row.match_indices("pd1.") {
            let token: String = row[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            if let Some(plain) = FIELDS.iter().find_map(|field| keys.open(field, &token).ok()) {
                opened.push(plain);
            }
        }
    }
    opened
}

async fn no_name_or_phone_is_stored_in_clear_and_a_rekey_lets_the_old_key_go(backend: propdesk_testkit::Backend) {
    let mut app = App::start(backend).await;
    let agent = app.world.agent.clone();
    let resident = the_resident(&mut app).await;
    assert_eq!((resident.name.as_str(), resident.phone.as_str()), (RESIDENT_NAME, RESIDENT_PHONE));
    let by_reporter = pb::CreateTicketRequest {
        reporter_name: REPORTER_NAME.into(),
        reporter_phone: REPORTER_PHONE.into(),
        ..app.new_ticket("plumbing", "卫生间漏水到楼下")
    };
    let reported = app.create(by_reporter).await;
    let by_resident = theirs(&app, &resident, "厨房下水道堵塞");
    let of_resident = app.create(by_resident).await;
    assert_eq!(of_resident.reporter_phone, RESIDENT_PHONE, "the resident's number, opened for the agent");

    let rows = every_row(&app).await;
    assert!(rows.iter().any(|r| r.starts_with("tickets:")), "the scan reads the tickets");
    assert_eq!(leaks(&rows), Vec::<&String>::new(), "names or phones in clear");
    assert!(rows.iter().any(|r| r.starts_with("residents:") && r.contains("pd1.test1.")), "residents are sealed");

    // Look-ups by phone still find them, however the number is written.
    let by_phone = pb::ListTicketsRequest { reporter_phone: "13912340002".into(), ..Default::default() };
    let found = app.tickets.list_tickets(authed(&agent, by_phone)).await.expect("by phone").into_inner().tickets;
    assert_eq!(found.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [reported.id.as_str()]);
    assert_eq!(found[0].reporter_name, REPORTER_NAME);
    let residents = pb::ListResidentsRequest {
        property_id: app.world.property_id.clone(),
        phone: "139 1234 0001".into(),
        ..Default::default()
    };
    let listed = app.directory.list_residents(authed(&agent, residents)).await.expect("residents").into_inner();
    assert_eq!(listed.residents.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [resident.id.as_str()]);
    let by_name = pb::ListResidentsRequest {
        property_id: app.world.property_id.clone(),
        name_contains: "明月".into(),
        ..Default::default()
    };
    let listed = app.directory.list_residents(authed(&agent, by_name)).await.expect("by name").into_inner();
    assert_eq!(listed.residents.len(), 1, "a fragment of a sealed name still finds the resident");

    // Rotation: a new key becomes active on a new intake (the old one still opens older
    // values), tickets keep coming in through it while `propdesk rekey` runs.
    let new_key = format!("k2026:{}", propdesk_store::sealing::KeyRing::generate_key().expect("key"));
    let mut rotated = app.env.clone();
    rotated
        .retain(|(key, _)| !key.starts_with("PROPDESK__PRIVACY__DATA_KEYS") && *key != "PROPDESK__PRIVACY__ACTIVE_KEY");
    rotated.push(("PROPDESK__PRIVACY__DATA_KEYS", format!("{},{new_key}", test_keys::DATA_KEYS)));
    rotated.push(("PROPDESK__PRIVACY__ACTIVE_KEY", "k2026".to_owned()));
    let intake = Server::start(&["intake"], &rotated, None).await;
    let tickets = pb::ticket_service_client::TicketServiceClient::new(intake.channel().await);
    let template = pb::CreateTicketRequest {
        reporter_name: REPORTER_NAME.into(),
        reporter_phone: REPORTER_PHONE.into(),
        ..app.new_ticket("plumbing", "走廊灯不亮")
    };
    let load = {
        let agent = agent.clone();
        let mut tickets = tickets.clone();
        tokio::spawn(async move {
            let mut created = Vec::new();
            for n in 0..40 {
                let request = crate::helpers::pb_create(&template, n);
                created.push(
                    tickets.create_ticket(authed(&agent, request)).await.expect("create under load").into_inner().id,
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            created
        })
    };
    let rekey = tokio::process::Command::new(BINARY)
        .args(["rekey", "--batch", "7"])
        .envs(rotated.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PROPDESK__LOG__FILTER", "warn")
        .status()
        .await
        .expect("run propdesk rekey");
    assert!(rekey.success(), "propdesk rekey failed");
    let created = load.await.expect("the load");
    drop(intake);

    let rows = every_row(&app).await;
    assert_eq!(leaks(&rows), Vec::<&String>::new(), "names or phones in clear after the rekey");
    let still_old: Vec<&String> = rows.iter().filter(|r| r.contains("pd1.test1.")).collect();
    assert_eq!(still_old, Vec::<&String>::new(), "every value re-sealed under the new key");

    // The old key removed: everything still reads, nothing was lost.
    let mut new_only = rotated.clone();
    new_only.retain(|(key, _)| *key != "PROPDESK__PRIVACY__DATA_KEYS");
    new_only.push(("PROPDESK__PRIVACY__DATA_KEYS", new_key));
    let intake = Server::start(&["intake"], &new_only, None).await;
    let mut tickets_now = pb::ticket_service_client::TicketServiceClient::new(intake.channel().await);
    for id in created.iter().chain([&reported.id, &of_resident.id]) {
        let read = tickets_now.get_ticket(authed(&agent, pb::GetTicketRequest { ticket_id: id.clone() })).await;
        let ticket = read.expect("every ticket reads with the new key alone").into_inner();
        assert!([REPORTER_NAME, RESIDENT_NAME].contains(&ticket.reporter_name.as_str()), "{}", ticket.reporter_name);
    }
    let by_phone =
        pb::ListTicketsRequest { reporter_phone: REPORTER_PHONE.into(), page_size: 100, ..Default::default() };
    let found = tickets_now.list_tickets(authed(&agent, by_phone)).await.expect("by phone").into_inner().tickets;
    assert_eq!(found.len(), created.len() + 1, "the phone look-up finds every ticket of that caller");
    let mut directory = pb::directory_service_client::DirectoryServiceClient::new(intake.channel().await);
    let read = directory
        .list_residents(authed(
            &agent,
            pb::ListResidentsRequest {
                property_id: app.world.property_id.clone(),
                phone: RESIDENT_PHONE.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("residents with the new key alone")
        .into_inner();
    assert_eq!(read.residents[0].name, RESIDENT_NAME);
}

async fn an_erased_resident_leaves_no_name_or_phone_even_sealed_and_their_tickets_stay(
    backend: propdesk_testkit::Backend,
) {
    let mut app = App::start(backend).await;
    let admin = app.world.admin.clone();
    let agent = app.world.agent.clone();
    let resident = the_resident(&mut app).await;
    // Theirs: one naming them, one reported from their number (written another way).
    let named = theirs(&app, &resident, "厨房下水道堵塞");
    let named = app.create(named).await;
    let from_their_phone = pb::CreateTicketRequest {
        reporter_name: RESIDENT_NAME.into(),
        reporter_phone: "+86 139 1234 0001".into(),
        ..app.new_ticket("plumbing", "楼道灯坏了")
    };
    let from_their_phone = app.create(from_their_phone).await;
    let someone_else = app.create(app.new_ticket("plumbing", "水压太低")).await;
    let opened = opened_values(&every_row(&app).await);
    assert!(opened.iter().any(|v| v == RESIDENT_PHONE), "the scan opens sealed values: {opened:?}");

    // Their right of access first: everything held about them, as one document.
    let export = pb::ExportResidentDataRequest { resident_id: resident.id.clone() };
    crate::helpers::assert_reason(
        app.directory.export_resident_data(authed(&app.world.outsider.clone(), export.clone())).await,
        tonic::Code::PermissionDenied,
        pb::ErrorReason::PropertyNotServed,
        "an export for another property's staff",
    );
    let exported = app.directory.export_resident_data(authed(&admin, export)).await.expect("export").into_inner();
    assert_eq!(exported.tickets, 2);
    let document: serde_json::Value = serde_json::from_str(&exported.json).expect("JSON");
    assert_eq!(document["resident"]["name"], RESIDENT_NAME);
    assert_eq!(document["resident"]["phone"], RESIDENT_PHONE);
    let mut ids: Vec<&str> =
        document["tickets"].as_array().expect("tickets").iter().map(|t| t["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = [named.id.as_str(), from_their_phone.id.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(document["tickets"].as_array().unwrap().iter().all(|t| t["history"][0]["type"] == "created"));

    // Refused, with nothing changed: an agent; no reason.
    let before = app.snapshot().await;
    let erase = |reason: &str| pb::EraseResidentRequest { resident_id: resident.id.clone(), reason: reason.into() };
    crate::helpers::assert_reason(
        app.directory.erase_resident(authed(&agent, erase("本人申请"))).await,
        tonic::Code::PermissionDenied,
        pb::ErrorReason::RoleNotAllowed,
        "an agent erases",
    );
    crate::helpers::assert_status(
        app.directory.erase_resident(authed(&admin, erase("  "))).await,
        tonic::Code::InvalidArgument,
        Some("reason"),
        "no reason",
    );
    assert_eq!(app.snapshot().await, before);

    let erased = app.directory.erase_resident(authed(&admin, erase("本人书面申请删除个人信息 #2026-118"))).await;
    let erased = erased.expect("erase").into_inner();
    assert_eq!(erased.tickets_erased, 2);
    let kept = erased.resident.expect("the record stays");
    assert_eq!((kept.name.as_str(), kept.phone.as_str(), kept.unit_id.as_str()), ("", "", app.world.unit_id.as_str()));
    assert!(kept.erased_at.is_some());

    for ticket in [&named, &from_their_phone] {
        let now = app.get(&ticket.id).await;
        assert_eq!((now.reporter_name.as_str(), now.reporter_phone.as_str()), ("", ""), "{}", ticket.id);
        assert_eq!((now.state, now.category.as_str()), (ticket.state, "plumbing"), "the ticket itself stays");
        let history = app.history(&ticket.id).await;
        let event = history
            .iter()
            .find(|e| e.r#type == pb::TicketEventType::PersonalDataErased as i32)
            .expect("the erasure is in the history");
        assert_eq!(event.note, "本人书面申请删除个人信息 #2026-118");
        assert!(!event.actor_id.is_empty());
    }
    assert_eq!(app.get(&someone_else.id).await.reporter_phone, "13812345678", "another caller's ticket is untouched");

    // Found by that phone: nothing. Stored anywhere, even sealed: nothing.
    let by_phone = pb::ListTicketsRequest { reporter_phone: RESIDENT_PHONE.into(), ..Default::default() };
    assert!(app.tickets.list_tickets(authed(&agent, by_phone)).await.expect("list").into_inner().tickets.is_empty());
    let residents = pb::ListResidentsRequest {
        property_id: app.world.property_id.clone(),
        phone: RESIDENT_PHONE.into(),
        ..Default::default()
    };
    assert!(
        app.directory.list_residents(authed(&agent, residents)).await.expect("list").into_inner().residents.is_empty()
    );
    let rows = every_row(&app).await;
    assert_eq!(leaks(&rows), Vec::<&String>::new());
    let traces: Vec<String> =
        opened_values(&rows).into_iter().filter(|v| v.contains(RESIDENT_PHONE) || v.contains(RESIDENT_NAME)).collect();
    assert_eq!(traces, Vec::<String>::new(), "the resident's name or phone, sealed somewhere");

    let again = app.directory.erase_resident(authed(&admin, erase("重复申请"))).await.expect("again").into_inner();
    assert_eq!(again.tickets_erased, 0, "erasing twice changes nothing");
}

async fn every_unmasked_read_is_recorded_and_only_admins_list_the_records(backend: propdesk_testkit::Backend) {
    let mut app = App::start(backend).await;
    let (admin, agent, technician) =
        (app.world.admin.clone(), app.world.agent.clone(), app.world.other_technician.clone());
    let resident = the_resident(&mut app).await;
    let theirs = theirs(&app, &resident, "阳台地漏返水");
    let ticket = app.create(theirs).await;
    let get = || pb::GetTicketRequest { ticket_id: ticket.id.clone() };
    app.tickets.get_ticket(authed(&agent, get())).await.expect("the agent reads it");
    let by_phone = pb::ListTicketsRequest { reporter_phone: RESIDENT_PHONE.into(), ..Default::default() };
    app.tickets.list_tickets(authed(&agent, by_phone)).await.expect("the agent finds it by phone");
    let residents = pb::ListResidentsRequest { property_id: app.world.property_id.clone(), ..Default::default() };
    app.directory.list_residents(authed(&agent, residents)).await.expect("the agent lists residents");
    // Masked for a technician not on the job: nothing to record.
    let masked = app.tickets.get_ticket(authed(&technician, get())).await.expect("masked read").into_inner();
    assert_ne!(masked.reporter_phone, RESIDENT_PHONE);

    let list = |staff_id: &str, resident_id: &str| pb::ListAccessRecordsRequest {
        staff_id: staff_id.into(),
        resident_id: resident_id.into(),
        page_size: 200,
        ..Default::default()
    };
    let mut audit = pb::audit_service_client::AuditServiceClient::new(app.server.channel().await);
    crate::helpers::assert_reason(
        audit.list_access_records(authed(&agent, list("", ""))).await,
        tonic::Code::PermissionDenied,
        pb::ErrorReason::RoleNotAllowed,
        "an agent reads the access records",
    );
    let records = audit
        .list_access_records(authed(&admin, list(&app.world.agent_id, &resident.id)))
        .await
        .expect("the admin reads them")
        .into_inner()
        .records;
    let calls: Vec<(&str, &str, i32)> =
        records.iter().map(|r| (r.rpc.as_str(), r.ticket_id.as_str(), r.action)).collect();
    let read = pb::AccessAction::Read as i32;
    for expected in [
        ("/propdesk.v1.TicketService/GetTicket", ticket.id.as_str(), read),
        ("/propdesk.v1.TicketService/ListTickets", ticket.id.as_str(), read),
        ("/propdesk.v1.DirectoryService/ListResidents", "", read),
    ] {
        assert!(calls.contains(&expected), "{expected:?} in {calls:?}");
    }
    assert!(records.iter().all(|r| r.staff_id == app.world.agent_id && r.role == pb::StaffRole::Agent as i32));
    assert!(
        calls.iter().all(|(rpc, ..)| !rpc.ends_with("/CreateTicket")),
        "a create's echo of what the agent entered is its history's CREATED event, not an access"
    );
    assert!(records.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let created = audit.list_access_records(authed(&admin, list("", &resident.id))).await.expect("by resident");
    let actions: Vec<i32> = created.into_inner().records.iter().map(|r| r.action).collect();
    assert!(actions.contains(&(pb::AccessAction::Create as i32)), "the directory write is recorded: {actions:?}");
    let technicians = audit
        .list_access_records(authed(
            &admin,
            pb::ListAccessRecordsRequest { ticket_id: ticket.id.clone(), ..list("", "") },
        ))
        .await
        .expect("by ticket")
        .into_inner()
        .records;
    assert!(technicians.iter().all(|r| r.role != pb::StaffRole::Technician as i32), "a masked read is not recorded");
}

/// Sets a ticket's times as if `days` had passed since it ended.
async fn age(app: &App, ticket_id: &str, days: i64) {
    let then = chrono::Utc::now() - chrono::TimeDelta::days(days);
    let db = app.store.connection();
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE tickets SET updated_at = $1, closed_at = CASE WHEN closed_at IS NULL THEN NULL ELSE $1 END WHERE id = $2"
        }
        _ => {
            "UPDATE tickets SET updated_at = ?1, closed_at = CASE WHEN closed_at IS NULL THEN NULL ELSE ?1 END WHERE id = ?2"
        }
    };
    let values = [sea_orm::Value::from(then), sea_orm::Value::from(ticket_id.to_owned())];
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await.expect("age the ticket");
}

async fn the_retention_job_anonymises_exactly_the_old_finished_tickets_and_no_figure_moves(
    backend: propdesk_testkit::Backend,
) {
    let mut app = App::start(backend).await;
    let (admin, agent) = (app.world.admin.clone(), app.world.agent.clone());
    let answered = |app: &App, words: &str| pb::CreateTicketRequest {
        kind: pb::TicketKind::Enquiry as i32,
        channel: pb::Channel::WalkIn as i32,
        answer_on_the_spot: "每月15日前缴纳。".into(),
        ..app.new_ticket("general_enquiry", words)
    };
    let old_closed = app.create(answered(&app, "物业费什么时候交？")).await;
    assert_eq!(old_closed.state, pb::TicketState::Closed as i32);
    let recent_closed = app.create(answered(&app, "停车费怎么交？")).await;
    let old_open = app.create(app.new_ticket("plumbing", "水管滴水")).await;
    let cancelled = app.create(app.new_ticket("plumbing", "报错了")).await;
    app.tickets.cancel_ticket(authed(&agent, App::action(&cancelled, "报错"))).await.expect("cancel");
    for id in [&old_closed.id, &old_open.id, &cancelled.id] {
        age(&app, id, 40).await;
    }

    let reports = pb::report_service_client::ReportServiceClient::new(app.server.channel().await);
    let now = chrono::Utc::now();
    let period = pb::GetServiceReportRequest {
        property_id: app.world.property_id.clone(),
        period_start: Some(prost_types::Timestamp {
            seconds: (now - chrono::TimeDelta::days(90)).timestamp(),
            nanos: 0,
        }),
        period_end: Some(prost_types::Timestamp { seconds: (now + chrono::TimeDelta::days(1)).timestamp(), nanos: 0 }),
        department: 0,
    };
    let report = || {
        let (period, admin, mut reports) = (period.clone(), admin.clone(), reports.clone());
        async move {
            use prost::Message;
            reports.get_service_report(authed(&admin, period)).await.expect("report").into_inner().encode_to_vec()
        }
    };
    let before = report().await;

    // The property keeps contact data 30 days (the shortest allowed).
    let keep = |days| pb::UpdatePropertyRequest {
        property_id: app.world.property_id.clone(),
        contact_retention_days: Some(days),
        ..Default::default()
    };
    for days in [29, 7301] {
        crate::helpers::assert_status(
            app.directory.update_property(authed(&admin, keep(days))).await,
            tonic::Code::InvalidArgument,
            Some("contact_retention_days"),
            "a retention period out of bounds",
        );
    }
    let property = app.directory.update_property(authed(&admin, keep(30))).await.expect("set").into_inner();
    assert_eq!(property.contact_retention_days, 30);

    let env = app.env.clone();
    let run = || {
        std::process::Command::new(BINARY)
            .args(["retention", "--batch", "1"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PROPDESK__LOG__FILTER", "warn")
            .status()
            .expect("run propdesk retention")
    };
    assert!(run().success(), "propdesk retention failed");
    for (ticket, anonymised) in [(&old_closed, true), (&cancelled, true), (&recent_closed, false), (&old_open, false)] {
        let now = app.get(&ticket.id).await;
        let contact = (now.reporter_name.as_str(), now.reporter_phone.as_str());
        if anonymised {
            assert_eq!(contact, (propdesk_store::retention::ANONYMOUS, ""), "{}", ticket.description);
        } else {
            assert_eq!(contact, ("张三", "13812345678"), "{}", ticket.description);
        }
    }
    let by_phone = pb::ListTicketsRequest { reporter_phone: "13812345678".into(), ..Default::default() };
    let mut found: Vec<String> = app
        .tickets
        .list_tickets(authed(&agent, by_phone))
        .await
        .expect("list")
        .into_inner()
        .tickets
        .into_iter()
        .map(|t| t.id)
        .collect();
    found.sort();
    let mut kept = vec![recent_closed.id.clone(), old_open.id.clone()];
    kept.sort();
    assert_eq!(found, kept, "the phone finds only the tickets that keep it");
    assert_eq!(report().await, before, "every figure of the report is unchanged, byte for byte");
    assert!(run().success(), "a second pass finds nothing more to do");
    assert_eq!(app.get(&recent_closed.id).await.reporter_name, "张三");
}
