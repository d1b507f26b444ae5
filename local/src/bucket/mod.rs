//! The bucket: s3s-fs's FileSystem (SigV4 is verified by s3s in front of it; object checksums and
//! conditional writes by s3s-fs) with what the deployed bucket does that s3s-fs 0.14.1 does not:
//!
//! - A write that fails stores nothing. s3s-fs writes the bytes into place before it compares
//!   the checksums, so after a `BadDigest` the bad object is there and a retry of the same
//!   presigned URL (`If-None-Match: *`) gets 412; on S3 the failed PUT stored nothing and the
//!   retry succeeds. Each PutObject and UploadPart here keeps a hard link to the previous file
//!   and puts it back when the write fails.
//! - UploadPart verifies the checksums its headers declare (`Content-MD5`, `x-amz-checksum-*`),
//!   as S3 does ("UploadPart", Amazon S3 API Reference: BadDigest); s3s-fs 0.14.1 checks none
//!   for a part.
//! - Multipart uploads answer as S3's do where s3s-fs 0.14.1 does not ("UploadPart", "ListParts",
//!   "CompleteMultipartUpload", Amazon S3 API Reference): an upload that does not exist (never
//!   created, completed or aborted) is `NoSuchUpload` (404) for UploadPart, ListParts and
//!   CompleteMultipartUpload; ListParts lists the parts in order with their ETags, at most
//!   `max-parts` (default and cap 1,000) after `part-number-marker`, with `IsTruncated` and
//!   `NextPartNumberMarker`; CompleteMultipartUpload checks the whole list (order, each part
//!   present with the ETag given, every part but the last at least 5 MiB) before it assembles
//!   anything, so a refused completion leaves the upload and its parts as they were (s3s-fs
//!   forgets the upload first and finds a missing part only while writing).
//! - ListMultipartUploads, which s3s-fs 0.14.1 does not implement, answers as S3's does (see
//!   `uploads`).
//! - Every successful PutObject, CopyObject, CompleteMultipartUpload, DeleteObject and
//!   DeleteObjects is reported to the [`Notifier`], and every object created to the malware
//!   scanner when the template has a plan (see `guardduty`).
//! - Object tags: PutObjectTagging, GetObjectTagging, DeleteObjectTagging, `x-amz-tagging` on
//!   PutObject, CreateMultipartUpload and CopyObject, `x-amz-tagging-count` on GetObject (see
//!   `tags`).

mod checksums;
mod parts;
mod snapshot;
mod tagging;
pub mod tags;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use s3s_fs::FileSystem;

use self::checksums::{DeclaredChecksums, Hashing};
use self::parts::StoredPart;
use self::snapshot::{Snapshot, settle};
use self::tags::TagStore;

use crate::guardduty::Scanner;
use crate::notifications::{EventName, Notifier, ObjectEvent};
use crate::s3_access::S3AccessControl;
use crate::uploads::UploadListing;
use crate::versions::current_version;

/// S3's minimum size of every part but the last.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// ListParts answers at most 1,000 parts per page.
const MAX_PARTS_LISTED: i32 = 1000;

/// Where s3s-fs keeps `bucket/key` under `root`; None for a key this wrapper does not touch (one
/// that climbs out with `..`, or a directory marker).
pub(crate) fn object_path(root: &Path, bucket: &str, key: &str) -> Option<PathBuf> {
    let relative = Path::new(bucket).join(key);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    (plain && !key.ends_with('/')).then(|| root.join(relative))
}

fn internal(error: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(S3ErrorCode::InternalError, error.to_string())
}

pub struct LocalBucket {
    files: FileSystem,
    root: PathBuf,
    notifier: Notifier,
    versioned: bool,
    /// Whether a missing key may be told apart from a forbidden one (see `hide_missing`).
    access: S3AccessControl,
    backups: AtomicU64,
    /// (upload id, part number) -> what UploadPart answered, so that ListParts and
    /// CompleteMultipartUpload need not read every part again (a part stored before a restart
    /// is hashed from its file, and its checksum is no longer known).
    stored_parts: Mutex<HashMap<(String, i32), StoredPart>>,
    /// The uploads in progress, for ListMultipartUploads.
    uploads: UploadListing,
    tags: TagStore,
    /// GuardDuty's stand-in, when the template has a malware protection plan.
    scanner: Option<Scanner>,
}

