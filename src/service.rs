//! The application: what each use case does with the domain rules, the store and the bucket.
//! It is generic over the ports, so it runs the same against AWS, the stand-ins and mocks.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::bucket::{
    DownloadTarget, ObjectLookup, ObjectStorage, PresignedRequest, UploadTarget, UrlSigner,
    Validity,
};
use crate::domain::{
    Disposition, ExpiryPolicy, FileId, FileRecord, FileStatus, IdempotencyKey, LinkPolicy,
    NewUpload, ObjectKey, OwnerId, PartPlan, QuotaLimits, UploadPolicy, UploadRequest, Usage,
    check_disposition, content_disposition, purge_time,
};
use crate::error::AppError;
use crate::store::{OwnershipStore, Transition};

mod abort;
mod confirm;
mod grants;
mod idempotency;
mod links;
mod multipart;
mod reconcile;
mod scanning;
mod upload_url;
pub use confirm::Confirmation;
pub use links::LinkStatus;
pub use multipart::DEFAULT_MULTIPART_EXPIRY;
pub use reconcile::{ReconcileLimits, ReconcileReport};
pub use scanning::{ScanResult, ScanResultOutcome};

/// How long an unconfirmed reservation outlives its upload URL before the table's TTL may purge
/// it. Generous, so that a confirmation delayed by S3 event retries still finds its record.
const PENDING_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A record that keeps changing under a DELETE is read again this many times before the delete
/// counts as unavailable.
const DELETE_ATTEMPTS: u32 = 3;

/// Most ids one batch download request may name: one BatchGetItem reads at most 100 keys.
pub const MAX_BATCH_IDS: usize = 100;

/// The answer for one id of a batch: a URL, or why not.
pub type BatchItem = (String, Result<PresignedRequest, AppError>);

/// How the client sends the bytes of a new reservation.
#[derive(Debug)]
pub enum UploadInstructions {
    /// One presigned PUT.
    Put(PresignedRequest),
    /// Parts, each signed on request (`POST /files/{id}/parts`), until `expires_at`.
    Multipart {
        plan: PartPlan,
        expires_at: OffsetDateTime,
    },
}

/// What an S3 event about one object led to, for the log.
#[derive(Debug)]
pub enum ObjectEventOutcome {
    /// ObjectCreated for a reservation: the confirmation's verdict.
    Confirmed(Box<Confirmation>),
    /// ObjectCreated with no reservation behind it: the object was deleted.
    UnreservedDeleted,
    /// A key outside `users/`: nothing the function may touch.
    OutsideManagedPrefix,
    /// ObjectRemoved of a confirmed file: its record is gone too.
    RecordRemoved,
    /// ObjectRemoved with no confirmed record (already deleted, pending or rejected).
    Unchanged,
}

pub struct FileService<S, B> {
    store: S,
    bucket: B,
    uploads: UploadPolicy,
    expiry: ExpiryPolicy,
    quotas: QuotaLimits,
    /// How long a multipart reservation takes part URLs (`MULTIPART_EXPIRY_SECONDS`).
    multipart_expiry: Duration,
    links: LinkPolicy,
    /// Whether confirmed uploads wait in `scanning` for the malware scanner (`SCAN_UPLOADS`).
    scan_uploads: bool,
}

/// Now, in whole seconds: SigV4 dates have no fractions, so this is the instant a URL starts.
fn now() -> OffsetDateTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    OffsetDateTime::UNIX_EPOCH + Duration::from_secs(secs)
}

