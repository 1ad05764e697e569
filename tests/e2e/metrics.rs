//! What operators watch: every process's Prometheus endpoint, scraped under load (the named
//! series are there and move as work is done), and a caller's trace followed across
//! processes.

use std::time::Duration;

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::helpers::{App, assert_status, authed, free_port};

crate::on_both_backends!(
    each_process_serves_its_metrics_and_they_move_under_load,
    a_callers_trace_reaches_the_worker_and_its_messages,
    spans_are_exported_over_otlp_under_the_callers_trace,
);

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

async fn each_process_serves_its_metrics_and_they_move_under_load(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("propdesk.toml");
    // A 1-second acknowledge clock, so the ladder fires during the test.
    std::fs::write(&file, "[policy.sla.p3]\nacknowledge_secs = 1\nworking_hours_only = false\n").expect("settings");
    let ports = [free_port(), free_port(), free_port()];
    let listen = |port: u16| ("PROPDESK__METRICS__LISTEN", format!("127.0.0.1:{port}"));
    let mut app = App::start_with(backend, &[("PROPDESK_CONFIG", file.display().to_string()), listen(ports[0])]).await;
    let _dispatch = app.start_dispatch_with(&[listen(ports[1])]).await;
    let _notifier = app.start_notifier_with(&[listen(ports[2])]).await;

    let create_many = async |app: &mut App, n: usize| {
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(app.create(app.lobby_ticket(i)).await.id);
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

/// A caller's W3C trace goes from the gRPC call through the outbox and the bus into the
/// dispatch worker, whose JSON logs show its trace id and whose own message carries it on.
async fn a_callers_trace_reaches_the_worker_and_its_messages(backend: Backend) {
    let mut app = App::start(backend).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("dispatch.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut dispatch = std::process::Command::new(crate::helpers::BINARY)
        .arg("dispatch")
        .envs(app.env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PROPDESK__DISPATCH__HEALTH_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("PROPDESK__LOG__FORMAT", "json")
        .env("PROPDESK__LOG__FILTER", "info")
        .env_remove("PROPDESK_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn dispatch");

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = authed(&app.world.agent, app.new_ticket("plumbing", "a drip under the sink"));
    let caller = format!("00-{trace_id}-00f067aa0ba902b7-01");
    request.metadata_mut().insert("traceparent", caller.parse().expect("metadata"));
    let created = app.tickets.create_ticket(request).await.expect("create").into_inner();
    app.wait_dispatched(&created.id).await;

    // Both messages, intake's and the worker's, travel under the caller's trace.
    let envelopes = app.bus_envelopes(2).await;
    for envelope in &envelopes {
        let trace = envelope.trace_parent.as_deref().and_then(propdesk_trace::TraceParent::parse);
        let trace = trace.unwrap_or_else(|| panic!("{} has no trace", envelope.routing_key));
        assert_eq!(trace.trace_id_hex(), trace_id, "{}", envelope.routing_key);
        assert_ne!(trace.parent_id, 0x00f0_67aa_0ba9_02b7, "each hop is a span of its own");
    }
    let keys: Vec<&str> = envelopes.iter().map(|e| e.routing_key.as_str()).collect();
    assert_eq!(keys, ["ticket.created", "ticket.dispatched.engineering"]);

    let _ = dispatch.kill();
    let _ = dispatch.wait();
    let logs = std::fs::read_to_string(&log_path).expect("logs");
    let dispatched = logs
        .lines()
        .filter(|line| line.contains("ticket dispatched"))
        .find(|line| line.contains(&created.id))
        .unwrap_or_else(|| panic!("the worker logged the dispatch: {logs}"));
    let line: serde_json::Value = serde_json::from_str(dispatched).expect("a JSON log line");
    assert_eq!(line["span"]["trace_id"], trace_id, "{line}");
}

/// With `trace.otlp_endpoint` set, intake and the dispatch worker export their spans over
/// OTLP/HTTP under the caller's trace id (flushed when they stop).
async fn spans_are_exported_over_otlp_under_the_callers_trace(backend: Backend) {
    let port = free_port();
    let collector = crate::helpers::WebhookReceiver::listen(port).await;
    let endpoint = ("PROPDESK__TRACE__OTLP_ENDPOINT", format!("http://127.0.0.1:{port}/v1/traces"));
    let mut app = App::start_with(backend, &[endpoint]).await;
    let mut dispatch = app.start_dispatch().await;
    // A trace id whose 16 bytes are printable ("ABCDEFGHI@ABCDEF"), to find in the protobuf.
    let trace_id = "41424344454647484940414243444546";
    let mut request = authed(&app.world.agent, app.lobby_ticket(1));
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().expect("ascii"));
    let created = app.tickets.create_ticket(request).await.expect("create").into_inner();
    app.wait_dispatched(&created.id).await;
    let took = tokio::task::block_in_place(|| (app.server.terminate(), dispatch.terminate()));
    assert!(took.0 < Duration::from_secs(20) && took.1 < Duration::from_secs(20), "{took:?}");

    let exports = collector.requests();
    let ours: Vec<&String> = exports.iter().map(|r| &r.body).filter(|b| b.contains("ABCDEFGHI@ABCDEF")).collect();
    assert!(exports.iter().all(|r| r.header("content-type") == Some("application/x-protobuf")), "OTLP/HTTP protobuf");
    for service in ["propdesk-intake", "propdesk-dispatch"] {
        assert!(ours.iter().any(|body| body.contains(service)), "{service} exported a span of the trace");
    }
    assert!(
        ours.iter().any(|b| b.contains("/propdesk.v1.TicketService/CreateTicket")),
        "the call's span, with its method"
    );
}
