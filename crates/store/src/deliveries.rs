//! Notifications and their delivery state: written in the transaction of their cause,
//! claimed by a deliverer under a lease (so replicas never send one at the same time),
//! retried with back-off, dead after the configured attempts, replayable.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::sea_query::{Condition, Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use propdesk_domain::follow_up::DeliveryState;
use propdesk_domain::ladder::Recipient;

use crate::entity::notification;
use crate::sealing;
use crate::{Store, StoreError};

/// The body's seal: a resident's message carries their phone to the gateway that sends it.
const BODY: &str = "notifications.body";

/// A stored notification with its body opened.
fn opened(mut row: notification::Model) -> Result<notification::Model, StoreError> {
    row.body = sealing::ring()?.open(BODY, &row.body)?;
    Ok(row)
}

/// The stored code of a delivery waiting for an attempt.
const PENDING: &str = DeliveryState::Pending.code();

/// A notification to one recipient through one sink.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// The delivery id receivers drop duplicates by.
    pub id: String,
    pub ticket_id: Option<String>,
    pub property_id: String,
    pub recipient_id: Option<String>,
    pub recipient_role: Recipient,
    pub subject: String,
    /// `log` or `webhook`.
    pub sink: String,
    /// The webhook URL (empty for the log sink).
    pub target: String,
    /// The JSON document sent.
    pub body: String,
    /// Delivered as it is written (the log sink); otherwise pending its first attempt.
    pub delivered: bool,
    /// When it was raised (and, pending, when it is first due).
    pub at: DateTime<Utc>,
}

/// Adds notifications inside the caller's transaction (one statement).
pub async fn insert_notifications(
    txn: &impl ConnectionTrait,
    notifications: Vec<NewNotification>,
) -> Result<(), StoreError> {
    if notifications.is_empty() {
        return Ok(());
    }
    let keys = sealing::ring()?;
    let mut rows = Vec::with_capacity(notifications.len());
    for n in notifications {
        let state = if n.delivered { DeliveryState::Delivered } else { DeliveryState::Pending };
        let now = n.at;
        let row = notification::Model {
            id: n.id,
            ticket_id: n.ticket_id,
            property_id: n.property_id,
            recipient_id: n.recipient_id,
            recipient_role: n.recipient_role.code().to_owned(),
            subject: n.subject,
            sink: n.sink,
            target: n.target,
            body: keys.seal(BODY, &n.body)?,
            state: state.code().to_owned(),
            attempts: i32::from(n.delivered),
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            delivered_at: n.delivered.then_some(now),
            claimed_until: None,
        };
        rows.push(row.into_active_model().reset_all());
    }
    notification::Entity::insert_many(rows).exec_without_returning(txn).await.map_err(StoreError::from_write)?;
    Ok(())
}

/// What to list. `property_ids: None`: every property.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub property_ids: Option<Vec<String>>,
    pub state: Option<DeliveryState>,
    pub ticket_id: Option<String>,
    /// Cursor: only ids strictly below this one (UUIDv7, time ordered).
    pub before_id: Option<String>,
    pub limit: u64,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone)]
