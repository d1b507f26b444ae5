//! Multipart uploads: reserving one (S3 creates the upload, the record keeps its id), signing
//! part URLs of exactly the planned lengths, listing what S3 holds, and completing it.
//!
//! The upload id never leaves the server except inside the part URLs, where S3 requires it; the
//! record is the only place it is kept. Every step is repeatable: a `complete` cut after S3
//! assembled the object finds the object on retry and confirms it; a DELETE cut after the abort
//! aborts again (S3's `NoSuchUpload` counts as done) and removes the record.

use std::time::Duration;

use time::OffsetDateTime;

use super::{FileService, PENDING_GRACE, UploadInstructions, now, validity};
use crate::bucket::{
    Completion, MultipartTarget, ObjectLookup, ObjectStorage, PartTarget, PartsLookup,
    PresignedRequest, UrlSigner,
};
use crate::domain::{
    FileId, FileRecord, FileStatus, IdempotencyKey, MAX_PARTS_PER_REQUEST, MultipartUpload,
    NewUpload, ObjectKey, OwnerId, PartPlan, PartsRequest, PartsVerdict, RejectReason,
    UploadedPart, lifecycle_abort_by, purge_time,
};
use crate::error::AppError;
use crate::store::{OwnershipStore, Transition};

/// How long a multipart reservation takes part URLs when `MULTIPART_EXPIRY_SECONDS` is unset.
/// The bucket's lifecycle rule aborts incomplete uploads one day after they start, never sooner.
pub const DEFAULT_MULTIPART_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// The part URLs of one request, by part number, in the order asked.
pub type PartUrls = Vec<(u32, PresignedRequest)>;

