//! The record of who saw or changed residents' personal data, listed by staff member or by
//! resident, newest first.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0019_access_records"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("access_records")
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("staff_id", 64))
                    .col(string_len("role", 32))
                    .col(string_len("rpc", 128))
                    .col(string_len("property_id", 36))
                    .col(string_len_null("ticket_id", 36))
                    .col(string_len_null("resident_id", 36))
                    .col(string_len("action", 16))
                    .col(timestamp_with_time_zone("at"))
                    .take(),
            )
            .await?;
        for index in [
            super::index("access_records", "access_records_staff", &["staff_id", "id"]),
            super::index("access_records", "access_records_resident", &["resident_id", "id"]),
            super::index("access_records", "access_records_ticket", &["ticket_id", "id"]),
        ] {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
