//! Every process's Prometheus endpoint, scraped under load: the named series are there and
//! move as work is done.

use std::time::Duration;

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::helpers::{App, assert_status, authed, free_port};

/// The text of `http://127.0.0.1:<port>/metrics`.
async fn scrape(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("metrics endpoint");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("response");
    assert!(response.starts_with("HTTP/1.") && response.contains(" 200 "), "{response}");
    response
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|l| rest.contains(l))).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

fn present(text: &str, name: &str) -> bool {
    text.lines().any(|line| line.starts_with(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_process_serves_its_metrics_and_they_move_under_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("propdesk.toml");
    // A 1-second acknowledge clock, so the ladder fires during the test.
    std::fs::write(&file, "[policy.sla.p3]\nacknowledge_secs = 1\nworking_hours_only = false\n").expect("settings");
    let ports = [free_port(), free_port(), free_port()];
    let listen = |port: u16| ("PROPDESK__METRICS__LISTEN", format!("127.0.0.1:{port}"));
    let mut app =
        App::start_with(Backend::Postgres, &[("PROPDESK_CONFIG", file.display().to_string()), listen(ports[0])]).await;
    let _dispatch = app.start_dispatch_with(&[listen(ports[1])]).await;
    let _notifier = app.start_notifier_with(&[listen(ports[2])]).await;

    let create_many = async |app: &mut App, n: usize| {
        let mut ids = Vec::new();
        for i in 0..n {
            let mut request = app.new_ticket("plumbing", &format!("drip {i}"));
            request.unit_id.clear();
            request.location = format!("lobby {i}");
            ids.push(app.create(request).await.id);
        }
        for id in &ids {
            app.wait_dispatched(id).await;
        }
    };
    create_many(&mut app, 10).await;
    let mut bad = app.new_ticket("plumbing", "no category");
    bad.category.clear();
    let refused = app.tickets.create_ticket(authed(&app.world.agent, bad)).await;
    assert_status(refused, Code::InvalidArgument, Some("category"), "a ticket without a category");
    // The acknowledge breaches fire a second after logging.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let create = ["/propdesk.v1.TicketService/CreateTicket", "code=\"Ok\""];
    let intake = scrape(ports[0]).await;
    assert!(sample(&intake, "propdesk_grpc_requests_total", &create) >= 10.0, "{intake}");
    let refused = ["/propdesk.v1.TicketService/CreateTicket", "code=\"InvalidArgument\""];
    assert_eq!(sample(&intake, "propdesk_grpc_requests_total", &refused), 1.0);
    assert!(sample(&intake, "propdesk_grpc_request_duration_seconds_bucket", &["CreateTicket", "le=\"+Inf\""]) >= 11.0);
    assert!(present(&intake, "propdesk_outbox_lag_seconds"), "{intake}");

    let dispatch = scrape(ports[1]).await;
    let dispatch_role = ["role=\"dispatch\""];
    assert!(sample(&dispatch, "propdesk_messages_consumed_total", &dispatch_role) >= 10.0, "{dispatch}");
    assert!(sample(&dispatch, "propdesk_messages_total", &["role=\"dispatch\"", "outcome=\"acked\""]) >= 10.0);

    let notifier = scrape(ports[2]).await;
    assert!(sample(&notifier, "propdesk_messages_consumed_total", &["role=\"notifier\""]) >= 10.0, "{notifier}");
    assert!(sample(&notifier, "propdesk_alarms_fired_total", &["rung=\"breach\""]) >= 10.0, "{notifier}");
    assert!(sample(&notifier, "propdesk_escalation_lateness_seconds_bucket", &["le=\"+Inf\""]) >= 10.0);
    assert!(sample(&notifier, "propdesk_deliveries_total", &["outcome=\"delivered\""]) >= 10.0);
    assert!(present(&notifier, "propdesk_deadlines_pending") && present(&notifier, "propdesk_deadlines_due"));
    // Each process relays outbox rows, its own first: 10 created and 10 dispatched events.
    let published: f64 =
        [&intake, &dispatch, &notifier].iter().map(|t| sample(t, "propdesk_outbox_published_total", &[])).sum();
    assert!(published >= 20.0, "{published}");

    // More work: the counters move.
    create_many(&mut app, 5).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = [scrape(ports[0]).await, scrape(ports[1]).await, scrape(ports[2]).await];
    let moved = |before: &str, after: &str, name: &str, labels: &[&str]| {
        sample(after, name, labels) - sample(before, name, labels)
    };
    assert!(moved(&intake, &later[0], "propdesk_grpc_requests_total", &create) >= 5.0);
    assert!(moved(&dispatch, &later[1], "propdesk_messages_consumed_total", &dispatch_role) >= 5.0);
    assert!(moved(&notifier, &later[2], "propdesk_alarms_fired_total", &["rung=\"breach\""]) >= 5.0);
    assert_eq!(pb::TicketState::Dispatched as i32, 2, "sanity: the proto in use");
}
