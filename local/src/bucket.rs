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
//! - Every successful PutObject, CopyObject, CompleteMultipartUpload, DeleteObject and
//!   DeleteObjects is reported to the [`Notifier`].

use std::future::Future;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use s3s_fs::FileSystem;

use crate::notifications::{EventName, Notifier, ObjectEvent};

pub struct LocalBucket {
    files: FileSystem,
    root: PathBuf,
    notifier: Notifier,
    versioned: bool,
    backups: AtomicU64,
}

impl LocalBucket {
    /// `root` must be the directory `files` was opened on, canonicalized.
    pub fn new(files: FileSystem, root: PathBuf, notifier: Notifier, versioned: bool) -> Self {
        Self {
            files,
            root,
            notifier,
            versioned,
            backups: AtomicU64::new(0),
        }
    }

    /// Where s3s-fs keeps `bucket/key`; None for a key this wrapper does not touch (one that
    /// climbs out with `..`, or a directory marker).
    fn object_path(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        let relative = Path::new(bucket).join(key);
        let plain = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        (plain && !key.ends_with('/')).then(|| self.root.join(relative))
    }

    /// Where s3s-fs keeps a part of a multipart upload (`FileSystem::resolve_upload_part_path`).
    fn part_path(&self, upload_id: &str, part_number: i32) -> Option<PathBuf> {
        let plain =
            !upload_id.is_empty() && upload_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        plain.then(|| {
            self.root
                .join(format!(".upload_id-{upload_id}.part-{part_number}"))
        })
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
        let size = match self.object_path(&bucket, &key) {
            Some(path) => tokio::fs::metadata(path).await.map(|m| m.len()).ok(),
            None => None,
        };
        let e_tag = e_tag.map(|e_tag| e_tag.value().to_owned());
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

/// The state of one file before a write, to put back if the write fails.
struct Snapshot {
    path: PathBuf,
    /// A hard link to the previous file, if there was one.
    backup: Option<PathBuf>,
    /// Directories the write may create (deepest first), to remove again.
    missing_dirs: Vec<PathBuf>,
}

impl Snapshot {
    async fn take(path: PathBuf, backup: PathBuf, root: &Path) -> io::Result<Self> {
        let backup = match tokio::fs::hard_link(&path, &backup).await {
            Ok(()) => Some(backup),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        let mut missing_dirs = Vec::new();
        for dir in path.ancestors().skip(1) {
            if dir == root || tokio::fs::try_exists(dir).await? {
                break;
            }
            missing_dirs.push(dir.to_owned());
        }
        Ok(Self {
            path,
            backup,
            missing_dirs,
        })
    }

    async fn restore(self) {
        match &self.backup {
            Some(backup) => {
                if let Err(error) = tokio::fs::rename(backup, &self.path).await {
                    tracing::error!(%error, "could not restore an object after a failed write");
                }
            }
            None => {
                let _ = tokio::fs::remove_file(&self.path).await;
                for dir in &self.missing_dirs {
                    // Only empty directories go: another write may have put something there.
                    let _ = tokio::fs::remove_dir(dir).await;
                }
            }
        }
        self.discard().await;
    }

    async fn discard(self) {
        // After a rename onto a link of the same file (nothing was written) the backup stays.
        if let Some(backup) = self.backup {
            let _ = tokio::fs::remove_file(backup).await;
        }
    }
}

async fn settle<T>(snapshot: Option<Snapshot>, result: &S3Result<T>) {
    match (snapshot, result) {
        (Some(snapshot), Err(_)) => snapshot.restore().await,
        (Some(snapshot), Ok(_)) => snapshot.discard().await,
        (None, _) => {}
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
        get_object: GetObjectInput => GetObjectOutput;
        head_bucket: HeadBucketInput => HeadBucketOutput;
        head_object: HeadObjectInput => HeadObjectOutput;
        list_buckets: ListBucketsInput => ListBucketsOutput;
        list_objects: ListObjectsInput => ListObjectsOutput;
        list_objects_v2: ListObjectsV2Input => ListObjectsV2Output;
        create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
        upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput;
        list_parts: ListPartsInput => ListPartsOutput;
        abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let snapshot = self.snapshot(self.object_path(&bucket, &key)).await?;
        let result = self.files.put_object(req).await;
        settle(snapshot, &result).await;
        if let Ok(response) = &result {
            let e_tag = response.output.e_tag.as_ref();
            self.created(EventName::Put, bucket, key, e_tag).await;
        }
        result
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let path = self.part_path(&req.input.upload_id, req.input.part_number);
        let snapshot = self.snapshot(path).await?;
        let mut req = req;
        let declared = DeclaredChecksums::of(&req.input);
        let hasher = Arc::new(Mutex::new(declared.hasher()));
        if let Some(body) = req.input.body.take() {
            req.input.body = Some(StreamingBlob::new(Hashing {
                body,
                hasher: hasher.clone(),
            }));
        }
        let mut result = self.files.upload_part(req).await;
        if result.is_ok() {
            let hasher =
                std::mem::take(&mut *hasher.lock().unwrap_or_else(PoisonError::into_inner));
            if let Err(mismatch) = declared.verify(hasher) {
                result = Err(mismatch);
            }
        }
        settle(snapshot, &result).await;
        result
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let snapshot = self.snapshot(self.object_path(&bucket, &key)).await?;
        let result = self.files.copy_object(req).await;
        settle(snapshot, &result).await;
        if let Ok(response) = &result {
            let e_tag = response
                .output
                .copy_object_result
                .as_ref()
                .and_then(|r| r.e_tag.as_ref());
            self.created(EventName::Copy, bucket, key, e_tag).await;
        }
        result
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let mut response = self.files.complete_multipart_upload(req).await?;
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
        let response = self.files.delete_object(req).await?;
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
                self.removed(bucket.clone(), key.clone(), deleted.version_id.as_deref());
            }
        }
        Ok(response)
    }
}

/// The checksums a part's headers declare.
struct DeclaredChecksums {
    content_md5: Option<String>,
    checksums: Checksum,
}

/// The digests of a body as it streams past, for the algorithms that were declared.
#[derive(Default)]
struct PartHasher {
    md5: Option<Md5>,
    checksums: ChecksumHasher,
}

impl DeclaredChecksums {
    fn of(input: &UploadPartInput) -> Self {
        Self {
            content_md5: input.content_md5.clone(),
            checksums: Checksum {
                checksum_crc32: input.checksum_crc32.clone(),
                checksum_crc32c: input.checksum_crc32c.clone(),
                checksum_crc64nvme: input.checksum_crc64nvme.clone(),
                checksum_sha1: input.checksum_sha1.clone(),
                checksum_sha256: input.checksum_sha256.clone(),
                ..Checksum::default()
            },
        }
    }

