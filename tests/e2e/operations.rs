//! What operators rely on: the token command, request limits, and processes that drain on
//! SIGTERM without losing work (the metrics endpoints: `metrics.rs`).

use std::time::Duration;

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::Code;

use crate::helpers::{App, BINARY, SECRET, assert_status, authed};

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
    assert_status(result, Code::OutOfRange, None, "a 300 KB request");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dispatch_worker_stopped_with_sigterm_drains_and_loses_nothing() {
    let mut app = App::start(Backend::Postgres).await;
    let mut worker = app.start_dispatch().await;
    let mut ids = Vec::new();
    for i in 0..120 {
        let mut request = app.new_ticket("plumbing", &format!("report {i}"));
        request.unit_id.clear();
        request.location = format!("lobby {i}");
        ids.push(app.create(request).await.id);
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
