//! The figures of the service review, counted in the database over one property and
//! period (tickets logged in `[start, end)`), optionally one department. Group incidents
//! are parents, not requests: they are counted only as incidents.
//!
//! A month of 100,000 tickets is read in a handful of passes: one grouped pass for every
//! count of the requests, one grouped pass for the per-person counts, and one ranked pass
//! per clock for the percentiles (of the whole scope and of each person at once).
//!
//! The milestone columns (`accepted_at`, `on_site_at`, `resolved_at`, …) are the
//! timestamps of the history events that set them, written in the same transaction; a
//! reopen starts a new cycle and clears them, so a reopened ticket is measured on its
//! latest cycle. `clock_cycle > 0` marks a ticket reopened at least once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use propdesk_domain::ladder::Clock;
use propdesk_domain::report::nearest_rank;
use propdesk_domain::{Department, EventType, Satisfaction};
use sea_orm::sea_query::{Alias, Asterisk, Condition, Expr, ExprTrait, Func, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, QueryFilter, QueryResult, QuerySelect,
    QueryTrait, Select,
};

use crate::entity::{alarm, standard_reply, ticket, ticket_event};
use crate::tickets::{MILESTONES, missed_open, overdue_condition};
use crate::{Store, StoreError};

/// Which tickets a figure covers.
#[derive(Debug, Clone)]
pub struct ReportScope {
    pub property_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Only this department's tickets (a supervisor's report).
    pub department: Option<Department>,
}

/// A milestone clock of the report: when it was reached and its deadline (in the order of
/// `tickets::MILESTONES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportClock {
    Acknowledge,
    OnSite,
    Resolve,
}

impl ReportClock {
    pub const ALL: [ReportClock; 3] = [ReportClock::Acknowledge, ReportClock::OnSite, ReportClock::Resolve];

    fn columns(self) -> (ticket::Column, ticket::Column) {
        MILESTONES[self as usize]
    }

    /// The notifier's clock of the same milestone (its code names it on the wire).
    pub fn clock(self) -> Clock {
        match self {
            ReportClock::Acknowledge => Clock::Acknowledge,
            ReportClock::OnSite => Clock::OnSite,
            ReportClock::Resolve => Clock::Resolve,
        }
    }

    /// Reached, with a deadline: the sample of the clock's times.
    fn reached(self) -> Condition {
        let (reached, deadline) = self.columns();
        Condition::all().add(deadline.is_not_null()).add(reached.is_not_null())
    }

    /// Reached by its deadline.
    fn met(self) -> Condition {
        let (reached, deadline) = self.columns();
        self.reached().add(Expr::col(reached).lte(Expr::col(deadline)))
    }

    /// Reached after its deadline.
    fn reached_late(self) -> Condition {
        let (reached, deadline) = self.columns();
        self.reached().add(Expr::col(reached).gt(Expr::col(deadline)))
    }

    /// Not reached, and its deadline passed while the ticket's clocks still run (a held
    /// ticket's deadlines move on resume; a cancelled or finished one's clock stopped; a
    /// linked report's clocks are its incident's).
    fn missed_open(self, now: DateTime<Utc>) -> Condition {
        let (reached, deadline) = self.columns();
        missed_open(reached, deadline, now)
    }
}

/// One clock over a scope.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClockStats {
    /// Requests that reached the milestone (their times are the sample).
    pub measured: u64,
    /// Requests whose deadline is decided: reached, or passed unreached while running.
    pub decided: u64,
    /// Of those, reached by the deadline.
    pub met: u64,
}

/// Callbacks and ratings over a scope.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallbackStats {
    /// Requests dispatched to a department (the base of callback coverage: each month callbacks must reach at least 90 % of them).
    pub dispatched: u64,
    /// Of those, called back.
    pub called_back: u64,
    /// Callbacks recorded after their deadline, or still missing past it at `now`.
    pub late: u64,
    /// Ratings by satisfaction code, most first.
    pub ratings: Vec<(String, i64)>,
    /// Requests ever resolved (resolved now, or reopened since).
    pub resolved: u64,
    /// Requests reopened at least once.
    pub reopened: u64,
}

