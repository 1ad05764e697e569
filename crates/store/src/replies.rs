//! The libraries of standard replies: each reply at its current version, its earlier
//! versions, and how often it was sent (counted as the reply events are appended).

use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use propdesk_domain::replies::StandardReply;

use crate::entity::{standard_reply, standard_reply_version};
use crate::work::Transaction;
use crate::{Store, StoreError};

impl Store {
    /// Every reply agents at `property_id` may use, active or not: the property's own and
    /// the company-wide ones. A library is a few hundred replies: read whole, matched in
    /// memory (`propdesk_domain::replies::find`).
    pub async fn standard_replies_for(&self, property_id: &str) -> Result<Vec<StandardReply>, StoreError> {
        use standard_reply::Column as C;
        let rows = standard_reply::Entity::find()
            .filter(Condition::any().add(C::PropertyId.eq(property_id)).add(C::PropertyId.eq("")))
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(standard_reply::Model::into_reply).collect())
    }

    /// A reply at its current version.
    pub async fn standard_reply(&self, id: &str) -> Result<Option<StandardReply>, StoreError> {
        Ok(standard_reply::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .map(standard_reply::Model::into_reply))
    }

    /// A reply at `version` (its current one or an earlier one).
    pub async fn standard_reply_at(&self, id: &str, version: i64) -> Result<Option<StandardReply>, StoreError> {
        let Some(current) = standard_reply::Entity::find_by_id(id.to_owned()).one(&self.db).await? else {
            return Ok(None);
        };
        if current.version == version {
            return Ok(Some(current.into_reply()));
        }
        let old = standard_reply_version::Entity::find_by_id((id.to_owned(), version)).one(&self.db).await?;
        Ok(old.map(|old| current.at_version(old)))
    }

    /// A page of a reply's versions, newest first: those below `before` (all when `None`),
    /// at most `limit`.
    pub async fn standard_reply_versions(
        &self,
        id: &str,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<StandardReply>, StoreError> {
        use standard_reply_version::Column as C;
        let Some(current) = standard_reply::Entity::find_by_id(id.to_owned()).one(&self.db).await? else {
            return Ok(Vec::new());
        };
        let mut versions = Vec::new();
        if before.is_none_or(|below| current.version < below) {
            versions.push(current.clone().into_reply());
        }
        let below = std::cmp::min(before.unwrap_or(current.version), current.version);
        let older = standard_reply_version::Entity::find()
            .filter(C::ReplyId.eq(id))
            .filter(C::Version.lt(below))
            .order_by_desc(C::Version)
            .limit(limit)
            .all(&self.db)
            .await?;
        versions.extend(older.into_iter().map(|old| current.at_version(old)));
        versions.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(versions)
    }

    /// Saves `edited` (the next version of `previous`), keeping `previous` as an earlier
    /// version; [`StoreError::StaleVersion`] when the reply moved on meanwhile.
    pub async fn save_standard_reply(
        &self,
        previous: &StandardReply,
        edited: StandardReply,
    ) -> Result<StandardReply, StoreError> {
        use standard_reply::Column as C;
        let txn = self.begin().await?;
        let mut row = standard_reply::Model::of(&edited).into_active_model().reset_all();
        // The count moves with every reply sent: never written back from a stale read.
        row.not_set(C::UseCount);
        let updated = standard_reply::Entity::update_many()
            .set(row)
            .filter(C::Id.eq(previous.id.as_str()))
            .filter(C::Version.eq(previous.version))
            .exec(&txn.inner)
            .await
            .map_err(StoreError::from_write)?;
        if updated.rows_affected == 0 {
            let current = standard_reply::Entity::find_by_id(previous.id.clone()).one(&txn.inner).await?;
            return Err(match current {
                Some(current) => StoreError::StaleVersion { current: current.version },
                None => StoreError::NotFound("standard reply"),
            });
        }
        standard_reply_version::Model::of(previous).into_active_model().reset_all().insert(&txn.inner).await?;
        let saved = standard_reply::Entity::find_by_id(previous.id.clone())
            .one(&txn.inner)
            .await?
            .ok_or(StoreError::Vanished("a saved standard reply"))?;
        self.commit(txn).await?;
        Ok(saved.into_reply())
    }
}

/// The active replies a library defines under `code` for `property_id` (its own and the
/// company-wide ones, every language): `propdesk_domain::replies::for_language` picks one.
pub async fn replies_by_code(
    txn: &impl ConnectionTrait,
    property_id: &str,
    code: &str,
) -> Result<Vec<StandardReply>, StoreError> {
    use standard_reply::Column as C;
    let rows = standard_reply::Entity::find()
        .filter(Condition::any().add(C::PropertyId.eq(property_id)).add(C::PropertyId.eq("")))
        .filter(C::Code.eq(code))
        .filter(C::Active.eq(true))
        .all(txn)
        .await?;
    Ok(rows.into_iter().map(standard_reply::Model::into_reply).collect())
}

/// Counts the replies sent from standard replies, in the sending transaction.
pub(crate) async fn count_uses(txn: &Transaction, reply_ids: &[&str]) -> Result<(), StoreError> {
    use standard_reply::Column as C;
    for id in reply_ids {
        standard_reply::Entity::update_many()
            .col_expr(C::UseCount, Expr::col(C::UseCount).add(1))
            .filter(C::Id.eq(*id))
            .exec(txn)
            .await?;
    }
    Ok(())
}
