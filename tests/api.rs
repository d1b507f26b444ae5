//! The API end to end: the real handler against s3s-fs and moto, and the presigned URLs fetched
//! with plain HTTP, so that every promise is checked by a server that verifies SigV4 like S3.

use presign_gate_test_support as support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use support::*;

fn sha256_b64(bytes: &[u8]) -> String {
    BASE64.encode(Sha256::digest(bytes))
}

fn url_of(answer: &Answer) -> String {
    answer.body["url"].as_str().expect("a url").to_owned()
}

/// One query parameter of a URL, percent-decoded.
fn query_param(url: &str, name: &str) -> String {
    let query = url.split_once('?').expect("query").1;
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} not in {url}"));
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

async fn get(url: &str) -> reqwest::Response {
    http_client()
        .get(url)
        .send()
        .await
        .expect("GET reaches the S3 stand-in")
}

#[tokio::test]
async fn upload_then_download_returns_the_same_bytes() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let body = b"the quick brown fox".to_vec();
    let answer = api
        .call(
            "POST",
            "/uploads",
            Some("alice"),
            Some(json!({"filename": "fox.txt", "contentType": "text/plain", "size": body.len(), "sha256": sha256_b64(&body)})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let reservation = answer.body;
    assert_eq!(reservation["file"]["status"], "pending");
    assert_eq!(reservation["upload"]["method"], "PUT");
    assert_eq!(
        reservation["upload"]["headers"],
        json!({
            "cache-control": "private, no-store",
            "content-type": "text/plain",
            "content-length": body.len().to_string(),
            "if-none-match": "*",
            "x-amz-checksum-sha256": sha256_b64(&body),
        })
    );
    let key = format!("/{BUCKET}/users/alice/{}", file_id(&reservation));
    assert!(
        reservation["upload"]["url"]
            .as_str()
            .unwrap()
            .contains(&key)
    );

    assert_eq!(upload(&reservation, &body).await.status(), 200);
    let id = file_id(&reservation);
    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.status, StatusCode::OK, "{complete:?}");
    assert_eq!(complete.body["file"]["status"], "available");
    assert_eq!(complete.body["file"]["size"], body.len());

    let answer = api.download_url("alice", &id, "").await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["method"], "GET");
    let response = get(&url_of(&answer)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), body.as_slice());
}

#[tokio::test]
async fn expires_at_is_the_true_end_of_validity() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;
    let answer = api.download_url("alice", &id, "?expiresIn=42").await;
    let url = url_of(&answer);
    let signed_at = time::PrimitiveDateTime::parse(
        &query_param(&url, "X-Amz-Date"),
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .unwrap()
    .assume_utc();
    assert_eq!(query_param(&url, "X-Amz-Expires"), "42");
    let expires_at = time::OffsetDateTime::parse(
        answer.body["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires_at - signed_at, time::Duration::seconds(42));
}

#[tokio::test]
async fn another_user_cannot_tell_a_foreign_file_from_a_missing_one() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "secret.txt", "text/plain", b"alice's")
        .await;
    let missing = "00000000-0000-4000-8000-000000000000";
    for path in [
        "/files/{id}/download-url",
        "/files/{id}",
        "/files/{id}/complete",
    ] {
        let method = if path.ends_with("complete") {
            "POST"
        } else {
            "GET"
        };
        let foreign = api
            .call(method, &path.replace("{id}", &id), Some("bob"), None)
            .await;
        let absent = api
            .call(method, &path.replace("{id}", missing), Some("bob"), None)
            .await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{path}: {foreign:?}");
        assert_eq!(foreign.body, absent.body, "{path}");
        assert_eq!(foreign.error_code(), "not_found");
    }
    // And the owner still can.
    assert_eq!(
        api.download_url("alice", &id, "").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn tampered_download_urls_are_refused_by_s3() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "a.txt", "text/plain", b"alice's bytes")
        .await;
    let other = api
        .stored_file("bob", "b.txt", "text/plain", b"bob's bytes!!")
        .await;
    let url = url_of(&api.download_url("alice", &id, "").await);
    assert_eq!(get(&url).await.status(), 200);

    let signature = query_param(&url, "X-Amz-Signature");
    let mut flipped = signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let tampered = url.replace(&signature, std::str::from_utf8(&flipped).unwrap());
    assert_eq!(get(&tampered).await.status(), 403, "tampered signature");

    let moved = url.replace(&format!("users/alice/{id}"), &format!("users/bob/{other}"));
    assert_ne!(moved, url);
    assert_eq!(get(&moved).await.status(), 403, "URL moved to another key");

    let inline = url.replace(
        "response-content-disposition=attachment",
        "response-content-disposition=inline",
    );
    assert_ne!(inline, url);
    assert_eq!(get(&inline).await.status(), 403, "disposition changed");

    // s3s-fs ignores response-* overrides (S3 applies them), so what shows that the caching the
    // URL asks for holds is that changing it breaks the signature.
    let cached = url.replace(
        "response-cache-control=private%2C%20no-store",
        "response-cache-control=public%2C%20max-age%3D31536000",
    );
    assert_ne!(cached, url);
    assert_eq!(get(&cached).await.status(), 403, "caching changed");
}

