//! Reservations made with an `Idempotency-Key`: made once, whatever the number of requests.
//!
//! The key gives the file id (`FileId::for_idempotency_key`), so every request with it names one
//! record. The record is read first: a repeat finds it and answers the same file, with a fresh
//! upload URL (single PUT) or its part plan (multipart), without a second reservation or a
//! second charge to the quota. Two first requests racing past that read both try to write the
//! record, and its condition (it never overwrites) lets one through; the other's reservation
//! fails (its quota check may also fail first, the place being the other's now), and it reads
//! the record the winner wrote and answers as a repeat. The same key with another request is 422
//! `idempotency_key_reused` (IETF draft "The Idempotency-Key HTTP Header Field",
//! draft-ietf-httpapi-idempotency-key-header, a key reused with a different payload).

use std::time::Duration;

use super::{FileService, UploadInstructions, now};
use crate::bucket::{ObjectStorage, UrlSigner};
use crate::domain::{FileId, FileRecord, FileStatus, IdempotencyKey, NewUpload, OwnerId};
use crate::error::AppError;
use crate::store::OwnershipStore;

impl<S, B> FileService<S, B>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    pub(super) async fn reserve_idempotent(
        &self,
        owner: &OwnerId,
        key: IdempotencyKey,
        upload: NewUpload,
        lifetime: Duration,
    ) -> Result<(FileRecord, UploadInstructions), AppError> {
        let id = FileId::for_idempotency_key(owner, &key);
        if let Some(existing) = self.store.get(owner, id).await? {
            return self.repeat(existing, &key, &upload, lifetime).await;
        }
        let error = match self
            .reserve_new(owner, id, upload.clone(), lifetime, Some(key.clone()))
            .await
        {
            Ok(reserved) => return Ok(reserved),
            Err(error) => error,
        };
        // Refused or failed: if a record is there now, a request with the same key made it
        // meanwhile, and this one is its repeat. Otherwise the failure stands.
        match self.store.get(owner, id).await {
            Ok(Some(existing)) => self.repeat(existing, &key, &upload, lifetime).await,
            _ => Err(error),
        }
    }

    /// The answer to a repeat of the reservation `existing`: the same file, if `upload` is what
    /// it was reserved for and it still takes its upload.
    async fn repeat(
        &self,
        existing: FileRecord,
        key: &IdempotencyKey,
        upload: &NewUpload,
        lifetime: Duration,
    ) -> Result<(FileRecord, UploadInstructions), AppError> {
        // The id derives from the key, so only a SHA-256 collision could give another.
        if existing.idempotency_key.as_ref() != Some(key) {
            return Err(AppError::Internal(
                "a record under an idempotency key's id with another key".into(),
            ));
        }
        if !existing.reserved_as(upload) {
            return Err(AppError::IdempotencyKeyReused(
                "this Idempotency-Key was used for another upload (another filename, type, size, \
                 checksum or mode); use a new key for a new upload"
                    .into(),
            ));
        }
        let lapsed = || {
            AppError::NotPending(
                "the file reserved with this Idempotency-Key has lapsed; reserve it again with \
                 a new key"
                    .into(),
            )
        };
        if existing.status != FileStatus::Pending {
            return Err(AppError::NotPending(format!(
                "the file reserved with this Idempotency-Key is {}, no longer waiting for its \
                 upload",
                existing.status.as_str()
            )));
        }
        if let Some(multipart) = &existing.multipart {
            if now() >= multipart.expires_at {
                return Err(lapsed());
            }
            let (plan, expires_at) = (multipart.plan, multipart.expires_at);
            return Ok((existing, UploadInstructions::Multipart { plan, expires_at }));
        }
        // A fresh URL must end before the record may be purged, as the first one did.
        let url = self.fresh_upload_url(&existing, lifetime, lapsed).await?;
        Ok((existing, UploadInstructions::Put(url)))
    }
}
