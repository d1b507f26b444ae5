//! The fake bucket: a versioned bucket of object descriptions and multipart uploads, signing
//! nothing real.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use presign_gate::bucket::{
    Completion, DownloadTarget, MultipartTarget, ObjectInfo, ObjectLookup, ObjectStorage,
    PartTarget, PartsLookup, PresignedRequest, UploadTarget, UrlSigner, Validity,
};
use presign_gate::domain::{ObjectKey, UploadedPart};
use presign_gate::error::AppError;
use time::OffsetDateTime;

use super::{Hook, Journal, Outages, Stalls, lock, small_object};

/// One version of a key, as a versioned S3 bucket keeps it: an object or a delete marker.
#[derive(Clone, Debug, PartialEq)]
pub enum Version {
    Object(ObjectInfo),
    DeleteMarker(String),
}

impl Version {
    fn id(&self) -> Option<&str> {
        match self {
            Version::Object(object) => object.version_id.as_deref(),
            Version::DeleteMarker(id) => Some(id),
        }
    }
}

/// A multipart upload the fake bucket holds: where it goes, and its parts by number.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeUpload {
    pub key: String,
    pub content_type: String,
    pub parts: BTreeMap<u32, u64>,
    /// When it was created: the epoch, as every object's date, unless a test says otherwise.
    pub initiated: OffsetDateTime,
}

/// A versioned bucket of object descriptions; it signs nothing real
/// (`https://bucket.invalid/<key>?…`).
///
/// Versioning is on, as on the deployed bucket, and follows the S3 User Guide ("Retaining
/// multiple versions of objects with S3 Versioning": "Deleting object versions from a
/// versioning-enabled bucket", "Working with delete markers"): each PUT adds a version with a new
/// id and makes it current; DeleteObject without a version id only adds a delete marker and keeps
/// every version; DeleteObject with a version id removes that version (or marker) for good. A PUT
/// with `If-None-Match: *` (S3 User Guide, "Conditional writes") fails only while the current
/// version is an object: it succeeds on a key with no version or a delete marker on top.
/// HeadObject answers from the current version, and, as S3 does for a role without s3:ListBucket
/// (S3 API reference, HeadObject, "Permissions"), with a 403 (`Denied`) when there is none.
#[derive(Clone, Debug, Default)]
pub struct FakeBucket {
    /// Every key's versions, oldest first.
    pub(super) objects: Arc<Mutex<BTreeMap<String, Vec<Version>>>>,
    pub(super) next_version: Arc<Mutex<u64>>,
    /// Every key deleted, shared with whoever made the bucket.
    pub deleted: Arc<Mutex<Vec<String>>>,
    /// Multipart uploads in progress, by upload id (S3 User Guide, "Uploading and copying
    /// objects using multipart upload": an upload holds its parts until it is completed, which
    /// assembles the object and ends the upload, or aborted, which frees them).
    pub(super) uploads: Arc<Mutex<BTreeMap<String, FakeUpload>>>,
    /// Runs once after an AbortMultipartUpload has removed its upload: a part upload that was in
    /// flight and lands anyway (Amazon S3 API Reference, AbortMultipartUpload: such part uploads
    /// "might or might not succeed").
    pub after_abort: Hook,
    /// The malware scanner's verdict tag (`GuardDutyMalwareScanStatus`) by key.
    pub scan_tags: Arc<Mutex<BTreeMap<String, String>>>,
    pub journal: Journal,
    pub outages: Outages,
    pub stalls: Stalls,
}

/// S3's 412 to a conditional write.
#[derive(Debug, PartialEq)]
pub struct PreconditionFailed;

/// The host of every URL the fake bucket signs.
pub const FAKE_BUCKET_URL: &str = "https://bucket.invalid/";

fn fake_url(method: &str, key: &str, validity: Validity) -> PresignedRequest {
    PresignedRequest {
        method: method.to_owned(),
        url: format!("{FAKE_BUCKET_URL}{key}?X-Amz-Signature=fake"),
        headers: Vec::new(),
        expires_at: OffsetDateTime::from(validity.start) + validity.lifetime,
    }
}

