//! The reconciliation run: repairs what the events function missed, in both directions.
//!
//! An object whose S3 event failed (it went to the on-failure queue) and whose pending record then
//! expired would stay in the bucket forever; a pending record whose object arrived but whose event
//! was lost would never be confirmed. The run pages through `users/` in key order and, for each
//! object:
//! - a pending (or rejected) record: confirmed exactly as `complete` confirms it;
//! - a scanning record: its object's verdict tag read, and applied as the scan result would be
//!   (the tag is GuardDuty's durable record, should its event be lost); with no verdict after
//!   `SCAN_OVERDUE_AFTER`, counted as overdue and logged, for an operator (README, "Malware
//!   scanning");
//! - no record, and older than the longest URL lifetime: deleted as a stray;
//! - an available record, or a young object with no record (its event may still be on the way):
//!   left alone.
//!
//! The table is not scanned: a pending record whose object exists is reached from its object,
//! and one whose object does not exist is purged by the table's TTL. So the run reads records one
//! by one (GetItem) and never another owner's partition in bulk.
//!
//! Safe at any time, alongside the API and the events function: every record change goes through
//! the conditional transitions of `confirm`, and a stray delete cannot race a reservation,
//! because file ids are random and the record is written before any URL for its key exists: a
//! key with no record never gains one. Bounded: at most `max_objects` objects and the time the
//! deadline allows; the next run continues after the last object this one finished.
//!
//! Then, while the deadline allows, the multipart uploads in progress under `users/`
//! (ListMultipartUploads) are passed over, at most `max_objects` of them, and those no pending
//! record owns are aborted: see `uploads`.

mod uploads;

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::{Confirmation, FileService, ScanResult, ScanResultOutcome};
use crate::bucket::{ListedObject, ObjectListing, ObjectStorage, UrlSigner};
use crate::deadline::Deadline;
use crate::domain::{FileRecord, FileStatus, ObjectKey, ScanVerdict};
use crate::error::AppError;
use crate::store::{OwnershipStore, ReconcileCursor};

/// Objects asked for in one listing request: S3's own maximum.
const PAGE_SIZE: u32 = 1000;

/// How long a file may wait for its malware scan before a run reports it. GuardDuty scans most
/// objects within minutes; an hour leaves room for the largest and for EventBridge's retries.
pub const SCAN_OVERDUE_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug)]
pub struct ReconcileLimits {
    /// Most objects one run examines.
    pub max_objects: u32,
    /// An object with no record is a stray only once it is older than this: the longest URL
    /// lifetime, so that the events function, which handles new objects first, has had its turn.
    pub stray_age: Duration,
}

/// What one run did, for its log line and its return value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    pub examined: u32,
    pub confirmed: u32,
    pub rejected: u32,
    pub strays_deleted: u32,
    /// Files scanning for longer than `SCAN_OVERDUE_AFTER` with no verdict on their object.
    pub scans_overdue: u32,
    /// Objects, and multipart uploads, whose repair failed; the next pass over them tries again.
    pub failed: u32,
    /// The whole of `users/` has been passed over; the next run starts from the beginning.
    pub finished: bool,
    /// Multipart uploads in progress under `users/` looked at.
    pub uploads_examined: u32,
    /// Multipart uploads aborted because no pending record owns them.
    pub uploads_aborted: u32,
}

/// What became of one object.
enum Repair {
    InOrder,
    Confirmed,
    Rejected,
    StrayDeleted,
    ScanOverdue,
}

