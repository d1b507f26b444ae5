//! The fake bucket's listings: ListObjectsV2 and ListMultipartUploads under `users/`.

use presign_gate::bucket::{
    ListedObject, ListedUpload, ObjectListing, ObjectPage, UploadMarker, UploadPage,
};
use presign_gate::domain::ObjectKey;
use presign_gate::error::AppError;
use time::OffsetDateTime;

use super::{FakeBucket, Version, lock};

/// Objects listed in key order, all modified at the epoch (the tests of the reconciliation pass
/// the "now" that makes them old or young).
impl ObjectListing for FakeBucket {
    async fn list_managed(
        &self,
        start_after: Option<&str>,
        max: u32,
    ) -> Result<ObjectPage, AppError> {
        // A listing that can make no progress (a page of no objects, or the very listing the
        // caller asked for last, with nothing done in between) may be asked for again forever.
        // Refused loudly here, so that such a loop fails a test instead of hanging it.
        assert!(max > 0, "a listing asked for a page of no objects");
        let entry = format!("bucket.list_managed {}", start_after.unwrap_or_default());
        assert!(
            lock(&self.journal.0).last() != Some(&entry),
            "the same listing asked for twice in a row: {entry}"
        );
        self.call("bucket.list_managed", start_after.unwrap_or_default())
            .await?;
        let objects = lock(&self.objects);
        // ListObjectsV2 lists current versions only: a key whose current version is a delete
        // marker is not listed.
        let mut keys = objects
            .iter()
            .filter(|(_, versions)| matches!(versions.last(), Some(Version::Object(_))))
            .map(|(key, _)| key)
            .filter(|key| {
                key.starts_with("users/") && start_after.is_none_or(|after| key.as_str() > after)
            });
        let page: Vec<ListedObject> = keys
            .by_ref()
            .take(max as usize)
            .map(|key| ListedObject {
                key: key.clone(),
                last_modified: OffsetDateTime::UNIX_EPOCH,
            })
            .collect();
        Ok(ObjectPage {
            objects: page,
            more: keys.next().is_some(),
        })
    }

    async fn scan_status(&self, key: &ObjectKey) -> Result<Option<String>, AppError> {
        self.call("bucket.scan_status", key.as_str()).await?;
        Ok(lock(&self.scan_tags).get(key.as_str()).cloned())
    }

    /// ListMultipartUploads with the prefix `users/` (Amazon S3 API Reference,
    /// ListMultipartUploads): uploads in key order, and for one key in upload-id order; after
    /// `key-marker` alone, only greater keys; with `upload-id-marker` too, also that key's uploads
    /// with a greater id. `next` is the last upload listed when more follow.
    async fn list_uploads(
        &self,
        after: Option<&UploadMarker>,
        max: u32,
    ) -> Result<UploadPage, AppError> {
        assert!(max > 0, "a listing asked for a page of no uploads");
        let marker = after.map(|m| format!("{} {}", m.key, m.upload_id));
        let entry = format!("bucket.list_uploads {}", marker.clone().unwrap_or_default());
        assert!(
            lock(&self.journal.0).last() != Some(&entry),
            "the same listing asked for twice in a row: {entry}"
        );
        self.call("bucket.list_uploads", &marker.unwrap_or_default())
            .await?;
        let mut all: Vec<ListedUpload> = lock(&self.uploads)
            .iter()
            .filter(|(_, upload)| upload.key.starts_with("users/"))
            .map(|(id, upload)| ListedUpload {
                key: upload.key.clone(),
                upload_id: id.clone(),
                initiated: upload.initiated,
            })
            .filter(|upload| {
                after.is_none_or(|m| {
                    upload.key > m.key
                        || (upload.key == m.key
                            && !m.upload_id.is_empty()
                            && upload.upload_id > m.upload_id)
                })
            })
            .collect();
        all.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        let more = all.len() > max as usize;
        all.truncate(max as usize);
        let next = all.last().filter(|_| more).map(|last| UploadMarker {
            key: last.key.clone(),
            upload_id: last.upload_id.clone(),
        });
        Ok(UploadPage { uploads: all, next })
    }
}
