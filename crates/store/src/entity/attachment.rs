use sea_orm::entity::prelude::*;

/// A file on a ticket; its bytes are in object storage under `object_key` (and its
/// thumbnail's under `thumbnail_key`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attachments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub ticket_id: String,
    pub property_id: String,
    /// The history event the file belongs to, if any.
    pub event_id: Option<String>,
    /// The ATTACHMENT_ADDED event that recorded it.
    pub added_event_id: String,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub object_key: String,
    pub thumbnail_key: Option<String>,
    pub thumbnail_size_bytes: Option<i64>,
    pub thumbnail_width: Option<i32>,
    pub thumbnail_height: Option<i32>,
    pub caption: String,
    pub uploaded_by: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
