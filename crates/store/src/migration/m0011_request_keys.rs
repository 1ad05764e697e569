//! Idempotency keys of directory creates (tickets keep theirs on the ticket row).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0011_request_keys"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("request_keys")
                    .col(string_len("caller_id", 64))
                    .col(string_len("request_id", 64))
                    .col(string_len("resource", 40))
                    .col(string_len("resource_id", 36))
                    .col(string_len("fingerprint", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("caller_id").col("request_id"))
                    .take(),
            )
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
