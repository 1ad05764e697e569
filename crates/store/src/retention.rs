//! Retention of contact data: on tickets finished (closed, or cancelled) longer ago than
//! their property's period (else the company's), the reporter's name becomes the anonymous
//! marker, the phone and its blind index go, and residents' entries among a case's parties
//! lose their names and contacts. Nothing else changes: not the version, not a time, not a
//! figure of any report. In batches (short transactions beside live creates), paced so
//! the pass keeps the database busy only part of the time, and resumable: a pass that
//! stops leaves the rest for the next, which finds them by `anonymised_at` still empty.

use chrono::{DateTime, TimeDelta, Utc};
use propdesk_domain::TicketState;
use propdesk_domain::case::Case;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::{property, ticket};
use crate::sealing;
use crate::{Store, StoreError};

/// What an anonymised ticket shows as its reporter's name.
pub const ANONYMOUS: &str = "已匿名";

/// The shortest and longest periods a property may keep contact data, in days.
pub const MIN_DAYS: i32 = 30;
pub const MAX_DAYS: i32 = 20 * 365;

/// Finished tickets of the property past `cutoff`, not yet anonymised.
fn expired(property_id: &str, cutoff: DateTime<Utc>) -> Condition {
    use ticket::Column as C;
    let closed = TicketState::Closed.code();
    let cancelled = TicketState::Cancelled.code();
    Condition::all().add(C::PropertyId.eq(property_id)).add(C::AnonymisedAt.is_null()).add(
        Condition::any()
            .add(Condition::all().add(C::State.eq(closed)).add(C::ClosedAt.lt(cutoff)))
            // A cancellation stamps no closing time: its last change is when it ended.
            .add(Condition::all().add(C::State.eq(cancelled)).add(C::UpdatedAt.lt(cutoff))),
    )
}

/// How a retention pass shares the database with live work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Tickets per transaction.
    pub batch: u64,
    /// The share of the pass spent in batches (0 < duty ≤ 1): after each batch the pass
    /// rests long enough to keep to it, so live creates find the database free the rest of
    /// the time. 1 runs flat out.
    pub duty: f64,
}

impl Pace {
    /// The rest owed after a batch that took `busy`.
    fn rest_after(&self, busy: std::time::Duration) -> std::time::Duration {
        // Out of range (settings refuse it): never a pass that only rests.
        let duty = if self.duty.is_nan() { 1.0 } else { self.duty.clamp(0.05, 1.0) };
        busy.mul_f64((1.0 - duty) / duty)
    }
}

impl Store {
    /// Anonymises every expired ticket of every property, `pace.batch` per transaction;
    /// answers how many tickets it anonymised.
    pub async fn anonymise_expired(
        &self,
        default_days: i32,
        pace: Pace,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let keys = sealing::ring()?;
        let marker = keys.seal(ticket::REPORTER_NAME, ANONYMOUS)?;
        let mut anonymised = 0;
        for property in property::Entity::find().order_by_asc(property::Column::Id).all(&self.db).await? {
            let days = property.contact_retention_days.unwrap_or(default_days);
            let cutoff = now - TimeDelta::days(i64::from(days));
            loop {
                use ticket::Column as C;
                let started = std::time::Instant::now();
                let rows: Vec<(String, Option<String>)> = ticket::Entity::find()
                    .select_only()
                    .columns([C::Id, C::CaseRecord])
                    .filter(expired(&property.id, cutoff))
                    .order_by_asc(C::Id)
                    .limit(pace.batch)
                    .into_tuple()
                    .all(&self.db)
                    .await?;
                if rows.is_empty() {
                    break;
                }
                // Behind interactive writes (SQLite's one writer serves creates first).
                let txn = self.begin_background().await?;
                let (with_case, plain): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, case)| case.is_some());
                let ids: Vec<String> = plain.into_iter().map(|(id, _)| id).collect();
                let mut done = anonymise(&txn.inner, &marker, ids, None, cutoff, &property.id).await?;
                for (id, case) in with_case {
                    let case = match case {
                        Some(sealed) => Some(keys.seal(
                            ticket::CASE_RECORD,
                            &without_residents(keys.open(ticket::CASE_RECORD, &sealed)?)?,
                        )?),
                        None => None,
                    };
                    done += anonymise(&txn.inner, &marker, vec![id], case, cutoff, &property.id).await?;
                }
                self.commit(txn).await?;
                anonymised += done;
                tokio::time::sleep(pace.rest_after(started.elapsed())).await;
            }
        }
        Ok(anonymised)
    }
}

/// A case record with its residents' names and contacts removed.
fn without_residents(json: String) -> Result<String, StoreError> {
    let unreadable = |e: serde_json::Error| {
        StoreError::Unreadable(ticket::UnreadableTicket {
            ticket_id: String::new(),
            detail: format!("case record: {e}"),
        })
    };
    let mut case: Case = serde_json::from_str(&json).map_err(unreadable)?;
    for party in case.parties.iter_mut().filter(|p| p.resident_id.is_some()) {
        party.name.clear();
        party.contact.clear();
    }
    serde_json::to_string(&case).map_err(unreadable)
}

/// One statement: the marker in, the phone and its index out, for `ids` still expired (a
/// ticket reopened meanwhile is left alone).
async fn anonymise(
    txn: &impl sea_orm::ConnectionTrait,
    marker: &str,
    ids: Vec<String>,
    case: Option<String>,
    cutoff: DateTime<Utc>,
    property_id: &str,
) -> Result<u64, StoreError> {
    use ticket::Column as C;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut update = ticket::Entity::update_many()
        .col_expr(C::ReporterName, Expr::value(marker))
        .col_expr(C::ReporterPhone, Expr::value(""))
        .col_expr(C::ReporterPhoneKey, Expr::value(Option::<String>::None))
        .col_expr(C::AnonymisedAt, Expr::value(crate::now()));
    if let Some(case) = case {
        update = update.col_expr(C::CaseRecord, Expr::value(case));
    }
    let result = update.filter(C::Id.is_in(ids)).filter(expired(property_id, cutoff)).exec(txn).await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Pace;

    #[test]
    fn a_pass_rests_so_its_batches_keep_to_their_share_of_the_time() {
        let half = Pace { batch: 500, duty: 0.5 };
        assert_eq!(half.rest_after(Duration::from_millis(80)), Duration::from_millis(80));
        let quarter = Pace { batch: 500, duty: 0.25 };
        assert_eq!(quarter.rest_after(Duration::from_millis(80)), Duration::from_millis(240));
        let flat_out = Pace { batch: 500, duty: 1.0 };
        assert_eq!(flat_out.rest_after(Duration::from_millis(80)), Duration::ZERO);
        // Out of range: never a pass that only rests, never a negative rest.
        let least = Pace { batch: 500, duty: 0.0 }.rest_after(Duration::from_millis(10));
        assert!(least > Duration::from_millis(180) && least < Duration::from_millis(200), "{least:?}");
        assert_eq!(Pace { batch: 500, duty: 3.0 }.rest_after(Duration::from_millis(10)), Duration::ZERO);
        assert_eq!(Pace { batch: 500, duty: f64::NAN }.rest_after(Duration::from_millis(10)), Duration::ZERO);
    }
}
