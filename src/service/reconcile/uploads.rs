//! The reconciliation's second pass: multipart uploads under `users/` that no pending record
//! owns, aborted.
//!
//! Such an upload holds billed parts that nothing will ever complete: its record was deleted (a
//! DELETE whose last abort raced a part still in flight: Amazon S3 API Reference,
//! AbortMultipartUpload, "it might be necessary to abort a given multipart upload multiple
//! times"), purged by the table's TTL, or never written (a reservation whose transaction failed
//! and whose own abort failed too); or its record moved on (confirmed, rejected), or names
//! another upload. The bucket's lifecycle rule would abort it too, but only a day or two after
//! it started; this pass does it on the next run.
//!
//! The rule, for each upload ListMultipartUploads reports (Amazon S3 API Reference,
//! ListMultipartUploads: prefix `users/`, paged with `key-marker` and `upload-id-marker`):
//! - younger than `unrecorded_age`: left alone, without even reading its record;
//! - a pending record at its key whose `multipartUploadId` is this upload's: left alone (the
//!   reservation's own life, and the lifecycle rule, decide its end);
//! - anything else (no record, a record not pending, a record naming another upload, a key that
//!   names no file): aborted, once. If a part lands after that abort, the upload is listed again
//!   by a later run and aborted again: the listing is this pass's check that the abort held.
//!
//! Why the age bound makes the abort safe: an upload gets its record in the very API invocation
//! that created it (`reserve_multipart`: CreateMultipartUpload, then the transaction that writes
//! the record naming it), which Lambda ends at the API function's timeout (15 s, template.yaml's
//! `Globals`). After that, nothing ever writes a record naming that upload. So an upload older
//! than that which no pending record owns never will be owned; the bound used is far longer (at
//! least `RECORD_WRITE_WINDOW`, and at least the longest URL lifetime, as for stray objects),
//! which also covers the difference between S3's clock (`Initiated`) and the function's.
//!
//! Each run starts the listing from the beginning of `users/` rather than keeping a second
//! cursor. That is safe because the pass only ever aborts what no pending record owns, whatever
//! the order it meets uploads in, and bounded because it examines at most `max_objects` uploads
//! and stops at the deadline. Every upload it aborts leaves the listing, so a run examines the
//! same in-order uploads again and then goes further than the last: only more than `max_objects`
//! uploads in progress at once that are all in order (10,000 by default) could keep a run from
//! reaching one beyond them, and then the lifecycle rule still aborts it.

use std::time::Duration;

use time::OffsetDateTime;

use super::{ReconcileLimits, ReconcileReport};
use crate::bucket::{ListedUpload, ObjectListing, ObjectStorage, UploadMarker, UrlSigner};
use crate::deadline::Deadline;
use crate::domain::{FileRecord, FileStatus, ObjectKey};
use crate::error::AppError;
use crate::service::FileService;
use crate::store::{OwnershipStore, ReconcileCursor};

/// Uploads asked for in one listing request: S3's own maximum (ListMultipartUploads,
/// `max-uploads`).
const PAGE_SIZE: u32 = 1000;

/// The least age of an upload before the pass judges it: twenty times the API function's 15 s
/// timeout, within which the record naming an upload is written or never is (module comment).
const RECORD_WRITE_WINDOW: Duration = Duration::from_secs(300);

/// How old an upload must be before its lack of a pending record means it will never have one.
fn unrecorded_age(limits: ReconcileLimits) -> Duration {
    limits.stray_age.max(RECORD_WRITE_WINDOW)
}

/// Whether `record` (the one at the upload's key, if any) is the pending reservation of
/// `upload_id`: the only case in which the upload is left to live.
fn owned_by(record: Option<&FileRecord>, upload_id: &str) -> bool {
    record.is_some_and(|record| {
        record.status == FileStatus::Pending
            && record
                .multipart
                .as_ref()
                .is_some_and(|multipart| multipart.upload_id == upload_id)
    })
}

impl<S, B> FileService<S, B>
where
    S: OwnershipStore + ReconcileCursor,
    B: UrlSigner + ObjectStorage + ObjectListing,
{
    /// The uploads pass, counted into `report`. Returns the listing's failure, if one ended it
    /// (the run then fails, as for the objects' listing); a run out of time simply stops.
    pub(super) async fn reconcile_uploads(
        &self,
        now: OffsetDateTime,
        limits: ReconcileLimits,
        deadline: Deadline,
        report: &mut ReconcileReport,
    ) -> Option<AppError> {
        let mut after: Option<UploadMarker> = None;
        while report.uploads_examined < limits.max_objects {
            let room = (limits.max_objects - report.uploads_examined).min(PAGE_SIZE);
            let page = match deadline
                .bound(self.bucket.list_uploads(after.as_ref(), room))
                .await
            {
                Ok(page) => page,
                Err(_) if deadline.has_passed() => return None,
                Err(error) => return Some(error),
            };
            for upload in &page.uploads {
                match deadline
                    .bound(self.repair_upload(upload, now, limits))
                    .await
                {
                    Ok(true) => report.uploads_aborted += 1,
                    Ok(false) => {}
                    // Cut mid-upload: the next run lists it again.
                    Err(_) if deadline.has_passed() => return None,
                    Err(error) => {
                        report.failed += 1;
                        let cause = std::error::Error::source(&error)
                            .map(ToString::to_string)
                            .unwrap_or_default();
                        tracing::warn!(key = upload.key, %error, cause, "reconcile: abort of an upload failed");
                    }
                }
                report.uploads_examined += 1;
            }
            // A listing whose marker does not move would be asked for again forever.
            match page.next {
                Some(next) if after.as_ref() != Some(&next) => after = Some(next),
                _ => break,
            }
        }
        None
    }

    /// Whether `upload` was aborted (see the module's rule).
    async fn repair_upload(
        &self,
        upload: &ListedUpload,
        now: OffsetDateTime,
        limits: ReconcileLimits,
    ) -> Result<bool, AppError> {
        if now - upload.initiated <= unrecorded_age(limits) {
            return Ok(false);
        }
        let record = match ObjectKey::parse(&upload.key) {
            Some((owner, id)) => self.store.get(&owner, id).await?,
            None => None,
        };
        if owned_by(record.as_ref(), &upload.upload_id) {
            return Ok(false);
        }
        let Some(key) = ObjectKey::stray(&upload.key) else {
            // Outside users/: never listed with that prefix, and never ours to touch.
            return Ok(false);
        };
        // `NoSuchUpload` counts as done: aborted meanwhile by a DELETE, completed, or lapsed.
        self.bucket.abort_multipart(&key, &upload.upload_id).await?;
        Ok(true)
    }
}
