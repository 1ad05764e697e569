//! The figures of the service review, counted in the database over one property and
//! period (tickets logged in `[start, end)`), optionally one department. Group incidents
//! are parents, not requests: they are counted only as incidents.

use chrono::{DateTime, Utc};
use propdesk_domain::report::nearest_rank;
use sea_orm::sea_query::ExprTrait;
use sea_orm::sea_query::{Condition, Expr, Func, SimpleExpr};
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, IdenStatic, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use crate::entity::{alarm, ticket, ticket_event};
use crate::tickets::overdue_condition;
use crate::{Store, StoreError};

/// Which tickets a figure covers.
#[derive(Debug, Clone)]
pub struct ReportScope {
    pub property_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Only this department's tickets (a supervisor's report).
    pub department: Option<String>,
    /// Only tickets assigned to this staff member (the per-person figures).
    pub assignee_id: Option<String>,
}

/// A ticket attribute to count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Kind,
    Channel,
    Category,
    Department,
    /// The staff member assigned (unassigned requests are not counted).
    Assignee,
}

/// A milestone clock of the report: when it was reached and its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportClock {
    Acknowledge,
    OnSite,
    Resolve,
}

impl ReportClock {
    fn columns(self) -> (ticket::Column, ticket::Column) {
        match self {
            ReportClock::Acknowledge => (ticket::Column::AcceptedAt, ticket::Column::AcknowledgeBy),
            ReportClock::OnSite => (ticket::Column::OnSiteAt, ticket::Column::OnSiteBy),
            ReportClock::Resolve => (ticket::Column::ResolvedAt, ticket::Column::ResolveBy),
        }
    }
}

/// One clock over a scope.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClockStats {
    /// Requests that reached the milestone (their times are the sample).
    pub measured: u64,
    /// Requests whose deadline is decided: reached, or passed unreached by `now`.
    pub decided: u64,
    /// Of those, reached by the deadline.
    pub met: u64,
    /// Nearest-rank median and 90th percentile of the time taken, in seconds.
    pub median_secs: Option<f64>,
    pub p90_secs: Option<f64>,
}

/// Callbacks and ratings over a scope.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallbackStats {
    /// Requests dispatched to a department (the base of callback coverage, rule 8).
    pub dispatched: u64,
    /// Of those, called back.
    pub called_back: u64,
    /// Callbacks recorded after their deadline, or still missing past it at `now`.
    pub late: u64,
    /// Ratings by satisfaction code.
    pub ratings: Vec<(String, i64)>,
    /// Requests ever resolved (resolved now, or reopened since).
    pub resolved: u64,
    /// Requests reopened at least once.
    pub reopened: u64,
}

/// The key of tickets not routed to any department yet.
pub const UNROUTED: &str = "unrouted";

impl ReportScope {
    fn requests(&self) -> Condition {
        self.logged().add(ticket::Column::IsIncident.eq(false))
    }

    fn logged(&self) -> Condition {
        let mut condition = Condition::all()
            .add(ticket::Column::PropertyId.eq(self.property_id.as_str()))
            .add(ticket::Column::CreatedAt.gte(self.start))
            .add(ticket::Column::CreatedAt.lt(self.end));
        if let Some(department) = &self.department {
            condition = condition.add(ticket::Column::Department.eq(department.as_str()));
        }
        if let Some(assignee) = &self.assignee_id {
            condition = condition.add(ticket::Column::AssigneeId.eq(assignee.as_str()));
        }
        condition
    }
}

