//! Standard replies (统一口径) and replies to residents: a library supervisors keep and
//! version, agents find by words and answer with; what a resident was told stays as sent.

use std::collections::HashMap;

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::Code;

use crate::helpers::{App, assert_reason, assert_status, authed, new_request_id};

crate::on_both_backends!(
    a_supervisors_fee_reply_is_found_by_word_answers_an_enquiry_and_stays_as_sent_after_an_edit,
    a_letter_complaint_is_answered_by_letter_and_the_reply_follow_up_is_done,
    bad_standard_replies_and_replies_are_refused_naming_the_field_and_write_nothing,
);

const FEE_BODY: &str = "您好，{property}的物业费为每月每平方米2.5元（单号 {ticket_no}），可在客服中心或App缴纳。";

fn fee_reply(property_id: &str) -> pb::CreateStandardReplyRequest {
    pb::CreateStandardReplyRequest {
        request_id: new_request_id(),
        property_id: property_id.to_owned(),
        code: "fee.enquiry".into(),
        title: "物业费标准".into(),
        category_codes: vec!["general_enquiry".into(), "fee_dispute".into()],
        kinds: vec![pb::TicketKind::Enquiry as i32],
        keywords: vec!["物业费".into(), "缴费".into()],
        body: FEE_BODY.into(),
        language: String::new(),
    }
}

fn water_reply(property_id: &str) -> pb::CreateStandardReplyRequest {
    pb::CreateStandardReplyRequest {
        code: "water.cut".into(),
        title: "停水答复".into(),
        category_codes: vec!["water_supply".into()],
        kinds: vec![],
        keywords: vec!["停水".into()],
        body: "{unit} 停水，预计 {expected_time} 恢复；临时供水：{interim_measure}。".into(),
        ..fee_reply(property_id)
    }
}

impl App {
    async fn library(&mut self, token: &str, request: pb::ListStandardRepliesRequest) -> Vec<pb::StandardReply> {
        self.replies.list_standard_replies(authed(token, request)).await.expect("list replies").into_inner().replies
    }

    async fn standard_reply(&mut self, token: &str, id: &str, version: i64) -> pb::StandardReply {
        let request = pb::GetStandardReplyRequest { reply_id: id.to_owned(), version };
        self.replies.get_standard_reply(authed(token, request)).await.expect("get reply").into_inner()
    }
}

fn codes(replies: &[pb::StandardReply]) -> Vec<&str> {
    replies.iter().map(|r| r.code.as_str()).collect()
}

fn using(reply: &pb::StandardReply, values: &[(&str, &str)]) -> pb::StandardReplyUse {
    pb::StandardReplyUse {
        standard_reply_id: reply.id.clone(),
        values: values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<HashMap<_, _>>(),
    }
}

