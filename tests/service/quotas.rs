//! Quotas through the service over the fakes: joined reservations at each limit admit exactly
//! one, and every release happens once.

use super::*;

const LIMITS: QuotaLimits = QuotaLimits {
    max_pending_uploads: 3,
    max_bytes: 20,
};

fn harness_with_quotas() -> Harness {
    let h = harness();
    Harness {
        files: FileService::new(
            h.store.clone(),
            h.bucket.clone(),
            UploadPolicy::new(["text/plain"], 1024).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        )
        .with_quotas(LIMITS),
        ..h
    }
}

fn text_upload(size: u64) -> UploadRequest {
    serde_json::from_value(serde_json::json!({
        "filename": "a.txt",
        "contentType": "text/plain",
        "size": size,
    }))
    .unwrap()
}

async fn usage(h: &Harness) -> Usage {
    let (usage, limits) = h.files.usage(&alice()).await.unwrap();
    assert_eq!(limits, LIMITS);
    usage
}

/// Reserves `size` bytes for alice and puts a matching object where the upload URL points.
async fn reserve_and_upload(h: &Harness, size: u64) -> FileRecord {
    let (record, _) = h
        .files
        .reserve_upload(&alice(), text_upload(size))
        .await
        .unwrap();
    h.bucket.put(
        &record.key,
        ObjectInfo {
            size,
            ..small_object("text/plain")
        },
    );
    record
}

fn quota_refusals(
    results: &[Result<(FileRecord, presign_gate::service::UploadInstructions), AppError>],
) -> usize {
    results
        .iter()
        .filter(|result| matches!(result, Err(AppError::QuotaExceeded(_))))
        .count()
}

#[tokio::test]
async fn joined_reservations_at_the_pending_limit_admit_exactly_one() {
    let h = harness_with_quotas();
    let owner = alice();
    reserve_and_upload(&h, 1).await;
    reserve_and_upload(&h, 1).await;
    let (a, b, c, d) = tokio::join!(
        h.files.reserve_upload(&owner, text_upload(1)),
        h.files.reserve_upload(&owner, text_upload(1)),
        h.files.reserve_upload(&owner, text_upload(1)),
        h.files.reserve_upload(&owner, text_upload(1)),
    );
    let results = [a, b, c, d];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(quota_refusals(&results), 3);
    // Refused reservations wrote nothing.
    assert_eq!(h.store.records_of(&owner).len(), 3);
    assert_eq!(
        usage(&h).await,
        Usage {
            pending_uploads: 3,
            bytes: 3
        }
    );
}

