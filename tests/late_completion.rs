//! Issue 20, point 2.5: no completion or confirmation after a reservation's place in the quota
//! lapsed may take its owner over the quota.
//!
//! The attack, before: reserve multipart uploads to the bytes limit, upload every part, wait for
//! the ledger entries to lapse (`purgeAt`, the reservation's expiry + 24 h) while S3 still holds
//! the uploads (the lifecycle rule aborts them up to 48 h after initiation: Amazon S3 User Guide,
//! "Configuring a bucket lifecycle configuration to delete incomplete multipart uploads", and
//! "Lifecycle configuration elements" for the rounding to the next midnight UTC), reserve to the
//! limit again, then `complete` the old ones: twice the quota. Now (a) `complete` past a
//! reservation's life aborts and refuses, (b) a multipart entry counts until the rule may abort
//! its upload, and (c) a confirmation whose entry lapsed is re-admitted only under the limit,
//! otherwise rejected and its object deleted: for `complete`, the events function and the
//! reconciliation alike. Over the fakes (which apply the adapter's rules), and the conditional
//! write itself against the local DynamoDB (moto behind the IAM front), which evaluates it.

use presign_gate_test_support as support;

use std::time::Duration;

use presign_gate::bucket::{MultipartTarget, ObjectStorage};
use presign_gate::domain::{
    ExpiryPolicy, FileId, FileRecord, FileStatus, NewUpload, ObjectKey, OwnerId, PartPlan,
    QuotaLimits, UploadPolicy, UploadRequest, lifecycle_abort_by,
};
use presign_gate::error::AppError;
use presign_gate::service::{Confirmation, FileService, ObjectEventOutcome};
use presign_gate::store::{OwnershipStore, Transition};
use support::fakes::{FakeBucket, FakeStore, pair, small_object};
use time::OffsetDateTime;

const MIB: u64 = 1024 * 1024;

