//! Corrections of logged tickets: where the current cycle's clocks count from (so a
//! corrected priority re-plans them), and each correction's fields before and after in its
//! history event.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{text_null, timestamp_with_time_zone_null};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0013_ticket_corrections"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table("tickets").add_column(timestamp_with_time_zone_null("clocks_from")).take(),
            )
            .await?;
        manager.alter_table(Table::alter().table("ticket_events").add_column(text_null("changes")).take()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
