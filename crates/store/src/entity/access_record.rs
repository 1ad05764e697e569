use sea_orm::entity::prelude::*;

/// Who saw or changed a resident's personal data: one row per ticket or resident a
/// response showed unmasked, or a directory record of a resident written or erased.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_records")]
pub struct Model {
    /// Time-ordered (UUIDv7): the newest first is the id order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub staff_id: String,
    /// The staff member's role code at the time.
    pub role: String,
    /// The call, e.g. `/propdesk.v1.TicketService/GetTicket`.
    pub rpc: String,
    pub property_id: String,
    pub ticket_id: Option<String>,
    pub resident_id: Option<String>,
    /// `read` (shown unmasked), `create`, `update`, `erase` or `export` (a resident's record).
    pub action: String,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
