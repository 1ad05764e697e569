use sea_orm::entity::prelude::*;

/// A message to publish on the bus, written in the same transaction as its cause.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub message_id: String,
    /// e.g. "ticket.created".
    pub routing_key: String,
    /// Protobuf-encoded `propdesk.v1.TicketEvent`.
    pub payload: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub attempts: i32,
    /// SQLite only: the relay pass that holds this row, until `claimed_until`.
    pub claim_token: Option<String>,
    pub claimed_until: Option<DateTimeUtc>,
    /// The W3C `traceparent` of the work that wrote it, if traced.
    pub trace_parent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
