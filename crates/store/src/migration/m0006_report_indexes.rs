//! Indexes for the service review: a property's tickets by when they were logged (and by
//! person), and the alarms fired in a period.

use sea_orm_migration::prelude::*;

use super::index;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_report_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index("tickets", "tickets_property_created", &["property_id", "created_at"])).await?;
        manager
            .create_index(index(
                "tickets",
                "tickets_property_assignee_created",
                &["property_id", "assignee_id", "created_at"],
            ))
            .await?;
        manager.create_index(index("alarms", "alarms_fired", &["fired_at"])).await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
