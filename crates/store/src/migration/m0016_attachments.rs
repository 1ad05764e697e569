//! Files on tickets: one row per file (the bytes live in object storage under
//! `object_key`), unique per ticket and content, and the file an ATTACHMENT_ADDED event
//! added.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0016_attachments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("attachments")
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("ticket_id", 36))
                    .col(string_len("property_id", 36))
                    .col(string_len_null("event_id", 36))
                    .col(string_len("added_event_id", 36))
                    .col(text("file_name"))
                    .col(string_len("content_type", 64))
                    .col(big_integer("size_bytes"))
                    .col(string_len("sha256", 64))
                    .col(text("object_key"))
                    .col(text_null("thumbnail_key"))
                    .col(big_integer_null("thumbnail_size_bytes"))
                    .col(integer_null("thumbnail_width"))
                    .col(integer_null("thumbnail_height"))
                    .col(text("caption"))
                    .col(string_len("uploaded_by", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .take(),
            )
            .await?;
        // Identical bytes on one ticket are kept once; a ticket's files are read by this
        // index too.
        manager
            .create_index(
                super::index("attachments", "attachments_ticket_content", &["ticket_id", "sha256"]).unique().take(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table("ticket_events").add_column(string_len_null("attachment_id", 36)).take())
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
