//! `propdesk dev`: the embedded default a newcomer runs first.

use std::time::Duration;

use propdesk_proto::v1 as pb;
use tokio_stream::StreamExt;

use crate::helpers::{Server, authed, dev_admin_token};

/// Service names listed by reflection through one protocol version (`v1` or `v1alpha`):
/// the two are separate generated types with the same shape.
macro_rules! list_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::once(request))
            .await
            .unwrap()
            .into_inner();
        match responses.next().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }};
}

async fn reflected_services(server: &Server, v1alpha: bool) -> Vec<String> {
    let channel = server.channel().await;
    if v1alpha { list_services!(v1alpha, channel) } else { list_services!(v1, channel) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_serves_health_reflection_and_seeded_demo_data() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.txt");
    let mut server =
        Server::start(&["dev"], &[("PROPDESK_TEST_STDOUT", output.display().to_string())], Some(dir.path())).await;
    assert!(dir.path().join("propdesk-dev.db").exists(), "SQLite file in the working directory");

    for v1alpha in [false, true] {
        let services = reflected_services(&server, v1alpha).await;
        for expected in ["propdesk.v1.TicketService", "propdesk.v1.DirectoryService", "grpc.health.v1.Health"] {
            assert!(services.iter().any(|s| s == expected), "v1alpha={v1alpha}: {expected} missing from {services:?}");
        }
    }

    // The seeded directory is there; mint a token with the dev secret kept beside the file.
    let token = dev_admin_token(dir.path());
    let mut directory = pb::directory_service_client::DirectoryServiceClient::new(server.channel().await);
    let properties = directory
        .list_properties(authed(&token, pb::ListPropertiesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .properties;
    assert_eq!(properties.len(), 1);
    let staff = directory
        .list_staff(authed(
            &token,
            pb::ListStaffRequest { property_id: properties[0].id.clone(), on_duty_only: true, ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner()
        .staff;
    for department in [pb::Department::Engineering, pb::Department::Cleaning, pb::Department::Security] {
        assert!(
            staff.iter().any(|s| s.department == department as i32 && s.role == pb::StaffRole::Technician as i32),
            "{department:?} on duty"
        );
    }

    let took = server.terminate();
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_refuses_to_start_without_a_signing_secret() {
    let output = std::process::Command::new(crate::helpers::BINARY)
        .arg("intake")
        .env("PROPDESK__DATABASE__URL", "sqlite::memory:")
        .env_remove("PROPDESK__AUTH__SIGNING_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("auth.signing_secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_stops_the_start_naming_the_key() {
    let output = std::process::Command::new(crate::helpers::BINARY)
        .arg("migrate")
        .env("PROPDESK__DATABASE__MAX_CONNECTIONS", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database.max_connections"), "{stderr}");
}

/// Waits until the ticket leaves NEW.
async fn dispatched(
    tickets: &mut pb::ticket_service_client::TicketServiceClient<tonic::transport::Channel>,
    token: &str,
    id: &str,
) -> pb::Ticket {
    for _ in 0..500 {
        let ticket = tickets
            .get_ticket(authed(token, pb::GetTicketRequest { ticket_id: id.to_owned() }))
            .await
            .unwrap()
            .into_inner();
        if ticket.state != pb::TicketState::New as i32 {
            return ticket;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("ticket {id} was not dispatched in embedded mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_routes_groups_escalates_and_follows_up_like_production() {
    let dir = tempfile::tempdir().unwrap();
    // A one-second acknowledge clock for emergencies, so the in-process notifier escalates.
    let env = [("PROPDESK__POLICY__SLA__P1__ACKNOWLEDGE_SECS", "1".to_owned())];
    let server = Server::start(&["dev"], &env, Some(dir.path())).await;
    let token = dev_admin_token(dir.path());
    let channel = server.channel().await;
    let mut directory = pb::directory_service_client::DirectoryServiceClient::new(channel.clone());
    let mut tickets = pb::ticket_service_client::TicketServiceClient::new(channel);
    let property = directory
        .list_properties(authed(&token, pb::ListPropertiesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .properties[0]
        .id
        .clone();
    let units = directory
        .list_units(authed(
            &token,
            pb::ListUnitsRequest { property_id: property.clone(), page_size: 200, ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner()
        .units;
    let unit = |label: &str| units.iter().find(|u| u.label == label).map(|u| u.id.clone()).unwrap();
    let request = |unit_id: String, category: &str, description: &str| pb::CreateTicketRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        property_id: property.clone(),
        unit_id,
        location: "stairwell".into(),
        kind: pb::TicketKind::Repair as i32,
        channel: pb::Channel::Phone as i32,
        category: category.into(),
        description: description.into(),
        ..Default::default()
    };

    let burst = tickets
        .create_ticket(authed(&token, request(unit("2-1203"), "plumbing", "爆管了")))
        .await
        .unwrap()
        .into_inner();
    let burst = dispatched(&mut tickets, &token, &burst.id).await;
    assert_eq!((burst.department, burst.priority), (pb::Department::Engineering as i32, pb::Priority::P1 as i32));
    assert!(!burst.assignee_id.is_empty());
    let rubbish = tickets
        .create_ticket(authed(&token, request(String::new(), "rubbish", "bags in the stairwell")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dispatched(&mut tickets, &token, &rubbish.id).await.department, pb::Department::Cleaning as i32);

    let mut reports = Vec::new();
    for label in ["1-1203", "1-1204", "1-802", "1-301"] {
        let created = tickets
            .create_ticket(authed(&token, request(unit(label), "water_supply", "no water")))
            .await
            .unwrap()
            .into_inner();
        reports.push(dispatched(&mut tickets, &token, &created.id).await.id);
    }
    let mut incident_ids = Vec::new();
    for id in &reports {
        let report = dispatched(&mut tickets, &token, id).await;
        incident_ids.push(report.incident_id);
    }
    assert!(!incident_ids[0].is_empty() && incident_ids.iter().all(|i| i == &incident_ids[0]), "{incident_ids:?}");
    let incident = tickets
        .get_ticket(authed(&token, pb::GetTicketRequest { ticket_id: incident_ids[0].clone() }))
        .await
        .unwrap()
        .into_inner();
    let action = pb::ResolveTicketRequest {
        ticket_id: incident.id.clone(),
        expected_version: incident.version,
        note: "fixed".into(),
        delay_cause: String::new(),
    };
    tickets.resolve_ticket(authed(&token, action)).await.unwrap();
    for id in &reports {
        let report = tickets
            .get_ticket(authed(&token, pb::GetTicketRequest { ticket_id: id.clone() }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.state, pb::TicketState::Resolved as i32);
    }

    // The notifier of the same process: the unacknowledged emergency went up the ladder,
    // and every resolved report owes the resident a reply and a callback.
    let escalated = async |tickets: &mut pb::ticket_service_client::TicketServiceClient<tonic::transport::Channel>| {
        let request = pb::GetTicketHistoryRequest { ticket_id: burst.id.clone(), ..Default::default() };
        let history = tickets.get_ticket_history(authed(&token, request)).await.unwrap().into_inner().events;
        history.iter().any(|e| e.note.starts_with("acknowledge breach") && e.actor_id == "system:notifier")
    };
    let mut breached = false;
    for _ in 0..100 {
        breached = escalated(&mut tickets).await;
        if breached {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(breached, "embedded mode escalates a missed deadline");
    for id in &reports {
        let mut kinds = Vec::new();
        for _ in 0..100 {
            let report =
                tickets.get_ticket(authed(&token, pb::GetTicketRequest { ticket_id: id.clone() })).await.unwrap();
            kinds = report.into_inner().follow_ups.iter().map(|f| f.kind).collect();
            if kinds.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        kinds.sort();
        assert_eq!(kinds, [pb::FollowUpKind::Reply as i32, pb::FollowUpKind::Callback as i32], "report {id}");
    }
}
