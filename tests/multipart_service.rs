//! Multipart uploads over the in-memory fakes: the orderings that make every step repeatable,
//! the quotas, the faults, and what the reconciliation leaves alone. `tests/multipart.rs` runs
//! the same routes against s3s-fs.

use std::time::Duration;

use presign_gate::bucket::{ObjectStorage, PartsLookup};
use presign_gate::deadline::Deadline;
use presign_gate::domain::{
    ExpiryPolicy, FileRecord, FileStatus, OwnerId, PartsRequest, QuotaLimits, UploadPolicy,
    UploadRequest,
};
use presign_gate::error::AppError;
use presign_gate::service::{FileService, ReconcileLimits, ReconcileReport, UploadInstructions};
use presign_gate::store::OwnershipStore;
use presign_gate_test_support::fakes::{FakeBucket, FakeStore, pair};

const MIB: u64 = 1024 * 1024;

struct Harness {
    files: FileService<FakeStore, FakeBucket>,
    store: FakeStore,
    bucket: FakeBucket,
}

fn harness_with(quotas: QuotaLimits, expiry: Duration) -> Harness {
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
    .with_quotas(quotas)
    .with_multipart_expiry(expiry);
    Harness {
        files,
        store,
        bucket,
    }
}

fn harness() -> Harness {
    harness_with(
        QuotaLimits {
            max_pending_uploads: 5,
            max_bytes: 1 << 40,
        },
        Duration::from_secs(3600),
    )
}

fn alice() -> OwnerId {
    OwnerId::parse("alice").unwrap()
}

fn upload_of(size: u64, multipart: bool) -> UploadRequest {
    serde_json::from_value(serde_json::json!({
        "filename": "big.txt",
        "contentType": "text/plain",
        "size": size,
        "multipart": multipart,
    }))
    .unwrap()
}

/// Alice's multipart reservation of `size` bytes.
async fn reserve(h: &Harness, size: u64) -> FileRecord {
    let (record, upload) = h
        .files
        .reserve_upload(&alice(), upload_of(size, true))
        .await
        .unwrap();
    assert!(matches!(upload, UploadInstructions::Multipart { .. }));
    record
}

fn upload_id(record: &FileRecord) -> String {
    record.multipart.as_ref().unwrap().upload_id.clone()
}

/// Puts every planned part of `record` at its planned length, as its part URLs allow.
fn put_all_parts(h: &Harness, record: &FileRecord) {
    let plan = record.multipart.as_ref().unwrap().plan;
    for number in 1..=plan.part_count() {
        assert!(h.bucket.put_part(
            &upload_id(record),
            number,
            plan.part_length(number).unwrap()
        ));
    }
}

#[tokio::test]
async fn a_reservation_creates_the_upload_then_the_record_and_counts_its_declared_size() {
    let h = harness();
    let (record, upload) = h
        .files
        .reserve_upload(&alice(), upload_of(250 * MIB, false))
        .await
        .unwrap();
    let UploadInstructions::Multipart { plan, expires_at } = upload else {
        panic!("250 MiB is above the 100 MiB threshold: {upload:?}");
    };
    assert_eq!((plan.part_size(), plan.part_count()), (5 * MIB, 50));
    let multipart = record.multipart.as_ref().unwrap();
    assert_eq!(multipart.expires_at, expires_at);
    assert_eq!(expires_at - record.created_at, time::Duration::hours(1));
    // The record outlives the reservation, as a single PUT's outlives its URL.
    assert!(record.purge_at.unwrap() > expires_at);
    assert_eq!(
        h.store.journal.entries(),
        [
            "store.ledger".to_owned(),
            format!("bucket.create_multipart {}", record.key.as_str()),
            "store.reserve".to_owned(),
        ]
    );
    assert!(h.bucket.uploads().contains_key(&multipart.upload_id));
    // The upload id is nowhere in what a log would print of the record.
    assert!(!format!("{record:?}").contains(&multipart.upload_id));
    // Quotas count the declared size from the reservation on.
    let (usage, _) = h.files.usage(&alice()).await.unwrap();
    assert_eq!((usage.pending_uploads, usage.bytes), (1, 250 * MIB));
}

