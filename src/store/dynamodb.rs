use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::{OwnershipStore, Transition};
use crate::backend_error::backend_error;
use crate::domain::{
    FileId, FileRecord, FileStatus, Ledger, MultipartUpload, ObjectKey, OwnerId, PartPlan,
    PendingEntry, QuotaLimits, format_timestamp, parse_timestamp,
};
use crate::error::AppError;

/// Table layout: partition key `owner` (the caller's `sub`), sort key `fileId`. Keying by owner
/// makes "someone else's file" and "no such file" the same miss, and a listing one partition.
///
/// Each owner's partition also holds one ledger item (sort key `USAGE_SORT_KEY`) with the owner's
/// quota usage: `availableBytes`, a `version` that every change increments, and one
/// `pending:<file id>` map (`size`, `purgeAt`) per unconfirmed reservation. It is no file record:
/// reads by file id can never name it (it is no UUID), and listings start after it.
pub mod attr {
    pub const OWNER: &str = "owner";
    pub const FILE_ID: &str = "fileId";
    pub const OBJECT_KEY: &str = "objectKey";
    pub const FILENAME: &str = "filename";
    pub const CONTENT_TYPE: &str = "contentType";
    pub const SIZE: &str = "size";
    pub const SHA256: &str = "sha256";
    pub const STATUS: &str = "status";
    pub const CREATED_AT: &str = "createdAt";
    /// The table's TTL attribute (epoch seconds), set only while a reservation is unconfirmed.
    pub const PURGE_AT: &str = "purgeAt";
    pub const ETAG: &str = "etag";
    pub const UPLOADED_AT: &str = "uploadedAt";
    /// A multipart reservation's S3 upload id, part plan and lapse time: all four or none.
    pub const MULTIPART_UPLOAD_ID: &str = "multipartUploadId";
    pub const PART_SIZE: &str = "partSize";
    pub const PART_COUNT: &str = "partCount";
    pub const MULTIPART_EXPIRES_AT: &str = "multipartExpiresAt";
    /// `SHA256` when every part carries its SHA-256; absent when none does.
    pub const PART_CHECKSUM: &str = "partChecksumAlgorithm";

    /// The ledger item's sort key. `#` sorts before every digit and letter, so in an owner's
    /// partition the ledger comes before every file id, and a listing starts after it.
    pub const USAGE_SORT_KEY: &str = "#usage";
    pub const AVAILABLE_BYTES: &str = "availableBytes";
    pub const VERSION: &str = "version";
    /// Prefix of a pending reservation's attribute in the ledger item, followed by its file id.
    /// One top-level attribute per reservation (not a map of them), so removing one is valid
    /// even on a ledger that does not have it, or does not exist yet.
    pub const PENDING_PREFIX: &str = "pending:";

    /// Every attribute a record can have; the round-trip test checks that a complete record
    /// writes each of them.
    pub const ALL: &[&str] = &[
        OWNER,
        FILE_ID,
        OBJECT_KEY,
        FILENAME,
        CONTENT_TYPE,
        SIZE,
        SHA256,
        STATUS,
        CREATED_AT,
        PURGE_AT,
        ETAG,
        UPLOADED_AT,
        MULTIPART_UPLOAD_ID,
        PART_SIZE,
        PART_COUNT,
        MULTIPART_EXPIRES_AT,
        PART_CHECKSUM,
    ];
}

type Item = HashMap<String, AttributeValue>;

/// BatchGetItem may return some keys unprocessed when throttled; they are asked for again with
/// backoff, a bounded number of times, before the read counts as unavailable.
const BATCH_GET_ATTEMPTS: u32 = 4;
const BATCH_GET_BACKOFF: Duration = Duration::from_millis(50);

/// A transaction cancelled because another one held one of its items (`TransactionConflict`) or
/// by throttling is tried again this many times, with backoff, before the write counts as
/// unavailable. A reservation that finds the ledger changed since it read it starts over (reads
/// the ledger again) the same number of times.
const TRANSACTION_ATTEMPTS: u32 = 4;
const TRANSACTION_BACKOFF: Duration = Duration::from_millis(25);

/// The wait before each of `attempts` tries of a call: none before the first, then `base`,
/// doubling after each retry (exponential backoff).
fn retry_waits(base: Duration, attempts: u32) -> impl Iterator<Item = Option<Duration>> {
    (0..attempts).map(move |attempt| attempt.checked_sub(1).map(|retry| base * 2u32.pow(retry)))
}

