//! The bucket, seen from the application: presigning URLs for the browser, and the few object
//! operations the server does itself. `s3` is the adapter for S3 and the S3 stand-in.

mod lifetime;
mod listing;
mod part_signer;
mod s3;

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

pub use s3::S3Bucket;
use time::OffsetDateTime;

use crate::domain::{ObjectKey, UploadedPart};
use crate::error::AppError;

/// A URL the browser may use once, with the headers it must send. `Debug` leaves the URL out: it
/// is a bearer credential and must never reach a log.
pub struct PresignedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for PresignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresignedRequest")
            .field("method", &self.method)
            .field("url", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Everything S3 must enforce on an upload, so that it is signed into the URL.
#[derive(Clone, Copy, Debug)]
pub struct UploadTarget<'a> {
    pub key: &'a ObjectKey,
    pub content_type: &'a str,
    pub content_length: u64,
    pub sha256: Option<&'a str>,
}

/// A multipart upload to create: S3 keeps the type and the `Cache-Control` given here for the
/// object the completion assembles (parts carry no headers of their own).
#[derive(Clone, Copy, Debug)]
pub struct MultipartTarget<'a> {
    pub key: &'a ObjectKey,
    pub content_type: &'a str,
    /// Every part will carry its SHA-256 (the upload is created with that checksum algorithm).
    pub part_sha256: bool,
}

/// One part of a multipart upload, signed with its exact length (and checksum, when declared),
/// so S3 refuses any other body.
#[derive(Clone, Copy)]
pub struct PartTarget<'a> {
    pub key: &'a ObjectKey,
    pub upload_id: &'a str,
    pub part_number: u32,
    pub content_length: u64,
    pub sha256: Option<&'a str>,
}

/// How S3 should label a download.
#[derive(Clone, Copy, Debug)]
pub struct DownloadTarget<'a> {
    pub key: &'a ObjectKey,
    pub content_type: &'a str,
    pub content_disposition: &'a str,
}

/// The `Cache-Control` of every file: a file is private to its owner, so no shared cache (CDN,
/// corporate proxy) may keep it, and the browser may not store it either.
///
/// Downloads are served with it (`response-cache-control`, signed into the URL), whatever the
/// object carries. Uploads sign it too, so the object stores it: without it, browsers add their
/// own. A PUT carrying `If-None-Match` gets `Cache-Control: max-age=0` from Chromium (the Fetch
/// standard turns a conditional request's cache mode to `no-store`), S3 stores that as the
/// object's, and the confirmation would refuse every browser upload for an unasked header.
pub const FILE_CACHE_CONTROL: &str = "private, no-store";

/// When a URL becomes valid and for how long. SigV4 dates have whole seconds, so `start` must be
/// whole too for `start + lifetime` to be the true end of validity.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub start: SystemTime,
    pub lifetime: Duration,
}

pub trait UrlSigner: Send + Sync {
    fn presign_upload(
        &self,
        target: UploadTarget<'_>,
        validity: Validity,
    ) -> impl Future<Output = Result<PresignedRequest, AppError>> + Send;

    fn presign_download(
        &self,
        target: DownloadTarget<'_>,
        validity: Validity,
    ) -> impl Future<Output = Result<PresignedRequest, AppError>> + Send;

    /// An UploadPart URL (PUT) for one part of a multipart upload.
    fn presign_part(
        &self,
        target: PartTarget<'_>,
        validity: Validity,
    ) -> impl Future<Output = Result<PresignedRequest, AppError>> + Send;

    /// UploadPart URLs for a batch of parts, in the order given, each exactly as `presign_part`
    /// would sign it. An adapter may share the work the parts have in common (credentials,
    /// endpoint, signing key); by default each is signed alone.
    fn presign_parts(
        &self,
        targets: &[PartTarget<'_>],
        validity: Validity,
    ) -> impl Future<Output = Result<Vec<PresignedRequest>, AppError>> + Send {
        async move {
            let mut urls = Vec::with_capacity(targets.len());
            for target in targets {
                urls.push(self.presign_part(*target, validity).await?);
            }
            Ok(urls)
        }
    }
}

/// What ListParts found for an upload.
#[derive(Clone, Debug, PartialEq)]
pub enum PartsLookup {
    /// The parts S3 holds, every page of them, by part number.
    Found(Vec<UploadedPart>),
    /// `NoSuchUpload`: the upload was completed or aborted (by a DELETE, or the bucket's
    /// lifecycle rule).
    NoSuchUpload,
}

/// How CompleteMultipartUpload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The object is assembled at the key.
    Completed,
    /// Not by this call: an object is at the key already (412 to `If-None-Match: *`), or the
    /// upload no longer exists (completed by an earlier call whose answer was lost, or aborted).
    /// The object at the key, if any, says which.
    NotCompleted,
}