fn alice() -> OwnerId {
    OwnerId::parse("alice").unwrap()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn service(
    max_bytes: u64,
    expiry: Duration,
) -> (FileService<FakeStore, FakeBucket>, FakeStore, FakeBucket) {
    let (store, bucket) = pair();
    let files = FileService::new(
        store.clone(),
        bucket.clone(),
        UploadPolicy::new(["text/plain"], 1 << 40).unwrap(),
        ExpiryPolicy::new(300, 900).unwrap(),
    )
    .with_quotas(QuotaLimits {
        max_pending_uploads: 20,
        max_bytes,
    })
    .with_multipart_expiry(expiry);
    (files, store, bucket)
}

fn request(size: u64, multipart: bool) -> UploadRequest {
    serde_json::from_value(serde_json::json!({
        "filename": "big.txt", "contentType": "text/plain", "size": size, "multipart": multipart,
    }))
    .unwrap()
}

fn put_all_parts(bucket: &FakeBucket, record: &FileRecord) {
    let multipart = record.multipart.as_ref().unwrap();
    for number in 1..=multipart.plan.part_count() {
        let length = multipart.plan.part_length(number).unwrap();
        assert!(bucket.put_part(&multipart.upload_id, number, length));
    }
}

/// (a) `complete` of a multipart reservation past its `expiresAt`: 409 `reservation_lapsed`,
/// the upload aborted, no object, and the record left pending (DELETE frees its place).
#[tokio::test]
async fn complete_past_the_reservations_life_aborts_the_upload_and_is_refused() {
    let (files, store, bucket) = service(1 << 40, Duration::from_secs(3600));
    let (mut record, _) = files
        .reserve_upload(&alice(), request(12 * MIB, true))
        .await
        .unwrap();
    put_all_parts(&bucket, &record);
    // Its life is over (every part was uploaded in time).
    record.multipart.as_mut().unwrap().expires_at = now() - Duration::from_secs(1);
    store.insert(record.clone());
    let error = files
        .complete_upload(&alice(), record.id)
        .await
        .unwrap_err();
    assert!(matches!(error, AppError::ReservationLapsed(_)), "{error:?}");
    assert!(bucket.uploads().is_empty(), "the upload is aborted");
    assert!(!bucket.contains(&record.key), "nothing was completed");
    assert_eq!(
        store.record(&alice(), record.id).unwrap().status,
        FileStatus::Pending
    );
    // Again: the same answer (an abort of an upload gone counts as done).
    let again = files
        .complete_upload(&alice(), record.id)
        .await
        .unwrap_err();
    assert!(matches!(again, AppError::ReservationLapsed(_)), "{again:?}");
}

/// (b) However short the reservation, its record and ledger entry last until the lifecycle rule
/// may abort its upload: the midnight UTC after a day past initiation.
#[tokio::test]
async fn a_multipart_entry_counts_until_the_lifecycle_rule_may_abort_its_upload() {
    let (files, store, _) = service(1 << 40, Duration::from_secs(1));
    let before = now();
    let (record, _) = files
        .reserve_upload(&alice(), request(12 * MIB, true))
        .await
        .unwrap();
    let purge_at = record.purge_at.unwrap();
    // S3 initiated the upload no earlier than `before`.
    assert!(
        purge_at >= lifecycle_abort_by(before + Duration::from_secs(1)),
        "{purge_at}"
    );
    assert!(
        purge_at <= lifecycle_abort_by(now() + Duration::from_secs(1)),
        "{purge_at}"
    );
    let tally = store.ledger(&alice()).await.unwrap().pending[&purge_at];
    assert_eq!(tally.count, 1, "the ledger tallies it under its purge time");
    let usage = store
        .ledger(&alice())
        .await
        .unwrap()
        .usage(purge_at - Duration::from_secs(1));
    assert_eq!(usage.bytes, 12 * MIB, "still counted a second before");
}

/// A pending record of alice's whose ledger entry lapsed a second ago, written through the port
/// as a reservation would, and another reservation that took its place.
async fn lapsed_and_replaced(
    store: &FakeStore,
    id: FileId,
    size: u64,
    max_bytes: u64,
    multipart: Option<String>,
) -> FileRecord {
    let limits = QuotaLimits {
        max_pending_uploads: 20,
        max_bytes,
    };
    let upload = NewUpload {
        filename: "old.txt".into(),
        content_type: "text/plain".into(),
        size,
        sha256: None,
        parts: multipart
            .as_ref()
            .map(|_| PartPlan::for_size(size).unwrap()),
    };
    let created = now() - Duration::from_secs(3 * 24 * 3600);
    let lapsed_at = now() - Duration::from_secs(1);
    let record = match multipart {
        // A multipart reservation still in its life (so that (a) lets `complete` through): this
        // is (c) alone, as when a completion races the lapse of its entry.
        Some(upload_id) => FileRecord::pending_multipart(
            alice(),
            id,
            upload,
            created,
            lapsed_at,
            upload_id,
            now() + Duration::from_secs(3600),
        )
        .unwrap(),
        None => FileRecord::pending(alice(), id, upload, created, lapsed_at),
    };
    store.reserve(&record, &limits, created).await.unwrap();
    let mut other = record.clone();
    other.id = FileId::new_random();
    other.key = ObjectKey::for_file(&alice(), other.id);
    other.multipart = None;
    other.purge_at = Some(now() + Duration::from_secs(3600));
    store.reserve(&other, &limits, now()).await.unwrap();
    record
}

/// (c) through `complete`: the completion S3 made is rejected and its object deleted, and the
/// owner's bytes stay at the limit.
#[tokio::test]
async fn a_late_completion_over_the_quota_is_rejected_and_its_object_deleted() {
    let (files, store, bucket) = service(12 * MIB, Duration::from_secs(3600));
    let id = FileId::new_random();
    let upload_id = bucket
        .create_multipart(MultipartTarget {
            key: &ObjectKey::for_file(&alice(), id),
            content_type: "text/plain",
            part_sha256: false,
        })
        .await
        .unwrap();
    let record = lapsed_and_replaced(&store, id, 12 * MIB, 12 * MIB, Some(upload_id)).await;
    put_all_parts(&bucket, &record);
    let error = files
        .complete_upload(&alice(), record.id)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppError::UploadRejected(message, _) if message.contains("lapsed")),
        "{error:?}"
    );
    assert!(
        !bucket.contains(&record.key),
        "the completed object is deleted"
    );
    assert_eq!(
        store.record(&alice(), record.id).unwrap().status,
        FileStatus::Rejected
    );
    let usage = store.ledger(&alice()).await.unwrap().usage(now());
    assert_eq!((usage.bytes, usage.pending_uploads), (12 * MIB, 1));
}