/// Every count of a scope's requests, from one grouped pass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestFigures {
    /// Requests by kind, channel, category and department: most first, then by key.
    pub by_kind: Vec<(String, i64)>,
    pub by_channel: Vec<(String, i64)>,
    pub by_category: Vec<(String, i64)>,
    pub by_department: Vec<(String, i64)>,
    /// The clocks' counts, in [`ReportClock::ALL`] order (their percentiles come from
    /// [`Store::clock_percentiles`]).
    pub clocks: [ClockStats; 3],
    /// Requests that missed any deadline (reached late, or passed unreached), by department.
    pub breached_by_department: Vec<(String, i64)>,
    pub callbacks: CallbackStats,
    /// Requests flagged as repeat faults.
    pub repeat_faults: u64,
    /// Group incidents opened in the scope.
    pub incidents: u64,
    /// Requests linked to an incident.
    pub incident_tickets: u64,
    /// Enquiries answered at the desk when they were logged.
    pub answered_on_the_spot: u64,
}

/// Replies sent to residents over a scope.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RepliesSent {
    pub total: u64,
    /// Of those, from a standard reply.
    pub standard: u64,
    /// By standard reply code, most used first.
    pub by_code: Vec<(String, i64)>,
}

/// One staff member's figures over the requests assigned to them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StaffCounts {
    pub staff_id: String,
    pub handled: u64,
    /// Deadlines met and decided, over the three clocks.
    pub met: u64,
    pub decided: u64,
    /// Ratings by satisfaction code.
    pub ratings: Vec<(String, i64)>,
    /// Nearest-rank medians of their acknowledge and on-site times, in seconds.
    pub median_acknowledge_secs: Option<f64>,
    pub median_on_site_secs: Option<f64>,
}

/// Nearest-rank percentiles of one clock over a scope.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClockPercentiles {
    pub median_secs: Option<f64>,
    pub p90_secs: Option<f64>,
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
            condition = condition.add(ticket::Column::Department.eq(department.code()));
        }
        condition
    }
}

/// A count summed over a grouped pass: how many rows of each group meet a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tally {
    Reached(ReportClock),
    Met(ReportClock),
    MissedOpen(ReportClock),
    Breached,
    Dispatched,
    CalledBack,
    CallbackLate,
    EverResolved,
    Reopened,
    RepeatFault,
    Linked,
    AnsweredOnTheSpot,
    Rated(Satisfaction),
}

impl Tally {
    fn clocks(now: DateTime<Utc>) -> Vec<(Tally, Condition)> {
        ReportClock::ALL
            .into_iter()
            .flat_map(|clock| {
                [
                    (Tally::Reached(clock), clock.reached()),
                    (Tally::Met(clock), clock.met()),
                    (Tally::MissedOpen(clock), clock.missed_open(now)),
                ]
            })
            .collect()
    }

    /// The clocks' tallies and one per rating.
    fn staff(now: DateTime<Utc>) -> Vec<(Tally, Condition)> {
        let mut tallies = Tally::clocks(now);
        tallies.extend(Satisfaction::ALL.iter().map(|rating| {
            (Tally::Rated(*rating), Condition::all().add(ticket::Column::CallbackSatisfaction.eq(rating.code())))
        }));
        tallies
    }

    fn requests(now: DateTime<Utc>) -> Vec<(Tally, Condition)> {
        use ticket::Column as C;
        let breached = ReportClock::ALL
            .into_iter()
            .fold(Condition::any(), |any, clock| any.add(clock.reached_late()).add(clock.missed_open(now)));
        let callback_late = Condition::any()
            .add(
                Condition::all()
                    .add(C::CallbackRecordedAt.is_not_null())
                    .add(Expr::col(C::CallbackRecordedAt).gt(Expr::col(C::CallbackBy))),
            )
            .add(
                Condition::all()
                    .add(C::CallbackRecordedAt.is_null())
                    .add(C::State.eq("resolved"))
                    .add(C::CallbackBy.lt(now)),
            );
        let mut tallies = Tally::clocks(now);
        tallies.extend([
            (Tally::Breached, breached),
            (Tally::Dispatched, Condition::all().add(C::DispatchedAt.is_not_null())),
            (
                Tally::CalledBack,
                Condition::all().add(C::DispatchedAt.is_not_null()).add(C::CallbackRecordedAt.is_not_null()),
            ),
            (Tally::CallbackLate, callback_late),
            (Tally::EverResolved, Condition::any().add(C::ResolvedAt.is_not_null()).add(C::ClockCycle.gt(0))),
            (Tally::Reopened, Condition::all().add(C::ClockCycle.gt(0))),
            (Tally::RepeatFault, Condition::all().add(C::RepeatFault.eq(true))),
            (Tally::Linked, Condition::all().add(C::IncidentId.is_not_null())),
            // Resolved the moment it was logged: an enquiry answered at the desk.
            (Tally::AnsweredOnTheSpot, Condition::all().add(Expr::col(C::ResolvedAt).eq(Expr::col(C::CreatedAt)))),
        ]);
        tallies
    }
}

