//! The outbox: messages written with their cause, published by the relay, then deleted.
//!
//! Two ways a message reaches the relay:
//! - **Handed over.** Once this process's relay takes its own messages
//!   ([`Store::hand_outbox_to_relay`]), every outbox row a local transaction writes is
//!   written already claimed: this process's claim token and a short lease. At commit the
//!   messages go to the relay in memory, so publishing them costs no claim statement, and
//!   no other relay takes them while the lease holds. If this process dies first, the
//!   lease lapses and any relay claims them as below.
//! - **Claimed.** Rows of other processes, of a process that died, or released after a
//!   failed publish: a relay claims them with one `UPDATE` (a fresh token and a lease).
//!
//! Either way a message is deleted only after the bus confirmed it.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use propdesk_events::BusMessage;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::outbox;
use crate::{Store, StoreError};

/// How long a claim holds unless renewed: a process that dies holding rows (a
/// crash, a kill) leaves them to the next relay, its own restart included, this soon.
const CLAIM_LEASE: TimeDelta = TimeDelta::seconds(3);
/// How often a relay still publishing renews its claim (well inside the lease).
const CLAIM_RENEWAL: std::time::Duration = std::time::Duration::from_secs(1);
/// A handed-over message is published as it is with at least this much of its lease
/// left; one older (its commit or the relay was slow: SQLite's one writer serves the API
/// first) has its lease renewed first, so two relays never publish it at once.
const LEASE_LEFT_AT_LEAST: TimeDelta = TimeDelta::seconds(1);
/// The most messages waiting in memory for the relay; past it (a relay that has fallen
/// behind) rows are written unclaimed and the relay claims them.
const HANDED_AT_MOST: usize = 10_000;

/// What one relay pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelayPass {
    /// Message ids the bus confirmed: delete them with [`Store::delete_published`].
    pub sent: Vec<String>,
    /// Messages the bus refused or did not confirm, released for a later pass.
    pub failed: usize,
}

/// Messages a relay holds the claim of, to publish with [`Store::publish_claimed`].
#[derive(Debug)]
pub struct Claimed {
    token: String,
    pub messages: Vec<BusMessage>,
}

/// The messages of this process on their way from its commits to its relay.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// The claim token of the rows this process writes for its own relay.
    token: String,
    /// Whether the relay takes this process's messages now (it does unless it stopped,
    /// or its bus is failing: then rows are written unclaimed, for a later claim).
    taking: AtomicBool,
    handed: Mutex<Vec<Handed>>,
}

/// A committed message of this process, and when its lease ends.
#[derive(Debug, Clone)]
pub(crate) struct Handed {
    message: BusMessage,
    lease_ends: DateTime<Utc>,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff { token: uuid::Uuid::now_v7().to_string(), taking: AtomicBool::new(false), handed: Mutex::default() }
    }
}

impl Handoff {
    /// The outbox rows of `messages` (each written at its time) and, when the relay takes
    /// them, what to hand it once they commit (in the same order).
    pub(crate) fn rows(&self, messages: Vec<(BusMessage, DateTime<Utc>)>) -> (Vec<outbox::ActiveModel>, Vec<Handed>) {
        let lease_ends = self.taking().then(|| crate::now() + CLAIM_LEASE);
        let mut rows = Vec::with_capacity(messages.len());
        let mut handed = Vec::new();
        for (message, at) in messages {
            // A copy stays in memory only for a relay that takes it.
            let written = match lease_ends {
                Some(lease_ends) => {
                    handed.push(Handed { message: message.clone(), lease_ends });
                    message
                }
                None => message,
            };
            rows.push(outbox::ActiveModel {
                message_id: Set(written.message_id),
                routing_key: Set(written.routing_key),
                payload: Set(written.payload),
                created_at: Set(at),
                attempts: Set(0),
                claim_token: Set(lease_ends.map(|_| self.token.clone())),
                claimed_until: Set(lease_ends),
                trace_parent: Set(written.trace_parent),
                ..Default::default()
            });
        }
        (rows, handed)
    }

    fn taking(&self) -> bool {
        self.taking.load(Ordering::Relaxed) && self.lock().len() < HANDED_AT_MOST
    }

