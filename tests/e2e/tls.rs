//! The intake serving TLS itself (for clusters without a mesh): a certificate the test
//! makes, the whole API over it, and plaintext refused.

use propdesk_proto::v1 as pb;
use propdesk_testkit::Backend;
use tonic::transport::Channel;

use crate::helpers::{App, authed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_serves_tls_with_its_certificate_and_refuses_plaintext() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write the key");
    let settings = [
        ("PROPDESK__INTAKE__TLS__CERT", cert.display().to_string()),
        ("PROPDESK__INTAKE__TLS__KEY", key.display().to_string()),
    ];
    // The app's clients connect over TLS, trusting the certificate: the directory is
    // created and a ticket logged through it.
    let mut app = App::start_with(Backend::Sqlite, &settings).await;
    let ticket = app.create(app.new_ticket("plumbing", "水表井漏水")).await;
    let agent = app.world.agent.clone();
    let read = app.tickets.get_ticket(authed(&agent, pb::GetTicketRequest { ticket_id: ticket.id.clone() })).await;
    assert_eq!(read.expect("a call over TLS").into_inner().id, ticket.id);

    // A plaintext client gets no answer from the TLS port.
    let plaintext = async {
        let channel = Channel::from_shared(app.server.url()).expect("url").connect().await?;
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health.check(tonic_health::pb::HealthCheckRequest::default()).await.map_err(Into::into).map(|_| ())
    };
    let refused: Result<(), Box<dyn std::error::Error + Send + Sync>> =
        tokio::time::timeout(std::time::Duration::from_secs(5), plaintext)
            .await
            .unwrap_or_else(|_| Err("no answer".into()));
    assert!(refused.is_err(), "plaintext must not reach a TLS intake");
}

/// `sslmode` in `database.url` is honoured: `require` connects over TLS (the Debian
/// server's certificate), `disable` in plaintext; told apart by the application name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_follow_the_urls_sslmode() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = App::start(Backend::Postgres).await;
    for (mode, encrypted) in [("require", true), ("disable", false)] {
        let name = format!("propdesk-sslmode-{mode}");
        let mut env = app.env.clone();
        let url = format!("{}?sslmode={mode}&application_name={name}", app._db.url);
        env.retain(|(key, _)| *key != "PROPDESK__DATABASE__URL");
        env.push(("PROPDESK__DATABASE__URL", url));
        let intake = crate::helpers::Server::start(&["intake"], &env, None).await;
        let mut tickets = pb::ticket_service_client::TicketServiceClient::new(intake.channel().await);
        let list = pb::ListTicketsRequest { page_size: 5, ..Default::default() };
        tickets.list_tickets(authed(&app.world.agent, list)).await.expect("a call that reads the database");
        let sql = format!(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
             WHERE a.application_name = '{name}'"
        );
        let row = app
            .store
            .connection()
            .query_one_raw(Statement::from_string(app.store.connection().get_database_backend(), sql));
        let row = row.await.expect("pg_stat_ssl").expect("a row");
        let (connections, all_encrypted): (i64, Option<bool>) =
            (row.try_get_by_index(0).unwrap(), row.try_get_by_index(1).unwrap());
        assert!(connections > 0, "{mode}: the intake's connections are there");
        assert_eq!(all_encrypted, Some(encrypted), "{mode}");
    }
}

/// The bus over TLS: the intake and a dispatch worker on `amqps://` (the test broker's TLS
/// listener, its CA given in `bus.tls_ca_file`) carry a ticket to DISPATCHED, and the broker
/// lists their connections on its TLS port as TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_runs_over_amqps_with_a_private_ca() {
    let settings = [
        ("PROPDESK__BUS__URL", propdesk_testkit::amqps_url()),
        ("PROPDESK__BUS__TLS_CA_FILE", propdesk_testkit::amqps_ca_file()),
    ];
    let mut app = App::start_with(Backend::Postgres, &settings).await;
    let _dispatch = app.start_dispatch().await;
    let ticket = app.create(app.new_ticket("plumbing", "地下室水管爆裂")).await;
    let (dispatched, _) = app.wait_dispatched(&ticket.id).await;
    assert!(!dispatched.assignee_id.is_empty(), "dispatched over amqps: {dispatched:?}");

    let listed = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "port", "ssl", "ssl_protocol", "--quiet", "--no-table-headers"])
        .output()
        .expect("rabbitmqctl");
    assert!(listed.status.success(), "rabbitmqctl: {}", String::from_utf8_lossy(&listed.stderr));
    let text = String::from_utf8_lossy(&listed.stdout);
    let on_tls_port: Vec<&str> = text.lines().filter(|line| line.split_whitespace().next() == Some("5671")).collect();
    assert!(on_tls_port.len() >= 2, "the intake's and the worker's connections on 5671: {text}");
    assert!(on_tls_port.iter().all(|line| line.contains("true") && line.contains("tlsv1.")), "{on_tls_port:?}");
}
