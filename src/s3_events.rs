//! The S3 face of the function: turns S3 notification records into the service's
//! `object_created` / `object_removed`, one record at a time.
//!
//! S3 invokes the function asynchronously, so a returned error makes Lambda retry the whole event
//! (twice) and then hand it to the on-failure destination. Every record is processed even when an
//! earlier one failed, and every state change is conditional, so a retry changes nothing for the
//! records that already succeeded: in effect only the failed ones are retried, and a record that
//! keeps failing ends in the destination rather than looping.

pub use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use lambda_runtime::Diagnostic;
use percent_encoding::percent_decode_str;
use tracing::Instrument;

use crate::bucket::{ObjectStorage, UrlSigner};
use crate::error::AppError;
use crate::service::{Confirmation, FileService, ObjectEventOutcome};
use crate::store::OwnershipStore;

/// One record of an event that failed: its object key (never anything secret) and why.
#[derive(Debug)]
pub struct FailedRecord {
    pub key: String,
    pub error: AppError,
}

/// The records of an event that failed. Lambda reports it with a stable `errorType` (see the
/// `Diagnostic` conversion), so failed events can be found by type in the logs and in the
/// on-failure destination.
#[derive(Debug, thiserror::Error)]
#[error("{} record(s) failed: {}", .0.len(), describe(.0))]
pub struct FailedRecords(pub Vec<FailedRecord>);

fn describe(records: &[FailedRecord]) -> String {
    records
        .iter()
        .map(|record| format!("{} ({})", record.key, record.error))
        .collect::<Vec<_>>()
        .join(", ")
}

impl FailedRecords {
    /// The keys of the failed records, in event order.
    pub fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|record| record.key.as_str()).collect()
    }

    /// `S3EventBackendUnavailable` when every failure was a throttled, timed-out or unreachable
    /// backend (a redrive later will likely succeed), `S3EventRecordsFailed` otherwise.
    pub fn error_type(&self) -> &'static str {
        if self
            .0
            .iter()
            .all(|record| matches!(record.error, AppError::Unavailable(_)))
        {
            "S3EventBackendUnavailable"
        } else {
            "S3EventRecordsFailed"
        }
    }
}

impl From<FailedRecords> for Diagnostic {
    fn from(failed: FailedRecords) -> Self {
        Diagnostic {
            error_type: failed.error_type().to_owned(),
            error_message: failed.to_string(),
        }
    }
}

pub async fn handle_s3_event<S, B>(
    files: &FileService<S, B>,
    event: S3Event,
) -> Result<(), FailedRecords>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    let mut failed = Vec::new();
    for record in event.records {
        let event_name = record.event_name.clone().unwrap_or_default();
        let raw_key = record.s3.object.key.clone().unwrap_or_default();
        let span = tracing::info_span!("s3_event", event_name, key = raw_key);
        if let Err(error) = handle_record(files, &event_name, &raw_key)
            .instrument(span)
            .await
        {
            // The source names the backend failure; it contains no URL or credential.
            let cause = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_default();
            tracing::error!(event_name, key = raw_key, error = %error, cause, "S3 event record failed");
            failed.push(FailedRecord {
                key: raw_key,
                error,
            });
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(FailedRecords(failed))
    }
}

async fn handle_record<S, B>(
    files: &FileService<S, B>,
    event_name: &str,
    raw_key: &str,
) -> Result<(), AppError>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    let Some(key) = decode_event_key(raw_key) else {
        // Nothing can be done with a key that does not decode; retrying would not help.
        tracing::warn!("S3 event key is not URL-encoded UTF-8; ignored");
        return Ok(());
    };
    // Boxed: each is a deep chain of futures (read, check, confirm or reject, delete, each with
    // its retries), and nested inline in the runtime's they overflow the compiler's query depth
    // when it lays out the function's future.
    let outcome = if event_name.starts_with("ObjectCreated:") {
        Box::pin(files.object_created(&key)).await
    } else if event_name.starts_with("ObjectRemoved:") {
        Box::pin(files.object_removed(&key)).await
    } else {
        tracing::info!("S3 event of another kind; ignored");
        return Ok(());
    };
    match outcome? {
        ObjectEventOutcome::Confirmed(confirmation) => match *confirmation {
            Confirmation::Accepted(record) => tracing::info!(
                caller = %record.owner,
                file_id = %record.id,
                status = record.status.as_str(),
                "upload confirmed"
            ),
            Confirmation::Rejected { reason, .. } => {
                tracing::warn!(reason, "upload rejected; object deleted")
            }
            Confirmation::Missing => {
                tracing::info!("object already gone; reservation left pending")
            }
        },
        ObjectEventOutcome::UnreservedDeleted => {
            tracing::warn!("object without a reservation deleted")
        }
        ObjectEventOutcome::OutsideManagedPrefix => {
            tracing::warn!("object outside users/ left alone: the function has no rights there")
        }
        ObjectEventOutcome::RecordRemoved => tracing::info!("object removed; record deleted"),
        ObjectEventOutcome::Unchanged => tracing::info!("object removed; no record to change"),
    }
    Ok(())
}

/// S3 event keys are URL-encoded, with `+` for a space (a literal `+` arrives as `%2B`).
pub fn decode_event_key(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|key| key.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_decode_like_s3_encodes_them() {
        assert_eq!(decode_event_key("users/alice/x").unwrap(), "users/alice/x");
        assert_eq!(decode_event_key("a+b%2Bc").unwrap(), "a b+c");
        // Our owner segments are percent-encoded in the key itself, so S3 encodes the `%`.
        assert_eq!(
            decode_event_key("users/auth0%257Cabc/x").unwrap(),
            "users/auth0%7Cabc/x"
        );
        assert_eq!(decode_event_key("%FF"), None);
    }

    #[test]
    fn failed_events_carry_a_stable_error_type() {
        let failed = |errors: Vec<AppError>| {
            FailedRecords(
                errors
                    .into_iter()
                    .enumerate()
                    .map(|(n, error)| FailedRecord {
                        key: format!("users/alice/{n}"),
                        error,
                    })
                    .collect(),
            )
        };
        let unavailable = || AppError::Unavailable("throttled".into());
        let transient = Diagnostic::from(failed(vec![unavailable(), unavailable()]));
        assert_eq!(transient.error_type, "S3EventBackendUnavailable");
        assert_eq!(
            transient.error_message,
            "2 record(s) failed: users/alice/0 (a backend is unavailable), \
             users/alice/1 (a backend is unavailable)"
        );
        let mixed = Diagnostic::from(failed(vec![
            unavailable(),
            AppError::Internal("AccessDenied".into()),
        ]));
        assert_eq!(mixed.error_type, "S3EventRecordsFailed");
        // The cause stays in the log: the message says only what the error's Display says.
        assert!(!mixed.error_message.contains("AccessDenied"));
    }
}