/// A URL works until its `expiresAt` and S3 refuses it after, for that reason: `AccessDenied`
/// with "Request has expired" (S3 API Reference, "Error responses"), not any 403.
#[tokio::test]
async fn expired_urls_are_refused_by_s3() {
    const LIFETIME: u64 = 4;
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "a.txt", "text/plain", b"soon gone")
        .await;
    let download = api
        .download_url("alice", &id, &format!("?expiresIn={LIFETIME}"))
        .await;
    let url = url_of(&download);
    let short_upload = || {
        api.call(
            "POST",
            "/uploads",
            Some("alice"),
            Some(json!({"filename": "b.txt", "contentType": "text/plain", "size": 3, "expiresIn": LIFETIME})),
        )
    };
    let (used_in_time, left_to_expire) = (short_upload().await.body, short_upload().await.body);
    let expires_at = [
        &download.body,
        &used_in_time["upload"],
        &left_to_expire["upload"],
    ]
    .iter()
    .map(|answer| {
        time::OffsetDateTime::parse(
            answer["expiresAt"].as_str().expect("expiresAt"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    })
    .max()
    .unwrap();

    // Before expiry, both kinds work.
    let fetched = get(&url).await;
    assert_eq!(
        fetched.status(),
        200,
        "the download URL works before it expires"
    );
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), b"soon gone");
    assert_eq!(
        upload(&used_in_time, b"abc").await.status(),
        200,
        "an upload URL works before it expires"
    );

    let wait = expires_at - time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    tokio::time::sleep(wait.try_into().unwrap_or_default()).await;
    assert_expired("download URL", get(&url).await).await;
    assert_expired("upload URL", upload(&left_to_expire, b"abc").await).await;
}

/// S3's answer to a URL past its expiry: 403 `AccessDenied`, "Request has expired".
async fn assert_expired(what: &str, refused: reqwest::Response) {
    let status = refused.status();
    let body = refused.text().await.unwrap();
    assert_eq!(status, 403, "{what}: {body}");
    assert!(
        body.contains("<Code>AccessDenied</Code>") && body.contains("expired"),
        "{what}: refused for another reason than its expiry: {body}"
    );
}

#[tokio::test]
async fn uploads_must_send_exactly_the_signed_headers() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let body = b"0123456789";
    let reservation = api.reserve("alice", "a.txt", "text/plain", body).await;
    let url = reservation["upload"]["url"].as_str().unwrap();
    let put = |content_type: &'static str, cache_control: &'static str, bytes: Vec<u8>| async move {
        http_client()
            .put(url)
            .header("content-type", content_type)
            .header("cache-control", cache_control)
            .header("if-none-match", "*")
            .body(bytes)
            .send()
            .await
            .unwrap()
            .status()
    };
    let signed = "private, no-store";
    assert_eq!(
        put("image/png", signed, body.to_vec()).await,
        403,
        "wrong Content-Type"
    );
    assert_eq!(
        put("text/plain", signed, b"0123456789+".to_vec()).await,
        403,
        "longer body"
    );
    assert_eq!(
        put("text/plain", signed, b"012345678".to_vec()).await,
        403,
        "shorter body"
    );
    // What Chromium puts on any PUT with If-None-Match when the page sets none: signing the
    // header keeps it off the object, where the confirmation would refuse it.
    assert_eq!(
        put("text/plain", "max-age=0", body.to_vec()).await,
        403,
        "the browser's own Cache-Control"
    );
    let without_condition = http_client()
        .put(url)
        .header("content-type", "text/plain")
        .header("cache-control", signed)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(without_condition.status(), 403, "If-None-Match left out");
    let id = file_id(&reservation);
    let complete = api.complete("alice", &id).await;
    assert_eq!(
        complete.error_code(),
        "upload_missing",
        "nothing was stored: {complete:?}"
    );
    assert_eq!(
        put("text/plain", signed, body.to_vec()).await,
        200,
        "exactly the signed headers"
    );
    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.status, StatusCode::OK, "{complete:?}");
}