/// (c) through the events function (and the reconciliation, which confirms the same way): an
/// object confirmed after its entry lapsed is kept only if it fits.
#[tokio::test]
async fn the_events_function_readmits_a_late_upload_only_under_the_limit() {
    for (max_bytes, kept) in [(5, false), (6, true)] {
        let (files, store, bucket) = service(max_bytes, Duration::from_secs(3600));
        let record = lapsed_and_replaced(&store, FileId::new_random(), 3, max_bytes, None).await;
        bucket.put(&record.key, small_object("text/plain"));
        let outcome = files.object_created(record.key.as_str()).await.unwrap();
        let usage = store.ledger(&alice()).await.unwrap().usage(now());
        let stored = store.record(&alice(), record.id).unwrap().status;
        match outcome {
            ObjectEventOutcome::Confirmed(confirmation) => match *confirmation {
                Confirmation::Accepted(_) if kept => {
                    assert_eq!(stored, FileStatus::Available);
                    assert!(bucket.contains(&record.key));
                    assert_eq!(usage.bytes, 6);
                }
                Confirmation::Rejected { reason, .. } if !kept => {
                    assert!(reason.contains("lapsed"), "{reason}");
                    assert_eq!(stored, FileStatus::Rejected);
                    assert!(!bucket.contains(&record.key));
                    assert_eq!(usage.bytes, 3);
                }
                other => panic!("max {max_bytes}: {other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
}

/// (c) the conditional write itself, against the local DynamoDB: the confirmation's ledger update
/// holds only while the entry counts; a lapsed one is re-admitted under the limit, on the
/// ledger's version, or refused with nothing written.
#[tokio::test]
async fn the_confirmation_of_a_lapsed_entry_is_conditional_in_dynamodb() {
    let standins = support::StandIns::start().await;
    let store = standins.store_as(support::Role::Events);
    let limits = |max_bytes| QuotaLimits {
        max_pending_uploads: 20,
        max_bytes,
    };
    let created = now() - Duration::from_secs(3 * 24 * 3600);
    let upload = |filename: &str| NewUpload {
        filename: filename.into(),
        content_type: "text/plain".into(),
        size: 3,
        sha256: None,
        parts: None,
    };
    let lapsed = FileRecord::pending(
        alice(),
        FileId::new_random(),
        upload("old.txt"),
        created,
        now() - Duration::from_secs(1),
    );
    let api = standins.store_as(support::Role::Api);
    api.reserve(&lapsed, &limits(5), created).await.unwrap();
    let fresh = FileRecord::pending(
        alice(),
        FileId::new_random(),
        upload("new.txt"),
        now(),
        now() + Duration::from_secs(3600),
    );
    api.reserve(&fresh, &limits(5), now()).await.unwrap();

    let refused = store
        .mark_uploaded(&lapsed, FileStatus::Available, "\"e\"", now(), &limits(5))
        .await;
    assert!(
        matches!(refused, Err(AppError::QuotaExceeded(_))),
        "{refused:?}"
    );
    let unchanged = store.get(&alice(), lapsed.id).await.unwrap().unwrap();
    assert_eq!(unchanged.status, FileStatus::Pending, "nothing written");
    let ledger = store.ledger(&alice()).await.unwrap();
    assert_eq!((ledger.available_bytes, ledger.usage(now()).bytes), (0, 3));

    // Room for it: re-admitted, once.
    assert_eq!(
        store
            .mark_uploaded(&lapsed, FileStatus::Available, "\"e\"", now(), &limits(6))
            .await
            .unwrap(),
        Transition::Applied
    );
    assert_eq!(
        store
            .mark_uploaded(&lapsed, FileStatus::Available, "\"e\"", now(), &limits(6))
            .await
            .unwrap(),
        Transition::Stale
    );
    // The fresh one still counts: confirmed as before, by the plain conditional update.
    assert_eq!(
        store
            .mark_uploaded(&fresh, FileStatus::Available, "\"f\"", now(), &limits(5))
            .await
            .unwrap(),
        Transition::Applied
    );
    let ledger = store.ledger(&alice()).await.unwrap();
    assert_eq!(ledger.available_bytes, 6);
    assert_eq!(ledger.reservations(), 0, "{ledger:?}");
}
