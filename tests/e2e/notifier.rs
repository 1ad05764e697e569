//! The notifier end to end: `propdesk intake`, `dispatch` and `notifier` processes, real
//! RabbitMQ, each scenario on PostgreSQL and on SQLite, with the service levels shrunk from minutes to seconds by a
//! settings file.

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;

use crate::helpers::{App, authed, start_configured as start};

crate::on_both_backends!(
    a_burst_pipe_nobody_reaches_goes_to_the_supervisor_at_the_breach_and_the_manager_at_twice,
    two_notifier_replicas_fire_each_step_exactly_once,
    a_hold_moves_the_deadlines_and_they_fire_at_the_new_time,
    a_p3_logged_after_hours_gets_no_reminder_until_the_centre_opens,
    a_missed_callback_goes_to_the_supervisor_and_an_unsatisfied_rating_reopens_and_escalates,
    a_letter_is_answered_by_a_letter_to_the_units_address,
    webhooks_are_signed_retried_until_the_receiver_is_back_and_dead_ones_can_be_replayed,
    a_missed_deadline_tells_the_resident_in_chinese_and_local_time_with_the_interim_measure,
    every_reporter_of_an_outage_hears_when_staff_take_it_on_arrive_and_resolve_it,
    a_missed_promised_reply_escalates_a_moved_one_is_explained_and_a_reply_keeps_it,
);

/// P1: acknowledge 2 s, on site 3 s; P2: acknowledge 3 s, on site 6 s; P3 counted in working
/// hours; callback 3 s; open round the clock unless a test says otherwise.
const SHRUNK: &str = r#"
[policy.sla]
callback_secs = 3
complaint_first_reply_secs = 600

[policy.sla.p1]
acknowledge_secs = 2
on_site_secs = 3
resolve_secs = 600
working_hours_only = false

[policy.sla.p2]
acknowledge_secs = 3
on_site_secs = 6
resolve_secs = 600
working_hours_only = false

[policy.sla.p3]
acknowledge_secs = 2
on_site_secs = 600
resolve_secs = 1200
working_hours_only = true

[notifier]
max_sleep_ms = 500
"#;

const ALWAYS_OPEN: &str = r#"
[policy.working_hours]
utc_offset_minutes = 0
days = [1, 2, 3, 4, 5, 6, 7]
opens = "00:00:00"
closes = "00:00:00"
holidays = []
"#;

fn time(ts: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let ts = ts.as_ref().expect("a timestamp");
    DateTime::from_timestamp(ts.seconds, ts.nanos as u32).expect("valid timestamp")
}

/// The ladder steps in a history: ("<clock> <rung>", when), from the notes of REMINDED and
/// ESCALATED events.
fn steps(history: &[pb::TicketEvent]) -> Vec<(String, DateTime<Utc>)> {
    history
        .iter()
        .filter(|e| {
            e.r#type == pb::TicketEventType::Escalated as i32 || e.r#type == pb::TicketEventType::Reminded as i32
        })
        .map(|e| (e.note.split(':').next().unwrap_or_default().to_owned(), time(&e.occurred_at)))
        .collect()
}

fn count(history: &[pb::TicketEvent], step: &str) -> usize {
    steps(history).iter().filter(|(s, _)| s == step).count()
}

fn assert_fired_within(history: &[pb::TicketEvent], step: &str, due: DateTime<Utc>, slack: TimeDelta) {
    let fired: Vec<_> = steps(history).into_iter().filter(|(s, _)| s == step).collect();
    assert_eq!(fired.len(), 1, "{step}: exactly one event, got {fired:?}");
    let late = fired[0].1 - due;
    assert!(late >= TimeDelta::zero() && late < slack, "{step}: fired {late} after {due}");
}

async fn a_burst_pipe_nobody_reaches_goes_to_the_supervisor_at_the_breach_and_the_manager_at_twice(backend: Backend) {
    let (mut app, _dir) = start(backend, &format!("{SHRUNK}{ALWAYS_OPEN}")).await;
    let manager = app.hire("Manager Wang", pb::StaffRole::Manager, pb::Department::Unspecified, true).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;

    let created = app.create(app.new_ticket("plumbing", "2-1203 厨房爆管，水流不止")).await;
    assert_eq!(created.priority, pb::Priority::P1 as i32);
    let deadlines = created.deadlines.expect("deadlines");
    let on_site_by = time(&deadlines.on_site_by);
    let history = app.wait_history(&created.id, Duration::from_secs(15), |h| count(h, "on_site overdue") == 1).await;
    let second = TimeDelta::seconds(1);
    // 80 % of 3 s before the on-site deadline, at it, and at twice the allowance.
    assert_fired_within(&history, "on_site reminder", on_site_by - TimeDelta::milliseconds(600), second);
    assert_fired_within(&history, "on_site breach", on_site_by, second);
    assert_fired_within(&history, "on_site overdue", on_site_by + TimeDelta::seconds(3), second);
    assert_fired_within(&history, "acknowledge breach", time(&deadlines.acknowledge_by), second);
    let breach = history.iter().find(|e| e.note.starts_with("on_site breach")).expect("breach event");
    assert_eq!(breach.actor_id, "system:notifier");
    assert!(breach.note.contains("supervisor") && breach.note.contains("manager"), "P1: both told: {}", breach.note);
    assert!(breach.note.contains("; resident told: 您好"), "客户等待管理: {}", breach.note);

    let ticket = app.get(&created.id).await;
    assert_eq!(ticket.escalation_level, 2);
    // The supervisor and the manager each got their notifications, through the log sink.
    let all = propdesk_store::deliveries::DeliveryFilter { limit: 1000, ..Default::default() };
    let rows = app.store.list_deliveries(&all).await.expect("deliveries");
    let to = |id: &str, subject: &str| {
        rows.iter().filter(|n| n.recipient_id.as_deref() == Some(id) && n.subject == subject).count()
    };
    assert!(to(&app.world.supervisor_id, "escalation.breach") >= 2, "supervisor told of each breach");
    assert_eq!(to(&manager, "escalation.overdue"), 2, "manager told at twice the allowance of both clocks");
    assert!(to(&app.world.plumber_id, "reminder") >= 1, "assignee reminded");

    // The technician arrives: the remaining on-site work is met, nothing more fires for it.
    let plumber = app.world.plumber.clone();
    let accepted = app.tickets.accept_ticket(authed(&plumber, App::action(&ticket, ""))).await.expect("accept");
    app.tickets.arrive_on_site(authed(&plumber, App::action(accepted.get_ref(), ""))).await.expect("on site");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let alarms = app.store.alarms_of(&created.id).await.expect("alarms");
    assert!(
        alarms.iter().filter(|a| a.pending).all(|a| a.clock == "resolve"),
        "only the resolve clock runs: {alarms:?}"
    );
}

