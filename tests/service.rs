//! The use cases of `service.rs` over the in-memory fakes: the orderings and races that decide
//! whether anything reserved or uploaded can be lost, shown step by step. The fakes journal every
//! call across store and bucket, can fail an operation as an outage would, and let two joined
//! operations interleave where real ones wait for S3.

use presign_gate::bucket::ObjectInfo;
use presign_gate::domain::{
    Disposition, ExpiryPolicy, FileId, FileRecord, FileStatus, NewUpload, ObjectKey, OwnerId,
    QuotaLimits, UploadPolicy, UploadRequest, Usage,
};
use presign_gate::error::AppError;
use presign_gate::s3_events::handle_s3_event;
use presign_gate::service::{Confirmation, FileService, ObjectEventOutcome};
use presign_gate::store::OwnershipStore;
use presign_gate_test_support::fakes::{
    FakeBucket, FakeStore, Journal, PreconditionFailed, pair, seed, small_object,
};
use presign_gate_test_support::s3_event;

/// The service over fakes, and handles on what it owns.
struct Harness {
    files: FileService<FakeStore, FakeBucket>,
    store: FakeStore,
    bucket: FakeBucket,
    /// The store's and the bucket's calls, in order.
    journal: Journal,
}

fn harness() -> Harness {
    let (store, bucket) = pair();
    Harness {
        files: FileService::new(
            store.clone(),
            bucket.clone(),
            UploadPolicy::new(["text/plain"], 1024).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        ),
        journal: store.journal.clone(),
        store,
        bucket,
    }
}

fn alice() -> OwnerId {
    OwnerId::parse("alice").unwrap()
}

/// A pending reservation of alice's whose 3-byte text object is in the bucket.
fn uploaded(h: &Harness) -> FileRecord {
    seed(
        &h.store,
        &h.bucket,
        "alice",
        FileId::new_random(),
        "text/plain",
        FileStatus::Pending,
    )
}