pub enum Attempt {
    Delivered,
    /// Try again at `retry_at`, or give up (`None`): the delivery is dead.
    Failed {
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

impl Store {
    /// Claims up to `limit` pending deliveries due at `now` for `lease`: nobody else takes
    /// them until the lease ends or the attempt is recorded.
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: TimeDelta,
        limit: u64,
    ) -> Result<Vec<notification::Model>, StoreError> {
        use notification::Column as C;
        let claimable = || {
            Condition::all()
                .add(C::State.eq(PENDING))
                .add(C::NextAttemptAt.lte(now))
                .add(Condition::any().add(C::ClaimedUntil.is_null()).add(C::ClaimedUntil.lt(now)))
        };
        let mut due = Query::select();
        due.column(C::Id)
            .from(notification::Entity)
            .cond_where(claimable())
            .order_by(C::NextAttemptAt, sea_orm::sea_query::Order::Asc)
            .limit(limit);
        if self.backend() == DbBackend::Postgres {
            due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        // The outer condition is checked again on the row a concurrent claim left behind,
        // so two replicas never both win one row.
        notification::Entity::update_many()
            .col_expr(C::ClaimedUntil, Expr::value(now + lease))
            .filter(C::Id.in_subquery(due.to_owned()))
            .filter(claimable())
            .exec_with_returning(&self.db)
            .await?
            .into_iter()
            .map(opened)
            .collect()
    }

    /// Records an attempt of a claimed delivery and releases the claim.
    pub async fn record_attempt(&self, id: &str, attempt: Attempt, now: DateTime<Utc>) -> Result<(), StoreError> {
        let row = notification::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(StoreError::NotFound("delivery"))?;
        let mut active = row.clone().into_active_model();
        active.attempts = Set(row.attempts + 1);
        active.claimed_until = Set(None);
        match attempt {
            Attempt::Delivered => {
                active.state = Set(DeliveryState::Delivered.code().to_owned());
                active.delivered_at = Set(Some(now));
                active.last_error = Set(None);
            }
            Attempt::Failed { error, retry_at: Some(at) } => {
                active.next_attempt_at = Set(at);
                active.last_error = Set(Some(error));
            }
            Attempt::Failed { error, retry_at: None } => {
                active.state = Set(DeliveryState::Dead.code().to_owned());
                active.last_error = Set(Some(error));
            }
        }
        active.update(&self.db).await?;
        Ok(())
    }

    /// When the next pending delivery is due, if any.
    pub async fn next_delivery_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(notification::Entity::find()
            .select_only()
            .column(notification::Column::NextAttemptAt)
            .filter(notification::Column::State.eq(PENDING))
            .order_by_asc(notification::Column::NextAttemptAt)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?)
    }

    /// One page of deliveries, newest first.
    pub async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<notification::Model>, StoreError> {
        use notification::Column as C;
        let mut query = notification::Entity::find();
        if let Some(ids) = &filter.property_ids {
            query = query.filter(C::PropertyId.is_in(ids.iter().cloned()));
        }
        if let Some(state) = &filter.state {
            query = query.filter(C::State.eq(state.code()));
        }
        if let Some(ticket_id) = &filter.ticket_id {
            query = query.filter(C::TicketId.eq(ticket_id.as_str()));
        }
        if let Some(before) = &filter.before_id {
            query = query.filter(C::Id.lt(before.as_str()));
        }
        query.order_by_desc(C::Id).limit(filter.limit).all(&self.db).await?.into_iter().map(opened).collect()
    }

    pub async fn get_delivery(&self, id: &str) -> Result<Option<notification::Model>, StoreError> {
        notification::Entity::find_by_id(id.to_owned()).one(&self.db).await?.map(opened).transpose()
    }

    /// Makes a delivery pending again with a fresh attempt count, due now; it keeps its id.
    pub async fn replay_delivery(&self, id: &str, now: DateTime<Utc>) -> Result<notification::Model, StoreError> {
        // The body is not written back (only the fields set here are).
        let row = self.get_delivery(id).await?.ok_or(StoreError::NotFound("delivery"))?;
        let mut active = row.into_active_model();
        active.state = Set(PENDING.to_owned());
        active.attempts = Set(0);
        active.next_attempt_at = Set(now);
        active.claimed_until = Set(None);
        active.delivered_at = Set(None);
        let updated = active.update(&self.db).await?;
        self.notify_commit();
        opened(updated)
    }

    /// The messages sent to the residents of these tickets, oldest first, bodies opened.
    pub async fn resident_messages(&self, ticket_ids: &[String]) -> Result<Vec<notification::Model>, StoreError> {
        let mut messages = Vec::new();
        for chunk in ticket_ids.chunks(500) {
            let query = notification::Entity::find().filter(sent_to_residents(chunk));
            for row in query.order_by_asc(notification::Column::Id).all(&self.db).await? {
                messages.push(opened(row)?);
            }
        }
        Ok(messages)
    }

    /// Empties the messages sent to the residents of these tickets (their text carried the
    /// resident's phone to the gateway); the deliveries themselves stay, for the record.
    pub async fn erase_resident_messages(&self, ticket_ids: &[String]) -> Result<u64, StoreError> {
        let mut erased = 0;
        for chunk in ticket_ids.chunks(500) {
            let result = notification::Entity::update_many()
                .col_expr(notification::Column::Body, Expr::value(""))
                .filter(sent_to_residents(chunk))
                .exec(&self.db)
                .await?;
            erased += result.rows_affected;
        }
        Ok(erased)
    }
}

/// Notifications of these tickets addressed to their residents.
fn sent_to_residents(ticket_ids: &[String]) -> Condition {
    use notification::Column as C;
    Condition::all()
        .add(C::TicketId.is_in(ticket_ids.iter().cloned()))
        .add(C::RecipientRole.eq(Recipient::Resident.code()))
}
