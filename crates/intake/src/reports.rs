//! ReportService: the monthly service review (volumes, high-frequency problems, clocks per
//! person, overdue work, callback coverage against its 90 % target), what is late now,
//! and the review as CSV. Every figure is counted in the database over the tickets logged
//! in the period (see `propdesk_store::reports`); no resident's personal data appears.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use propdesk_domain::report::{ReportPeriod, share};
use propdesk_domain::{Actor, Department, Operation, Role, Satisfaction, Ticket, TicketKind, Violations};
use propdesk_events::timestamp;
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ErrorReason;
use propdesk_proto::v1::report_service_server::ReportService;
use propdesk_store::entity::{property, staff};
use propdesk_store::reports::{ClockPercentiles, ClockStats, ReportClock, ReportScope, StaffCounts};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::IntakeState;
use crate::auth::actor;
use crate::convert::{from_timestamp, optional_enum, ticket_to_wire};
use crate::error::{ApiError, ApiResult};
use crate::paging;
use crate::tickets::own_work;

/// How many categories the "high-frequency problems" list holds.
const TOP_CATEGORIES: usize = 5;

pub struct ReportApi {
    state: Arc<IntakeState>,
}

impl ReportApi {
    pub fn new(state: Arc<IntakeState>) -> Self {
        ReportApi { state }
    }
}

fn counts(rows: Vec<(String, i64)>) -> Vec<pb::CountBy> {
    rows.into_iter().map(|(key, count)| pb::CountBy { key, count, previous_count: 0 }).collect()
}

fn clock_figures(clock: ReportClock, counts: &ClockStats, picked: &ClockPercentiles) -> pb::ClockFigures {
    pb::ClockFigures {
        clock: clock.clock().code().to_owned(),
        median_seconds: picked.median_secs.unwrap_or_default(),
        p90_seconds: picked.p90_secs.unwrap_or_default(),
        met_share: share(counts.met, counts.decided),
        measured: wide(counts.measured),
    }
}

/// Mean score (1..5) and unsatisfied share of the ratings.
fn satisfaction(ratings: &[(String, i64)]) -> (f64, f64) {
    let (mut total, mut sum, mut unsatisfied) = (0i64, 0i64, 0i64);
    for (code, n) in ratings {
        let Ok(rating) = code.parse::<Satisfaction>() else { continue };
        total += n;
        sum += i64::from(rating.score()) * n;
        if rating.requires_rework() {
            unsatisfied += n;
        }
    }
    let whole = u64::try_from(total).unwrap_or(0);
    let mean = if total == 0 { 0.0 } else { sum as f64 / total as f64 };
    (mean, share(u64::try_from(unsatisfied).unwrap_or(0), whole))
}

impl ReportApi {
    /// Validates the request and decides whose tickets the report covers.
    async fn scope(&self, actor: &Actor, body: &pb::GetServiceReportRequest) -> ApiResult<(ReportScope, ReportPeriod)> {
        let mut v = Violations::new();
        let property_id = v.required_id("property_id", &body.property_id);
        let start = from_timestamp(&mut v, "period_start", body.period_start.as_ref());
        let end = from_timestamp(&mut v, "period_end", body.period_end.as_ref());
        if body.period_start.is_none() {
            v.add("period_start", "is required");
        }
        if body.period_end.is_none() {
            v.add("period_end", "is required");
        }
        let department = optional_enum::<Department>(&mut v, "department", body.department);
        let period = match (start, end) {
            (Some(start), Some(end)) => match ReportPeriod::new(start, end) {
                Ok(period) => Some(period),
                Err(err) => {
                    v.add("period_end", err.to_string());
                    None
                }
            },
            _ => None,
        };
        v.into_result()?;
        let (Some(property_id), Some(period)) = (property_id, period) else {
            return Err(ApiError::Internal("validated fields missing".into()));
        };
        actor.authorize(&property_id, Operation::ReadReports, false)?;
        if self.state.store.find::<property::Model>(&property_id).await?.is_none() {
            return Err(ApiError::NotFound("property"));
        }
        let department = self.department_for(actor, department).await?;
        let scope = ReportScope { property_id, start: period.start, end: period.end, department };
        Ok((scope, period))
    }