/// Issue 20, 2.8: the quota is checked before S3 is asked for anything, so a caller over it
/// costs no CreateMultipartUpload (and no AbortMultipartUpload to undo it): only the ledger read.
#[tokio::test]
async fn an_over_quota_multipart_reservation_makes_no_s3_call() {
    let h = harness_with(
        QuotaLimits {
            max_pending_uploads: 1,
            max_bytes: 10 * MIB,
        },
        Duration::from_secs(3600),
    );
    let before_bytes = h.bucket.journal.entries().len();
    // Over the bytes limit at once.
    let refused = h
        .files
        .reserve_upload(&alice(), upload_of(11 * MIB, true))
        .await;
    assert!(
        matches!(refused, Err(AppError::QuotaExceeded(_))),
        "{refused:?}"
    );
    assert_eq!(h.store.journal.entries()[before_bytes..], ["store.ledger"]);
    // Over the pending-uploads limit, after one reservation that fits.
    reserve(&h, 6 * MIB).await;
    let before_count = h.bucket.journal.entries().len();
    let refused = h
        .files
        .reserve_upload(&alice(), upload_of(6 * MIB, true))
        .await;
    assert!(
        matches!(refused, Err(AppError::QuotaExceeded(_))),
        "{refused:?}"
    );
    assert_eq!(h.store.journal.entries()[before_count..], ["store.ledger"]);
    assert!(
        h.bucket
            .journal
            .matching("bucket.abort_multipart")
            .is_empty()
    );
    assert_eq!(
        h.bucket.journal.matching("bucket.create_multipart").len(),
        1
    );
    assert_eq!(h.bucket.uploads().len(), 1);
}

/// The check ahead is no promise: the reservation's own write still decides. When it fails
/// (here an outage; a quota lost to a concurrent reservation takes the same path), the upload
/// created for it is aborted at once.
#[tokio::test]
async fn a_reservation_whose_write_fails_aborts_the_upload_it_created() {
    let h = harness();
    h.store.outages.fail("store.reserve");
    let refused = h
        .files
        .reserve_upload(&alice(), upload_of(11 * MIB, true))
        .await;
    assert!(
        matches!(refused, Err(AppError::Unavailable(_))),
        "{refused:?}"
    );
    assert!(h.store.is_empty());
    assert!(h.bucket.uploads().is_empty());
    assert_eq!(
        h.bucket.journal.matching("bucket.create_multipart").len(),
        1
    );
    assert_eq!(h.bucket.journal.matching("bucket.abort_multipart").len(), 1);
}

#[tokio::test]
async fn complete_says_how_many_parts_are_missing_then_finishes() {
    let h = harness();
    let record = reserve(&h, 11 * MIB).await;
    h.bucket.put_part(&upload_id(&record), 2, 5 * MIB);
    match h.files.complete_upload(&alice(), record.id).await {
        Err(AppError::PartsMissing(message)) => {
            assert_eq!(message, "2 of 3 parts have not been uploaded yet")
        }
        other => panic!("{other:?}"),
    }
    put_all_parts(&h, &record);
    let done = h.files.complete_upload(&alice(), record.id).await.unwrap();
    assert_eq!(done.status, FileStatus::Available);
    assert!(h.bucket.uploads().is_empty());
    let (usage, _) = h.files.usage(&alice()).await.unwrap();
    assert_eq!((usage.pending_uploads, usage.bytes), (0, 11 * MIB));
}

