//! Follow-up tasks owed to residents after resolution: the reply in the channel of origin
//! and the callback.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};

use crate::entity::follow_up;
use crate::{Store, StoreError};

pub const OPEN: &str = "open";
pub const DONE: &str = "done";
pub const CANCELLED: &str = "cancelled";

pub async fn insert_follow_up(txn: &impl ConnectionTrait, task: follow_up::Model) -> Result<(), StoreError> {
    task.into_active_model().reset_all().insert(txn).await.map_err(StoreError::from_write)?;
    Ok(())
}

/// Sets open follow-ups matching `which` to `state`; returns how many.
async fn settle_where(
    txn: &impl ConnectionTrait,
    which: Condition,
    state: &str,
    by: &str,
    at: DateTime<Utc>,
    note: &str,
) -> Result<u64, StoreError> {
    let result = follow_up::Entity::update_many()
        .col_expr(follow_up::Column::State, Expr::value(state))
        .col_expr(follow_up::Column::DoneAt, Expr::value(at))
        .col_expr(follow_up::Column::DoneBy, Expr::value(by))
        .col_expr(follow_up::Column::Note, Expr::value(note))
        .filter(which)
        .filter(follow_up::Column::State.eq(OPEN))
        .exec(txn)
        .await?;
    Ok(result.rows_affected)
}

/// Settles every open follow-up of the ticket as `state`; returns how many.
pub async fn settle_follow_ups(
    txn: &impl ConnectionTrait,
    ticket_id: &str,
    state: &str,
    by: &str,
    at: DateTime<Utc>,
    note: &str,
) -> Result<u64, StoreError> {
    settle_where(txn, Condition::all().add(follow_up::Column::TicketId.eq(ticket_id)), state, by, at, note).await
}

/// Settles the ticket's open follow-ups of `kind` as `state`; returns how many.
pub async fn settle_open(
    txn: &impl ConnectionTrait,
    ticket_id: &str,
    kind: &str,
    state: &str,
    by: &str,
    at: DateTime<Utc>,
    note: &str,
) -> Result<u64, StoreError> {
    let which = Condition::all().add(follow_up::Column::TicketId.eq(ticket_id)).add(follow_up::Column::Kind.eq(kind));
    settle_where(txn, which, state, by, at, note).await
}

/// Marks one open reply follow-up of a ticket done; false when there is no such task.
pub async fn complete_reply(
    txn: &impl ConnectionTrait,
    ticket_id: &str,
    id: &str,
    by: &str,
    at: DateTime<Utc>,
    note: &str,
) -> Result<bool, StoreError> {
    let which = Condition::all()
        .add(follow_up::Column::Id.eq(id))
        .add(follow_up::Column::TicketId.eq(ticket_id))
        .add(follow_up::Column::Kind.eq("reply"));
    Ok(settle_where(txn, which, DONE, by, at, note).await? == 1)
}

impl Store {
    /// A ticket's follow-ups, oldest first.
    pub async fn follow_ups(&self, ticket_id: &str) -> Result<Vec<follow_up::Model>, StoreError> {
        Ok(follow_up::Entity::find()
            .filter(follow_up::Column::TicketId.eq(ticket_id))
            .order_by_asc(follow_up::Column::CreatedAt)
            .order_by_asc(follow_up::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// The follow-ups of several tickets (for list pages).
    pub async fn follow_ups_of(&self, ticket_ids: &[String]) -> Result<Vec<follow_up::Model>, StoreError> {
        if ticket_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(follow_up::Entity::find()
            .filter(follow_up::Column::TicketId.is_in(ticket_ids.iter().cloned()))
            .order_by_asc(follow_up::Column::CreatedAt)
            .order_by_asc(follow_up::Column::Id)
            .all(&self.db)
            .await?)
    }
}
