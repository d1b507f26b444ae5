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
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use presign_gate::domain::{
    FileId, FileRecord, FileStatus, ObjectKey, OwnerId, QuotaLimits, RejectReason, purge_time,
};
use presign_gate::error::AppError;
use presign_gate::store::{DynamoDbOwnershipStore, OwnershipStore, Transition, attr};
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
        rejected_for: None,
        multipart: None,
        idempotency_key: None,
    }
}

/// The item as stored, attribute by attribute.
async fn raw_item(
    standins: &StandIns,
    owner: &str,
    id: &str,
) -> std::collections::HashMap<String, AttributeValue> {
    standins
        .raw_item(owner, id)
        .await
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

/// A reservation commits only while the owner's ledger is at the version it read, so every write
/// of the ledger must move that version on: otherwise a reservation that read the ledger before
/// another one committed would still commit, over the other's entry.
#[tokio::test]
async fn every_write_of_an_owners_ledger_moves_its_version_on() {
    let standins = StandIns::start().await;
    let store = standins.store();
    let now = OffsetDateTime::now_utc();
    let version = || async {
        let ledger = raw_item(&standins, "alice", attr::USAGE_SORT_KEY).await;
        ledger[attr::VERSION]
            .as_n()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let first = pending_record("alice", "first.txt");
    store
        .reserve(&first, &QuotaLimits::default(), now)
        .await
        .unwrap();
    assert_eq!(version().await, 1);
    let second = pending_record("alice", "second.txt");
    store
        .reserve(&second, &QuotaLimits::default(), now)
        .await
        .unwrap();
    assert_eq!(version().await, 2);
    assert_eq!(
        store
            .mark_rejected(&second, RejectReason::Mismatch)
            .await
            .unwrap(),
        Transition::Applied
    );
    assert_eq!(version().await, 3);
}

/// When the ledger changed between a reservation's read and its transaction, DynamoDB cancels
/// the transaction on the ledger's condition (its second item), and the reservation reads the
/// ledger again and retries; only a failed condition on the record itself (the first item) means
/// the key is taken. moto cannot be made to interleave two reservations at that point, so
/// DynamoDB's answer is scripted here, in its wire format ("TransactWriteItems", Amazon DynamoDB
/// API Reference: TransactionCanceledException, CancellationReasons in item order).
#[tokio::test]
async fn a_reservation_that_lost_the_ledger_to_another_reads_it_again_and_commits() {
    let no_ledger_yet = mock!(aws_sdk_dynamodb::Client::get_item)
        .then_output(|| aws_sdk_dynamodb::operation::get_item::GetItemOutput::builder().build());
    let ledger_moved_then_commit = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled","CancellationReasons":[{"Code":"None"},{"Code":"ConditionalCheckFailed","Message":"The conditional request failed"}]}"#,
                ),
            )
        })
        .output(|| {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
                .build()
        })
        .build();
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&no_ledger_yet, &ledger_moved_then_commit]
    );
    let store = DynamoDbOwnershipStore::new(client, TABLE);
    let record = pending_record("alice", "a.txt");
    store
        .reserve(&record, &QuotaLimits::default(), OffsetDateTime::now_utc())
        .await
        .expect("the second attempt commits");
    assert_eq!(ledger_moved_then_commit.num_calls(), 2);
    assert_eq!(no_ledger_yet.num_calls(), 2, "the ledger is read again");
}

/// DynamoDB's answer to a transaction whose token names one still being committed (Amazon
/// DynamoDB API Reference, TransactWriteItems, Errors: `TransactionInProgressException`, "The
/// transaction with the given request token is already in progress"), in its wire format.
fn transaction_in_progress() -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionInProgressException","Message":"Transaction is in progress"}"#,
        ),
    )
}

/// A DynamoDB client over `rules` that makes one attempt a call: each request below is one of the
/// store's own attempts (the SDK's retries, with the production policy, are in tests/faults.rs).
macro_rules! single_attempt_client {
    ($($rule:expr),+) => {
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [$($rule),+], |conf| conf
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()))
    };
}

/// Issue 20, 2.4: a transaction still committing is no failure. The store sends it again after
/// its backoff with the same `ClientRequestToken` (so a first attempt that does commit is not
/// applied twice, and the repeat answers its success: API Reference, TransactWriteItems,
/// ClientRequestToken), and the change is applied.
#[tokio::test]
async fn a_transaction_in_progress_is_sent_again_with_the_same_token() {
    let tokens = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = tokens.clone();
    let in_progress_then_commit = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .match_requests(move |input| {
            seen.lock()
                .unwrap()
                .push(input.client_request_token().map(str::to_owned));
            true
        })
        .sequence()
        .http_response(transaction_in_progress)
        .times(2)
        .output(|| {
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
                .build()
        })
        .build();
    let store =
        DynamoDbOwnershipStore::new(single_attempt_client!(&in_progress_then_commit), TABLE);
    let record = pending_record("alice", "a.txt");
    let uploaded_at = OffsetDateTime::now_utc();
    assert_eq!(
        store
            .mark_uploaded(
                &record,
                FileStatus::Available,
                "\"e\"",
                uploaded_at,
                &QuotaLimits::default()
            )
            .await
            .expect("committed once the first attempt has"),
        Transition::Applied
    );
    assert_eq!(in_progress_then_commit.num_calls(), 3);
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    assert!(
        tokens[0].as_deref().is_some_and(|t| !t.is_empty()),
        "{tokens:?}"
    );
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "one token: {tokens:?}"
    );
}