/// Counts most first, then by key; a missing key is [`UNROUTED`]. (Sorted here: the
/// backends order NULL differently.)
fn ranked(rows: Vec<(Option<String>, i64)>) -> Vec<(String, i64)> {
    let mut counts: Vec<(String, i64)> =
        rows.into_iter().map(|(key, n)| (key.unwrap_or_else(|| UNROUTED.to_owned()), n)).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

impl Store {
    /// Requests logged in the scope, counted by `dimension`: most first, then by key.
    pub async fn count_by(&self, scope: &ReportScope, dimension: Dimension) -> Result<Vec<(String, i64)>, StoreError> {
        let column = match dimension {
            Dimension::Kind => ticket::Column::Kind,
            Dimension::Channel => ticket::Column::Channel,
            Dimension::Category => ticket::Column::Category,
            Dimension::Department => ticket::Column::Department,
            Dimension::Assignee => ticket::Column::AssigneeId,
        };
        let mut query = ticket::Entity::find().filter(scope.requests());
        if dimension == Dimension::Assignee {
            query = query.filter(ticket::Column::AssigneeId.is_not_null());
        }
        let rows: Vec<(Option<String>, i64)> = query
            .select_only()
            .column(column)
            .column_as(ticket::Column::Id.count(), "n")
            .group_by(column)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(ranked(rows))
    }

    /// Open requests of the property past an unmet deadline at `now`, by department.
    pub async fn overdue_open_by_department(
        &self,
        property_id: &str,
        department: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut query = ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Department)
            .column_as(ticket::Column::Id.count(), "n")
            .filter(ticket::Column::PropertyId.eq(property_id))
            .filter(ticket::Column::IsIncident.eq(false))
            .filter(overdue_condition(now));
        if let Some(department) = department {
            query = query.filter(ticket::Column::Department.eq(department));
        }
        let rows: Vec<(Option<String>, i64)> =
            query.group_by(ticket::Column::Department).into_tuple().all(&self.db).await?;
        Ok(ranked(rows))
    }

    /// How long requests of the scope took to reach `clock`'s milestone (from logging), and
    /// how many met its deadline. Percentiles are picked in the database by rank.
    pub async fn clock_stats(
        &self,
        scope: &ReportScope,
        clock: ReportClock,
        now: DateTime<Utc>,
    ) -> Result<ClockStats, StoreError> {
        let (reached, deadline) = clock.columns();
        let with_clock = || ticket::Entity::find().filter(scope.requests()).filter(deadline.is_not_null());
        // One pass for the three counts.
        let (measured, met, missed_open) = self
            .counts3(
                with_clock(),
                [
                    Condition::all().add(reached.is_not_null()),
                    Condition::all().add(reached.is_not_null()).add(Expr::col(reached).lte(Expr::col(deadline))),
                    Condition::all().add(reached.is_null()).add(deadline.lt(now)),
                ],
            )
            .await?;
        let seconds = self.seconds_between(ticket::Column::CreatedAt, reached);
        let pick = async |percent: u32| -> Result<Option<f64>, StoreError> {
            let Some(offset) = nearest_rank(measured, percent) else { return Ok(None) };
            let value: Option<f64> = with_clock()
                .filter(reached.is_not_null())
                .select_only()
                .column_as(seconds.clone(), "seconds")
                .order_by_asc(seconds.clone())
                .offset(offset)
                .limit(1)
                .into_tuple()
                .one(&self.db)
                .await?;
            Ok(value)
        };
        Ok(ClockStats {
            measured,
            decided: measured + missed_open,
            met,
            median_secs: pick(50).await?,
            p90_secs: pick(90).await?,
        })
    }

    /// How many rows of `query` meet each condition, in one pass.
    async fn counts3(
        &self,
        query: sea_orm::Select<ticket::Entity>,
        conditions: [Condition; 3],
    ) -> Result<(u64, u64, u64), StoreError> {
        let [a, b, c] = conditions.map(|condition| SimpleExpr::from(Func::sum(Expr::case(condition, 1).finally(0))));
        let row: Option<(Option<i64>, Option<i64>, Option<i64>)> = query
            .select_only()
            .column_as(a, "a")
            .column_as(b, "b")
            .column_as(c, "c")
            .into_tuple()
            .one(&self.db)
            .await?;
        let count = |n: Option<i64>| u64::try_from(n.unwrap_or(0)).unwrap_or(0);
        Ok(row.map_or((0, 0, 0), |(a, b, c)| (count(a), count(b), count(c))))
    }

    /// `later - earlier` in seconds, as a SQL expression of this backend.
    fn seconds_between(&self, earlier: ticket::Column, later: ticket::Column) -> SimpleExpr {
        let (earlier, later) = (earlier.as_str(), later.as_str());
        let sql = match self.backend() {
            DbBackend::Postgres => format!("CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION)"),
            // SQLite keeps times as ISO-8601 text; julianday reads it (about 50 µs resolution).
            _ => format!("((julianday({later}) - julianday({earlier})) * 86400.0)"),
        };
        Expr::cust(sql)
    }

    /// Callback coverage, lateness, ratings and reopenings of the scope's requests.
    pub async fn callback_stats(&self, scope: &ReportScope, now: DateTime<Utc>) -> Result<CallbackStats, StoreError> {
        use ticket::Column as C;
        let requests = || ticket::Entity::find().filter(scope.requests());
        let (dispatched, called_back, late_recorded) = self
            .counts3(
                requests(),
                [
                    Condition::all().add(C::DispatchedAt.is_not_null()),
                    Condition::all().add(C::DispatchedAt.is_not_null()).add(C::CallbackRecordedAt.is_not_null()),
                    Condition::all()
                        .add(C::CallbackRecordedAt.is_not_null())
                        .add(Expr::col(C::CallbackRecordedAt).gt(Expr::col(C::CallbackBy))),
                ],
            )
            .await?;
        let late_missing = requests()
            .filter(C::CallbackRecordedAt.is_null())
            .filter(C::State.eq("resolved"))
            .filter(C::CallbackBy.lt(now))
            .count(&self.db)
            .await?;
        let ratings = self.ratings(scope).await?;
        let reopened_ids = ticket_event::Entity::find()
            .select_only()
            .column(ticket_event::Column::TicketId)
            .filter(ticket_event::Column::EventType.eq("reopened"))
            .distinct()
            .into_query();
        let reopened = requests().filter(C::Id.in_subquery(reopened_ids.clone())).count(&self.db).await?;
        let resolved = requests()
            .filter(Condition::any().add(C::ResolvedAt.is_not_null()).add(C::Id.in_subquery(reopened_ids)))
            .count(&self.db)
            .await?;
        Ok(CallbackStats { dispatched, called_back, late: late_recorded + late_missing, ratings, resolved, reopened })
    }

    /// Callback ratings of the scope's requests, by satisfaction code.
    pub async fn ratings(&self, scope: &ReportScope) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(Option<String>, i64)> = ticket::Entity::find()
            .filter(scope.requests())
            .select_only()
            .column(ticket::Column::CallbackSatisfaction)
            .column_as(ticket::Column::Id.count(), "n")
            .filter(ticket::Column::CallbackSatisfaction.is_not_null())
            .group_by(ticket::Column::CallbackSatisfaction)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(ranked(rows))
    }

    /// Escalation-ladder steps fired in the period on the scope's property (and
    /// department), by the level they raised the ticket to.
    pub async fn escalations_by_level(&self, scope: &ReportScope) -> Result<Vec<(String, i64)>, StoreError> {
        let mut tickets = ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Id)
            .filter(ticket::Column::PropertyId.eq(scope.property_id.as_str()));
        if let Some(department) = &scope.department {
            tickets = tickets.filter(ticket::Column::Department.eq(department.as_str()));
        }
        let rows: Vec<(i32, i64)> = alarm::Entity::find()
            .select_only()
            .column(alarm::Column::Level)
            .column_as(alarm::Column::Id.count(), "n")
            .filter(alarm::Column::Pending.eq(false))
            .filter(alarm::Column::Rung.is_in(["breach", "overdue"]))
            .filter(alarm::Column::FiredAt.gte(scope.start))
            .filter(alarm::Column::FiredAt.lt(scope.end))
            .filter(alarm::Column::TicketId.in_subquery(tickets.into_query()))
            .group_by(alarm::Column::Level)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(ranked(rows.into_iter().map(|(level, n)| (Some(level.to_string()), n)).collect()))
    }

    /// Requests of the scope that missed a deadline (acknowledge, on site or resolve):
    /// reached after it, or not reached by `now` with it passed. By department.
    pub async fn breached_by_department(
        &self,
        scope: &ReportScope,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut missed = Condition::any();
        for clock in [ReportClock::Acknowledge, ReportClock::OnSite, ReportClock::Resolve] {
            let (reached, deadline) = clock.columns();
            missed = missed
                .add(Condition::all().add(reached.is_not_null()).add(Expr::col(reached).gt(Expr::col(deadline))))
                .add(Condition::all().add(reached.is_null()).add(deadline.lt(now)));
        }
        let rows: Vec<(Option<String>, i64)> = ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Department)
            .column_as(ticket::Column::Id.count(), "n")
            .filter(scope.requests())
            .filter(missed)
            .group_by(ticket::Column::Department)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(ranked(rows))
    }

    /// Every open request of the property past an unmet deadline at `now` (optionally of one
    /// department). Overdue tickets are a short list by nature; the caller orders them.
    pub async fn overdue_tickets(
        &self,
        property_id: &str,
        department: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ticket::Model>, StoreError> {
        let mut query = ticket::Entity::find()
            .filter(ticket::Column::PropertyId.eq(property_id))
            .filter(ticket::Column::IsIncident.eq(false))
            .filter(overdue_condition(now));
        if let Some(department) = department {
            query = query.filter(ticket::Column::Department.eq(department));
        }
        Ok(query.all(&self.db).await?)
    }

    /// Requests logged in the scope that were flagged as repeat faults.
    pub async fn repeat_faults(&self, scope: &ReportScope) -> Result<u64, StoreError> {
        Ok(ticket::Entity::find()
            .filter(scope.requests())
            .filter(ticket::Column::RepeatFault.eq(true))
            .count(&self.db)
            .await?)
    }

    /// Group incidents opened in the scope, and the requests logged in it that are linked to
    /// an incident (an incident's own `incident_id` names itself; it is not a request).
    pub async fn incidents(&self, scope: &ReportScope) -> Result<(u64, u64), StoreError> {
        let incidents = ticket::Entity::find()
            .filter(scope.logged())
            .filter(ticket::Column::IsIncident.eq(true))
            .count(&self.db)
            .await?;
        let linked = ticket::Entity::find()
            .filter(scope.requests())
            .filter(ticket::Column::IncidentId.is_not_null())
            .count(&self.db)
            .await?;
        Ok((incidents, linked))
    }
}
