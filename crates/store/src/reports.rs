//! The figures of the service review, counted in the database over one property and
//! period (tickets logged in `[start, end)`), optionally one department. Group incidents
//! are parents, not requests: they are counted only as incidents.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};

use crate::entity::ticket;
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
}

/// A ticket attribute to count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Kind,
    Channel,
    Category,
    Department,
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
        };
        let rows: Vec<(Option<String>, i64)> = ticket::Entity::find()
            .select_only()
            .column(column)
            .column_as(ticket::Column::Id.count(), "n")
            .filter(scope.requests())
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
