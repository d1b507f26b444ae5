//! Aborting a multipart upload for good, for a DELETE.
//!
//! One AbortMultipartUpload may not be enough while parts are still arriving (Amazon S3 API
//! Reference, AbortMultipartUpload): "if any part uploads are currently in progress, those part
//! uploads might or might not succeed. As a result, it might be necessary to abort a given
//! multipart upload multiple times in order to completely free all storage consumed by all
//! parts." and "To verify that all parts have been removed ... you should call the ListParts
//! action and ensure that the parts list is empty." A DELETE of a file whose client is still
//! uploading parts races exactly that: so after each abort, ListParts must answer
//! `NoSuchUpload`, and the abort is repeated (a few times, with a short pause for the parts in
//! flight to land) until it does.

use std::time::Duration;

use super::FileService;
use crate::bucket::{ObjectStorage, PartsLookup, UrlSigner};
use crate::domain::ObjectKey;
use crate::error::AppError;
use crate::store::OwnershipStore;

/// Aborts a DELETE makes before it gives the upload up to the reconciliation.
pub(super) const ABORT_ATTEMPTS: u32 = 3;

/// The pause between two aborts: time for a part whose body was already on the wire to land.
/// Short: the DELETE runs inside the API function's 15 s, and a part still streaming after the
/// last attempt is left to the reconciliation (below).
const ABORT_PAUSE: Duration = Duration::from_millis(200);

impl<S, B> FileService<S, B>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    /// Aborts `upload_id` at `key` until ListParts says it no longer exists, at most
    /// `ABORT_ATTEMPTS` times. An upload that outlives them (a part still arriving) is not an
    /// error for the DELETE: once the record is gone, no pending record owns the upload, and the
    /// reconciliation run aborts it (`service::reconcile`, multipart uploads with no record),
    /// as the bucket's lifecycle rule would later still. Nobody can complete it meanwhile: the
    /// server completes only uploads its records name, and a part URL cannot complete anything.
    pub(super) async fn abort_for_good(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<(), AppError> {
        for attempt in 1..=ABORT_ATTEMPTS {
            self.bucket.abort_multipart(key, upload_id).await?;
            match self.bucket.list_parts(key, upload_id).await? {
                PartsLookup::NoSuchUpload => return Ok(()),
                PartsLookup::Found(parts) => {
                    tracing::info!(
                        attempt,
                        parts = parts.len(),
                        "the multipart upload outlived its abort (parts in flight); aborting again"
                    );
                }
            }
            if attempt < ABORT_ATTEMPTS {
                tokio::time::sleep(ABORT_PAUSE).await;
            }
        }
        tracing::warn!(
            key = key.as_str(),
            "the multipart upload is still there after {ABORT_ATTEMPTS} aborts; the \
             reconciliation aborts it once its record is gone"
        );
        Ok(())
    }
}