    /// A supervisor reads their own department's figures only.
    async fn department_for(&self, actor: &Actor, asked: Option<Department>) -> ApiResult<Option<Department>> {
        if actor.role != Role::Supervisor {
            return Ok(asked);
        }
        let own = self
            .state
            .store
            .find::<staff::Model>(&actor.staff_id)
            .await?
            .and_then(|s| s.department)
            .and_then(|code| code.parse::<Department>().ok())
            .ok_or_else(|| {
                ApiError::precondition(
                    ErrorReason::StaffHasNoDepartment,
                    "department",
                    "your staff record names no department",
                )
            })?;
        match asked {
            Some(other) if other != own => Err(ApiError::Denied(propdesk_domain::Denied::Role {
                role: Role::Supervisor,
                what: "read another department's report",
            })),
            _ => Ok(Some(own)),
        }
    }

    async fn report(&self, scope: &ReportScope, period: ReportPeriod) -> ApiResult<pb::ServiceReport> {
        let store = &self.state.store;
        let now = propdesk_store::now();
        let previous = ReportScope { start: period.previous().start, end: period.previous().end, ..scope.clone() };
        // Independent passes, run side by side on the pool.
        let (figures, before, acknowledge, on_site, resolve, people, escalations, overdue, replies, waited, causes) = tokio::try_join!(
            store.request_figures(scope, now),
            store.categories(&previous),
            store.clock_percentiles(scope, ReportClock::Acknowledge),
            store.clock_percentiles(scope, ReportClock::OnSite),
            store.clock_percentiles(scope, ReportClock::Resolve),
            store.staff_counts(scope, now),
            store.escalations_by_level(scope),
            store.overdue_open_by_department(&scope.property_id, scope.department, now),
            store.replies_sent(scope),
            store.waited_on_outside_parties(scope),
            store.by_cause(scope),
        )?;
        let (overdue_by_cause, reviews_by_cause) = causes;
        let enquiries =
            figures.by_kind.iter().find(|(kind, _)| kind == TicketKind::Enquiry.code()).map_or(0, |(_, n)| *n);
        let percentiles = [acknowledge, on_site, resolve];
        let top_categories = figures
            .by_category
            .iter()
            .take(TOP_CATEGORIES)
            .map(|(key, count)| pb::CountBy {
                key: key.clone(),
                count: *count,
                previous_count: before.iter().find(|(k, _)| k == key).map_or(0, |(_, n)| *n),
            })
            .collect();
        let clocks = ReportClock::ALL
            .iter()
            .zip(&figures.clocks)
            .zip(&percentiles)
            .map(|((clock, counts), picked)| clock_figures(*clock, counts, picked))
            .collect();
        let staff = self.staff_figures(people).await?;
        let callbacks = figures.callbacks;
        let (satisfaction_mean, unsatisfied_share) = satisfaction(&callbacks.ratings);
        Ok(pb::ServiceReport {
            property_id: scope.property_id.clone(),
            period_start: Some(timestamp(period.start)),
            period_end: Some(timestamp(period.end)),
            by_kind: counts(figures.by_kind),
            by_channel: counts(figures.by_channel),
            by_category: counts(figures.by_category),
            by_department: counts(figures.by_department),
            top_categories,
            clocks,
            overdue_open_by_department: counts(overdue),
            breached_by_department: counts(figures.breached_by_department),
            escalations_by_level: counts(escalations),
            callback_coverage: share(callbacks.called_back, callbacks.dispatched),
            callbacks_late: wide(callbacks.late),
            satisfaction_mean,
            satisfaction_distribution: counts(callbacks.ratings),
            unsatisfied_share,
            reopen_rate: share(callbacks.reopened, callbacks.resolved),
            repeat_faults: wide(figures.repeat_faults),
            incidents: wide(figures.incidents),
            incident_tickets: wide(figures.incident_tickets),
            staff,
            replies_sent: wide(replies.total),
            standard_reply_share: share(replies.standard, replies.total),
            standard_replies_used: counts(replies.by_code),
            answered_on_the_spot_share: share(figures.answered_on_the_spot, u64::try_from(enquiries).unwrap_or(0)),
            tickets_waited_on_outside_parties: wide(waited.0),
            waited_on_outside_parties_seconds: wide(waited.1),
            overdue_by_cause: counts(overdue_by_cause),
            reviews_by_cause: counts(reviews_by_cause),
        })
    }