#[tokio::test]
async fn two_concurrent_confirmations_change_the_record_once() {
    let h = harness();
    // A reservation as `reserve` writes it: with the purge time the table's TTL acts on.
    let record = FileRecord {
        purge_at: Some(time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(1)),
        ..uploaded(&h)
    };
    h.store.insert(record.clone());
    let (first, second) = tokio::join!(
        h.files.confirm(record.clone()),
        h.files.confirm(record.clone())
    );
    // Both read the pending record and the object before either wrote: a real race.
    assert_eq!(h.bucket.journal.matching("bucket.head").len(), 2);
    assert_eq!(
        h.store.journal.matching("store.mark_uploaded "),
        ["store.mark_uploaded Applied", "store.mark_uploaded Stale"]
    );
    let stored = h.store.record(&alice(), record.id).unwrap();
    assert_eq!(stored.status, FileStatus::Available);
    assert_eq!(stored.purge_at, None);
    assert!(stored.uploaded_at.is_some(), "{stored:?}");
    // Each answers the record as stored (what `complete` shows): the winner's own, the other's
    // read back.
    for confirmation in [first.unwrap(), second.unwrap()] {
        match confirmation {
            Confirmation::Accepted(confirmed) => {
                assert_eq!(confirmed.etag.as_deref(), Some("\"e\""));
                assert_eq!(confirmed, stored);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn two_concurrent_rejections_reject_once_and_delete_the_object() {
    let h = harness();
    let record = uploaded(&h);
    // Another object reached the key: 4 bytes where 3 were reserved.
    h.bucket.replace(
        &record.key,
        ObjectInfo {
            size: 4,
            ..small_object("text/plain")
        },
    );
    let (first, second) = tokio::join!(
        h.files.confirm(record.clone()),
        h.files.confirm(record.clone())
    );
    assert_eq!(
        h.store.journal.matching("store.mark_rejected "),
        ["store.mark_rejected Applied", "store.mark_rejected Stale"]
    );
    for confirmation in [first.unwrap(), second.unwrap()] {
        assert!(
            matches!(confirmation, Confirmation::Rejected { .. }),
            "{confirmation:?}"
        );
    }
    assert!(!h.bucket.contains(&record.key));
    assert_eq!(
        h.store.record(&alice(), record.id).unwrap().status,
        FileStatus::Rejected
    );
}

#[tokio::test]
async fn a_rejection_is_recorded_before_the_object_is_deleted() {
    let h = harness();
    let record = uploaded(&h);
    h.bucket.replace(
        &record.key,
        ObjectInfo {
            content_type: Some("text/html".into()),
            ..small_object("text/html")
        },
    );
    h.bucket.outages.fail("bucket.delete");
    // The delete fails, but the record already refuses downloads...
    assert!(matches!(
        h.files.confirm(record.clone()).await,
        Err(AppError::Unavailable(_))
    ));
    let stored = h.store.record(&alice(), record.id).unwrap();
    assert_eq!(stored.status, FileStatus::Rejected);
    assert!(matches!(
        h.files
            .presign_download(&alice(), record.id, None, Disposition::Attachment)
            .await,
        Err(AppError::NotReady(_))
    ));
    // ...and confirming again deletes the object.
    h.bucket.outages.heal("bucket.delete");
    assert!(matches!(
        h.files.confirm(stored).await.unwrap(),
        Confirmation::Rejected { .. }
    ));
    assert!(!h.bucket.contains(&record.key));
}

#[tokio::test]
async fn delete_removes_the_object_before_the_record() {
    let h = harness();
    let record = uploaded(&h);
    h.files.delete_file(&alice(), record.id).await.unwrap();
    assert_eq!(
        h.journal.entries(),
        [
            "store.get".to_owned(),
            format!("bucket.head {}", record.key.as_str()),
            format!("bucket.delete {}", record.key.as_str()),
            "store.delete".to_owned(),
            "store.delete Applied".to_owned(),
            // The second look, for bytes a replayed upload URL stored in between: none here.
            format!("bucket.head {}", record.key.as_str()),
        ]
    );
    assert!(h.bucket.versions(&record.key).is_empty(), "no version kept");
    assert!(!h.bucket.contains(&record.key));
    assert!(h.store.record(&alice(), record.id).is_none());
}

#[tokio::test]
async fn a_failed_object_delete_keeps_the_record() {
    let h = harness();
    let record = uploaded(&h);
    h.bucket.outages.fail("bucket.delete");
    assert!(matches!(
        h.files.delete_file(&alice(), record.id).await,
        Err(AppError::Unavailable(_))
    ));
    // Nothing points at bytes that are gone, and nothing is left with nothing pointing at it.
    assert!(h.bucket.contains(&record.key));
    assert!(h.store.record(&alice(), record.id).is_some());
    assert!(h.store.journal.matching("store.delete").is_empty());
}

#[tokio::test]
async fn a_failed_record_delete_is_finished_by_deleting_again() {
    let h = harness();
    let record = uploaded(&h);
    h.store.outages.fail("store.delete");
    assert!(matches!(
        h.files.delete_file(&alice(), record.id).await,
        Err(AppError::Unavailable(_))
    ));
    assert!(!h.bucket.contains(&record.key), "the bytes go first");
    assert!(h.store.record(&alice(), record.id).is_some());

    h.store.outages.heal("store.delete");
    h.files.delete_file(&alice(), record.id).await.unwrap();
    assert!(h.store.record(&alice(), record.id).is_none());
}

#[tokio::test]
async fn a_batch_reads_each_distinct_id_once_and_answers_it_once() {
    let h = harness();
    let available = seed(
        &h.store,
        &h.bucket,
        "alice",
        FileId::new_random(),
        "text/plain",
        FileStatus::Available,
    );
    let pending = uploaded(&h);
    let id = available.id.to_string();
    let ids = [
        id.clone(),
        "not-an-id".to_owned(),
        id.clone(),
        pending.id.to_string(),
        "not-an-id".to_owned(),
    ];
    let answers = h
        .files
        .presign_downloads(&alice(), &ids, None, Disposition::Attachment)
        .await
        .unwrap();
    // Two distinct valid ids in one read; the invalid one is never read at all.
    assert_eq!(
        h.store.journal.matching("store.get_many"),
        ["store.get_many 2"]
    );
    let answered: Vec<(&str, &str)> = answers
        .iter()
        .map(|(id, answer)| {
            let outcome = match answer {
                Ok(_) => "url",
                Err(AppError::NotFound) => "not_found",
                Err(AppError::NotReady(_)) => "not_ready",
                Err(other) => panic!("{other:?}"),
            };
            (id.as_str(), outcome)
        })
        .collect();
    assert_eq!(
        answered,
        [
            (id.as_str(), "url"),
            ("not-an-id", "not_found"),
            (pending.id.to_string().as_str(), "not_ready"),
        ]
    );
}

// Versioned deletes. The deployed bucket keeps versions; FakeBucket follows S3's versioning rules
// (see its documentation), so these show that no version of a removed object survives anywhere.

/// Nothing in the whole bucket: no object, no noncurrent version, no delete marker.
fn assert_no_version_left(bucket: &FakeBucket, key: &ObjectKey) {
    assert_eq!(bucket.version_count(), 0, "{:?}", bucket.versions(key));
}

/// What an upload URL replayed at `key` stores: the reserved object, with `If-None-Match: *`.
fn replay_upload(bucket: &FakeBucket, record: &FileRecord) -> Result<String, PreconditionFailed> {
    bucket.put_if_none_match(&record.key, small_object("text/plain"))
}

#[tokio::test]
async fn a_deleted_file_keeps_no_version_and_a_replayed_upload_url_leaves_none() {
    let h = harness();
    let record = uploaded(&h);
    assert!(matches!(
        h.files.confirm(record.clone()).await.unwrap(),
        Confirmation::Accepted(_)
    ));
    // While the object is there, the upload URL cannot overwrite it.
    assert!(replay_upload(&h.bucket, &record).is_err());

    h.files.delete_file(&alice(), record.id).await.unwrap();
    assert!(
        h.bucket.versions(&record.key).is_empty(),
        "no noncurrent version or delete marker: {:?}",
        h.bucket.versions(&record.key)
    );

    // The URL is still valid and nothing current blocks it: S3 stores the bytes again, and
    // their ObjectCreated event finds no record and removes them by version id.
    replay_upload(&h.bucket, &record).expect("S3 accepts the replayed PUT");
    let outcome = h.files.object_created(record.key.as_str()).await.unwrap();
    assert!(
        matches!(outcome, ObjectEventOutcome::UnreservedDeleted),
        "{outcome:?}"
    );
    assert_no_version_left(&h.bucket, &record.key);
}

#[tokio::test]
async fn bytes_a_replayed_url_stores_while_the_record_is_deleted_are_removed_too() {
    let h = harness();
    let record = uploaded(&h);
    h.files.confirm(record.clone()).await.unwrap();
    // The PUT lands after the object went and before the record goes; its event, handled then,
    // would find the record still available and keep the bytes.
    let (bucket, replayed) = (h.bucket.clone(), record.clone());
    h.store.before_delete.set(move || {
        replay_upload(&bucket, &replayed).expect("S3 accepts the replayed PUT");
    });
    h.files.delete_file(&alice(), record.id).await.unwrap();
    assert_no_version_left(&h.bucket, &record.key);
    assert!(h.store.record(&alice(), record.id).is_none());
}

#[tokio::test]
async fn a_rejected_upload_and_its_replays_leave_no_version() {
    let h = harness();
    let record = uploaded(&h);
    h.bucket.replace(
        &record.key,
        ObjectInfo {
            size: 4,
            ..small_object("text/plain")
        },
    );
    let rejected = h.files.confirm(record.clone()).await.unwrap();
    assert!(
        matches!(rejected, Confirmation::Rejected { .. }),
        "{rejected:?}"
    );
    assert!(h.bucket.versions(&record.key).is_empty());

    replay_upload(&h.bucket, &record).expect("nothing current blocks the URL");
    let outcome = h.files.object_created(record.key.as_str()).await.unwrap();
    assert!(
        matches!(&outcome, ObjectEventOutcome::Confirmed(c) if matches!(**c, Confirmation::Rejected { .. })),
        "{outcome:?}"
    );
    assert_no_version_left(&h.bucket, &record.key);
}

#[tokio::test]
async fn a_stray_object_is_removed_by_version_id() {
    let h = harness();
    let stray = ObjectKey::stray("users/alice/not-a-reservation").unwrap();
    h.bucket.put(&stray, small_object("text/plain"));
    let outcome = h
        .files
        .object_created("users/alice/not-a-reservation")
        .await
        .unwrap();
    assert!(
        matches!(outcome, ObjectEventOutcome::UnreservedDeleted),
        "{outcome:?}"
    );
    assert_no_version_left(&h.bucket, &stray);
}

#[tokio::test]
async fn an_event_for_an_object_already_gone_is_no_error() {
    let h = harness();
    let record = uploaded(&h);
    // The file was deleted before its ObjectCreated event arrived (or a retry of the event came
    // after the first delivery removed a stray): HeadObject answers 403, as S3 does for roles
    // without s3:ListBucket, and that is nothing left to do, not a failure to retry.
    h.files.delete_file(&alice(), record.id).await.unwrap();
    for key in [record.key.as_str(), "users/alice/gone-stray"] {
        let outcome = h.files.object_created(key).await;
        assert!(outcome.is_ok(), "{key}: {outcome:?}");
    }
}

#[tokio::test]
async fn an_object_with_unsigned_stored_headers_is_rejected() {
    for header in [
        "content-encoding",
        "cache-control",
        "content-disposition",
        "content-language",
        "expires",
        "x-amz-meta-*",
    ] {
        let h = harness();
        let record = uploaded(&h);
        h.bucket.replace(
            &record.key,
            ObjectInfo {
                unsigned_headers: vec![header.to_owned()],
                ..small_object("text/plain")
            },
        );
        match h.files.complete_upload(&alice(), record.id).await {
            Err(AppError::UploadRejected(reason, _)) => {
                assert!(reason.contains(header), "{reason}")
            }
            other => panic!("{header}: {other:?}"),
        }
        assert_eq!(h.bucket.version_count(), 0, "{header}");
    }
}

// ---------------------------------------------------------------------------------------------
// Quotas: the check is part of the store's atomic write, and every release happens once.
// ---------------------------------------------------------------------------------------------

#[path = "service/quotas.rs"]
mod quotas;

/// S3's notification of `ObjectCreated` for each of `records`' objects, in one event.
fn created_event(records: &[&FileRecord]) -> presign_gate::s3_events::S3Event {
    let mut event = s3_event("s3/object-created.json", records[0].key.as_str());
    let template = event.records[0].clone();
    event.records = records
        .iter()
        .map(|record| {
            let mut each = template.clone();
            each.s3.object.key = Some(record.key.as_str().to_owned());
            each
        })
        .collect();
    event
}

/// The S3 face over the fakes: every record of an event is confirmed, and when the backend fails,
/// every record is still tried and each failed one is reported by its key, in event order.
#[tokio::test]
async fn an_s3_event_confirms_every_record_and_reports_each_failed_one_by_key() {
    let h = harness();
    let (first, second) = (uploaded(&h), uploaded(&h));
    handle_s3_event(&h.files, created_event(&[&first, &second]))
        .await
        .expect("both records confirmed");
    for record in [&first, &second] {
        let stored = h.store.record(&record.owner, record.id).unwrap();
        assert_eq!(stored.status, FileStatus::Available, "{stored:?}");
    }

    let (third, fourth) = (uploaded(&h), uploaded(&h));
    h.store.outages.fail("store.get");
    let failed = handle_s3_event(&h.files, created_event(&[&third, &fourth]))
        .await
        .expect_err("the store is down");
    assert_eq!(
        failed.keys(),
        [third.key.as_str(), fourth.key.as_str()],
        "{failed}"
    );
    assert_eq!(failed.error_type(), "S3EventBackendUnavailable");
}

/// A reservation's record is purged a day after its upload URL lapses (README, "Lifecycle"): the
/// purge time is the URL's expiry plus 24 hours, rounded up to the ledger's grid, whatever
/// lifetime the caller asked for.
#[tokio::test]
async fn a_reservation_is_purged_a_day_after_its_url_lapses() {
    let h = harness();
    for expires_in in [None, Some(60), Some(900)] {
        let mut request: UploadRequest = serde_json::from_value(serde_json::json!({
            "filename": "a.txt", "contentType": "text/plain", "size": 3,
        }))
        .unwrap();
        request.expires_in = expires_in;
        let (record, upload) = h.files.reserve_upload(&alice(), request).await.unwrap();
        let presign_gate::service::UploadInstructions::Put(url) = upload else {
            panic!("a 3-byte file is one PUT");
        };
        assert_eq!(
            url.expires_at - record.created_at,
            time::Duration::seconds(expires_in.map_or(300, |s| s as i64)),
            "{expires_in:?}"
        );
        let a_day_later = url.expires_at + time::Duration::hours(24);
        assert_eq!(
            record.purge_at,
            Some(presign_gate::domain::purge_time(a_day_later)),
            "{expires_in:?}"
        );
        let rounding = record.purge_at.unwrap() - a_day_later;
        assert!(
            rounding >= time::Duration::ZERO && rounding < presign_gate::domain::PURGE_GRID,
            "{expires_in:?}"
        );
    }
}

/// `POST /files/download-urls` takes 1 to 100 ids: 100 are answered one by one, 101 refused.
#[tokio::test]
async fn a_batch_takes_up_to_a_hundred_ids() {
    let h = harness();
    let ids =
        |n: usize| -> Vec<String> { (0..n).map(|_| FileId::new_random().to_string()).collect() };
    let answered = h
        .files
        .presign_downloads(&alice(), &ids(100), None, Disposition::Attachment)
        .await
        .unwrap();
    assert_eq!(answered.len(), 100);
    for n in [0, 101] {
        let refused = h
            .files
            .presign_downloads(&alice(), &ids(n), None, Disposition::Attachment)
            .await;
        assert!(
            matches!(refused, Err(AppError::InvalidRequest(_))),
            "{n}: {refused:?}"
        );
    }
}

/// `confirm` holds the stored object to everything the reservation said, each on its own: the
/// size, the content type, the declared SHA-256 and no header that no URL signed. The matching
/// object is confirmed; each of the others is rejected and deleted.
#[tokio::test]
async fn confirm_rejects_an_object_that_differs_in_any_one_respect() {
    let declared = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".to_owned();
    let matching = ObjectInfo {
        sha256: Some(declared.clone()),
        ..small_object("text/plain")
    };
    let cases: Vec<(&str, ObjectInfo, bool)> = vec![
        ("matching", matching.clone(), true),
        (
            "size",
            ObjectInfo {
                size: 4,
                ..matching.clone()
            },
            false,
        ),
        (
            "content type",
            ObjectInfo {
                content_type: Some("text/html".into()),
                ..matching.clone()
            },
            false,
        ),
        (
            "no content type",
            ObjectInfo {
                content_type: None,
                ..matching.clone()
            },
            false,
        ),
        (
            "SHA-256",
            ObjectInfo {
                sha256: Some("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=".into()),
                ..matching.clone()
            },
            false,
        ),
        (
            "no SHA-256",
            ObjectInfo {
                sha256: None,
                ..matching.clone()
            },
            false,
        ),
        (
            "unsigned header",
            ObjectInfo {
                unsigned_headers: vec!["content-encoding".into()],
                ..matching.clone()
            },
            false,
        ),
    ];
    for (what, object, confirmed) in cases {
        let h = harness();
        let mut record = uploaded(&h);
        record.sha256 = Some(declared.clone());
        h.store.insert(record.clone());
        h.bucket.replace(&record.key, object);
        let confirmation = h.files.confirm(record.clone()).await.unwrap();
        if confirmed {
            assert!(
                matches!(confirmation, Confirmation::Accepted(_)),
                "{what}: {confirmation:?}"
            );
            assert!(h.bucket.contains(&record.key), "{what}");
        } else {
            assert!(
                matches!(confirmation, Confirmation::Rejected { .. }),
                "{what}: {confirmation:?}"
            );
            assert!(
                !h.bucket.contains(&record.key),
                "{what}: the object is deleted"
            );
        }
    }
}
