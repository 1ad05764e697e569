//! Follow-up tasks owed to residents after resolution: the reply in the channel of origin
//! and the callback.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, NullOrdering, Order, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use propdesk_domain::follow_up::{FollowUpKind, FollowUpState, ReplyMethod};

use crate::entity::{follow_up, ticket};
use crate::{Store, StoreError};

/// A follow-up to open.
#[derive(Debug, Clone)]
pub struct NewFollowUp {
    pub ticket_id: String,
    pub kind: FollowUpKind,
    pub method: ReplyMethod,
    /// Who must do it (the first-contact agent by default).
    pub owner_id: Option<String>,
    pub due_by: Option<DateTime<Utc>>,
    /// Where to: the unit's postal address for a letter, the unit label otherwise.
    pub destination: String,
    /// Already done when opened (e.g. an enquiry answered at the desk).
    pub done: Option<Settled>,
    /// For a chase: the case party chased.
    pub subject_id: Option<String>,
}

/// Who settled a follow-up, when, and what they said.
#[derive(Debug, Clone)]
pub struct Settled {
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: String,
}

/// Opens a follow-up at `now` (done at once when `task.done` says so).
pub async fn insert_follow_up(
    txn: &impl ConnectionTrait,
    task: NewFollowUp,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let state = if task.done.is_some() { FollowUpState::Done } else { FollowUpState::Open };
    let row = follow_up::Model {
        id: uuid::Uuid::now_v7().to_string(),
        ticket_id: task.ticket_id,
        kind: task.kind.code().to_owned(),
        channel: task.method.code().to_owned(),
        owner_id: task.owner_id,
        due_by: task.due_by,
        destination: task.destination,
        state: state.code().to_owned(),
        created_at: now,
        done_at: task.done.as_ref().map(|d| d.at),
        done_by: task.done.as_ref().map(|d| d.by.clone()),
        note: task.done.map(|d| d.note).unwrap_or_default(),
        subject_id: task.subject_id,
    };
    row.into_active_model().reset_all().insert(txn).await.map_err(StoreError::from_write)?;
    Ok(())
}

/// Sets open follow-ups matching `which` to `state`; returns how many.
async fn settle_where(
    txn: &impl ConnectionTrait,
    which: Condition,
    state: FollowUpState,
    by: &str,
    at: DateTime<Utc>,
    note: &str,
) -> Result<u64, StoreError> {
    let result = follow_up::Entity::update_many()
        .col_expr(follow_up::Column::State, Expr::value(state.code()))
        .col_expr(follow_up::Column::DoneAt, Expr::value(at))
        .col_expr(follow_up::Column::DoneBy, Expr::value(by))
        .col_expr(follow_up::Column::Note, Expr::value(note))
        .filter(which)
        .filter(follow_up::Column::State.eq(FollowUpState::Open.code()))
        .exec(txn)
        .await?;
    Ok(result.rows_affected)
}

/// Settles every open follow-up of the ticket as `state`; returns how many.
pub async fn settle_follow_ups(
    txn: &impl ConnectionTrait,
    ticket_id: &str,
    state: FollowUpState,
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
    kind: FollowUpKind,
    state: FollowUpState,
    by: &str,
    at: DateTime<Utc>,
    note: &str,
) -> Result<u64, StoreError> {
    let which =
        Condition::all().add(follow_up::Column::TicketId.eq(ticket_id)).add(follow_up::Column::Kind.eq(kind.code()));
    settle_where(txn, which, state, by, at, note).await
}

/// Marks the open chase of a case party done; false when there is none.
pub async fn complete_chase(
    txn: &impl ConnectionTrait,
    ticket_id: &str,
    party_id: &str,
    by: &str,
    at: DateTime<Utc>,
    note: &str,
) -> Result<bool, StoreError> {
    let which = Condition::all()
        .add(follow_up::Column::TicketId.eq(ticket_id))
        .add(follow_up::Column::Kind.eq(FollowUpKind::Chase.code()))
        .add(follow_up::Column::SubjectId.eq(party_id));
    Ok(settle_where(txn, which, FollowUpState::Done, by, at, note).await? == 1)
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
        .add(follow_up::Column::Kind.is_in([FollowUpKind::Reply.code(), FollowUpKind::ReferrerReply.code()]));
    Ok(settle_where(txn, which, FollowUpState::Done, by, at, note).await? == 1)
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

/// Which follow-ups a worklist shows.
#[derive(Debug, Clone)]
pub struct FollowUpFilter {
    pub owner_id: String,
    /// Only follow-ups of tickets of these properties (`None`: every property).
    pub property_ids: Option<Vec<String>>,
    pub kind: Option<FollowUpKind>,
    pub state: FollowUpState,
    pub due_before: Option<DateTime<Utc>>,
    /// Only those due before this instant.
    pub overdue_at: Option<DateTime<Utc>>,
    /// The (due time, id) of the last row of the previous page.
    pub after: Option<(Option<DateTime<Utc>>, String)>,
    pub limit: u64,
}

impl Store {
    /// A page of an owner's follow-ups, soonest due first (those without a due time last),
    /// then by id.
    pub async fn list_follow_ups(&self, filter: &FollowUpFilter) -> Result<Vec<follow_up::Model>, StoreError> {
        use follow_up::Column as C;
        let mut query = follow_up::Entity::find()
            .filter(C::OwnerId.eq(filter.owner_id.as_str()))
            .filter(C::State.eq(filter.state.code()));
        if let Some(kind) = filter.kind {
            query = query.filter(C::Kind.eq(kind.code()));
        }
        if let Some(ids) = &filter.property_ids {
            let of_properties = Query::select()
                .column(ticket::Column::Id)
                .from(ticket::Entity)
                .and_where(ticket::Column::PropertyId.is_in(ids.iter().cloned()))
                .take();
            query = query.filter(C::TicketId.in_subquery(of_properties));
        }
        for before in [filter.due_before, filter.overdue_at].into_iter().flatten() {
            query = query.filter(C::DueBy.lt(before));
        }
        query = match &filter.after {
            Some((Some(due), id)) => query.filter(
                Condition::any()
                    .add(C::DueBy.gt(*due))
                    .add(Condition::all().add(C::DueBy.eq(*due)).add(C::Id.gt(id.as_str())))
                    .add(C::DueBy.is_null()),
            ),
            Some((None, id)) => query.filter(C::DueBy.is_null()).filter(C::Id.gt(id.as_str())),
            None => query,
        };
        Ok(query
            .order_by_with_nulls(C::DueBy, Order::Asc, NullOrdering::Last)
            .order_by_asc(C::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await?)
    }
}
