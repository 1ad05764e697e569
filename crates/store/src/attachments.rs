//! Files on tickets: their rows (written with the ATTACHMENT_ADDED event that records
//! them, in the ticket's save) and the reads the desk and the orphan sweep need.

use std::collections::HashSet;

use propdesk_domain::attachment::{Attachment, FileName, ThumbnailFacts};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use crate::entity::{attachment, ticket_event};
use crate::work::Transaction;
use crate::{Store, StoreError};

/// The row of an attachment recorded by event `added_event_id`.
fn row(file: &Attachment, added_event_id: &str) -> attachment::ActiveModel {
    let thumbnail = file.thumbnail.as_ref();
    attachment::ActiveModel {
        id: Set(file.id.clone()),
        ticket_id: Set(file.ticket_id.clone()),
        property_id: Set(file.property_id.clone()),
        event_id: Set(file.event_id.clone()),
        added_event_id: Set(added_event_id.to_owned()),
        file_name: Set(file.file_name.as_str().to_owned()),
        content_type: Set(file.content_type.clone()),
        size_bytes: Set(i64::try_from(file.size_bytes).unwrap_or(i64::MAX)),
        sha256: Set(file.sha256.clone()),
        object_key: Set(file.object_key.clone()),
        thumbnail_key: Set(thumbnail.map(|t| t.object_key.clone())),
        thumbnail_size_bytes: Set(thumbnail.map(|t| i64::try_from(t.size_bytes).unwrap_or(i64::MAX))),
        thumbnail_width: Set(thumbnail.map(|t| i32::try_from(t.width).unwrap_or(i32::MAX))),
        thumbnail_height: Set(thumbnail.map(|t| i32::try_from(t.height).unwrap_or(i32::MAX))),
        caption: Set(file.caption.clone()),
        uploaded_by: Set(file.uploaded_by.clone()),
        created_at: Set(file.created_at),
    }
}

/// A stored attachment, with the event that recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAttachment {
    pub attachment: Attachment,
    pub added_event_id: String,
}

fn stored(row: attachment::Model) -> StoredAttachment {
    let thumbnail = match (row.thumbnail_key, row.thumbnail_size_bytes, row.thumbnail_width, row.thumbnail_height) {
        (Some(object_key), Some(size), Some(width), Some(height)) => Some(ThumbnailFacts {
            object_key,
            size_bytes: u64::try_from(size).unwrap_or_default(),
            width: u32::try_from(width).unwrap_or_default(),
            height: u32::try_from(height).unwrap_or_default(),
        }),
        _ => None,
    };
    StoredAttachment {
        attachment: Attachment {
            id: row.id,
            ticket_id: row.ticket_id,
            property_id: row.property_id,
            event_id: row.event_id,
            file_name: FileName::stored(row.file_name),
            content_type: row.content_type,
            size_bytes: u64::try_from(row.size_bytes).unwrap_or_default(),
            sha256: row.sha256,
            object_key: row.object_key,
            thumbnail,
            caption: row.caption,
            uploaded_by: row.uploaded_by,
            created_at: row.created_at,
        },
        added_event_id: row.added_event_id,
    }
}

/// Writes the rows of the files `events` add, inside the save's transaction. A file whose
/// bytes the ticket already has is refused by the unique index ([`StoreError::Conflict`]).
pub(crate) async fn insert(txn: &Transaction, added: Vec<(&Attachment, &str)>) -> Result<(), StoreError> {
    if added.is_empty() {
        return Ok(());
    }
    let rows = added.into_iter().map(|(file, event_id)| row(file, event_id));
    attachment::Entity::insert_many(rows).exec_without_returning(txn).await.map_err(StoreError::from_write)?;
    Ok(())
}

impl Store {
    /// A ticket's files, oldest first; only those of `event_id` when given.
    pub async fn attachments_of(
        &self,
        ticket_id: &str,
        event_id: Option<&str>,
    ) -> Result<Vec<StoredAttachment>, StoreError> {
        let mut query = attachment::Entity::find().filter(attachment::Column::TicketId.eq(ticket_id));
        if let Some(event_id) = event_id {
            query = query.filter(attachment::Column::EventId.eq(event_id));
        }
        let rows = query
            .order_by_asc(attachment::Column::CreatedAt)
            .order_by_asc(attachment::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(stored).collect())
    }

    pub async fn attachment(&self, id: &str) -> Result<Option<StoredAttachment>, StoreError> {
        Ok(attachment::Entity::find_by_id(id.to_owned()).one(&self.db).await?.map(stored))
    }

    /// The file on `ticket_id` with exactly these bytes, if any.
    pub async fn attachment_with_content(
        &self,
        ticket_id: &str,
        sha256: &str,
    ) -> Result<Option<StoredAttachment>, StoreError> {
        let row = attachment::Entity::find()
            .filter(attachment::Column::TicketId.eq(ticket_id))
            .filter(attachment::Column::Sha256.eq(sha256))
            .one(&self.db)
            .await?;
        Ok(row.map(stored))
    }

    /// How many files a ticket has.
    pub async fn attachment_count(&self, ticket_id: &str) -> Result<u32, StoreError> {
        let count =
            attachment::Entity::find().filter(attachment::Column::TicketId.eq(ticket_id)).count(&self.db).await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Whether `event_id` is a history event of `ticket_id`.
    pub async fn is_event_of(&self, ticket_id: &str, event_id: &str) -> Result<bool, StoreError> {
        let found = ticket_event::Entity::find()
            .select_only()
            .column(ticket_event::Column::Id)
            .filter(ticket_event::Column::EventId.eq(event_id))
            .filter(ticket_event::Column::TicketId.eq(ticket_id))
            .into_tuple::<i64>()
            .one(&self.db)
            .await?;
        Ok(found.is_some())
    }

    /// Which of `ids` are attachments with a row.
    pub async fn known_attachments(&self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut known = HashSet::new();
        for batch in ids.chunks(500) {
            let found: Vec<String> = attachment::Entity::find()
                .select_only()
                .column(attachment::Column::Id)
                .filter(attachment::Column::Id.is_in(batch.iter().cloned()))
                .into_tuple()
                .all(&self.db)
                .await?;
            known.extend(found);
        }
        Ok(known)
    }
}
