//! The S3 face of the function: turns S3 notification records into the service's
//! `object_created` / `object_removed`, one record at a time.
//!
//! S3 invokes the function asynchronously, so a returned error makes Lambda retry the whole event
//! (twice) and then hand it to the on-failure destination. Every record is processed even when an
//! earlier one failed, and every state change is conditional, so a retry changes nothing for the
//! records that already succeeded: in effect only the failed ones are retried, and a record that
//! keeps failing ends in the destination rather than looping.

use std::fmt;

pub use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use percent_encoding::percent_decode_str;
use tracing::Instrument;

use crate::service::{Confirmation, FileService, ObjectEventOutcome};
use crate::storage::{ObjectStorage, UrlSigner};
use crate::store::OwnershipStore;

/// The records of an event that failed, named by their object keys (never anything secret).
#[derive(Debug)]
pub struct FailedRecords(pub Vec<String>);

impl fmt::Display for FailedRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} record(s) failed: {}",
            self.0.len(),
            self.0.join(", ")
        )
    }
}

impl std::error::Error for FailedRecords {}

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
            tracing::error!(event_name, key = raw_key, cause = %error, "S3 event record failed");
            failed.push(raw_key);
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
) -> Result<(), String>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    let Some(key) = decode_event_key(raw_key) else {
        // Nothing can be done with a key that does not decode; retrying would not help.
        tracing::warn!("S3 event key is not URL-encoded UTF-8; ignored");
        return Ok(());
    };
    let outcome = if event_name.starts_with("ObjectCreated:") {
        files.object_created(&key).await
    } else if event_name.starts_with("ObjectRemoved:") {
        files.object_removed(&key).await
    } else {
        tracing::info!("S3 event of another kind; ignored");
        return Ok(());
    };
    let outcome = outcome.map_err(|error| {
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        format!("{error}: {}", cause.unwrap_or_default())
    })?;
    match outcome {
        ObjectEventOutcome::Confirmed(confirmation) => match *confirmation {
            Confirmation::Available(record) => {
                tracing::info!(caller = %record.owner, file_id = %record.id, "upload confirmed")
            }
            Confirmation::Rejected { reason } => {
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
}
