//! An index for "what is late right now": a property's tickets by state, so the overdue
//! list and counts read the open tickets only, not every ticket the property ever had.

use sea_orm_migration::prelude::*;

use super::index;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_open_by_property"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index("tickets", "tickets_property_state", &["property_id", "state"])).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
