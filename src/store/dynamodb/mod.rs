//! The DynamoDB adapter of `OwnershipStore`: the operations. How records and the ledger are
//! stored is in `item` and `ledger`, how each operation changes the ledger in `ledger_changes`,
//! grants in `grants`, share links in `links`, how a transaction is run and retried in `transaction`.

mod grants;
mod item;
mod ledger;
mod ledger_changes;
mod links;
mod transaction;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem, Update,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use time::OffsetDateTime;

pub use grants::SHARED_PREFIX;
pub use item::attr;
use item::{Item, build_error, from_item, key, s, to_item};
use ledger_changes::LedgerChange;
use transaction::{
    BATCH_GET_ATTEMPTS, BATCH_GET_BACKOFF, Outcome, TRANSACTION_ATTEMPTS, TRANSACTION_BACKOFF,
    retry_waits,
};

use super::{OwnershipStore, Transition};
use crate::backend_error::backend_error;
use crate::domain::{
    FileId, FileRecord, FileStatus, Ledger, OwnerId, QuotaLimits, RejectReason, format_timestamp,
};
use crate::error::AppError;

#[derive(Clone, Debug)]
pub struct DynamoDbOwnershipStore {
    pub(super) client: Client,
    pub(super) table: String,
}

/// The file record an item of the table holds, as the table's stream shows it (its `NewImage` or
/// `OldImage`); `None` for the other items (ledgers, link tallies, grants, links, the cursor),
/// and for anything this code could not have written (`from_item`).
pub fn file_record_of_item(item: &HashMap<String, AttributeValue>) -> Option<FileRecord> {
    from_item(item).ok()
}