impl FakeBucket {
    fn new_version_id(&self) -> String {
        let mut next = lock(&self.next_version);
        *next += 1;
        format!("v{next}")
    }

    /// Puts an object at `key` as a PutObject without conditions would: a new current version
    /// (its `version_id` is the bucket's, whatever `object` says). Returns the version id.
    pub fn put(&self, key: &ObjectKey, object: ObjectInfo) -> String {
        let id = self.new_version_id();
        let version = Version::Object(ObjectInfo {
            version_id: Some(id.clone()),
            ..object
        });
        lock(&self.objects)
            .entry(key.as_str().to_owned())
            .or_default()
            .push(version);
        id
    }

    /// Makes `object` the only version of `key`, as if it had been the one upload there.
    pub fn replace(&self, key: &ObjectKey, object: ObjectInfo) -> String {
        lock(&self.objects).remove(key.as_str());
        self.put(key, object)
    }

    /// Puts an object as an upload URL does, with `If-None-Match: *`: refused (S3's 412) while
    /// the current version is an object, stored as a new version otherwise.
    pub fn put_if_none_match(
        &self,
        key: &ObjectKey,
        object: ObjectInfo,
    ) -> Result<String, PreconditionFailed> {
        if self.contains(key) {
            return Err(PreconditionFailed);
        }
        Ok(self.put(key, object))
    }

    /// Whether the current version of `key` is an object (what a GET would find).
    pub fn contains(&self, key: &ObjectKey) -> bool {
        matches!(self.current(key.as_str()), Some(Version::Object(_)))
    }

    /// Every version and delete marker of `key`, oldest first: what ListObjectVersions shows.
    pub fn versions(&self, key: &ObjectKey) -> Vec<Version> {
        lock(&self.objects)
            .get(key.as_str())
            .cloned()
            .unwrap_or_default()
    }

    /// How many versions and delete markers the whole bucket holds.
    pub fn version_count(&self) -> usize {
        lock(&self.objects).values().map(Vec::len).sum()
    }

    fn current(&self, key: &str) -> Option<Version> {
        lock(&self.objects)
            .get(key)
            .and_then(|versions| versions.last().cloned())
    }

    /// Stores part `number` of `size` bytes, as a PUT to its part URL does; `false` when the
    /// upload no longer exists (S3's `NoSuchUpload`).
    pub fn put_part(&self, upload_id: &str, number: u32, size: u64) -> bool {
        match lock(&self.uploads).get_mut(upload_id) {
            Some(upload) => {
                upload.parts.insert(number, size);
                true
            }
            None => false,
        }
    }

    /// The multipart uploads in progress, by upload id.
    pub fn uploads(&self) -> BTreeMap<String, FakeUpload> {
        lock(&self.uploads).clone()
    }

    /// Puts `upload` in progress under `upload_id`, as CreateMultipartUpload would have (or as a
    /// part landing after an abort leaves it), whatever was there.
    pub fn insert_upload(&self, upload_id: &str, upload: FakeUpload) {
        lock(&self.uploads).insert(upload_id.to_owned(), upload);
    }

    /// Removes every version of `key` without going through the port.
    pub fn delete_now(&self, key: &ObjectKey) {
        lock(&self.objects).remove(key.as_str());
    }

    pub(super) async fn call(&self, operation: &'static str, key: &str) -> Result<(), AppError> {
        self.journal.record(format!("{operation} {key}"));
        self.stalls.wait(operation).await;
        self.outages.check(operation)
    }
}

impl UrlSigner for FakeBucket {
    async fn presign_upload(
        &self,
        target: UploadTarget<'_>,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        self.call("bucket.presign_upload", target.key.as_str())
            .await?;
        Ok(fake_url("PUT", target.key.as_str(), validity))
    }

    async fn presign_download(
        &self,
        target: DownloadTarget<'_>,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        self.call("bucket.presign_download", target.key.as_str())
            .await?;
        Ok(fake_url("GET", target.key.as_str(), validity))
    }

