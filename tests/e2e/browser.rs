//! A real browser as a front end: headless Chromium loads a page built with Connect's
//! gRPC-Web transport and the TypeScript generated from the protos (tests/browser), logs a
//! ticket and follows it over WatchTickets on `propdesk dev`; a page from an origin that is
//! not allowed is refused by CORS.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use propdesk_proto::v1 as pb;

use crate::helpers::{Server, authed, dev_admin_token};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// Builds the page from the protos as they are now (buf generate, then esbuild).
fn build_page() {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/.bin/buf").exists(),
        "tests/browser/node_modules is missing: scripts/ensure-services installs it (npm ci)"
    );
    let built = Command::new("npm").args(["run", "--silent", "build"]).current_dir(&dir).status().expect("run npm");
    assert!(built.success(), "npm run build failed in tests/browser");
}

/// A CORS preflight for `origin`, over plain HTTP/1.1: the response head, lower-cased.
fn preflight(address: &str, origin: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let request = format!(
        "OPTIONS /propdesk.v1.TicketService/CreateTicket HTTP/1.1\r\nHost: {address}\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: authorization,content-type,x-grpc-web,x-user-agent\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response.split("\r\n\r\n").next().unwrap_or_default().to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_logs_a_ticket_and_watches_it_dispatched_over_grpc_web() {
    build_page();
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("PROPDESK__INTAKE__WATCH_HEARTBEAT_SECS", "1".to_owned())];
    let server = Server::start(&["dev"], &env, Some(dir.path())).await;
    let token = dev_admin_token(dir.path());
    let channel = server.channel().await;
    let mut directory = pb::directory_service_client::DirectoryServiceClient::new(channel.clone());
    let properties = directory.list_properties(authed(&token, pb::ListPropertiesRequest::default())).await;
    let property_id = properties.expect("properties").into_inner().properties[0].id.clone();

    // Preflights: the dev origins are allowed with the headers gRPC-Web needs; others not.
    let allowed = preflight(&server.address, "http://localhost:5173");
    assert!(allowed.contains("access-control-allow-origin: http://localhost:5173"), "{allowed}");
    for header in ["authorization", "x-grpc-web", "x-user-agent", "content-type"] {
        assert!(
            allowed.lines().any(|l| l.starts_with("access-control-allow-headers") && l.contains(header)),
            "{header}: {allowed}"
        );
    }
    let refused = preflight(&server.address, "https://evil.example.com");
    assert!(!refused.contains("access-control-allow-origin"), "{refused}");

    let output = Command::new("node")
        .arg(browser_dir().join("run.mjs"))
        .env("INTAKE_URL", server.url())
        .env("TOKEN", &token)
        .env("PROPERTY_ID", &property_id)
        .output()
        .expect("run node tests/browser/run.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the browser run failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the driver's JSON");

    let page = &result["allowed"];
    assert!(page["error"].is_null(), "the allowed page failed: {page}");
    assert_eq!(page["seen"], serde_json::json!(["DISPATCHED"]), "{page}");
    assert!(page["heartbeatCursor"].as_str().is_some_and(|c| !c.is_empty()), "a heartbeat with its cursor: {page}");
    let ticket_id = page["ticketId"].as_str().expect("the ticket the page logged");
    let mut tickets = pb::ticket_service_client::TicketServiceClient::new(channel);
    let ticket = tickets.get_ticket(authed(&token, pb::GetTicketRequest { ticket_id: ticket_id.into() })).await;
    let ticket = ticket.expect("the page's ticket, read over native gRPC").into_inner();
    assert_eq!(ticket.state, pb::TicketState::Dispatched as i32);

    let refused = &result["refused"];
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(error.contains("Failed to fetch"), "a page of another origin is refused by CORS: {refused}");
}
