//! Confirmation: a reservation's stored object checked against what was reserved, by
//! `complete`, the S3 event and the reconciliation alike.

use super::{FileService, now};
use crate::bucket::{ObjectInfo, ObjectLookup, ObjectStorage, UrlSigner};
use crate::domain::{FileId, FileRecord, FileStatus, OwnerId, RejectReason};
use crate::error::AppError;
use crate::store::{OwnershipStore, Transition};

/// Where a confirmation left a reservation.
// One per confirmation, returned and matched at once, never kept in bulk: boxing the record would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Confirmation {
    /// The object matches the reservation: the record, now available, or scanning when uploads
    /// are scanned.
    Accepted(FileRecord),
    /// The upload was refused (why in words, and as the file's `rejectedFor` when known); its
    /// object has been deleted.
    Rejected {
        reason: String,
        rejected_for: Option<RejectReason>,
    },
    /// No object has been uploaded yet.
    Missing,
}

impl<S, B> FileService<S, B>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    /// `POST /files/{id}/complete`: the client says its upload finished. A multipart upload is
    /// completed at S3 first (`finish_multipart`), then confirmed like any object.
    pub async fn complete_upload(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> Result<FileRecord, AppError> {
        let record = self.file(owner, id).await?;
        if let Some(multipart) = &record.multipart {
            self.finish_multipart(&record, multipart).await?;
        }
        match self.confirm(record).await? {
            Confirmation::Accepted(record) => Ok(record),
            Confirmation::Rejected {
                reason,
                rejected_for,
            } => Err(AppError::UploadRejected(reason, rejected_for)),
            Confirmation::Missing => Err(AppError::UploadMissing),
        }
    }

    /// Turns a reservation into a verified file or a rejected one, by checking the stored object
    /// against what was reserved. Idempotent, and safe to run twice at once: every state change
    /// is conditional on the record still being pending. Cut short after any of its calls (the
    /// request's deadline), running it again finishes what it started.
    pub async fn confirm(&self, record: FileRecord) -> Result<Confirmation, AppError> {
        match record.status {
            FileStatus::Available | FileStatus::Scanning => {
                return Ok(Confirmation::Accepted(record));
            }
            // Delete again: an earlier delete may have failed, or the URL (still valid, and no
            // longer blocked by If-None-Match) may have been used once more.
            FileStatus::Rejected => {
                self.remove_object(&record.key).await?;
                return Ok(Confirmation::Rejected {
                    reason: rejection(&record),
                    rejected_for: record.rejected_for,
                });
            }
            FileStatus::Pending => {}
        }
        let object = match self.bucket.head(&record.key).await? {
            ObjectLookup::Found(object) => object,
            // The record is pending, so the object is expected but may not be there yet; without
            // s3:ListBucket S3 says so with a 403 (see `ObjectLookup::Denied`). It cannot be a
            // readable-but-refused object: the role may GetObject every key under users/
            // (tests/template.rs pins it), and the bucket policy only refuses plain HTTP, old TLS
            // and presigned requests. s3:ListBucket would turn the 403 into a 404, but only
            // unconditioned: HeadObject carries no s3:prefix, so a grant limited to users/ would
            // not apply to it, and an unconditioned one lets the role list every caller's keys.
            ObjectLookup::Absent | ObjectLookup::Denied => return Ok(Confirmation::Missing),
        };
        if let Some(reason) = mismatch(&record, &object) {
            // Record first, object second: if the delete fails, the record already refuses
            // downloads, and a retry finds it rejected and deletes again.
            if self
                .store
                .mark_rejected(&record, RejectReason::Mismatch)
                .await?
                == Transition::Stale
            {
                return self.current_state(&record).await;
            }
            self.bucket
                .delete_version(&record.key, object.version_id.as_deref())
                .await?;
            return Ok(Confirmation::Rejected {
                reason,
                rejected_for: Some(RejectReason::Mismatch),
            });
        }
        let uploaded_at = now();
        let status = if self.scan_uploads {
            FileStatus::Scanning
        } else {
            FileStatus::Available
        };
        let confirmed = self
            .store
            .mark_uploaded(&record, status, &object.etag, uploaded_at, &self.quotas)
            .await;
        match confirmed {
            // The reservation's place in the quota lapsed, and the bytes no longer fit
            // (`Ledger::readmit`): rejected like a mismatch, record first, object second, so an
            // upload completed or confirmed late (issue 20, 2.5) never takes the owner over the
            // quota. Also the events function's and the reconciliation's verdict.
            Err(AppError::QuotaExceeded(reason)) => {
                if self
                    .store
                    .mark_rejected(&record, RejectReason::OverQuota)
                    .await?
                    == Transition::Stale
                {
                    return self.current_state(&record).await;
                }
                self.bucket
                    .delete_version(&record.key, object.version_id.as_deref())
                    .await?;
                Ok(Confirmation::Rejected {
                    reason,
                    rejected_for: Some(RejectReason::OverQuota),
                })
            }
            Err(error) => Err(error),
            Ok(Transition::Applied) => Ok(Confirmation::Accepted(FileRecord {
                status,
                etag: Some(object.etag),
                uploaded_at: Some(uploaded_at),
                purge_at: None,
                ..record
            })),
            Ok(Transition::Stale) => self.current_state(&record).await,
        }
    }

    /// After losing a race to another confirmation, report what it decided.
    async fn current_state(&self, record: &FileRecord) -> Result<Confirmation, AppError> {
        let current = self.file(&record.owner, record.id).await?;
        match current.status {
            FileStatus::Available | FileStatus::Scanning => Ok(Confirmation::Accepted(current)),
            FileStatus::Rejected => Ok(Confirmation::Rejected {
                reason: rejection(&current),
                rejected_for: current.rejected_for,
            }),
            FileStatus::Pending => Err(AppError::Internal(
                "record still pending after a conditional update failed".into(),
            )),
        }
    }
}

/// Why a rejected record was rejected, for its uploader.
fn rejection(record: &FileRecord) -> String {
    match record.rejected_for {
        Some(reason) => format!("the upload was rejected: {}", reason.describe()),
        None => "the upload was rejected".into(),
    }
}

/// Why a stored object does not match its reservation, if it does not. S3 already enforced the
/// signed headers; this catches objects that reached the key some other way.
fn mismatch(record: &FileRecord, object: &ObjectInfo) -> Option<String> {
    if object.size != record.size {
        return Some(format!(
            "the object has {} bytes, {} were reserved",
            object.size, record.size
        ));
    }
    if object.content_type.as_deref() != Some(record.content_type.as_str()) {
        return Some("the object's content type differs from the reservation".into());
    }
    if let Some(declared) = &record.sha256
        && object.sha256.as_ref() != Some(declared)
    {
        return Some("the object's SHA-256 differs from the declared one".into());
    }
    // No reservation asks for any of these, and each changes what a download serves: a
    // Content-Encoding makes browsers decode the bytes into something the checksum never covered,
    // a Cache-Control can let shared caches keep a private file.
    if !object.unsigned_headers.is_empty() {
        return Some(format!(
            "the object carries headers the reservation did not ask for: {}",
            object.unsigned_headers.join(", ")
        ));
    }
    None
}