impl LocalBucket {
    /// `root` must be the directory `files` was opened on, canonicalized.
    pub fn new(
        files: FileSystem,
        root: PathBuf,
        notifier: Notifier,
        versioned: bool,
        access: S3AccessControl,
        tags: TagStore,
        scanner: Option<Scanner>,
    ) -> Self {
        Self {
            files,
            tags,
            scanner,
            uploads: UploadListing::new(root.clone()),
            root,
            notifier,
            versioned,
            access,
            backups: AtomicU64::new(0),
            stored_parts: Mutex::default(),
        }
    }

    /// Where s3s-fs keeps `bucket/key`; None for a key this wrapper does not touch (one that
    /// climbs out with `..`, or a directory marker).
    fn object_path(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        object_path(&self.root, bucket, key)
    }

    /// A backup name that s3s-fs removes at start (`.tmp.*.internal.part`) if one is left over.
    fn backup_path(&self) -> PathBuf {
        let n = self.backups.fetch_add(1, Ordering::Relaxed);
        self.root.join(format!(".tmp.local-aws-{n}.internal.part"))
    }

    async fn snapshot(&self, path: Option<PathBuf>) -> S3Result<Option<Snapshot>> {
        match path {
            Some(path) => Snapshot::take(path, self.backup_path(), &self.root)
                .await
                .map(Some)
                .map_err(|error| {
                    S3Error::with_message(S3ErrorCode::InternalError, error.to_string())
                }),
            None => Ok(None),
        }
    }

    async fn created(&self, name: EventName, bucket: String, key: String, e_tag: Option<&ETag>) {
        let path = self.object_path(&bucket, &key);
        let size = match &path {
            Some(path) => tokio::fs::metadata(path).await.map(|m| m.len()).ok(),
            None => None,
        };
        let e_tag = e_tag.map(|e_tag| e_tag.value().to_owned());
        if let (Some(scanner), Some(path), Some(e_tag)) = (&self.scanner, &path, &e_tag)
            && let Some(version) = current_version(path).await
        {
            scanner.object_created(&bucket, &key, &version, e_tag);
        }
        self.notifier.object_event(ObjectEvent {
            name,
            bucket,
            key,
            created: size.zip(e_tag),
        });
    }

    fn removed(&self, bucket: String, key: String, version_id: Option<&str>) {
        // A versioned bucket keeps the object and adds a delete marker, unless a version is named.
        let name = if self.versioned && version_id.is_none() {
            EventName::DeleteMarkerCreated
        } else {
            EventName::Delete
        };
        self.notifier.object_event(ObjectEvent {
            name,
            bucket,
            key,
            created: None,
        });
    }
}

fn signer<T>(req: &S3Request<T>) -> Option<String> {
    req.credentials.as_ref().map(|c| c.access_key.clone())
}

impl LocalBucket {
    /// The current version of `bucket/key` in a versioned bucket (None in one that is not, or
    /// when there is no object); `NoSuchVersion` when `named` is another version of an object
    /// that exists (Amazon S3 API Reference, GetObject, `versionId`).
    async fn version(
        &self,
        bucket: &str,
        key: &str,
        named: Option<&str>,
    ) -> S3Result<Option<String>> {
        if !self.versioned {
            return Ok(None);
        }
        let Some(path) = self.object_path(bucket, key) else {
            return Ok(None);
        };
        let current = current_version(&path).await;
        match (named, &current) {
            (Some(named), Some(current)) if named != current => Err(S3Error::with_message(
                S3ErrorCode::NoSuchVersion,
                "The specified version does not exist.",
            )),
            _ => Ok(current),
        }
    }

    /// S3 answers a GET or HEAD of a missing key with 403 AccessDenied, not 404 NoSuchKey, to a
    /// caller without `s3:ListBucket` on the bucket (Amazon S3 API Reference, GetObject and
    /// HeadObject, "Permissions"), so that it cannot learn which keys exist.
    fn hide_missing<T>(
        &self,
        result: S3Result<T>,
        signer: Option<&str>,
        bucket: &str,
    ) -> S3Result<T> {
        match result {
            Err(error)
                if *error.code() == S3ErrorCode::NoSuchKey
                    && !self.access.may_list(signer, bucket) =>
            {
                Err(S3Error::with_message(
                    S3ErrorCode::AccessDenied,
                    "Access Denied",
                ))
            }
            other => other,
        }
    }
}

/// Operations that s3s-fs implements and that change nothing the wrapper cares about. Spelled
/// as `#[async_trait]` expands a method, since the attribute does not look into macros.
macro_rules! forward {
    ($($operation:ident: $input:ty => $output:ty;)*) => {
        $(
            fn $operation<'life0, 'async_trait>(
                &'life0 self,
                req: S3Request<$input>,
            ) -> Pin<Box<dyn Future<Output = S3Result<S3Response<$output>>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                self.files.$operation(req)
            }
        )*
    };
}