impl<S, B> FileService<S, B>
where
    S: OwnershipStore + ReconcileCursor,
    B: UrlSigner + ObjectStorage + ObjectListing,
{
    /// One bounded run, continuing where the previous one stopped. `now` decides which objects are
    /// old enough to be strays.
    pub async fn reconcile(
        &self,
        now: OffsetDateTime,
        limits: ReconcileLimits,
        deadline: Deadline,
    ) -> Result<ReconcileReport, AppError> {
        let mut report = ReconcileReport::default();
        let mut cursor = deadline.bound(self.store.read_cursor()).await?;
        let mut listing_failed = None;
        'run: while report.examined < limits.max_objects {
            let room = (limits.max_objects - report.examined).min(PAGE_SIZE);
            let page = match deadline
                .bound(self.bucket.list_managed(cursor.as_deref(), room))
                .await
            {
                Ok(page) => page,
                Err(_) if deadline.has_passed() => break 'run,
                Err(error) => {
                    listing_failed = Some(error);
                    break 'run;
                }
            };
            for object in page.objects {
                match deadline.bound(self.repair(&object, now, limits)).await {
                    Ok(Repair::InOrder) => {}
                    Ok(Repair::Confirmed) => report.confirmed += 1,
                    Ok(Repair::Rejected) => report.rejected += 1,
                    Ok(Repair::StrayDeleted) => report.strays_deleted += 1,
                    Ok(Repair::ScanOverdue) => {
                        report.scans_overdue += 1;
                        tracing::warn!(key = object.key, "reconcile: malware scan overdue");
                    }
                    // Cut mid-object: it is examined again next run, from a state that the
                    // orderings of `confirm` and of a delete keep repairable.
                    Err(_) if deadline.has_passed() => break 'run,
                    Err(error) => {
                        report.failed += 1;
                        let cause = std::error::Error::source(&error)
                            .map(ToString::to_string)
                            .unwrap_or_default();
                        tracing::warn!(key = object.key, %error, cause, "reconcile: repair failed");
                    }
                }
                report.examined += 1;
                cursor = Some(object.key);
            }
            if !page.more {
                report.finished = true;
                cursor = None;
                break;
            }
        }
        // Written whatever happened above, outside the deadline: the run's margin leaves room
        // for this one call (itself bounded by the SDK's timeouts).
        self.store.write_cursor(cursor.as_deref()).await?;
        if listing_failed.is_none() && !deadline.has_passed() {
            listing_failed = self
                .reconcile_uploads(now, limits, deadline, &mut report)
                .await;
        }
        // A listing that failed fails the run, after keeping the progress made before it.
        listing_failed.map_or(Ok(report), Err)
    }

    async fn repair(
        &self,
        object: &ListedObject,
        now: OffsetDateTime,
        limits: ReconcileLimits,
    ) -> Result<Repair, AppError> {
        let record = match ObjectKey::parse(&object.key) {
            Some((owner, id)) => self.store.get(&owner, id).await?,
            None => None,
        };
        match record {
            Some(record) if record.status == FileStatus::Available => Ok(Repair::InOrder),
            Some(record) if record.status == FileStatus::Scanning => {
                self.recheck_scan(&record, now).await
            }
            // Pending: the confirmation `complete` runs. Rejected: it deletes the object again.
            Some(record) => Ok(match self.confirm(record).await? {
                Confirmation::Accepted(_) => Repair::Confirmed,
                Confirmation::Rejected { .. } => Repair::Rejected,
                // Deleted since it was listed.
                Confirmation::Missing => Repair::InOrder,
            }),
            None if now - object.last_modified <= limits.stray_age => Ok(Repair::InOrder),
            None => match ObjectKey::stray(&object.key) {
                Some(stray) => {
                    // By version id, as every delete of the function: no version is left.
                    self.remove_object(&stray).await?;
                    Ok(Repair::StrayDeleted)
                }
                None => Ok(Repair::InOrder),
            },
        }
    }

    /// A scanning file: the verdict GuardDuty tagged its object with, applied as its event
    /// would have been; no verdict for too long is reported.
    async fn recheck_scan(
        &self,
        record: &FileRecord,
        now: OffsetDateTime,
    ) -> Result<Repair, AppError> {
        let tag = self.bucket.scan_status(&record.key).await?;
        let verdict = tag
            .as_deref()
            .map_or(ScanVerdict::Inconclusive, ScanVerdict::from_result_status);
        if verdict != ScanVerdict::Inconclusive {
            let result = ScanResult {
                key: record.key.as_str(),
                etag: None,
                version_id: None,
                verdict,
            };
            return Ok(match self.scan_result(result).await? {
                ScanResultOutcome::Available => Repair::Confirmed,
                ScanResultOutcome::Rejected(_) | ScanResultOutcome::Deleted => Repair::Rejected,
                _ => Repair::InOrder,
            });
        }
        let waited = record
            .uploaded_at
            .map_or(time::Duration::ZERO, |at| now - at);
        Ok(if waited > SCAN_OVERDUE_AFTER {
            Repair::ScanOverdue
        } else {
            Repair::InOrder
        })
    }
}
