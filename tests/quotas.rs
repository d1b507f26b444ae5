//! Per-owner quotas through the real handler and the DynamoDB adapter, against the stand-ins:
//! the usage ledger is written in the same TransactWriteItems as each record change (moto runs
//! transactions with their conditions and cancellation reasons), refusals write nothing, every
//! release happens once, and the ledger item never shows up as a file.
//!
//! Joined reservations racing for the last place are tested over the fakes (tests/service.rs):
//! moto's server handles requests on threads without serializing a transaction's condition check
//! and write, so a race there could let both through where DynamoDB lets exactly one.

use presign_gate_test_support as support;

use lambda_http::http::StatusCode;
use presign_gate::domain::{FileId, FileRecord, NewUpload, OwnerId, QuotaLimits};
use presign_gate::http::Api;
use presign_gate::store::{OwnershipStore, attr};
use serde_json::{Value, json};
use support::*;
use time::OffsetDateTime;

const LIMITS: QuotaLimits = QuotaLimits {
    max_pending_uploads: 2,
    max_bytes: 10,
};

fn api(standins: &StandIns) -> TestApi {
    TestApi(Api::new(
        standins.files_as(Role::Api).with_quotas(LIMITS),
        None,
    ))
}

async fn usage(api: &TestApi, caller: &str) -> Value {
    let answer = api.call("GET", "/usage", Some(caller), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body
}

fn expected_usage(pending_uploads: u64, bytes: u64) -> Value {
    json!({
        "pendingUploads": pending_uploads,
        "bytes": bytes,
        "limits": { "pendingUploads": 2, "bytes": 10 },
        "uploads": { "multipartThresholdBytes": presign_gate::domain::DEFAULT_MULTIPART_THRESHOLD_BYTES },
    })
}

async fn reserve(api: &TestApi, caller: &str, size: usize) -> (StatusCode, Value) {
    let body = json!({ "filename": "a.txt", "contentType": "text/plain", "size": size });
    let answer = api.call("POST", "/uploads", Some(caller), Some(body)).await;
    (answer.status, answer.body)
}

async fn listed(api: &TestApi, caller: &str) -> usize {
    let answer = api.call("GET", "/files", Some(caller), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["files"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn reservations_over_a_limit_are_refused_and_write_nothing() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    assert_eq!(usage(&api, "alice").await, expected_usage(0, 0));
    let first = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    api.reserve("alice", "b.txt", "text/plain", b"de").await;
    assert_eq!(usage(&api, "alice").await, expected_usage(2, 5));

    let (status, body) = reserve(&api, "alice", 1).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("pendingUploads limit"), "{message}");
    assert_eq!(listed(&api, "alice").await, 2, "no record written");
    assert_eq!(usage(&api, "alice").await, expected_usage(2, 5));

    // Another owner has quotas of its own.
    let (status, _) = reserve(&api, "bob", 10).await;
    assert_eq!(status, StatusCode::CREATED);

    // Confirming frees the pending place but keeps the bytes; then the bytes limit is the one.
    let put = upload(&first, b"abc").await;
    assert_eq!(put.status(), 200);
    let id = file_id(&first);
    assert_eq!(api.complete("alice", &id).await.status, StatusCode::OK);
    assert_eq!(api.complete("alice", &id).await.status, StatusCode::OK);
    assert_eq!(usage(&api, "alice").await, expected_usage(1, 5));
    let (status, body) = reserve(&api, "alice", 6).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("bytes limit"), "{message}");
    assert!(message.contains("10 bytes"), "{message}");
    assert_eq!(listed(&api, "alice").await, 2, "no record written");
    let (status, body) = reserve(&api, "alice", 5).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(usage(&api, "alice").await, expected_usage(2, 10));
}

#[tokio::test]
async fn deletes_rejections_and_removals_release_usage_once() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let files = standins.files();

    // A pending reservation, deleted twice.
    let pending = file_id(&api.reserve("alice", "a.txt", "text/plain", b"abc").await);
    let path = format!("/files/{pending}");
    assert_eq!(
        api.call("DELETE", &path, Some("alice"), None).await.status,
        204
    );
    assert_eq!(
        api.call("DELETE", &path, Some("alice"), None).await.status,
        404
    );
    assert_eq!(usage(&api, "alice").await, expected_usage(0, 0));

    // An upload that does not match its reservation: another object reached the key.
    let rejected = api.reserve("alice", "b.txt", "text/plain", b"abc").await;
    let rejected_id = file_id(&rejected);
    let owner = OwnerId::parse("alice").unwrap();
    let key = presign_gate::domain::ObjectKey::for_file(
        &owner,
        FileId::parse(&rejected_id).expect("an id"),
    );
    standins
        .s3_client()
        .put_object()
        .if_none_match("*") // the bucket policy refuses any write under users/ without it
        .bucket(BUCKET)
        .key(key.as_str())
        .content_type("text/plain")
        .body(b"four".to_vec().into())
        .send()
        .await
        .expect("put a mismatching object");
    for _ in 0..2 {
        let answer = api.complete("alice", &rejected_id).await;
        assert_eq!(answer.error_code(), "upload_rejected", "{answer:?}");
    }
    assert_eq!(usage(&api, "alice").await, expected_usage(0, 0));

    // An available file that S3 reports removed, twice (S3 delivers events at least once).
    let stored = api
        .stored_file("alice", "c.txt", "text/plain", b"1234567")
        .await;
    assert_eq!(usage(&api, "alice").await, expected_usage(0, 7));
    let key = presign_gate::domain::ObjectKey::for_file(&owner, FileId::parse(&stored).unwrap());
    for _ in 0..2 {
        files.object_removed(key.as_str()).await.unwrap();
    }
    assert_eq!(usage(&api, "alice").await, expected_usage(0, 0));

    // An available file deleted through the API.
    let stored = api.stored_file("alice", "d.txt", "text/plain", b"12").await;
    assert_eq!(usage(&api, "alice").await, expected_usage(0, 2));
    let path = format!("/files/{stored}");
    assert_eq!(
        api.call("DELETE", &path, Some("alice"), None).await.status,
        204
    );
    assert_eq!(usage(&api, "alice").await, expected_usage(0, 0));
    assert_eq!(listed(&api, "alice").await, 1, "only the rejected record");
}