    /// Hands committed messages to the relay.
    pub(crate) fn hand(&self, committed: Vec<Handed>) {
        if !committed.is_empty() {
            self.lock().extend(committed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Handed>> {
        // A panic elsewhere while holding it leaves a plain list: still usable.
        self.handed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Rows no relay holds at `now`: never claimed, released, or their lease lapsed.
fn unheld(now: DateTime<Utc>) -> Condition {
    Condition::any().add(outbox::Column::ClaimedUntil.is_null()).add(outbox::Column::ClaimedUntil.lt(now))
}

impl Store {
    /// Says whether this process's relay takes the messages this process commits (see the
    /// module's doc). Off: rows are written unclaimed and wait for a claim, as they do in
    /// a process without a relay.
    pub fn hand_outbox_to_relay(&self, taking: bool) {
        self.handoff.taking.store(taking, Ordering::Relaxed);
    }

    /// Up to `limit` messages this process committed for its relay, oldest first; `None`
    /// when there are none. Those whose lease is nearly over have it renewed first, in one
    /// statement; any another relay took after it lapsed are left to that relay.
    pub async fn take_handed(&self, limit: usize) -> Result<Option<Claimed>, StoreError> {
        let now = crate::now();
        let taken: Vec<Handed> = {
            let mut handed = self.handoff.lock();
            let end = limit.min(handed.len());
            handed.drain(..end).collect()
        };
        let (fresh, late): (Vec<Handed>, Vec<Handed>) =
            taken.into_iter().partition(|handed| handed.lease_ends - now >= LEASE_LEFT_AT_LEAST);
        // The late ones are the older: they go first.
        let mut messages = self.renew_own_claims(late.into_iter().map(|handed| handed.message).collect(), now).await?;
        messages.extend(fresh.into_iter().map(|handed| handed.message));
        Ok((!messages.is_empty()).then(|| Claimed { token: self.handoff.token.clone(), messages }))
    }

    /// Renews this process's claim on `messages`; returns those still its own (a lapsed
    /// claim may have been taken by another relay, or the row published and deleted).
    async fn renew_own_claims(
        &self,
        messages: Vec<BusMessage>,
        now: DateTime<Utc>,
    ) -> Result<Vec<BusMessage>, StoreError> {
        if messages.is_empty() {
            return Ok(messages);
        }
        let token = self.handoff.token.as_str();
        let ids = || messages.iter().map(|m| m.message_id.as_str());
        if self.renew_claim(token, ids(), now).await? == messages.len() as u64 {
            return Ok(messages);
        }
        // Renewed: nobody takes these now, so what the look-up finds stays true.
        let ours: std::collections::HashSet<String> = outbox::Entity::find()
            .select_only()
            .column(outbox::Column::MessageId)
            .filter(outbox::Column::ClaimToken.eq(token))
            .filter(outbox::Column::MessageId.is_in(ids()))
            .into_tuple()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        Ok(messages.into_iter().filter(|m| ours.contains(&m.message_id)).collect())
    }

    /// Claims up to `limit` unsent messages that no relay holds: one `UPDATE` stamps a
    /// fresh claim token and a short lease on them, so relays of several processes never
    /// publish the same row at once.
    ///
    /// No transaction is held across the publish: on PostgreSQL an open transaction would
    /// hold back the horizon that WatchTickets reads up to (every stream of every replica
    /// would wait for a publish to a broker that does not answer), and on SQLite a read
    /// transaction could not be upgraded after the consumers' own commits.
    ///
    /// PostgreSQL claims with `FOR UPDATE SKIP LOCKED` and `RETURNING`: one statement, and
    /// two relays never wait for each other; an idle pass updates nothing and costs no
    /// transaction id.
    pub async fn claim_outbox(&self, limit: u64) -> Result<Option<Claimed>, StoreError> {
        let postgres = self.backend() == DbBackend::Postgres;
        let now = crate::now();
        let token = uuid::Uuid::now_v7().to_string();
        let mut claimable = Query::select()
            .column(outbox::Column::Id)
            .from(outbox::Entity)
            .cond_where(unheld(now))
            .order_by(outbox::Column::Id, Order::Asc)
            .limit(limit)
            .to_owned();
        if postgres {
            claimable.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        } else {
            // SQLite: an UPDATE takes the one writer's lock even when it matches nothing,
            // and waits for it behind every other process's writes; a read needs no lock.
            let nothing = outbox::Entity::find().filter(unheld(now)).one(&self.db).await?.is_none();
            if nothing {
                return Ok(None);
            }
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
                return Ok(None);
            }
            outbox::Entity::find()
                .filter(outbox::Column::ClaimToken.eq(token.as_str()))
                .order_by_asc(outbox::Column::Id)
                .all(&self.db)
                .await?
        };
        let messages: Vec<BusMessage> = rows
            .into_iter()
            .map(|row| BusMessage {
                message_id: row.message_id,
                routing_key: row.routing_key,
                payload: row.payload,
                trace_parent: row.trace_parent,
            })
            .collect();
        Ok((!messages.is_empty()).then_some(Claimed { token, messages }))
    }

    /// Hands the claimed messages to `publish` (which says, per message, whether the bus
    /// confirmed it), renewing their lease while it runs, so the lease lapses soon after
    /// this process dies, never while it works. Those not confirmed are released at once
    /// for a later pass; the confirmed ones are the caller's to delete (they stay claimed
    /// until then), so a relay can delete several passes' worth in one statement.
    pub async fn publish_claimed<F, Fut>(&self, claimed: Claimed, publish: F) -> Result<RelayPass, StoreError>
    where
        F: FnOnce(Vec<BusMessage>) -> Fut,
        Fut: Future<Output = Vec<bool>>,
    {
        let ids: Vec<String> = claimed.messages.iter().map(|m| m.message_id.clone()).collect();
        let confirmed = self.renewing_claim(&claimed.token, &ids, publish(claimed.messages)).await;
        let (mut sent, mut failed) = (Vec::new(), Vec::new());
        for (index, id) in ids.into_iter().enumerate() {
            if confirmed.get(index).copied().unwrap_or(false) {
                sent.push(id);
            } else {
                failed.push(id);
            }
        }
        if !failed.is_empty() {
            outbox::Entity::update_many()
                .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
                .col_expr(outbox::Column::ClaimToken, Expr::value(Option::<String>::None))
                .col_expr(outbox::Column::ClaimedUntil, Expr::value(Option::<DateTime<Utc>>::None))
                .filter(outbox::Column::MessageId.is_in(failed.iter().map(String::as_str)))
                .exec(&self.db)
                .await?;
        }
        Ok(RelayPass { sent, failed: failed.len() })
    }

    /// Deletes messages the bus confirmed.
    pub async fn delete_published(&self, message_ids: &[String]) -> Result<(), StoreError> {
        if !message_ids.is_empty() {
            outbox::Entity::delete_many()
                .filter(outbox::Column::MessageId.is_in(message_ids.iter().map(String::as_str)))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// One claim, publish and delete: [`Store::claim_outbox`], [`Store::publish_claimed`]
    /// and [`Store::delete_published`] in a row. Returns how many were published.
    pub async fn relay_outbox<F, Fut>(&self, limit: u64, publish: F) -> Result<usize, StoreError>
    where
        F: FnOnce(Vec<BusMessage>) -> Fut,
        Fut: Future<Output = Vec<bool>>,
    {
        let Some(claimed) = self.claim_outbox(limit).await? else {
            return Ok(0);
        };
        let pass = self.publish_claimed(claimed, publish).await?;
        self.delete_published(&pass.sent).await?;
        Ok(pass.sent.len())
    }

    /// Runs `publishing` while renewing the lease of the messages `ids` claimed with `token`.
    async fn renewing_claim<Fut: Future<Output = Vec<bool>>>(
        &self,
        token: &str,
        ids: &[String],
        publishing: Fut,
    ) -> Vec<bool> {
        let mut publishing = std::pin::pin!(publishing);
        loop {
            tokio::select! {
                confirmed = &mut publishing => return confirmed,
                _ = tokio::time::sleep(CLAIM_RENEWAL) => {
                    let renewed = self.renew_claim(token, ids.iter().map(String::as_str), crate::now()).await;
                    if let Err(err) = renewed {
                        // Another relay may publish the rows too: at least once still holds.
                        tracing::warn!(error = %err, "outbox claim not renewed");
                    }
                }
            }
        }
    }

    /// Extends the lease of the messages `ids` still claimed with `token`; returns how many.
    async fn renew_claim<'a>(
        &self,
        token: &str,
        ids: impl IntoIterator<Item = &'a str>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let renewed = outbox::Entity::update_many()
            .col_expr(outbox::Column::ClaimedUntil, Expr::value(now + CLAIM_LEASE))
            .filter(outbox::Column::ClaimToken.eq(token))
            .filter(outbox::Column::MessageId.is_in(ids))
            .exec(&self.db)
            .await?;
        Ok(renewed.rows_affected)
    }

    /// Age of the oldest unsent message (zero when the outbox is empty).
    pub async fn outbox_lag(&self, now: DateTime<Utc>) -> Result<TimeDelta, StoreError> {
        let oldest: Option<outbox::Model> =
            outbox::Entity::find().order_by_asc(outbox::Column::Id).one(&self.db).await?;
        Ok(oldest.map_or(TimeDelta::zero(), |row| (now - row.created_at).max(TimeDelta::zero())))
    }
}
