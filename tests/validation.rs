//! Requests the handler refuses on their own, before any backend could matter: each gets its
//! documented status and code. The handler runs over the in-memory fakes, so these need no
//! stand-ins; what needs real SigV4 or DynamoDB semantics is in `api.rs`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use presign_gate::domain::{ExpiryPolicy, FileId, FileStatus, UploadPolicy};
use presign_gate::http::{Api, MAX_BODY_BYTES};
use presign_gate::service::FileService;
use presign_gate_test_support::fakes::{FakeBucket, FakeStore, seed};
use presign_gate_test_support::{Answer, TestApi, http_api_event, rest_api_get};
use serde_json::{Value, json};

/// An available text file of alice's (with hex letters, so its uppercase spelling differs).
const ALICE_FILE: &str = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";

/// The handler with the stand-in tests' policies, over fakes holding `ALICE_FILE`.
fn api_over_fakes() -> TestApi<FakeStore, FakeBucket> {
    let store = FakeStore::default();
    let bucket = FakeBucket::default();
    let id = FileId::parse(ALICE_FILE).unwrap();
    seed(
        &store,
        &bucket,
        "alice",
        id,
        "text/plain",
        FileStatus::Available,
    );
    let files = FileService::new(
        store,
        bucket,
        UploadPolicy::new(["image/png", "text/plain", "application/pdf"], 1024 * 1024).unwrap(),
        ExpiryPolicy::new(300, 900).unwrap(),
    );
    TestApi(Api::new(files, None))
}

#[tokio::test]
async fn every_bad_request_gets_its_documented_code() {
    let api = api_over_fakes();
    let id = ALICE_FILE;
    let upload_body = |patch: Value| {
        let mut body = json!({"filename": "a.txt", "contentType": "text/plain", "size": 3});
        for (key, value) in patch.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "missing filename",
            upload_body(json!({"filename": null})),
            400,
            "invalid_request",
        ),
        (
            "missing size",
            upload_body(json!({"size": null})),
            400,
            "invalid_request",
        ),
        (
            "size as text",
            upload_body(json!({"size": "3"})),
            400,
            "invalid_request",
        ),
        (
            "fractional size",
            upload_body(json!({"size": 1.5})),
            400,
            "invalid_request",
        ),
        (
            "negative size",
            upload_body(json!({"size": -1})),
            400,
            "invalid_request",
        ),
        (
            "zero size",
            upload_body(json!({"size": 0})),
            400,
            "invalid_request",
        ),
        (
            "empty filename",
            upload_body(json!({"filename": ""})),
            400,
            "invalid_request",
        ),
        (
            "long filename",
            upload_body(json!({"filename": "a".repeat(256)})),
            400,
            "invalid_request",
        ),
        (
            "control character",
            upload_body(json!({"filename": "a\u{7}.txt"})),
            400,
            "invalid_request",
        ),
        (
            "bad base64",
            upload_body(json!({"sha256": "***"})),
            400,
            "invalid_request",
        ),
        (
            "short digest",
            upload_body(json!({"sha256": BASE64.encode([0u8; 16])})),
            400,
            "invalid_request",
        ),
        (
            "zero expiry",
            upload_body(json!({"expiresIn": 0})),
            400,
            "invalid_request",
        ),
        (
            "long expiry",
            upload_body(json!({"expiresIn": 901})),
            400,
            "invalid_request",
        ),
        (
            "fractional expiry",
            upload_body(json!({"expiresIn": 1.5})),
            400,
            "invalid_request",
        ),
        (
            "type not allowed",
            upload_body(json!({"contentType": "text/html"})),
            400,
            "content_type_not_allowed",
        ),
        (
            "not a type",
            upload_body(json!({"contentType": "html"})),
            400,
            "invalid_request",
        ),
        (
            "too large",
            upload_body(json!({"size": 1024 * 1024 + 1})),
            413,
            "too_large",
        ),
        ("not an object", json!(["a.txt"]), 400, "invalid_request"),
    ];
    for (what, body, status, code) in cases {
        let answer = api
            .call("POST", "/uploads", Some("alice"), Some(body))
            .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (status, code),
            "{what}: {answer:?}"
        );
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }

    let raw = |body: &str| http_api_event("POST", "/uploads", Some("alice"), Some(body.to_owned()));
    let malformed = api.send_event(&raw("{\"filename\": ")).await;
    assert_eq!(
        (malformed.status.as_u16(), malformed.error_code()),
        (400, "invalid_request")
    );
    let empty = api
        .send_event(&http_api_event("POST", "/uploads", Some("alice"), None))
        .await;
    assert_eq!(
        (empty.status.as_u16(), empty.error_code()),
        (400, "invalid_request")
    );
    let huge = api
        .send_event(&raw(&format!(
            "{{\"filename\": \"{}\"}}",
            "a".repeat(20_000)
        )))
        .await;
    assert_eq!(
        (huge.status.as_u16(), huge.error_code()),
        (413, "too_large")
    );
    // The limit itself is allowed: valid JSON padded with whitespace to exactly 16 KiB.
    let upload = r#"{"filename": "a.txt", "contentType": "text/plain", "size": 3}"#;
    let at_limit = format!("{upload}{}", " ".repeat(MAX_BODY_BYTES - upload.len()));
    let answer = api.send_event(&raw(&at_limit)).await;
    assert_eq!(answer.status.as_u16(), 201, "{answer:?}");
    let answer = api.send_event(&raw(&format!("{at_limit} "))).await;
    assert_eq!(answer.error_code(), "too_large", "{answer:?}");

    let queries: Vec<(&str, u16, &str)> = vec![
        ("?expiresIn=0", 400, "invalid_request"),
        ("?expiresIn=901", 400, "invalid_request"),
        ("?expiresIn=abc", 400, "invalid_request"),
        ("?expiresIn=1.5", 400, "invalid_request"),
        ("?expiresIn=99999999999999999999999", 400, "invalid_request"),
        ("?expiresIn=10&expiresIn=20", 400, "invalid_request"),
        ("?disposition=evil", 400, "invalid_request"),
        ("?expiresIn=900&disposition=inline", 200, ""),
    ];
    for (query, status, code) in queries {
        let answer = api.download_url("alice", id, query).await;
        let got = (
            answer.status.as_u16(),
            if status == 200 {
                ""
            } else {
                answer.error_code()
            },
        );
        assert_eq!(got, (status, code), "{query}: {answer:?}");
    }

    let malformed_ids = [
        "not-a-uuid",
        "%2e%2e",
        &id.to_uppercase(),
        &format!("{id}%00"),
    ];
    for bad in malformed_ids {
        let answer = api.download_url("alice", bad, "").await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (404, "not_found"),
            "{bad}"
        );
    }
    let unknown = api.call("GET", "/nothing/here", Some("alice"), None).await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.error_code()),
        (404, "not_found")
    );
    let wrong_method = api.call("DELETE", "/uploads", Some("alice"), None).await;
    assert_eq!(
        (wrong_method.status.as_u16(), wrong_method.error_code()),
        (405, "method_not_allowed")
    );
    assert_eq!(wrong_method.headers["allow"], "POST");

    let anonymous = download_url_anonymous(&api, id).await;
    assert_eq!(
        (anonymous.status.as_u16(), anonymous.error_code()),
        (401, "unauthenticated")
    );
    let empty_sub = api
        .call("GET", &format!("/files/{id}"), Some(""), None)
        .await;
    assert_eq!(empty_sub.error_code(), "unauthenticated");
}