/// The ledger item shares the owner's partition with the records: listings page through the
/// records only, and the ledger is no file to any read.
#[tokio::test]
async fn the_ledger_is_never_a_file() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let a = file_id(&api.reserve("alice", "a.txt", "text/plain", b"a").await);
    let b = file_id(&api.reserve("alice", "b.txt", "text/plain", b"b").await);
    let item = standins
        .dynamodb_client()
        .get_item()
        .table_name(TABLE)
        .key(
            attr::OWNER,
            aws_sdk_dynamodb::types::AttributeValue::S("alice".into()),
        )
        .key(
            attr::FILE_ID,
            aws_sdk_dynamodb::types::AttributeValue::S(attr::USAGE_SORT_KEY.into()),
        )
        .send()
        .await
        .expect("read the ledger item")
        .item;
    assert!(item.is_some(), "the ledger lives in the owner's partition");
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            None => "/files?limit=1".to_owned(),
            Some(token) => format!("/files?limit=1&nextToken={token}"),
        };
        let answer = api.call("GET", &path, Some("alice"), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        for file in answer.body["files"].as_array().expect("files") {
            seen.push(file["id"].as_str().expect("id").to_owned());
        }
        match answer.body["nextToken"].as_str() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(seen, expected);
    for path in ["/files/%23usage", "/files/#usage/download-url"] {
        let answer = api.call("GET", path, Some("alice"), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {answer:?}");
    }
}

/// The table's TTL deletes an abandoned reservation with no write of ours: from its purge time
/// on the ledger counts it for nothing, and the next reservation drops its entry.
#[tokio::test]
async fn reservations_past_their_purge_time_count_for_nothing() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let store = standins.store();
    let owner = OwnerId::parse("alice").unwrap();
    let long_ago = OffsetDateTime::UNIX_EPOCH + std::time::Duration::from_secs(1000);
    let lapsed_at = long_ago + std::time::Duration::from_secs(10);
    for size in [4, 5] {
        let upload = NewUpload {
            filename: "old.txt".into(),
            content_type: "text/plain".into(),
            size,
            sha256: None,
            parts: None,
        };
        let record = FileRecord::pending(
            owner.clone(),
            FileId::new_random(),
            upload,
            long_ago,
            lapsed_at,
        );
        store.reserve(&record, &LIMITS, long_ago).await.unwrap();
    }
    assert_eq!(store.ledger(&owner).await.unwrap().reservations(), 2);
    assert_eq!(usage(&api, "alice").await, expected_usage(0, 0));
    let kept = api
        .reserve("alice", "new.txt", "text/plain", b"0123456789")
        .await;
    let ledger = store.ledger(&owner).await.unwrap();
    assert!(!ledger.pending.contains_key(&lapsed_at), "{ledger:?}");
    assert_eq!(
        ledger.reservations(),
        1,
        "only {}: {ledger:?}",
        file_id(&kept)
    );
    assert_eq!(usage(&api, "alice").await, expected_usage(1, 10));
}