#[tokio::test]
async fn a_same_length_body_with_another_checksum_is_refused() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let declared = b"expected body";
    let reservation = api
        .call(
            "POST",
            "/uploads",
            Some("alice"),
            Some(json!({"filename": "a.txt", "contentType": "text/plain", "size": declared.len(), "sha256": sha256_b64(declared)})),
        )
        .await
        .body;
    let forged = b"EXPECTED BODY";
    assert_eq!(forged.len(), declared.len());
    let response = upload(&reservation, forged).await;
    assert_eq!(response.status(), 400, "S3 answers BadDigest");
    // S3 stores nothing on BadDigest. s3s-fs 0.14.1 leaves the bytes behind without their
    // attributes, which the confirmation then rejects and deletes: either way the forged bytes
    // never become a downloadable file.
    let id = file_id(&reservation);
    let complete = api.complete("alice", &id).await;
    assert!(
        ["upload_missing", "upload_rejected"].contains(&complete.error_code()),
        "{complete:?}"
    );
    assert_eq!(
        api.download_url("alice", &id, "").await.error_code(),
        "not_ready"
    );
}

#[tokio::test]
async fn an_upload_url_cannot_overwrite() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"first").await;
    assert_eq!(upload(&reservation, b"first").await.status(), 200);
    assert_eq!(upload(&reservation, b"again").await.status(), 412);
    let id = file_id(&reservation);
    api.complete("alice", &id).await;
    let url = url_of(&api.download_url("alice", &id, "").await);
    assert_eq!(get(&url).await.bytes().await.unwrap().as_ref(), b"first");
}

#[tokio::test]
async fn non_ascii_filenames_get_an_rfc5987_disposition() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "résumé 2026.txt", "text/plain", b"cv")
        .await;
    let url = url_of(&api.download_url("alice", &id, "").await);
    assert_eq!(
        query_param(&url, "response-content-disposition"),
        "attachment; filename=\"r_sum_ 2026.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%202026.txt"
    );
    assert_eq!(query_param(&url, "response-content-type"), "text/plain");
    // A private file: no shared cache may keep it, whatever Cache-Control the object carries.
    assert_eq!(
        query_param(&url, "response-cache-control"),
        "private, no-store"
    );
    assert_eq!(
        get(&url).await.status(),
        200,
        "the disposition is part of the signature"
    );

    let inline = url_of(&api.download_url("alice", &id, "?disposition=inline").await);
    assert!(query_param(&inline, "response-content-disposition").starts_with("inline; "));
}

#[tokio::test]
async fn a_record_becomes_downloadable_only_once_confirmed() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    let id = file_id(&reservation);
    let early = api.download_url("alice", &id, "").await;
    assert_eq!(
        (early.status, early.error_code()),
        (StatusCode::CONFLICT, "not_ready")
    );
    assert!(early.body.get("url").is_none());
    let missing = api.complete("alice", &id).await;
    assert_eq!(
        (missing.status, missing.error_code()),
        (StatusCode::CONFLICT, "upload_missing")
    );

    upload(&reservation, b"abc").await;
    let first = api.complete("alice", &id).await;
    let again = api.complete("alice", &id).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, again.body, "complete is idempotent");
    let file = api
        .call("GET", &format!("/files/{id}"), Some("alice"), None)
        .await;
    assert_eq!(file.body, first.body);
}

#[tokio::test]
async fn an_object_that_does_not_match_its_reservation_is_rejected_and_deleted() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    let id = file_id(&reservation);
    let key = format!("users/alice/{id}");
    // Something other than the URL wrote the key: the function's own credentials, say.
    let s3 = standins.s3_client();
    s3.put_object()
        .if_none_match("*") // the bucket policy refuses any write under users/ without it
        .bucket(BUCKET)
        .key(&key)
        .content_type("text/plain")
        .body(b"abcdef".to_vec().into())
        .send()
        .await
        .unwrap();
    let complete = api.complete("alice", &id).await;
    assert_eq!(
        (complete.status, complete.error_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "upload_rejected")
    );
    assert!(
        s3.head_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .is_err(),
        "object deleted"
    );
    let file = api
        .call("GET", &format!("/files/{id}"), Some("alice"), None)
        .await;
    assert_eq!(file.body["file"]["status"], "rejected");
    let download = api.download_url("alice", &id, "").await;
    assert_eq!(download.error_code(), "not_ready");
}