/// How a transaction ended, when DynamoDB answered.
enum Outcome {
    Committed,
    /// The positions of the items whose condition failed; nothing was written.
    ConditionFailed(Vec<usize>),
}

#[derive(Clone, Debug)]
pub struct DynamoDbOwnershipStore {
    pub(super) client: Client,
    pub(super) table: String,
}

impl DynamoDbOwnershipStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates the table with the layout this adapter expects. For local runs and tests only: a
    /// deployed table comes from `template.yaml`, whose key schema a test checks against `attr`.
    pub async fn create_table(&self) -> Result<(), AppError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let build = |e: aws_sdk_dynamodb::error::BuildError| AppError::Internal(e.into());
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)
        };
        let key = |name: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build)
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(attr::OWNER)?)
            .attribute_definitions(attribute(attr::FILE_ID)?)
            .key_schema(key(attr::OWNER, KeyType::Hash)?)
            .key_schema(key(attr::FILE_ID, KeyType::Range)?)
            .send()
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    /// Applies `update` to the record only while it exists and is pending, so that duplicate or
    /// out-of-order confirmations change nothing twice, together with `ledger` in one
    /// transaction. Attribute names go through `#` aliases because `status` and `size` are
    /// DynamoDB reserved words.
    async fn transition_from_pending(
        &self,
        record: &FileRecord,
        update: &str,
        names: &[&str],
        values: Vec<(&str, AttributeValue)>,
        ledger: LedgerChange,
    ) -> Result<Transition, AppError> {
        let mut change = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&record.owner, record.id)))
            .update_expression(update)
            .condition_expression("attribute_exists(#owner) AND #status = :pending")
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_values(":pending", s(FileStatus::Pending.as_str()));
        for name in names {
            change = change.expression_attribute_names(format!("#{name}"), *name);
        }
        for (placeholder, value) in values {
            change = change.expression_attribute_values(placeholder, value);
        }
        let change = TransactWriteItem::builder()
            .update(change.build().map_err(build_error)?)
            .build();
        let items = vec![change, self.ledger_update(record, ledger)?];
        Ok(match self.transact(items).await? {
            Outcome::Committed => Transition::Applied,
            Outcome::ConditionFailed(_) => Transition::Stale,
        })
    }

    /// The ledger's share of a record's change: its reservation leaves the ledger, and its bytes
    /// move as `change` says. Unconditional: the record's own condition, in the same transaction,
    /// is what makes it happen once.
    fn ledger_update(
        &self,
        record: &FileRecord,
        change: LedgerChange,
    ) -> Result<TransactWriteItem, AppError> {
        let bytes = match change {
            LedgerChange::Confirmed => i128::from(record.size),
            LedgerChange::ReservationReleased => 0,
            LedgerChange::FileRemoved => -i128::from(record.size),
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(ledger_key(&record.owner)))
            .update_expression("REMOVE #entry ADD #version :one, #bytes :bytes")
            .expression_attribute_names("#entry", pending_attribute(record.id))
            .expression_attribute_names("#version", attr::VERSION)
            .expression_attribute_names("#bytes", attr::AVAILABLE_BYTES)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":bytes", AttributeValue::N(bytes.to_string()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Runs a transaction; the SDK gives it an idempotency token (`ClientRequestToken`), so its
    /// own retry of a request whose answer was lost does not apply it twice.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Outcome, AppError> {
        for wait in retry_waits(TRANSACTION_BACKOFF, TRANSACTION_ATTEMPTS) {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Outcome::Committed),
                Err(err) => err,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            {
                let reasons = cancelled.cancellation_reasons();
                let failed: Vec<usize> = reasons
                    .iter()
                    .enumerate()
                    .filter(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"))
                    .map(|(at, _)| at)
                    .collect();
                if !failed.is_empty() {
                    return Ok(Outcome::ConditionFailed(failed));
                }
                let passing = reasons.iter().any(|reason| {
                    matches!(
                        reason.code(),
                        Some("TransactionConflict" | "ThrottlingError")
                    )
                });
                if passing {
                    continue;
                }
            }
            return Err(backend_error(err));
        }
        Err(AppError::Unavailable(
            "a transaction kept conflicting with others on the same items".into(),
        ))
    }

    /// The owner's ledger and its version, `None` when it has no ledger item yet.
    async fn read_ledger(&self, owner: &OwnerId) -> Result<(Ledger, Option<u64>), AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(ledger_key(owner)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend_error)?;
        match output.item {
            None => Ok((Ledger::default(), None)),
            Some(item) => {
                let (ledger, version) = ledger_from_item(&item)?;
                Ok((ledger, Some(version)))
            }
        }
    }
}

