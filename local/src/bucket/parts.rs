//! Multipart uploads as S3 answers for them where s3s-fs 0.14.1 does not: an upload that is gone
//! is `NoSuchUpload`, any principal IAM allows may use an upload (not only its initiator), parts
//! are remembered with what UploadPart verified, and a completion is checked whole before anything
//! is assembled ("UploadPart", "ListParts", "CompleteMultipartUpload", Amazon S3 API Reference).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::PoisonError;

use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result};

use super::{LocalBucket, MIN_PART_SIZE, internal};
use crate::hex;

/// What UploadPart stored: the ETag it answered and the SHA-256 it verified, if one was declared.
#[derive(Debug, Clone)]
pub(super) struct StoredPart {
    pub(super) e_tag: String,
    pub(super) sha256: Option<String>,
}

impl LocalBucket {
    /// Where s3s-fs keeps a part of a multipart upload (`FileSystem::resolve_upload_part_path`).
    pub(super) fn part_path(&self, upload_id: &str, part_number: i32) -> Option<PathBuf> {
        let plain =
            !upload_id.is_empty() && upload_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        plain.then(|| {
            self.root
                .join(format!(".upload_id-{upload_id}.part-{part_number}"))
        })
    }

    /// Whether s3s-fs knows `upload_id` as a multipart upload in progress (its
    /// `.upload-<id>.json`, written by CreateMultipartUpload, removed by Complete and Abort).
    pub(super) async fn upload_exists(&self, upload_id: &str) -> bool {
        let plain =
            !upload_id.is_empty() && upload_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        plain
            && tokio::fs::try_exists(self.root.join(format!(".upload-{upload_id}.json")))
                .await
                .unwrap_or(false)
    }

    pub(super) async fn require_upload(&self, upload_id: &str) -> S3Result<()> {
        if self.upload_exists(upload_id).await {
            Ok(())
        } else {
            Err(S3Error::with_message(
                S3ErrorCode::NoSuchUpload,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
            ))
        }
    }

    /// s3s-fs lets only the access key that created a multipart upload use it (its
    /// `verify_upload_id`); S3 lets any principal that IAM allows, which the access check has
    /// decided by now: an upload the API role created may be completed or aborted by another of
    /// the account's principals. So the request goes on with the initiator's access key.
    pub(super) async fn as_initiator<T>(
        &self,
        req: &mut S3Request<T>,
        upload_id: &str,
    ) -> S3Result<()> {
        self.require_upload(upload_id).await?;
        let info = tokio::fs::read(self.root.join(format!(".upload-{upload_id}.json")))
            .await
            .map_err(internal)?;
        let initiator: Option<String> = serde_json::from_slice(&info).map_err(internal)?;
        req.credentials = initiator.map(|access_key| s3s::auth::Credentials {
            access_key,
            secret_key: String::new().into(),
        });
        Ok(())
    }

    pub(super) fn stored_parts(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, i32), StoredPart>> {
        self.stored_parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A stored part's ETag (the hex MD5 of its bytes, as s3s-fs gives it) and the SHA-256 it
    /// was uploaded with, or None if the part is missing.
    pub(super) async fn stored_part(
        &self,
        upload_id: &str,
        part_number: i32,
    ) -> S3Result<Option<StoredPart>> {
        use tokio::io::AsyncReadExt as _;
        let Some(path) = self.part_path(upload_id, part_number) else {
            return Ok(None);
        };
        let known = self
            .stored_parts()
            .get(&(upload_id.to_owned(), part_number))
            .cloned();
        if let Some(part) = known {
            let present = tokio::fs::try_exists(&path).await.map_err(internal)?;
            return Ok(present.then_some(part));
        }
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(internal(error)),
        };
        let mut md5 = Md5::new();
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = file.read(&mut buffer).await.map_err(internal)?;
            if read == 0 {
                break;
            }
            md5.update(&buffer[..read]);
        }
        Ok(Some(StoredPart {
            e_tag: hex(&md5.finalize()),
            sha256: None,
        }))
    }

    /// S3's checks of a CompleteMultipartUpload request, made before anything is assembled.
    pub(super) async fn check_completion(
        &self,
        input: &CompleteMultipartUploadInput,
    ) -> S3Result<()> {
        self.require_upload(&input.upload_id).await?;
        let parts = input
            .multipart_upload
            .as_ref()
            .and_then(|upload| upload.parts.as_deref())
            .unwrap_or_default();
        let numbers: Vec<i32> = parts
            .iter()
            .map(|part| part.part_number.unwrap_or(0))
            .collect();
        if numbers.windows(2).any(|pair| pair[0] >= pair[1])
            || numbers.first().is_some_and(|first| *first < 1)
        {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidPartOrder,
                "The list of parts was not in ascending order.",
            ));
        }
        for (index, (part, &number)) in parts.iter().zip(&numbers).enumerate() {
            let invalid_part = || {
                S3Error::with_message(
                    S3ErrorCode::InvalidPart,
                    format!(
                        "Part {number} could not be found, or its ETag or checksum does not match."
                    ),
                )
            };
            let stored = self
                .stored_part(&input.upload_id, number)
                .await?
                .ok_or_else(invalid_part)?;
            let e_tag_differs = part
                .e_tag
                .as_ref()
                .is_some_and(|given| given.value() != stored.e_tag);
            let sha256_differs = part
                .checksum_sha256
                .as_ref()
                .is_some_and(|given| stored.sha256.as_ref().is_some_and(|known| known != given));
            if e_tag_differs || sha256_differs {
                return Err(invalid_part());
            }
            let last = index + 1 == parts.len();
            let size = self
                .part_path(&input.upload_id, number)
                .map(std::fs::metadata)
                .transpose()
                .map_err(internal)?
                .map_or(0, |m| m.len());
            if !last && size < MIN_PART_SIZE {
                return Err(S3Error::with_message(
                    S3ErrorCode::EntityTooSmall,
                    format!("Part {number} is smaller than the minimum allowed size (5 MiB)."),
                ));
            }
        }
        Ok(())
    }
}
