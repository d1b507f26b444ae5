//! What the events function is invoked with: S3's notifications (`s3_events`) and, when uploads
//! are scanned, GuardDuty's scan results forwarded by EventBridge (`scan_events`). One function
//! takes both, because both change the same records with the same role.

use lambda_runtime::Diagnostic;
use serde::{Deserialize, Deserializer};

use crate::bucket::{ObjectStorage, UrlSigner};
use crate::s3_events::{FailedRecords, S3Event, handle_s3_event};
use crate::scan_events::{FailedScanResult, ScanResultEvent, handle_scan_result};
use crate::service::FileService;
use crate::store::OwnershipStore;

pub enum InboundEvent {
    S3(S3Event),
    ScanResult(ScanResultEvent),
}

/// An EventBridge event has a `detail-type` (EventBridge User Guide, "Amazon EventBridge
/// events", the envelope's fields); an S3 notification has `Records` and no such field.
impl<'de> Deserialize<'de> for InboundEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("detail-type").is_some() {
            serde_json::from_value(value)
                .map(Self::ScanResult)
                .map_err(serde::de::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(Self::S3)
                .map_err(serde::de::Error::custom)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InboundEventFailed {
    #[error(transparent)]
    S3(#[from] FailedRecords),
    #[error(transparent)]
    ScanResult(#[from] FailedScanResult),
}

impl From<InboundEventFailed> for Diagnostic {
    fn from(failed: InboundEventFailed) -> Self {
        match failed {
            InboundEventFailed::S3(failed) => failed.into(),
            InboundEventFailed::ScanResult(failed) => failed.into(),
        }
    }
}

pub async fn handle_inbound_event<S, B>(
    files: &FileService<S, B>,
    bucket: &str,
    event: InboundEvent,
) -> Result<(), InboundEventFailed>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    match event {
        InboundEvent::S3(event) => Ok(handle_s3_event(files, event).await?),
        InboundEvent::ScanResult(event) => Ok(handle_scan_result(files, bucket, event).await?),
    }
}