/// How a record's change moves the bytes of the ledger (its reservation always leaves it).
#[derive(Clone, Copy)]
enum LedgerChange {
    /// pending -> available: the bytes count as available from now on.
    Confirmed,
    /// A pending reservation rejected or deleted: its bytes were only ever pending.
    ReservationReleased,
    /// An available file deleted.
    FileRemoved,
}

impl OwnershipStore for DynamoDbOwnershipStore {
    /// Reads the ledger, decides in code (a condition expression cannot tell expired entries
    /// from live ones), then writes the record and the whole new ledger in one transaction that
    /// holds only if the ledger is still the version read: optimistic concurrency. Of two
    /// reservations racing for the last place, one commits and the other reads the ledger again
    /// and is refused.
    async fn reserve(
        &self,
        record: &FileRecord,
        limits: &QuotaLimits,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        let put_record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(record)?))
            // A fresh UUID v4 never collides in practice; the condition makes sure that even a
            // collision could never replace someone's record.
            .condition_expression("attribute_not_exists(#owner)")
            .expression_attribute_names("#owner", attr::OWNER)
            .build()
            .map_err(build_error)?;
        for wait in retry_waits(TRANSACTION_BACKOFF, TRANSACTION_ATTEMPTS) {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let (ledger, version) = self.read_ledger(&record.owner).await?;
            let admitted = ledger.admit(record, now, limits)?;
            let next_version = version.map_or(1, |v| v + 1);
            let put_ledger = Put::builder()
                .table_name(&self.table)
                .set_item(Some(ledger_to_item(&record.owner, &admitted, next_version)));
            let put_ledger = match version {
                None => put_ledger
                    .condition_expression("attribute_not_exists(#owner)")
                    .expression_attribute_names("#owner", attr::OWNER),
                Some(version) => put_ledger
                    .condition_expression("#version = :version")
                    .expression_attribute_names("#version", attr::VERSION)
                    .expression_attribute_values(
                        ":version",
                        AttributeValue::N(version.to_string()),
                    ),
            }
            .build()
            .map_err(build_error)?;
            let items = vec![
                TransactWriteItem::builder().put(put_record.clone()).build(),
                TransactWriteItem::builder().put(put_ledger).build(),
            ];
            match self.transact(items).await? {
                Outcome::Committed => return Ok(()),
                // The record is there already. The SDK gives the transaction an idempotency
                // token, so DynamoDB answers a retry of a committed attempt with success; a
                // store that ignores tokens (moto) fails the retry's condition instead. A record
                // equal to this one, random id and all, can only be this reservation's.
                Outcome::ConditionFailed(failed) if failed.contains(&0) => {
                    return match self.get(&record.owner, record.id).await? {
                        Some(stored) if stored == *record => Ok(()),
                        _ => Err(AppError::Internal("reservation collision".into())),
                    };
                }
                // The ledger changed since it was read: read it again.
                Outcome::ConditionFailed(_) => {}
            }
        }
        Err(AppError::Unavailable(
            "the owner's usage kept changing during the reservation".into(),
        ))
    }

    async fn ledger(&self, owner: &OwnerId) -> Result<Ledger, AppError> {
        Ok(self.read_ledger(owner).await?.0)
    }

    async fn get(&self, owner: &OwnerId, id: FileId) -> Result<Option<FileRecord>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend_error)?;
        output.item.map(|item| from_item(&item)).transpose()
    }

    async fn get_many(&self, owner: &OwnerId, ids: &[FileId]) -> Result<Vec<FileRecord>, AppError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(ids.iter().map(|id| key(owner, *id)).collect()))
                .consistent_read(true)
                .build()
                .map_err(|e| AppError::Internal(e.into()))?,
        );
        let mut records = Vec::with_capacity(ids.len());
        for wait in retry_waits(BATCH_GET_BACKOFF, BATCH_GET_ATTEMPTS) {
            let Some(keys) = pending.take() else { break };
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(backend_error)?;
            if let Some(items) = output.responses.as_ref().and_then(|r| r.get(&self.table)) {
                for item in items {
                    records.push(from_item(item)?);
                }
            }
            pending = output
                .unprocessed_keys
                .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                .filter(|keys| !keys.keys().is_empty());
        }
        if pending.is_some() {
            return Err(AppError::Unavailable(
                "BatchGetItem left keys unprocessed after every retry".into(),
            ));
        }
        // Defence in depth: only records of the owner asked for, whatever came back.
        records.retain(|record| &record.owner == owner);
        Ok(records)
    }

    async fn mark_available(
        &self,
        record: &FileRecord,
        etag: &str,
        uploaded_at: OffsetDateTime,
    ) -> Result<Transition, AppError> {
        self.transition_from_pending(
            record,
            "SET #status = :available, #etag = :etag, #uploadedAt = :uploadedAt REMOVE #purgeAt",
            &[attr::ETAG, attr::UPLOADED_AT, attr::PURGE_AT],
            vec![
                (":available", s(FileStatus::Available.as_str())),
                (":etag", s(etag)),
                (":uploadedAt", s(format_timestamp(uploaded_at)?)),
            ],
            LedgerChange::Confirmed,
        )
        .await
    }

    async fn mark_rejected(&self, record: &FileRecord) -> Result<Transition, AppError> {
        self.transition_from_pending(
            record,
            "SET #status = :rejected",
            &[],
            vec![(":rejected", s(FileStatus::Rejected.as_str()))],
            LedgerChange::ReservationReleased,
        )
        .await
    }

    async fn list(
        &self,
        owner: &OwnerId,
        limit: u32,
        after: Option<FileId>,
    ) -> Result<(Vec<FileRecord>, Option<FileId>), AppError> {
        let limit = i32::try_from(limit).map_err(|e| AppError::Internal(e.into()))?;
        let output = self
            .client
            .query()
            .table_name(&self.table)
            // File ids sort after the ledger's key: the range leaves the ledger out.
            .key_condition_expression("#owner = :owner AND #fileId > :ledger")
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_names("#fileId", attr::FILE_ID)
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":ledger", s(attr::USAGE_SORT_KEY))
            // The start key is built from the caller and an id, never taken from the client
            // whole, so no token can lead into another partition.
            .set_exclusive_start_key(after.map(|id| key(owner, id)))
            .limit(limit)
            .consistent_read(true)
            .send()
            .await
            .map_err(backend_error)?;
        let records = output
            .items()
            .iter()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match output.last_evaluated_key() {
            None => None,
            Some(last) => Some(
                last.get(attr::FILE_ID)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|id| FileId::parse(id))
                    .ok_or_else(|| AppError::Internal("unexpected LastEvaluatedKey".into()))?,
            ),
        };
        Ok((records, next))
    }

    async fn delete(&self, record: &FileRecord) -> Result<Transition, AppError> {
        let ledger = match record.status {
            FileStatus::Pending => LedgerChange::ReservationReleased,
            FileStatus::Available => LedgerChange::FileRemoved,
            FileStatus::Rejected => {
                // A rejected record holds nothing in the ledger any more.
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(&record.owner, record.id)))
                    .condition_expression("#status = :status")
                    .expression_attribute_names("#status", attr::STATUS)
                    .expression_attribute_values(":status", s(record.status.as_str()))
                    .send()
                    .await;
                return match result {
                    Ok(_) => Ok(Transition::Applied),
                    Err(err)
                        if matches!(
                            err.as_service_error(),
                            Some(DeleteItemError::ConditionalCheckFailedException(_))
                        ) =>
                    {
                        Ok(Transition::Stale)
                    }
                    Err(err) => Err(backend_error(err)),
                };
            }
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(&record.owner, record.id)))
            .condition_expression("#status = :status")
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_values(":status", s(record.status.as_str()))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.ledger_update(record, ledger)?,
        ];
        Ok(match self.transact(items).await? {
            Outcome::Committed => Transition::Applied,
            Outcome::ConditionFailed(_) => Transition::Stale,
        })
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> AppError {
    AppError::Internal(e.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn ledger_key(owner: &OwnerId) -> Item {
    HashMap::from([
        (attr::OWNER.to_owned(), s(owner.as_str())),
        (attr::FILE_ID.to_owned(), s(attr::USAGE_SORT_KEY)),
    ])
}

fn pending_attribute(id: FileId) -> String {
    format!("{}{id}", attr::PENDING_PREFIX)
}

const ENTRY_SIZE: &str = "size";
const ENTRY_PURGE_AT: &str = "purgeAt";

/// The whole ledger item, as a reservation writes it.
fn ledger_to_item(owner: &OwnerId, ledger: &Ledger, version: u64) -> Item {
    let mut item = ledger_key(owner);
    item.insert(attr::VERSION.to_owned(), n(version));
    item.insert(attr::AVAILABLE_BYTES.to_owned(), n(ledger.available_bytes));
    for (id, entry) in &ledger.pending {
        let entry = HashMap::from([
            (ENTRY_SIZE.to_owned(), n(entry.size)),
            (
                ENTRY_PURGE_AT.to_owned(),
                n(entry.purge_at.unix_timestamp()),
            ),
        ]);
        item.insert(pending_attribute(*id), AttributeValue::M(entry));
    }
    item
}

/// The ledger and its version. Available bytes below zero (files confirmed before quotas
/// existed, then deleted) count as zero.
fn ledger_from_item(item: &Item) -> Result<(Ledger, u64), AppError> {
    let corrupt = |what: &str| AppError::Internal(format!("corrupt usage ledger: {what}").into());
    let number = |value: Option<&AttributeValue>| -> Option<i128> {
        value
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
    };
    let version = match item.get(attr::VERSION) {
        None => 0,
        Some(v) => number(Some(v))
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| corrupt(attr::VERSION))?,
    };
    let available_bytes = match item.get(attr::AVAILABLE_BYTES) {
        None => 0,
        Some(v) => number(Some(v))
            .map(|bytes| u64::try_from(bytes.max(0)).unwrap_or(u64::MAX))
            .ok_or_else(|| corrupt(attr::AVAILABLE_BYTES))?,
    };
    let mut pending = std::collections::BTreeMap::new();
    for (name, value) in item {
        let Some(id) = name.strip_prefix(attr::PENDING_PREFIX) else {
            continue;
        };
        let id = FileId::parse(id).ok_or_else(|| corrupt(name))?;
        let entry = value.as_m().map_err(|_| corrupt(name))?;
        let size = number(entry.get(ENTRY_SIZE)).and_then(|v| u64::try_from(v).ok());
        let purge_at = number(entry.get(ENTRY_PURGE_AT))
            .and_then(|v| i64::try_from(v).ok())
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok());
        let (Some(size), Some(purge_at)) = (size, purge_at) else {
            return Err(corrupt(name));
        };
        pending.insert(id, PendingEntry { size, purge_at });
    }
    Ok((
        Ledger {
            available_bytes,
            pending,
        },
        version,
    ))
}

