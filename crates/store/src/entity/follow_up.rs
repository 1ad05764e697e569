use propdesk_domain::follow_up::{FollowUpKind, FollowUpState, ReplyMethod};
use sea_orm::entity::prelude::*;

/// Work owed to the resident after resolution: the reply in the channel the request came
/// in (a letter to the unit's address, an app message, a call) or the 48-hour callback.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "follow_ups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub ticket_id: String,
    /// `reply` or `callback`.
    pub kind: String,
    /// How: a `ReplyMethod` code.
    pub channel: String,
    /// Who must do it (the first-contact agent by default).
    pub owner_id: Option<String>,
    pub due_by: Option<DateTimeUtc>,
    /// Where to: the unit's postal address for a letter, the unit label otherwise.
    pub destination: String,
    /// `open`, `done` or `cancelled`.
    pub state: String,
    pub created_at: DateTimeUtc,
    pub done_at: Option<DateTimeUtc>,
    pub done_by: Option<String>,
    pub note: String,
    /// What it is about within the ticket: for a chase, the case party chased.
    pub subject_id: Option<String>,
}

impl Model {
    /// The kind, unless the stored code is one this release does not know.
    pub fn kind(&self) -> Option<FollowUpKind> {
        self.kind.parse().ok()
    }

    pub fn method(&self) -> Option<ReplyMethod> {
        self.channel.parse().ok()
    }

    pub fn state(&self) -> Option<FollowUpState> {
        self.state.parse().ok()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
