//! Issue 20, point 2.6: multipart uploads that outlive what owned them.
//!
//! AbortMultipartUpload may let parts in flight land afterwards (Amazon S3 API Reference,
//! AbortMultipartUpload: "if any part uploads are currently in progress, those part uploads might
//! or might not succeed. As a result, it might be necessary to abort a given multipart upload
//! multiple times"). So a DELETE checks its abort with ListParts and aborts again; and the
//! reconciliation lists the uploads under `users/` (ListMultipartUploads) and aborts those no
//! pending record owns. Over the fakes for each rule (the fake bucket lets a part land after an
//! abort, and lists uploads as that API Reference page says), then over the stand-ins as the
//! reconciliation's role, whose grants template.yaml decides.

use presign_gate_test_support as support;

use std::time::Duration;

use presign_gate::deadline::Deadline;
use presign_gate::domain::{
    ExpiryPolicy, FileId, FileRecord, FileStatus, ObjectKey, OwnerId, QuotaLimits, UploadPolicy,
    UploadRequest,
};
use presign_gate::error::AppError;
use presign_gate::service::{FileService, ReconcileLimits, ReconcileReport};
use presign_gate::store::OwnershipStore;
use support::fakes::{FakeBucket, FakeStore, FakeUpload, pair};
use time::OffsetDateTime;

const MIB: u64 = 1024 * 1024;
/// The longest URL lifetime of these tests' policy.
const STRAY_AGE: Duration = Duration::from_secs(900);

struct Harness {
    files: FileService<FakeStore, FakeBucket>,
    store: FakeStore,
    bucket: FakeBucket,
}

fn harness() -> Harness {
    let (store, bucket) = pair();
    let files = FileService::new(
        store.clone(),
        bucket.clone(),
        UploadPolicy::new(["text/plain"], 1 << 40)
            .unwrap()
            .with_multipart_threshold(100 * MIB)
            .unwrap(),
        ExpiryPolicy::new(300, 900).unwrap(),
    )
    .with_quotas(QuotaLimits {
        max_pending_uploads: 50,
        max_bytes: 1 << 40,
    });
    Harness {
        files,
        store,
        bucket,
    }
}

fn alice() -> OwnerId {
    OwnerId::parse("alice").unwrap()
}

fn limits(max_objects: u32, stray_age: Duration) -> ReconcileLimits {
    ReconcileLimits {
        max_objects,
        stray_age,
    }
}

