//! Attachments: uploads of a 3 MiB phone photo (type check, EXIF strip, thumbnail, write
//! to the store, save) one at a time and eight at once, and streamed downloads, through a
//! real intake keeping files in a folder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use propdesk_proto::v1 as pb;
use propdesk_proto::v1::attachment_service_client::AttachmentServiceClient;
use tokio_stream::StreamExt;

use crate::BenchError;
use crate::desk::{authed, connect};
use crate::load::{self, LoadOutcome, LoadSpec, Pace};

/// A phone photo of about 3 MiB: 12 megapixels with a GPS position, taken turned.
pub fn phone_photo() -> Vec<u8> {
    propdesk_testkit::photos::jpeg_with_gps(4000, 3000, 6, 70)
}

/// Uploads `photo` to the tickets in turn (a new ticket each time, so no upload is a
/// repeat of one already kept), `concurrency` at a time, for `window`.
pub async fn uploads(
    url: &str,
    token: &str,
    tickets: Arc<Vec<String>>,
    photo: Arc<Vec<u8>>,
    concurrency: usize,
    window: Duration,
) -> Result<LoadOutcome, BenchError> {
    let (channel, bearer) = connect(url, token).await?;
    let next = Arc::new(AtomicU64::new(0));
    let spec = LoadSpec { pace: Pace::Closed { concurrency }, warmup: Duration::from_secs(2), duration: window };
    Ok(load::drive(spec, move |_| {
        let mut files = AttachmentServiceClient::new(channel.clone()).max_decoding_message_size(usize::MAX);
        let ticket_id = tickets[next.fetch_add(1, Ordering::Relaxed) as usize % tickets.len()].clone();
        let request = pb::AddAttachmentRequest {
            ticket_id,
            file_name: "漏水.jpg".into(),
            content: photo.as_ref().clone(),
            ..Default::default()
        };
        let request = authed(&bearer, request);
        async move {
            match files.add_attachment(request).await {
                Ok(added) if added.get_ref().already_attached => Err("already attached".to_owned()),
                Ok(_) => Ok(()),
                Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
            }
        }
    })
    .await)
}

/// Downloads `attachment_id` whole, one at a time, for `window`; returns the outcome and
/// the bytes each download carried.
pub async fn downloads(
    url: &str,
    token: &str,
    attachment_id: &str,
    window: Duration,
) -> Result<(LoadOutcome, u64), BenchError> {
    let (channel, bearer) = connect(url, token).await?;
    let size = Arc::new(AtomicU64::new(0));
    let seen = size.clone();
    let id = attachment_id.to_owned();
    let spec = LoadSpec { pace: Pace::Closed { concurrency: 1 }, warmup: Duration::from_secs(1), duration: window };
    let outcome = load::drive(spec, move |_| {
        let mut files = AttachmentServiceClient::new(channel.clone());
        let request = authed(&bearer, pb::DownloadAttachmentRequest { attachment_id: id.clone(), variant: 0 });
        let seen = seen.clone();
        async move {
            let mut stream = files.download_attachment(request).await.map_err(|s| s.message().to_owned())?.into_inner();
            let mut bytes = 0u64;
            while let Some(part) = stream.next().await {
                if let Some(pb::download_attachment_response::Part::Chunk(chunk)) =
                    part.map_err(|s| s.message().to_owned())?.part
                {
                    bytes += chunk.len() as u64;
                }
            }
            seen.store(bytes, Ordering::Relaxed);
            Ok(())
        }
    })
    .await;
    Ok((outcome, size.load(Ordering::Relaxed)))
}

/// One upload, for the id of a file to download.
pub async fn upload_one(url: &str, token: &str, ticket_id: &str, photo: Vec<u8>) -> Result<String, BenchError> {
    let (channel, bearer) = connect(url, token).await?;
    let mut files = AttachmentServiceClient::new(channel);
    let request = pb::AddAttachmentRequest {
        ticket_id: ticket_id.to_owned(),
        file_name: "download.jpg".into(),
        content: photo,
        ..Default::default()
    };
    let added = files.add_attachment(authed(&bearer, request)).await.map_err(|s| BenchError::Setup(s.to_string()))?;
    added.into_inner().attachment.map(|a| a.id).ok_or_else(|| BenchError::Setup("no attachment came back".into()))
}
