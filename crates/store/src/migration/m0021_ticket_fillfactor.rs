//! Room on each page of `tickets` for the next version of its rows (PostgreSQL). A ticket
//! is updated several times in its first hour; an update that changes no indexed column
//! (a note, an escalation, a correction of free text) can then stay on its page as a HOT
//! update, touching none of the table's indexes. Pages written before keep their fill until
//! they are rewritten; new pages get the room. SQLite has no such setting.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0021_ticket_fillfactor"
    }
}

/// Percent of each page that inserts fill: the rest is kept for updated versions.
const FILLFACTOR: u8 = 80;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DbBackend::Postgres {
            db.execute_unprepared(&format!("ALTER TABLE tickets SET (fillfactor = {FILLFACTOR})")).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
