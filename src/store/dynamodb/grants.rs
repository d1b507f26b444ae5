//! The DynamoDB adapter of `GrantStore`, and the removal of a shared file's grants with it.
//!
//! Keys (README, "Sharing"):
//! - A file's grants are two attributes of its record's item: `grants`, a map from grantee to
//!   `{grantedAt, expiresAt?}` (at most `MAX_GRANTS_PER_FILE` entries, under 2 KB), and
//!   `grantVersion`, incremented by every change of them (and of its links, see `links`). The
//!   shared download reads the record alone, consistently: one read says both whether the file
//!   is available and whether the caller holds a live grant, and no read can be saved from one.
//!   The owner's `GET /files/{id}/grants` is that same read.
//! - Each grant has an entry in its grantee's partition with sort key
//!   `#shared#<grantedAt, 12 digits of epoch seconds>#<file id>#<owner>`, written and removed in
//!   the same transaction as the record's map. `#shared#` sorts before `#usage`, so an owner's
//!   listing (which starts after `#usage`) never meets one, and the digits sort by time, so the
//!   grantee's `GET /shared` is one Query, backwards. Entries rather than a global secondary
//!   index: an index is read eventually consistently only, needs its own key attributes, ARN and
//!   IAM grant, and the entries' writes are in the same transactions as the map's anyway.
//!   An entry carries the file's name, type and size, and the table's TTL attribute at its
//!   expiry, so expired entries go by themselves.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use time::OffsetDateTime;

use super::item::{Item, build_error, from_item, key, n, s};
use super::ledger_changes::LedgerChange;
use super::links::links_from_item;
use super::transaction::Outcome;
use super::{DynamoDbOwnershipStore, attr};
use crate::backend_error::backend_error;
use crate::domain::{FileId, FileRecord, FileSharing, FileStatus, Grant, OwnerId, SharedFile};
use crate::error::AppError;
use crate::store::{GrantStore, Transition};

/// The sort key prefix of grantees' entries.
pub const SHARED_PREFIX: &str = "#shared#";

const GRANTS: &str = "grants";
/// The version of everything shared of a file, its grants and its links (named before links
/// existed, and kept: items carry it).
pub(super) const GRANT_VERSION: &str = "grantVersion";
const GRANTED_AT: &str = "grantedAt";
/// A grant's or a link's end, in epoch seconds.
pub(super) const EXPIRES_AT: &str = "expiresAt";
/// An entry's owner and file id; its partition key is the grantee.
const SHARED_BY: &str = "sharedBy";
const SHARED_FILE: &str = "sharedFile";

pub(super) fn epoch(at: OffsetDateTime) -> AttributeValue {
    n(at.unix_timestamp())
}

pub(super) fn read_epoch(value: Option<&AttributeValue>) -> Option<OffsetDateTime> {
    let secs = value?.as_n().ok()?.parse().ok()?;
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

pub(super) fn corrupt(what: &str) -> AppError {
    AppError::Internal(format!("corrupt grant: {what}").into())
}

/// The grantee's entry's sort key for `grant` of `record`.
fn entry_sort_key(record: &FileRecord, grant: &Grant) -> String {
    format!(
        "{SHARED_PREFIX}{:012}#{}#{}",
        grant.granted_at.unix_timestamp(),
        record.id,
        record.owner.as_str()
    )
}

fn entry_key(record: &FileRecord, grant: &Grant) -> Item {
    HashMap::from([
        (attr::OWNER.to_owned(), s(grant.grantee.as_str())),
        (attr::FILE_ID.to_owned(), s(entry_sort_key(record, grant))),
    ])
}

fn entry_item(record: &FileRecord, grant: &Grant) -> Item {
    let mut item = entry_key(record, grant);
    item.extend([
        (SHARED_BY.to_owned(), s(record.owner.as_str())),
        (SHARED_FILE.to_owned(), s(record.id.to_string())),
        (attr::FILENAME.to_owned(), s(&record.filename)),
        (attr::CONTENT_TYPE.to_owned(), s(&record.content_type)),
        (attr::SIZE.to_owned(), n(record.size)),
        (GRANTED_AT.to_owned(), epoch(grant.granted_at)),
    ]);
    if let Some(expires_at) = grant.expires_at {
        item.insert(EXPIRES_AT.to_owned(), epoch(expires_at));
        item.insert(attr::PURGE_AT.to_owned(), epoch(expires_at));
    }
    item
}

fn entry_from_item(item: &Item) -> Result<SharedFile, AppError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let owner = text(SHARED_BY)
        .and_then(|t| OwnerId::parse(t))
        .ok_or_else(|| corrupt(SHARED_BY))?;
    let id = text(SHARED_FILE)
        .and_then(|t| FileId::parse(t))
        .ok_or_else(|| corrupt(SHARED_FILE))?;
    let expires_at = match item.get(EXPIRES_AT) {
        None => None,
        Some(value) => Some(read_epoch(Some(value)).ok_or_else(|| corrupt(EXPIRES_AT))?),
    };
    Ok(SharedFile {
        owner,
        id,
        filename: text(attr::FILENAME)
            .ok_or_else(|| corrupt(attr::FILENAME))?
            .clone(),
        content_type: text(attr::CONTENT_TYPE)
            .ok_or_else(|| corrupt(attr::CONTENT_TYPE))?
            .clone(),
        size: item
            .get(attr::SIZE)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(attr::SIZE))?,
        granted_at: read_epoch(item.get(GRANTED_AT)).ok_or_else(|| corrupt(GRANTED_AT))?,
        expires_at,
    })
}