impl<S, B> FileService<S, B>
where
    S: OwnershipStore,
    B: UrlSigner + ObjectStorage,
{
    /// The caller's quotas are checked first, on one consistent read of the ledger: a caller
    /// over them is refused (429) before anything is created, so a refused reservation costs no
    /// CreateMultipartUpload and no AbortMultipartUpload. Then S3 creates the upload, because the
    /// record holds its id; then the record is written, and the transaction that writes it is
    /// what decides the quotas (another reservation may have landed since the check). If that
    /// fails (a quota lost to a race, an outage), the upload is aborted at once: no record names
    /// it, so nothing else ever would (and should that abort fail too, or the request be cut
    /// before it, the bucket's lifecycle rule aborts it within days). No part URL exists until
    /// the record does.
    pub(super) async fn reserve_multipart(
        &self,
        owner: &OwnerId,
        id: FileId,
        upload: NewUpload,
        created_at: OffsetDateTime,
        key: Option<IdempotencyKey>,
    ) -> Result<(FileRecord, UploadInstructions), AppError> {
        // Boxed: one more SDK future inlined here takes the reservation's future past the
        // compiler's layout depth limit in the crates that await the whole API.
        Box::pin(self.store.ledger(owner))
            .await?
            .check(upload.size, created_at, &self.quotas)?;
        let object_key = ObjectKey::for_file(owner, id);
        let upload_id = self
            .bucket
            .create_multipart(MultipartTarget {
                key: &object_key,
                content_type: &upload.content_type,
                part_sha256: upload.parts.is_some_and(|plan| plan.part_sha256()),
            })
            .await?;
        let expires_at = created_at + self.multipart_expiry;
        let mut record = FileRecord::pending_multipart(
            owner.clone(),
            id,
            upload,
            created_at,
            multipart_purge_at(expires_at, now()),
            upload_id.clone(),
            expires_at,
        )?;
        record.idempotency_key = key;
        if let Err(error) = self.store.reserve(&record, &self.quotas, created_at).await {
            if let Err(abort) = self.bucket.abort_multipart(&object_key, &upload_id).await {
                tracing::warn!(error = %abort, "abort of an unrecorded multipart upload failed; the lifecycle rule will");
            }
            return Err(error);
        }
        let plan = record
            .multipart
            .as_ref()
            .map(|multipart| multipart.plan)
            .ok_or_else(|| AppError::Internal("a multipart record without its upload".into()))?;
        Ok((record, UploadInstructions::Multipart { plan, expires_at }))
    }

    /// `POST /files/{id}/parts`: URLs for up to 100 parts of the caller's pending multipart
    /// upload, after one consistent read of its record. Each signs the part's planned length and
    /// the SHA-256 the client declared for it, if any.
    pub async fn presign_parts(
        &self,
        owner: &OwnerId,
        id: FileId,
        request: PartsRequest,
    ) -> Result<PartUrls, AppError> {
        // What the request alone can get wrong, before the read.
        if request.parts.is_empty() || request.parts.len() > MAX_PARTS_PER_REQUEST {
            return Err(AppError::invalid(format!(
                "parts must hold 1 to {MAX_PARTS_PER_REQUEST} entries"
            )));
        }
        for part in &request.parts {
            if let Some(sha256) = &part.sha256 {
                crate::domain::check_sha256(sha256)?;
            }
        }
        let lifetime = self.expiry.resolve(request.expires_in)?;
        let record = self.file(owner, id).await?;
        let multipart = open_upload(&record)?;
        let signed_at = now();
        if signed_at >= multipart.expires_at {
            return Err(AppError::NotPending(
                "the multipart reservation has lapsed; reserve the file again".into(),
            ));
        }
        let numbers: Vec<u32> = request.parts.iter().map(|part| part.part_number).collect();
        multipart.plan.check_batch(&numbers)?;
        multipart.plan.check_part_checksums(&request.parts)?;
        let validity = validity(signed_at, lifetime);
        let targets = request
            .parts
            .iter()
            .map(|part| {
                let content_length =
                    multipart
                        .plan
                        .part_length(part.part_number)
                        .ok_or_else(|| {
                            AppError::Internal("a checked part number outside the plan".into())
                        })?;
                Ok(PartTarget {
                    key: &record.key,
                    upload_id: &multipart.upload_id,
                    part_number: part.part_number,
                    content_length,
                    sha256: part.sha256.as_deref(),
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        // One batch: the adapter signs the parts' common pieces once (see `UrlSigner`).
        let signed = self.bucket.presign_parts(&targets, validity).await?;
        if signed.len() != targets.len() {
            return Err(AppError::Internal("a part URL went missing".into()));
        }
        let urls: PartUrls = targets
            .iter()
            .map(|target| target.part_number)
            .zip(signed)
            .collect();
        Ok(urls)
    }

    /// `GET /files/{id}/parts`: the plan of the caller's pending multipart upload and the parts
    /// S3 holds (every page of ListParts), so that a client that lost its state can resume.
    pub async fn uploaded_parts(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> Result<(PartPlan, Vec<UploadedPart>), AppError> {
        let record = self.file(owner, id).await?;
        let multipart = open_upload(&record)?;
        match self
            .bucket
            .list_parts(&record.key, &multipart.upload_id)
            .await?
        {
            PartsLookup::Found(parts) => Ok((multipart.plan, parts)),
            PartsLookup::NoSuchUpload => Err(AppError::NotPending(
                "the multipart upload takes no more parts (it was completed or aborted); call \
                 complete to learn its state"
                    .into(),
            )),
        }
    }

    /// Completes the multipart upload of `record` at S3, when every planned part is there with
    /// its planned length, so that the confirmation that follows finds the object. Nothing to do
    /// when the object is there already (an earlier `complete` cut short after S3 assembled it).
    /// A rejected record's upload is aborted again, in case an earlier abort failed.
    pub(super) async fn finish_multipart(
        &self,
        record: &FileRecord,
        multipart: &MultipartUpload,
    ) -> Result<(), AppError> {
        match record.status {
            FileStatus::Available | FileStatus::Scanning => return Ok(()),
            FileStatus::Rejected => {
                return self
                    .bucket
                    .abort_multipart(&record.key, &multipart.upload_id)
                    .await;
            }
            FileStatus::Pending => {}
        }
        if self.object_exists(&record.key).await? {
            return Ok(());
        }
        // Past its life the reservation completes nothing: its place in the quota is bounded by
        // that life (see `multipart_purge_at`), and new reservations may count on it being over.
        // The object above, if any, was completed in time: no one but this function can complete
        // an upload, and it does so only here, after this check.
        if now() >= multipart.expires_at {
            self.bucket
                .abort_multipart(&record.key, &multipart.upload_id)
                .await?;
            return Err(AppError::ReservationLapsed(
                "the multipart reservation lapsed (its expiresAt has passed) before it was \
                 completed; its upload has been aborted: reserve the file again"
                    .into(),
            ));
        }
        let parts = match self
            .bucket
            .list_parts(&record.key, &multipart.upload_id)
            .await?
        {
            PartsLookup::Found(parts) => parts,
            // Completed meanwhile (then the object is there), or aborted.
            PartsLookup::NoSuchUpload => return self.completed_elsewhere(record).await,
        };
        let complete = match multipart.plan.check_uploaded(&parts) {
            Ok(complete) => complete,
            Err(missing @ PartsVerdict::Missing { .. }) => return Err(missing.into_error()),
            Err(wrong @ PartsVerdict::WrongSize { .. }) => {
                // Record first, upload second, as for a mismatching object: a retry finds the
                // record rejected and aborts again.
                if self
                    .store
                    .mark_rejected(record, RejectReason::Mismatch)
                    .await?
                    == Transition::Applied
                {
                    self.bucket
                        .abort_multipart(&record.key, &multipart.upload_id)
                        .await?;
                    return Err(wrong.into_error());
                }
                // Another confirmation decided first; the confirmation reports what.
                return Ok(());
            }
        };
        match self
            .bucket
            .complete_multipart(&record.key, &multipart.upload_id, &complete)
            .await?
        {
            Completion::Completed => Ok(()),
            Completion::NotCompleted => self.completed_elsewhere(record).await,
        }
    }

    /// After S3 said the upload is gone or the key taken: fine if an object is there (the
    /// confirmation checks it), otherwise the upload was aborted and cannot be completed.
    async fn completed_elsewhere(&self, record: &FileRecord) -> Result<(), AppError> {
        if self.object_exists(&record.key).await? {
            return Ok(());
        }
        Err(AppError::PartsMissing(
            "the multipart upload no longer exists (it was aborted, or lapsed); reserve the file \
             again"
                .into(),
        ))
    }

    async fn object_exists(&self, key: &ObjectKey) -> Result<bool, AppError> {
        Ok(matches!(
            self.bucket.head(key).await?,
            ObjectLookup::Found(_)
        ))
    }
}

/// When a multipart reservation's record may be purged, and its ledger entry stops counting:
/// a day after it lapses (`PENDING_GRACE`, as a single PUT's after its URL), and never before the
/// bucket's lifecycle rule may abort its upload (`lifecycle_abort_by`), however short
/// `MULTIPART_EXPIRY_SECONDS` is: until then S3 could still complete the upload, and its bytes
/// must still count. `answered_at` is when CreateMultipartUpload had answered, so S3 initiated
/// the upload no later than a second after it (`now` drops the fraction). Rounded up to the
/// ledger's grid (`purge_time`), as every purge time.
pub(super) fn multipart_purge_at(
    expires_at: OffsetDateTime,
    answered_at: OffsetDateTime,
) -> OffsetDateTime {
    let initiated_by = answered_at + Duration::from_secs(1);
    purge_time((expires_at + PENDING_GRACE).max(lifecycle_abort_by(initiated_by)))
}

/// The multipart upload of a record that still takes parts; `NotPending` otherwise.
fn open_upload(record: &FileRecord) -> Result<&MultipartUpload, AppError> {
    let multipart = record.multipart.as_ref().ok_or_else(|| {
        AppError::NotPending("this file is not a multipart upload; it takes one PUT".into())
    })?;
    if record.status != FileStatus::Pending {
        return Err(AppError::NotPending(format!(
            "this file is {}, no longer a pending upload",
            record.status.as_str()
        )));
    }
    Ok(multipart)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_multipart_entry_counts_until_the_lifecycle_rule_may_abort_its_upload() {
        // A short reservation (1 h) made just after midnight: the rule may act almost 48 h after
        // initiation, long after the reservation's day of grace.
        let created = datetime!(2026-03-02 00:00:30 UTC);
        let expires_at = created + Duration::from_secs(3600);
        let answered = created + Duration::from_secs(1);
        assert_eq!(
            multipart_purge_at(expires_at, answered),
            datetime!(2026-03-04 00:00 UTC)
        );
        // Created at 23:59:59, answered just after midnight: the initiation may be in the next
        // day, and so the bound is.
        let created = datetime!(2026-03-01 23:59:59 UTC);
        assert_eq!(
            multipart_purge_at(created + Duration::from_secs(3600), created),
            datetime!(2026-03-04 00:00 UTC)
        );
        // The default day: a day of grace after the lapse is later than the rule (noon + 48 h).
        let created = datetime!(2026-03-02 12:00 UTC);
        let expires_at = created + DEFAULT_MULTIPART_EXPIRY;
        assert_eq!(
            multipart_purge_at(expires_at, created),
            datetime!(2026-03-04 12:00 UTC)
        );
    }
}
