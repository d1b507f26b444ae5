//! The publisher's face (README, "Events"): the table's DynamoDB stream, as Lambda hands it over
//! in batches, turned into file events on the bus.
//!
//! Each stream record is one committed change of one item (Amazon DynamoDB Developer Guide,
//! "Change data capture for DynamoDB Streams": each record appears once, and an item's records
//! come in the order of its changes). Items that are not file records (ledgers, grants, links,
//! the cursor) and changes that leave a file's status as it was make no event.
//!
//! Events are put in order, ten a call. The first that fails (the call, or its entry) ends the
//! batch: the function answers with that record's sequence number as its batch item failure
//! (Lambda Developer Guide, "Configuring partial batch response with DynamoDB and Lambda"), so
//! Lambda checkpoints every record before it and retries from it. Records after it may have been
//! put already and are put again: delivery is at least once, and each event's `eventId` (the
//! stream record's `eventID`) is the same on every delivery.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::{FileChange, FileEvent, format_timestamp};
use crate::error::AppError;
use crate::event_bus::{EventBus, MAX_ENTRIES_PER_CALL, OutboundEvent};
use crate::http::FileView;
use crate::store::file_record_of_item;

/// A batch of stream records, as Lambda's DynamoDB event source mapping sends it.
#[derive(Debug, Default, Deserialize)]
pub struct StreamBatch {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventID")]
    pub event_id: String,
    #[serde(rename = "eventName")]
    pub event_name: String,
    #[serde(rename = "userIdentity", default)]
    pub user_identity: Option<UserIdentity>,
    pub dynamodb: StreamChange,
}

/// Set on a record of an item DynamoDB's TTL removed (Amazon DynamoDB Developer Guide,
/// "DynamoDB Streams and Time to Live": type `Service`, principal `dynamodb.amazonaws.com`).
#[derive(Debug, Deserialize)]
pub struct UserIdentity {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "principalId")]
    pub principal_id: String,
}

#[derive(Debug, Deserialize)]
pub struct StreamChange {
    /// Epoch seconds.
    #[serde(rename = "ApproximateCreationDateTime", default)]
    pub approximate_creation_date_time: Option<f64>,
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<HashMap<String, Value>>,
    #[serde(rename = "OldImage", default)]
    pub old_image: Option<HashMap<String, Value>>,
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
}

/// The partial batch response: the record Lambda retries from, if any.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamBatchResponse {
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemFailure {
    pub item_identifier: String,
}

/// The detail of every file event (schemas/events/*.json).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileEventDetail<'a> {
    schema_version: u32,
    event_id: &'a str,
    occurred_at: String,
    owner: &'a str,
    previous_status: Option<&'static str>,
    file: FileView<'a>,
}

pub const DETAIL_SCHEMA_VERSION: u32 = 1;

/// The event on the bus for `event`.
pub fn outbound(event: &FileEvent) -> Result<OutboundEvent, AppError> {
    let detail = FileEventDetail {
        schema_version: DETAIL_SCHEMA_VERSION,
        event_id: &event.id,
        occurred_at: format_timestamp(event.occurred_at)?,
        owner: event.owner.as_str(),
        previous_status: event.previous_status.map(|status| status.as_str()),
        file: FileView::of(&event.file)?,
    };
    Ok(OutboundEvent {
        detail_type: event.kind.detail_type(),
        detail: serde_json::to_string(&detail).map_err(|e| AppError::Internal(e.into()))?,
        time: event.occurred_at,
    })
}

impl StreamRecord {
    /// The change of a file record this stream record shows; `None` for any other item.
    pub fn file_change(&self) -> Option<FileChange> {
        let image = |image: &Option<HashMap<String, Value>>| {
            image
                .as_ref()
                .and_then(item_of_image)
                .and_then(|item| file_record_of_item(&item))
        };
        let (before, after) = (
            image(&self.dynamodb.old_image),
            image(&self.dynamodb.new_image),
        );
        if before.is_none() && after.is_none() {
            return None;
        }
        let occurred_at = self
            .dynamodb
            .approximate_creation_date_time
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs as i64).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        let expired = self.event_name == "REMOVE"
            && self.user_identity.as_ref().is_some_and(|identity| {
                identity.kind == "Service" && identity.principal_id == "dynamodb.amazonaws.com"
            });
        Some(FileChange {
            id: self.event_id.clone(),
            occurred_at,
            before,
            after,
            expired,
        })
    }
}

/// Publishes the file events of `batch`, in order (see the module's notes).
pub async fn publish_batch<B: EventBus>(bus: &B, batch: StreamBatch) -> StreamBatchResponse {
    let mut pending = Vec::new();
    for record in &batch.records {
        let Some(event) = record.file_change().and_then(FileChange::event) else {
            continue;
        };
        match outbound(&event) {
            Ok(outbound) => pending.push((record.dynamodb.sequence_number.as_str(), outbound)),
            // Nothing a retry could change: logged, and not allowed to hold up the stream.
            Err(error) => tracing::error!(event_id = event.id, %error, "file event not built"),
        }
    }
    for chunk in pending.chunks(MAX_ENTRIES_PER_CALL) {
        let events: Vec<OutboundEvent> = chunk.iter().map(|(_, event)| event.clone()).collect();
        let failed_at = match bus.put(&events).await {
            Ok(results) => results.iter().position(Option::is_some).inspect(|&index| {
                let code = results[index].as_deref().unwrap_or_default();
                tracing::warn!(code, "the bus refused a file event; retried from it");
            }),
            Err(error) => {
                let cause = std::error::Error::source(&error)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                tracing::warn!(%error, cause, "PutEvents failed; retried from the first event");
                Some(0)
            }
        };
        if let Some(index) = failed_at {
            return StreamBatchResponse {
                batch_item_failures: vec![BatchItemFailure {
                    item_identifier: chunk[index].0.to_owned(),
                }],
            };
        }
        for (_, event) in chunk {
            tracing::info!(detail_type = event.detail_type, "file event published");
        }
    }
    StreamBatchResponse::default()
}

/// A stream image (DynamoDB's JSON: `{"status": {"S": "pending"}, ...}`) as the SDK's item;
/// `None` for a value this table never holds.
fn item_of_image(image: &HashMap<String, Value>) -> Option<HashMap<String, AttributeValue>> {
    image
        .iter()
        .map(|(name, value)| Some((name.clone(), attribute(value)?)))
        .collect()
}

fn attribute(value: &Value) -> Option<AttributeValue> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    let strings = |inner: &Value| -> Option<Vec<String>> {
        inner
            .as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let binary = |text: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .map(aws_sdk_dynamodb::primitives::Blob::new)
    };
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_owned()),
        "N" => AttributeValue::N(inner.as_str()?.to_owned()),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(true),
        "B" => AttributeValue::B(binary(inner.as_str()?)?),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(attribute)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()?
                .iter()
                .map(|(name, value)| Some((name.clone(), attribute(value)?)))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}