#[tokio::test]
async fn identity_comes_only_from_the_authorizer() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;
    let path = format!("/files/{id}/download-url");

    // A dev header is meaningless unless DEV_USER_HEADER configured it.
    let mut event = http_api_event("GET", &path, None, None);
    event["headers"]["x-dev-user"] = json!("alice");
    assert_eq!(api.send_event(&event).await.error_code(), "unauthenticated");

    // A REST API (payload 1.0) with a Cognito authorizer.
    let rest = rest_api_get("/files/{id}/download-url", &path, "alice");
    let answer = api.send_event(&rest).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let mut as_bob = rest.clone();
    as_bob["requestContext"]["authorizer"]["claims"]["sub"] = json!("bob");
    assert_eq!(api.send_event(&as_bob).await.error_code(), "not_found");

    // An HTTP API on a named stage puts the stage in rawPath.
    let mut staged = http_api_event("GET", &format!("/prod{path}"), Some("alice"), None);
    staged["requestContext"]["stage"] = json!("prod");
    assert_eq!(api.send_event(&staged).await.status, StatusCode::OK);
}

#[tokio::test]
async fn backend_failures_fail_closed_with_the_right_status() {
    let mut standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;

    // A table that does not exist is a configuration fault: 500, and no internals in the body.
    let misconfigured = TestApi(presign_gate::http::Api::new(
        presign_gate::service::FileService::new(
            presign_gate::store::DynamoDbOwnershipStore::new(
                standins.dynamodb_client(),
                "no-such-table",
            ),
            standins.bucket(),
            presign_gate::domain::UploadPolicy::new(["text/plain"], 10).unwrap(),
            presign_gate::domain::ExpiryPolicy::new(300, 900).unwrap(),
        ),
        None,
    ));
    let answer = misconfigured.download_url("alice", &id, "").await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (500, "internal"),
        "{answer:?}"
    );
    let body = answer.body.to_string();
    assert!(
        !body.contains("no-such-table") && !body.contains("ResourceNotFound"),
        "{body}"
    );

    // DynamoDB unreachable: 503 with Retry-After, and never a URL. The bound that makes it come
    // is the clients' configuration (checked on the built clients in `src/aws.rs`); the minute
    // only keeps a hang from holding the run.
    standins.dynamodb.0.kill().unwrap();
    standins.dynamodb.0.wait().unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(60), api.download_url("alice", &id, ""))
        .await
        .expect("a dead backend is reported, not waited on");
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (503, "unavailable"),
        "{answer:?}"
    );
    assert_eq!(answer.headers["retry-after"], "1");
    assert!(answer.body.get("url").is_none());
    let answer = api.reserve_raw("alice").await;
    assert_eq!(answer.error_code(), "unavailable");
    assert!(answer.body.get("upload").is_none());
}

#[tokio::test]
async fn batch_download_urls_answer_each_id_like_the_single_route() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let first = api
        .stored_file("alice", "1.txt", "text/plain", b"one")
        .await;
    let second = api
        .stored_file("alice", "2.txt", "text/plain", b"two")
        .await;
    let pending = file_id(&api.reserve("alice", "3.txt", "text/plain", b"three").await);
    let bobs = api.stored_file("bob", "b.txt", "text/plain", b"bob").await;
    let missing = "00000000-0000-4000-8000-000000000000";
    let ids = json!([first, second, pending, bobs, missing, "not-an-id", first]);
    let answer = api
        .call(
            "POST",
            "/files/download-urls",
            Some("alice"),
            Some(json!({"ids": ids, "expiresIn": 60})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let urls = answer.body["urls"].as_object().unwrap();
    assert_eq!(urls.keys().collect::<Vec<_>>().len(), 2);
    for (id, body) in [(&first, b"one"), (&second, b"two")] {
        let url = urls[id.as_str()]["url"].as_str().unwrap();
        assert_eq!(query_param(url, "X-Amz-Expires"), "60");
        assert_eq!(get(url).await.bytes().await.unwrap().as_ref(), body);
    }
    assert_eq!(
        answer.body["errors"],
        json!({
            pending: {"code": "not_ready", "status": "pending"},
            bobs: {"code": "not_found"},
            missing: {"code": "not_found"},
            "not-an-id": {"code": "not_found"},
        })
    );

    let too_many: Vec<String> = (0..101)
        .map(|n| format!("00000000-0000-4000-8000-{n:012}"))
        .collect();
    for body in [
        json!({"ids": too_many}),
        json!({"ids": []}),
        json!({"ids": "x"}),
        json!({"ids": [first], "disposition": "evil"}),
        json!({"ids": [first], "expiresIn": 0}),
    ] {
        let answer = api
            .call("POST", "/files/download-urls", Some("alice"), Some(body))
            .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (400, "invalid_request"),
            "{answer:?}"
        );
    }
}