fn grants_to_value(grants: &[Grant]) -> AttributeValue {
    let map = grants
        .iter()
        .map(|grant| {
            let mut fields = HashMap::from([(GRANTED_AT.to_owned(), epoch(grant.granted_at))]);
            if let Some(expires_at) = grant.expires_at {
                fields.insert(EXPIRES_AT.to_owned(), epoch(expires_at));
            }
            (grant.grantee.as_str().to_owned(), AttributeValue::M(fields))
        })
        .collect();
    AttributeValue::M(map)
}

/// The grants held in a record's item; none for a file never shared.
pub(super) fn sharing_from_item(item: &Item) -> Result<FileSharing, AppError> {
    let version = match item.get(GRANT_VERSION) {
        None => return Ok(FileSharing::default()),
        Some(value) => value
            .as_n()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(GRANT_VERSION))?,
    };
    let mut grants = Vec::new();
    if let Some(map) = item.get(GRANTS) {
        let map = map.as_m().map_err(|_| corrupt(GRANTS))?;
        for (grantee, fields) in map {
            let fields = fields.as_m().map_err(|_| corrupt(GRANTS))?;
            let expires_at = match fields.get(EXPIRES_AT) {
                None => None,
                Some(value) => Some(read_epoch(Some(value)).ok_or_else(|| corrupt(EXPIRES_AT))?),
            };
            grants.push(Grant {
                grantee: OwnerId::parse(grantee).ok_or_else(|| corrupt("grantee"))?,
                granted_at: read_epoch(fields.get(GRANTED_AT))
                    .ok_or_else(|| corrupt(GRANTED_AT))?,
                expires_at,
            });
        }
    }
    grants.sort_by(|a, b| a.grantee.as_str().cmp(b.grantee.as_str()));
    Ok(FileSharing {
        version: Some(version),
        grants,
        links: links_from_item(item)?,
    })
}