    fn hasher(&self) -> PartHasher {
        let c = &self.checksums;
        PartHasher {
            md5: self.content_md5.as_ref().map(|_| Md5::new()),
            checksums: ChecksumHasher {
                crc32: c.checksum_crc32.as_ref().map(|_| Default::default()),
                crc32c: c.checksum_crc32c.as_ref().map(|_| Default::default()),
                sha1: c.checksum_sha1.as_ref().map(|_| Default::default()),
                sha256: c.checksum_sha256.as_ref().map(|_| Default::default()),
                crc64nvme: c.checksum_crc64nvme.as_ref().map(|_| Default::default()),
            },
        }
    }

    fn verify(&self, hasher: PartHasher) -> S3Result<()> {
        use base64::Engine as _;
        let md5 = hasher
            .md5
            .map(|md5| base64::engine::general_purpose::STANDARD.encode(md5.finalize()));
        let got = hasher.checksums.finalize();
        let c = &self.checksums;
        let matches = md5 == self.content_md5
            && got.checksum_crc32 == c.checksum_crc32
            && got.checksum_crc32c == c.checksum_crc32c
            && got.checksum_sha1 == c.checksum_sha1
            && got.checksum_sha256 == c.checksum_sha256
            && got.checksum_crc64nvme == c.checksum_crc64nvme;
        if matches {
            Ok(())
        } else {
            Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                "a checksum of the part does not match",
            ))
        }
    }
}

/// A part's body, hashed as s3s-fs reads it.
struct Hashing {
    body: StreamingBlob,
    hasher: Arc<Mutex<PartHasher>>,
}

impl Stream for Hashing {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.body).poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            let mut hasher = self.hasher.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(md5) = &mut hasher.md5 {
                md5.update(bytes);
            }
            hasher.checksums.update(bytes);
        }
        polled
    }
}

impl ByteStream for Hashing {
    fn remaining_length(&self) -> RemainingLength {
        self.body.remaining_length()
    }
}
