//! ReportService end to end: permissions and bad input, and a report over tickets taken
//! through the real API and workers, checked against figures computed here from the
//! tickets themselves.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::report_service_client::ReportServiceClient;
use propdesk_testkit::Backend;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::helpers::{App, assert_status, authed, token};

crate::on_both_backends!(
    a_month_of_known_tickets_gives_exactly_the_figures_its_history_gives,
    report_permissions_and_bad_periods_are_refused_with_the_right_status,
);

fn ts(at: chrono::DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 })
}

fn seconds(ts: &Option<prost_types::Timestamp>) -> f64 {
    let ts = ts.as_ref().expect("timestamp");
    ts.seconds as f64 + f64::from(ts.nanos) / 1e9
}

async fn report_permissions_and_bad_periods_are_refused_with_the_right_status(backend: Backend) {
    let mut app = App::start(backend).await;
    let mut reports = ReportServiceClient::new(app.server.channel().await);
    let manager_id = app.hire("Manager Wang", pb::StaffRole::Manager, pb::Department::Unspecified, true).await;
    let property = app.world.property_id.clone();
    let manager = token(&manager_id, propdesk_domain::Role::Manager, &[&property]);
    let now = Utc::now();
    let month = |property_id: &str| pb::GetServiceReportRequest {
        property_id: property_id.to_owned(),
        period_start: ts(now - TimeDelta::days(30)),
        period_end: ts(now),
        department: 0,
    };
    let ok = reports.get_service_report(authed(&manager, month(&property))).await;
    assert!(ok.is_ok(), "a manager reads the month: {ok:?}");

    let agent = app.world.agent.clone();
    let technician = app.world.plumber.clone();
    let supervisor = app.world.supervisor.clone();
    let admin = token("root", propdesk_domain::Role::Admin, &[]);
    let unknown = uuid::Uuid::now_v7().to_string();
    let cleaning = pb::GetServiceReportRequest { department: pb::Department::Cleaning as i32, ..month(&property) };
    let inverted = pb::GetServiceReportRequest {
        period_start: ts(now),
        period_end: ts(now - TimeDelta::days(1)),
        ..month(&property)
    };
    let empty = pb::GetServiceReportRequest { period_start: ts(now), period_end: ts(now), ..month(&property) };
    let too_long = pb::GetServiceReportRequest { period_start: ts(now - TimeDelta::days(400)), ..month(&property) };
    let no_start = pb::GetServiceReportRequest { period_start: None, ..month(&property) };
    let cases: Vec<(&str, &String, pb::GetServiceReportRequest, Code, Option<&str>)> = vec![
        ("an agent", &agent, month(&property), Code::PermissionDenied, None),
        ("a technician", &technician, month(&property), Code::PermissionDenied, None),
        ("a supervisor asking for another department", &supervisor, cleaning, Code::PermissionDenied, None),
        ("another property", &app.world.outsider, month(&property), Code::PermissionDenied, None),
        ("an unknown property", &admin, month(&unknown), Code::NotFound, None),
        ("an inverted period", &manager, inverted, Code::InvalidArgument, Some("period_end")),
        ("an empty period", &manager, empty, Code::InvalidArgument, Some("period_end")),
        ("a period over a year", &manager, too_long, Code::InvalidArgument, Some("period_end")),
        ("no start", &manager, no_start, Code::InvalidArgument, Some("period_start")),
    ];
    for (case, who, request, code, field) in cases {
        let result = reports.get_service_report(authed(who, request)).await;
        assert_status(result, code, field, case);
    }
    // A supervisor's own report is their department's.
    let own = reports.get_service_report(authed(&supervisor, month(&property))).await.expect("own department");
    assert!(own.into_inner().by_department.iter().all(|c| c.key == "engineering"));
    let dispatcher = app.world.dispatcher.clone();
    let overdue = reports
        .list_overdue_tickets(authed(
            &dispatcher,
            pb::ListOverdueTicketsRequest { property_id: property, ..Default::default() },
        ))
        .await;
    assert_status(overdue, Code::PermissionDenied, None, "a dispatcher lists overdue tickets");
}