#[async_trait::async_trait]
impl S3 for LocalBucket {
    forward! {
        create_bucket: CreateBucketInput => CreateBucketOutput;
        delete_bucket: DeleteBucketInput => DeleteBucketOutput;
        get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
        head_bucket: HeadBucketInput => HeadBucketOutput;
        list_buckets: ListBucketsInput => ListBucketsOutput;
        list_objects: ListObjectsInput => ListObjectsOutput;
        list_objects_v2: ListObjectsV2Input => ListObjectsV2Output;
        upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput;
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let (signer, bucket) = (signer(&req), req.input.bucket.clone());
        let version = self
            .version(&bucket, &req.input.key, req.input.version_id.as_deref())
            .await?;
        let key = req.input.key.clone();
        let mut result = self.files.get_object(req).await;
        if let Ok(response) = &mut result {
            response.output.tag_count = self.tag_count(&bucket, &key).await;
            response.output.version_id = version;
        }
        self.hide_missing(result, signer.as_deref(), &bucket)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (signer, bucket) = (signer(&req), req.input.bucket.clone());
        let version = self
            .version(&bucket, &req.input.key, req.input.version_id.as_deref())
            .await?;
        let mut result = self.files.head_object(req).await;
        if let Ok(response) = &mut result {
            response.output.version_id = version;
        }
        self.hide_missing(result, signer.as_deref(), &bucket)
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let tags = tags::parse_header(req.input.tagging.as_deref().unwrap_or_default())?;
        let snapshot = self.snapshot(self.object_path(&bucket, &key)).await?;
        let mut result = self.files.put_object(req).await;
        settle(snapshot, &result).await;
        if let Ok(response) = &mut result {
            self.tags.written(&bucket, &key, tags).await?;
            response.output.version_id = self.version(&bucket, &key, None).await?;
            let e_tag = response.output.e_tag.as_ref();
            self.created(EventName::Put, bucket, key, e_tag).await;
        }
        result
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let mut req = req;
        let upload_id = req.input.upload_id.clone();
        self.as_initiator(&mut req, &upload_id).await?;
        let path = self.part_path(&req.input.upload_id, req.input.part_number);
        let snapshot = self.snapshot(path).await?;
        let declared = DeclaredChecksums::of(&req.input);
        let hasher = Arc::new(Mutex::new(declared.hasher()));
        if let Some(body) = req.input.body.take() {
            req.input.body = Some(StreamingBlob::new(Hashing {
                body,
                hasher: hasher.clone(),
            }));
        }
        let part_number = req.input.part_number;
        let sha256 = declared.checksums.checksum_sha256.clone();
        let mut result = self.files.upload_part(req).await;
        if result.is_ok() {
            let hasher =
                std::mem::take(&mut *hasher.lock().unwrap_or_else(PoisonError::into_inner));
            if let Err(mismatch) = declared.verify(hasher) {
                result = Err(mismatch);
            }
        }
        settle(snapshot, &result).await;
        if let Ok(response) = &mut result
            && let Some(e_tag) = &response.output.e_tag
        {
            let e_tag = e_tag.value().to_owned();
            // S3 answers with the checksum it verified.
            response.output.checksum_sha256 = sha256.clone();
            self.stored_parts()
                .insert((upload_id, part_number), StoredPart { e_tag, sha256 });
        }
        result
    }

