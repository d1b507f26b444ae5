//! A fresh upload URL for a pending single-PUT reservation: `POST /files/{id}/upload-url`, and the
//! repeat of a reservation made with an `Idempotency-Key` (`service::idempotency`).
//!
//! A presigned URL stops working when the credentials that signed it expire, whatever its
//! `X-Amz-Expires` says, and S3 then answers 403 `ExpiredToken` (AWS Knowledge Center, "Why is my
//! presigned URL for an Amazon S3 bucket expiring before the expiration time that I specified?");
//! past `X-Amz-Expires` it answers 403 AccessDenied "Request has expired". Either way the browser
//! client asks for the same URL signed anew. It signs exactly what the reservation's did (type,
//! size, SHA-256, `If-None-Match: *`, `Cache-Control`): it is `sign_upload` of the same record.

use std::time::Duration;

use super::{FileService, now, validity};
use crate::bucket::{ObjectStorage, PresignedRequest, UrlSigner};
use crate::domain::{FileId, FileRecord, FileStatus, OwnerId};
use crate::error::AppError;
use crate::store::OwnershipStore;

impl<S, B> FileService<S, B>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    /// `POST /files/{id}/upload-url`: a new PUT URL for the caller's pending single-PUT
    /// reservation, after one consistent read of its record. Someone else's file is `NotFound`,
    /// like a missing one; a multipart reservation is `NotSinglePut` (its parts are signed with
    /// `POST /files/{id}/parts`); a confirmed or rejected file is `NotPending`.
    pub async fn presign_upload_again(
        &self,
        owner: &OwnerId,
        id: FileId,
        expires_in: Option<u64>,
    ) -> Result<(FileRecord, PresignedRequest), AppError> {
        // What the request alone can get wrong, before the read.
        let lifetime = self.expiry.resolve(expires_in)?;
        let record = self.file(owner, id).await?;
        if record.multipart.is_some() {
            return Err(AppError::NotSinglePut(
                "this file is a multipart upload: sign its parts with POST /files/{id}/parts"
                    .into(),
            ));
        }
        if record.status != FileStatus::Pending {
            return Err(AppError::NotPending(format!(
                "this file is {}, no longer waiting for its upload",
                record.status.as_str()
            )));
        }
        let url = self
            .fresh_upload_url(&record, lifetime, || {
                AppError::NotPending(
                    "the reservation has lapsed: a new URL would outlive its record; reserve the \
                     file again"
                        .into(),
                )
            })
            .await?;
        Ok((record, url))
    }

    /// A new upload URL of `lifetime` for the pending single-PUT `record`, or `lapsed()` when it
    /// would not end before the record's purge time: the table's TTL may delete the record from
    /// then on, and its ledger entry stops counting (see `domain::quota`), so bytes stored later
    /// would have no reservation behind them. The first URL ended a day before that time
    /// (`PENDING_GRACE`), so a fresh one is refused only for a reservation a day past its URL.
    pub(super) async fn fresh_upload_url(
        &self,
        record: &FileRecord,
        lifetime: Duration,
        lapsed: impl FnOnce() -> AppError,
    ) -> Result<PresignedRequest, AppError> {
        let signed_at = now();
        if record
            .purge_at
            .is_none_or(|purge_at| signed_at + lifetime >= purge_at)
        {
            return Err(lapsed());
        }
        self.sign_upload(record, validity(signed_at, lifetime))
            .await
    }
}