#[tokio::test]
async fn a_complete_cut_short_after_s3_assembled_the_object_finishes_on_retry() {
    let h = harness();
    let record = reserve(&h, 6 * MIB).await;
    put_all_parts(&h, &record);
    h.store.outages.fail("store.mark_uploaded");
    let cut = h.files.complete_upload(&alice(), record.id).await;
    assert!(matches!(cut, Err(AppError::Unavailable(_))), "{cut:?}");
    assert!(h.bucket.contains(&record.key));
    h.store.outages.heal("store.mark_uploaded");
    let before = h.bucket.journal.entries().len();
    let done = h.files.complete_upload(&alice(), record.id).await.unwrap();
    assert_eq!(done.status, FileStatus::Available);
    assert_eq!(done.size, 6 * MIB);
    // The retry found the object and only confirmed it.
    let retry: Vec<String> = h.bucket.journal.entries()[before..]
        .iter()
        .filter(|entry| entry.starts_with("bucket."))
        .map(|entry| entry.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(retry, ["bucket.head", "bucket.head"]);
}

#[tokio::test]
async fn a_delete_that_aborted_and_then_failed_finishes_on_retry() {
    let h = harness();
    let record = reserve(&h, 6 * MIB).await;
    h.bucket.put_part(&upload_id(&record), 1, 5 * MIB);
    h.store.outages.fail("store.delete");
    let cut = h.files.delete_file(&alice(), record.id).await;
    assert!(matches!(cut, Err(AppError::Unavailable(_))), "{cut:?}");
    // The parts are gone already; the record is still there.
    assert!(h.bucket.uploads().is_empty());
    assert!(h.store.record(&alice(), record.id).is_some());
    h.store.outages.heal("store.delete");
    h.files.delete_file(&alice(), record.id).await.unwrap();
    assert!(h.store.record(&alice(), record.id).is_none());
    assert_eq!(h.bucket.journal.matching("bucket.abort_multipart").len(), 2);
    let (usage, _) = h.files.usage(&alice()).await.unwrap();
    assert_eq!((usage.pending_uploads, usage.bytes), (0, 0));
}

#[tokio::test]
async fn a_part_of_another_size_rejects_the_upload_and_aborts_it() {
    let h = harness();
    let record = reserve(&h, 6 * MIB).await;
    // Not through a URL of ours: S3 would refuse any other length than the one signed.
    h.bucket.put_part(&upload_id(&record), 1, 5 * MIB);
    h.bucket.put_part(&upload_id(&record), 2, MIB + 1);
    match h.files.complete_upload(&alice(), record.id).await {
        Err(AppError::UploadRejected(reason, _)) => assert!(reason.contains("part 2"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.store.record(&alice(), record.id).unwrap().status,
        FileStatus::Rejected
    );
    assert!(h.bucket.uploads().is_empty());
    assert!(!h.bucket.contains(&record.key));
    // Asked again, the verdict stands, and the upload is aborted again (it is gone: no error).
    let again = h.files.complete_upload(&alice(), record.id).await;
    assert!(
        matches!(again, Err(AppError::UploadRejected(..))),
        "{again:?}"
    );
    assert_eq!(h.bucket.journal.matching("bucket.abort_multipart").len(), 2);
}

#[tokio::test]
async fn an_upload_aborted_elsewhere_cannot_be_completed_or_listed() {
    let h = harness();
    let record = reserve(&h, 6 * MIB).await;
    put_all_parts(&h, &record);
    // The bucket's lifecycle rule, say.
    h.bucket
        .abort_multipart(&record.key, &upload_id(&record))
        .await
        .unwrap();
    match h.files.complete_upload(&alice(), record.id).await {
        Err(AppError::PartsMissing(message)) => assert!(message.contains("no longer exists")),
        other => panic!("{other:?}"),
    }
    let listed = h.files.uploaded_parts(&alice(), record.id).await;
    assert!(matches!(listed, Err(AppError::NotPending(_))), "{listed:?}");
}

fn parts_request(numbers: &[u32]) -> PartsRequest {
    let parts: Vec<_> = numbers
        .iter()
        .map(|n| serde_json::json!({ "partNumber": n }))
        .collect();
    serde_json::from_value(serde_json::json!({ "parts": parts })).unwrap()
}

#[tokio::test]
async fn part_urls_sign_the_planned_lengths_after_one_read() {
    let h = harness();
    let record = reserve(&h, 11 * MIB).await;
    let reads = h.store.journal.matching("store.get").len();
    let urls = h
        .files
        .presign_parts(&alice(), record.id, parts_request(&[3, 1]))
        .await
        .unwrap();
    assert_eq!(h.store.journal.matching("store.get").len(), reads + 1);
    let lengths: Vec<(u32, String)> = urls
        .iter()
        .map(|(n, url)| (*n, url.headers[0].1.clone()))
        .collect();
    assert_eq!(lengths, [(3, MIB.to_string()), (1, (5 * MIB).to_string())]);
    // Someone else's file is not found, whatever the parts.
    let bob = OwnerId::parse("bob").unwrap();
    let foreign = h
        .files
        .presign_parts(&bob, record.id, parts_request(&[1]))
        .await;
    assert!(matches!(foreign, Err(AppError::NotFound)), "{foreign:?}");
}

#[tokio::test]
async fn a_lapsed_reservation_signs_no_more_parts() {
    let h = harness_with(QuotaLimits::default(), Duration::ZERO);
    let record = reserve(&h, 6 * MIB).await;
    let late = h
        .files
        .presign_parts(&alice(), record.id, parts_request(&[1]))
        .await;
    match late {
        Err(AppError::NotPending(message)) => assert!(message.contains("lapsed")),
        other => panic!("{other:?}"),
    }
}

/// A reconciliation run a month from now, when every object is old enough to be a stray.
async fn reconcile_a_month_later(h: &Harness) -> ReconcileReport {
    h.files
        .reconcile(
            time::OffsetDateTime::now_utc() + time::Duration::days(30),
            ReconcileLimits {
                max_objects: 100,
                stray_age: Duration::from_secs(900),
            },
            Deadline::NONE,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn the_reconciliation_leaves_a_pending_multipart_upload_alone() {
    let h = harness();
    let record = reserve(&h, 6 * MIB).await;
    h.bucket.put_part(&upload_id(&record), 1, 5 * MIB);
    let report = reconcile_a_month_later(&h).await;
    // Parts are no objects: nothing listed, nothing confirmed, deleted or aborted.
    assert_eq!(report.examined, 0);
    assert_eq!(
        h.store.record(&alice(), record.id).unwrap().status,
        FileStatus::Pending
    );
    assert_eq!(h.bucket.uploads().len(), 1);
    assert!(
        h.bucket
            .journal
            .matching("bucket.abort_multipart")
            .is_empty()
    );
    // Once completed, the object is a pending record's: confirmed, never a stray.
    h.bucket.put_part(&upload_id(&record), 2, MIB);
    let parts = match h.bucket.list_parts(&record.key, &upload_id(&record)).await {
        Ok(PartsLookup::Found(parts)) => parts,
        other => panic!("{other:?}"),
    };
    h.bucket
        .complete_multipart(&record.key, &upload_id(&record), &parts)
        .await
        .unwrap();
    let report = reconcile_a_month_later(&h).await;
    assert_eq!((report.confirmed, report.strays_deleted), (1, 0));
    assert_eq!(
        h.store.record(&alice(), record.id).unwrap().status,
        FileStatus::Available
    );
    let ledger = h.store.ledger(&alice()).await.unwrap();
    assert_eq!(
        (ledger.reservations(), ledger.available_bytes),
        (0, 6 * MIB)
    );
}

/// The multipart routes through the real handler over the fakes: each answer's shape as the README
/// documents it, what S3 holds, and a complete that waits for every part. `tests/multipart.rs`
/// checks the same against s3s-fs; this one costs milliseconds, so `make mutants` runs it.
#[tokio::test]
async fn the_multipart_routes_answer_as_documented() {
    use presign_gate::domain::FileId;
    use presign_gate::http::Api;
    use presign_gate_test_support::TestApi;
    use serde_json::json;

    let h = harness();
    let api = TestApi(Api::new(h.files, None));
    let reserved = api
        .call(
            "POST",
            "/uploads",
            Some("alice"),
            Some(json!({ "filename": "big.txt", "contentType": "text/plain",
                         "size": 12 * MIB, "multipart": true, "partSha256": true })),
        )
        .await;
    assert_eq!(reserved.status, 201, "{reserved:?}");
    let upload = &reserved.body["upload"];
    assert_eq!(upload["method"], "MULTIPART");
    assert_eq!(upload["partSize"], 5 * MIB);
    assert_eq!(upload["partCount"], 3);
    assert_eq!(upload["partSha256"], true);
    assert!(upload["expiresAt"].is_string(), "{upload}");
    assert!(upload.get("url").is_none(), "{upload}");
    let id = reserved.body["file"]["id"].as_str().unwrap().to_owned();

    let sha = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=";
    let signed = api
        .call(
            "POST",
            &format!("/files/{id}/parts"),
            Some("alice"),
            Some(json!({ "parts": [{ "partNumber": 3, "sha256": sha },
                                   { "partNumber": 1, "sha256": sha }] })),
        )
        .await;
    assert_eq!(signed.status, 200, "{signed:?}");
    let parts = signed.body["parts"].as_array().unwrap();
    let described: Vec<_> = parts
        .iter()
        .map(|p| {
            (
                p["partNumber"].as_u64().unwrap(),
                p["method"].as_str().unwrap(),
                p["headers"]["content-length"].as_str().unwrap(),
                p["headers"]["x-amz-checksum-sha256"].as_str().unwrap(),
            )
        })
        .collect();
    let (last, whole) = ((2 * MIB).to_string(), (5 * MIB).to_string());
    assert_eq!(
        described,
        [(3, "PUT", &*last, sha), (1, "PUT", &*whole, sha)]
    );
    for part in parts {
        let url = part["url"].as_str().unwrap();
        assert!(url.contains("partNumber="), "{url}");
        assert!(part["expiresAt"].is_string(), "{part}");
    }
    let foreign = api
        .call(
            "POST",
            &format!("/files/{id}/parts"),
            Some("bob"),
            Some(json!({ "parts": [{ "partNumber": 1, "sha256": sha }] })),
        )
        .await;
    assert_eq!(
        (foreign.status.as_u16(), foreign.error_code()),
        (404, "not_found")
    );

    let record = h
        .store
        .record(&alice(), FileId::parse(&id).unwrap())
        .expect("the reservation");
    assert!(h.bucket.put_part(&upload_id(&record), 1, 5 * MIB));
    let listed = api
        .call("GET", &format!("/files/{id}/parts"), Some("alice"), None)
        .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body["partSize"], 5 * MIB);
    assert_eq!(listed.body["partCount"], 3);
    assert_eq!(listed.body["partSha256"], true);
    let held: Vec<_> = listed.body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partNumber"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(held, [(1, 5 * MIB)]);
    let listed_by_bob = api
        .call("GET", &format!("/files/{id}/parts"), Some("bob"), None)
        .await;
    assert_eq!(listed_by_bob.status, 404, "{listed_by_bob:?}");

    let early = api.complete("alice", &id).await;
    assert_eq!(
        (early.status.as_u16(), early.error_code()),
        (409, "upload_missing")
    );
    assert!(
        early.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains('2'),
        "{early:?}"
    );
    let plan = record.multipart.as_ref().unwrap().plan;
    for number in 2..=plan.part_count() {
        let length = plan.part_length(number).unwrap();
        assert!(h.bucket.put_part(&upload_id(&record), number, length));
    }
    let done = api.complete("alice", &id).await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["file"]["status"], "available", "{done:?}");
}

/// One `POST /files/{id}/parts` signs 1 to 100 parts, even of an upload with more parts to sign;
/// a request outside that is refused before the record is read (it costs no DynamoDB request).
#[tokio::test]
async fn a_parts_request_holds_one_to_a_hundred_parts() {
    let h = harness();
    let record = reserve(&h, 1024 * MIB).await;
    assert!(record.multipart.as_ref().unwrap().plan.part_count() > 101);
    let hundred: Vec<u32> = (1..=100).collect();
    let signed = h
        .files
        .presign_parts(&alice(), record.id, parts_request(&hundred))
        .await
        .unwrap();
    assert_eq!(signed.len(), 100);
    for numbers in [Vec::new(), (1..=101).collect()] {
        let reads = h.store.journal.matching("store.get").len();
        let refused = h
            .files
            .presign_parts(&alice(), record.id, parts_request(&numbers))
            .await;
        assert_eq!(
            h.store.journal.matching("store.get").len(),
            reads,
            "no read"
        );
        assert!(
            matches!(&refused, Err(AppError::InvalidRequest(m)) if m.contains("1 to 100")),
            "{} parts: {refused:?}",
            numbers.len()
        );
    }
}
