use propdesk_domain::replies::StandardReply;
use sea_orm::entity::prelude::*;

use crate::entity::standard_reply::{write_kinds, write_list};

/// An earlier version of a standard reply, kept when an edit replaced it: what residents
/// were told from it stays explained.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "standard_reply_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub reply_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i64,
    pub language: String,
    pub title: String,
    pub body: String,
    pub category_codes: String,
    pub kinds: String,
    pub keywords: String,
    pub active: bool,
    pub edited_by: String,
    pub edited_at: DateTimeUtc,
    pub edit_reason: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The snapshot of `reply` at its version.
    pub fn of(reply: &StandardReply) -> Model {
        let content = &reply.content;
        Model {
            reply_id: reply.id.clone(),
            version: reply.version,
            language: content.language.clone(),
            title: content.title.clone(),
            body: content.body.clone(),
            category_codes: write_list(&content.category_codes),
            kinds: write_kinds(&content.kinds),
            keywords: write_list(&content.keywords),
            active: content.active,
            edited_by: reply.edit.by.clone(),
            edited_at: reply.edit.at,
            edit_reason: reply.edit.reason.clone(),
        }
    }
}
