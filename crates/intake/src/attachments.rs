//! AttachmentService: files on tickets, kept in object storage.
//!
//! An upload is parsed, authorized as the ticket is, cleaned (type from the bytes,
//! metadata stripped, thumbnail made; on a blocking thread, a few at a time), refused
//! early if the ticket is full, written to the store, and only then recorded by the
//! ticket's save. A failed save removes the bytes it wrote; a process that dies before
//! its save leaves bytes no row names, which the orphan sweep removes later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use propdesk_domain::attachment::{Attachment, FileName, ThumbnailFacts};
use propdesk_domain::validation::MAX_NOTE;
use propdesk_domain::{Actor, By, Operation, Ticket, Violations};
use propdesk_files::{Cleaned, FileError};
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ErrorReason;
use propdesk_proto::v1::attachment_service_server::AttachmentService;
use propdesk_store::attachments::StoredAttachment;
use propdesk_store::blobs::{BlobError, Blobs};
use propdesk_store::{Change, StoreError};
use tokio::sync::Semaphore;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::IntakeState;
use crate::auth::actor;
use crate::convert::{sha256_hex, ticket_to_wire, timestamp};
use crate::error::{ApiError, ApiResult};
use crate::tickets::TicketApi;

/// The most a downloaded message carries.
pub const DOWNLOAD_CHUNK: usize = 256 * 1024;
/// Room for the request's other fields beside the file, in the message-size limit.
pub const REQUEST_OVERHEAD: usize = 64 * 1024;
/// Saves retried when the ticket changed between load and save.
const SAVE_ATTEMPTS: usize = 4;

/// What uploads may be.
#[derive(Debug, Clone)]
pub struct AttachmentLimits {
    pub max_bytes: usize,
    pub max_per_ticket: u32,
    /// Uploads per minute per staff member, with `upload_burst` at once.
    pub uploads_per_minute: u32,
    pub upload_burst: u32,
    pub files: propdesk_files::Limits,
}

impl Default for AttachmentLimits {
    fn default() -> Self {
        AttachmentLimits {
            max_bytes: 10 * 1024 * 1024,
            max_per_ticket: 20,
            uploads_per_minute: 30,
            upload_burst: 10,
            files: propdesk_files::Limits::default(),
        }
    }
}

/// The attachment store and what bounds its use.
pub struct Attachments {
    pub blobs: Blobs,
    pub limits: AttachmentLimits,
    uploads: UploadRate,
    /// Cleaning decodes pictures: at most one per core at a time, which bounds memory too.
    cleaning: Semaphore,
}

impl Attachments {
    pub fn new(blobs: Blobs, limits: AttachmentLimits) -> Attachments {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let uploads = UploadRate::new(limits.uploads_per_minute, limits.upload_burst);
        Attachments { blobs, limits, uploads, cleaning: Semaphore::new(cores) }
    }
}

