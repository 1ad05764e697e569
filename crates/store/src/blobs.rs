//! The bytes of attachments, in object storage: a folder on the local filesystem
//! (embedded mode) or an S3-compatible bucket (MinIO, Ceph, Alibaba OSS, AWS) in
//! production, chosen by URL.
//!
//! A file's bytes are written before the row that names them commits, so a process that
//! dies in between leaves bytes no row names. [`Blobs::sweep_orphans`] removes those once
//! they are older than any upload could take.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::Store;

/// Where every attachment object lives, under the configured prefix.
const ROOT: &str = "attachments";
const THUMBNAIL_SUFFIX: &str = ".thumb.jpg";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("attachments.store: {0}")]
    Config(String),
    #[error("object storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

impl BlobError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BlobError::Storage(object_store::Error::NotFound { .. }))
    }
}

/// How to reach an S3-compatible service (the bucket and prefix come from the URL).
#[derive(Debug, Clone, Default)]
pub struct S3Access {
    /// e.g. `https://oss-cn-hangzhou.aliyuncs.com` or `http://minio:9000`; empty: AWS.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Virtual-hosted requests (`https://bucket.host/key`, which Alibaba OSS requires: the
    /// endpoint then names the bucket) instead of path-style ones (`https://host/bucket/key`,
    /// which self-hosted MinIO and Ceph serve without wildcard DNS).
    pub virtual_hosted_style: bool,
}

/// The attachment store.
#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl Blobs {
    /// `file:///absolute/folder` (a relative folder is taken from the working directory,
    /// and made if missing) or `s3://bucket/optional/prefix` reached with `s3`.
    pub fn open(url: &str, s3: &S3Access) -> Result<Blobs, BlobError> {
        if let Some(folder) = url.strip_prefix("file://") {
            let folder = std::path::absolute(folder).map_err(|e| BlobError::Config(format!("{folder}: {e}")))?;
            std::fs::create_dir_all(&folder).map_err(|e| BlobError::Config(format!("{}: {e}", folder.display())))?;
            let local = LocalFileSystem::new_with_prefix(&folder)?.with_automatic_cleanup(true);
            return Ok(Blobs { store: Arc::new(local), prefix: Path::default() });
        }
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(BlobError::Config(format!("`{url}` is neither file:// nor s3://")));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::Config("an s3:// URL needs a bucket".into()));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(if s3.region.is_empty() { "us-east-1" } else { s3.region.as_str() })
            .with_access_key_id(&s3.access_key_id)
            .with_secret_access_key(&s3.secret_access_key);
        if !s3.endpoint.is_empty() {
            builder = builder
                .with_endpoint(&s3.endpoint)
                .with_allow_http(s3.endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(s3.virtual_hosted_style);
        }
        let prefix = Path::parse(prefix).map_err(|e| BlobError::Config(format!("prefix `{prefix}`: {e}")))?;
        Ok(Blobs { store: Arc::new(builder.build()?), prefix })
    }

    /// The key of an attachment's bytes (or its thumbnail's): by property and ticket, so an
    /// operator can find, copy or remove one property's files.
    pub fn key(&self, property_id: &str, ticket_id: &str, attachment_id: &str, thumbnail: bool) -> String {
        let name = if thumbnail { format!("{attachment_id}{THUMBNAIL_SUFFIX}") } else { attachment_id.to_owned() };
        let path = self.prefix.clone().join(ROOT).join(property_id).join(ticket_id).join(name.as_str());
        path.to_string()
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.store.put(&Path::from(key), PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// The bytes under `key`, as they arrive.
    pub async fn get(&self, key: &str) -> Result<BoxStream<'static, Result<Bytes, BlobError>>, BlobError> {
        let found = self.store.get(&Path::from(key)).await?;
        Ok(found.into_stream().map_err(BlobError::from).boxed())
    }

    /// Removes `key`; one already gone is fine.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.remove(&Path::from(key)).await
    }

    async fn remove(&self, location: &Path) -> Result<(), BlobError> {
        match self.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the objects no attachment row names that were written before `before`
    /// (an upload still in flight is younger). Returns how many were removed.
    pub async fn sweep_orphans(&self, store: &Store, before: DateTime<Utc>) -> Result<usize, BlobError> {
        let root = self.prefix.clone().join(ROOT);
        let mut candidates: Vec<(Path, String)> = Vec::new();
        let mut listing = self.store.list(Some(&root));
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if meta.last_modified >= before {
                continue;
            }
            let Some(name) = meta.location.filename() else { continue };
            let id = name.strip_suffix(THUMBNAIL_SUFFIX).unwrap_or(name).to_owned();
            candidates.push((meta.location, id));
        }
        let ids: Vec<String> = candidates.iter().map(|(_, id)| id.clone()).collect();
        let known = store.known_attachments(&ids).await?;
        let mut removed = 0;
        for (location, id) in candidates {
            if known.contains(&id) {
                continue;
            }
            self.remove(&location).await?;
            removed += 1;
        }
        Ok(removed)
    }
}
