//! Group incidents: a flag on the parent ticket, and the indexes that find recent reports
//! of a building and category, and recent resolutions of a unit and category.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_incidents"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table("tickets").add_column(boolean("is_incident").default(false).take()).take(),
            )
            .await?;
        let indexes = [
            Index::create()
                .name("tickets_building_category_created")
                .table("tickets")
                .col("building_id")
                .col("category")
                .col("created_at")
                .take(),
            Index::create().name("tickets_incident").table("tickets").col("incident_id").take(),
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