impl<S, B> FileService<S, B>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    pub fn new(store: S, bucket: B, uploads: UploadPolicy, expiry: ExpiryPolicy) -> Self {
        Self {
            store,
            bucket,
            uploads,
            expiry,
            quotas: QuotaLimits::default(),
            multipart_expiry: DEFAULT_MULTIPART_EXPIRY,
            links: LinkPolicy::default(),
            scan_uploads: false,
        }
    }

    /// The same service with confirmed uploads waiting in `scanning` for the malware scanner's
    /// verdict (`scan_result`) when `scan_uploads` is set.
    pub fn with_scanning(self, scan_uploads: bool) -> Self {
        Self {
            scan_uploads,
            ..self
        }
    }

    /// The same service with other per-owner quotas than the defaults.
    pub fn with_quotas(self, quotas: QuotaLimits) -> Self {
        Self { quotas, ..self }
    }

    /// The same service with multipart reservations lapsing after `expiry` instead of 24 h.
    pub fn with_multipart_expiry(self, expiry: Duration) -> Self {
        Self {
            multipart_expiry: expiry,
            ..self
        }
    }

    /// The same service with other share link lifetimes and limits than the defaults.
    pub fn with_links(self, links: LinkPolicy) -> Self {
        Self { links, ..self }
    }

    /// What may be uploaded, and from which size an upload is multipart (`GET /usage` says).
    pub fn upload_policy(&self) -> &UploadPolicy {
        &self.uploads
    }

    /// `GET /usage`: the caller's usage now, and its limits.
    pub async fn usage(&self, owner: &OwnerId) -> Result<(Usage, QuotaLimits), AppError> {
        let ledger = self.store.ledger(owner).await?;
        Ok((ledger.usage(now()), self.quotas))
    }

    /// Checks the request, writes the pending record (within the caller's quotas, atomically
    /// with its usage), and only then signs the upload URL: a URL never exists for an object
    /// that has no owner on record. A multipart upload is created first, since its record holds
    /// S3's upload id (see `reserve_multipart`).
    pub async fn reserve_upload(
        &self,
        owner: &OwnerId,
        request: UploadRequest,
    ) -> Result<(FileRecord, UploadInstructions), AppError> {
        self.reserve_upload_once(owner, request, None).await
    }

    /// `POST /uploads`, with the request's `Idempotency-Key` if it sent one: a reservation made
    /// with a key is made once, and a repeat of it answers the same file (see
    /// `service::idempotency`).
    pub async fn reserve_upload_once(
        &self,
        owner: &OwnerId,
        request: UploadRequest,
        key: Option<IdempotencyKey>,
    ) -> Result<(FileRecord, UploadInstructions), AppError> {
        let expires_in = request.expires_in;
        let upload = self.uploads.check(request)?;
        let lifetime = self.expiry.resolve(expires_in)?;
        // Boxed, each: the reservation's future, inlined whole into the API's, goes past the
        // compiler's layout depth limit in the crates that await the whole API. One allocation
        // per reservation.
        let Some(key) = key else {
            return Box::pin(self.reserve_new(owner, FileId::new_random(), upload, lifetime, None))
                .await;
        };
        Box::pin(self.reserve_idempotent(owner, key, upload, lifetime)).await
    }

    /// A new reservation under `id`: its record, then its upload URL or multipart plan.
    async fn reserve_new(
        &self,
        owner: &OwnerId,
        id: FileId,
        upload: NewUpload,
        lifetime: Duration,
        key: Option<IdempotencyKey>,
    ) -> Result<(FileRecord, UploadInstructions), AppError> {
        let created_at = now();
        if upload.parts.is_some() {
            return self
                .reserve_multipart(owner, id, upload, created_at, key)
                .await;
        }
        let mut record = FileRecord::pending(
            owner.clone(),
            id,
            upload,
            created_at,
            purge_time(created_at + lifetime + PENDING_GRACE),
        );
        record.idempotency_key = key;
        self.store
            .reserve(&record, &self.quotas, created_at)
            .await?;
        let url = self
            .sign_upload(&record, validity(created_at, lifetime))
            .await?;
        Ok((record, UploadInstructions::Put(url)))
    }

    /// The upload URL of a pending single-PUT record.
    async fn sign_upload(
        &self,
        record: &FileRecord,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        let target = UploadTarget {
            key: &record.key,
            content_type: &record.content_type,
            content_length: record.size,
            sha256: record.sha256.as_deref(),
        };
        self.bucket.presign_upload(target, validity).await
    }

    /// A download URL for the caller's own, confirmed file. Everything the request alone can
    /// get wrong is checked before the one consistent read of the record.
    pub async fn presign_download(
        &self,
        owner: &OwnerId,
        id: FileId,
        expires_in: Option<u64>,
        disposition: Disposition,
    ) -> Result<PresignedRequest, AppError> {
        let lifetime = self.expiry.resolve(expires_in)?;
        let record = self.file(owner, id).await?;
        self.sign_download(&record, disposition, validity(now(), lifetime))
            .await
    }

    /// Download URLs for many of the caller's files with one batch read: a gallery page costs
    /// one round trip instead of one per image. Each id gets exactly the answer the single
    /// route would give it; duplicates are answered once.
    pub async fn presign_downloads(
        &self,
        owner: &OwnerId,
        ids: &[String],
        expires_in: Option<u64>,
        disposition: Disposition,
    ) -> Result<Vec<BatchItem>, AppError> {
        if ids.is_empty() || ids.len() > MAX_BATCH_IDS {
            return Err(AppError::invalid(format!(
                "ids must hold 1 to {MAX_BATCH_IDS} file ids"
            )));
        }
        let lifetime = self.expiry.resolve(expires_in)?;
        let mut seen = HashSet::new();
        let requested: Vec<(&String, Option<FileId>)> = ids
            .iter()
            .filter(|text| seen.insert(text.as_str()))
            .map(|text| (text, FileId::parse(text)))
            .collect();
        let valid: Vec<FileId> = requested.iter().filter_map(|(_, id)| *id).collect();
        let records: HashMap<FileId, FileRecord> = self
            .store
            .get_many(owner, &valid)
            .await?
            .into_iter()
            .map(|record| (record.id, record))
            .collect();
        let validity = validity(now(), lifetime);
        let mut answers = Vec::with_capacity(requested.len());
        for (text, id) in requested {
            let answer = match id.and_then(|id| records.get(&id)) {
                None => Err(AppError::NotFound),
                Some(record) => match self.sign_download(record, disposition, validity).await {
                    // A fault on our side fails the whole request, not one entry.
                    Err(e @ (AppError::Internal(_) | AppError::Unavailable(_))) => return Err(e),
                    answer => answer,
                },
            };
            answers.push((text.clone(), answer));
        }
        Ok(answers)
    }

    /// The URL for a record the caller is known to own.
    async fn sign_download(
        &self,
        record: &FileRecord,
        disposition: Disposition,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        if record.status != FileStatus::Available {
            return Err(AppError::NotReady(record.status));
        }
        self.sign_object(
            &record.key,
            &record.content_type,
            &record.filename,
            disposition,
            validity,
        )
        .await
    }

    /// The download URL of an available file's object, served as `content_type` under
    /// `filename`.
    async fn sign_object(
        &self,
        key: &ObjectKey,
        content_type: &str,
        filename: &str,
        disposition: Disposition,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        check_disposition(content_type, disposition)?;
        let target = DownloadTarget {
            key,
            content_type,
            content_disposition: &content_disposition(disposition, filename),
        };
        self.bucket.presign_download(target, validity).await
    }

    /// The caller's record of `id`; `NotFound` for a missing file and for someone else's alike.
    pub async fn file(&self, owner: &OwnerId, id: FileId) -> Result<FileRecord, AppError> {
        self.store.get(owner, id).await?.ok_or(AppError::NotFound)
    }

    /// A page of the caller's files, and the id to continue after.
    pub async fn list_files(
        &self,
        owner: &OwnerId,
        limit: u32,
        after: Option<FileId>,
    ) -> Result<(Vec<FileRecord>, Option<FileId>), AppError> {
        self.store.list(owner, limit, after).await
    }

    /// Deletes the file for good: its object's version (no noncurrent version or delete marker
    /// stays behind on the versioned bucket), then the record. In that order, a failure in
    /// between leaves a record whose object is gone: a download URL for it reaches nothing, and
    /// deleting again finishes the job. The other order could leave bytes behind with nothing
    /// pointing at them.
    ///
    /// The record goes only while it is in the state read, so that its usage is released exactly
    /// once: if a confirmation changed it meanwhile, it is read again; if it is already gone,
    /// whoever removed it released its usage.
    ///
    /// Then the key is looked at once more: once the object is gone, `If-None-Match: *` no longer
    /// stops the reservation's upload URL, and bytes it stored before the record went would be
    /// confirmed as the still-available file by their S3 event and then orphaned. Bytes stored
    /// after this look find no record, and their event deletes them as a stray.
    ///
    /// A multipart upload not yet completed is aborted first, so that no part stays billed; an
    /// abort of an upload already gone succeeds, so a DELETE cut after it finishes on retry. A
    /// part still in flight may land after an abort, so the abort is checked with ListParts and
    /// repeated (`abort_for_good`, Amazon S3 API Reference, AbortMultipartUpload).
    pub async fn delete_file(&self, owner: &OwnerId, id: FileId) -> Result<(), AppError> {
        let record = self.file(owner, id).await?;
        if let Some(multipart) = &record.multipart
            && !record.status.is_uploaded()
        {
            self.abort_for_good(&record.key, &multipart.upload_id)
                .await?;
        }
        self.remove_object(&record.key).await?;
        let key = record.key.clone();
        self.remove_record(record).await?;
        self.remove_object(&key).await
    }

    /// Deletes `record` while it is as read, reading it again when a confirmation changed it.
    async fn remove_record(&self, mut record: FileRecord) -> Result<(), AppError> {
        for _ in 0..DELETE_ATTEMPTS {
            if self.store.delete(&record).await? == Transition::Applied {
                return Ok(());
            }
            match self.store.get(&record.owner, record.id).await? {
                Some(current) => record = current,
                None => return Ok(()),
            }
        }
        Err(AppError::Unavailable(
            "the record kept changing during the delete".into(),
        ))
    }

    /// Removes the object at `key` for good, by the version id HeadObject reports. No version
    /// but the current one can exist at our keys: every upload URL signs `If-None-Match: *` (and
    /// the bucket policy refuses a PUT without it), so a PUT succeeds only on a key with no
    /// current version, and the function never issues a DeleteObject without a version id, so no
    /// delete marker ever makes an older version noncurrent. Nothing there (404, or the 403 S3
    /// gives instead without s3:ListBucket) is nothing to remove.
    async fn remove_object(&self, key: &ObjectKey) -> Result<(), AppError> {
        match self.bucket.head(key).await? {
            ObjectLookup::Found(object) => {
                self.bucket
                    .delete_version(key, object.version_id.as_deref())
                    .await
            }
            ObjectLookup::Absent | ObjectLookup::Denied => Ok(()),
        }
    }

    /// S3 reports an object created at `key` (already URL-decoded). A reservation is confirmed
    /// exactly as by `complete`; anything else under `users/` is deleted, so nothing lands in the
    /// bucket outside the API's control.
    pub async fn object_created(&self, key: &str) -> Result<ObjectEventOutcome, AppError> {
        let record = match ObjectKey::parse(key) {
            Some((owner, id)) => self.store.get(&owner, id).await?,
            None => None,
        };
        if let Some(record) = record {
            let confirmation = self.confirm(record).await?;
            return Ok(ObjectEventOutcome::Confirmed(Box::new(confirmation)));
        }
        match ObjectKey::stray(key) {
            Some(stray) => {
                self.remove_object(&stray).await?;
                Ok(ObjectEventOutcome::UnreservedDeleted)
            }
            None => Ok(ObjectEventOutcome::OutsideManagedPrefix),
        }
    }

    /// S3 reports the object at `key` removed: a confirmed file's record goes with it, so
    /// listings never show files that no longer exist. Pending and rejected records stay: they
    /// describe a reservation, not an object.
    pub async fn object_removed(&self, key: &str) -> Result<ObjectEventOutcome, AppError> {
        let Some((owner, id)) = ObjectKey::parse(key) else {
            return Ok(ObjectEventOutcome::Unchanged);
        };
        let record = match self.store.get(&owner, id).await? {
            Some(record) if record.status.is_uploaded() => record,
            _ => return Ok(ObjectEventOutcome::Unchanged),
        };
        // Conditional on the record still being available: it releases its bytes only once.
        Ok(match self.store.delete(&record).await? {
            Transition::Applied => ObjectEventOutcome::RecordRemoved,
            Transition::Stale => ObjectEventOutcome::Unchanged,
        })
    }
}

/// `lifetime`, cut so that a URL signed at `start` ends no later than `ends_at` (a grant's or a
/// link's end), and never shorter than a second.
fn ending_by(lifetime: Duration, start: OffsetDateTime, ends_at: OffsetDateTime) -> Duration {
    let left = u64::try_from((ends_at - start).whole_seconds()).unwrap_or(0);
    lifetime.min(Duration::from_secs(left.max(1)))
}

fn validity(start: OffsetDateTime, lifetime: Duration) -> Validity {
    Validity {
        start: SystemTime::from(start),
        lifetime,
    }
}
