//! Dispatch asks, for every new report with a building, whether its building and category
//! has an open incident. Without an index of incidents that question read every ticket the
//! building ever logged in the category (the building-and-category index holds them all),
//! a cost that grows with the years a building is served. Incidents are a small part of the
//! tickets: a partial index of them alone answers it from a few entries. The look-up names
//! the predicate literally (`… AND "is_incident"`), not as a bound value, so both databases
//! can prove the partial index applies, PostgreSQL also in a generic prepared plan.

use sea_orm::ConnectionTrait;
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0022_open_incident_lookup"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = "CREATE INDEX tickets_incidents_by_building ON tickets (building_id, category, id) WHERE is_incident";
        manager.get_connection().execute_unprepared(sql).await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