async fn a_supervisors_fee_reply_is_found_by_word_answers_an_enquiry_and_stays_as_sent_after_an_edit(backend: Backend) {
    let mut app = App::start(backend).await;
    let (agent, supervisor, admin) = (app.world.agent.clone(), app.world.supervisor.clone(), app.world.admin.clone());
    let property_id = app.world.property_id.clone();
    let fee =
        app.replies.create_standard_reply(authed(&supervisor, fee_reply(&property_id))).await.unwrap().into_inner();
    assert_eq!((fee.version, fee.language.as_str(), fee.active), (1, "zh-CN", true));
    assert_eq!(fee.placeholders, ["property", "ticket_no"]);
    assert_eq!(fee.edited_by, app.world.supervisor_id);
    app.replies.create_standard_reply(authed(&supervisor, water_reply(&property_id))).await.unwrap();
    // A company-wide reply is the admin's, and every property's agents see it.
    let company = pb::CreateStandardReplyRequest {
        property_id: String::new(),
        code: "parking.rules".into(),
        title: "停车规定".into(),
        category_codes: vec!["parking".into()],
        kinds: vec![],
        keywords: vec!["停车".into()],
        body: "您好，访客车辆请在门岗登记后停入访客车位。".into(),
        ..fee_reply("")
    };
    let refused = app.replies.create_standard_reply(authed(&supervisor, company.clone())).await;
    assert_reason(refused, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "a supervisor, company-wide");
    let company = app.replies.create_standard_reply(authed(&admin, company)).await.unwrap().into_inner();
    assert!(company.property_id.is_empty());

    // The agent finds it by the word the resident used.
    let search = |query: &str| pb::ListStandardRepliesRequest {
        property_id: property_id.clone(),
        query: query.into(),
        ..Default::default()
    };
    assert_eq!(codes(&app.library(&agent, search("物业费")).await), ["fee.enquiry"]);
    assert_eq!(codes(&app.library(&agent, search("停车")).await), ["parking.rules"]);
    assert!(app.library(&agent, search("电梯")).await.is_empty());
    let for_repairs = pb::ListStandardRepliesRequest { kind: pb::TicketKind::Repair as i32, ..search("") };
    assert_eq!(codes(&app.library(&agent, for_repairs).await), ["parking.rules", "water.cut"], "any kind, by code");
    let by_category = pb::ListStandardRepliesRequest { category: "fee_dispute".into(), ..search("") };
    assert_eq!(codes(&app.library(&agent, by_category).await), ["fee.enquiry"]);

    // The enquiry answered on the spot with it: the answer is the rendered text.
    let enquiry = pb::CreateTicketRequest {
        kind: pb::TicketKind::Enquiry as i32,
        answer_standard_reply: Some(using(&fee, &[])),
        ..app.new_ticket("general_enquiry", "物业费怎么交？")
    };
    let answered = app.create(enquiry).await;
    assert_eq!(answered.state, pb::TicketState::Closed as i32, "answered there and then: nothing more owed");
    assert_eq!(answered.deadlines.as_ref().and_then(|d| d.callback_by), None, "no callback owed");
    let history = app.history(&answered.id).await;
    let resolved = history.iter().find(|e| e.r#type == pb::TicketEventType::Resolved as i32).expect("resolved");
    assert_eq!(resolved.cause, pb::EventCause::AnsweredOnTheSpot as i32);
    let sent = FEE_BODY.replace("{property}", "Sunny Gardens").replace("{ticket_no}", &answered.id);
    assert_eq!(resolved.note, sent, "the text exactly as told");
    let reply = resolved.reply.clone().expect("how it was answered");
    assert_eq!((reply.standard_reply_id.as_str(), reply.standard_reply_version), (fee.id.as_str(), 1));
    assert_eq!(reply.method, pb::ReplyMethod::PhoneCall as i32, "a phone call is answered on the phone");
    let used = app.standard_reply(&agent, &fee.id, 0).await;
    assert_eq!(used.use_count, 1);
    // Most used first among equals.
    let enquiries = pb::ListStandardRepliesRequest { kind: pb::TicketKind::Enquiry as i32, ..search("") };
    assert_eq!(codes(&app.library(&agent, enquiries).await), ["fee.enquiry", "parking.rules", "water.cut"]);

    // The supervisor edits it: version 2, with who and why; version 1 stays readable.
    let edit = |expected_version: i64, reason: &str| pb::UpdateStandardReplyRequest {
        reply_id: fee.id.clone(),
        expected_version,
        reply: Some(pb::StandardReply {
            body: "您好，{property}物业费自1月起为每月每平方米2.8元。".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["body".into()] }),
        reason: reason.into(),
    };
    let refused = app.replies.update_standard_reply(authed(&agent, edit(1, "调价"))).await;
    assert_reason(refused, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "an agent edits");
    let unexplained = app.replies.update_standard_reply(authed(&supervisor, edit(1, ""))).await;
    assert_status(unexplained, Code::InvalidArgument, Some("reason"), "an edit without a reason");
    let edited =
        app.replies.update_standard_reply(authed(&supervisor, edit(1, "2027年调价"))).await.unwrap().into_inner();
    assert_eq!((edited.version, edited.edit_reason.as_str(), edited.use_count), (2, "2027年调价", 1));
    let stale = app.replies.update_standard_reply(authed(&supervisor, edit(1, "again"))).await;
    assert_reason(stale, Code::Aborted, pb::ErrorReason::StaleVersion, "an edit of an old version");
    let first = app.standard_reply(&agent, &fee.id, 1).await;
    assert_eq!((first.version, first.body.as_str(), first.edit_reason.as_str()), (1, FEE_BODY, "created"));
    let versions = app
        .replies
        .list_standard_reply_versions(authed(
            &agent,
            pb::ListStandardReplyVersionsRequest { reply_id: fee.id.clone(), page_size: 1, page_token: String::new() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(versions.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [2]);
    let older = app
        .replies
        .list_standard_reply_versions(authed(
            &agent,
            pb::ListStandardReplyVersionsRequest {
                reply_id: fee.id.clone(),
                page_size: 1,
                page_token: versions.next_page_token,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(older.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1]);
    assert!(older.next_page_token.is_empty());
    // What the resident was told is unchanged.
    let history = app.history(&answered.id).await;
    let resolved = history.iter().find(|e| e.r#type == pb::TicketEventType::Resolved as i32).expect("resolved");
    assert_eq!(resolved.note, sent);
    assert_eq!(resolved.reply.as_ref().map(|r| r.standard_reply_version), Some(1));

    // The month's review counts what residents were told from the library: the answer
    // above, then a reply in the agent's own words and one more from the fee reply.
    let asked = app.create(app.new_ticket("fee_dispute", "物业费账单不对")).await;
    let own_words = pb::ReplyToResidentRequest {
        ticket_id: asked.id.clone(),
        expected_version: asked.version,
        text: "您好，账单已核对无误。".into(),
        standard_reply: None,
        method: 0,
    };
    let asked = app.tickets.reply_to_resident(authed(&agent, own_words)).await.unwrap().into_inner();
    let enquiry_again = pb::CreateTicketRequest {
        kind: pb::TicketKind::Enquiry as i32,
        answer_standard_reply: Some(using(&edited, &[])),
        ..app.new_ticket("general_enquiry", "物业费多少？")
    };
    app.create(enquiry_again).await;
    let unanswered = pb::CreateTicketRequest {
        kind: pb::TicketKind::Enquiry as i32,
        ..app.new_ticket("general_enquiry", "停车费多少？")
    };
    app.create(unanswered).await;
    let now = chrono::Utc::now().timestamp();
    let month = pb::GetServiceReportRequest {
        property_id: property_id.clone(),
        period_start: Some(prost_types::Timestamp { seconds: now - 3600, nanos: 0 }),
        period_end: Some(prost_types::Timestamp { seconds: now + 3600, nanos: 0 }),
        department: 0,
    };
    let mut reports = propdesk_proto::v1::report_service_client::ReportServiceClient::new(app.server.channel().await);
    let report = reports.get_service_report(authed(&admin, month)).await.expect("report").into_inner();
    assert_eq!(report.replies_sent, 3);
    assert!((report.standard_reply_share - 2.0 / 3.0).abs() < 1e-9, "{}", report.standard_reply_share);
    let used: Vec<(&str, i64)> = report.standard_replies_used.iter().map(|c| (c.key.as_str(), c.count)).collect();
    assert_eq!(used, [("fee.enquiry", 2)], "by code, every version together");
    assert!((report.answered_on_the_spot_share - 2.0 / 3.0).abs() < 1e-9, "{}", report.answered_on_the_spot_share);
    assert_eq!(asked.state, pb::TicketState::New as i32, "a reply changes no state");

    // Taken out of use, it leaves the agents' list but not the library.
    let retire = pb::UpdateStandardReplyRequest {
        expected_version: 2,
        reply: Some(pb::StandardReply { active: false, ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["active".into()] }),
        ..edit(2, "不再使用")
    };
    app.replies.update_standard_reply(authed(&supervisor, retire)).await.unwrap();
    assert!(app.library(&agent, search("物业费")).await.is_empty());
    let all = pb::ListStandardRepliesRequest { include_inactive: true, ..search("物业费") };
    assert_eq!(codes(&app.library(&supervisor, all).await), ["fee.enquiry"]);
}

async fn a_letter_complaint_is_answered_by_letter_and_the_reply_follow_up_is_done(backend: Backend) {
    let mut app = App::start(backend).await;
    let _notifier = app.start_notifier().await;
    let (agent, supervisor) = (app.world.agent.clone(), app.world.supervisor.clone());
    let property_id = app.world.property_id.clone();
    let water =
        app.replies.create_standard_reply(authed(&supervisor, water_reply(&property_id))).await.unwrap().into_inner();
    let letter = pb::CreateTicketRequest {
        kind: pb::TicketKind::Complaint as i32,
        channel: pb::Channel::Letter as i32,
        ..app.new_ticket("water_supply", "三天两头停水，要求给个说法")
    };
    let complaint = app.create(letter).await;

    // An interim answer from the standard reply, before the work is done: the missing
    // interim measure is refused by name, then given.
    let reply = |t: &pb::Ticket, used: pb::StandardReplyUse| pb::ReplyToResidentRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        text: String::new(),
        standard_reply: Some(used),
        method: 0,
    };
    let missing = app.tickets.reply_to_resident(authed(&agent, reply(&complaint, using(&water, &[])))).await;
    let info = assert_status(missing, Code::InvalidArgument, Some("standard_reply.values"), "no interim measure");
    assert_eq!(info.reason, "MISSING_PLACEHOLDER_VALUES");
    let used = using(&water, &[("interim_measure", "2号门临时供水车")]);
    let replied = app.tickets.reply_to_resident(authed(&agent, reply(&complaint, used))).await.unwrap().into_inner();
    let event = app.history(&complaint.id).await.pop().expect("an event");
    assert_eq!(event.r#type, pb::TicketEventType::Replied as i32);
    let sent = event.reply.expect("how");
    assert_eq!(sent.method, pb::ReplyMethod::Letter as i32, "a letter is answered by letter");
    assert_eq!((sent.standard_reply_id.as_str(), sent.standard_reply_version), (water.id.as_str(), 1));
    assert!(event.note.starts_with(&format!("{} 停水，预计 ", app.world.unit_label)), "{}", event.note);
    assert!(event.note.contains("月") && event.note.ends_with("临时供水：2号门临时供水车。"), "{}", event.note);

    // Resolved: the reply by letter is owed; the agent's letter completes it.
    app.tickets.resolve_ticket(authed(&agent, App::action(&replied, "总阀已修复"))).await.expect("resolve");
    let mut owed = Vec::new();
    for _ in 0..300 {
        owed = app.get(&complaint.id).await.follow_ups;
        if owed.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let reply_task = owed.iter().find(|f| f.kind == pb::FollowUpKind::Reply as i32).expect("a reply is owed");
    assert_eq!((reply_task.method, reply_task.state), (pb::ReplyMethod::Letter as i32, pb::FollowUpState::Open as i32));
    let current = app.get(&complaint.id).await;
    let own_words = pb::ReplyToResidentRequest {
        ticket_id: current.id.clone(),
        expected_version: current.version,
        text: "您好，停水原因是总阀老化，已于今日更换，今后如有计划停水将提前三天公告。".into(),
        standard_reply: None,
        method: 0,
    };
    let answered = app.tickets.reply_to_resident(authed(&agent, own_words)).await.unwrap().into_inner();
    let reply_task = answered.follow_ups.iter().find(|f| f.kind == pb::FollowUpKind::Reply as i32).expect("reply");
    assert_eq!(reply_task.state, pb::FollowUpState::Done as i32, "the letter sent completes it");
    assert_eq!(reply_task.done_by, app.world.agent_id);
    let callback = answered.follow_ups.iter().find(|f| f.kind == pb::FollowUpKind::Callback as i32).expect("callback");
    assert_eq!(callback.state, pb::FollowUpState::Open as i32, "the callback is still owed");
    let event = app.history(&complaint.id).await.pop().expect("an event");
    assert_eq!(
        event.reply.map(|r| (r.method, r.standard_reply_id)),
        Some((pb::ReplyMethod::Letter as i32, String::new()))
    );

    // An enquiry answered on the spot is closed at once: its reply is done, no callback is
    // owed (unless one is asked for).
    let template = app.new_ticket("general_enquiry", "物业费什么时候交？");
    let enquiry = |callback_wanted| pb::CreateTicketRequest {
        request_id: new_request_id(),
        kind: pb::TicketKind::Enquiry as i32,
        answer_on_the_spot: "每月15日前缴纳。".into(),
        callback_wanted,
        ..template.clone()
    };
    let plain = app.create(enquiry(false)).await;
    let wanted = app.create(enquiry(true)).await;
    assert_eq!((plain.state, wanted.state), (pb::TicketState::Closed as i32, pb::TicketState::Resolved as i32));
    let mut owed = (Vec::new(), Vec::new());
    for _ in 0..300 {
        owed = (app.get(&plain.id).await.follow_ups, app.get(&wanted.id).await.follow_ups);
        if !owed.0.is_empty() && owed.1.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let kinds = |tasks: &[pb::FollowUp]| tasks.iter().map(|f| (f.kind, f.state)).collect::<Vec<_>>();
    let done_reply = (pb::FollowUpKind::Reply as i32, pb::FollowUpState::Done as i32);
    assert_eq!(kinds(&owed.0), [done_reply], "no callback owed");
    assert_eq!(kinds(&owed.1), [done_reply, (pb::FollowUpKind::Callback as i32, pb::FollowUpState::Open as i32)]);
}

async fn bad_standard_replies_and_replies_are_refused_naming_the_field_and_write_nothing(backend: Backend) {
    let mut app = App::start(backend).await;
    let (agent, supervisor, outsider) =
        (app.world.agent.clone(), app.world.supervisor.clone(), app.world.outsider.clone());
    let property_id = app.world.property_id.clone();
    let fee =
        app.replies.create_standard_reply(authed(&supervisor, fee_reply(&property_id))).await.unwrap().into_inner();
    let cases: Vec<(&str, pb::CreateStandardReplyRequest, &str, pb::ErrorReason)> = vec![
        (
            "an unknown placeholder",
            pb::CreateStandardReplyRequest {
                code: "a".into(),
                body: "请于 {deadline} 前缴费".into(),
                ..fee_reply(&property_id)
            },
            "body",
            pb::ErrorReason::UnknownPlaceholder,
        ),
        (
            "an unclosed brace",
            pb::CreateStandardReplyRequest {
                code: "b".into(),
                body: "请于 {unit 前缴费".into(),
                ..fee_reply(&property_id)
            },
            "body",
            pb::ErrorReason::UnknownPlaceholder,
        ),
        (
            "an empty body",
            pb::CreateStandardReplyRequest { code: "c".into(), body: String::new(), ..fee_reply(&property_id) },
            "body",
            pb::ErrorReason::InvalidField,
        ),
        (
            "a body over 4,000 characters",
            pb::CreateStandardReplyRequest { code: "d".into(), body: "长".repeat(4001), ..fee_reply(&property_id) },
            "body",
            pb::ErrorReason::InvalidField,
        ),
        ("a code taken in the library", fee_reply(&property_id), "code", pb::ErrorReason::CodeTaken),
        (
            "a category not in the catalog",
            pb::CreateStandardReplyRequest {
                code: "e".into(),
                category_codes: vec!["fees".into()],
                ..fee_reply(&property_id)
            },
            "category_codes[0]",
            pb::ErrorReason::InvalidField,
        ),
    ];
    for (case, request, field, reason) in cases {
        let result = app.replies.create_standard_reply(authed(&supervisor, request)).await;
        let info = assert_status(result, Code::InvalidArgument, Some(field), case);
        assert_eq!(info.reason, reason.as_str_name(), "{case}");
    }
    let library = pb::ListStandardRepliesRequest {
        property_id: property_id.clone(),
        include_inactive: true,
        ..Default::default()
    };
    assert_eq!(codes(&app.library(&supervisor, library.clone()).await), ["fee.enquiry"], "nothing written");
    let elsewhere = pb::ListStandardRepliesRequest { property_id: property_id.clone(), ..Default::default() };
    let result = app.replies.list_standard_replies(authed(&outsider, elsewhere)).await;
    assert_reason(result, Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "another property's library");

    // Bad replies to residents.
    let ticket = app.create(app.new_ticket("plumbing", "厨房漏水")).await;
    let lobby =
        pb::CreateTicketRequest { reporter_phone: String::new(), reporter_name: String::new(), ..app.lobby_ticket(1) };
    let lobby = app.create(lobby).await;
    let other_reply = app
        .replies
        .create_standard_reply(authed(
            &app.world.admin.clone(),
            pb::CreateStandardReplyRequest { property_id: app.world.other_property_id.clone(), ..fee_reply("") },
        ))
        .await
        .unwrap()
        .into_inner();
    let before = app.snapshot().await;
    let text = |t: &pb::Ticket, words: &str, method: pb::ReplyMethod| pb::ReplyToResidentRequest {
        ticket_id: t.id.clone(),
        expected_version: t.version,
        text: words.into(),
        standard_reply: None,
        method: method as i32,
    };
    let no_phone =
        app.tickets.reply_to_resident(authed(&agent, text(&lobby, "已处理", pb::ReplyMethod::PhoneCall))).await;
    let metadata = assert_reason(no_phone, Code::FailedPrecondition, pb::ErrorReason::NoContact, "no phone to call");
    assert_eq!(metadata["method"], "REPLY_METHOD_PHONE_CALL");
    let no_address =
        app.tickets.reply_to_resident(authed(&agent, text(&lobby, "已处理", pb::ReplyMethod::Letter))).await;
    assert_reason(no_address, Code::FailedPrecondition, pb::ErrorReason::NoContact, "no address to write to");
    let both = pb::ReplyToResidentRequest {
        standard_reply: Some(using(&fee, &[])),
        ..text(&ticket, "已处理", pb::ReplyMethod::Unspecified)
    };
    let both = app.tickets.reply_to_resident(authed(&agent, both)).await;
    assert_status(both, Code::InvalidArgument, Some("text"), "words and a standard reply");
    let empty = app.tickets.reply_to_resident(authed(&agent, text(&ticket, " ", pb::ReplyMethod::Unspecified))).await;
    assert_status(empty, Code::InvalidArgument, Some("text"), "no words");
    let foreign = pb::ReplyToResidentRequest {
        standard_reply: Some(using(&other_reply, &[])),
        ..text(&ticket, "", pb::ReplyMethod::Unspecified)
    };
    let foreign = app.tickets.reply_to_resident(authed(&agent, foreign)).await;
    let info = assert_status(
        foreign,
        Code::InvalidArgument,
        Some("standard_reply.standard_reply_id"),
        "another property's reply",
    );
    assert_eq!(info.reason, "OF_ANOTHER_PROPERTY");
    let unknown_value = pb::ReplyToResidentRequest {
        standard_reply: Some(using(&fee, &[("deadline", "明天")])),
        ..text(&ticket, "", pb::ReplyMethod::Unspecified)
    };
    let unknown_value = app.tickets.reply_to_resident(authed(&agent, unknown_value)).await;
    assert_status(unknown_value, Code::InvalidArgument, Some("standard_reply.values[deadline]"), "an unknown value");
    let outsiders =
        app.tickets.reply_to_resident(authed(&outsider, text(&ticket, "你好", pb::ReplyMethod::Unspecified))).await;
    assert_reason(outsiders, Code::PermissionDenied, pb::ErrorReason::PropertyNotServed, "a reply elsewhere");
    let technician = app.world.plumber.clone();
    let technicians =
        app.tickets.reply_to_resident(authed(&technician, text(&ticket, "你好", pb::ReplyMethod::Unspecified))).await;
    assert_reason(technicians, Code::PermissionDenied, pb::ErrorReason::RoleNotAllowed, "a technician replies");
    assert_eq!(app.snapshot().await, before, "nothing written");
    assert_eq!(app.standard_reply(&agent, &fee.id, 0).await.use_count, 0, "nothing sent");
}