    async fn abort_multipart_upload(
        &self,
        mut req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let upload_id = req.input.upload_id.clone();
        self.as_initiator(&mut req, &upload_id).await?;
        let response = self.files.abort_multipart_upload(req).await?;
        self.tags.upload_ended(&upload_id);
        self.stored_parts().retain(|(id, _), _| *id != upload_id);
        self.uploads.ended(&upload_id).await;
        Ok(response)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let tags = tags::parse_header(req.input.tagging.as_deref().unwrap_or_default())?;
        let response = self.files.create_multipart_upload(req).await?;
        if let Some(upload_id) = &response.output.upload_id {
            self.uploads.created(&bucket, &key, upload_id).await?;
            self.tags.upload_created(upload_id, tags);
        }
        Ok(response)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        if !tokio::fs::try_exists(self.root.join(&req.input.bucket))
            .await
            .unwrap_or(false)
        {
            return Err(S3Error::new(S3ErrorCode::NoSuchBucket));
        }
        Ok(S3Response::new(self.uploads.list(req.input).await?))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let tags = self.copied_tags(&req.input).await?;
        let snapshot = self.snapshot(self.object_path(&bucket, &key)).await?;
        let mut result = self.files.copy_object(req).await;
        settle(snapshot, &result).await;
        if let Ok(response) = &mut result {
            self.tags.written(&bucket, &key, tags).await?;
            response.output.version_id = self.version(&bucket, &key, None).await?;
            let e_tag = response
                .output
                .copy_object_result
                .as_ref()
                .and_then(|r| r.e_tag.as_ref());
            self.created(EventName::Copy, bucket, key, e_tag).await;
        }
        result
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let upload_id = req.input.upload_id.clone();
        self.require_upload(&upload_id).await?;
        let max_parts = req
            .input
            .max_parts
            .filter(|max| *max > 0)
            .map_or(MAX_PARTS_LISTED, |max| max.min(MAX_PARTS_LISTED));
        let marker = req.input.part_number_marker.unwrap_or(0);
        let mut response = self.files.list_parts(req).await?;
        let mut parts = response.output.parts.take().unwrap_or_default();
        parts.retain(|part| part.part_number.unwrap_or(0) > marker);
        parts.sort_by_key(|part| part.part_number);
        let limit = usize::try_from(max_parts).unwrap_or(usize::MAX);
        let truncated = parts.len() > limit;
        parts.truncate(limit);
        for part in &mut parts {
            let number = part.part_number.unwrap_or(0);
            // A part removed between the listing and here (a concurrent retry) keeps neither.
            let stored = self.stored_part(&upload_id, number).await?;
            part.e_tag = stored.as_ref().map(|p| ETag::Strong(p.e_tag.clone()));
            part.checksum_sha256 = stored.and_then(|p| p.sha256);
        }
        let output = &mut response.output;
        output.part_number_marker = Some(marker);
        output.max_parts = Some(max_parts);
        output.is_truncated = Some(truncated);
        output.next_part_number_marker = parts.last().and_then(|part| part.part_number);
        output.parts = Some(parts);
        Ok(response)
    }

    async fn complete_multipart_upload(
        &self,
        mut req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.check_completion(&req.input).await?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let upload_id = req.input.upload_id.clone();
        self.as_initiator(&mut req, &upload_id).await?;
        let mut response = self.files.complete_multipart_upload(req).await?;
        self.stored_parts().retain(|(id, _), _| *id != upload_id);
        self.uploads.ended(&upload_id).await;
        let tags = self.tags.upload_ended(&upload_id);
        // s3s-fs has assembled the object; its answer (with the ETag) is a future that s3s
        // awaits while it keeps the connection alive.
        let e_tag = match response.output.future.take() {
            Some(future) => {
                let output = future.await?;
                let e_tag = output.e_tag.clone();
                response.output = output;
                e_tag
            }
            None => response.output.e_tag.clone(),
        };
        self.tags.written(&bucket, &key, tags).await?;
        response.output.version_id = self.version(&bucket, &key, None).await?;
        self.created(
            EventName::CompleteMultipartUpload,
            bucket,
            key,
            e_tag.as_ref(),
        )
        .await;
        Ok(response)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let version_id = req.input.version_id.clone();
        if let Some(named) = &version_id {
            // Deleting a version that is not there (any more) changes nothing, as on S3.
            let current = self.version(&bucket, &key, None).await?;
            if current.as_ref() != Some(named) {
                return Ok(S3Response::new(DeleteObjectOutput {
                    version_id,
                    ..DeleteObjectOutput::default()
                }));
            }
        }
        let mut response = self.files.delete_object(req).await?;
        self.tags.remove(&bucket, &key).await;
        response.output.version_id.clone_from(&version_id);
        self.removed(bucket, key, version_id.as_deref());
        Ok(response)
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let bucket = req.input.bucket.clone();
        let response = self.files.delete_objects(req).await?;
        for deleted in response.output.deleted.iter().flatten() {
            if let Some(key) = &deleted.key {
                self.tags.remove(&bucket, key).await;
                self.removed(bucket.clone(), key.clone(), deleted.version_id.as_deref());
            }
        }
        Ok(response)
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        self.put_tagging(req.input).await.map(S3Response::new)
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let (signer, bucket) = (signer(&req), req.input.bucket.clone());
        let result = self.get_tagging(req.input).await.map(S3Response::new);
        self.hide_missing(result, signer.as_deref(), &bucket)
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        self.delete_tagging(req.input).await.map(S3Response::new)
    }
}
