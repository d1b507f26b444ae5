//! The S3 adapter of `ObjectListing`: what only the reconciliation run asks of the bucket. Both
//! listings name exactly the prefix the reconciling role may list (its `s3:prefix` conditions in
//! template.yaml): a listing with any other prefix, or none, is refused.

use aws_sdk_s3::primitives::DateTime;
use time::OffsetDateTime;

use super::{
    ListedObject, ListedUpload, ObjectListing, ObjectPage, S3Bucket, SCAN_STATUS_TAG, UploadMarker,
    UploadPage,
};
use crate::backend_error::backend_error;
use crate::domain::ObjectKey;
use crate::error::AppError;

fn timestamp(at: Option<&DateTime>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(at?.secs()).ok()
}

impl ObjectListing for S3Bucket {
    async fn list_managed(
        &self,
        start_after: Option<&str>,
        max: u32,
    ) -> Result<ObjectPage, AppError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            // Exactly the prefix the reconciling role may list (its s3:prefix condition).
            .prefix(ObjectKey::PREFIX)
            .set_start_after(start_after.map(str::to_owned))
            .max_keys(i32::try_from(max).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(backend_error)?;
        let objects = output
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|object| {
                let last_modified =
                    OffsetDateTime::from_unix_timestamp(object.last_modified?.secs()).ok()?;
                Some(ListedObject {
                    key: object.key?,
                    last_modified,
                })
            })
            .collect();
        Ok(ObjectPage {
            objects,
            more: output.is_truncated.unwrap_or(false),
        })
    }

    async fn scan_status(&self, key: &ObjectKey) -> Result<Option<String>, AppError> {
        let output = self
            .client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await;
        match output {
            Ok(output) => Ok(output
                .tag_set
                .into_iter()
                .find(|tag| tag.key == SCAN_STATUS_TAG)
                .map(|tag| tag.value)),
            // Gone since it was listed (or, without s3:ListBucket, S3's 403 for a missing key).
            Err(err)
                if matches!(
                    err.raw_response().map(|r| r.status().as_u16()),
                    Some(403 | 404)
                ) =>
            {
                Ok(None)
            }
            Err(err) => Err(backend_error(err)),
        }
    }

    async fn list_uploads(
        &self,
        after: Option<&UploadMarker>,
        max: u32,
    ) -> Result<UploadPage, AppError> {
        // Amazon S3 API Reference, ListMultipartUploads: uploads in key order, at most
        // `max-uploads` (1,000 at most) a page, after `key-marker` and, for that key,
        // `upload-id-marker`; `IsTruncated` with `NextKeyMarker` and `NextUploadIdMarker` say
        // where the next page begins. Bounded as every call is, by the client's timeouts
        // (`aws::config_loader`), and by the run's deadline around it.
        let output = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            // s3:ListBucketMultipartUploads is granted with s3:prefix = users/ only.
            .prefix(ObjectKey::PREFIX)
            .set_key_marker(after.map(|marker| marker.key.clone()))
            .set_upload_id_marker(after.map(|marker| marker.upload_id.clone()))
            .max_uploads(i32::try_from(max).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(backend_error)?;
        // An entry without a key, id or date names nothing that could be aborted: skipped.
        let uploads = output
            .uploads()
            .iter()
            .filter_map(|upload| {
                Some(ListedUpload {
                    key: upload.key.clone()?,
                    upload_id: upload.upload_id.clone().filter(|id| !id.is_empty())?,
                    initiated: timestamp(upload.initiated.as_ref())?,
                })
            })
            .collect();
        let next = match (output.is_truncated, output.next_key_marker) {
            (Some(true), Some(key)) if !key.is_empty() => Some(UploadMarker {
                key,
                upload_id: output.next_upload_id_marker.unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(UploadPage { uploads, next })
    }
}