fn key(owner: &OwnerId, id: FileId) -> Item {
    HashMap::from([
        (attr::OWNER.to_owned(), s(owner.as_str())),
        (attr::FILE_ID.to_owned(), s(id.to_string())),
    ])
}

/// The item of a record. The record is taken apart field by field, with no `..`: a field added
/// to `FileRecord` does not compile until it is stored here (and read back in `from_item`, which
/// the round-trip test checks).
fn to_item(record: &FileRecord) -> Result<Item, AppError> {
    let FileRecord {
        owner,
        id,
        key: object_key,
        filename,
        content_type,
        size,
        sha256,
        status,
        created_at,
        purge_at,
        etag,
        uploaded_at,
        multipart,
    } = record;
    let mut item = key(owner, *id);
    let mut optional = Vec::new();
    if let Some(sha256) = sha256 {
        optional.push((attr::SHA256, s(sha256)));
    }
    if let Some(purge_at) = purge_at {
        optional.push((
            attr::PURGE_AT,
            AttributeValue::N(purge_at.unix_timestamp().to_string()),
        ));
    }
    if let Some(etag) = etag {
        optional.push((attr::ETAG, s(etag)));
    }
    if let Some(uploaded_at) = uploaded_at {
        optional.push((attr::UPLOADED_AT, s(format_timestamp(*uploaded_at)?)));
    }
    if let Some(multipart) = multipart {
        let MultipartUpload {
            upload_id,
            plan,
            expires_at,
        } = multipart.as_ref();
        optional.extend([
            (attr::MULTIPART_UPLOAD_ID, s(upload_id)),
            (attr::PART_SIZE, n(plan.part_size())),
            (attr::PART_COUNT, n(plan.part_count())),
            (
                attr::MULTIPART_EXPIRES_AT,
                s(format_timestamp(*expires_at)?),
            ),
        ]);
        if plan.part_sha256() {
            optional.push((attr::PART_CHECKSUM, s(PART_CHECKSUM_SHA256)));
        }
    }
    let required = [
        (attr::OBJECT_KEY, s(object_key.as_str())),
        (attr::FILENAME, s(filename)),
        (attr::CONTENT_TYPE, s(content_type)),
        (attr::SIZE, AttributeValue::N(size.to_string())),
        (attr::STATUS, s(status.as_str())),
        (attr::CREATED_AT, s(format_timestamp(*created_at)?)),
    ];
    for (name, value) in required.into_iter().chain(optional) {
        item.insert(name.to_owned(), value);
    }
    Ok(item)
}