    /// Per person assigned in the scope: volume, speed, punctuality and ratings.
    async fn staff_figures(&self, people: Vec<StaffCounts>) -> ApiResult<Vec<pb::StaffFigures>> {
        let ids: Vec<String> = people.iter().map(|p| p.staff_id.clone()).collect();
        let names: HashMap<String, String> =
            self.state.store.staff_named(&ids).await?.into_iter().map(|s| (s.id, s.name)).collect();
        Ok(people
            .into_iter()
            .map(|person| pb::StaffFigures {
                staff_name: names.get(&person.staff_id).cloned().unwrap_or_default(),
                tickets_handled: wide(person.handled),
                median_acknowledge_seconds: person.median_acknowledge_secs.unwrap_or_default(),
                median_on_site_seconds: person.median_on_site_secs.unwrap_or_default(),
                on_time_share: share(person.met, person.decided),
                mean_rating: satisfaction(&person.ratings).0,
                staff_id: person.staff_id,
            })
            .collect())
    }
}

/// A count for the wire.
fn wide(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The earliest deadline a ticket has missed at `now` (its overdue rank).
fn earliest_missed(t: &Ticket, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (times, deadlines) = (&t.times, &t.deadlines);
    [
        times.accepted_at.is_none().then_some(deadlines.acknowledge_by).flatten(),
        times.on_site_at.is_none().then_some(deadlines.on_site_by).flatten(),
        times.resolved_at.is_none().then_some(deadlines.resolve_by).flatten(),
    ]
    .into_iter()
    .flatten()
    .filter(|at| *at < now)
    .min()
}

/// One CSV field (RFC 4180 quoting where needed).
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

/// The report as CSV: `section,key,value,previous`, one section per figure.
pub fn report_csv(report: &pb::ServiceReport) -> Vec<String> {
    let line = |section: &str, key: &str, value: String, previous: String| {
        format!("{},{},{},{}\n", field(section), field(key), field(&value), field(&previous))
    };
    let mut sections = vec![String::from("section,key,value,previous\n")];
    let count_rows = |name: &str, rows: &[pb::CountBy], with_previous: bool| {
        rows.iter()
            .map(|c| {
                let previous = if with_previous { c.previous_count.to_string() } else { String::new() };
                line(name, &c.key, c.count.to_string(), previous)
            })
            .collect::<String>()
    };
    sections.push(count_rows("by_kind", &report.by_kind, false));
    sections.push(count_rows("by_channel", &report.by_channel, false));
    sections.push(count_rows("by_category", &report.by_category, false));
    sections.push(count_rows("by_department", &report.by_department, false));
    sections.push(count_rows("top_categories", &report.top_categories, true));
    sections.push(
        report
            .clocks
            .iter()
            .map(|c| {
                [
                    line("clock_median_seconds", &c.clock, c.median_seconds.to_string(), String::new()),
                    line("clock_p90_seconds", &c.clock, c.p90_seconds.to_string(), String::new()),
                    line("clock_met_share", &c.clock, c.met_share.to_string(), String::new()),
                    line("clock_measured", &c.clock, c.measured.to_string(), String::new()),
                ]
                .concat()
            })
            .collect(),
    );
    sections.push(count_rows("overdue_open_by_department", &report.overdue_open_by_department, false));
    sections.push(count_rows("breached_by_department", &report.breached_by_department, false));
    sections.push(count_rows("escalations_by_level", &report.escalations_by_level, false));
    sections.push(count_rows("satisfaction_distribution", &report.satisfaction_distribution, false));
    sections.push(count_rows("standard_replies_used", &report.standard_replies_used, false));
    sections.push(count_rows("overdue_by_cause", &report.overdue_by_cause, false));
    sections.push(count_rows("reviews_by_cause", &report.reviews_by_cause, false));
    let totals = [
        ("callback_coverage", report.callback_coverage.to_string()),
        ("callbacks_late", report.callbacks_late.to_string()),
        ("satisfaction_mean", report.satisfaction_mean.to_string()),
        ("unsatisfied_share", report.unsatisfied_share.to_string()),
        ("reopen_rate", report.reopen_rate.to_string()),
        ("repeat_faults", report.repeat_faults.to_string()),
        ("incidents", report.incidents.to_string()),
        ("incident_tickets", report.incident_tickets.to_string()),
        ("replies_sent", report.replies_sent.to_string()),
        ("standard_reply_share", report.standard_reply_share.to_string()),
        ("answered_on_the_spot_share", report.answered_on_the_spot_share.to_string()),
        ("tickets_waited_on_outside_parties", report.tickets_waited_on_outside_parties.to_string()),
        ("waited_on_outside_parties_seconds", report.waited_on_outside_parties_seconds.to_string()),
    ];
    sections.push(totals.iter().map(|(key, value)| line("totals", key, value.clone(), String::new())).collect());
    sections.push(
        report
            .staff
            .iter()
            .map(|s| {
                let who = format!("{} {}", s.staff_id, s.staff_name);
                [
                    line("staff_tickets_handled", &who, s.tickets_handled.to_string(), String::new()),
                    line(
                        "staff_median_acknowledge_seconds",
                        &who,
                        s.median_acknowledge_seconds.to_string(),
                        String::new(),
                    ),
                    line("staff_median_on_site_seconds", &who, s.median_on_site_seconds.to_string(), String::new()),
                    line("staff_on_time_share", &who, s.on_time_share.to_string(), String::new()),
                    line("staff_mean_rating", &who, s.mean_rating.to_string(), String::new()),
                ]
                .concat()
            })
            .collect(),
    );
    sections.retain(|s| !s.is_empty());
    sections
}

pub type CsvStream = Pin<Box<dyn Stream<Item = Result<pb::CsvChunk, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ReportService for ReportApi {
    async fn get_service_report(
        &self,
        request: Request<pb::GetServiceReportRequest>,
    ) -> Result<Response<pb::ServiceReport>, Status> {
        let actor = actor(&request)?;
        let (scope, period) = self.scope(&actor, request.get_ref()).await?;
        Ok(Response::new(self.report(&scope, period).await?))
    }

    async fn list_overdue_tickets(
        &self,
        request: Request<pb::ListOverdueTicketsRequest>,
    ) -> Result<Response<pb::ListOverdueTicketsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let property_id = v.required_id("property_id", &body.property_id);
        let department = optional_enum::<Department>(&mut v, "department", body.department);
        let limit = v.page_size("page_size", body.page_size) as usize;
        let skip = paging::parse_count(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let property_id = property_id.unwrap_or_default();
        // Agents and technicians see what is late of their own work; the others the lot.
        let owner = matches!(actor.role, Role::Agent | Role::Technician).then(|| own_work(&actor));
        let (department, owner) = match owner {
            Some(owner) => {
                actor.authorize(&property_id, Operation::ReadWorklist { own: true }, false).map_err(ApiError::from)?;
                (department, Some(owner))
            }
            None => {
                actor.authorize(&property_id, Operation::ReadReports, false).map_err(ApiError::from)?;
                (self.department_for(&actor, department).await?, None)
            }
        };
        let now = propdesk_store::now();
        let store = &self.state.store;
        let mut overdue =
            store.overdue_tickets(&property_id, department, owner.as_ref(), now).await.map_err(ApiError::from)?;
        // Most overdue first (earliest missed deadline), ties by id for a stable order.
        overdue.sort_by(|a, b| earliest_missed(a, now).cmp(&earliest_missed(b, now)).then_with(|| a.id.cmp(&b.id)));
        let mut page: Vec<_> = overdue.iter().skip(skip as usize).take(limit + 1).collect();
        let next_page_token = paging::cut_by_count(&mut page, limit as u64, skip);
        let tickets: Vec<pb::Ticket> = page.into_iter().map(|t| ticket_to_wire(t, &actor)).collect();
        self.state.access.tickets_shown(&actor, &tickets).await?;
        Ok(Response::new(pb::ListOverdueTicketsResponse { tickets, next_page_token }))
    }

    type ExportServiceReportStream = CsvStream;

    async fn export_service_report(
        &self,
        request: Request<pb::ExportServiceReportRequest>,
    ) -> Result<Response<Self::ExportServiceReportStream>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        // The export asks for the report it writes out.
        let report = pb::GetServiceReportRequest {
            property_id: body.property_id,
            period_start: body.period_start,
            period_end: body.period_end,
            department: body.department,
        };
        let (scope, period) = self.scope(&actor, &report).await?;
        let report = self.report(&scope, period).await?;
        let chunks: Vec<Result<pb::CsvChunk, Status>> =
            report_csv(&report).into_iter().map(|text| Ok(pb::CsvChunk { text })).collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(field("plumbing"), "plumbing");
        assert_eq!(field("Chen, Wei"), "\"Chen, Wei\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn satisfaction_mean_and_unsatisfied_share() {
        let ratings = vec![("very_satisfied".to_owned(), 2), ("unsatisfied".to_owned(), 1), ("neutral".to_owned(), 1)];
        let (mean, unsatisfied) = satisfaction(&ratings);
        assert_eq!(mean, (5.0 * 2.0 + 2.0 + 3.0) / 4.0);
        assert_eq!(unsatisfied, 0.25);
        assert_eq!(satisfaction(&[]), (0.0, 0.0));
    }
}
