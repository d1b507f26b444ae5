//! Where ownership records live. The trait is the port the application talks to; `dynamodb` is
//! the adapter used in production and against the DynamoDB stand-in.

mod dynamodb;

use std::future::Future;

use time::OffsetDateTime;

pub use dynamodb::{DynamoDbOwnershipStore, attr};

use crate::domain::{FileId, FileRecord, OwnerId};
use crate::error::AppError;

/// Outcome of a conditional status change.
#[derive(Debug, PartialEq)]
pub enum Transition {
    Applied,
    /// The record was not in the expected state (or is gone): someone else got there first.
    Stale,
}

pub trait OwnershipStore: Send + Sync {
    /// Writes a new record; fails rather than overwrite an existing one.
    fn reserve(&self, record: &FileRecord) -> impl Future<Output = Result<(), AppError>> + Send;

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

    /// pending -> available, recording what S3 reported, and dropping the purge time.
    fn mark_available(
        &self,
        owner: &OwnerId,
        id: FileId,
        etag: &str,
        uploaded_at: OffsetDateTime,
    ) -> impl Future<Output = Result<Transition, AppError>> + Send;

    /// pending -> rejected.
    fn mark_rejected(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> impl Future<Output = Result<Transition, AppError>> + Send;

    /// One page of `owner`'s records in id order, starting after `after`, and the id to continue
    /// after when there may be more. Only `owner`'s partition is ever read.
    fn list(
        &self,
        owner: &OwnerId,
        limit: u32,
        after: Option<FileId>,
    ) -> impl Future<Output = Result<(Vec<FileRecord>, Option<FileId>), AppError>> + Send;

    /// Removes the record; succeeds when it is gone afterwards, including when it never existed.
    fn delete(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> impl Future<Output = Result<(), AppError>> + Send;

    /// Removes the record only while it is available: for an object that S3 reports removed.
    fn delete_if_available(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> impl Future<Output = Result<Transition, AppError>> + Send;
}
