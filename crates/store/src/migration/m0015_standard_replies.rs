//! Standard replies (统一口径) with their earlier versions; what each reply to a resident
//! was (its method, the standard reply and version it came from); and a ticket's interim
//! measure, told to the resident with every notice, and when the resident was last
//! answered (a promised reply is kept by a reply); the language residents are told things
//! in; the urgent-word rule that raised a ticket; case records and their steps; referrals
//! in and out; serious-complaint reviews and causes of delay.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0015_standard_replies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("standard_replies")
                    .col(string_len("id", 36).primary_key())
                    .col(string_len("property_id", 36))
                    .col(string_len("code", 64))
                    .col(string_len("language", 16))
                    .col(text("title"))
                    .col(text("body"))
                    .col(text("category_codes"))
                    .col(text("kinds"))
                    .col(text("keywords"))
                    .col(boolean("active"))
                    .col(big_integer("version"))
                    .col(big_integer("use_count"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(string_len("edited_by", 64))
                    .col(timestamp_with_time_zone("edited_at"))
                    .col(text("edit_reason"))
                    .take(),
            )
            .await?;
        // One code per library and language; the library of a property is read whole.
        manager
            .create_index(
                Index::create()
                    .name("standard_replies_code")
                    .table("standard_replies")
                    .col("property_id")
                    .col("code")
                    .col("language")
                    .unique()
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("standard_reply_versions")
                    .col(string_len("reply_id", 36))
                    .col(big_integer("version"))
                    .col(string_len("language", 16))
                    .col(text("title"))
                    .col(text("body"))
                    .col(text("category_codes"))
                    .col(text("kinds"))
                    .col(text("keywords"))
                    .col(boolean("active"))
                    .col(string_len("edited_by", 64))
                    .col(timestamp_with_time_zone("edited_at"))
                    .col(text("edit_reason"))
                    .primary_key(Index::create().col("reply_id").col("version"))
                    .take(),
            )
            .await?;
        for column in [string_len_null("reply_method", 20), string_len_null("standard_reply_id", 36)] {
            let mut column = column;
            manager.alter_table(Table::alter().table("ticket_events").add_column(&mut column).take()).await?;
        }
        manager
            .alter_table(
                Table::alter().table("ticket_events").add_column(big_integer_null("standard_reply_version")).take(),
            )
            .await?;
        manager.alter_table(Table::alter().table("tickets").add_column(text_null("interim_measure")).take()).await?;
        // When the resident was last answered: a promised reply is kept by a reply.
        manager
            .alter_table(Table::alter().table("tickets").add_column(timestamp_with_time_zone_null("replied_at")).take())
            .await?;
        // The language a resident is told things in (unset: the default).
        manager
            .alter_table(Table::alter().table("residents").add_column(string_len_null("language", 16)).take())
            .await?;
        // The urgent-word rule that raised a ticket's priority.
        manager
            .alter_table(Table::alter().table("tickets").add_column(string_len_null("urgency_rule", 64)).take())
            .await?;
        // Case records of long matters, the time they waited on outside parties, and the
        // steps of their timelines.
        manager.alter_table(Table::alter().table("tickets").add_column(text_null("case_record")).take()).await?;
        manager.alter_table(Table::alter().table("tickets").add_column(big_integer_null("waited_secs")).take()).await?;
        manager.alter_table(Table::alter().table("ticket_events").add_column(text_null("case_step")).take()).await?;
        // Who referred a ticket; what a follow-up is about (a chased party).
        manager.alter_table(Table::alter().table("tickets").add_column(text_null("referral")).take()).await?;
        manager
            .alter_table(Table::alter().table("follow_ups").add_column(string_len_null("subject_id", 36)).take())
            .await?;
        // Serious-complaint reviews and causes of delay.
        manager
            .alter_table(Table::alter().table("tickets").add_column(integer_null("unsatisfied_callbacks")).take())
            .await?;
        manager.alter_table(Table::alter().table("tickets").add_column(text_null("review_record")).take()).await?;
        manager
            .alter_table(Table::alter().table("tickets").add_column(string_len_null("review_cause", 64)).take())
            .await?;
        manager.alter_table(Table::alter().table("tickets").add_column(string_len_null("delay_cause", 64)).take()).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