impl DynamoDbOwnershipStore {
    fn delete_entry(
        &self,
        record: &FileRecord,
        grant: &Grant,
    ) -> Result<TransactWriteItem, AppError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(entry_key(record, grant)))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// The update of `record`'s sharing attribute `name` (its grants or its links) to `value`,
    /// with the sharing version incremented: only while the file is available and its sharing
    /// is still at `read.version` (none yet: never shared).
    pub(super) fn sharing_update(
        &self,
        record: &FileRecord,
        read: &FileSharing,
        name: &str,
        value: AttributeValue,
    ) -> Result<TransactWriteItem, AppError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&record.owner, record.id)))
            .update_expression("SET #shared = :shared, #grantVersion = :next")
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#shared", name)
            .expression_attribute_names("#grantVersion", GRANT_VERSION)
            .expression_attribute_values(":available", s(FileStatus::Available.as_str()))
            .expression_attribute_values(":shared", value)
            .expression_attribute_values(":next", n(read.version.map_or(1, |v| v + 1)));
        let update = match read.version {
            None => update.condition_expression(
                "#status = :available AND attribute_not_exists(#grantVersion)",
            ),
            Some(version) => update
                .condition_expression("#status = :available AND #grantVersion = :version")
                .expression_attribute_values(":version", n(version)),
        };
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(build_error)?)
            .build())
    }

    /// Deletes an available `record` that has been shared: with its grants and links as read
    /// now, on condition that they are still at the version read, and every grantee's entry and
    /// every link's item in the same transaction, so no grant or link outlives its file. `Stale` when the record is gone, changed
    /// status, or its grants changed meanwhile (the service reads again and retries).
    pub(super) async fn delete_shared(&self, record: &FileRecord) -> Result<Transition, AppError> {
        let Some(item) = self.record_item(&record.owner, record.id).await? else {
            return Ok(Transition::Stale);
        };
        if from_item(&item)?.status != record.status {
            return Ok(Transition::Stale);
        }
        let read = sharing_from_item(&item)?;
        let version = read
            .version
            .ok_or_else(|| AppError::Internal("a shared file without a grant version".into()))?;
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(&record.owner, record.id)))
            .condition_expression("#status = :status AND #grantVersion = :version")
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#grantVersion", GRANT_VERSION)
            .expression_attribute_values(":status", s(record.status.as_str()))
            .expression_attribute_values(":version", n(version))
            .build()
            .map_err(build_error)?;
        let mut items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.ledger_update(record, LedgerChange::FileRemoved)?,
        ];
        for grant in &read.grants {
            items.push(self.delete_entry(record, grant)?);
        }
        items.extend(self.links_removed(record, &read).await?);
        Ok(match self.transact(items).await? {
            Outcome::Committed => Transition::Applied,
            Outcome::ConditionFailed(_) => Transition::Stale,
        })
    }
}

impl GrantStore for DynamoDbOwnershipStore {
    async fn get_with_grants(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> Result<Option<(FileRecord, FileSharing)>, AppError> {
        let Some(item) = self.record_item(owner, id).await? else {
            return Ok(None);
        };
        Ok(Some((from_item(&item)?, sharing_from_item(&item)?)))
    }

    async fn write_grants(
        &self,
        record: &FileRecord,
        read: &FileSharing,
        grants: &[Grant],
    ) -> Result<Transition, AppError> {
        let mut items = vec![self.sharing_update(record, read, GRANTS, grants_to_value(grants))?];
        // Entries of grants made or renewed are put; entries of grants gone are deleted. A
        // renewal keeps `grantedAt`, so its entry's key is the same and the put replaces it.
        for grant in grants {
            if read.grants.contains(grant) {
                continue;
            }
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(entry_item(record, grant)))
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        for gone in &read.grants {
            if !grants.iter().any(|grant| grant.grantee == gone.grantee) {
                items.push(self.delete_entry(record, gone)?);
            }
        }
        Ok(match self.transact(items).await? {
            Outcome::Committed => Transition::Applied,
            Outcome::ConditionFailed(_) => Transition::Stale,
        })
    }

    async fn shared_with(
        &self,
        grantee: &OwnerId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<SharedFile>, Option<String>), AppError> {
        let limit = i32::try_from(limit).map_err(|e| AppError::Internal(e.into()))?;
        // The start key pairs the caller's own partition with a sort key of its entries: a
        // forged token can at most skip around the caller's own entries.
        let start = match after {
            None => None,
            Some(after) if after.starts_with(SHARED_PREFIX) => Some(HashMap::from([
                (attr::OWNER.to_owned(), s(grantee.as_str())),
                (attr::FILE_ID.to_owned(), s(after)),
            ])),
            Some(_) => return Err(AppError::invalid("nextToken is not valid")),
        };
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#owner = :grantee AND begins_with(#fileId, :shared)")
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_names("#fileId", attr::FILE_ID)
            .expression_attribute_values(":grantee", s(grantee.as_str()))
            .expression_attribute_values(":shared", s(SHARED_PREFIX))
            .scan_index_forward(false)
            .set_exclusive_start_key(start)
            .limit(limit)
            .consistent_read(true)
            .send()
            .await
            .map_err(backend_error)?;
        let entries = output
            .items()
            .iter()
            .map(entry_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = output
            .last_evaluated_key()
            .and_then(|last| last.get(attr::FILE_ID))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok((entries, next))
    }
}
