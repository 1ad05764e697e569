use sea_orm::entity::prelude::*;

/// Append-only ticket history. `id` is the global event order (the watch cursor).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ticket_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub event_id: String,
    pub ticket_id: String,
    pub event_type: String,
    pub actor_id: String,
    pub actor_role: Option<String>,
    pub from_state: Option<String>,
    pub to_state: String,
    pub note: String,
    pub occurred_at: DateTimeUtc,
    pub ticket_version: i64,
    pub property_id: String,
    pub department: Option<String>,
    pub assignee_id: Option<String>,
    pub priority: String,
    /// Why it happened, where the type alone does not say (`propdesk_domain::Cause`).
    pub cause: Option<String>,
    /// PostgreSQL: the id of the transaction that wrote the event (set by the database);
    /// SQLite: 0. Watch cursors are ordered by (`tx_id`, `id`).
    pub tx_id: i64,
    /// A correction's changes, as JSON `[{"field", "before", "after"}]`; empty otherwise.
    pub changes: Option<String>,
    /// A reply to the resident: how (`ReplyMethod` code).
    pub reply_method: Option<String>,
    /// A reply from a standard reply: which, at which version.
    pub standard_reply_id: Option<String>,
    pub standard_reply_version: Option<i64>,
    /// A case step, as JSON (`propdesk_domain::case::CaseStep`).
    pub case_step: Option<String>,
    /// The file an ATTACHMENT_ADDED event added.
    pub attachment_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
