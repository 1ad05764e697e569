//! The outbox: messages written with their cause, published by the relay, then deleted.

use std::future::Future;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::outbox;
use crate::{Store, StoreError};

/// How long a claim holds unless renewed: a process that dies holding rows (a
/// crash, a kill) leaves them to the next relay, its own restart included, this soon.
const CLAIM_LEASE: TimeDelta = TimeDelta::seconds(3);
/// How often a relay still publishing renews its claim (well inside the lease).
const CLAIM_RENEWAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What one relay pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayPass {
    pub published: usize,
    pub failed: usize,
}

impl Store {
    /// Claims up to `limit` unsent messages, hands them to `publish` (which says, per
    /// message, whether the bus confirmed it), and deletes the confirmed ones.
    ///
    /// One `UPDATE` stamps a claim token and a short lease on the rows, so relays of
    /// several processes never publish the same row at once. No transaction is held across
    /// the publish: on PostgreSQL an open transaction would hold back the horizon that
    /// WatchTickets reads up to (every stream of every replica would wait for a publish to
    /// a broker that does not answer), and on SQLite a read transaction could not be
    /// upgraded after the consumers' own commits. The lease is renewed while the publish
    /// runs, so it lapses soon after its process dies, never while it works.
    ///
    /// PostgreSQL claims with `FOR UPDATE SKIP LOCKED` and `RETURNING`: one statement, and
    /// two relays never wait for each other; an idle pass updates nothing and costs no
    /// transaction id.
    pub async fn relay_outbox<F, Fut>(&self, limit: u64, publish: F) -> Result<RelayPass, StoreError>
    where
        F: FnOnce(Vec<outbox::Model>) -> Fut,
        Fut: Future<Output = Vec<bool>>,
    {
        let postgres = self.backend() == DbBackend::Postgres;
        let now = crate::now();
        let token = uuid::Uuid::now_v7().to_string();
        let mut claimable = Query::select()
            .column(outbox::Column::Id)
            .from(outbox::Entity)
            .cond_where(
                Condition::any().add(outbox::Column::ClaimedUntil.is_null()).add(outbox::Column::ClaimedUntil.lt(now)),
            )
            .order_by(outbox::Column::Id, Order::Asc)
            .limit(limit)
            .to_owned();
        if postgres {
            claimable.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let claim = outbox::Entity::update_many()
            .col_expr(outbox::Column::ClaimToken, Expr::value(token.clone()))
            .col_expr(outbox::Column::ClaimedUntil, Expr::value(now + CLAIM_LEASE))
            .filter(outbox::Column::Id.in_subquery(claimable));
        let rows = if postgres {
            let mut rows = claim.exec_with_returning(&self.db).await?;
            rows.sort_unstable_by_key(|row| row.id);
            rows
        } else {
            if claim.exec(&self.db).await?.rows_affected == 0 {
                return Ok(RelayPass::default());
            }
            outbox::Entity::find()
                .filter(outbox::Column::ClaimToken.eq(token.as_str()))
                .order_by_asc(outbox::Column::Id)
                .all(&self.db)
                .await?
        };
        if rows.is_empty() {
            return Ok(RelayPass::default());
        }
        let confirmed = self.renewing_claim(&token, publish(rows.clone())).await;
        let (sent, failed) = split(&rows, confirmed);
        finish(&self.db, &sent, &failed).await?;
        Ok(RelayPass { published: sent.len(), failed: failed.len() })
    }

    /// Runs `publishing` while renewing the lease of the rows claimed with `token`.
    async fn renewing_claim<Fut: Future<Output = Vec<bool>>>(&self, token: &str, publishing: Fut) -> Vec<bool> {
        let mut publishing = std::pin::pin!(publishing);
        loop {
            tokio::select! {
                confirmed = &mut publishing => return confirmed,
                _ = tokio::time::sleep(CLAIM_RENEWAL) => {
                    let renewed = outbox::Entity::update_many()
                        .col_expr(outbox::Column::ClaimedUntil, Expr::value(crate::now() + CLAIM_LEASE))
                        .filter(outbox::Column::ClaimToken.eq(token))
                        .exec(&self.db)
                        .await;
                    if let Err(err) = renewed {
                        // Another relay may publish the rows too: at least once still holds.
                        tracing::warn!(error = %err, "outbox claim not renewed");
                    }
                }
            }
        }
    }

    /// Age of the oldest unsent message (zero when the outbox is empty).
    pub async fn outbox_lag(&self, now: DateTime<Utc>) -> Result<TimeDelta, StoreError> {
        let oldest: Option<outbox::Model> =
            outbox::Entity::find().order_by_asc(outbox::Column::Id).one(&self.db).await?;
        Ok(oldest.map_or(TimeDelta::zero(), |row| (now - row.created_at).max(TimeDelta::zero())))
    }
}

fn split(rows: &[outbox::Model], confirmed: Vec<bool>) -> (Vec<i64>, Vec<i64>) {
    let mut sent = Vec::new();
    let mut failed = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        if confirmed.get(index).copied().unwrap_or(false) {
            sent.push(row.id);
        } else {
            failed.push(row.id);
        }
    }
    (sent, failed)
}

async fn finish(db: &impl sea_orm::ConnectionTrait, sent: &[i64], failed: &[i64]) -> Result<(), StoreError> {
    if !sent.is_empty() {
        outbox::Entity::delete_many().filter(outbox::Column::Id.is_in(sent.iter().copied())).exec(db).await?;
    }
    if !failed.is_empty() {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
            .col_expr(outbox::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(outbox::Column::Id.is_in(failed.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(())
}
