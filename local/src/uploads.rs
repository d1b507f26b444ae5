//! ListMultipartUploads, which s3s-fs 0.14.1 does not implement (it answers `NotImplemented`).
//!
//! s3s-fs keeps an upload in progress as `.upload-<id>.json` in the data directory, holding only
//! the initiator's access key: neither the bucket, the key nor the time it started, all of which
//! ListMultipartUploads reports. So CreateMultipartUpload also writes `.upload-<id>.listing.json`
//! beside it (bucket, key, initiation time), and CompleteMultipartUpload and
//! AbortMultipartUpload remove it. Persisted rather than kept in memory: a restarted `make local`
//! still lists the uploads its data directory holds, as it still accepts their parts; the
//! listing reads these files each time (a local stand-in lists few), and lists an upload only
//! while s3s-fs's own file says it is still in progress.
//!
//! The answer follows the Amazon S3 API Reference, ListMultipartUploads: the uploads whose key
//! starts with `prefix`, in key order and, for one key, in upload-id order (the order the
//! `upload-id-marker` rule assumes); after `key-marker` alone only greater keys, with
//! `upload-id-marker` too also that key's uploads with a greater id; at most `max-uploads`
//! (default and cap 1,000), with `IsTruncated`, and `NextKeyMarker` and `NextUploadIdMarker`
//! naming the last upload listed. `delimiter` is not modelled (nothing here sends one).

use std::path::{Path, PathBuf};

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// ListMultipartUploads answers at most 1,000 uploads per page.
const MAX_UPLOADS_LISTED: i32 = 1000;

const LISTING_SUFFIX: &str = ".listing.json";

fn internal(error: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(S3ErrorCode::InternalError, error.to_string())
}

/// What ListMultipartUploads needs of one upload and s3s-fs does not keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Listed {
    bucket: String,
    key: String,
    /// RFC 3339.
    initiated: String,
}

/// The uploads in progress under one s3s-fs data directory, for ListMultipartUploads.
pub struct UploadListing {
    root: PathBuf,
}

/// Whether `upload_id` can name a file of ours (s3s-fs's ids are UUIDs).
fn plain(upload_id: &str) -> bool {
    !upload_id.is_empty() && upload_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

impl UploadListing {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn listing_path(&self, upload_id: &str) -> Option<PathBuf> {
        plain(upload_id).then(|| {
            self.root
                .join(format!(".upload-{upload_id}{LISTING_SUFFIX}"))
        })
    }

    /// After a successful CreateMultipartUpload.
    pub async fn created(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
        let Some(path) = self.listing_path(upload_id) else {
            return Err(internal("s3s-fs made an upload id that is no UUID"));
        };
        let initiated = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(internal)?;
        let listed = Listed {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            initiated,
        };
        let bytes = serde_json::to_vec(&listed).map_err(internal)?;
        tokio::fs::write(path, bytes).await.map_err(internal)
    }

    /// After a successful CompleteMultipartUpload or AbortMultipartUpload.
    pub async fn ended(&self, upload_id: &str) {
        if let Some(path) = self.listing_path(upload_id) {
            // Already gone is fine: a repeated abort.
            let _ = tokio::fs::remove_file(path).await;
        }
    }

    /// Every upload of `bucket` still in progress, as (key, upload id, initiated).
    async fn in_progress(&self, bucket: &str) -> S3Result<Vec<(String, String, OffsetDateTime)>> {
        let mut found = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.root).await.map_err(internal)?;
        while let Some(entry) = entries.next_entry().await.map_err(internal)? {
            let name = entry.file_name();
            let Some(upload_id) = name
                .to_str()
                .and_then(|name| name.strip_prefix(".upload-"))
                .and_then(|rest| rest.strip_suffix(LISTING_SUFFIX))
                .filter(|id| plain(id))
            else {
                continue;
            };
            // Ended meanwhile (s3s-fs's own file is the truth), or a leftover of a crash.
            if !exists(&self.root.join(format!(".upload-{upload_id}.json"))).await {
                continue;
            }
            let Ok(bytes) = tokio::fs::read(entry.path()).await else {
                continue;
            };
            let listed: Listed = serde_json::from_slice(&bytes).map_err(internal)?;
            if listed.bucket != bucket {
                continue;
            }
            let initiated = OffsetDateTime::parse(&listed.initiated, &Rfc3339).map_err(internal)?;
            found.push((listed.key, upload_id.to_owned(), initiated));
        }
        Ok(found)
    }

    pub async fn list(
        &self,
        input: ListMultipartUploadsInput,
    ) -> S3Result<ListMultipartUploadsOutput> {
        let prefix = input.prefix.clone().unwrap_or_default();
        let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
        // Ignored without a key marker, as S3 ignores it.
        let id_marker = key_marker
            .as_ref()
            .and(input.upload_id_marker.clone())
            .filter(|m| !m.is_empty());
        let max_uploads = input
            .max_uploads
            .filter(|max| *max > 0)
            .map_or(MAX_UPLOADS_LISTED, |max| max.min(MAX_UPLOADS_LISTED));
        let mut uploads: Vec<_> = self
            .in_progress(&input.bucket)
            .await?
            .into_iter()
            .filter(|(key, _, _)| key.starts_with(&prefix))
            .filter(|(key, id, _)| match (&key_marker, &id_marker) {
                (None, _) => true,
                (Some(marker), None) => key > marker,
                (Some(marker), Some(id_marker)) => {
                    key > marker || (key == marker && id > id_marker)
                }
            })
            .collect();
        uploads.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let limit = usize::try_from(max_uploads).unwrap_or(usize::MAX);
        let truncated = uploads.len() > limit;
        uploads.truncate(limit);
        let last = uploads.last().cloned();
        let uploads = uploads
            .into_iter()
            .map(|(key, upload_id, initiated)| MultipartUpload {
                key: Some(key),
                upload_id: Some(upload_id),
                initiated: Some(Timestamp::from(initiated)),
                ..MultipartUpload::default()
            })
            .collect();
        Ok(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max_uploads),
            is_truncated: Some(truncated),
            next_key_marker: last.as_ref().map(|(key, _, _)| key.clone()),
            next_upload_id_marker: last.map(|(_, id, _)| id),
            uploads: Some(uploads),
            ..ListMultipartUploadsOutput::default()
        })
    }
}

async fn exists(path: &Path) -> bool {
    tokio::fs::try_exists(path).await.unwrap_or(false)
}
