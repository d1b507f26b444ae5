//! Where ownership records live. The trait is the port the application talks to; `dynamodb` is
//! the adapter used in production and against the DynamoDB stand-in.

mod cursor;
mod dynamodb;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use time::OffsetDateTime;

pub use cursor::{CURSOR_OWNER, CURSOR_SORT_KEY};
pub use dynamodb::{DynamoDbOwnershipStore, SHARED_PREFIX, attr, file_record_of_item};

use crate::domain::{
    FileId, FileRecord, FileSharing, FileStatus, Grant, Ledger, LinkId, LinkLedger, LinkTarget,
    OwnerId, QuotaLimits, RejectReason, ShareLink, SharedFile,
};
use crate::error::AppError;

/// Outcome of a conditional status change.
#[derive(Debug, PartialEq)]
pub enum Transition {
    Applied,
    /// The record was not in the expected state (or is gone): someone else got there first.
    Stale,
}

/// Where the reconciliation run continues: the last key under `users/` it finished, kept between
/// runs. In the table rather than the bucket: a GetObject of a key that does not exist answers
/// 403, not 404, to a role without an unconditional `s3:ListBucket` (Amazon S3 API Reference,
/// GetObject, "Permissions"), so a first run could never tell "no cursor yet" from "forbidden";
/// a GetItem of a missing item is simply empty.
pub trait ReconcileCursor: Send + Sync {
    /// The key the previous run stopped after; `None` to start from the beginning.
    fn read_cursor(&self) -> impl Future<Output = Result<Option<String>, AppError>> + Send;