/// Clocks shrunk to seconds by configuration: the month's scenario plays out in about
/// twenty seconds of real time.
const MONTH_SETTINGS: &str = "\
[policy.sla]\ncallback_secs = 3\ncomplaint_first_reply_secs = 600\n\n\
[policy.sla.p2]\nacknowledge_secs = 2\non_site_secs = 4\nresolve_secs = 6\nworking_hours_only = false\n\n\
[policy.sla.p3]\nacknowledge_secs = 2\non_site_secs = 4\nresolve_secs = 6\nworking_hours_only = false\n\n\
[policy.sla.p4]\nacknowledge_secs = 2\non_site_secs = 4\nresolve_secs = 6\nworking_hours_only = false\n";

/// The allowance of each report clock in `MONTH_SETTINGS`, in seconds.
const ALLOWANCE: [(pb::TicketEventType, f64); 3] = [
    (pb::TicketEventType::Accepted, 2.0),
    (pb::TicketEventType::ArrivedOnSite, 4.0),
    (pb::TicketEventType::Resolved, 6.0),
];

/// A ticket as the test sees it: read back, with its history.
struct Seen {
    ticket: pb::Ticket,
    history: Vec<pb::TicketEvent>,
}

/// One clock of one ticket, worked out from the history alone.
struct ClockSeen {
    /// Seconds from the start of the cycle to the milestone, if reached.
    taken: Option<f64>,
    deadline: Option<f64>,
}

/// `TICKET_KIND_REPAIR` → `repair`.
fn code(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase()
}