async fn two_notifier_replicas_fire_each_step_exactly_once(backend: Backend) {
    let (mut app, _dir) = start(backend, &format!("{SHRUNK}{ALWAYS_OPEN}")).await;
    app.hire("Manager Wang", pb::StaffRole::Manager, pb::Department::Unspecified, true).await;
    let _dispatch = app.start_dispatch().await;
    let _first = app.start_notifier().await;
    let _second = app.start_notifier().await;
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(app.create(app.new_ticket("plumbing", &format!("爆管 number {n}"))).await.id);
    }
    for id in &ids {
        let history = app.wait_history(id, Duration::from_secs(20), |h| count(h, "on_site overdue") == 1).await;
        let mut seen = steps(&history).into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        let total = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(total, seen.len(), "ticket {id}: a step fired twice: {:?}", steps(&history));
        for step in ["acknowledge breach", "on_site reminder", "on_site breach", "on_site overdue"] {
            assert!(seen.iter().any(|s| s == step), "ticket {id}: {step} missing in {seen:?}");
        }
    }
}

async fn a_hold_moves_the_deadlines_and_they_fire_at_the_new_time(backend: Backend) {
    let (mut app, _dir) = start(backend, &format!("{SHRUNK}{ALWAYS_OPEN}")).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;
    // A P2: acknowledge in 3 s, on site in 6 s.
    let created = app.create(app.new_ticket("water_supply", "no water in the kitchen")).await;
    let (dispatched, _) = app.wait_dispatched(&created.id).await;
    let before = dispatched.deadlines.expect("deadlines");
    let plumber = app.world.plumber.clone();
    let held = app
        .tickets
        .put_on_hold(authed(&plumber, App::action(&dispatched, "waiting for the water company")))
        .await
        .expect("hold")
        .into_inner();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let history = app.history(&created.id).await;
    assert_eq!(count(&history, "acknowledge breach"), 0, "paused clocks do not fire: {:?}", steps(&history));
    let resumed =
        app.tickets.resume_ticket(authed(&plumber, App::action(&held, ""))).await.expect("resume").into_inner();
    let paused = time(&resumed.updated_at) - time(&held.on_hold_since);
    assert!(paused >= TimeDelta::seconds(5));
    let after = resumed.deadlines.expect("deadlines");
    for (name, old, new) in [
        ("acknowledge_by", &before.acknowledge_by, &after.acknowledge_by),
        ("on_site_by", &before.on_site_by, &after.on_site_by),
        ("resolve_by", &before.resolve_by, &after.resolve_by),
    ] {
        assert_eq!(time(new) - time(old), paused, "{name} moved by the time paused");
    }
    let history = app.wait_history(&created.id, Duration::from_secs(15), |h| count(h, "on_site breach") == 1).await;
    assert_fired_within(&history, "acknowledge breach", time(&after.acknowledge_by), TimeDelta::seconds(1));
    assert_fired_within(&history, "on_site breach", time(&after.on_site_by), TimeDelta::seconds(1));
}

async fn a_p3_logged_after_hours_gets_no_reminder_until_the_centre_opens(backend: Backend) {
    // The centre opens 6 s from now (UTC wall clock) for an hour.
    let opens_at = Utc::now() + TimeDelta::seconds(6);
    let hours = format!(
        "[policy.working_hours]\nutc_offset_minutes = 0\ndays = [1, 2, 3, 4, 5, 6, 7]\nopens = \"{}\"\ncloses = \"{}\"\nholidays = []\n",
        opens_at.format("%H:%M:%S"),
        (opens_at + TimeDelta::hours(1)).format("%H:%M:%S"),
    );
    let (mut app, _dir) = start(backend, &format!("{SHRUNK}{hours}")).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;
    let created = app.create(app.new_ticket("electrical", "the balcony light flickers")).await;
    assert_eq!(created.priority, pb::Priority::P3 as i32);
    let opening = opens_at.with_nanosecond(0).expect("whole second");
    let acknowledge_by = time(&created.deadlines.expect("deadlines").acknowledge_by);
    assert_eq!(acknowledge_by, opening + TimeDelta::seconds(2), "2 working seconds after opening");
    let history =
        app.wait_history(&created.id, Duration::from_secs(20), |h| count(h, "acknowledge reminder") == 1).await;
    let (_, reminded_at) = steps(&history).into_iter().find(|(s, _)| s == "acknowledge reminder").expect("reminder");
    assert!(reminded_at >= opening, "no reminder before working hours: {reminded_at} < {opening}");
    assert!(reminded_at - opening < TimeDelta::seconds(3), "reminded soon after opening: {reminded_at}");
}

