//! Sign-in through the company's identity provider: each staff member's identity there
//! (`external_id`, unique) and whether they still work here (`active`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0017_staff_sign_in"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("staff").add_column(string_len_null("external_id", 200)).take())
            .await?;
        manager.alter_table(Table::alter().table("staff").add_column(boolean("active").default(true)).take()).await?;
        // Every authenticated call finds its caller by this index (NULLs do not collide).
        manager.create_index(super::index("staff", "staff_external_id", &["external_id"]).unique().take()).await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