/// A single conditional write's answer as a transition: its condition failing (`condition_failed`
/// says which error that is) is `Stale`, any other error the backend's.
fn conditional<T, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    condition_failed: impl Fn(&E) -> bool,
) -> Result<Transition, AppError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(Transition::Applied),
        Err(err) if err.as_service_error().is_some_and(&condition_failed) => Ok(Transition::Stale),
        Err(err) => Err(backend_error(err)),
    }
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
        self.create_table_streaming(false).await
    }

    /// The same, with the table's stream, as template.yaml declares it (the publisher's source,
    /// README "Events"). Kept apart because moto copies the whole table, stream included, around
    /// every transaction: a stream that only grows makes each later transaction slower, so the
    /// stacks that run no publisher make none.
    pub async fn create_table_with_stream(&self) -> Result<(), AppError> {
        self.create_table_streaming(true).await
    }

    async fn create_table_streaming(&self, stream: bool) -> Result<(), AppError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            StreamSpecification, StreamViewType,
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
            .set_stream_specification(
                stream
                    .then(|| {
                        StreamSpecification::builder()
                            .stream_enabled(true)
                            .stream_view_type(StreamViewType::NewAndOldImages)
                            .build()
                            .map_err(build)
                    })
                    .transpose()?,
            )
            .send()
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    /// `update` of the record, only while it exists and is still in the status read, so that
    /// duplicate or out-of-order confirmations and verdicts change nothing twice. Attribute names go through `#` aliases
    /// because `status` and `size` are DynamoDB reserved words.
    fn status_update(
        &self,
        record: &FileRecord,
        update: &str,
        names: &[&str],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<TransactWriteItem, AppError> {
        let mut change = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(&record.owner, record.id)))
            .update_expression(update)
            .condition_expression("attribute_exists(#owner) AND #status = :read")
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_values(":read", s(record.status.as_str()));
        for name in names {
            change = change.expression_attribute_names(format!("#{name}"), *name);
        }
        for (placeholder, value) in values {
            change = change.expression_attribute_values(placeholder, value);
        }
        Ok(TransactWriteItem::builder()
            .update(change.build().map_err(build_error)?)
            .build())
    }

    /// The items of `keys` in one BatchGetItem, asking again with backoff for keys DynamoDB left
    /// unprocessed (throttling), a bounded number of times.
    async fn batch_get(&self, keys: KeysAndAttributes) -> Result<Vec<Item>, AppError> {
        let mut pending = Some(keys);
        let mut found = Vec::new();
        for wait in retry_waits(BATCH_GET_BACKOFF, BATCH_GET_ATTEMPTS) {
            let Some(keys) = pending.take() else { break };
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let mut output = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(backend_error)?;
            if let Some(items) = output
                .responses
                .as_mut()
                .and_then(|r| r.remove(&self.table))
            {
                found.extend(items);
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
        Ok(found)
    }

    /// The item of `owner`'s record of `id` (with its grants and links), read consistently.
    async fn record_item(&self, owner: &OwnerId, id: FileId) -> Result<Option<Item>, AppError> {
        self.consistent_item(key(owner, id)).await
    }

    /// The item at `key`, read consistently; `None` when there is none.
    pub(super) async fn consistent_item(&self, key: Item) -> Result<Option<Item>, AppError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend_error)?;
        Ok(output.item)
    }
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
            // Never over a record: a fresh UUID v4 never collides in practice, and the condition
            // makes sure even a collision could never replace someone's record. An id derived
            // from an Idempotency-Key does meet its record on a repeat: the condition refuses the
            // second write, and the service answers with the first.
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
            let items = vec![
                TransactWriteItem::builder().put(put_record.clone()).build(),
                self.versioned_ledger(&record.owner, &admitted, version, next_version)?,
            ];
            match self.transact(items).await? {
                Outcome::Committed => return Ok(()),
                // The record is there already. `transact` gives the transaction an idempotency
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
        let item = self.record_item(owner, id).await?;
        item.map(|item| from_item(&item)).transpose()
    }

    async fn get_many(&self, owner: &OwnerId, ids: &[FileId]) -> Result<Vec<FileRecord>, AppError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = KeysAndAttributes::builder()
            .set_keys(Some(ids.iter().map(|id| key(owner, *id)).collect()))
            .consistent_read(true)
            .build()
            .map_err(|e| AppError::Internal(e.into()))?;
        let mut records = self
            .batch_get(keys)
            .await?
            .iter()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        // Defence in depth: only records of the owner asked for, whatever came back.
        records.retain(|record| &record.owner == owner);
        Ok(records)
    }

    /// The record's change and the ledger's, conditional on the entry still counting; when it
    /// does not (and the record is still pending), the bytes are re-admitted under `limits`.
    async fn mark_uploaded(
        &self,
        record: &FileRecord,
        status: FileStatus,
        etag: &str,
        uploaded_at: OffsetDateTime,
        limits: &QuotaLimits,
    ) -> Result<Transition, AppError> {
        let change = self.status_update(
            record,
            "SET #status = :uploaded, #etag = :etag, #uploadedAt = :uploadedAt REMOVE #purgeAt",
            &[attr::ETAG, attr::UPLOADED_AT, attr::PURGE_AT],
            vec![
                (":uploaded", s(status.as_str())),
                (":etag", s(etag)),
                (":uploadedAt", s(format_timestamp(uploaded_at)?)),
            ],
        )?;
        if record
            .purge_at
            .is_none_or(|purge_at| purge_at <= uploaded_at)
        {
            return self.readmit(record, change, uploaded_at, limits).await;
        }
        let ledger = self.ledger_update(record, LedgerChange::Confirmed)?;
        match self.transact(vec![change.clone(), ledger]).await? {
            Outcome::Committed => Ok(Transition::Applied),
            Outcome::ConditionFailed(failed) if failed.contains(&0) => Ok(Transition::Stale),
            // Only the ledger's condition: the tally was dropped, so the reservation had lapsed.
            Outcome::ConditionFailed(_) => self.readmit(record, change, uploaded_at, limits).await,
        }
    }

    /// One conditional UpdateItem: the ledger already counts a scanning file's bytes.
    async fn mark_scanned(&self, record: &FileRecord) -> Result<Transition, AppError> {
        if record.status != FileStatus::Scanning {
            return Ok(Transition::Stale);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&record.owner, record.id)))
            .update_expression("SET #status = :available")
            .condition_expression("#status = :scanning")
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_values(":available", s(FileStatus::Available.as_str()))
            .expression_attribute_values(":scanning", s(FileStatus::Scanning.as_str()))
            .send()
            .await;
        conditional(result, |err| {
            matches!(err, UpdateItemError::ConditionalCheckFailedException(_))
        })
    }

    async fn mark_rejected(
        &self,
        record: &FileRecord,
        reason: RejectReason,
    ) -> Result<Transition, AppError> {
        let change = self.status_update(
            record,
            "SET #status = :rejected, #rejectedFor = :reason",
            &[attr::REJECTED_FOR],
            vec![
                (":rejected", s(FileStatus::Rejected.as_str())),
                (":reason", s(reason.as_str())),
            ],
        )?;
        match record.status {
            FileStatus::Pending => self.release(record, change).await,
            // Never shared (sharing needs an available file), so no grant or link goes with it.
            FileStatus::Scanning => {
                let items = vec![
                    change,
                    self.ledger_update(record, LedgerChange::FileRemoved)?,
                ];
                Ok(match self.transact(items).await? {
                    Outcome::Committed => Transition::Applied,
                    Outcome::ConditionFailed(_) => Transition::Stale,
                })
            }
            FileStatus::Available | FileStatus::Rejected => Ok(Transition::Stale),
        }
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
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(&record.owner, record.id)))
            .condition_expression("#status = :status")
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_values(":status", s(record.status.as_str()))
            .build()
            .map_err(build_error)?;
        let delete = TransactWriteItem::builder().delete(delete).build();
        match record.status {
            FileStatus::Pending => self.release(record, delete).await,
            // A file never shared goes with its ledger change alone. One that was shared (its
            // grant version is there) goes with its grants (`delete_shared`).
            // A scanning file is never shared, and goes the same way.
            FileStatus::Available | FileStatus::Scanning => {
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(&record.owner, record.id)))
                    .condition_expression(
                        "#status = :status AND attribute_not_exists(#grantVersion)",
                    )
                    .expression_attribute_names("#status", attr::STATUS)
                    .expression_attribute_names("#grantVersion", grants::GRANT_VERSION)
                    .expression_attribute_values(":status", s(record.status.as_str()))
                    .build()
                    .map_err(build_error)?;
                let items = vec![
                    TransactWriteItem::builder().delete(delete).build(),
                    self.ledger_update(record, LedgerChange::FileRemoved)?,
                ];
                match self.transact(items).await? {
                    Outcome::Committed => Ok(Transition::Applied),
                    Outcome::ConditionFailed(_) => self.delete_shared(record).await,
                }
            }
            // A rejected record holds nothing in the ledger any more.
            FileStatus::Rejected => {
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
                conditional(result, |err| {
                    matches!(err, DeleteItemError::ConditionalCheckFailedException(_))
                })
            }
        }
    }
}
