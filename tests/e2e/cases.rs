//! Long cases end to end: a neighbour dispute's record (parties, steps, the 居委会 taking
//! part), waiting on the community work station without breaching, the review date's
//! reminder and escalation, and the month's review counting the wait apart.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::Code;

use crate::helpers::{App, assert_reason, assert_status, authed, start_configured};

crate::on_both_backends!(
    a_pet_dispute_is_recorded_step_by_step_and_waits_on_the_work_station_without_breaching,
    a_referral_is_answered_to_whoever_referred_it_and_one_referred_out_is_chased_and_told,
    a_second_unsatisfied_callback_opens_a_review_and_late_work_states_its_cause,
);

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
    let (mut app, _dir) = start_configured(backend, SETTINGS).await;
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

async fn a_referral_is_answered_to_whoever_referred_it_and_one_referred_out_is_chased_and_told(backend: Backend) {
    use crate::helpers::{WebhookReceiver, free_port};
    let port = free_port();
    let gateway = WebhookReceiver::listen(port).await;
    let hooks = format!(
        r#"
[[notifier.webhooks]]
url = "http://127.0.0.1:{port}/residents"
secret = "resident-gateway-secret-0123456789"
roles = ["resident"]
"#
    );
    let (mut app, _dir) = start_configured(backend, &format!("{SETTINGS}{hooks}")).await;
    let _notifier = app.start_notifier().await;
    let agent = app.world.agent.clone();

    // Head office refers a resident's complaint: it wants its answer by letter.
    let template = app.new_ticket("fee_dispute", "业主向集团投诉物业费多收");
    let referral = |referred_by| pb::CreateTicketRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        kind: pb::TicketKind::Complaint as i32,
        channel: pb::Channel::Referral as i32,
        referred_by,
        ..template.clone()
    };
    let missing = app.tickets.create_ticket(authed(&agent, referral(None))).await;
    assert_status(missing, Code::InvalidArgument, Some("referred_by"), "a referral without its referrer");
    let head_office = pb::Referrer {
        organisation: "阳光物业集团总部客服部".into(),
        reference: "HQ-2026-118".into(),
        reply_method: pb::ReplyMethod::Letter as i32,
        reply_to: "集团总部12楼客服部".into(),
    };
    let referred = app.create(referral(Some(head_office))).await;
    assert_eq!(referred.referred_by.as_ref().map(|r| r.reference.as_str()), Some("HQ-2026-118"));
    let resolved = app.tickets.resolve_ticket(authed(&agent, App::action(&referred, "已核对退费"))).await;
    let resolved = resolved.expect("resolve").into_inner();
    let mut owed = Vec::new();
    for _ in 0..300 {
        owed = app.get(&resolved.id).await.follow_ups;
        if owed.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let of = |kind: pb::FollowUpKind| owed.iter().find(|f| f.kind == kind as i32).cloned().expect("owed");
    let to_head_office = of(pb::FollowUpKind::ReferrerReply);
    assert_eq!(to_head_office.method, pb::ReplyMethod::Letter as i32, "by the channel head office asked for");
    assert!(to_head_office.destination.contains("HQ-2026-118") && to_head_office.destination.contains("集团总部12楼"));
    assert_eq!(of(pb::FollowUpKind::Reply).method, pb::ReplyMethod::PhoneCall as i32, "the resident apart");
    // The resident's answer does not answer head office.
    let current = app.get(&resolved.id).await;
    let reply = pb::ReplyToResidentRequest {
        ticket_id: current.id.clone(),
        expected_version: current.version,
        text: "您好，多收的物业费将于下月退还。".into(),
        standard_reply: None,
        method: 0,
    };
    let replied = app.tickets.reply_to_resident(authed(&agent, reply)).await.expect("reply").into_inner();
    let state_of = |t: &pb::Ticket, kind: pb::FollowUpKind| {
        t.follow_ups.iter().find(|f| f.kind == kind as i32).map(|f| f.state).unwrap_or_default()
    };
    assert_eq!(state_of(&replied, pb::FollowUpKind::Reply), pb::FollowUpState::Done as i32);
    assert_eq!(state_of(&replied, pb::FollowUpKind::ReferrerReply), pb::FollowUpState::Open as i32);
    let letter = pb::CompleteFollowUpRequest {
        ticket_id: replied.id.clone(),
        expected_version: replied.version,
        follow_up_id: to_head_office.id.clone(),
        note: "已函复总部".into(),
    };
    let answered = app.tickets.complete_follow_up(authed(&agent, letter)).await.expect("letter").into_inner();
    assert_eq!(state_of(&answered, pb::FollowUpKind::ReferrerReply), pb::FollowUpState::Done as i32);

    // Something thrown from a high floor: referred to the police, chased, the resident told.
    let thrown = app.create(app.new_ticket("high_altitude_throwing", "楼上扔下一个花盆，砸坏了车")).await;
    let police = pb::CaseParty {
        kind: pb::CasePartyKind::Police as i32,
        name: "城西派出所".into(),
        contact: "0571-87000110".into(),
        reference: "JQ-2026-0113".into(),
        ..Default::default()
    };
    let refer = |party: pb::CaseParty, chase_by| pb::ReferOutRequest {
        ticket_id: thrown.id.clone(),
        expected_version: thrown.version,
        party: Some(party),
        chase_by,
    };
    let no_chase = app.tickets.refer_out(authed(&agent, refer(police.clone(), None))).await;
    assert_status(no_chase, Code::InvalidArgument, Some("chase_by"), "no chase date");
    let resident = pb::CaseParty { kind: pb::CasePartyKind::Resident as i32, ..police.clone() };
    let to_resident = app.tickets.refer_out(authed(&agent, refer(resident, ts(Utc::now() + TimeDelta::days(3))))).await;
    assert_status(to_resident, Code::InvalidArgument, Some("party.kind"), "referred to a resident");
    let referred = app.tickets.refer_out(authed(&agent, refer(police, ts(Utc::now() + TimeDelta::days(3))))).await;
    let referred = referred.expect("referred").into_inner();
    let party = referred.case.as_ref().map(|c| c.parties[0].clone()).expect("the police on the case");
    assert_eq!((party.reference.as_str(), party.result.as_str()), ("JQ-2026-0113", ""));
    assert_eq!(state_of(&referred, pb::FollowUpKind::Chase), pb::FollowUpState::Open as i32, "the chase is owed");
    let result = pb::RecordReferralResultRequest {
        ticket_id: referred.id.clone(),
        expected_version: referred.version,
        party_id: party.id.clone(),
        result: "已立案，找到抛物住户，责令赔偿".into(),
    };
    let done = app.tickets.record_referral_result(authed(&agent, result.clone())).await.expect("result").into_inner();
    assert_eq!(state_of(&done, pb::FollowUpKind::Chase), pb::FollowUpState::Done as i32);
    assert_eq!(done.case.as_ref().map(|c| c.parties[0].result.as_str()), Some("已立案，找到抛物住户，责令赔偿"));
    let again = pb::RecordReferralResultRequest { expected_version: done.version, ..result };
    let again = app.tickets.record_referral_result(authed(&agent, again)).await;
    assert_status(again, Code::InvalidArgument, Some("party_id"), "answered twice");
    let mut told = Vec::new();
    for _ in 0..300 {
        told = gateway
            .requests()
            .iter()
            .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
            .filter(|b| b["subject"] == "resident.referral_result")
            .collect();
        if !told.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = told.first().and_then(|b| b["text"].as_str()).unwrap_or_default();
    assert!(text.ends_with("处理结果：已立案，找到抛物住户，责令赔偿"), "{text}");
    assert_eq!(told[0]["ticket_id"], thrown.id.as_str());
}

async fn a_second_unsatisfied_callback_opens_a_review_and_late_work_states_its_cause(backend: Backend) {
    use crate::helpers::token;
    let (mut app, _dir) = start_configured(backend, SETTINGS).await;
    let manager_id = app.hire("Manager Wang", pb::StaffRole::Manager, pb::Department::Unspecified, true).await;
    let manager = token(&manager_id, propdesk_domain::Role::Manager, &[app.world.property_id.as_str()]);
    let _notifier = app.start_notifier().await;
    let (agent, dispatcher) = (app.world.agent.clone(), app.world.dispatcher.clone());

    // A complaint resolved late must say why; then called back unsatisfied twice.
    let complaint = pb::CreateTicketRequest {
        kind: pb::TicketKind::Complaint as i32,
        ..app.new_ticket("hygiene", "楼道一周没人打扫")
    };
    let complaint = app.create(complaint).await;
    tokio::time::sleep(Duration::from_secs(7)).await; // past its 6-second resolve deadline
    let current = app.get(&complaint.id).await;
    let silent = app.tickets.resolve_ticket(authed(&agent, App::action(&current, "已安排打扫"))).await;
    assert_status(silent, Code::InvalidArgument, Some("delay_cause"), "late without a cause");
    let unknown =
        pb::ResolveTicketRequest { delay_cause: "bad_luck".into(), ..App::action(&current, "已安排打扫") };
    let unknown = app.tickets.resolve_ticket(authed(&agent, unknown)).await;
    assert_status(unknown, Code::InvalidArgument, Some("delay_cause"), "a cause not on the list");
    let stated =
        pb::ResolveTicketRequest { delay_cause: "workmanship".into(), ..App::action(&current, "已安排打扫") };
    let mut ticket = app.tickets.resolve_ticket(authed(&agent, stated)).await.expect("resolve").into_inner();
    assert_eq!(ticket.delay_cause, "workmanship");
    for round in 0..2 {
        let unsatisfied = pb::RecordCallbackRequest {
            ticket_id: ticket.id.clone(),
            expected_version: app.get(&ticket.id).await.version,
            satisfaction: pb::Satisfaction::Unsatisfied as i32,
            comment: "还是很脏".into(),
        };
        ticket = app.tickets.record_callback(authed(&agent, unsatisfied)).await.expect("callback").into_inner();
        assert_eq!(ticket.review.is_some(), round == 1, "only the second opens a review");
        if round == 0 {
            // Reworked: routed again and resolved (late again: its cause stated again).
            let mut reopened = app.get(&ticket.id).await;
            for _ in 0..100 {
                if reopened.escalation_level == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                reopened = app.get(&ticket.id).await;
            }
            let assign = pb::AssignTicketRequest {
                ticket_id: reopened.id.clone(),
                expected_version: reopened.version,
                department: pb::Department::Cleaning as i32,
                assignee_id: String::new(),
                note: String::new(),
            };
            let routed = app.tickets.assign_ticket(authed(&dispatcher, assign)).await.expect("assign").into_inner();
            let resolve =
                pb::ResolveTicketRequest { delay_cause: "workmanship".into(), ..App::action(&routed, "重新打扫") };
            app.tickets.resolve_ticket(authed(&agent, resolve)).await.expect("resolved again");
        }
    }
    assert_eq!(ticket.review.as_ref().map(|r| r.trigger.as_str()), Some("repeated_unsatisfied"));

    // The manager finds it on their list, and completes it; an agent may not.
    let open = pb::ListTicketsRequest { review_open: true, ..Default::default() };
    let listed = app.tickets.list_tickets(authed(&manager, open.clone())).await.expect("list").into_inner().tickets;
    assert_eq!(listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [ticket.id.as_str()]);
    let review = |t: &pb::Ticket, cause: &str, action: &str| pb::CompleteReviewRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        cause: cause.into(),
        action: action.into(),
    };
    let by_agent = app.tickets.complete_review(authed(&agent, review(&ticket, "workmanship", "返工"))).await;
    assert_reason(by_agent, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "an agent reviews");
    let no_action = app.tickets.complete_review(authed(&manager, review(&ticket, "workmanship", ""))).await;
    assert_status(no_action, Code::InvalidArgument, Some("action"), "a review without an action");
    let no_cause = app.tickets.complete_review(authed(&manager, review(&ticket, "", "返工"))).await;
    assert_status(no_cause, Code::InvalidArgument, Some("cause"), "a review without a cause");
    let done = app.tickets.complete_review(authed(&manager, review(&ticket, "workmanship", "保洁返工并加强检查")));
    let done = done.await.expect("reviewed").into_inner();
    let completed = done.review.expect("the review");
    assert_eq!((completed.cause.as_str(), completed.reviewer.as_str()), ("workmanship", manager_id.as_str()));
    let listed = app.tickets.list_tickets(authed(&manager, open)).await.expect("list").into_inner().tickets;
    assert!(listed.is_empty(), "no longer open");
    // The manager heard of the review when it opened.
    let mut heard = false;
    for _ in 0..100 {
        let all = propdesk_store::deliveries::DeliveryFilter { limit: 1000, ..Default::default() };
        let rows = app.store.list_deliveries(&all).await.expect("deliveries");
        heard = rows
            .iter()
            .any(|n| n.recipient_id.as_deref() == Some(manager_id.as_str()) && n.subject == "ticket.review_opened");
        if heard {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(heard, "the manager is told of the review");

    // The month's review: overdue cases and reviews by cause.
    let now = Utc::now().timestamp();
    let month = pb::GetServiceReportRequest {
        property_id: app.world.property_id.clone(),
        period_start: Some(prost_types::Timestamp { seconds: now - 3600, nanos: 0 }),
        period_end: Some(prost_types::Timestamp { seconds: now + 3600, nanos: 0 }),
        department: 0,
    };
    let mut reports = propdesk_proto::v1::report_service_client::ReportServiceClient::new(app.server.channel().await);
    let report = reports.get_service_report(authed(&manager, month)).await.expect("report").into_inner();
    let by = |rows: &[pb::CountBy]| rows.iter().map(|c| (c.key.clone(), c.count)).collect::<Vec<_>>();
    assert_eq!(by(&report.overdue_by_cause), [("workmanship".to_owned(), 1)]);
    assert_eq!(by(&report.reviews_by_cause), [("workmanship".to_owned(), 1)]);
}
