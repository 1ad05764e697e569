use sea_orm::entity::prelude::*;

/// One step of the escalation ladder for one clock of one ticket (see
/// `propdesk_domain::ladder`). Pending until it fires or its clock is met or moved; a fired
/// row stays, so the same step never fires twice in one clock cycle.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alarms")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub ticket_id: String,
    /// The ticket's `clock_cycle` when planned.
    pub cycle: i32,
    /// `propdesk_domain::ladder::Clock` code.
    pub clock: String,
    /// `propdesk_domain::ladder::Rung` code.
    pub rung: String,
    pub deadline_at: DateTimeUtc,
    pub fire_at: DateTimeUtc,
    pub level: i32,
    /// Comma-separated `Recipient` codes.
    pub recipients: String,
    pub pending: bool,
    pub fired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
