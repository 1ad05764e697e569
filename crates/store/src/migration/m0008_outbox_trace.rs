//! The trace an outbox message belongs to (its W3C `traceparent`), so the relay can hand it
//! to the bus and the worker that handles the message logs under the same trace.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::text_null;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_outbox_trace"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("outbox").add_column(text_null("trace_parent")).take()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
