//! Benchmark: GetServiceReport over a month of 100,000 tickets with their history, on
//! PostgreSQL (release build of `propdesk intake`).
//!
//!     cargo bench -p propdesk --bench report_latency
//!     BENCH_TICKETS=100000 BENCH_STAFF=20 BENCH_CALLS=5 cargo bench -p propdesk --bench report_latency
//!
//! The month is seeded in SQL (generate_series): tickets spread over 30 days across kinds,
//! channels, categories, departments and staff, most accepted, on site and resolved at
//! varied times, some called back with ratings, some reopened, each with its created and
//! milestone events. Then the report is fetched through gRPC `BENCH_CALLS` times after one
//! warm-up call, and the latencies are printed.

mod common;
#[allow(dead_code)]
#[path = "../e2e/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::setting;
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::report_service_client::ReportServiceClient;
use propdesk_testkit::Backend;
use sea_orm::{ConnectionTrait, Statement};

fn main() {
    common::run(run());
}

async fn execute(app: &helpers::App, sql: String) {
    let db = app.store.connection();
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql)).await.expect("seed statement");
}

async fn run() {
    let tickets = setting("BENCH_TICKETS", 100_000);
    let staff = setting("BENCH_STAFF", 20);
    let calls = setting("BENCH_CALLS", 5);
    let mut app = helpers::App::start(Backend::Postgres).await;
    let mut staff_ids = Vec::new();
    for n in 0..staff {
        let department =
            [pb::Department::Engineering, pb::Department::Cleaning, pb::Department::Security][n as usize % 3];
        staff_ids.push(app.hire(&format!("Technician {n}"), pb::StaffRole::Technician, department, true).await);
    }
    let manager_id = app.hire("Manager", pb::StaffRole::Manager, pb::Department::Unspecified, true).await;
    let manager = helpers::token(&manager_id, propdesk_domain::Role::Manager, &[&app.world.property_id]);
    let start = Utc::now() - TimeDelta::days(30);
    let staff_array = staff_ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
    let property = &app.world.property_id;
    let spacing = 30.0 * 86400.0 / tickets as f64;
    let seeding = Instant::now();
    execute(
        &app,
        format!(
            "INSERT INTO tickets (id, version, property_id, location, reporter_name, reporter_phone, kind, channel, category, \
             department, priority, state, title, description, first_contact_agent_id, assignee_id, escalation_level, \
             repeat_fault, request_id, request_fingerprint, created_at, updated_at, dispatched_at, accepted_at, on_site_at, \
             resolved_at, acknowledge_by, on_site_by, resolve_by, callback_by, callback_satisfaction, callback_recorded_at, \
             is_incident, clock_cycle) \
             SELECT gen_random_uuid()::text, 1, '{property}', 'lobby', '', '', \
               (ARRAY['repair','complaint','enquiry','suggestion','assistance'])[1 + g % 5], \
               (ARRAY['phone','walk_in','letter','app','home_visit','referral'])[1 + g % 6], \
               (ARRAY['plumbing','electrical','lift','rubbish','stranger','fee_dispute','noise','intercom'])[1 + g % 8], \
               (ARRAY['engineering','cleaning','security'])[1 + g % 3], 'p3', \
               CASE WHEN g % 10 < 7 THEN 'closed' WHEN g % 10 < 9 THEN 'on_site' ELSE 'dispatched' END, \
               'seeded', 'seeded report', '{agent}', \
               (ARRAY[{staff_array}])[1 + g % {staff}], 0, g % 50 = 0, 'seed-' || g, 'f', \
               c, c, c, \
               CASE WHEN g % 10 < 9 THEN c + (g % 7200) * interval '1 second' END, \
               CASE WHEN g % 10 < 9 THEN c + (g % 86400) * interval '1 second' END, \
               CASE WHEN g % 10 < 7 THEN c + (g % 259200) * interval '1 second' END, \
               c + interval '2 hours', c + interval '24 hours', c + interval '72 hours', \
               CASE WHEN g % 10 < 7 THEN c + (g % 259200) * interval '1 second' + interval '48 hours' END, \
               CASE WHEN g % 10 < 7 AND g % 3 > 0 THEN (ARRAY['very_unsatisfied','unsatisfied','neutral','satisfied','very_satisfied'])[1 + g % 5] END, \
               CASE WHEN g % 10 < 7 AND g % 3 > 0 THEN c + (g % 259200) * interval '1 second' + interval '30 hours' END, \
               false, 0 \
             FROM generate_series(1, {tickets}) AS g, \
                  LATERAL (SELECT TIMESTAMPTZ '{start}' + (g * {spacing}) * interval '1 second' AS c) AS t",
            agent = app.world.agent_id,
            start = start.format("%Y-%m-%d %H:%M:%S%.6f+00"),
        ),
    )
    .await;
    for (event_type, column, state) in [
        ("created", "created_at", "new"),
        ("accepted", "accepted_at", "accepted"),
        ("resolved", "resolved_at", "resolved"),
    ] {
        execute(
            &app,
            format!(
                "INSERT INTO ticket_events (event_id, ticket_id, event_type, actor_id, to_state, note, occurred_at, \
                 ticket_version, property_id, department, assignee_id, priority) \
                 SELECT gen_random_uuid()::text, id, '{event_type}', first_contact_agent_id, '{state}', '', {column}, 1, \
                 property_id, department, assignee_id, priority FROM tickets WHERE {column} IS NOT NULL"
            ),
        )
        .await;
    }
    execute(&app, "ANALYZE".to_owned()).await;
    println!("seeded {tickets} tickets and their history in {:.1} s", seeding.elapsed().as_secs_f64());

    let mut reports = ReportServiceClient::new(app.server.channel().await);
    let request = pb::GetServiceReportRequest {
        property_id: property.clone(),
        period_start: Some(prost_types::Timestamp { seconds: start.timestamp(), nanos: 0 }),
        period_end: Some(prost_types::Timestamp { seconds: Utc::now().timestamp() + 1, nanos: 0 }),
        department: 0,
    };
    let mut latencies: Vec<Duration> = Vec::new();
    for call in 0..=calls {
        let began = Instant::now();
        let report =
            reports.get_service_report(helpers::authed(&manager, request.clone())).await.expect("report").into_inner();
        if call == 0 {
            let total: i64 = report.by_kind.iter().map(|c| c.count).sum();
            assert_eq!(total, tickets as i64, "the report covers every seeded ticket");
            continue;
        }
        latencies.push(began.elapsed());
    }
    latencies.sort();
    println!(
        "GetServiceReport over {tickets} tickets ({staff} staff), PostgreSQL, release build, {calls} calls after a warm-up: \
         median {:.0} ms, max {:.0} ms",
        latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
}
