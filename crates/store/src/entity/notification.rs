use propdesk_domain::follow_up::DeliveryState;
use sea_orm::entity::prelude::*;

/// One message to one recipient through one sink, with its delivery state. The id is the
/// event id receivers use to drop duplicates.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub ticket_id: Option<String>,
    pub property_id: String,
    /// The staff member, when the recipient is one.
    pub recipient_id: Option<String>,
    /// `assignee`, `first_contact`, `supervisor`, `manager`, `resident`.
    pub recipient_role: String,
    /// What it is about, e.g. `escalation.breach`, `ticket.dispatched`, `alert.no_one_on_duty`.
    pub subject: String,
    /// `webhook` or `log`.
    pub sink: String,
    /// The webhook URL (empty for the log sink).
    pub target: String,
    /// The JSON document sent.
    pub body: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
    /// A deliverer holds the row until then (so replicas do not send it twice at once).
    pub claimed_until: Option<DateTimeUtc>,
}

impl Model {
    /// The delivery state, unless the stored code is one this release does not know.
    pub fn state(&self) -> Option<DeliveryState> {
        self.state.parse().ok()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
