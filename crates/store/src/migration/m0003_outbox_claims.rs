//! Outbox claims by lease, for SQLite, where several processes (intake, dispatch) may share
//! one database file and `FOR UPDATE SKIP LOCKED` does not exist.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_outbox_claims"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("outbox").add_column(string_len_null("claim_token", 36)).take())
            .await?;
        manager
            .alter_table(
                Table::alter().table("outbox").add_column(timestamp_with_time_zone_null("claimed_until")).take(),
            )
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