/// Reads an item back, refusing anything this code could not have written. In particular the
/// stored object key must be exactly the one the key scheme gives for this owner and id, so a
/// tampered or corrupted record can never point a URL at another object: fail closed.
fn from_item(item: &Item) -> Result<FileRecord, AppError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let corrupt = |what: &str| AppError::Internal(format!("corrupt file record: {what}").into());
    let required = |name: &str| text(name).ok_or_else(|| corrupt(name));

    let owner = OwnerId::parse(required(attr::OWNER)?).ok_or_else(|| corrupt(attr::OWNER))?;
    let id = FileId::parse(required(attr::FILE_ID)?).ok_or_else(|| corrupt(attr::FILE_ID))?;
    let key = ObjectKey::for_file(&owner, id);
    if required(attr::OBJECT_KEY)? != key.as_str() {
        return Err(corrupt(attr::OBJECT_KEY));
    }
    let size = item
        .get(attr::SIZE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| corrupt(attr::SIZE))?;
    let status = FileStatus::parse(required(attr::STATUS)?).ok_or_else(|| corrupt(attr::STATUS))?;
    let created_at =
        parse_timestamp(required(attr::CREATED_AT)?).ok_or_else(|| corrupt(attr::CREATED_AT))?;
    let purge_at = match item.get(attr::PURGE_AT).map(|v| v.as_n()) {
        None => None,
        Some(n) => Some(
            n.ok()
                .and_then(|n| n.parse().ok())
                .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
                .ok_or_else(|| corrupt(attr::PURGE_AT))?,
        ),
    };
    let uploaded_at = match text(attr::UPLOADED_AT) {
        None => None,
        Some(t) => Some(parse_timestamp(t).ok_or_else(|| corrupt(attr::UPLOADED_AT))?),
    };
    let multipart = multipart_from_item(item, size)?;
    Ok(FileRecord {
        owner,
        id,
        key,
        filename: required(attr::FILENAME)?.to_owned(),
        content_type: required(attr::CONTENT_TYPE)?.to_owned(),
        size,
        sha256: text(attr::SHA256).cloned(),
        status,
        created_at,
        purge_at,
        etag: text(attr::ETAG).cloned(),
        uploaded_at,
        multipart,
    })
}

