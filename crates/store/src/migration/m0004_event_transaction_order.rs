//! The writing transaction of each history event, so watchers can follow commits in an
//! order with no gaps on PostgreSQL (see `Store::events_after`). SQLite has one writer, so
//! its sequence ids already commit in order; there the column stays 0.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_event_transaction_order"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            // Evaluated inside the inserting transaction: its own transaction id.
            db.execute_unprepared(
                "ALTER TABLE ticket_events ADD COLUMN tx_id bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)",
            )
            .await?;
        } else {
            db.execute_unprepared("ALTER TABLE ticket_events ADD COLUMN tx_id bigint NOT NULL DEFAULT 0").await?;
        }
        db.execute_unprepared("CREATE INDEX ticket_events_tx_order ON ticket_events (tx_id, id)").await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