/// The fake's uploads start at the epoch unless a test says otherwise.
fn at(seconds: u64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn upload_id(record: &FileRecord) -> String {
    record.multipart.as_ref().unwrap().upload_id.clone()
}

/// Alice's multipart reservation of 6 MiB, its first part uploaded.
async fn reserve(h: &Harness) -> FileRecord {
    let request: UploadRequest = serde_json::from_value(serde_json::json!({
        "filename": "big.txt",
        "contentType": "text/plain",
        "size": 6 * MIB,
        "multipart": true,
    }))
    .unwrap();
    let (record, _) = h.files.reserve_upload(&alice(), request).await.unwrap();
    assert!(h.bucket.put_part(&upload_id(&record), 1, 5 * MIB));
    record
}

/// An upload in progress at `key` with no reservation behind it, started at `initiated`.
fn unrecorded(h: &Harness, key: &str, upload_id: &str, initiated: OffsetDateTime) {
    h.bucket.insert_upload(
        upload_id,
        FakeUpload {
            key: key.to_owned(),
            content_type: "text/plain".into(),
            parts: [(1, 5 * MIB)].into(),
            initiated,
        },
    );
}

/// Makes every abort of `upload_id` be followed by a part that was in flight landing, until told
/// otherwise (`stop_landing`).
fn keep_landing(bucket: &FakeBucket, upload_id: String, upload: FakeUpload) {
    let again = bucket.clone();
    bucket.after_abort.set(move || {
        again.insert_upload(&upload_id, upload.clone());
        keep_landing(&again, upload_id, upload);
    });
}

fn stop_landing(bucket: &FakeBucket) {
    bucket.after_abort.set(|| {});
}

// On tokio's paused clock: the pauses between aborts take no real time.
#[tokio::test(start_paused = true)]
async fn a_delete_aborts_again_when_a_part_lands_after_its_abort() {
    let h = harness();
    let record = reserve(&h).await;
    let id = upload_id(&record);
    // Part 2 was on the wire when the DELETE's abort ran, and S3 stored it anyway.
    let mut landed = h.bucket.uploads()[&id].clone();
    landed.parts.insert(2, MIB);
    let bucket = h.bucket.clone();
    let again = id.clone();
    h.bucket
        .after_abort
        .set(move || bucket.insert_upload(&again, landed));

    h.files.delete_file(&alice(), record.id).await.unwrap();

    // Without the check, the first abort was all: the upload and its two parts stayed, billed.
    assert!(h.bucket.uploads().is_empty(), "{:?}", h.bucket.uploads());
    let calls: Vec<String> = h
        .bucket
        .journal
        .matching("bucket.")
        .into_iter()
        .filter(|entry| entry.contains("abort_multipart") || entry.contains("list_parts"))
        .map(|entry| entry.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        calls,
        [
            "bucket.abort_multipart",
            "bucket.list_parts",
            "bucket.abort_multipart",
            "bucket.list_parts",
        ]
    );
    assert!(h.store.record(&alice(), record.id).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_delete_that_keeps_losing_the_race_ends_and_the_reconciliation_aborts_the_upload() {
    let h = harness();
    let record = reserve(&h).await;
    let id = upload_id(&record);
    keep_landing(&h.bucket, id.clone(), h.bucket.uploads()[&id].clone());

    // Bounded: three aborts, then the DELETE ends well (the record goes, the quota is freed).
    h.files.delete_file(&alice(), record.id).await.unwrap();
    assert_eq!(h.bucket.journal.matching("bucket.abort_multipart").len(), 3);
    assert!(h.store.record(&alice(), record.id).is_none());
    assert!(h.bucket.uploads().contains_key(&id));
    let (usage, _) = h.files.usage(&alice()).await.unwrap();
    assert_eq!(usage.pending_uploads, 0);

    // The parts stop arriving; the next run finds an upload no record owns, and aborts it.
    stop_landing(&h.bucket);
    let report = h
        .files
        .reconcile(at(3600), limits(100, STRAY_AGE), Deadline::NONE)
        .await
        .unwrap();
    assert_eq!((report.uploads_examined, report.uploads_aborted), (1, 1));
    assert!(h.bucket.uploads().is_empty());
}

/// The rule: an upload old enough that no pending record owns (no record, a record no longer
/// pending, a record naming another upload, a key naming no file) is aborted; one a pending
/// record owns, or a young one, is left; nothing outside `users/` is listed.
#[tokio::test]
async fn the_run_aborts_old_uploads_that_no_pending_record_owns_and_leaves_the_rest() {
    let h = harness();
    let owned = reserve(&h).await;
    let record_gone = reserve(&h).await;
    assert_eq!(
        h.store.delete(&record_gone).await.unwrap(),
        presign_gate::store::Transition::Applied
    );
    let rejected = reserve(&h).await;
    h.store.insert(FileRecord {
        status: FileStatus::Rejected,
        ..rejected.clone()
    });
    // Another upload at the key of a pending record: its own abort failed once.
    unrecorded(&h, owned.key.as_str(), "upload-zz-other", at(0));
    unrecorded(&h, "users/mallory/not-a-file-id", "upload-odd", at(0));
    unrecorded(&h, "elsewhere/not-ours", "upload-elsewhere", at(0));
    let young_key = ObjectKey::for_file(&alice(), FileId::new_random());
    unrecorded(&h, young_key.as_str(), "upload-young", at(2_000));

    // Everything but the young one is old at 2,060 s (the bound is the longest URL lifetime,
    // 900 s), the young one is a minute old.
    let report = h
        .files
        .reconcile(at(2_060), limits(100, STRAY_AGE), Deadline::NONE)
        .await
        .unwrap();
    assert_eq!(
        report,
        ReconcileReport {
            finished: true,
            uploads_examined: 6,
            uploads_aborted: 4,
            ..ReconcileReport::default()
        }
    );
    let left: Vec<String> = h.bucket.uploads().into_keys().collect();
    let mut expected = vec![
        upload_id(&owned),
        "upload-elsewhere".to_owned(),
        "upload-young".to_owned(),
    ];
    expected.sort();
    assert_eq!(left, expected);
    // The young one's record was not even read; the pending owner's record is untouched.
    assert_eq!(
        h.store.record(&alice(), owned.id).unwrap().status,
        FileStatus::Pending
    );

    // An hour later the young one is old, and goes; the owned one still stays.
    let report = h
        .files
        .reconcile(at(5_600), limits(100, STRAY_AGE), Deadline::NONE)
        .await
        .unwrap();
    assert_eq!((report.uploads_examined, report.uploads_aborted), (2, 1));
    assert!(h.bucket.uploads().contains_key(&upload_id(&owned)));
    assert!(!h.bucket.uploads().contains_key("upload-young"));
}

/// With URLs of a second, the stray age alone would abort an upload whose record is still being
/// written; the pass never judges one younger than the window in which its reservation's API
/// call writes the record (five minutes, far beyond the API function's 15 s).
#[tokio::test]
async fn an_upload_is_never_judged_before_its_record_could_have_been_written() {
    let h = harness();
    let key = ObjectKey::for_file(&alice(), FileId::new_random());
    unrecorded(&h, key.as_str(), "upload-in-flight", at(0));
    let second = Duration::from_secs(1);
    let report = h
        .files
        .reconcile(at(60), limits(100, second), Deadline::NONE)
        .await
        .unwrap();
    assert_eq!((report.uploads_examined, report.uploads_aborted), (1, 0));
    assert!(h.store.journal.matching("store.get").is_empty());
    let report = h
        .files
        .reconcile(at(301), limits(100, second), Deadline::NONE)
        .await
        .unwrap();
    assert_eq!((report.uploads_examined, report.uploads_aborted), (1, 1));
}

/// More uploads than one page (S3's 1,000), several per key so that pages end inside a key: the
/// listing goes on from both markers, and a run stops at its limit; the next run starts over and
/// finds only what is left.
#[tokio::test]
async fn the_uploads_pass_pages_with_both_markers_and_stops_at_the_limit() {
    let h = harness();
    let keys: Vec<ObjectKey> = (0..4)
        .map(|_| ObjectKey::for_file(&alice(), FileId::new_random()))
        .collect();
    for (n, key) in (0..2_500).map(|n| (n, &keys[n % 4])) {
        unrecorded(&h, key.as_str(), &format!("upload-{n:05}"), at(0));
    }

    let report = h
        .files
        .reconcile(at(3_600), limits(2_100, STRAY_AGE), Deadline::NONE)
        .await
        .unwrap();
    assert_eq!(
        (report.uploads_examined, report.uploads_aborted),
        (2_100, 2_100)
    );
    let listings = h.bucket.journal.matching("bucket.list_uploads");
    assert_eq!(listings.len(), 3, "{listings:?}");
    assert_eq!(listings[0], "bucket.list_uploads ");
    // 625 uploads a key: the first page ends inside the second key, and the next goes on
    // from that key and upload id (key-marker and upload-id-marker).
    let second_key = keys_sorted(&keys)[1].clone();
    assert!(
        listings[1].starts_with(&format!("bucket.list_uploads {second_key} upload-")),
        "{listings:?}"
    );
    assert_eq!(h.bucket.uploads().len(), 400);

    let report = h
        .files
        .reconcile(at(3_600), limits(2_100, STRAY_AGE), Deadline::NONE)
        .await
        .unwrap();
    assert_eq!(
        (report.uploads_examined, report.uploads_aborted),
        (400, 400)
    );
    assert!(h.bucket.uploads().is_empty());
}

fn keys_sorted(keys: &[ObjectKey]) -> Vec<String> {
    let mut sorted: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
    sorted.sort();
    sorted
}

/// An abort that fails is counted and the pass goes on; a listing that fails fails the run,
/// after the objects' pass kept its place.
#[tokio::test]
async fn a_failed_abort_is_counted_and_a_failed_listing_fails_the_run() {
    let h = harness();
    for n in 0..3 {
        let key = ObjectKey::for_file(&alice(), FileId::new_random());
        unrecorded(&h, key.as_str(), &format!("upload-{n}"), at(0));
    }
    h.store.outages.fail("bucket.abort_multipart");
    let report = h
        .files
        .reconcile(at(3_600), limits(100, STRAY_AGE), Deadline::NONE)
        .await
        .unwrap();
    assert_eq!(
        (
            report.uploads_examined,
            report.uploads_aborted,
            report.failed
        ),
        (3, 0, 3)
    );
    h.store.outages.heal("bucket.abort_multipart");

    h.store.outages.fail("bucket.list_uploads");
    let run = h
        .files
        .reconcile(at(3_600), limits(100, STRAY_AGE), Deadline::NONE)
        .await;
    assert!(matches!(run, Err(AppError::Unavailable(_))), "{run:?}");
    assert_eq!(h.store.journal.matching("store.write_cursor").len(), 2);
    assert_eq!(h.bucket.uploads().len(), 3);
}

/// Reserves 6 MiB as a multipart upload for alice over the stand-ins and uploads its first part
/// through its part URL; returns the file's record.
async fn reserved_with_a_part(standins: &support::StandIns, api: &support::TestApi) -> FileRecord {
    use serde_json::json;
    let body = json!({ "filename": "big.txt", "contentType": "text/plain",
                       "size": 6 * MIB, "multipart": true });
    let answer = api
        .call("POST", "/uploads", Some("alice"), Some(body))
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let id = support::file_id(&answer.body);
    let signed = api
        .call(
            "POST",
            &format!("/files/{id}/parts"),
            Some("alice"),
            Some(json!({ "parts": [{ "partNumber": 1 }] })),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let part = &signed.body["parts"][0];
    let put = support::put_presigned(part, &vec![7u8; 5 * MIB as usize], &[]).await;
    assert_eq!(put.status(), 200);
    standins
        .store()
        .get(&alice(), FileId::parse(&id).unwrap())
        .await
        .unwrap()
        .expect("the reservation's record")
}

/// The real adapters as the reconciliation function's role (template.yaml's `ListUserUploads`
/// and `AbortUserUploads`), on local-aws, which lists multipart uploads as S3 does: an upload
/// whose record is gone (the table's TTL purged it, or a DELETE's abort lost the race to a part)
/// is aborted, its parts gone (ListParts: NoSuchUpload); one its pending record owns stays.
#[tokio::test]
async fn the_run_aborts_an_unrecorded_upload_on_the_stand_ins_as_its_role() {
    use aws_sdk_s3::error::ProvideErrorMetadata;

    let standins = support::StandIns::start().await;
    let api = standins.api_with(
        UploadPolicy::new(["text/plain"], 64 * MIB)
            .unwrap()
            .with_multipart_threshold(8 * MIB)
            .unwrap(),
        ExpiryPolicy::new(300, 900).unwrap(),
    );
    let owned = reserved_with_a_part(&standins, &api).await;
    let orphan = reserved_with_a_part(&standins, &api).await;
    assert_eq!(
        standins.store().delete(&orphan).await.unwrap(),
        presign_gate::store::Transition::Applied
    );
    let s3 = standins.s3_client();
    let parts = |record: &FileRecord| {
        s3.list_parts()
            .bucket(support::BUCKET)
            .key(record.key.as_str())
            .upload_id(upload_id(record))
            .send()
    };
    assert_eq!(parts(&orphan).await.unwrap().parts().len(), 1);

    let files = standins.files_as(support::Role::Reconcile);
    let a_day_later = OffsetDateTime::now_utc() + Duration::from_secs(24 * 3600);
    let report = files
        .reconcile(a_day_later, limits(100, STRAY_AGE), Deadline::NONE)
        .await
        .unwrap();
    assert_eq!((report.uploads_examined, report.uploads_aborted), (2, 1));
    assert_eq!(report.failed, 0);

    let gone = parts(&orphan)
        .await
        .expect_err("the orphan's upload is gone");
    assert_eq!(gone.code(), Some("NoSuchUpload"), "{gone:?}");
    assert_eq!(parts(&owned).await.unwrap().parts().len(), 1);
    let listed = s3
        .list_multipart_uploads()
        .bucket(support::BUCKET)
        .prefix("users/")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = listed
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    assert_eq!(ids, [upload_id(&owned).as_str()]);
    // Allowed by exactly the new statements.
    let grants = standins.grants();
    for sid in [
        "ReconcileFunctionRole/files/ListUserUploads",
        "ReconcileFunctionRole/files/AbortUserUploads",
    ] {
        assert!(grants.contains(&vec![sid.to_owned()]), "{sid}: {grants:?}");
    }

    // The listing is for users/ only: any other prefix is refused, as IAM refuses it.
    let refused = standins
        .s3_client_as(support::Role::Reconcile)
        .list_multipart_uploads()
        .bucket(support::BUCKET)
        .prefix("elsewhere/")
        .send()
        .await
        .expect_err("outside users/");
    assert_eq!(refused.code(), Some("AccessDenied"), "{refused:?}");
}