/// ... and one that stays in progress through every attempt is unavailable (503, retry later),
/// never internal (500): nothing is known to have failed.
#[tokio::test]
async fn a_transaction_that_stays_in_progress_is_unavailable() {
    let always_in_progress = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_response(transaction_in_progress)
        .repeatedly()
        .build();
    let store = DynamoDbOwnershipStore::new(single_attempt_client!(&always_in_progress), TABLE);
    let record = pending_record("alice", "a.txt");
    let result = store.mark_rejected(&record, RejectReason::Mismatch).await;
    assert!(
        matches!(result, Err(AppError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        always_in_progress.num_calls(),
        4,
        "tried again with backoff, then gave up"
    );
}

/// Issue 20, 2.7, against moto: a reservation repeated with its `Idempotency-Key` is the same
/// file, written once (the record's `attribute_not_exists` condition is what a racing repeat
/// meets), with the key stored beside it and one entry in the ledger; the repeat's fresh URL
/// stores the bytes in s3s-fs.
#[tokio::test]
async fn a_reservation_repeated_with_its_idempotency_key_is_stored_once() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reserve = || async {
        let mut event = http_api_event(
            "POST",
            "/uploads",
            Some("alice"),
            Some(
                serde_json::json!({"filename": "a.txt", "contentType": "text/plain", "size": 3})
                    .to_string(),
            ),
        );
        event["headers"]["idempotency-key"] = serde_json::json!("upload-7f3a");
        let answer = api.send_event(&event).await;
        assert_eq!(answer.status.as_u16(), 201, "{answer:?}");
        answer.body
    };
    let first = reserve().await;
    let second = reserve().await;
    let id = first["file"]["id"].as_str().unwrap();
    assert_eq!(second["file"]["id"], id);
    let owner = OwnerId::parse("alice").unwrap();
    let (records, _) = standins.store().list(&owner, 10, None).await.unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    let item = raw_item(&standins, "alice", id).await;
    assert_eq!(item[attr::IDEMPOTENCY_KEY].as_s().unwrap(), "upload-7f3a");
    let ledger = standins.store().ledger(&owner).await.unwrap();
    assert_eq!(ledger.reservations(), 1, "{ledger:?}");
    // The record under the key's id refuses a second write, whatever the service read first.
    let record = standins
        .store()
        .get(&owner, FileId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let again = FileRecord {
        created_at: record.created_at + time::Duration::seconds(1),
        ..record
    };
    let refused = standins
        .store()
        .reserve(&again, &QuotaLimits::default(), OffsetDateTime::now_utc())
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(upload(&second, b"abc").await.status(), 200);
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
            .mark_uploaded(
                &confirmed,
                FileStatus::Available,
                "\"first\"",
                uploaded_at,
                &QuotaLimits::default()
            )
            .await
            .unwrap(),
        Transition::Applied
    );
    let available = store.get(&confirmed.owner, confirmed.id).await.unwrap();
    assert_eq!(
        store
            .mark_uploaded(
                &confirmed,
                FileStatus::Available,
                "\"second\"",
                uploaded_at,
                &QuotaLimits::default()
            )
            .await
            .unwrap(),
        Transition::Stale
    );
    assert_eq!(
        store
            .mark_rejected(&confirmed, RejectReason::Mismatch)
            .await
            .unwrap(),
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
        store
            .mark_rejected(&rejected, RejectReason::Mismatch)
            .await
            .unwrap(),
        Transition::Applied
    );
    assert_eq!(
        store
            .mark_uploaded(
                &rejected,
                FileStatus::Available,
                "\"late\"",
                uploaded_at,
                &QuotaLimits::default()
            )
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
    assert_eq!(ledger.reservations(), 0, "{ledger:?}");

    // A rejected record goes once (a plain DeleteItem, since it holds nothing in the ledger);
    // a delete that finds it gone already is `Stale`, from DynamoDB's condition.
    let rejected = store
        .get(&rejected.owner, rejected.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.delete(&rejected).await.unwrap(), Transition::Applied);
    assert_eq!(store.delete(&rejected).await.unwrap(), Transition::Stale);
    assert_eq!(store.get(&rejected.owner, rejected.id).await.unwrap(), None);
}

/// README, "Lifecycle": an unconfirmed reservation's `purgeAt` (the table's TTL) is its upload
/// URL's expiry plus 24 hours, rounded up to the ledger's 4-hour grid, and confirmation removes
/// it, so the TTL never takes a file.
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
    let a_day_later = expires_at + time::Duration::days(1);
    assert_eq!(purge_at, purge_time(a_day_later).unix_timestamp());
    assert!(purge_at >= a_day_later.unix_timestamp(), "{purge_at}");
    assert!(
        purge_at < a_day_later.unix_timestamp() + 4 * 3600,
        "{purge_at}"
    );

    assert_eq!(upload(&reservation, b"abc").await.status(), 200);
    assert_eq!(api.complete("alice", &id).await.status.as_u16(), 200);
    let item = raw_item(&standins, "alice", &id).await;
    assert_eq!(item[attr::STATUS].as_s().unwrap(), "available");
    assert!(!item.contains_key(attr::PURGE_AT), "{item:?}");
}
