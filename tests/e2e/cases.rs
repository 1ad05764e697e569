//! Long cases end to end: a neighbour dispute's record (parties, steps, the 居委会 taking
//! part), waiting on the community work station without breaching, the review date's
//! reminder and escalation, and the month's review counting the wait apart.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::Code;

use crate::helpers::{App, assert_reason, assert_status, authed};

crate::on_both_backends!(a_pet_dispute_is_recorded_step_by_step_and_waits_on_the_work_station_without_breaching);

/// Complaints resolve in 6 s and nothing else fires during the test; open round the clock.
const SETTINGS: &str = r#"
[policy.sla]
callback_secs = 600
complaint_first_reply_secs = 600

[policy.sla.p3]
acknowledge_secs = 600
on_site_secs = 600
resolve_secs = 6
working_hours_only = false

[policy.working_hours]
utc_offset_minutes = 480
days = [1, 2, 3, 4, 5, 6, 7]
opens = "00:00:00"
closes = "00:00:00"
holidays = []

[notifier]
max_sleep_ms = 500
"#;

fn ts(at: chrono::DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: 0 })
}

async fn a_pet_dispute_is_recorded_step_by_step_and_waits_on_the_work_station_without_breaching(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("propdesk.toml");
    std::fs::write(&file, SETTINGS).expect("write settings");
    let mut app = App::start_with(backend, &[("PROPDESK_CONFIG", file.display().to_string())]).await;
    let cs_supervisor =
        app.hire("CS Supervisor Li", pb::StaffRole::Supervisor, pb::Department::CustomerService, true).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;
    let (agent, technician) = (app.world.agent.clone(), app.world.plumber.clone());

    let complaint = pb::CreateTicketRequest {
        kind: pb::TicketKind::Complaint as i32,
        ..app.new_ticket("neighbour_dispute", "楼上邻居的狗每天夜里叫，沟通过没用")
    };
    let complaint = app.create(complaint).await;
    let (mut ticket, _) = app.wait_dispatched(&complaint.id).await;

    // The parties: both units, and the 居委会.
    let upstairs = app.add_unit("1303").await;
    let parties = [
        (pb::CasePartyKind::Resident, "a", app.world.unit_id.clone(), "张三", "13812345678"),
        (pb::CasePartyKind::Resident, "b", upstairs, "王五", "13700001111"),
        (pb::CasePartyKind::ResidentsCommittee, "", String::new(), "阳光社区居委会", "0571-88886666"),
    ];
    for (kind, side, unit_id, name, contact) in parties {
        let party = pb::CaseParty {
            kind: kind as i32,
            side: side.into(),
            unit_id,
            name: name.into(),
            contact: contact.into(),
            ..Default::default()
        };
        let request = pb::AddCasePartyRequest {
            ticket_id: ticket.id.clone(),
            expected_version: ticket.version,
            party: Some(party),
        };
        ticket = app.tickets.add_case_party(authed(&agent, request)).await.expect("party").into_inner();
    }
    let case = ticket.case.clone().expect("a case");
    let ids: Vec<String> = case.parties.iter().map(|p| p.id.clone()).collect();
    let (side_a, side_b, committee) = (ids[0].clone(), ids[1].clone(), ids[2].clone());

    // Three steps, the last one remembered late: the timeline reads in the order they happened.
    let now = Utc::now();
    let steps = [
        (now - TimeDelta::hours(50), "电话联系楼上住户，说明情况", vec![side_b.clone()], "对方表示会注意"),
        (
            now - TimeDelta::hours(2),
            "居委会上门调解",
            vec![committee.clone(), side_a.clone(), side_b.clone()],
            "约定夜间狗关阳台内",
        ),
        (
            now - TimeDelta::hours(26),
            "约双方到客服中心协调",
            vec![side_a.clone(), side_b.clone(), committee.clone()],
            "未达成一致",
        ),
    ];
    for (at, what, party_ids, outcome) in steps.clone() {
        let request = pb::RecordCaseStepRequest {
            ticket_id: ticket.id.clone(),
            expected_version: ticket.version,
            step: Some(pb::CaseStep {
                at: ts(at),
                what: what.into(),
                party_ids,
                outcome: outcome.into(),
                ..Default::default()
            }),
            next_step: "等待社区工作站回复调解结果".into(),
            next_step_due: ts(now + TimeDelta::days(2)),
        };
        ticket = app.tickets.record_case_step(authed(&agent, request)).await.expect("step").into_inner();
    }

    // Bad steps and waits change nothing.
    let before = app.snapshot().await;
    let step = |at, party_ids: Vec<String>| pb::RecordCaseStepRequest {
        ticket_id: ticket.id.clone(),
        expected_version: ticket.version,
        step: Some(pb::CaseStep { at: ts(at), what: "回访".into(), party_ids, ..Default::default() }),
        next_step: String::new(),
        next_step_due: None,
    };
    let future = app.tickets.record_case_step(authed(&agent, step(now + TimeDelta::hours(1), vec![]))).await;
    assert_status(future, Code::InvalidArgument, Some("step.at"), "a step in the future");
    let stranger = uuid::Uuid::now_v7().to_string();
    let unknown = app.tickets.record_case_step(authed(&agent, step(now, vec![stranger]))).await;
    assert_status(unknown, Code::InvalidArgument, Some("step.party_ids"), "a party not on the case");
    let wait = |party_id: &str, review_by| pb::WaitOnOutsidePartyRequest {
        ticket_id: ticket.id.clone(),
        expected_version: ticket.version,
        party_id: party_id.to_owned(),
        reason: "等待社区工作站调解结果".into(),
        review_by,
    };
    for (case, review_by) in [
        ("no review date", None),
        ("a review date in the past", ts(now - TimeDelta::hours(1))),
        ("a review date over 90 days ahead", ts(now + TimeDelta::days(91))),
    ] {
        let result = app.tickets.wait_on_outside_party(authed(&agent, wait(&committee, review_by))).await;
        assert_status(result, Code::InvalidArgument, Some("review_by"), case);
    }
    let on_a_resident =
        app.tickets.wait_on_outside_party(authed(&agent, wait(&side_a, ts(now + TimeDelta::days(2))))).await;
    assert_status(on_a_resident, Code::InvalidArgument, Some("party_id"), "waiting on a resident");
    let by_technician =
        app.tickets.wait_on_outside_party(authed(&technician, wait(&committee, ts(now + TimeDelta::days(2))))).await;
    assert_reason(by_technician, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "a technician elsewhere");
    assert_eq!(app.snapshot().await, before, "nothing written");

    // Waiting on the work station: the review date ("two days", shrunk to 3 s) comes before
    // the resolve deadline would have; the clocks are paused meanwhile.
    let review_by = Utc::now() + TimeDelta::seconds(3);
    let waiting = app.tickets.wait_on_outside_party(authed(&agent, wait(&committee, ts(review_by)))).await;
    let waiting = waiting.expect("waiting").into_inner();
    assert_eq!(waiting.state, pb::TicketState::OnHold as i32);
    assert_eq!(
        waiting.case.as_ref().and_then(|c| c.waiting.as_ref()).map(|w| w.party_id.as_str()),
        Some(committee.as_str())
    );
    let history = app
        .wait_history(&ticket.id, Duration::from_secs(20), |h| h.iter().any(|e| e.note.starts_with("review breach")))
        .await;
    assert!(history.iter().any(|e| e.note.starts_with("review reminder")), "the owner was reminded first");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let history = app.history(&ticket.id).await;
    assert!(!history.iter().any(|e| e.note.starts_with("resolve breach")), "no resolve breach while waiting");
    let rows = app
        .store
        .list_deliveries(&propdesk_store::deliveries::DeliveryFilter { limit: 1000, ..Default::default() })
        .await
        .expect("deliveries");
    let told = |who: &str, subject: &str| {
        rows.iter()
            .any(|n| n.recipient_id.as_deref() == Some(who) && n.subject == subject && n.body.contains("\"review\""))
    };
    assert!(told(&app.world.agent_id, "reminder"), "the owner is reminded of the review date");
    assert!(told(&cs_supervisor, "escalation.breach"), "the supervisor hears it was missed");

    // The work station answers: the wait ends, the case is resolved and closed.
    let current = app.get(&ticket.id).await;
    let resumed = app.tickets.resume_ticket(authed(&agent, App::action(&current, "社区工作站已调解"))).await;
    let resumed = resumed.expect("resume").into_inner();
    let waited = resumed.case.as_ref().map_or(0, |c| c.waited_seconds);
    assert!(waited >= 6, "the wait is counted apart: {waited} s");
    let resolved =
        app.tickets.resolve_ticket(authed(&agent, App::action(&resumed, "双方达成协议"))).await.expect("resolve");
    app.tickets.close_ticket(authed(&agent, App::action(resolved.get_ref(), "结案"))).await.expect("close");
    let request = pb::GetCaseRequest { ticket_id: ticket.id.clone() };
    let case = app.tickets.get_case(authed(&agent, request.clone())).await.expect("case").into_inner();
    let timeline: Vec<&str> = case.steps.iter().map(|s| s.what.as_str()).collect();
    assert_eq!(
        timeline,
        ["电话联系楼上住户，说明情况", "约双方到客服中心协调", "居委会上门调解"],
        "in the order they happened"
    );
    assert_eq!(case.steps[2].party_ids, [committee.clone(), side_a.clone(), side_b.clone()]);
    assert_eq!(case.steps[1].outcome, "未达成一致");
    assert_eq!(case.parties[2].contact, "0571-88886666");
    // A technician sees who is involved, but not the residents' contacts.
    let masked = app.tickets.get_case(authed(&technician, request)).await.expect("case").into_inner();
    assert_ne!(masked.parties[0].contact, "13812345678");
    assert_eq!(masked.parties[2].name, "阳光社区居委会", "an organisation is not personal data");

    // The month's review counts the wait apart.
    let now = Utc::now().timestamp();
    let month = pb::GetServiceReportRequest {
        property_id: app.world.property_id.clone(),
        period_start: Some(prost_types::Timestamp { seconds: now - 3600, nanos: 0 }),
        period_end: Some(prost_types::Timestamp { seconds: now + 3600, nanos: 0 }),
        department: 0,
    };
    let mut reports = propdesk_proto::v1::report_service_client::ReportServiceClient::new(app.server.channel().await);
    let admin = app.world.admin.clone();
    let report = reports.get_service_report(authed(&admin, month)).await.expect("report").into_inner();
    assert_eq!(report.tickets_waited_on_outside_parties, 1);
    assert_eq!(report.waited_on_outside_parties_seconds, waited);
}