/// The tallies of one grouped row, by position.
struct Tallied {
    tallies: HashMap<Tally, u64>,
}

impl Tallied {
    fn get(&self, tally: Tally) -> u64 {
        self.tallies.get(&tally).copied().unwrap_or(0)
    }

    fn add(&mut self, other: &Tallied) {
        for (tally, n) in &other.tallies {
            *self.tallies.entry(*tally).or_default() += n;
        }
    }

    fn clock(&self, clock: ReportClock) -> ClockStats {
        let measured = self.get(Tally::Reached(clock));
        ClockStats {
            measured,
            decided: measured + self.get(Tally::MissedOpen(clock)),
            met: self.get(Tally::Met(clock)),
        }
    }
}

/// Adds `SUM(CASE WHEN condition THEN 1 ELSE 0 END) AS t<i>` for each tally.
fn with_tallies(mut query: Select<ticket::Entity>, tallies: &[(Tally, Condition)]) -> Select<ticket::Entity> {
    for (i, (_, condition)) in tallies.iter().enumerate() {
        let sum = SimpleExpr::from(Func::sum(Expr::case(condition.clone(), 1).finally(0)));
        query = query.column_as(sum, format!("t{i}"));
    }
    query
}

fn read_tallies(row: &QueryResult, tallies: &[(Tally, Condition)]) -> Result<Tallied, StoreError> {
    let mut read = HashMap::new();
    for (i, (tally, _)) in tallies.iter().enumerate() {
        let n: Option<i64> = row.try_get("", &format!("t{i}"))?;
        read.insert(*tally, u64::try_from(n.unwrap_or(0)).unwrap_or(0));
    }
    Ok(Tallied { tallies: read })
}

/// Adds `n` to `key`'s count.
fn bump(counts: &mut HashMap<String, i64>, key: Option<String>, n: i64) {
    if n > 0 {
        *counts.entry(key.unwrap_or_else(|| UNROUTED.to_owned())).or_default() += n;
    }
}

