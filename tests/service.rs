//! The use cases of `service.rs` over the in-memory fakes: the orderings and races that decide
//! whether anything reserved or uploaded can be lost, shown step by step. The fakes journal every
//! call across store and bucket, can fail an operation as an outage would, and let two joined
//! operations interleave where real ones wait for S3.

use presign_gate::bucket::ObjectInfo;
use presign_gate::domain::{
    Disposition, ExpiryPolicy, FileId, FileRecord, FileStatus, OwnerId, UploadPolicy,
};
use presign_gate::error::AppError;
use presign_gate::service::{Confirmation, FileService};
use presign_gate_test_support::fakes::{FakeBucket, FakeStore, Journal, pair, seed, small_object};

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
    let record = uploaded(&h);
    let (first, second) = tokio::join!(
        h.files.confirm(record.clone()),
        h.files.confirm(record.clone())
    );
    // Both read the pending record and the object before either wrote: a real race.
    assert_eq!(h.bucket.journal.matching("bucket.head").len(), 2);
    assert_eq!(
        h.store.journal.matching("store.mark_available "),
        ["store.mark_available Applied", "store.mark_available Stale"]
    );
    for confirmation in [first.unwrap(), second.unwrap()] {
        match confirmation {
            Confirmation::Available(confirmed) => {
                assert_eq!(confirmed.status, FileStatus::Available);
                assert_eq!(confirmed.etag.as_deref(), Some("\"e\""));
            }
            other => panic!("{other:?}"),
        }
    }
    let stored = h.store.record(&alice(), record.id).unwrap();
    assert_eq!(stored.status, FileStatus::Available);
    assert_eq!(stored.purge_at, None);
}

#[tokio::test]
async fn two_concurrent_rejections_reject_once_and_delete_the_object() {
    let h = harness();
    let record = uploaded(&h);
    // Another object reached the key: 4 bytes where 3 were reserved.
    h.bucket.put(
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
    h.bucket.put(
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
        Err(AppError::NotReady)
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
            format!("bucket.delete {}", record.key.as_str()),
            "store.delete".to_owned(),
        ]
    );
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
                Err(AppError::NotReady) => "not_ready",
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
