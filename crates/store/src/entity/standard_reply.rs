use propdesk_domain::TicketKind;
use propdesk_domain::replies::{Edit, ReplyContent, StandardReply};
use sea_orm::entity::prelude::*;

use crate::entity::standard_reply_version;

/// A standard reply at its current version (earlier versions are in
/// `standard_reply_versions`). Lists are JSON arrays of strings.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "standard_replies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The property whose library holds it; empty for a company-wide reply (so the code
    /// is unique per library and language under one index).
    pub property_id: String,
    pub code: String,
    pub language: String,
    pub title: String,
    pub body: String,
    pub category_codes: String,
    /// `TicketKind` codes.
    pub kinds: String,
    pub keywords: String,
    pub active: bool,
    pub version: i64,
    /// How often it was sent, every version together.
    pub use_count: i64,
    pub created_at: DateTimeUtc,
    pub edited_by: String,
    pub edited_at: DateTimeUtc,
    pub edit_reason: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A stored list: a JSON array of strings (an unreadable one reads as empty).
pub(crate) fn read_list(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

pub(crate) fn write_list<T: AsRef<str>>(items: &[T]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".to_owned())
}

/// Kinds as stored (unknown codes, from a newer release, are left out).
pub(crate) fn read_kinds(json: &str) -> Vec<TicketKind> {
    read_list(json).iter().filter_map(|code| code.parse().ok()).collect()
}

pub(crate) fn write_kinds(kinds: &[TicketKind]) -> String {
    write_list(&kinds.iter().map(|k| k.code()).collect::<Vec<_>>())
}

/// The list columns of a stored reply or version.
struct Stored<'a> {
    category_codes: &'a str,
    kinds: &'a str,
    keywords: &'a str,
}

fn read_content(lists: Stored<'_>, title: String, body: String, language: String, active: bool) -> ReplyContent {
    ReplyContent {
        title,
        body,
        category_codes: read_list(lists.category_codes),
        kinds: read_kinds(lists.kinds),
        keywords: read_list(lists.keywords),
        language,
        active,
    }
}

impl Model {
    pub fn of(reply: &StandardReply) -> Model {
        let content = &reply.content;
        Model {
            id: reply.id.clone(),
            property_id: reply.property_id.clone().unwrap_or_default(),
            code: reply.code.clone(),
            language: content.language.clone(),
            title: content.title.clone(),
            body: content.body.clone(),
            category_codes: write_list(&content.category_codes),
            kinds: write_kinds(&content.kinds),
            keywords: write_list(&content.keywords),
            active: content.active,
            version: reply.version,
            use_count: reply.use_count,
            created_at: reply.created_at,
            edited_by: reply.edit.by.clone(),
            edited_at: reply.edit.at,
            edit_reason: reply.edit.reason.clone(),
        }
    }

    pub fn into_reply(self) -> StandardReply {
        StandardReply {
            property_id: (!self.property_id.is_empty()).then_some(self.property_id),
            content: read_content(
                Stored { category_codes: &self.category_codes, kinds: &self.kinds, keywords: &self.keywords },
                self.title,
                self.body,
                self.language,
                self.active,
            ),
            edit: Edit { by: self.edited_by, at: self.edited_at, reason: self.edit_reason },
            id: self.id,
            code: self.code,
            version: self.version,
            use_count: self.use_count,
            created_at: self.created_at,
        }
    }

    /// This reply as it was at an earlier `version`.
    pub fn at_version(&self, old: standard_reply_version::Model) -> StandardReply {
        let current = self.clone().into_reply();
        StandardReply {
            content: read_content(
                Stored { category_codes: &old.category_codes, kinds: &old.kinds, keywords: &old.keywords },
                old.title,
                old.body,
                old.language,
                old.active,
            ),
            version: old.version,
            edit: Edit { by: old.edited_by, at: old.edited_at, reason: old.edit_reason },
            ..current
        }
    }
}
