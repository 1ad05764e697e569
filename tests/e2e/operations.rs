//! What operators rely on: the token command, request limits, and processes that drain on
//! SIGTERM without losing work (the metrics endpoints: `metrics.rs`).

use std::time::Duration;

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::Code;

use crate::helpers::{App, BINARY, SECRET, assert_reason, authed};

crate::on_both_backends!(
    threads = 4;
    a_dispatch_worker_stopped_with_sigterm_drains_and_loses_nothing,
    intake_stopped_with_sigterm_under_load_loses_and_doubles_nothing,
    the_notifier_stopped_with_sigterm_while_firing_loses_and_doubles_nothing,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_prints_a_token_the_server_accepts() {
    let output = std::process::Command::new(BINARY)
        .args(["token", "--staff", "agent-7", "--role", "agent", "--property", "p-1", "--property", "p-2"])
        .env("PROPDESK__AUTH__SIGNING_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    let actor = crate::helpers::keys().verify(token.trim()).expect("a valid token");
    assert_eq!((actor.staff_id.as_str(), actor.role), ("agent-7", propdesk_domain::Role::Agent));
    assert_eq!(actor.properties, ["p-1", "p-2"]);
    let bad_role = std::process::Command::new(BINARY)
        .args(["token", "--staff", "x", "--role", "janitor"])
        .env("PROPDESK__AUTH__SIGNING_SECRET", SECRET)
        .output()
        .unwrap();
    assert_eq!(bad_role.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_is_refused_before_it_is_read() {
    let mut app = App::start(Backend::Sqlite).await;
    let before = app.snapshot().await;
    let request = app.new_ticket("plumbing", &"水".repeat(100_000));
    let result = app.tickets.create_ticket(authed(&app.world.agent, request)).await;
    assert_reason(result, Code::OutOfRange, pb::ErrorReason::RequestTooLarge, "a 300 KB request");
    assert_eq!(app.snapshot().await, before);
}

async fn a_dispatch_worker_stopped_with_sigterm_drains_and_loses_nothing(backend: Backend) {
    let mut app = App::start(backend).await;
    let mut worker = app.start_dispatch().await;
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(app.create(app.lobby_ticket(i)).await.id);
        if i == 60 {
            let took = worker.terminate();
            assert!(took < Duration::from_secs(10), "the worker took {took:?} to stop");
        }
    }
    let _restarted = app.start_dispatch().await;
    for id in &ids {
        let (ticket, _) = app.wait_dispatched(id).await;
        assert_eq!(ticket.state, pb::TicketState::Dispatched as i32);
        let dispatches =
            app.history(id).await.iter().filter(|e| e.r#type == pb::TicketEventType::Dispatched as i32).count();
        assert_eq!(dispatches, 1, "ticket {id}");
    }
}

/// Intake stopped with SIGTERM while eight clients create tickets: it exits within its
/// drain time; every create it acknowledged is stored and dispatched; a create cut off is
/// retried on the next replica with its request id and lands exactly once.
async fn intake_stopped_with_sigterm_under_load_loses_and_doubles_nothing(backend: Backend) {
    let mut app = App::start(backend).await;
    let _dispatch = app.start_dispatch().await;
    let channel = app.server.channel().await;
    let agent = app.world.agent.clone();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..8 {
        let mut tickets = pb::ticket_service_client::TicketServiceClient::new(channel.clone());
        let template = app.new_ticket("plumbing", "drip");
        let agent = agent.clone();
        clients.spawn(async move {
            // (request, acknowledged ticket id)
            let mut outcomes: Vec<(pb::CreateTicketRequest, Option<String>)> = Vec::new();
            for n in 0..100_000 {
                let mut request = crate::helpers::pb_create(&template, client * 1_000_000 + n);
                request.unit_id.clear();
                request.location = format!("lobby {client}-{n}");
                match tickets.create_ticket(authed(&agent, request.clone())).await {
                    Ok(created) => outcomes.push((request, Some(created.into_inner().id))),
                    Err(status) => {
                        // Refused or cut off while draining: nothing else may go wrong. A
                        // call that races the server's graceful GOAWAY is failed by the
                        // client's HTTP/2 layer, which tonic reports as Internal.
                        let goaway = status.code() == Code::Internal && status.message().contains("h2 protocol error");
                        assert!(
                            goaway || matches!(status.code(), Code::Unavailable | Code::Cancelled | Code::Unknown),
                            "{status:?}"
                        );
                        outcomes.push((request, None));
                        break;
                    }
                }
            }
            outcomes
        });
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let took = tokio::task::block_in_place(|| app.server.terminate());
    assert!(took < Duration::from_secs(20), "intake took {took:?} to stop (drain timeout 20 s)");
    let mut outcomes = Vec::new();
    while let Some(done) = clients.join_next().await {
        outcomes.extend(done.expect("client"));
    }
    let acknowledged = outcomes.iter().filter(|(_, id)| id.is_some()).count();
    assert!(acknowledged >= 8, "load was running when SIGTERM came: {acknowledged}");
    assert!(outcomes.iter().any(|(_, id)| id.is_none()), "every client was cut off by the stop");

    // The next replica: retries land once; every ticket is dispatched exactly once.
    let next = crate::helpers::Server::start(&["intake"], &app.env, None).await;
    app.tickets = pb::ticket_service_client::TicketServiceClient::new(next.channel().await);
    let mut ids = std::collections::BTreeSet::new();
    for (request, acknowledged) in &outcomes {
        let retried = app.tickets.create_ticket(authed(&agent, request.clone())).await.expect("retry").into_inner();
        if let Some(id) = acknowledged {
            assert_eq!(&retried.id, id, "an acknowledged create is stored under its request id");
        }
        assert!(ids.insert(retried.id.clone()), "one ticket per request id");
    }
    for id in &ids {
        app.wait_dispatched(id).await;
        let dispatches =
            app.history(id).await.iter().filter(|e| e.r#type == pb::TicketEventType::Dispatched as i32).count();
        assert_eq!(dispatches, 1, "ticket {id}");
    }
}

/// The notifier stopped with SIGTERM while alarms are firing: it exits within its drain
/// time, and the replica that takes over fires every step exactly once.
async fn the_notifier_stopped_with_sigterm_while_firing_loses_and_doubles_nothing(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("propdesk.toml");
    std::fs::write(&file, "[policy.sla.p3]\nacknowledge_secs = 1\nworking_hours_only = false\n").expect("settings");
    let mut app = App::start_with(backend, &[("PROPDESK_CONFIG", file.display().to_string())]).await;
    let _dispatch = app.start_dispatch().await;
    let mut first = app.start_notifier().await;
    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(app.create(app.lobby_ticket(n)).await.id);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The first reminders and breaches are firing now.
    let took = tokio::task::block_in_place(|| first.terminate());
    assert!(took < Duration::from_secs(20), "the notifier took {took:?} to stop");
    let _second = app.start_notifier().await;
    for id in &ids {
        let history = app
            .wait_history(id, Duration::from_secs(15), |h| {
                h.iter().any(|e| {
                    e.r#type == pb::TicketEventType::Escalated as i32 && e.note.starts_with("acknowledge breach")
                })
            })
            .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let steps = |prefix: &str| history.iter().filter(|e| e.note.starts_with(prefix)).count();
        assert_eq!(steps("acknowledge reminder"), 1, "ticket {id}: {history:#?}");
        assert_eq!(steps("acknowledge breach"), 1, "ticket {id}");
    }
    let alarms = app.store.alarms_of(&ids[0]).await.expect("alarms");
    assert!(alarms.iter().filter(|a| a.rung != "overdue" && a.clock == "acknowledge").all(|a| !a.pending));
}