impl Seen {
    fn events(&self, kind: pb::TicketEventType) -> impl Iterator<Item = &pb::TicketEvent> {
        self.history.iter().filter(move |e| e.r#type == kind as i32)
    }

    fn has(&self, kind: pb::TicketEventType) -> bool {
        self.events(kind).next().is_some()
    }

    /// When the current clock cycle began: the last reopening, or the logging.
    fn cycle_start(&self) -> f64 {
        self.events(pb::TicketEventType::Reopened)
            .map(|e| seconds(&e.occurred_at))
            .fold(seconds(&self.ticket.created_at), f64::max)
    }

    /// The clock of `milestone` in the current cycle. Its deadline is the cycle start plus the
    /// configured allowance, where the ticket has that clock at all (checked against the
    /// ticket's own field).
    fn clock(&self, milestone: pb::TicketEventType, allowance: f64) -> ClockSeen {
        let start = self.cycle_start();
        let taken =
            self.events(milestone).map(|e| seconds(&e.occurred_at)).find(|at| *at >= start).map(|at| at - start);
        let deadlines = self.ticket.deadlines.unwrap_or_default();
        let field = &match milestone {
            pb::TicketEventType::Accepted => deadlines.acknowledge_by,
            pb::TicketEventType::ArrivedOnSite => deadlines.on_site_by,
            _ => deadlines.resolve_by,
        };
        let deadline = field.as_ref().map(|_| {
            let computed = start + allowance;
            assert!(
                (seconds(field) - computed).abs() < 0.002,
                "{}: deadline {} != start + {allowance}",
                self.ticket.id,
                seconds(field)
            );
            computed
        });
        ClockSeen { taken, deadline }
    }

    fn state(&self) -> pb::TicketState {
        pb::TicketState::try_from(self.ticket.state).expect("state")
    }

    /// Its clocks still run (open and not held), and it carries its own (not a linked report).
    fn running(&self) -> bool {
        use pb::TicketState as S;
        let carries_own = self.ticket.incident_id.is_empty() || self.ticket.is_incident;
        carries_own
            && matches!(self.state(), S::New | S::Dispatched | S::Accepted | S::OnSite | S::Transferred | S::Reopened)
    }

    /// (reached in time, reached late, passed unreached while running) for one clock at `now`.
    fn outcome(&self, clock: &ClockSeen, now: f64) -> (bool, bool, bool) {
        match (clock.taken, clock.deadline) {
            (Some(taken), Some(deadline)) => {
                let at = self.cycle_start() + taken;
                (at <= deadline, at > deadline, false)
            }
            (None, Some(deadline)) => (false, false, deadline < now && self.running()),
            _ => (false, false, false),
        }
    }

    fn missed_any(&self, now: f64) -> bool {
        ALLOWANCE.iter().any(|(m, a)| {
            let (_, late, missed) = self.outcome(&self.clock(*m, *a), now);
            late || missed
        })
    }

    /// The rating recorded at the callback, from the history ("<code>: <comment>").
    fn rating(&self) -> Option<String> {
        self.events(pb::TicketEventType::CallbackRecorded)
            .last()
            .map(|e| e.note.split(':').next().unwrap_or_default().to_owned())
    }
}

/// Nearest rank: the smallest value with at least `percent` % of the values at or below it.
fn nearest(sorted: &[f64], percent: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn tally(keys: impl Iterator<Item = String>) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
    for key in keys {
        *counts.entry(key).or_default() += 1;
    }
    let mut pairs: Vec<(String, i64)> = counts.into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    pairs.into_iter().map(|(k, n)| format!("{k}={n}")).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.002
}

/// Runs `step` on the ticket as it stands now, again if a concurrent change (the notifier
/// escalating it) made it stale.
async fn act<F, Fut>(app: &mut App, ticket_id: &str, step: F) -> pb::Ticket
where
    F: Fn(pb::Ticket) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<pb::Ticket>, tonic::Status>>,
{
    for _ in 0..10 {
        let current = app.get(ticket_id).await;
        match step(current).await {
            Ok(done) => return done.into_inner(),
            Err(status) if status.code() == Code::Aborted => continue,
            Err(status) => panic!("{ticket_id}: {status:?}"),
        }
    }
    panic!("{ticket_id}: stale ten times over");
}

/// A month of the centre's work, scaled down to seconds, taken through intake, dispatch and
/// the notifier: every figure of the report equals the one computed here from the tickets'
/// histories alone (the previous period's categories, clocks measured from each cycle's
/// start, breaches, escalations by level, callbacks, ratings, reopenings, repeat faults, an
/// incident and per-person figures), and no resident's data appears in the export.
async fn a_month_of_known_tickets_gives_exactly_the_figures_its_history_gives(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("propdesk.toml");
    std::fs::write(&file, MONTH_SETTINGS).expect("settings");
    let mut app = App::start_with(backend, &[("PROPDESK_CONFIG", file.display().to_string())]).await;
    let _dispatch = app.start_dispatch().await;
    let _notifier = app.start_notifier().await;
    let mut reports = ReportServiceClient::new(app.server.channel().await);
    let property = app.world.property_id.clone();
    let manager_id = app.hire("Manager Wang", pb::StaffRole::Manager, pb::Department::Unspecified, true).await;
    let manager = token(&manager_id, propdesk_domain::Role::Manager, &[&property]);
    let agent = app.world.agent.clone();
    let mut units = Vec::new();
    for room in ["1301", "1302", "1303", "1304", "1305", "1306"] {
        units.push(app.add_unit(room).await);
    }
    let tech = |t: &pb::Ticket| token(&t.assignee_id, propdesk_domain::Role::Technician, &[&property]);
    let ticket_in = |app: &App, category: &str, unit: &str, channel: pb::Channel| pb::CreateTicketRequest {
        unit_id: unit.to_owned(),
        channel: channel as i32,
        ..app.new_ticket(category, &format!("{category} in {unit}: 请检查 / please check"))
    };
    let tickets = app.tickets.clone();
    // Accept, arrive and resolve, each by the assignee on the ticket as it stands.
    let work = async |app: &mut App, id: &str| {
        for step in [pb::TicketEventType::Accepted, pb::TicketEventType::ArrivedOnSite, pb::TicketEventType::Resolved] {
            let client = tickets.clone();
            act(app, id, |t| {
                let mut client = client.clone();
                let who = tech(&t);
                async move {
                    match step {
                        pb::TicketEventType::Accepted => {
                            client.accept_ticket(authed(&who, App::action(&t, "done"))).await
                        }
                        pb::TicketEventType::ArrivedOnSite => {
                            client.arrive_on_site(authed(&who, App::action(&t, "done"))).await
                        }
                        _ => client.resolve_ticket(authed(&who, App::action(&t, "done"))).await,
                    }
                }
            })
            .await;
        }
    };
    let callback = async |app: &mut App, id: &str, rating: pb::Satisfaction| {
        let client = tickets.clone();
        let agent = agent.clone();
        act(app, id, |t| {
            let mut client = client.clone();
            let agent = agent.clone();
            async move {
                let request = pb::RecordCallbackRequest {
                    ticket_id: t.id.clone(),
                    expected_version: t.version,
                    satisfaction: rating as i32,
                    comment: "called".into(),
                };
                client.record_callback(authed(&agent, request)).await
            }
        })
        .await
    };

    // The previous period: a plumbing repair in 1301, done and called back; a noise
    // complaint withdrawn at once.
    let earlier = app.create(ticket_in(&app, "plumbing", &units[0], pb::Channel::Phone)).await;
    app.wait_dispatched(&earlier.id).await;
    work(&mut app, &earlier.id).await;
    callback(&mut app, &earlier.id, pb::Satisfaction::Satisfied).await;
    let withdrawn = app.create(ticket_in(&app, "noise", &units[1], pb::Channel::App)).await;
    app.wait_dispatched(&withdrawn.id).await;
    act(&mut app, &withdrawn.id, |t| {
        let mut client = tickets.clone();
        let agent = agent.clone();
        async move { client.cancel_ticket(authed(&agent, App::action(&t, "withdrawn by the resident"))).await }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let period_start = Utc::now();

    // This period.
    // 1. An electrical fault never taken up: every step of its ladder fires; it stays overdue.
    let ignored = app.create(ticket_in(&app, "electrical", &units[2], pb::Channel::App)).await;
    // 2. Plumbing in 1301 again: a repeat fault (raised to P2), done at once, called back late.
    let repeat = app.create(ticket_in(&app, "plumbing", &units[0], pb::Channel::Phone)).await;
    app.wait_dispatched(&repeat.id).await;
    work(&mut app, &repeat.id).await;
    // 3. Plumbing in 1302 by walk-in: accepted after its acknowledge deadline, done, rated
    //    unsatisfied (rework: reopened), done again, never called back.
    let reworked = app.create(ticket_in(&app, "plumbing", &units[1], pb::Channel::WalkIn)).await;
    app.wait_dispatched(&reworked.id).await;
    app.wait_history(&reworked.id, Duration::from_secs(10), |h| {
        h.iter().any(|e| e.r#type == pb::TicketEventType::Escalated as i32)
    })
    .await;
    work(&mut app, &reworked.id).await;
    callback(&mut app, &reworked.id, pb::Satisfaction::Unsatisfied).await;
    app.wait_history(&reworked.id, Duration::from_secs(10), |h| {
        h.iter().filter(|e| e.r#type == pb::TicketEventType::Dispatched as i32).count() == 2
    })
    .await;
    work(&mut app, &reworked.id).await;
    // 4. The lift from three units at once: one incident, worked by its assignee; two of its
    //    reports called back, the third not.
    let mut lift = Vec::new();
    for unit in &units[3..6] {
        lift.push(app.create(ticket_in(&app, "lift", unit, pb::Channel::Phone)).await);
    }
    let mut incident_id = String::new();
    for report in &lift {
        app.wait_dispatched(&report.id).await;
        app.wait_history(&report.id, Duration::from_secs(10), |h| {
            h.iter().any(|e| e.note.starts_with("linked to incident") || e.note.contains("incident"))
        })
        .await;
        incident_id = app.get(&report.id).await.incident_id;
    }
    assert!(!incident_id.is_empty(), "three units reporting the lift make an incident");
    work(&mut app, &incident_id).await;
    for report in &lift {
        app.wait_history(&report.id, Duration::from_secs(10), |h| {
            h.iter().any(|e| e.r#type == pb::TicketEventType::Resolved as i32)
        })
        .await;
    }
    callback(&mut app, &lift[0].id, pb::Satisfaction::Satisfied).await;
    callback(&mut app, &lift[1].id, pb::Satisfaction::Neutral).await;
    // 5. A fee complaint by letter, left with customer service.
    let mut complaint = ticket_in(&app, "fee_dispute", &units[4], pb::Channel::Letter);
    complaint.kind = pb::TicketKind::Complaint as i32;
    let complaint = app.create(complaint).await;
    // 6. An enquiry answered at the desk (resolved at once, not dispatched).
    let mut enquiry = ticket_in(&app, "general_enquiry", &units[5], pb::Channel::WalkIn);
    enquiry.kind = pb::TicketKind::Enquiry as i32;
    enquiry.answer_on_the_spot = "By the 15th.".into();
    enquiry.callback_wanted = true;
    let enquiry = app.create(enquiry).await;
    // The repeat fault's callback, after its 3-second deadline passed.
    let resolved_at = seconds(&app.get(&repeat.id).await.resolved_at);
    let wait = resolved_at + 3.4 - seconds(&ts(Utc::now()));
    tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    callback(&mut app, &repeat.id, pb::Satisfaction::VerySatisfied).await;

    // Wait until nothing more can fire for a minute (the complaint's first-reply clock is
    // ten minutes), twice in a row so the last events are consumed.
    let mut quiet = 0;
    let started = std::time::Instant::now();
    while quiet < 2 {
        let next = app.store.next_alarm_at().await.expect("next alarm");
        quiet = if next.is_none_or(|at| at > Utc::now() + TimeDelta::seconds(60)) { quiet + 1 } else { 0 };
        assert!(started.elapsed() < Duration::from_secs(60), "alarms still due: {next:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let period_end = Utc::now() + TimeDelta::minutes(1);
    let request = pb::GetServiceReportRequest {
        property_id: property.clone(),
        period_start: ts(period_start),
        period_end: ts(period_end),
        department: 0,
    };
    let now = seconds(&ts(Utc::now()));
    let report = reports.get_service_report(authed(&manager, request.clone())).await.expect("report").into_inner();

    // What the histories say.
    let mut seen = Vec::new();
    let ids = [
        &earlier.id,
        &withdrawn.id,
        &ignored.id,
        &repeat.id,
        &reworked.id,
        &lift[0].id,
        &lift[1].id,
        &lift[2].id,
        &incident_id,
        &complaint.id,
        &enquiry.id,
    ];
    for id in ids {
        let ticket = app.get(id).await;
        let history = app.history(id).await;
        seen.push(Seen { ticket, history });
    }
    let (start, end) = (seconds(&ts(period_start)), seconds(&ts(period_end)));
    let in_period = |s: &&Seen| (start..end).contains(&seconds(&s.ticket.created_at));
    let requests: Vec<&Seen> = seen.iter().filter(in_period).filter(|s| !s.ticket.is_incident).collect();
    let before: Vec<&Seen> = seen.iter().filter(|s| seconds(&s.ticket.created_at) < start).collect();
    let kind = |s: &&Seen| code(pb::TicketKind::try_from(s.ticket.kind).expect("kind").as_str_name(), "TICKET_KIND_");
    let channel = |s: &&Seen| code(pb::Channel::try_from(s.ticket.channel).expect("channel").as_str_name(), "CHANNEL_");
    let department = |s: &&Seen| {
        code(pb::Department::try_from(s.ticket.department).expect("department").as_str_name(), "DEPARTMENT_")
    };
    let by = |rows: &[pb::CountBy]| rows.iter().map(|c| format!("{}={}", c.key, c.count)).collect::<Vec<_>>();

    assert_eq!(requests.len(), 8);
    assert_eq!(by(&report.by_kind), tally(requests.iter().map(kind)));
    assert_eq!(by(&report.by_channel), tally(requests.iter().map(channel)));
    assert_eq!(by(&report.by_category), tally(requests.iter().map(|s| s.ticket.category.clone())));
    assert_eq!(by(&report.by_department), tally(requests.iter().map(department)));
    for top in &report.top_categories {
        let earlier = before.iter().filter(|s| !s.ticket.is_incident && s.ticket.category == top.key).count();
        assert_eq!(top.previous_count, earlier as i64, "{top:?}");
    }
    let top: Vec<_> = report.top_categories.iter().map(|c| (c.key.as_str(), c.count, c.previous_count)).collect();
    assert_eq!(top[..2], [("lift", 3, 0), ("plumbing", 2, 1)]);

    // Clocks, from each cycle's start, against the configured allowances.
    for (figures, (milestone, allowance)) in report.clocks.iter().zip(ALLOWANCE) {
        let clocks: Vec<(&&Seen, ClockSeen)> = requests.iter().map(|s| (s, s.clock(milestone, allowance))).collect();
        let mut taken: Vec<f64> =
            clocks.iter().filter(|(_, c)| c.deadline.is_some()).filter_map(|(_, c)| c.taken).collect();
        taken.sort_by(f64::total_cmp);
        let outcomes: Vec<(bool, bool, bool)> = clocks.iter().map(|(s, c)| s.outcome(c, now)).collect();
        let met = outcomes.iter().filter(|o| o.0).count();
        let decided = outcomes.iter().filter(|o| o.0 || o.1 || o.2).count();
        assert_eq!(figures.measured, taken.len() as i64, "{figures:?}");
        assert!(close(figures.median_seconds, nearest(&taken, 50)), "{figures:?} {taken:?}");
        assert!(close(figures.p90_seconds, nearest(&taken, 90)), "{figures:?} {taken:?}");
        assert!(close(figures.met_share, if decided == 0 { 0.0 } else { met as f64 / decided as f64 }), "{figures:?}");
    }
    assert!(report.clocks.iter().all(|c| c.measured > 0), "every clock has a sample: {:?}", report.clocks);
    let acknowledge = &report.clocks[0];
    assert!(acknowledge.met_share > 0.0 && acknowledge.met_share < 1.0, "some met, some missed: {acknowledge:?}");

    // Breaches in the period, and what is overdue now (the incident stands for its reports).
    let breached = tally(requests.iter().filter(|s| s.missed_any(now)).map(department));
    assert_eq!(by(&report.breached_by_department), breached);
    let overdue = tally(seen.iter().filter(|s| s.running() && s.missed_any(now)).map(|s| department(&s)));
    assert_eq!(by(&report.overdue_open_by_department), overdue);
    assert!(overdue.contains(&"engineering=1".to_owned()), "the ignored fault is overdue: {overdue:?}");

    // Ladder steps fired in the period, by level: breach 1, overdue 2.
    let steps = seen
        .iter()
        .flat_map(|s| s.events(pb::TicketEventType::Escalated))
        .filter(|e| (start..end).contains(&seconds(&e.occurred_at)));
    let levels = tally(steps.filter_map(|e| {
        let rung = e.note.split(':').next()?.split(' ').nth(1)?;
        match rung {
            "breach" => Some("1".to_owned()),
            "overdue" => Some("2".to_owned()),
            _ => None,
        }
    }));
    assert_eq!(by(&report.escalations_by_level), levels);
    assert!(levels.iter().any(|l| l.starts_with("2=")), "the ignored fault reached the manager: {levels:?}");

    // Callbacks, ratings and reopenings.
    let dispatched: Vec<&&Seen> = requests.iter().filter(|s| s.has(pb::TicketEventType::Dispatched)).collect();
    let called = dispatched.iter().filter(|s| s.has(pb::TicketEventType::CallbackRecorded)).count();
    assert!(
        close(report.callback_coverage, called as f64 / dispatched.len() as f64),
        "{} {called}/{}",
        report.callback_coverage,
        dispatched.len()
    );
    let late = requests
        .iter()
        .filter(|s| {
            let resolved =
                s.events(pb::TicketEventType::Resolved).map(|e| seconds(&e.occurred_at)).fold(f64::MIN, f64::max);
            match s.events(pb::TicketEventType::CallbackRecorded).last() {
                Some(recorded) => {
                    seconds(&recorded.occurred_at) > resolved + 3.0 && !s.has(pb::TicketEventType::Reopened)
                }
                None => s.state() == pb::TicketState::Resolved && now > resolved + 3.0,
            }
        })
        .count();
    assert_eq!(report.callbacks_late, late as i64);
    assert!(late >= 2, "one called back late, others never: {late}");
    let ratings: Vec<String> = requests.iter().filter_map(|s| s.rating()).collect();
    assert_eq!(by(&report.satisfaction_distribution), tally(ratings.iter().cloned()));
    let score = |code: &str| match code {
        "very_unsatisfied" => 1.0,
        "unsatisfied" => 2.0,
        "neutral" => 3.0,
        "satisfied" => 4.0,
        _ => 5.0,
    };
    let mean = ratings.iter().map(|r| score(r)).sum::<f64>() / ratings.len() as f64;
    assert!(close(report.satisfaction_mean, mean), "{} {mean}", report.satisfaction_mean);
    let unsatisfied = ratings.iter().filter(|r| r.ends_with("unsatisfied")).count() as f64 / ratings.len() as f64;
    assert!(close(report.unsatisfied_share, unsatisfied));
    let resolved = requests.iter().filter(|s| s.has(pb::TicketEventType::Resolved)).count();
    let reopened = requests.iter().filter(|s| s.has(pb::TicketEventType::Reopened)).count();
    assert_eq!(reopened, 1);
    assert!(
        close(report.reopen_rate, reopened as f64 / resolved as f64),
        "{} {reopened}/{resolved}",
        report.reopen_rate
    );
    let repeats = requests
        .iter()
        .filter(|s| s.events(pb::TicketEventType::Dispatched).any(|e| e.note.contains("repeat fault")))
        .count();
    assert_eq!((report.repeat_faults, repeats), (1, 1));
    assert_eq!(report.incidents, 1);
    assert_eq!(report.incident_tickets, requests.iter().filter(|s| !s.ticket.incident_id.is_empty()).count() as i64);
    assert_eq!(report.incident_tickets, 3);

    // Per person.
    let mut people: Vec<&str> =
        requests.iter().map(|s| s.ticket.assignee_id.as_str()).filter(|id| !id.is_empty()).collect();
    people.sort_unstable();
    people.dedup();
    assert_eq!(report.staff.len(), people.len());
    for person in people {
        let mine: Vec<&&Seen> = requests.iter().filter(|s| s.ticket.assignee_id == person).collect();
        let figures = report.staff.iter().find(|f| f.staff_id == person).expect("person in the report");
        assert_eq!(figures.tickets_handled, mine.len() as i64);
        let median = |milestone, allowance| {
            let mut taken: Vec<f64> = mine
                .iter()
                .map(|s| s.clock(milestone, allowance))
                .filter(|c| c.deadline.is_some())
                .filter_map(|c| c.taken)
                .collect();
            taken.sort_by(f64::total_cmp);
            nearest(&taken, 50)
        };
        assert!(close(figures.median_acknowledge_seconds, median(ALLOWANCE[0].0, ALLOWANCE[0].1)), "{figures:?}");
        assert!(close(figures.median_on_site_seconds, median(ALLOWANCE[1].0, ALLOWANCE[1].1)), "{figures:?}");
        let (mut met, mut decided) = (0, 0);
        for s in &mine {
            for (milestone, allowance) in ALLOWANCE {
                let (in_time, late, missed) = s.outcome(&s.clock(milestone, allowance), now);
                met += usize::from(in_time);
                decided += usize::from(in_time || late || missed);
            }
        }
        assert!(
            close(figures.on_time_share, if decided == 0 { 0.0 } else { met as f64 / decided as f64 }),
            "{figures:?}"
        );
        let rated: Vec<f64> = mine.iter().filter_map(|s| s.rating()).map(|r| score(&r)).collect();
        let mean = if rated.is_empty() { 0.0 } else { rated.iter().sum::<f64>() / rated.len() as f64 };
        assert!(close(figures.mean_rating, mean), "{figures:?}");
    }

    // What is late right now, most overdue first, a page at a time.
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = reports
            .list_overdue_tickets(authed(
                &manager,
                pb::ListOverdueTicketsRequest {
                    property_id: property.clone(),
                    page_size: 1,
                    page_token,
                    ..Default::default()
                },
            ))
            .await
            .expect("overdue")
            .into_inner();
        listed.extend(page.tickets.into_iter().map(|t| t.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected: usize = report.overdue_open_by_department.iter().map(|c| c.count as usize).sum();
    assert_eq!(listed.len(), expected);
    assert_eq!(listed[0], ignored.id, "the oldest missed deadline first");

    // The same report as CSV, with no resident's data.
    let mut csv = String::new();
    let export = pb::ExportServiceReportRequest {
        property_id: request.property_id,
        period_start: request.period_start,
        period_end: request.period_end,
        department: request.department,
    };
    let mut stream = reports.export_service_report(authed(&manager, export)).await.expect("export").into_inner();
    while let Some(chunk) = stream.next().await {
        csv.push_str(&chunk.expect("chunk").text);
    }
    assert!(csv.starts_with("section,key,value,previous\n"));
    assert!(csv.contains(&format!("totals,repeat_faults,{},\n", report.repeat_faults)), "{csv}");
    assert!(csv.contains(&format!("totals,callbacks_late,{},\n", report.callbacks_late)), "{csv}");
    assert!(!csv.contains("张三") && !csv.contains("13812345678"), "{csv}");
    // No unit label ("<building>-1301") either; a figure may hold the digits 1301 by chance.
    assert!(!csv.split(['\n', ',']).any(|field| field.contains("-1301")), "{csv}");
}
