//! The access records: written in batches, listed newest first.

use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::access_record;
use crate::{Store, StoreError};

/// Which access records to list (all given conditions hold), newest first.
#[derive(Debug, Clone, Default)]
pub struct AccessFilter {
    pub staff_id: Option<String>,
    pub resident_id: Option<String>,
    pub ticket_id: Option<String>,
    /// Only these properties' records (`None`: all).
    pub property_ids: Option<Vec<String>>,
    /// Cursor: only ids strictly below this one.
    pub before_id: Option<String>,
    pub limit: u64,
}

impl Store {
    /// Writes access records in one statement.
    pub async fn insert_access_records(&self, records: Vec<access_record::Model>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let rows = records.into_iter().map(|r| r.into_active_model());
        access_record::Entity::insert_many(rows).exec_without_returning(&self.db).await?;
        Ok(())
    }

    pub async fn list_access_records(&self, filter: &AccessFilter) -> Result<Vec<access_record::Model>, StoreError> {
        use access_record::Column as C;
        let mut query = access_record::Entity::find();
        for (column, value) in
            [(C::StaffId, &filter.staff_id), (C::ResidentId, &filter.resident_id), (C::TicketId, &filter.ticket_id)]
        {
            if let Some(value) = value {
                query = query.filter(column.eq(value.as_str()));
            }
        }
        if let Some(ids) = &filter.property_ids {
            query = query.filter(C::PropertyId.is_in(ids.iter().cloned()));
        }
        if let Some(before) = &filter.before_id {
            query = query.filter(C::Id.lt(before.as_str()));
        }
        Ok(query.order_by_desc(C::Id).limit(filter.limit).all(&self.db).await?)
    }
}