    async fn presign_part(
        &self,
        target: PartTarget<'_>,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        self.call("bucket.presign_part", target.key.as_str())
            .await?;
        let mut url = fake_url("PUT", target.key.as_str(), validity);
        url.url = format!(
            "{}{}?partNumber={}&uploadId={}&X-Amz-Signature=fake",
            FAKE_BUCKET_URL,
            target.key.as_str(),
            target.part_number,
            target.upload_id
        );
        url.headers = vec![(
            "content-length".to_owned(),
            target.content_length.to_string(),
        )];
        if let Some(sha256) = target.sha256 {
            url.headers
                .push(("x-amz-checksum-sha256".to_owned(), sha256.to_owned()));
        }
        Ok(url)
    }
}

impl ObjectStorage for FakeBucket {
    async fn head(&self, key: &ObjectKey) -> Result<ObjectLookup, AppError> {
        self.call("bucket.head", key.as_str()).await?;
        let lookup = match self.current(key.as_str()) {
            Some(Version::Object(object)) => ObjectLookup::Found(object),
            Some(Version::DeleteMarker(_)) | None => ObjectLookup::Denied,
        };
        // S3 has answered; while the answer travels back, let another joined operation run.
        tokio::task::yield_now().await;
        Ok(lookup)
    }

    async fn delete_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> Result<(), AppError> {
        self.call("bucket.delete", key.as_str()).await?;
        let marker = version_id.is_none().then(|| self.new_version_id());
        {
            let mut objects = lock(&self.objects);
            let versions = objects.entry(key.as_str().to_owned()).or_default();
            match (version_id, marker) {
                (Some(id), _) => versions.retain(|version| version.id() != Some(id)),
                (None, Some(marker)) => versions.push(Version::DeleteMarker(marker)),
                (None, None) => {}
            }
            if versions.is_empty() {
                objects.remove(key.as_str());
            }
        }
        lock(&self.deleted).push(key.as_str().to_owned());
        // As after a HEAD: another joined operation may act while the answer travels back.
        tokio::task::yield_now().await;
        Ok(())
    }

    async fn create_multipart(&self, target: MultipartTarget<'_>) -> Result<String, AppError> {
        self.call("bucket.create_multipart", target.key.as_str())
            .await?;
        let id = format!("upload-{}", self.new_version_id());
        lock(&self.uploads).insert(
            id.clone(),
            FakeUpload {
                key: target.key.as_str().to_owned(),
                content_type: target.content_type.to_owned(),
                parts: BTreeMap::new(),
                initiated: OffsetDateTime::UNIX_EPOCH,
            },
        );
        Ok(id)
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<PartsLookup, AppError> {
        self.call("bucket.list_parts", key.as_str()).await?;
        Ok(match lock(&self.uploads).get(upload_id) {
            Some(upload) if upload.key == key.as_str() => PartsLookup::Found(
                upload
                    .parts
                    .iter()
                    .map(|(number, size)| UploadedPart {
                        part_number: *number,
                        size: *size,
                        etag: Some(format!("\"part-{number}\"")),
                        sha256: None,
                    })
                    .collect(),
            ),
            _ => PartsLookup::NoSuchUpload,
        })
    }

    /// Assembles the listed parts into a new version at the key, with the upload's type, unless an object is there (412 to `If-None-Match: *`) or the upload
    /// is gone; either way the upload ends only when it completes.
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<Completion, AppError> {
        self.call("bucket.complete_multipart", key.as_str()).await?;
        if self.contains(key) {
            return Ok(Completion::NotCompleted);
        }
        let Some(upload) = lock(&self.uploads).remove(upload_id) else {
            return Ok(Completion::NotCompleted);
        };
        let size = parts
            .iter()
            .map(|part| upload.parts.get(&part.part_number).copied())
            .sum::<Option<u64>>()
            .ok_or_else(|| {
                AppError::Internal("InvalidPart: a listed part was never uploaded".into())
            })?;
        let mut object = small_object(&upload.content_type);
        object.size = size;
        object.etag = format!("\"multipart-{}\"", parts.len());
        // The creation's Cache-Control is the one uploads sign: no unsigned header is stored.
        self.put(key, object);
        Ok(Completion::Completed)
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> Result<(), AppError> {
        self.call("bucket.abort_multipart", key.as_str()).await?;
        lock(&self.uploads).remove(upload_id);
        self.after_abort.run();
        Ok(())
    }
}