async fn a_missed_callback_goes_to_the_supervisor_and_an_unsatisfied_rating_reopens_and_escalates(backend: Backend) {
    let (mut app, _dir) = start(backend, &format!("{SHRUNK}{ALWAYS_OPEN}")).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;
    let created = app.create(app.new_ticket("intercom", "the intercom does not ring")).await;
    let (dispatched, _) = app.wait_dispatched(&created.id).await;
    let plumber = app.world.plumber.clone();
    let resolved = app
        .tickets
        .resolve_ticket(authed(&plumber, App::action(&dispatched, "replaced the handset")))
        .await
        .expect("resolve")
        .into_inner();
    let callback_by = time(&resolved.deadlines.expect("deadlines").callback_by);
    assert_eq!(callback_by - time(&resolved.resolved_at), TimeDelta::seconds(3), "48 h, shrunk to 3 s");

    let history = app.wait_history(&created.id, Duration::from_secs(15), |h| count(h, "callback breach") == 1).await;
    assert_fired_within(&history, "callback breach", callback_by, TimeDelta::seconds(1));
    let breach = history.iter().find(|e| e.note.starts_with("callback breach")).expect("breach");
    assert!(breach.note.contains("supervisor"), "{}", breach.note);
    let ticket = app.get(&created.id).await;
    let callback =
        ticket.follow_ups.iter().find(|f| f.kind == pb::FollowUpKind::Callback as i32).expect("callback task");
    assert_eq!(callback.owner_id, app.world.agent_id, "owned by the first-contact agent");
    assert_eq!(time(&callback.due_by), callback_by);
    assert_eq!(callback.state, pb::FollowUpState::Open as i32);

    let agent = app.world.agent.clone();
    let request = pb::RecordCallbackRequest {
        ticket_id: ticket.id.clone(),
        expected_version: ticket.version,
        satisfaction: pb::Satisfaction::Unsatisfied as i32,
        comment: "it broke again the same evening".into(),
    };
    let reopened = app.tickets.record_callback(authed(&agent, request)).await.expect("callback").into_inner();
    assert_eq!(reopened.state, pb::TicketState::Reopened as i32);
    let history = app
        .wait_history(&created.id, Duration::from_secs(10), |h| {
            h.iter().any(|e| e.note.starts_with("callback unsatisfied"))
                && h.iter().filter(|e| e.r#type == pb::TicketEventType::Dispatched as i32).count() == 2
        })
        .await;
    assert_eq!(history.iter().filter(|e| e.note.starts_with("callback unsatisfied")).count(), 1);
    let ticket = app.get(&created.id).await;
    assert!(ticket.escalation_level >= 1);
    assert_eq!(ticket.state, pb::TicketState::Dispatched as i32, "redispatched for rework");
    let callback = ticket.follow_ups.iter().find(|f| f.kind == pb::FollowUpKind::Callback as i32).expect("callback");
    assert_eq!(callback.state, pb::FollowUpState::Done as i32, "RecordCallback closed the task");
}

async fn a_letter_is_answered_by_a_letter_to_the_units_address(backend: Backend) {
    let (mut app, _dir) = start(backend, &format!("{SHRUNK}{ALWAYS_OPEN}")).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;
    let mut request = app.new_ticket("fee_dispute", "来信：十月物业费重复收取");
    request.kind = pb::TicketKind::Complaint as i32;
    request.channel = pb::Channel::Letter as i32;
    let created = app.create(request).await;
    let (dispatched, _) = app.wait_dispatched(&created.id).await;
    let agent = app.world.agent.clone();
    let resolved = app
        .tickets
        .resolve_ticket(authed(&agent, App::action(&dispatched, "refund of the duplicate charge approved")))
        .await
        .expect("resolve")
        .into_inner();
    let mut reply = None;
    for _ in 0..100 {
        let ticket = app.get(&created.id).await;
        reply = ticket.follow_ups.into_iter().find(|f| f.kind == pb::FollowUpKind::Reply as i32);
        if reply.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = reply.expect("a reply task");
    assert_eq!(reply.method, pb::ReplyMethod::Letter as i32);
    assert_eq!(reply.destination, "Room 1203", "the unit's postal address");
    assert_eq!(reply.owner_id, app.world.agent_id);
    assert_eq!(reply.state, pb::FollowUpState::Open as i32);

    let ticket = app.get(&created.id).await;
    let done = pb::CompleteFollowUpRequest {
        ticket_id: ticket.id.clone(),
        expected_version: ticket.version,
        follow_up_id: reply.id.clone(),
        note: "letter posted, registered mail".into(),
    };
    let after = app.tickets.complete_follow_up(authed(&agent, done.clone())).await.expect("complete").into_inner();
    let task = after.follow_ups.iter().find(|f| f.id == reply.id).expect("task");
    assert_eq!(task.state, pb::FollowUpState::Done as i32);
    assert_eq!(after.version, ticket.version + 1);
    assert!(resolved.version < after.version);
    let history = app.history(&created.id).await;
    assert!(history.iter().any(|e| e.r#type == pb::TicketEventType::FollowUp as i32 && e.note.contains("registered")));
    // A walk-in enquiry answered at the desk: its reply was made there and then; the
    // callback is still owed.
    let mut enquiry = app.new_ticket("general_enquiry", "when is the fee due?");
    enquiry.kind = pb::TicketKind::Enquiry as i32;
    enquiry.channel = pb::Channel::WalkIn as i32;
    enquiry.answer_on_the_spot = "By the 15th of each month.".into();
    enquiry.callback_wanted = true;
    let answered = app.create(enquiry).await;
    let mut follow_ups = Vec::new();
    for _ in 0..100 {
        follow_ups = app.get(&answered.id).await.follow_ups;
        if follow_ups.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = follow_ups.iter().find(|f| f.kind == pb::FollowUpKind::Reply as i32).expect("reply");
    assert_eq!((reply.method, reply.state), (pb::ReplyMethod::CallOrVisit as i32, pb::FollowUpState::Done as i32));
    let callback = follow_ups.iter().find(|f| f.kind == pb::FollowUpKind::Callback as i32).expect("callback");
    assert_eq!(callback.state, pb::FollowUpState::Open as i32);

    // Twice: the task is no longer open.
    let again = pb::CompleteFollowUpRequest { expected_version: after.version, ..done };
    let result = app.tickets.complete_follow_up(authed(&agent, again)).await;
    crate::helpers::assert_status(result, tonic::Code::InvalidArgument, Some("follow_up_id"), "completed twice");
}

/// HMAC-SHA256 of "<timestamp>.<body>", computed here independently of the notifier.
fn expected_signature(secret: &str, timestamp: &str, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn webhooks_are_signed_retried_until_the_receiver_is_back_and_dead_ones_can_be_replayed(backend: Backend) {
    use crate::helpers::{WebhookReceiver, free_port};
    use propdesk_proto::v1::notification_service_client::NotificationServiceClient;

    let (flaky_port, gone_port) = (free_port(), free_port());
    let hooks = format!(
        r#"
[notifier.delivery]
max_attempts = 6
backoff_ms = 200
max_backoff_ms = 400
timeout_ms = 2000
concurrency = 8

[[notifier.webhooks]]
url = "http://127.0.0.1:{flaky_port}/hooks/propdesk"
secret = "flaky-receiver-secret-0123456789"
roles = ["assignee"]

[[notifier.webhooks]]
url = "http://127.0.0.1:{gone_port}/hooks/propdesk"
secret = "gone-receiver-secret-0123456789"
roles = ["assignee"]
"#
    );
    let (mut app, _dir) = start(backend, &format!("{SHRUNK}{ALWAYS_OPEN}{hooks}")).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;
    let mut notifications = NotificationServiceClient::new(app.server.channel().await);
    let supervisor = app.world.supervisor.clone();

    // Both receivers are down when the assignee is told of new work.
    let created = app.create(app.new_ticket("intercom", "the intercom does not ring")).await;
    let (dispatched, _) = app.wait_dispatched(&created.id).await;
    assert_eq!(dispatched.assignee_id, app.world.plumber_id);
    let list = |state: pb::DeliveryState| pb::ListDeliveriesRequest {
        ticket_id: created.id.clone(),
        state: state as i32,
        ..Default::default()
    };
    let flaky_target = format!("http://127.0.0.1:{flaky_port}/hooks/propdesk");
    let mut retried = false;
    for _ in 0..50 {
        let pending = notifications
            .list_deliveries(authed(&supervisor, list(pb::DeliveryState::Pending)))
            .await
            .expect("list")
            .into_inner()
            .deliveries;
        retried = pending.iter().any(|d| d.target == flaky_target && d.attempts >= 1 && !d.last_error.is_empty());
        if retried {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(retried, "a failed delivery is pending with its error, for another attempt");

    // The first receiver comes back: the delivery arrives, signed.
    let flaky = WebhookReceiver::listen(flaky_port).await;
    let mut requests = Vec::new();
    for _ in 0..100 {
        requests = flaky.requests();
        if !requests.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request = requests.first().expect("the webhook arrived once the receiver was back").clone();
    let timestamp = request.header("x-propdesk-timestamp").expect("timestamp header");
    let signature = request.header("x-propdesk-signature").expect("signature header");
    assert_eq!(signature, expected_signature("flaky-receiver-secret-0123456789", timestamp, &request.body));
    let body: serde_json::Value = serde_json::from_str(&request.body).expect("JSON body");
    assert_eq!(request.header("x-propdesk-event-id"), body["id"].as_str(), "the event id names the delivery");
    assert_eq!(body["subject"], "ticket.dispatched");
    assert_eq!(body["recipient_id"], app.world.plumber_id.as_str());
    assert_eq!(body["ticket_id"], created.id.as_str());
    assert!(!request.body.contains("13812345678") && !request.body.contains("张三"), "no personal data");

    // The second never comes back: its delivery dies and is listed.
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = notifications
            .list_deliveries(authed(&supervisor, list(pb::DeliveryState::Dead)))
            .await
            .expect("list")
            .into_inner()
            .deliveries;
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = dead.first().expect("a dead delivery").clone();
    assert_eq!(dead.attempts, 6);
    assert!(dead.target.contains(&gone_port.to_string()));
    assert!(!dead.last_error.is_empty());

    // Fixed at last: replay sends it again, same id.
    let gone = WebhookReceiver::listen(gone_port).await;
    let technician = app.world.plumber.clone();
    let refused = notifications
        .replay_delivery(authed(&technician, pb::ReplayDeliveryRequest { delivery_id: dead.id.clone() }))
        .await;
    crate::helpers::assert_status(refused, tonic::Code::PermissionDenied, None, "a technician replays");
    let replayed = notifications
        .replay_delivery(authed(&supervisor, pb::ReplayDeliveryRequest { delivery_id: dead.id.clone() }))
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(replayed.state, pb::DeliveryState::Pending as i32);
    // (Later notifications still retrying may arrive too: look for this one by its id.)
    let mut arrived = 0;
    for _ in 0..100 {
        arrived = gone.requests().iter().filter(|r| r.header("x-propdesk-event-id") == Some(dead.id.as_str())).count();
        if arrived > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(arrived, 1, "the replayed delivery arrived once, with its original id");
    // The receiver has it; the notifier records the answer just after.
    let mut recorded = false;
    for _ in 0..100 {
        let delivered = notifications
            .list_deliveries(authed(&supervisor, list(pb::DeliveryState::Delivered)))
            .await
            .expect("list")
            .into_inner()
            .deliveries;
        recorded = delivered.iter().any(|d| d.id == dead.id);
        if recorded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recorded, "the replayed delivery is DELIVERED");
}

/// Open round the clock, in China time.
const CHINA_ALWAYS_OPEN: &str = r#"
[policy.working_hours]
utc_offset_minutes = 480
days = [1, 2, 3, 4, 5, 6, 7]
opens = "00:00:00"
closes = "00:00:00"
holidays = []
"#;

/// Two resident gateways (one entitled to contact details) and a supervisors' receiver,
/// listening, and the settings that name them.
struct Gateways {
    entitled: crate::helpers::WebhookReceiver,
    plain: crate::helpers::WebhookReceiver,
    staff: crate::helpers::WebhookReceiver,
    settings: String,
}

async fn resident_gateways() -> Gateways {
    use crate::helpers::{WebhookReceiver, free_port};
    let (entitled, plain, staff) = (free_port(), free_port(), free_port());
    let settings = format!(
        r#"
[[notifier.webhooks]]
url = "http://127.0.0.1:{entitled}/sms"
secret = "entitled-gateway-secret-0123456789"
roles = ["resident"]
contact_details = true

[[notifier.webhooks]]
url = "http://127.0.0.1:{plain}/app"
secret = "plain-gateway-secret-0123456789"
roles = ["resident"]

[[notifier.webhooks]]
url = "http://127.0.0.1:{staff}/ops"
secret = "staff-receiver-secret-0123456789"
roles = ["supervisor"]
"#
    );
    Gateways {
        entitled: WebhookReceiver::listen(entitled).await,
        plain: WebhookReceiver::listen(plain).await,
        staff: WebhookReceiver::listen(staff).await,
        settings,
    }
}

/// The JSON bodies a receiver got with this subject, waiting until there are `count`.
async fn bodies(receiver: &crate::helpers::WebhookReceiver, subject: &str, count: usize) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    for _ in 0..300 {
        found = receiver
            .requests()
            .iter()
            .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
            .filter(|body| body["subject"] == subject)
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{subject}: {} of {count} messages arrived", found.len());
}

async fn a_missed_deadline_tells_the_resident_in_chinese_and_local_time_with_the_interim_measure(backend: Backend) {
    let Gateways { entitled, plain, staff, settings: hooks } = resident_gateways().await;
    let (mut app, _dir) = start(backend, &format!("{SHRUNK}{CHINA_ALWAYS_OPEN}{hooks}")).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;
    let agent = app.world.agent.clone();

    // The world's resident reads English: their own burst pipe is told in English.
    let english = pb::UpdateResidentRequest {
        resident_id: app.world.resident_id.clone(),
        name: None,
        phone: None,
        language: Some("en".into()),
    };
    let admin = app.world.admin.clone();
    app.directory.update_resident(authed(&admin, english)).await.expect("language");
    let theirs = pb::CreateTicketRequest {
        resident_id: app.world.resident_id.clone(),
        reporter_name: String::new(),
        reporter_phone: String::new(),
        ..app.new_ticket("plumbing", "burst pipe in the bathroom")
    };
    let theirs = app.create(theirs).await;
    let created = app.create(app.new_ticket("plumbing", "2-1203 厨房爆管，水流不止")).await;
    let measure = pb::SetInterimMeasureRequest {
        ticket_id: created.id.clone(),
        expected_version: app.get(&created.id).await.version,
        interim_measure: "已关闭总阀，2号门临时供水车".into(),
    };
    let measured = app.tickets.set_interim_measure(authed(&agent, measure.clone())).await;
    let measured = match measured {
        Ok(t) => t.into_inner(),
        // Dispatch moved it on meanwhile: once more at the new version.
        Err(_) => {
            let retry =
                pb::SetInterimMeasureRequest { expected_version: app.get(&created.id).await.version, ..measure };
            app.tickets.set_interim_measure(authed(&agent, retry)).await.expect("interim measure").into_inner()
        }
    };
    assert_eq!(measured.interim_measure, "已关闭总阀，2号门临时供水车");
    let history = app.history(&created.id).await;
    let set = history.iter().find(|e| e.r#type == pb::TicketEventType::InterimMeasureSet as i32).expect("kept");
    assert_eq!(set.changes[0].after, "已关闭总阀，2号门临时供水车");

    // The on-site deadline passes (3 s): both gateways hear it, in Chinese, local time.
    let for_ticket = |bodies: Vec<serde_json::Value>, id: &str| -> Vec<serde_json::Value> {
        bodies.into_iter().filter(|b| b["ticket_id"] == id).collect()
    };
    let mut told = Vec::new();
    for _ in 0..300 {
        told = for_ticket(bodies(&entitled, "resident.breach", 1).await, &created.id);
        if !told.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each gateway gets its own delivery of the same notice, each in its own time.
    let mut without = Vec::new();
    for _ in 0..300 {
        without = for_ticket(bodies(&plain, "resident.breach", 1).await, &created.id);
        if without.iter().any(|b| b["text"] == told[0]["text"]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = told[0]["text"].as_str().expect("text");
    let same = without.iter().find(|b| b["text"] == told[0]["text"]).unwrap_or(&serde_json::Value::Null);
    assert_eq!(same["text"], told[0]["text"], "the same words to every gateway");
    assert!(text.starts_with("您好，您反映的问题（单号 "), "{text}");
    assert!(text.ends_with("临时措施：已关闭总阀，2号门临时供水车。"), "{text}");
    // The expected time, as the staff were told it in UTC, is told to the resident at +08:00.
    let rows = app
        .store
        .list_deliveries(&propdesk_store::deliveries::DeliveryFilter { limit: 1000, ..Default::default() })
        .await
        .expect("deliveries");
    let said: Vec<String> = rows
        .iter()
        .filter(|n| n.subject == "escalation.breach" && n.sink == "log")
        .filter_map(|n| serde_json::from_str::<serde_json::Value>(&n.body).ok())
        .filter_map(|b| serde_json::from_value::<DateTime<Utc>>(b["details"]["expected_by"].clone()).ok())
        .map(|expected| {
            let local = expected + TimeDelta::hours(8);
            format!("预计 {}月{}日 {:02}:{:02} 前", local.month(), local.day(), local.hour(), local.minute())
        })
        .collect();
    assert!(said.iter().any(|s| text.contains(s.as_str())), "one of {said:?} in {text}");
    // Where to deliver it; the phone only to the entitled gateway.
    assert_eq!(told[0]["resident"]["channel"], "phone_call");
    assert_eq!(told[0]["resident"]["unit_id"], app.world.unit_id.as_str());
    assert_eq!(told[0]["contact"]["phone"], "13812345678");
    assert!(without.iter().all(|b| b.get("contact").is_none()), "no contact without the permission");
    for receiver in [&plain, &staff] {
        assert!(receiver.requests().iter().all(|r| !r.body.contains("13812345678")), "no phone anywhere");
    }
    assert!(rows.iter().filter(|n| n.sink == "log").all(|n| !n.body.contains("13812345678")), "no phone in logs");
    assert!(
        staff.requests().iter().all(|r| !r.body.contains("\"resident.")),
        "staff receivers get no resident messages"
    );

    // The English reader is told in English, with their directory phone to the entitled
    // gateway only.
    let mut english = Vec::new();
    for _ in 0..300 {
        english = for_ticket(bodies(&entitled, "resident.breach", 1).await, &theirs.id);
        if !english.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = english.first().and_then(|b| b["text"].as_str()).unwrap_or_default();
    assert!(text.starts_with("We are sorry: your request "), "{text}");
    assert_eq!(english[0]["resident"]["resident_id"], app.world.resident_id.as_str());
    assert_eq!(english[0]["contact"]["phone"], "13900001111");
    assert!(plain.requests().iter().all(|r| !r.body.contains("13900001111")));

    // A reply reaches the gateways exactly as sent.
    let current = app.get(&created.id).await;
    let reply = pb::ReplyToResidentRequest {
        ticket_id: current.id.clone(),
        expected_version: current.version,
        text: "您好，维修人员已在路上，预计十分钟到达。".into(),
        standard_reply: None,
        method: pb::ReplyMethod::AppMessage as i32,
    };
    app.tickets.reply_to_resident(authed(&agent, reply)).await.expect("reply");
    let replies = bodies(&entitled, "resident.reply", 1).await;
    assert_eq!(replies[0]["text"], "您好，维修人员已在路上，预计十分钟到达。");
    assert_eq!(replies[0]["resident"]["channel"], "app_message");
}

async fn every_reporter_of_an_outage_hears_when_staff_take_it_on_arrive_and_resolve_it(backend: Backend) {
    let Gateways { entitled: gateway, settings: hooks, .. } = resident_gateways().await;
    let (mut app, _dir) = start(backend, &format!("{CHINA_ALWAYS_OPEN}{hooks}")).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;
    let (plumber, supervisor) = (app.world.plumber.clone(), app.world.supervisor.clone());
    let (reports, incident_id) = app.outage().await;
    let incident = app.get(&incident_id).await;
    let measure = pb::SetInterimMeasureRequest {
        ticket_id: incident.id.clone(),
        expected_version: incident.version,
        interim_measure: "2号门临时供水车".into(),
    };
    let incident = app.tickets.set_interim_measure(authed(&supervisor, measure)).await.expect("measure").into_inner();
    let worker = if incident.assignee_id == app.world.plumber_id { plumber } else { supervisor.clone() };
    let accepted = app.tickets.accept_ticket(authed(&worker, App::action(&incident, ""))).await.expect("accept");
    let on_site =
        app.tickets.arrive_on_site(authed(&worker, App::action(accepted.get_ref(), ""))).await.expect("on site");
    app.tickets.resolve_ticket(authed(&worker, App::action(on_site.get_ref(), "总阀修好"))).await.expect("resolve");

    let mut reporters: Vec<&str> = reports.iter().map(String::as_str).collect();
    reporters.sort_unstable();
    for (subject, says) in [
        ("resident.incident.acknowledged", "已受理"),
        ("resident.incident.on_site", "已到达现场"),
        ("resident.incident.resolved", "已处理完毕"),
    ] {
        let told = bodies(&gateway, subject, 3).await;
        let mut tickets: Vec<&str> = told.iter().filter_map(|b| b["ticket_id"].as_str()).collect();
        tickets.sort_unstable();
        assert_eq!(tickets, reporters, "{subject}: each reporter once");
        for body in &told {
            let text = body["text"].as_str().unwrap_or_default();
            assert!(text.contains(says) && text.ends_with("临时措施：2号门临时供水车。"), "{subject}: {text}");
        }
    }
}

async fn a_missed_promised_reply_escalates_a_moved_one_is_explained_and_a_reply_keeps_it(backend: Backend) {
    let Gateways { entitled: gateway, settings: hooks, .. } = resident_gateways().await;
    let (mut app, _dir) = start(backend, &format!("{SHRUNK}{ALWAYS_OPEN}{hooks}")).await;
    let _notifier = app.start_notifier().await;
    let agent = app.world.agent.clone();
    let in_seconds = |s: i64| Some(prost_types::Timestamp { seconds: Utc::now().timestamp() + s, nanos: 0 });

    // A fee complaint that needs research: the agent promises an answer in 3 seconds.
    let complaint = pb::CreateTicketRequest {
        kind: pb::TicketKind::Complaint as i32,
        promised_reply_at: in_seconds(3),
        ..app.new_ticket("fee_dispute", "这个月的物业费多收了")
    };
    let complaint = app.create(complaint).await;
    let history =
        app.wait_history(&complaint.id, Duration::from_secs(15), |h| count(h, "promised_reply breach") == 1).await;
    assert_eq!(count(&history, "promised_reply reminder"), 1, "the agent was reminded first");
    let promised = time(&complaint.promised_reply_at);
    assert_fired_within(&history, "promised_reply breach", promised, TimeDelta::seconds(1));
    let ticket = app.get(&complaint.id).await;
    assert!(ticket.escalation_level >= 1, "a missed promise goes to the supervisor");

    // Moving the promise needs a reason, and the resident is told both.
    let correction = |reason: &str, version: i64| pb::UpdateTicketRequest {
        ticket_id: complaint.id.clone(),
        expected_version: version,
        ticket: Some(pb::TicketCorrection { promised_reply_at: in_seconds(3600), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["promised_reply_at".into()] }),
        reason: reason.into(),
    };
    let unexplained = app.tickets.update_ticket(authed(&agent, correction("", ticket.version))).await;
    crate::helpers::assert_status(unexplained, tonic::Code::InvalidArgument, Some("reason"), "moved without a reason");
    let moved = app
        .tickets
        .update_ticket(authed(&agent, correction("需等待财务核对账单", ticket.version)))
        .await
        .expect("moved")
        .into_inner();
    let told = bodies(&gateway, "resident.promise_moved", 1).await;
    let text = told[0]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("您好，我们答复您的时间调整为 ") && text.ends_with("原因：需等待财务核对账单"), "{text}");

    // The agent answers: the promise is kept, nothing more fires for it.
    let reply = pb::ReplyToResidentRequest {
        ticket_id: moved.id.clone(),
        expected_version: moved.version,
        text: "您好，经核对多收的30元将在下月账单中退还。".into(),
        standard_reply: None,
        method: 0,
    };
    app.tickets.reply_to_resident(authed(&agent, reply)).await.expect("reply");
    let mut pending = Vec::new();
    for _ in 0..100 {
        let alarms = app.store.alarms_of(&complaint.id).await.expect("alarms");
        pending = alarms.into_iter().filter(|a| a.pending && a.clock == "promised_reply").collect();
        if pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pending.is_empty(), "the reply kept the promise: {pending:?}");
}

/// Everything a run writes outside the database's sealed columns, scanned for residents'
/// names and phones: every process's logs (propdesk's own at trace level), the messages on
/// the bus, the outbox, the metrics, and the bodies of receivers not entitled to contact
/// details. Only the gateway entitled to them may hold a phone (it does: the scan would
/// see one).
/// The notifier plans a new ticket's alarms without taking its row: dispatch works on the
/// same new ticket at the same moment (here another transaction holds the row), and
/// neither waits for the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_plans_a_ticket_s_alarms_while_another_transaction_holds_its_row() {
    use sea_orm::{ConnectionTrait, TransactionTrait};

    let (mut app, _dir) = start(Backend::Postgres, &format!("{SHRUNK}{ALWAYS_OPEN}")).await;
    let ticket = app.create(app.new_ticket("plumbing", "水管爆裂")).await;
    let db = sea_orm::Database::connect(&app._db.url).await.expect("connect");
    let holder = db.begin().await.expect("begin");
    let lock = format!("SELECT id FROM tickets WHERE id = '{}' FOR UPDATE", ticket.id);
    holder.execute_unprepared(&lock).await.expect("lock the ticket");

    // Started only now: its first message finds the row already held.
    let _notifier = app.start_notifier().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let alarms = app.store.alarms_of(&ticket.id).await.expect("alarms");
        if alarms.iter().any(|a| a.pending && a.clock == "acknowledge") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no acknowledge alarm while the row was held: {alarms:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    holder.rollback().await.expect("release the ticket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_run_writes_holds_a_residents_name_or_phone_except_the_entitled_gateway() {
    use crate::helpers::{Server, free_port, new_request_id};
    use futures_util::StreamExt;
    const NAME: &str = "诸葛晓雯";
    const PHONE: &str = "13955501234";
    const REPORTER: &str = "欧阳建国";
    const REPORTER_PHONE: &str = "139-5550-4321";
    let secrets = [NAME, PHONE, REPORTER, REPORTER_PHONE, "13955504321", "5550-4321", "5550 1234", "55501234"];

    let Gateways { entitled, plain, staff, settings: hooks } = resident_gateways().await;
    let (app, dir) = start(Backend::Postgres, &format!("{SHRUNK}{CHINA_ALWAYS_OPEN}{hooks}")).await;

    // A copy of every message on the bus, from before the first create.
    let prefix = app.env.iter().find(|(k, _)| *k == "PROPDESK__BUS__PREFIX").map(|(_, v)| v.clone()).expect("prefix");
    app.bus.connect().await.expect("the run's exchange and queues");
    let connection = lapin::Connection::connect(&propdesk_testkit::amqp_url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    let exclusive = lapin::options::QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    let queue = channel.queue_declare("".into(), exclusive, Default::default()).await.expect("queue");
    channel
        .queue_bind(
            queue.name().clone(),
            format!("{prefix}.events").into(),
            "#".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .expect("bind");
    let consume = lapin::options::BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut consumer =
        channel.basic_consume(queue.name().clone(), "scan".into(), consume, Default::default()).await.expect("consume");
    let carried = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let sink = carried.clone();
    let copying = tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            sink.lock().expect("lock").push(delivery.data.clone());
        }
    });

    // Every process of the run logs into a file of its own.
    let logs = dir.path();
    let metrics_ports = [free_port(), free_port(), free_port()];
    let with_metrics = |port: u16| {
        let mut env = app.env.clone();
        env.push(("PROPDESK__METRICS__LISTEN", format!("127.0.0.1:{port}")));
        env
    };
    let mut processes = Vec::new();
    for (command, listen, port) in [
        ("intake", "PROPDESK__INTAKE__LISTEN", metrics_ports[0]),
        ("dispatch", "PROPDESK__DISPATCH__HEALTH_LISTEN", metrics_ports[1]),
        ("notifier", "PROPDESK__NOTIFIER__HEALTH_LISTEN", metrics_ports[2]),
    ] {
        let log = logs.join(format!("{command}.log"));
        processes.push(Server::start_logged(&[command], &with_metrics(port), listen, &log).await);
    }
    let intake = &processes[0];
    let channel = intake.channel().await;
    let mut tickets = pb::ticket_service_client::TicketServiceClient::new(channel.clone());
    let mut directory = pb::directory_service_client::DirectoryServiceClient::new(channel);
    let (admin, agent) = (app.world.admin.clone(), app.world.agent.clone());

    let resident = pb::CreateResidentRequest {
        unit_id: app.world.unit_id.clone(),
        name: NAME.into(),
        phone: PHONE.into(),
        request_id: new_request_id(),
        language: String::new(),
    };
    let resident = directory.create_resident(authed(&admin, resident)).await.expect("resident").into_inner();
    let theirs = pb::CreateTicketRequest {
        resident_id: resident.id.clone(),
        reporter_name: String::new(),
        reporter_phone: String::new(),
        ..app.new_ticket("plumbing", "卫生间水管爆裂，水流不止")
    };
    let theirs = tickets.create_ticket(authed(&agent, theirs)).await.expect("create").into_inner();
    let reported = pb::CreateTicketRequest {
        reporter_name: REPORTER.into(),
        reporter_phone: REPORTER_PHONE.into(),
        ..app.new_ticket("plumbing", "楼道消防栓漏水")
    };
    let reported = tickets.create_ticket(authed(&agent, reported)).await.expect("create").into_inner();
    // The desk's reads, with contact details in the responses.
    tickets.get_ticket(authed(&agent, pb::GetTicketRequest { ticket_id: theirs.id.clone() })).await.expect("get");
    let by_phone = pb::ListTicketsRequest { reporter_phone: REPORTER_PHONE.into(), ..Default::default() };
    tickets.list_tickets(authed(&agent, by_phone)).await.expect("by phone");
    let residents = pb::ListResidentsRequest {
        property_id: app.world.property_id.clone(),
        phone: PHONE.into(),
        ..Default::default()
    };
    directory.list_residents(authed(&agent, residents)).await.expect("by phone");
    let wrong = pb::CreateTicketRequest {
        reporter_phone: format!("{REPORTER_PHONE}x"),
        ..app.new_ticket("plumbing", "坏号码")
    };
    assert!(tickets.create_ticket(authed(&agent, wrong)).await.is_err(), "a bad phone is refused (and not logged)");

    // The on-site deadline passes: the entitled gateway is told the resident's phone.
    let mut told = false;
    for _ in 0..400 {
        told = entitled.requests().iter().any(|r| r.body.contains(theirs.id.as_str()) && r.body.contains(PHONE));
        if told {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(told, "the entitled gateway got the resident's phone (the scan would see a leak)");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut written: Vec<(String, Vec<u8>)> = Vec::new();
    for port in metrics_ports {
        written.push((format!("metrics :{port}"), scrape_metrics(port).await.into_bytes()));
    }
    drop(processes);
    copying.abort();
    for name in ["intake.log", "dispatch.log", "notifier.log"] {
        let log = std::fs::read(logs.join(name)).expect("the log");
        assert!(String::from_utf8_lossy(&log).contains(&theirs.id), "{name} logged the run (trace level)");
        written.push((name.to_owned(), log));
    }
    let messages = carried.lock().expect("lock").clone();
    assert!(messages.len() >= 4, "the bus carried the run's events: {}", messages.len());
    written.extend(messages.into_iter().map(|m| ("bus message".to_owned(), m)));
    assert!(plain.requests().iter().any(|r| r.body.contains(theirs.id.as_str())), "the plain gateway was told too");
    for receiver in [&plain, &staff] {
        written.extend(receiver.requests().into_iter().map(|r| ("webhook body".to_owned(), r.body.into_bytes())));
    }
    use sea_orm::EntityTrait;
    let outbox = propdesk_store::entity::outbox::Entity::find().all(app.store.connection()).await.expect("outbox");
    written.extend(outbox.into_iter().map(|row| ("outbox row".to_owned(), row.payload)));
    let found: Vec<(&str, &str)> = written
        .iter()
        .flat_map(|(place, bytes)| {
            let text = String::from_utf8_lossy(bytes).into_owned();
            secrets
                .iter()
                .filter(move |secret| text.contains(*secret))
                .map(move |secret| (place.as_str(), *secret))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(found, Vec::<(&str, &str)>::new(), "personal data where it must not be");
    let _ = reported;
}

/// The text of `http://127.0.0.1:<port>/metrics`.
async fn scrape_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("metrics endpoint");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("response");
    response
}