async fn download_url_anonymous(api: &TestApi<FakeStore, FakeBucket>, id: &str) -> Answer {
    api.call("GET", &format!("/files/{id}/download-url"), None, None)
        .await
}

/// A REST API (payload 1.0) never puts the stage in `path` (API Gateway Developer Guide, "Input
/// format of a Lambda function for proxy integration"): the handler routes `path` as it is, so a
/// first segment that spells the stage's name is not taken for the stage.
#[tokio::test]
async fn a_rest_api_path_is_routed_as_it_is() {
    let api = api_over_fakes();
    let rest = |path: &str| rest_api_get("/{proxy+}", path, "alice");
    let file = api.send_event(&rest(&format!("/files/{ALICE_FILE}"))).await;
    assert_eq!(file.status.as_u16(), 200, "{file:?}");
    assert_eq!(file.body["file"]["id"], ALICE_FILE, "{file:?}");
    let staged = api
        .send_event(&rest(&format!("/prod/files/{ALICE_FILE}")))
        .await;
    assert_eq!(
        (staged.status.as_u16(), staged.error_code()),
        (404, "not_found"),
        "{staged:?}"
    );
}

/// An HTTP API on a named stage puts the stage in `rawPath` (API Gateway Developer Guide, "Working
/// with stages for HTTP APIs"); on the `$default` stage it does not, and a path that merely starts
/// with `$default` stays as it is.
#[tokio::test]
async fn an_http_api_stage_is_taken_off_the_path() {
    let api = api_over_fakes();
    let on_stage = |stage: &str, path: &str| {
        let mut event = http_api_event("GET", path, Some("alice"), None);
        event["requestContext"]["stage"] = json!(stage);
        event
    };
    let file = format!("/files/{ALICE_FILE}");
    for (stage, path, status) in [
        ("prod", format!("/prod{file}"), 200),
        ("prod", file.clone(), 200),
        ("$default", file.clone(), 200),
        ("$default", format!("/$default{file}"), 404),
    ] {
        let answer = api.send_event(&on_stage(stage, &path)).await;
        assert_eq!(answer.status.as_u16(), status, "{stage} {path}: {answer:?}");
    }
}
