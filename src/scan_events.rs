//! The GuardDuty face of the events function: the "GuardDuty Malware Protection Object Scan
//! Result" event that `ScanResultRule` forwards from the default event bus, turned into the
//! service's `scan_result`.
//!
//! The event's shape follows GuardDuty User Guide, "Monitoring S3 object scans with Amazon
//! EventBridge" (S3 object scan result): `detail.s3ObjectDetails` names the bucket, the key (not
//! URL-encoded, unlike S3's notifications), the ETag and the version; `detail.scanResultDetails.
//! scanResultStatus` is the verdict. Only the fields used are read, so a field GuardDuty adds
//! breaks nothing. An event for another source, detail-type or bucket than the rule selects is
//! ignored (and logged): the rule already filters, this is the second line.
//!
//! EventBridge invokes the function asynchronously, like S3: a returned error makes Lambda retry
//! (twice, EventInvokeConfig), then hand the event to the on-failure destination.

use lambda_runtime::Diagnostic;
use serde::Deserialize;

use crate::bucket::{ObjectStorage, UrlSigner};
use crate::domain::ScanVerdict;
use crate::error::AppError;
use crate::service::{FileService, ScanResult, ScanResultOutcome};
use crate::store::OwnershipStore;

pub const SCAN_RESULT_SOURCE: &str = "aws.guardduty";
pub const SCAN_RESULT_DETAIL_TYPE: &str = "GuardDuty Malware Protection Object Scan Result";

/// An EventBridge event as the rule delivers it, with the scan result's detail.
#[derive(Debug, Deserialize)]
pub struct ScanResultEvent {
    pub source: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub detail: ScanResultDetail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResultDetail {
    pub s3_object_details: S3ObjectDetails,
    pub scan_result_details: ScanResultDetails,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3ObjectDetails {
    pub bucket_name: String,
    pub object_key: String,
    /// `eTag` in AWS's sample; `etag` in some copies of it: both are read.
    #[serde(rename = "eTag", alias = "etag", default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub version_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanResultDetails {
    pub scan_result_status: String,
}

/// A scan result that could not be applied: its object key (never anything secret) and why.
#[derive(Debug, thiserror::Error)]
#[error("scan result for {key} failed: {error}")]
pub struct FailedScanResult {
    pub key: String,
    pub error: AppError,
}

impl From<FailedScanResult> for Diagnostic {
    fn from(failed: FailedScanResult) -> Self {
        let error_type = match failed.error {
            AppError::Unavailable(_) => "ScanResultBackendUnavailable",
            _ => "ScanResultFailed",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: failed.to_string(),
        }
    }
}

/// Applies one scan result to its file, for the bucket `bucket` only.
pub async fn handle_scan_result<S, B>(
    files: &FileService<S, B>,
    bucket: &str,
    event: ScanResultEvent,
) -> Result<(), FailedScanResult>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    let details = &event.detail.s3_object_details;
    let key = details.object_key.as_str();
    let status = event.detail.scan_result_details.scan_result_status.as_str();
    if event.source != SCAN_RESULT_SOURCE
        || event.detail_type != SCAN_RESULT_DETAIL_TYPE
        || details.bucket_name != bucket
    {
        tracing::warn!(
            source = event.source,
            detail_type = event.detail_type,
            key,
            "an event the scan-result rule should not have sent; ignored"
        );
        return Ok(());
    }
    let verdict = ScanVerdict::from_result_status(status);
    if verdict == ScanVerdict::Inconclusive {
        // ACCESS_DENIED is a deployment fault (GuardDuty's role cannot read the object), FAILED
        // GuardDuty's own: the file waits in `scanning`, and the reconciliation reports it.
        tracing::error!(
            key,
            status,
            "malware scan gave no verdict; the file stays scanning"
        );
    }
    let result = ScanResult {
        key,
        etag: details.etag.as_deref(),
        version_id: details.version_id.as_deref(),
        verdict,
    };
    let outcome = Box::pin(files.scan_result(result)).await.map_err(|error| {
        let cause = std::error::Error::source(&error)
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::error!(key, status, error = %error, cause, "scan result failed");
        FailedScanResult {
            key: key.to_owned(),
            error,
        }
    })?;
    match outcome {
        ScanResultOutcome::Available => tracing::info!(key, "scanned clean; file available"),
        ScanResultOutcome::Rejected(reason) => {
            tracing::warn!(
                key,
                reason = reason.as_str(),
                "upload rejected by the malware scan; object deleted"
            )
        }
        ScanResultOutcome::Deleted => {
            tracing::warn!(
                key,
                status,
                "an available file rescanned as malicious; file deleted"
            )
        }
        ScanResultOutcome::Unchanged(current) => {
            tracing::info!(
                key,
                status,
                current = current.as_str(),
                "scan result changed nothing"
            )
        }
        ScanResultOutcome::NoFile => tracing::info!(key, status, "scan result for no file"),
        ScanResultOutcome::NotUploaded => {
            tracing::info!(key, status, "scan result for an object no longer there")
        }
    }
    Ok(())
}
