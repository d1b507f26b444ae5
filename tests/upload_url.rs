//! `POST /files/{id}/upload-url` end to end (issue 20, point 2.2, server half): the real handler
//! against the local stack, which authorizes each request as IAM would from template.yaml (the
//! handler signs as the API role) and verifies SigV4 as S3 does, and the URLs fetched with plain
//! HTTP.
//!
//! A URL past its `X-Amz-Expires` is refused by S3 with 403 AccessDenied "Request has expired",
//! and one signed with a session token that has expired with `ExpiredToken` (AWS Knowledge
//! Center, "Why is my presigned URL for an Amazon S3 bucket expiring before the expiration time
//! that I specified?"): the browser client then asks this route for the same URL signed anew
//! (client/presign-gate.js, `uploadUrl`), and reads `upload` exactly as a reservation's.

use presign_gate_test_support as support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::*;

fn sha256_b64(bytes: &[u8]) -> String {
    BASE64.encode(Sha256::digest(bytes))
}

async fn upload_url(api: &TestApi, caller: &str, id: &str, body: Option<Value>) -> Answer {
    api.call(
        "POST",
        &format!("/files/{id}/upload-url"),
        Some(caller),
        body,
    )
    .await
}

#[tokio::test]
async fn an_expired_upload_url_is_signed_anew_and_the_fresh_one_stores_the_bytes() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let body = b"signed again".to_vec();
    let answer = api
        .call(
            "POST",
            "/uploads",
            Some("alice"),
            Some(
                json!({"filename": "a.txt", "contentType": "text/plain", "size": body.len(),
                        "sha256": sha256_b64(&body), "expiresIn": 1}),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let reservation = answer.body;
    let id = file_id(&reservation);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let refused = upload(&reservation, &body).await;
    assert_eq!(refused.status(), 403, "the first URL has expired");

    let fresh = upload_url(&api, "alice", &id, Some(json!({"expiresIn": 120}))).await;
    assert_eq!(fresh.status, StatusCode::OK, "{fresh:?}");
    let upload_view = &fresh.body["upload"];
    assert_eq!(upload_view["method"], "PUT");
    assert_eq!(
        upload_view["headers"], reservation["upload"]["headers"],
        "the same headers as the reservation's: type, size, SHA-256, If-None-Match"
    );
    assert_eq!(
        upload_view["headers"]["x-amz-checksum-sha256"],
        sha256_b64(&body)
    );
    assert_ne!(upload_view["url"], reservation["upload"]["url"]);
    let expires_at = time::OffsetDateTime::parse(
        upload_view["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires_at - time::OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::seconds(120) && left > time::Duration::seconds(100),
        "{left}"
    );
    assert_eq!(
        fresh.body.as_object().unwrap().len(),
        1,
        "only `upload`: {fresh:?}"
    );

    // Other bytes of the same length: the fresh URL signs the reservation's SHA-256 too.
    let other = b"signed again".map(|b| b ^ 1);
    let answer = json!({ "upload": upload_view });
    assert_ne!(upload_with(&answer, &other, &[]).await.status(), 200);
    assert_eq!(upload(&answer, &body).await.status(), 200);
    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.status, StatusCode::OK, "{complete:?}");
    assert_eq!(complete.body["file"]["status"], "available");
    // No body at all is the default lifetime, and the file is no longer pending.
    let done = upload_url(&api, "alice", &id, None).await;
    assert_eq!(
        (done.status, done.error_code()),
        (StatusCode::CONFLICT, "not_pending"),
        "{done:?}"
    );
}

#[tokio::test]
async fn only_the_owner_gets_one_and_someone_elses_file_is_not_found() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    let id = file_id(&reservation);
    let missing = "00000000-0000-4000-8000-000000000000";
    for (caller, id) in [
        ("bob", id.as_str()),
        ("alice", missing),
        ("alice", "not-an-id"),
    ] {
        let answer = upload_url(&api, caller, id, Some(json!({}))).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{caller} {id}: {answer:?}"
        );
    }
    let anonymous = api
        .call("POST", &format!("/files/{id}/upload-url"), None, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{anonymous:?}");
    // Alice's own, with no body: a URL of the default lifetime that stores the bytes.
    let fresh = upload_url(&api, "alice", &id, None).await;
    assert_eq!(fresh.status, StatusCode::OK, "{fresh:?}");
    assert_eq!(upload(&fresh.body, b"abc").await.status(), 200);
    assert_eq!(api.complete("alice", &id).await.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_bodies_are_a_documented_400() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = file_id(&api.reserve("alice", "a.txt", "text/plain", b"abc").await);
    for body in [
        json!({"expiresIn": 0}),
        json!({"expiresIn": 100_000}),
        json!({"expiresIn": "60"}),
        json!({"expiresIN": 60}),
        json!(42),
    ] {
        let answer = upload_url(&api, "alice", &id, Some(body.clone())).await;
        assert_eq!(
            (answer.status, answer.error_code()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}: {answer:?}"
        );
    }
}

#[tokio::test]
async fn a_multipart_reservation_and_a_confirmed_file_get_no_put_url() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let answer = api
        .call(
            "POST",
            "/uploads",
            Some("alice"),
            Some(
                json!({"filename": "big.txt", "contentType": "text/plain", "size": 3,
                        "multipart": true}),
            ),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert_eq!(answer.body["upload"]["method"], "MULTIPART");
    let multipart = file_id(&answer.body);
    let refused = upload_url(&api, "alice", &multipart, None).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (StatusCode::CONFLICT, "not_single_put"),
        "{refused:?}"
    );
    assert!(refused.body["upload"].is_null());

    let confirmed = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;
    let refused = upload_url(&api, "alice", &confirmed, None).await;
    assert_eq!(
        (refused.status, refused.error_code()),
        (StatusCode::CONFLICT, "not_pending"),
        "{refused:?}"
    );
}