/// What S3 says about a stored object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectInfo {
    pub size: u64,
    pub content_type: Option<String>,
    pub sha256: Option<String>,
    pub etag: String,
    /// The version HeadObject described; `None` only on a bucket without versioning.
    pub version_id: Option<String>,
    /// The stored headers that S3 keeps as the uploader sent them and that no upload URL signs
    /// with that value (`content-encoding`, `cache-control` other than `FILE_CACHE_CONTROL`,
    /// `content-disposition`, `content-language`, `expires`, and `x-amz-meta-*` for any user
    /// metadata), by name, sorted.
    pub unsigned_headers: Vec<String>,
}

/// What HeadObject found at a key.
#[derive(Clone, Debug, PartialEq)]
pub enum ObjectLookup {
    Found(ObjectInfo),
    /// 404: no object (or a delete marker) at the key.
    Absent,
    /// A 403: without `s3:ListBucket`, which neither role has, S3 answers HeadObject so for a key
    /// with no object (Amazon S3 API Reference, HeadObject, "Permissions"); it would also be the
    /// answer for an object the role may not read. The service decides what it means.
    Denied,
}

pub trait ObjectStorage: Send + Sync {
    fn head(&self, key: &ObjectKey) -> impl Future<Output = Result<ObjectLookup, AppError>> + Send;

    /// Deletes one version of the object for good (DeleteObject with its version id), which
    /// leaves neither a noncurrent version nor a delete marker behind. `None` is for a bucket
    /// without versioning (HeadObject reports no version there), where a plain DeleteObject is
    /// already permanent. Succeeds when the version is gone afterwards, including when it never
    /// existed.
    fn delete_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> impl Future<Output = Result<(), AppError>> + Send;

    /// CreateMultipartUpload, with the type and `FILE_CACHE_CONTROL` the object will carry
    /// (as a single PUT's URL signs them); returns S3's upload id.
    fn create_multipart(
        &self,
        target: MultipartTarget<'_>,
    ) -> impl Future<Output = Result<String, AppError>> + Send;

    /// ListParts, every page of it.
    fn list_parts(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> impl Future<Output = Result<PartsLookup, AppError>> + Send;

    /// CompleteMultipartUpload with `parts` (in order) and `If-None-Match: *`, so it never
    /// replaces an object.
    fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> impl Future<Output = Result<Completion, AppError>> + Send;

    /// AbortMultipartUpload, which frees every part. Succeeds when the upload no longer exists
    /// (`NoSuchUpload`), so a repeated abort finishes what an interrupted one started.
    fn abort_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), AppError>> + Send;
}

/// An object under `users/` as a listing reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedObject {
    pub key: String,
    pub last_modified: OffsetDateTime,
}

/// One page of a listing, and whether more objects follow it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectPage {
    pub objects: Vec<ListedObject>,
    pub more: bool,
}

/// A multipart upload in progress under `users/`, as ListMultipartUploads reports it. `Debug`
/// leaves the upload id out, as `MultipartUpload`'s does: it is what a part URL needs.
#[derive(Clone, PartialEq)]
pub struct ListedUpload {
    pub key: String,
    pub upload_id: String,
    /// When CreateMultipartUpload made it (S3's `Initiated`).
    pub initiated: OffsetDateTime,
}

impl fmt::Debug for ListedUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListedUpload")
            .field("key", &self.key)
            .field("upload_id", &"<redacted>")
            .field("initiated", &self.initiated)
            .finish()
    }
}

/// Where a listing of multipart uploads goes on: after this key and upload id (ListMultipartUploads'
/// `key-marker` and `upload-id-marker`).
#[derive(Clone, PartialEq, Eq)]
pub struct UploadMarker {
    pub key: String,
    pub upload_id: String,
}

impl fmt::Debug for UploadMarker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadMarker")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// One page of multipart uploads, and where the next begins (`None`: this was the last).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UploadPage {
    pub uploads: Vec<ListedUpload>,
    pub next: Option<UploadMarker>,
}

/// What only the reconciliation run needs of the bucket: to page through `users/` (where it
/// stopped is kept in the table: see `store::ReconcileCursor`), and through the multipart
/// uploads in progress there, and to read a scanning file's verdict tag.
pub trait ObjectListing: Send + Sync {
    /// Up to `max` objects under `users/`, in key order, after `start_after`.
    fn list_managed(
        &self,
        start_after: Option<&str>,
        max: u32,
    ) -> impl Future<Output = Result<ObjectPage, AppError>> + Send;

    /// Up to `max` multipart uploads in progress under `users/` (ListMultipartUploads with that
    /// prefix, the only one the reconciling role may list), in key order and, for one key, in
    /// S3's order, after `after`.
    fn list_uploads(
        &self,
        after: Option<&UploadMarker>,
        max: u32,
    ) -> impl Future<Output = Result<UploadPage, AppError>> + Send;

    /// The malware scanner's verdict tag on the object at `key` (`GuardDutyMalwareScanStatus`,
    /// GuardDuty User Guide, "Monitoring S3 object scans with GuardDuty managed tags"): the
    /// durable record of a scan whose event was lost. `None` when the object has no such tag,
    /// or is gone.
    fn scan_status(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = Result<Option<String>, AppError>> + Send;
}

/// The tag GuardDuty Malware Protection for S3 writes on each object it scans.
pub const SCAN_STATUS_TAG: &str = "GuardDutyMalwareScanStatus";
