//! Defence in depth that the README and SECURITY.md promise and that a happy path never exercises:
//! each test here fails when its one safeguard is removed (issue 14). Over the in-memory fakes, so
//! they cost milliseconds; what needs real AWS behaviour is in `tests/store.rs` and `tests/api.rs`.

use presign_gate_test_support as support;

use lambda_http::http::{HeaderName, StatusCode};
use presign_gate::bucket::PresignedRequest;
use presign_gate::domain::{FileId, FileStatus, OwnerId};
use presign_gate::http::Api;
use presign_gate::service::ObjectEventOutcome;
use serde_json::json;
use support::fakes::{seed, service_over_pair};
use support::fuzzing::{self, ALICE_AVAILABLE, ALICE_PENDING, BOB_AVAILABLE};
use support::{Answer, HttpApiEvent, TestApi};

/// The seeded fakes of the fuzz harness (alice's available, pending and HTML files, bob's one).
fn api(
    dev_user_header: Option<&'static str>,
) -> TestApi<support::fakes::FakeStore, support::fakes::FakeBucket> {
    TestApi(Api::new(
        fuzzing::service(),
        dev_user_header.map(HeaderName::from_static),
    ))
}

/// README, "API reference": no response may be cached (`Cache-Control: no-store`), whatever its
/// status: bodies carry presigned URLs, and even a 204 or an error is private to its caller.
#[tokio::test]
async fn every_response_is_no_store_204s_and_errors_included() {
    let api = api(None);
    let upload = json!({ "filename": "a.txt", "contentType": "text/plain", "size": 3 });
    let batch = json!({ "ids": [ALICE_AVAILABLE, BOB_AVAILABLE] });
    // (method, path, caller, body, status)
    let requests: [(_, String, _, Option<serde_json::Value>, u16); 13] = [
        ("POST", "/uploads".into(), Some("alice"), Some(upload), 201),
        ("GET", "/files".into(), Some("alice"), None, 200),
        (
            "GET",
            format!("/files/{ALICE_AVAILABLE}"),
            Some("alice"),
            None,
            200,
        ),
        (
            "GET",
            format!("/files/{ALICE_AVAILABLE}/download-url"),
            Some("alice"),
            None,
            200,
        ),
        (
            "POST",
            "/files/download-urls".into(),
            Some("alice"),
            Some(batch),
            200,
        ),
        ("GET", "/usage".into(), Some("alice"), None, 200),
        (
            "POST",
            format!("/files/{ALICE_PENDING}/complete"),
            Some("alice"),
            None,
            200,
        ),
        (
            "DELETE",
            format!("/files/{ALICE_AVAILABLE}"),
            Some("alice"),
            None,
            204,
        ),
        (
            "GET",
            format!("/files/{BOB_AVAILABLE}"),
            Some("alice"),
            None,
            404,
        ),
        ("GET", "/files".into(), None, None, 401),
        ("PUT", "/uploads".into(), Some("alice"), None, 405),
        ("GET", "/files?limit=0".into(), Some("alice"), None, 400),
        ("GET", "/nowhere".into(), Some("alice"), None, 404),
    ];
    let mut statuses = Vec::new();
    for (method, path, caller, body, expected) in requests {
        let answer: Answer = api.call(method, &path, caller, body).await;
        assert_eq!(
            answer.status.as_u16(),
            expected,
            "{method} {path}: {answer:?}"
        );
        assert_eq!(
            answer
                .headers
                .get_all("cache-control")
                .iter()
                .collect::<Vec<_>>(),
            ["no-store"],
            "{method} {path}: {answer:?}"
        );
        statuses.push(expected);
    }
    assert!(statuses.contains(&204), "a 204 was among them");
}

/// README, "Identity": the dev header names the caller only when no authorizer did. A request
/// carrying both (an authorizer's `sub` and a dev header naming someone else) acts for the
/// authorizer's caller.
#[tokio::test]
async fn the_dev_header_is_consulted_only_when_no_authorizer_spoke() {
    let api = api(Some("x-dev-user"));
    let download = |id: &str| format!("/files/{id}/download-url");
    let both = |id: &str| {
        HttpApiEvent::new("GET", &download(id))
            .caller("alice")
            .header("x-dev-user", "bob")
            .to_json()
    };
    // As alice, whatever the header says: her file, and not bob's.
    assert_eq!(
        api.send_event(&both(ALICE_AVAILABLE)).await.status,
        StatusCode::OK
    );
    let answer = api.send_event(&both(BOB_AVAILABLE)).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (StatusCode::NOT_FOUND, "not_found"),
        "{answer:?}"
    );
    // With no authorizer, the header is who the caller is (so the header above was read).
    let header_only = HttpApiEvent::new("GET", &download(BOB_AVAILABLE))
        .header("x-dev-user", "bob")
        .to_json();
    assert_eq!(api.send_event(&header_only).await.status, StatusCode::OK);
}

/// SECURITY.md, "Leaked URL": nothing logs a URL, and `{:?}` of the one type that holds one is
/// the easiest way to log it by accident.
#[test]
fn a_presigned_requests_debug_leaves_out_the_url_and_its_headers() {
    let url = "https://files.s3.us-east-1.amazonaws.com/users/alice/f?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261130%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=5f1a9d0c7e";
    let request = PresignedRequest {
        method: "PUT".into(),
        url: url.into(),
        headers: vec![(
            "x-amz-checksum-sha256".into(),
            "c2VjcmV0LWRpZ2VzdA==".into(),
        )],
        expires_at: time::OffsetDateTime::UNIX_EPOCH,
    };
    let debug = format!("{request:?} {request:#?}");
    assert!(debug.contains("PUT"), "{debug}");
    for secret in [
        url,
        "amazonaws.com",
        "users/alice",
        "X-Amz-Signature",
        "5f1a9d0c7e",
        "AKIDEXAMPLE",
        "c2VjcmV0LWRpZ2VzdA==",
    ] {
        assert!(!debug.contains(secret), "{secret:?} in {debug}");
    }
}

/// README, "S3 events": `ObjectRemoved` takes an available file's record with it; pending and
/// rejected records describe a reservation, not an object, and stay (a rejected record is how the
/// client learns why its upload failed).
#[tokio::test]
async fn object_removed_leaves_pending_and_rejected_records_alone() {
    let (files, store, bucket) = service_over_pair();
    let alice = OwnerId::parse("alice").unwrap();
    for status in [FileStatus::Rejected, FileStatus::Pending] {
        let record = seed(
            &store,
            &bucket,
            "alice",
            FileId::new_random(),
            "text/plain",
            status,
        );
        bucket.delete_now(&record.key);
        let outcome = files.object_removed(record.key.as_str()).await.unwrap();
        assert!(
            matches!(outcome, ObjectEventOutcome::Unchanged),
            "{outcome:?}"
        );
        assert_eq!(store.record(&alice, record.id), Some(record), "{status:?}");
    }
    // And the same event for an available file does remove its record (the test can fail).
    let available = seed(
        &store,
        &bucket,
        "alice",
        FileId::new_random(),
        "text/plain",
        FileStatus::Available,
    );
    bucket.delete_now(&available.key);
    let outcome = files.object_removed(available.key.as_str()).await.unwrap();
    assert!(
        matches!(outcome, ObjectEventOutcome::RecordRemoved),
        "{outcome:?}"
    );
    assert_eq!(store.record(&alice, available.id), None);
}
