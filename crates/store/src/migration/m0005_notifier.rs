//! The notifier's tables: alarms (the escalation ladder's timers), follow-up tasks (replies
//! in the channel of origin, callbacks) and notifications with their delivery state; and
//! the tickets' clock cycle.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use super::index;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_notifier"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("tickets").add_column(integer("clock_cycle").default(0)).take())
            .await?;
        let tables = [
            Table::create()
                .table("alarms")
                .col(big_pk_auto("id"))
                .col(string_len("ticket_id", 36))
                .col(integer("cycle"))
                .col(string_len("clock", 40))
                .col(string_len("rung", 40))
                .col(timestamp_with_time_zone("deadline_at"))
                .col(timestamp_with_time_zone("fire_at"))
                .col(integer("level"))
                .col(text("recipients"))
                .col(boolean("pending"))
                .col(timestamp_with_time_zone_null("fired_at"))
                .take(),
            Table::create()
                .table("follow_ups")
                .col(string_len("id", 36).primary_key())
                .col(string_len("ticket_id", 36))
                .col(string_len("kind", 40))
                .col(string_len("channel", 40))
                .col(string_len_null("owner_id", 36))
                .col(timestamp_with_time_zone_null("due_by"))
                .col(text("destination"))
                .col(string_len("state", 40))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("done_at"))
                .col(string_len_null("done_by", 64))
                .col(text("note"))
                .take(),
            Table::create()
                .table("notifications")
                .col(string_len("id", 36).primary_key())
                .col(string_len_null("ticket_id", 36))
                .col(string_len("property_id", 36))
                .col(string_len_null("recipient_id", 36))
                .col(string_len("recipient_role", 40))
                .col(string_len("subject", 100))
                .col(string_len("sink", 40))
                .col(text("target"))
                .col(text("body"))
                .col(string_len("state", 40))
                .col(integer("attempts"))
                .col(timestamp_with_time_zone("next_attempt_at"))
                .col(text_null("last_error"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("delivered_at"))
                .col(timestamp_with_time_zone_null("claimed_until"))
                .take(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }
        let indexes = [
            index("alarms", "alarms_step", &["ticket_id", "cycle", "clock", "rung"]).unique().take(),
            index("alarms", "alarms_due", &["pending", "fire_at"]),
            index("follow_ups", "follow_ups_ticket", &["ticket_id", "kind"]),
            index("notifications", "notifications_due", &["state", "next_attempt_at"]),
            index("notifications", "notifications_ticket", &["ticket_id"]),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
