use sea_orm::entity::prelude::*;

/// The idempotency keys of directory creates: a retried create finds the record its first
/// attempt made. Written in the same transaction as the record.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "request_keys")]
pub struct Model {
    /// The staff member who sent the request: keys are theirs alone.
    #[sea_orm(primary_key, auto_increment = false)]
    pub caller_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: String,
    /// What was created, e.g. "unit".
    pub resource: String,
    pub resource_id: String,
    /// A digest of the request, so a key reused for another request is told apart.
    pub fingerprint: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