    /// Stores where the next run starts; `None` to start again from the beginning.
    fn write_cursor(
        &self,
        after: Option<&str>,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
}

pub trait OwnershipStore: Send + Sync {
    /// Writes a new record and adds it to its owner's ledger in one atomic write, if the ledger
    /// admits it under `limits` at `now`; `QuotaExceeded` (and nothing written) if not. Fails
    /// rather than overwrite an existing record.
    fn reserve(
        &self,
        record: &FileRecord,
        limits: &QuotaLimits,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<(), AppError>> + Send;

    /// `owner`'s ledger (empty for an owner with none yet). Strongly consistent.
    fn ledger(&self, owner: &OwnerId) -> impl Future<Output = Result<Ledger, AppError>> + Send;

    /// The record of `id` if `owner` owns it. Strongly consistent: a record just written is seen,
    /// a record just deleted is not. Someone else's file is `None`, exactly like a missing one.
    fn get(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> impl Future<Output = Result<Option<FileRecord>, AppError>> + Send;

    /// The records among `ids` that `owner` owns, in one strongly consistent batch read. Ids
    /// that are missing or someone else's are simply absent from the result.
    fn get_many(
        &self,
        owner: &OwnerId,
        ids: &[FileId],
    ) -> impl Future<Output = Result<Vec<FileRecord>, AppError>> + Send;

    /// pending -> `status` (available, or scanning when uploads are scanned), recording what S3
    /// reported, and dropping the purge time. In the same atomic write, the reservation leaves
    /// the ledger and its bytes count as available (a scanning file counts like an available
    /// one). Every change below that touches the ledger is conditional on the record's state, so
    /// a retried or lost-race change never counts twice.
    ///
    /// This one is also conditional on the reservation's ledger entry still counting at
    /// `uploaded_at` (there, and before its purge time): bytes whose place in the quota has
    /// lapsed are admitted again only if they fit `limits` now (`Ledger::readmit`), on the
    /// ledger's version as read, and are `QuotaExceeded` (nothing written) if not.
    fn mark_uploaded(
        &self,
        record: &FileRecord,
        status: FileStatus,
        etag: &str,
        uploaded_at: OffsetDateTime,
        limits: &QuotaLimits,
    ) -> impl Future<Output = Result<Transition, AppError>> + Send;

    /// scanning -> available: the malware scan found the object clean. The ledger already
    /// counts its bytes.
    fn mark_scanned(
        &self,
        record: &FileRecord,
    ) -> impl Future<Output = Result<Transition, AppError>> + Send;

    /// pending or scanning -> rejected for `reason`, in the same atomic write as the ledger's
    /// release of what the record held (a reservation, or a scanning file's bytes). `Stale`
    /// for a record in any other state, or changed since it was read.
    fn mark_rejected(
        &self,
        record: &FileRecord,
        reason: RejectReason,
    ) -> impl Future<Output = Result<Transition, AppError>> + Send;

    /// One page of `owner`'s records in id order, starting after `after`, and the id to continue
    /// after when there may be more. Only `owner`'s partition is ever read.
    fn list(
        &self,
        owner: &OwnerId,
        limit: u32,
        after: Option<FileId>,
    ) -> impl Future<Output = Result<(Vec<FileRecord>, Option<FileId>), AppError>> + Send;

    /// Removes the record while it is still in `record`'s status, releasing what it held in the
    /// ledger (a pending reservation, or an available file's bytes) in the same atomic write.
    /// `Stale` when the record is gone or its status changed meanwhile.
    fn delete(
        &self,
        record: &FileRecord,
    ) -> impl Future<Output = Result<Transition, AppError>> + Send;
}

/// Where read grants live (README, "Sharing"). A file's grants are part of its record's item, so
/// one consistent read of the record answers both "is it available" and "may this caller have
/// it"; each grant also has an entry in its grantee's partition, written in the same transaction,
/// so `GET /shared` is one Query there. Deleting a record (`OwnershipStore::delete`) removes
/// those entries in its own transaction.
pub trait GrantStore: Send + Sync {
    /// The record of `id` if `owner` owns it, and its grants, in one strongly consistent read.
    fn get_with_grants(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> impl Future<Output = Result<Option<(FileRecord, FileSharing)>, AppError>> + Send;

    /// Replaces `record`'s grants `read` with `grants`, and its grantees' entries with them, in
    /// one atomic write; only while the record is still available and its grants still at
    /// `read.version`. `Stale` otherwise (read again and decide again).
    fn write_grants(
        &self,
        record: &FileRecord,
        read: &FileSharing,
        grants: &[Grant],
    ) -> impl Future<Output = Result<Transition, AppError>> + Send;

    /// One page of the files shared with `grantee`, newest grant first, starting after `after`
    /// (a token this method returned), and the token to continue after when there may be more.
    /// Only `grantee`'s partition is ever read. Entries of expired grants are included: the
    /// caller decides.
    fn shared_with(
        &self,
        grantee: &OwnerId,
        limit: u32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<(Vec<SharedFile>, Option<String>), AppError>> + Send;
}

/// Where share links live (README, "Share links"). A file's links are part of its record's item,
/// under the same version as its grants; each link also has an item of its own, keyed by its id
/// alone, which a redemption reads and counts in one write; and each owner's live links are
/// tallied by expiry (`LinkLedger`) for the owner's limit. Deleting a record
/// (`OwnershipStore::delete`) removes its links' items and gives their places back in its own
/// transaction.
pub trait LinkStore: Send + Sync {
    /// `owner`'s link tallies and their version. Strongly consistent.
    fn link_ledger(
        &self,
        owner: &OwnerId,
    ) -> impl Future<Output = Result<LinkLedger, AppError>> + Send;

    /// In one atomic write: `record`'s links `read.links` replaced by `links` (only while the
    /// record is available and its sharing still at `read.version`), the item of `new` link
    /// written with its secret's hash, the items of links no longer in `links` deleted, and the
    /// owner's tallies `ledger` replaced by `tallies` (only over `ledger.version`). `Stale`
    /// otherwise: read again and decide again.
    fn write_links(
        &self,
        record: &FileRecord,
        read: &FileSharing,
        links: &[ShareLink],
        new: Option<(&ShareLink, &str)>,
        ledger: &LinkLedger,
        tallies: &BTreeMap<OffsetDateTime, u64>,
    ) -> impl Future<Output = Result<Transition, AppError>> + Send;

    /// Counts one download of link `id`, in one atomic write, if its secret hashes to
    /// `secret_hash`, it is unexpired at `now` and has downloads left; what it leads to. `None`
    /// for every other case alike (no such link, revoked, its file deleted, another secret,
    /// expired, exhausted).
    fn redeem(
        &self,
        id: LinkId,
        secret_hash: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<LinkTarget>, AppError>> + Send;

    /// Downloads counted so far of each of `ids` that still has its item, in one strongly
    /// consistent batch read.
    fn link_downloads(
        &self,
        ids: &[LinkId],
    ) -> impl Future<Output = Result<HashMap<LinkId, u64>, AppError>> + Send;
}