/// Counts most first, then by key. (Sorted here: the backends order NULL differently.)
fn ranked(counts: HashMap<String, i64>) -> Vec<(String, i64)> {
    let mut counts: Vec<(String, i64)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

/// The SQL filter that keeps the rows ranked at the nearest-rank `percent`th percentile
/// (1-based rank `ceil(count × percent / 100)`, in integers on both backends).
fn at_rank(rank: &str, count: &str, percent: u32) -> String {
    format!("{rank} = ({count} * {percent} + 99) / 100")
}

/// Whether 1-based `rank` of `count` values is the `percent`th percentile.
fn is_rank(rank: i64, count: i64, percent: u32) -> bool {
    let (Ok(rank), Ok(count)) = (u64::try_from(rank), u64::try_from(count)) else { return false };
    nearest_rank(count, percent).is_some_and(|index| index + 1 == rank)
}

impl Store {
    async fn rows(&self, query: sea_orm::sea_query::SelectStatement) -> Result<Vec<QueryResult>, StoreError> {
        Ok(self.db.query_all(&query).await?)
    }

    /// Every count of the scope's requests (and its incidents) in one grouped pass.
    pub async fn request_figures(&self, scope: &ReportScope, now: DateTime<Utc>) -> Result<RequestFigures, StoreError> {
        use ticket::Column as C;
        let tallies = Tally::requests(now);
        let groups = [C::IsIncident, C::Kind, C::Channel, C::Category, C::Department, C::CallbackSatisfaction];
        let query = ticket::Entity::find().filter(scope.logged()).select_only().columns(groups);
        let mut query = with_tallies(query.column_as(C::Id.count(), "n"), &tallies);
        for column in groups {
            query = query.group_by(column);
        }
        let rows = self.rows(query.into_query()).await?;

        let mut by = [(); 4].map(|_| HashMap::<String, i64>::new());
        let (mut ratings, mut breached) = (HashMap::new(), HashMap::new());
        let mut total = Tallied { tallies: HashMap::new() };
        let mut figures = RequestFigures::default();
        for row in rows {
            let n: i64 = row.try_get("", "n")?;
            if row.try_get::<bool>("", C::IsIncident.as_str())? {
                figures.incidents += u64::try_from(n).unwrap_or(0);
                continue;
            }
            for (counts, column) in by.iter_mut().zip([C::Kind, C::Channel, C::Category, C::Department]) {
                bump(counts, row.try_get("", column.as_str())?, n);
            }
            let satisfaction: Option<String> = row.try_get("", C::CallbackSatisfaction.as_str())?;
            if satisfaction.is_some() {
                bump(&mut ratings, satisfaction, n);
            }
            let tallied = read_tallies(&row, &tallies)?;
            let department: Option<String> = row.try_get("", C::Department.as_str())?;
            bump(&mut breached, department, i64::try_from(tallied.get(Tally::Breached)).unwrap_or(0));
            total.add(&tallied);
        }
        let [by_kind, by_channel, by_category, by_department] = by.map(ranked);
        Ok(RequestFigures {
            by_kind,
            by_channel,
            by_category,
            by_department,
            clocks: ReportClock::ALL.map(|clock| total.clock(clock)),
            breached_by_department: ranked(breached),
            callbacks: CallbackStats {
                dispatched: total.get(Tally::Dispatched),
                called_back: total.get(Tally::CalledBack),
                late: total.get(Tally::CallbackLate),
                ratings: ranked(ratings),
                resolved: total.get(Tally::EverResolved),
                reopened: total.get(Tally::Reopened),
            },
            repeat_faults: total.get(Tally::RepeatFault),
            incident_tickets: total.get(Tally::Linked),
            answered_on_the_spot: total.get(Tally::AnsweredOnTheSpot),
            ..figures
        })
    }

    /// Requests of the scope by category (the previous period's high-frequency problems).
    pub async fn categories(&self, scope: &ReportScope) -> Result<Vec<(String, i64)>, StoreError> {
        self.count_by(ticket::Entity::find().filter(scope.requests()), ticket::Column::Category).await
    }

    /// The rows of `query` counted by `column`: most first, then by key (none: [`UNROUTED`]).
    async fn count_by(
        &self,
        query: Select<ticket::Entity>,
        column: ticket::Column,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(Option<String>, i64)> = query
            .select_only()
            .column(column)
            .column_as(ticket::Column::Id.count(), "n")
            .group_by(column)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut counts = HashMap::new();
        for (key, n) in rows {
            bump(&mut counts, key, n);
        }
        Ok(ranked(counts))
    }

    /// Per person assigned in the scope: requests handled, deadlines met of those decided,
    /// ratings, and their median acknowledge and on-site times, in one grouped pass on
    /// PostgreSQL (`percentile_disc(0.5)` is the exact nearest-rank median: `0.5 × n` is exact
    /// in floating point); SQLite ranks each person's times in a second pass. Most handled
    /// first, then by id.
    pub async fn staff_counts(&self, scope: &ReportScope, now: DateTime<Utc>) -> Result<Vec<StaffCounts>, StoreError> {
        use ticket::Column as C;
        let tallies = Tally::staff(now);
        let medians = [(ReportClock::Acknowledge, "median_acknowledge"), (ReportClock::OnSite, "median_on_site")];
        let postgres = self.backend() == DbBackend::Postgres;
        let mut query = ticket::Entity::find()
            .filter(scope.requests())
            .filter(C::AssigneeId.is_not_null())
            .select_only()
            .column(C::AssigneeId)
            .column_as(C::Id.count(), "n");
        if postgres {
            for (clock, alias) in medians {
                let (reached, _) = clock.columns();
                let median = format!(
                    "percentile_disc(0.5) WITHIN GROUP (ORDER BY CASE WHEN {} THEN {} END)",
                    self.condition_sql(clock.reached()),
                    self.seconds_to(reached)
                );
                query = query.column_as(Expr::cust(median), alias);
            }
        }
        let query = with_tallies(query, &tallies).group_by(C::AssigneeId);
        let mut people = Vec::new();
        for row in self.rows(query.into_query()).await? {
            let tallied = read_tallies(&row, &tallies)?;
            let clocks = ReportClock::ALL.map(|clock| tallied.clock(clock));
            let ratings = Satisfaction::ALL
                .iter()
                .map(|rating| {
                    (rating.code().to_owned(), i64::try_from(tallied.get(Tally::Rated(*rating))).unwrap_or(0))
                })
                .filter(|(_, n)| *n > 0)
                .collect();
            let median = |alias: &str| -> Result<Option<f64>, StoreError> {
                if postgres { Ok(row.try_get::<Option<f64>>("", alias)?) } else { Ok(None) }
            };
            people.push(StaffCounts {
                staff_id: row.try_get("", C::AssigneeId.as_str())?,
                handled: u64::try_from(row.try_get::<i64>("", "n")?).unwrap_or(0),
                met: clocks.iter().map(|c| c.met).sum(),
                decided: clocks.iter().map(|c| c.decided).sum(),
                ratings,
                median_acknowledge_secs: median(medians[0].1)?,
                median_on_site_secs: median(medians[1].1)?,
            });
        }
        if !postgres {
            let acknowledge = self.staff_medians(scope, ReportClock::Acknowledge).await?;
            let on_site = self.staff_medians(scope, ReportClock::OnSite).await?;
            for person in &mut people {
                person.median_acknowledge_secs = acknowledge.get(&person.staff_id).copied();
                person.median_on_site_secs = on_site.get(&person.staff_id).copied();
            }
        }
        people.sort_by(|a, b| b.handled.cmp(&a.handled).then_with(|| a.staff_id.cmp(&b.staff_id)));
        Ok(people)
    }

    /// Each assignee's nearest-rank median time to `clock`'s milestone, by ranking their
    /// times (for SQLite, which has no ordered-set aggregates).
    async fn staff_medians(&self, scope: &ReportScope, clock: ReportClock) -> Result<HashMap<String, f64>, StoreError> {
        let (reached, _) = clock.columns();
        let seconds = self.seconds_to(reached);
        let person = "tickets.assignee_id";
        let ranked = ticket::Entity::find()
            .filter(scope.requests())
            .filter(clock.reached())
            .filter(ticket::Column::AssigneeId.is_not_null())
            .select_only()
            .column(ticket::Column::AssigneeId)
            .column_as(Expr::cust(seconds.clone()), "seconds")
            .column_as(Expr::cust(format!("ROW_NUMBER() OVER (PARTITION BY {person} ORDER BY {seconds})")), "rank")
            .column_as(Expr::cust(format!("COUNT(*) OVER (PARTITION BY {person})")), "count");
        let mut medians = HashMap::new();
        for row in self.ranked_rows(ranked, &[50]).await? {
            if is_rank(row.try_get("", "rank")?, row.try_get("", "count")?, 50) {
                medians.insert(row.try_get("", ticket::Column::AssigneeId.as_str())?, row.try_get("", "seconds")?);
            }
        }
        Ok(medians)
    }

    /// The rows of `ranked` (with `rank` and `count` columns) at any of the percentiles.
    async fn ranked_rows(
        &self,
        ranked: Select<ticket::Entity>,
        percents: &[u32],
    ) -> Result<Vec<QueryResult>, StoreError> {
        let wanted: Vec<String> = percents.iter().map(|p| at_rank("rank", "count", *p)).collect();
        let picked = Query::select()
            .column(Asterisk)
            .from_subquery(ranked.into_query(), Alias::new("ranked"))
            .and_where(Expr::cust(wanted.join(" OR ")))
            .to_owned();
        self.rows(picked).await
    }

    /// A condition as SQL of this backend, values inlined (they are the store's own
    /// constants and column names, never user text).
    fn condition_sql(&self, condition: Condition) -> String {
        let query = Query::select().expr(Expr::cust("1")).cond_where(condition).to_owned();
        let sql = match self.backend() {
            DbBackend::Postgres => query.to_string(sea_orm::sea_query::PostgresQueryBuilder),
            _ => query.to_string(sea_orm::sea_query::SqliteQueryBuilder),
        };
        sql.split_once(" WHERE ").map_or_else(|| "TRUE".to_owned(), |(_, where_sql)| where_sql.to_owned())
    }

    /// How long requests of the scope took to reach `clock`'s milestone (from the start of
    /// their clocks: logging, or the last reopening): the nearest-rank median and p90, picked
    /// in the database from one ranked pass.
    pub async fn clock_percentiles(
        &self,
        scope: &ReportScope,
        clock: ReportClock,
    ) -> Result<ClockPercentiles, StoreError> {
        let (reached, _) = clock.columns();
        let seconds = self.seconds_to(reached);
        let ranked = ticket::Entity::find()
            .filter(scope.requests())
            .filter(clock.reached())
            .select_only()
            .column_as(Expr::cust(seconds.clone()), "seconds")
            .column_as(Expr::cust(format!("ROW_NUMBER() OVER (ORDER BY {seconds})")), "rank")
            .column_as(Expr::cust("COUNT(*) OVER ()"), "count");
        let mut percentiles = ClockPercentiles::default();
        for row in self.ranked_rows(ranked, &[50, 90]).await? {
            let secs: f64 = row.try_get("", "seconds")?;
            let (rank, count): (i64, i64) = (row.try_get("", "rank")?, row.try_get("", "count")?);
            if is_rank(rank, count, 50) {
                percentiles.median_secs = Some(secs);
            }
            if is_rank(rank, count, 90) {
                percentiles.p90_secs = Some(secs);
            }
        }
        Ok(percentiles)
    }

    /// Seconds from the start of the ticket's current clock cycle (its logging, or its last
    /// reopening as the history records it) to `reached`, as SQL of this backend.
    fn seconds_to(&self, reached: ticket::Column) -> String {
        let reached = format!("tickets.{}", reached.as_str());
        let start = format!(
            "(CASE WHEN tickets.clock_cycle > 0 THEN (SELECT MAX(e.occurred_at) FROM ticket_events e \
             WHERE e.ticket_id = tickets.id AND e.event_type = '{}') ELSE tickets.created_at END)",
            EventType::Reopened.code()
        );
        match self.backend() {
            DbBackend::Postgres => format!("CAST(EXTRACT(EPOCH FROM ({reached} - {start})) AS DOUBLE PRECISION)"),
            // SQLite keeps times as ISO-8601 text; julianday reads it (about 50 µs resolution).
            _ => format!("((julianday({reached}) - julianday({start})) * 86400.0)"),
        }
    }

    /// Open tickets of the property past an unmet deadline at `now` (requests, and group
    /// incidents in place of their linked reports), by department.
    pub async fn overdue_open_by_department(
        &self,
        property_id: &str,
        department: Option<Department>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.count_by(self.overdue(property_id, department, now), ticket::Column::Department).await
    }

    /// Every open ticket of the property past an unmet deadline at `now` (requests, and group
    /// incidents in place of their linked reports; optionally of one department). Overdue tickets are a short list by nature; the caller orders them.
    pub async fn overdue_tickets(
        &self,
        property_id: &str,
        department: Option<Department>,
        owner: Option<&crate::tickets::Owner>,
        now: DateTime<Utc>,
    ) -> Result<Vec<propdesk_domain::Ticket>, StoreError> {
        let mut query = self.overdue(property_id, department, now);
        if let Some(owner) = owner {
            query = query.filter(owner.condition());
        }
        query.all(&self.db).await?.into_iter().map(crate::tickets::readable).collect()
    }

    fn overdue(&self, property_id: &str, department: Option<Department>, now: DateTime<Utc>) -> Select<ticket::Entity> {
        let mut query =
            ticket::Entity::find().filter(ticket::Column::PropertyId.eq(property_id)).filter(overdue_condition(now));
        if let Some(department) = department {
            query = query.filter(ticket::Column::Department.eq(department.code()));
        }
        query
    }

    /// The scope's requests that waited on outside parties, and the seconds they waited
    /// (in waits that ended): time the centre rightly waited, apart from time worked.
    pub async fn waited_on_outside_parties(&self, scope: &ReportScope) -> Result<(u64, u64), StoreError> {
        use ticket::Column as C;
        let row: Option<(i64, Option<i64>)> = ticket::Entity::find()
            .select_only()
            .column_as(C::Id.count(), "n")
            // PostgreSQL sums a BIGINT as NUMERIC: back to BIGINT for both backends.
            .column_as(
                SimpleExpr::from(Func::cast_as(Func::sum(Expr::col(C::WaitedSecs)), Alias::new("BIGINT"))),
                "waited",
            )
            .filter(scope.requests())
            .filter(C::WaitedSecs.gt(0))
            .into_tuple()
            .one(&self.db)
            .await?;
        let (count, waited) = row.map_or((0, 0), |(n, waited)| (n, waited.unwrap_or(0)));
        Ok((u64::try_from(count).unwrap_or(0), u64::try_from(waited).unwrap_or(0)))
    }

    /// The scope's requests resolved after their resolve deadline (now or before a reopening),
    /// by the cause of the delay given ("unstated" when none was), and the reviews of its requests and
    /// incidents by cause ("open" while not completed).
    pub async fn by_cause(&self, scope: &ReportScope) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>), StoreError> {
        use ticket::Column as C;
        let late: Vec<(Option<String>, i64)> = ticket::Entity::find()
            .select_only()
            .column(C::DelayCause)
            .column_as(C::Id.count(), "n")
            .filter(scope.requests())
            // A cause stays once given, even if the work was reopened since.
            .filter(
                Condition::any()
                    .add(C::DelayCause.is_not_null())
                    .add(Expr::col(C::ResolvedAt).gt(Expr::col(C::ResolveBy))),
            )
            .group_by(C::DelayCause)
            .into_tuple()
            .all(&self.db)
            .await?;
        let reviews: Vec<(Option<String>, i64)> = ticket::Entity::find()
            .select_only()
            .column(C::ReviewCause)
            .column_as(C::Id.count(), "n")
            .filter(scope.logged())
            .filter(C::ReviewRecord.is_not_null())
            .group_by(C::ReviewCause)
            .into_tuple()
            .all(&self.db)
            .await?;
        let keyed = |rows: Vec<(Option<String>, i64)>, none: &str| {
            ranked(rows.into_iter().map(|(key, n)| (key.unwrap_or_else(|| none.to_owned()), n)).collect())
        };
        Ok((keyed(late, "unstated"), keyed(reviews, "open")))
    }

    /// Replies sent to residents in the period on the scope's property (and department):
    /// how many, and how many of each standard reply (by its code, most used first).
    pub async fn replies_sent(&self, scope: &ReportScope) -> Result<RepliesSent, StoreError> {
        use ticket_event::Column as C;
        let mut query = ticket_event::Entity::find()
            .select_only()
            .column(C::StandardReplyId)
            .column_as(C::Id.count(), "n")
            .filter(C::PropertyId.eq(scope.property_id.as_str()))
            .filter(C::ReplyMethod.is_not_null())
            .filter(C::OccurredAt.gte(scope.start))
            .filter(C::OccurredAt.lt(scope.end));
        if let Some(department) = &scope.department {
            query = query.filter(C::Department.eq(department.code()));
        }
        let rows: Vec<(Option<String>, i64)> = query.group_by(C::StandardReplyId).into_tuple().all(&self.db).await?;
        let total = rows.iter().map(|(_, n)| *n).sum::<i64>();
        let used: Vec<(String, i64)> = rows.into_iter().filter_map(|(id, n)| Some((id?, n))).collect();
        let ids: Vec<String> = used.iter().map(|(id, _)| id.clone()).collect();
        let codes: HashMap<String, String> = standard_reply::Entity::find()
            .filter(standard_reply::Column::Id.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.id, r.code))
            .collect();
        let mut by_code: HashMap<String, i64> = HashMap::new();
        for (id, n) in used {
            *by_code.entry(codes.get(&id).cloned().unwrap_or(id)).or_default() += n;
        }
        let standard = by_code.values().sum::<i64>();
        Ok(RepliesSent {
            total: u64::try_from(total).unwrap_or(0),
            standard: u64::try_from(standard).unwrap_or(0),
            by_code: ranked(by_code),
        })
    }

    /// Escalation-ladder steps (breach and overdue) fired in the period on the scope's
    /// property (and department), by the level they raised the ticket to. Each is one
    /// ESCALATED event in its ticket's history; an unsatisfied callback's escalation is
    /// counted with the reopenings instead.
    pub async fn escalations_by_level(&self, scope: &ReportScope) -> Result<Vec<(String, i64)>, StoreError> {
        let mut tickets = ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Id)
            .filter(ticket::Column::PropertyId.eq(scope.property_id.as_str()));
        if let Some(department) = &scope.department {
            tickets = tickets.filter(ticket::Column::Department.eq(department.code()));
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
        Ok(ranked(rows.into_iter().map(|(level, n)| (level.to_string(), n)).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_rank_filter_agrees_with_nearest_rank() {
        for count in 1..=500i64 {
            for percent in [50, 90] {
                let sql_rank = (count * i64::from(percent) + 99) / 100;
                assert!(is_rank(sql_rank, count, percent), "count {count} p{percent}");
                assert!(!is_rank(sql_rank + 1, count, percent));
            }
        }
        assert_eq!(at_rank("r", "n", 90), "r = (n * 90 + 99) / 100");
    }
}