/// The stored value of `attr::PART_CHECKSUM`.
const PART_CHECKSUM_SHA256: &str = "SHA256";

/// A multipart reservation's upload, when the item has one: all of its attributes, and a plan
/// that is exactly the one the size gives, so no stored value can make a URL sign other lengths.
fn multipart_from_item(item: &Item, size: u64) -> Result<Option<Box<MultipartUpload>>, AppError> {
    let corrupt = |what: &str| AppError::Internal(format!("corrupt file record: {what}").into());
    let names = [
        attr::MULTIPART_UPLOAD_ID,
        attr::PART_SIZE,
        attr::PART_COUNT,
        attr::MULTIPART_EXPIRES_AT,
    ];
    // None of them: a single-PUT reservation. Only some: corrupt, and the first one missing
    // below says which.
    if !names.iter().any(|name| item.contains_key(*name)) {
        return Ok(None);
    }
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let upload_id = text(attr::MULTIPART_UPLOAD_ID)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| corrupt(attr::MULTIPART_UPLOAD_ID))?
        .to_owned();
    let part_size = number(attr::PART_SIZE).ok_or_else(|| corrupt(attr::PART_SIZE))?;
    let part_count = number(attr::PART_COUNT)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| corrupt(attr::PART_COUNT))?;
    let part_sha256 = match text(attr::PART_CHECKSUM).map(String::as_str) {
        None => false,
        Some(PART_CHECKSUM_SHA256) => true,
        Some(_) => return Err(corrupt(attr::PART_CHECKSUM)),
    };
    let plan = PartPlan::from_stored(size, part_size, part_count, part_sha256)
        .ok_or_else(|| corrupt("part plan"))?;
    let expires_at = text(attr::MULTIPART_EXPIRES_AT)
        .and_then(|t| parse_timestamp(t))
        .ok_or_else(|| corrupt(attr::MULTIPART_EXPIRES_AT))?;
    Ok(Some(Box::new(MultipartUpload {
        upload_id,
        plan,
        expires_at,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_and_the_first_try_not_at_all() {
        let waits: Vec<_> = retry_waits(Duration::from_millis(25), 4).collect();
        assert_eq!(
            waits,
            [None, Some(25), Some(50), Some(100)].map(|ms| ms.map(Duration::from_millis))
        );
    }

    fn record() -> FileRecord {
        let owner = OwnerId::parse("alice").unwrap();
        let id = FileId::new_random();
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        FileRecord {
            key: ObjectKey::for_file(&owner, id),
            owner,
            id,
            filename: "résumé.pdf".into(),
            content_type: "application/pdf".into(),
            size: 42,
            sha256: Some("x".repeat(44)),
            status: FileStatus::Pending,
            created_at: now,
            purge_at: Some(now + time::Duration::hours(1)),
            etag: Some("\"abc\"".into()),
            uploaded_at: Some(now),
            multipart: Some(Box::new(MultipartUpload {
                upload_id: "upload-1".into(),
                plan: PartPlan::for_size(42).unwrap().with_part_sha256(true),
                expires_at: now + time::Duration::hours(24),
            })),
        }
    }

    #[test]
    fn records_round_trip_through_items() {
        let record = record();
        let item = to_item(&record).unwrap();
        assert_eq!(from_item(&item).unwrap(), record);
        // Every optional field is set in `record()`, so every attribute is written.
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = attr::ALL.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }

    #[test]
    fn absent_optional_fields_round_trip_as_absent() {
        let record = FileRecord {
            sha256: None,
            purge_at: None,
            etag: None,
            uploaded_at: None,
            multipart: None,
            ..record()
        };
        let item = to_item(&record).unwrap();
        for name in [
            attr::SHA256,
            attr::PURGE_AT,
            attr::ETAG,
            attr::UPLOADED_AT,
            attr::MULTIPART_UPLOAD_ID,
            attr::PART_SIZE,
            attr::PART_COUNT,
            attr::MULTIPART_EXPIRES_AT,
        ] {
            assert!(!item.contains_key(name), "{name}");
        }
        assert_eq!(from_item(&item).unwrap(), record);
    }

    #[test]
    fn a_record_pointing_at_another_key_is_refused() {
        let record = record();
        let mut item = to_item(&record).unwrap();
        item.insert(
            attr::OBJECT_KEY.into(),
            s(format!("users/mallory/{}", record.id)),
        );
        assert!(matches!(from_item(&item), Err(AppError::Internal(_))));
    }

    #[test]
    fn incomplete_items_are_errors_not_panics() {
        let full = to_item(&record()).unwrap();
        for name in [
            attr::OWNER,
            attr::FILE_ID,
            attr::SIZE,
            attr::STATUS,
            attr::CREATED_AT,
        ] {
            let mut item = full.clone();
            item.remove(name);
            assert!(
                matches!(from_item(&item), Err(AppError::Internal(_))),
                "{name}"
            );
        }
        let mut item = full.clone();
        item.insert(attr::SIZE.into(), s("42"));
        assert!(from_item(&item).is_err());
        // A multipart upload is all of its attributes, with the plan its size gives, or none.
        for name in [
            attr::MULTIPART_UPLOAD_ID,
            attr::PART_SIZE,
            attr::PART_COUNT,
            attr::MULTIPART_EXPIRES_AT,
        ] {
            let mut item = full.clone();
            item.remove(name);
            assert!(
                matches!(from_item(&item), Err(AppError::Internal(_))),
                "{name}"
            );
        }
        let mut item = full;
        item.insert(attr::PART_SIZE.into(), n(6 * 1024 * 1024));
        assert!(from_item(&item).is_err());
    }
}
