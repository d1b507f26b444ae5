//! The DynamoDB adapter's conditional writes against moto, which evaluates condition expressions
//! and transactions as DynamoDB does: what keeps a record from being replaced or changed twice is
//! the condition DynamoDB checks, not a read the adapter makes first. And the purge time the
//! table's TTL reads, as written.
//!
//! Races are shown over the fakes (`tests/service.rs`: two concurrent confirmations change the
//! record once), not here: moto does not serialise concurrent `TransactWriteItems` (two joined
//! confirmations of one record both commit on it), where DynamoDB evaluates a transaction's
//! conditions and writes atomically (DynamoDB Developer Guide, "Amazon DynamoDB Transactions:
//! How it works", isolation levels: serializable). What this file adds is that the adapter asks
//! DynamoDB for the condition the fakes model: the second of two confirmations is refused by it.

use presign_gate_test_support as support;

use aws_sdk_dynamodb::types::AttributeValue;
use presign_gate::domain::{FileId, FileRecord, FileStatus, ObjectKey, OwnerId, QuotaLimits};
use presign_gate::error::AppError;
use presign_gate::store::{OwnershipStore, Transition, attr};
use support::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn pending_record(owner: &str, filename: &str) -> FileRecord {
    let owner = OwnerId::parse(owner).unwrap();
    let id = FileId::new_random();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    FileRecord {
        key: ObjectKey::for_file(&owner, id),
        owner,
        id,
        filename: filename.into(),
        content_type: "text/plain".into(),
        size: 3,
        sha256: None,
        status: FileStatus::Pending,
        created_at: now,
        purge_at: Some(now + time::Duration::hours(25)),
        etag: None,
        uploaded_at: None,
        multipart: None,
    }
}

/// The item as stored, attribute by attribute.
async fn raw_item(
    standins: &StandIns,
    owner: &str,
    id: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    standins
        .dynamodb_client()
        .get_item()
        .table_name(TABLE)
        .key(attr::OWNER, AttributeValue::S(owner.into()))
        .key(attr::FILE_ID, AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the item is stored")
}

/// A second reservation under an existing key (a UUID collision, however unlikely) fails, and
/// the first record stays as it was: DynamoDB's `attribute_not_exists` refuses the write. The
/// same reservation repeated succeeds.
#[tokio::test]
async fn a_second_reservation_of_the_same_key_is_refused_by_the_condition() {
    let standins = StandIns::start().await;
    let store = standins.store();
    let now = OffsetDateTime::now_utc();
    let first = pending_record("alice", "first.txt");
    store
        .reserve(&first, &QuotaLimits::default(), now)
        .await
        .unwrap();
    let mut second = pending_record("alice", "second.txt");
    second.id = first.id;
    second.key = first.key.clone();
    let refused = store.reserve(&second, &QuotaLimits::default(), now).await;
    assert!(matches!(refused, Err(AppError::Internal(_))), "{refused:?}");
    // The same reservation again, as the SDK's retry of an attempt whose answer was lost reaches
    // a store that ignores its idempotency token (moto): the record is this reservation's own,
    // so it succeeds, and changes nothing.
    store
        .reserve(&first, &QuotaLimits::default(), now)
        .await
        .expect("a repeated reservation is the same one");
    assert_eq!(
        store.get(&first.owner, first.id).await.unwrap(),
        Some(first)
    );
}

/// Only a pending record changes state: confirming or rejecting one that is available or
/// rejected already is `Stale` and writes nothing.
#[tokio::test]
async fn a_transition_from_a_settled_state_is_stale_and_changes_nothing() {
    let standins = StandIns::start().await;
    let store = standins.store();
    let now = OffsetDateTime::now_utc();
    let uploaded_at = now.replace_nanosecond(0).unwrap();

    let confirmed = pending_record("alice", "confirmed.txt");
    store
        .reserve(&confirmed, &QuotaLimits::default(), now)
        .await
        .unwrap();
    assert_eq!(
        store
            .mark_available(&confirmed, "\"first\"", uploaded_at)
            .await
            .unwrap(),
        Transition::Applied
    );
    let available = store.get(&confirmed.owner, confirmed.id).await.unwrap();
    assert_eq!(
        store
            .mark_available(&confirmed, "\"second\"", uploaded_at)
            .await
            .unwrap(),
        Transition::Stale
    );
    assert_eq!(
        store.mark_rejected(&confirmed).await.unwrap(),
        Transition::Stale
    );
    let after = store.get(&confirmed.owner, confirmed.id).await.unwrap();
    assert_eq!(after, available);
    assert_eq!(after.unwrap().etag.as_deref(), Some("\"first\""));

    let rejected = pending_record("alice", "rejected.txt");
    store
        .reserve(&rejected, &QuotaLimits::default(), now)
        .await
        .unwrap();
    assert_eq!(
        store.mark_rejected(&rejected).await.unwrap(),
        Transition::Applied
    );
    assert_eq!(
        store
            .mark_available(&rejected, "\"late\"", uploaded_at)
            .await
            .unwrap(),
        Transition::Stale
    );
    let after = store
        .get(&rejected.owner, rejected.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((after.status, after.etag), (FileStatus::Rejected, None));

    // The confirmed file's bytes counted once, and no reservation is left in the ledger.
    let ledger = store.ledger(&confirmed.owner).await.unwrap();
    assert_eq!(ledger.available_bytes, confirmed.size);
    assert!(ledger.pending.is_empty(), "{ledger:?}");
}

/// README, "Lifecycle": an unconfirmed reservation's `purgeAt` (the table's TTL) is its upload
/// URL's expiry plus 24 hours, and confirmation removes it, so the TTL never takes a file.
#[tokio::test]
async fn purge_at_is_the_upload_expiry_plus_a_day_and_goes_on_confirmation() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    let id = file_id(&reservation);
    let expires_at = OffsetDateTime::parse(
        reservation["upload"]["expiresAt"].as_str().unwrap(),
        &Rfc3339,
    )
    .unwrap();
    let item = raw_item(&standins, "alice", &id).await;
    let purge_at: i64 = item[attr::PURGE_AT].as_n().unwrap().parse().unwrap();
    assert_eq!(purge_at, expires_at.unix_timestamp() + 24 * 3600);

    assert_eq!(upload(&reservation, b"abc").await.status(), 200);
    assert_eq!(api.complete("alice", &id).await.status.as_u16(), 200);
    let item = raw_item(&standins, "alice", &id).await;
    assert_eq!(item[attr::STATUS].as_s().unwrap(), "available");
    assert!(!item.contains_key(attr::PURGE_AT), "{item:?}");
}
