//! Retention of contact data: a property's own period (else the company's), and when a
//! finished ticket's contact data was replaced by the anonymous marker. The partial index
//! finds the finished tickets not yet anonymised, oldest first.

use sea_orm::ConnectionTrait;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0020_retention"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("properties").add_column(integer_null("contact_retention_days")).take())
            .await?;
        manager
            .alter_table(
                Table::alter().table("tickets").add_column(timestamp_with_time_zone_null("anonymised_at")).take(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX tickets_retention ON tickets (property_id, closed_at) \
                 WHERE anonymised_at IS NULL AND state IN ('closed', 'cancelled')",
            )
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