/// Per-staff token buckets: `burst` uploads at once, refilled at `per_minute`. Kept per
/// intake replica (a staff member's calls spread over replicas get each replica's rate).
struct UploadRate {
    per_minute: u32,
    burst: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl UploadRate {
    fn new(per_minute: u32, burst: u32) -> UploadRate {
        UploadRate { per_minute, burst: burst.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one upload from `staff_id`'s bucket, or says how long until one is free.
    fn take(&self, staff_id: &str, now: Instant) -> Result<(), Duration> {
        let per_second = f64::from(self.per_minute) / 60.0;
        let burst = f64::from(self.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Full buckets are forgotten, so the map holds only recent uploaders.
        buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_second < burst);
        let (tokens, at) = buckets.entry(staff_id.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        if per_second <= 0.0 {
            return Err(Duration::from_secs(60));
        }
        Err(Duration::from_secs_f64((1.0 - *tokens) / per_second))
    }
}

pub struct AttachmentApi {
    state: Arc<IntakeState>,
    tickets: TicketApi,
}

impl AttachmentApi {
    pub fn new(state: Arc<IntakeState>) -> Self {
        AttachmentApi { tickets: TicketApi::new(state.clone()), state }
    }

    fn attachments(&self) -> ApiResult<&Attachments> {
        self.state.attachments.as_ref().ok_or_else(|| ApiError::Unavailable {
            reason: ErrorReason::StorageUnavailable,
            message: "file storage is not configured on this server (attachments.store)".into(),
        })
    }

    /// The attachment, if the caller may read its ticket.
    async fn readable(&self, actor: &Actor, attachment_id: &str) -> ApiResult<StoredAttachment> {
        let mut violations = Violations::new();
        let id = violations.required_id("attachment_id", attachment_id);
        violations.into_result()?;
        let id = id.unwrap_or_default();
        let stored = self.state.store.attachment(&id).await?.ok_or(ApiError::NotFound("attachment"))?;
        actor.authorize(&stored.attachment.property_id, Operation::ReadTickets, false)?;
        Ok(stored)
    }

    async fn add(&self, actor: &Actor, body: pb::AddAttachmentRequest) -> ApiResult<pb::AddAttachmentResponse> {
        let attachments = self.attachments()?;
        let limits = &attachments.limits;
        let mut violations = Violations::new();
        let ticket_id = violations.required_id("ticket_id", &body.ticket_id);
        let event_id = violations.optional_id("event_id", &body.event_id);
        let file_name = FileName::parse(&body.file_name).map_err(|why| violations.add("file_name", why)).ok();
        violations.optional_text("caption", &body.caption, MAX_NOTE);
        violations.into_result()?;
        let (ticket_id, file_name) = (ticket_id.unwrap_or_default(), file_name.ok_or(internal("file name"))?);
        if body.content.is_empty() {
            return Err(ApiError::field_as(ErrorReason::EmptyFile, "content", FileError::Empty.to_string()));
        }
        if body.content.len() > limits.max_bytes {
            let limit = limits.max_bytes;
            let size = body.content.len();
            let why = format!("is {size} bytes; files may be at most {limit} bytes");
            return Err(ApiError::field_as(ErrorReason::FileTooLarge, "content", why));
        }

        let ticket = self.loaded(actor, &ticket_id).await?;
        if let Some(event_id) = &event_id
            && !self.state.store.is_event_of(&ticket_id, event_id).await?
        {
            return Err(ApiError::field("event_id", "is not a history event of this ticket"));
        }
        attachments.uploads.take(&actor.staff_id, Instant::now()).map_err(|retry_after| ApiError::RateLimited {
            reason: ErrorReason::UploadRateLimited,
            message: format!(
                "you may upload {} files a minute; try again in {} s",
                limits.uploads_per_minute,
                retry_after.as_secs().max(1)
            ),
            retry_after,
        })?;

        let cleaned = self.clean(attachments, body.content).await?;
        let sha256 = sha256_hex(&cleaned.bytes);
        if let Some(existing) = self.state.store.attachment_with_content(&ticket_id, &sha256).await? {
            return self.already_attached(actor, ticket, existing).await;
        }

        let id = uuid::Uuid::now_v7().to_string();
        let blobs = &attachments.blobs;
        let object_key = blobs.key(&ticket.property_id, &ticket_id, &id, false);
        let thumbnail = cleaned.thumbnail.as_ref().map(|t| ThumbnailFacts {
            object_key: blobs.key(&ticket.property_id, &ticket_id, &id, true),
            size_bytes: t.jpeg.len() as u64,
            width: t.width,
            height: t.height,
        });
        let now = propdesk_store::now();
        let file = Attachment {
            id,
            ticket_id: ticket_id.clone(),
            property_id: ticket.property_id.clone(),
            event_id,
            file_name,
            content_type: cleaned.file_type.mime().to_owned(),
            size_bytes: cleaned.bytes.len() as u64,
            sha256,
            object_key,
            thumbnail,
            caption: body.caption.trim().to_owned(),
            uploaded_by: actor.staff_id.clone(),
            created_at: now,
        };
        // The ticket decides first (a full ticket is refused before anything is written).
        let change = self.attach(actor, ticket, &file).await?;
        let written = self.write(blobs, &file, cleaned).await?;
        let saved = self.save(actor, &file, change).await;
        if !matches!(saved, Ok(Saved::New(_))) {
            discard(blobs, &written).await;
        }
        match saved? {
            Saved::New(ticket) => {
                // Committed: from here on a failure to answer leaves the file in place.
                let ticket = self.tickets.shown(actor, vec![ticket_to_wire(&ticket, actor)]).await?.remove(0);
                let stored = self.state.store.attachment(&file.id).await?.ok_or(internal("saved attachment"))?;
                Ok(pb::AddAttachmentResponse {
                    attachment: Some(attachment_to_wire(&stored)),
                    ticket: Some(ticket),
                    already_attached: false,
                })
            }
            Saved::SameBytesMeanwhile => {
                let existing = self.state.store.attachment_with_content(&ticket_id, &file.sha256).await?;
                let ticket = self.loaded(actor, &ticket_id).await?;
                self.already_attached(actor, ticket, existing.ok_or(internal("concurrent attachment"))?).await
            }
        }
    }

    /// Saves the ticket with the file's event; when the ticket changed since it was read,
    /// counts its files again on the new version and retries.
    async fn save(&self, actor: &Actor, file: &Attachment, mut change: Change) -> ApiResult<Saved> {
        for attempt in 1..=SAVE_ATTEMPTS {
            match self.state.store.save(vec![change]).await {
                Ok(saved) => {
                    let ticket = saved.into_iter().next().ok_or(internal("saved ticket"))?;
                    return Ok(Saved::New(Box::new(ticket)));
                }
                // Only the attachments' unique index can refuse this save's rows.
                Err(StoreError::Conflict(_)) => return Ok(Saved::SameBytesMeanwhile),
                Err(StoreError::StaleVersion { .. }) if attempt < SAVE_ATTEMPTS => {
                    let ticket = self.loaded(actor, &file.ticket_id).await?;
                    change = self.attach(actor, ticket, file).await?;
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(internal("ticket save retries"))
    }

    /// The ticket, if the caller may attach files to it.
    async fn loaded(&self, actor: &Actor, ticket_id: &str) -> ApiResult<Ticket> {
        let ticket = self.tickets.load(actor, ticket_id).await?;
        let is_assignee = ticket.assignee_id.as_deref() == Some(actor.staff_id.as_str());
        actor.authorize(&ticket.property_id, Operation::Attach, is_assignee)?;
        Ok(ticket)
    }

    /// The ticket's command, counting the files it has now.
    async fn attach(&self, actor: &Actor, mut ticket: Ticket, file: &Attachment) -> ApiResult<Change> {
        let attached = self.state.store.attachment_count(&ticket.id).await?;
        let max = self.attachments()?.limits.max_per_ticket;
        let by = By::staff(actor.staff_id.clone(), actor.role);
        let events = ticket.attach(file.clone(), attached, max, by, file.created_at)?;
        Ok(Change { ticket, events })
    }

    async fn clean(&self, attachments: &Attachments, content: Vec<u8>) -> ApiResult<Cleaned> {
        let _permit = attachments.cleaning.acquire().await.map_err(|_| ApiError::ShuttingDown)?;
        let limits = attachments.limits.files;
        let cleaned = tokio::task::spawn_blocking(move || propdesk_files::clean(&content, &limits))
            .await
            .map_err(|e| ApiError::Internal(format!("cleaning a file: {e}")))?;
        cleaned.map_err(refused_file)
    }

    /// Writes the file and its thumbnail; on failure removes what was written.
    async fn write(&self, blobs: &Blobs, file: &Attachment, cleaned: Cleaned) -> ApiResult<Vec<String>> {
        let mut written = Vec::new();
        let mut parts = vec![(file.object_key.clone(), cleaned.bytes)];
        if let (Some(facts), Some(thumbnail)) = (&file.thumbnail, cleaned.thumbnail) {
            parts.push((facts.object_key.clone(), thumbnail.jpeg));
        }
        for (key, bytes) in parts {
            if let Err(e) = blobs.put(&key, bytes).await {
                discard(blobs, &written).await;
                return Err(storage_unavailable(&e));
            }
            written.push(key);
        }
        Ok(written)
    }

    async fn already_attached(
        &self,
        actor: &Actor,
        ticket: Ticket,
        existing: StoredAttachment,
    ) -> ApiResult<pb::AddAttachmentResponse> {
        let ticket = self.tickets.shown(actor, vec![ticket_to_wire(&ticket, actor)]).await?.remove(0);
        Ok(pb::AddAttachmentResponse {
            attachment: Some(attachment_to_wire(&existing)),
            ticket: Some(ticket),
            already_attached: true,
        })
    }
}

/// How a file's save ended.
enum Saved {
    /// Recorded: the ticket as saved.
    New(Box<Ticket>),
    /// Another upload attached the same bytes to the ticket first.
    SameBytesMeanwhile,
}

/// Removes bytes a failed upload wrote (best effort: the orphan sweep gets the rest).
async fn discard(blobs: &Blobs, keys: &[String]) {
    for key in keys {
        if let Err(e) = blobs.delete(key).await {
            tracing::warn!(error = %e, "could not remove an unsaved attachment's bytes; the orphan sweep will");
        }
    }
}

fn internal(what: &str) -> ApiError {
    ApiError::Internal(format!("attachment: {what} missing"))
}

fn storage_unavailable(e: &BlobError) -> ApiError {
    tracing::warn!(error = %e, "file storage failed");
    ApiError::Unavailable {
        reason: ErrorReason::StorageUnavailable,
        message: "file storage cannot be reached now; nothing was kept, try again".into(),
    }
}

fn refused_file(err: FileError) -> ApiError {
    let reason = match err {
        FileError::Empty => ErrorReason::EmptyFile,
        FileError::Unsupported => ErrorReason::UnsupportedFileType,
        FileError::Truncated(_) | FileError::Corrupt { .. } => ErrorReason::DamagedFile,
        FileError::TooManyPixels { .. } => ErrorReason::ImageTooLarge,
    };
    ApiError::field_as(reason, "content", err.to_string())
}

pub fn attachment_to_wire(stored: &StoredAttachment) -> pb::Attachment {
    let a = &stored.attachment;
    let side = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    pb::Attachment {
        id: a.id.clone(),
        ticket_id: a.ticket_id.clone(),
        event_id: a.event_id.clone().unwrap_or_default(),
        added_event_id: stored.added_event_id.clone(),
        file_name: a.file_name.as_str().to_owned(),
        content_type: a.content_type.clone(),
        size_bytes: i64::try_from(a.size_bytes).unwrap_or(i64::MAX),
        sha256: a.sha256.clone(),
        caption: a.caption.clone(),
        thumbnail_width: a.thumbnail.as_ref().map_or(0, |t| side(t.width)),
        thumbnail_height: a.thumbnail.as_ref().map_or(0, |t| side(t.height)),
        uploaded_by: a.uploaded_by.clone(),
        created_at: Some(timestamp(a.created_at)),
    }
}

type DownloadStream = ReceiverStream<Result<pb::DownloadAttachmentResponse, Status>>;

#[tonic::async_trait]
impl AttachmentService for AttachmentApi {
    async fn add_attachment(
        &self,
        request: Request<pb::AddAttachmentRequest>,
    ) -> Result<Response<pb::AddAttachmentResponse>, Status> {
        let actor = actor(&request)?;
        Ok(Response::new(self.add(&actor, request.into_inner()).await?))
    }

    async fn list_attachments(
        &self,
        request: Request<pb::ListAttachmentsRequest>,
    ) -> Result<Response<pb::ListAttachmentsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let ticket_id = violations.required_id("ticket_id", &body.ticket_id);
        let event_id = violations.optional_id("event_id", &body.event_id);
        violations.into_result().map_err(ApiError::from)?;
        let ticket_id = ticket_id.unwrap_or_default();
        self.tickets.load(&actor, &ticket_id).await?;
        let found = self.state.store.attachments_of(&ticket_id, event_id.as_deref()).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListAttachmentsResponse { attachments: found.iter().map(attachment_to_wire).collect() }))
    }

    async fn get_attachment(
        &self,
        request: Request<pb::GetAttachmentRequest>,
    ) -> Result<Response<pb::Attachment>, Status> {
        let actor = actor(&request)?;
        let stored = self.readable(&actor, &request.get_ref().attachment_id).await?;
        Ok(Response::new(attachment_to_wire(&stored)))
    }

    type DownloadAttachmentStream = DownloadStream;

    async fn download_attachment(
        &self,
        request: Request<pb::DownloadAttachmentRequest>,
    ) -> Result<Response<DownloadStream>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = Violations::new();
        let variant = variant(&mut violations, body.variant);
        violations.into_result().map_err(ApiError::from)?;
        let blobs = self.attachments()?.blobs.clone();
        let stored = self.readable(&actor, &body.attachment_id).await?;
        let a = &stored.attachment;
        let (key, content_type, size) = match variant {
            pb::AttachmentVariant::Thumbnail => {
                let t = a.thumbnail.as_ref().ok_or(ApiError::NotFound("thumbnail"))?;
                (t.object_key.clone(), "image/jpeg".to_owned(), t.size_bytes)
            }
            _ => (a.object_key.clone(), a.content_type.clone(), a.size_bytes),
        };
        let mut bytes = blobs.get(&key).await.map_err(|e| storage_unavailable(&e))?;
        let header = pb::DownloadHeader {
            attachment: Some(attachment_to_wire(&stored)),
            content_type,
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let part = |part| Ok(pb::DownloadAttachmentResponse { part: Some(part) });
            if sender.send(part(pb::download_attachment_response::Part::Header(header))).await.is_err() {
                return;
            }
            // Pieces arrive in whatever sizes the store reads; each byte is copied once into
            // a message of DOWNLOAD_CHUNK bytes (the last one shorter).
            let mut pending: Vec<u8> = Vec::with_capacity(DOWNLOAD_CHUNK);
            while let Some(piece) = bytes.next().await {
                let mut piece = match piece {
                    Ok(piece) => piece,
                    Err(e) => {
                        let _ = sender.send(Err(Status::from(storage_unavailable(&e)))).await;
                        return;
                    }
                };
                while !piece.is_empty() {
                    let head = piece.split_to((DOWNLOAD_CHUNK - pending.len()).min(piece.len()));
                    pending.extend_from_slice(&head);
                    if pending.len() == DOWNLOAD_CHUNK {
                        let chunk = std::mem::replace(&mut pending, Vec::with_capacity(DOWNLOAD_CHUNK));
                        if sender.send(part(pb::download_attachment_response::Part::Chunk(chunk))).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if !pending.is_empty() {
                let _ = sender.send(part(pb::download_attachment_response::Part::Chunk(pending))).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// The variant asked for (ORIGINAL when unspecified).
fn variant(violations: &mut Violations, value: i32) -> pb::AttachmentVariant {
    match pb::AttachmentVariant::try_from(value) {
        Ok(pb::AttachmentVariant::Unspecified) => pb::AttachmentVariant::Original,
        Ok(known) => known,
        Err(_) => {
            violations.add("variant", format!("{value} is not an AttachmentVariant"));
            pb::AttachmentVariant::Original
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_limited_per_staff_member() {
        let rate = UploadRate::new(60, 2);
        let start = Instant::now();
        assert_eq!(rate.take("t1", start), Ok(()));
        assert_eq!(rate.take("t1", start), Ok(()));
        let wait = rate.take("t1", start).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(rate.take("t2", start), Ok(()), "another person has their own allowance");
        assert_eq!(rate.take("t1", start + Duration::from_secs(1)), Ok(()), "one a second comes back");
    }
}
