//! The malware scanner's verdicts (README, "Malware scanning"): GuardDuty's scan result for an
//! object under `users/`, applied to its file as `domain::scan_outcome` decides.
//!
//! Every change is conditional on the record's status as read, and rejection is final, so
//! duplicate, late and out-of-order results end in the same state. A result may arrive before
//! S3's own event about the object (both are asynchronous): a pending file is confirmed first,
//! exactly as that event would.

use super::{Confirmation, FileService};
use crate::bucket::{ObjectStorage, UrlSigner};
use crate::domain::{
    FileStatus, ObjectKey, RejectReason, ScanOutcome, ScanVerdict, same_etag, scan_outcome,
};
use crate::error::AppError;
use crate::store::{OwnershipStore, Transition};

/// One object's scan result, as the scanner reports it.
#[derive(Debug)]
pub struct ScanResult<'a> {
    /// The object's key, not URL-encoded.
    pub key: &'a str,
    pub etag: Option<&'a str>,
    pub version_id: Option<&'a str>,
    pub verdict: ScanVerdict,
}

/// What a scan result led to, for the log.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanResultOutcome {
    /// scanning -> available.
    Available,
    /// Rejected for `reason`, its object deleted.
    Rejected(RejectReason),
    /// An available file that a later scan found malicious: deleted outright, with its grants
    /// and links, so nothing shared keeps pointing at it.
    Deleted,
    /// Nothing changed: a duplicate, a settled file, or no verdict; the file's status.
    Unchanged(FileStatus),
    /// No file has this key (deleted meanwhile, or a stray); a malicious object is deleted all
    /// the same.
    NoFile,
    /// The file's object is not there (any more): nothing to decide.
    NotUploaded,
}

impl<S, B> FileService<S, B>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    pub async fn scan_result(&self, result: ScanResult<'_>) -> Result<ScanResultOutcome, AppError> {
        let threats = result.verdict == ScanVerdict::Threats;
        let Some((owner, id)) = ObjectKey::parse(result.key) else {
            if threats && let Some(stray) = ObjectKey::stray(result.key) {
                self.remove_version(&stray, result.version_id).await?;
            }
            return Ok(ScanResultOutcome::NoFile);
        };
        let key = ObjectKey::for_file(&owner, id);
        let Some(mut record) = self.store.get(&owner, id).await? else {
            if threats {
                self.remove_version(&key, result.version_id).await?;
            }
            return Ok(ScanResultOutcome::NoFile);
        };
        if record.status == FileStatus::Pending {
            record = match self.confirm(record).await? {
                Confirmation::Accepted(record) => record,
                Confirmation::Rejected { .. } => {
                    return Ok(ScanResultOutcome::Unchanged(FileStatus::Rejected));
                }
                Confirmation::Missing => return Ok(ScanResultOutcome::NotUploaded),
            };
        }
        let same_bytes = match (record.etag.as_deref(), result.etag) {
            (Some(stored), Some(scanned)) => same_etag(stored, scanned),
            // Without an ETag in the result, the version is the file's only one (If-None-Match).
            (Some(_), None) => true,
            (None, _) => false,
        };
        let outcome = match scan_outcome(&record, result.verdict, same_bytes) {
            ScanOutcome::MakeAvailable => match self.store.mark_scanned(&record).await? {
                Transition::Applied => ScanResultOutcome::Available,
                Transition::Stale => ScanResultOutcome::Unchanged(record.status),
            },
            ScanOutcome::Reject(_) if record.status == FileStatus::Available => {
                self.delete_file(&owner, id).await?;
                ScanResultOutcome::Deleted
            }
            // Record first, object second, as for a mismatching upload: if the delete fails,
            // the record already refuses downloads, and the retried event deletes again.
            ScanOutcome::Reject(reason) => match self.store.mark_rejected(&record, reason).await? {
                Transition::Applied => {
                    self.remove_object(&key).await?;
                    ScanResultOutcome::Rejected(reason)
                }
                Transition::Stale => ScanResultOutcome::Unchanged(record.status),
            },
            ScanOutcome::Keep => ScanResultOutcome::Unchanged(record.status),
        };
        // Every version the scanner found malicious goes, whatever became of the file.
        if threats {
            self.remove_version(&key, result.version_id).await?;
        }
        Ok(outcome)
    }

    /// Deletes the version the scanner named, or the current one when it named none.
    async fn remove_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> Result<(), AppError> {
        match version_id {
            Some(version_id) => self.bucket.delete_version(key, Some(version_id)).await,
            None => self.remove_object(key).await,
        }
    }
}