#[tokio::test]
async fn joined_reservations_at_the_byte_limit_admit_exactly_one() {
    let h = harness_with_quotas();
    let owner = alice();
    reserve_and_upload(&h, 8).await;
    let (a, b) = tokio::join!(
        h.files.reserve_upload(&owner, text_upload(7)),
        h.files.reserve_upload(&owner, text_upload(7)),
    );
    let results = [a, b];
    assert_eq!(quota_refusals(&results), 1);
    match results.iter().find_map(|r| r.as_ref().err()) {
        Some(AppError::QuotaExceeded(message)) => {
            assert!(message.contains("bytes limit"), "{message}");
            assert!(message.contains("20 bytes"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.store.records_of(&owner).len(), 2);
    assert_eq!(usage(&h).await.bytes, 15);
}

#[tokio::test]
async fn a_confirmation_frees_a_pending_place_and_keeps_the_bytes_once() {
    let h = harness_with_quotas();
    let record = reserve_and_upload(&h, 5).await;
    let (first, second) = tokio::join!(
        h.files.confirm(record.clone()),
        h.files.confirm(record.clone())
    );
    assert!(matches!(first.unwrap(), Confirmation::Accepted(_)));
    assert!(matches!(second.unwrap(), Confirmation::Accepted(_)));
    assert_eq!(
        usage(&h).await,
        Usage {
            pending_uploads: 0,
            bytes: 5
        }
    );
}

#[tokio::test]
async fn a_rejection_releases_the_reservation_once() {
    let h = harness_with_quotas();
    let owner = alice();
    let record = reserve_and_upload(&h, 5).await;
    h.bucket.put(&record.key, small_object("text/html"));
    let (first, second) = tokio::join!(
        h.files.confirm(record.clone()),
        h.files.confirm(record.clone())
    );
    assert!(matches!(first.unwrap(), Confirmation::Rejected { .. }));
    assert!(matches!(second.unwrap(), Confirmation::Rejected { .. }));
    assert_eq!(
        usage(&h).await,
        Usage {
            pending_uploads: 0,
            bytes: 0
        }
    );
    // Deleting the rejected record releases nothing more.
    h.files.delete_file(&owner, record.id).await.unwrap();
    assert_eq!(usage(&h).await.bytes, 0);
}

#[tokio::test]
async fn deletes_release_what_the_record_held_once() {
    let h = harness_with_quotas();
    let owner = alice();
    let pending = reserve_and_upload(&h, 4).await;
    let available = reserve_and_upload(&h, 6).await;
    h.files.confirm(available.clone()).await.unwrap();
    assert_eq!(
        usage(&h).await,
        Usage {
            pending_uploads: 1,
            bytes: 10
        }
    );
    let (first, second) = tokio::join!(
        h.files.delete_file(&owner, pending.id),
        h.files.delete_file(&owner, pending.id)
    );
    // The loser of the race finds the record gone (404) or gone by the time it deletes (done).
    assert!(first.is_ok());
    assert!(
        matches!(second, Ok(()) | Err(AppError::NotFound)),
        "{second:?}"
    );
    assert_eq!(
        usage(&h).await,
        Usage {
            pending_uploads: 0,
            bytes: 6
        }
    );
    h.files.delete_file(&owner, available.id).await.unwrap();
    assert_eq!(
        usage(&h).await,
        Usage {
            pending_uploads: 0,
            bytes: 0
        }
    );
}

/// A delete that read the record while it was pending, then lost the race to a confirmation:
/// the record is read again and its bytes released as an available file's, once.
#[tokio::test]
async fn a_delete_that_loses_to_a_confirmation_releases_the_confirmed_file() {
    let h = harness_with_quotas();
    let owner = alice();
    let record = reserve_and_upload(&h, 4).await;
    let (confirmed, deleted) = tokio::join!(
        h.files.confirm(record.clone()),
        h.files.delete_file(&owner, record.id)
    );
    deleted.unwrap();
    // Confirmed before the delete reached the object, or found the object gone: either way the
    // record is gone and so is every byte it counted.
    let _ = confirmed;
    assert!(h.store.record(&owner, record.id).is_none());
    assert_eq!(
        usage(&h).await,
        Usage {
            pending_uploads: 0,
            bytes: 0
        }
    );
}

#[tokio::test]
async fn an_object_removed_by_s3_releases_its_bytes_once() {
    let h = harness_with_quotas();
    let record = reserve_and_upload(&h, 9).await;
    h.files.confirm(record.clone()).await.unwrap();
    for _ in 0..2 {
        h.files.object_removed(record.key.as_str()).await.unwrap();
    }
    assert_eq!(usage(&h).await.bytes, 0);
}

/// A reservation of `size` bytes made at `at`, purged `lifetime` later.
fn reservation_made_at(at: time::OffsetDateTime, size: u64) -> FileRecord {
    let upload = NewUpload {
        filename: "a.txt".into(),
        content_type: "text/plain".into(),
        size,
        sha256: None,
        parts: None,
    };
    let purge_at = at + std::time::Duration::from_secs(10);
    FileRecord::pending(alice(), FileId::new_random(), upload, at, purge_at)
}

/// The table's TTL purges an abandoned reservation without telling anyone: from its purge time
/// on it counts for nothing, and the next reservation drops it from the ledger.
#[tokio::test]
async fn reservations_past_their_purge_time_count_for_nothing() {
    let h = harness_with_quotas();
    let long_ago = time::OffsetDateTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
    for _ in 0..3 {
        let old = reservation_made_at(long_ago, 6);
        h.store.reserve(&old, &LIMITS, long_ago).await.unwrap();
    }
    assert_eq!(h.store.ledger(&alice()).await.unwrap().reservations(), 3);
    // The limits are full as of then...
    assert!(matches!(
        h.store
            .reserve(&reservation_made_at(long_ago, 1), &LIMITS, long_ago)
            .await,
        Err(AppError::QuotaExceeded(_))
    ));
    // ...and empty now, whether or not the TTL has deleted the records yet.
    assert_eq!(
        usage(&h).await,
        Usage {
            pending_uploads: 0,
            bytes: 0
        }
    );
    let (kept, _) = h
        .files
        .reserve_upload(&alice(), text_upload(20))
        .await
        .unwrap();
    let ledger = h.store.ledger(&alice()).await.unwrap();
    let kept_purge_at = kept.purge_at.unwrap();
    assert_eq!(ledger.pending.keys().collect::<Vec<_>>(), [&kept_purge_at]);
    assert_eq!(ledger.reservations(), 1);
}
