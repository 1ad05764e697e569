//! Why an event happened, where its type alone does not say (a reopen after an unsatisfied
//! callback, an escalation after a missed deadline): consumers read the cause instead of
//! guessing it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::text_null;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_event_cause"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("ticket_events").add_column(text_null("cause")).take()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
