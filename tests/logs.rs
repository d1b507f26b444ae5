//! The audit log records every URL issued, and never a URL, a signature, a credential or a token,
//! even with every log level turned on. The requests carry what could leak (a bearer token in
//! `Authorization`, URLs signed with temporary credentials and their session token), so that a
//! leak would show; each is handed over as the runtime hands it, with an invocation context.

use presign_gate_test_support as support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::Credentials;
use lambda_http::http::StatusCode;
use presign_gate::bucket::S3Bucket;
use presign_gate::domain::{ExpiryPolicy, UploadPolicy};
use presign_gate::http::Api;
use presign_gate::service::FileService;
use presign_gate::store::DynamoDbOwnershipStore;
use presign_gate::{aws, telemetry};
use serde_json::{Value, json};
use support::*;

/// A bearer token shaped like a JWT, as API Gateway leaves it on the event after its authorizer
/// verified it.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWxvZ3MtOWIyYw";
/// Lambda's credentials are temporary: a session token comes with them and into every URL.
const SESSION_TOKEN: &str = "session-token-of-the-api-role-9b2c";
/// The request id the runtime hands over with each invocation.
const REQUEST_ID: &str = "test-invocation";

/// `method path` from `caller` with `Authorization: Bearer TOKEN`, within a live invocation.
async fn send<S, B>(
    api: &TestApi<S, B>,
    method: &str,
    path: &str,
    caller: &str,
    body: Option<Value>,
) -> Answer
where
    S: presign_gate::store::OwnershipStore
        + presign_gate::store::GrantStore
        + presign_gate::store::LinkStore,
    B: presign_gate::bucket::UrlSigner + presign_gate::bucket::ObjectStorage,
{
    let mut event = HttpApiEvent::new(method, path)
        .caller(caller)
        .header("authorization", &format!("Bearer {TOKEN}"));
    if let Some(body) = body {
        event = event.json_body(&body);
    }
    api.send_event_within(&event.to_json(), Duration::from_secs(60))
        .await
}

/// The handler over the stand-ins as Lambda runs it: S3 URLs signed with temporary credentials
/// (access key, secret and session token); `table` names the DynamoDB table.
async fn api_with_session_credentials(standins: &StandIns, table: &str) -> TestApi {
    let (access_key, secret_key) = Role::Api.key_pair();
    let sdk = aws::config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            Some(SESSION_TOKEN.to_owned()),
            None,
            "session",
        ))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .endpoint_url(&standins.s3_endpoint)
            .force_path_style(true)
            .build(),
    );
    TestApi(Api::new(
        FileService::new(
            DynamoDbOwnershipStore::new(standins.dynamodb_client(), table),
            S3Bucket::new(s3, BUCKET),
            UploadPolicy::new(["text/plain"], 1024).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        ),
        None,
    ))
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_hold_an_audit_trail_and_no_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing::subscriber::set_global_default(telemetry::subscriber(
        move || writer.clone(),
        Some("trace"),
    ))
    .expect("the only subscriber of this test binary");

    let standins = StandIns::start().await;
    let api = standins.api();
    let with_session = api_with_session_credentials(&standins, TABLE).await;
    let mut issued = Vec::new();
    let upload_body = json!({ "filename": "a.txt", "contentType": "text/plain", "size": 3 });
    let reservation = send(&api, "POST", "/uploads", "alice", Some(upload_body)).await;
    assert_eq!(reservation.status, StatusCode::CREATED, "{reservation:?}");
    let reservation = reservation.body;
    issued.push(reservation["upload"]["url"].as_str().unwrap().to_owned());
    assert_eq!(upload(&reservation, b"abc").await.status(), 200);
    let id = file_id(&reservation);
    let complete = send(
        &api,
        "POST",
        &format!("/files/{id}/complete"),
        "alice",
        None,
    )
    .await;
    assert_eq!(complete.status, StatusCode::OK);
    let download_path = format!("/files/{id}/download-url");
    let download = send(&with_session, "GET", &download_path, "alice", None).await;
    assert_eq!(download.status, StatusCode::OK, "{download:?}");
    let url = download.body["url"].as_str().unwrap().to_owned();
    assert!(
        url.contains(SESSION_TOKEN),
        "the URL carries the session token: {url}"
    );
    issued.push(url);
    let refused = send(&api, "GET", &download_path, "bob", None).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    // A share link: made, redeemed by someone with no identity, then with a wrong secret.
    let link = send(&api, "POST", &format!("/files/{id}/links"), "alice", None).await;
    assert_eq!(link.status, StatusCode::CREATED, "{link:?}");
    let link_url = link.body["link"]["url"].as_str().unwrap().to_owned();
    let link_id = link.body["link"]["id"].as_str().unwrap().to_owned();
    let (link_path, secret) = link_url
        .strip_prefix("https://api.example.com")
        .and_then(|path| path.split_once("?secret="))
        .unwrap();
    let redeem =
        |query: String| HttpApiEvent::new("GET", &format!("{link_path}?secret={query}")).to_json();
    let redeemed = api
        .send_event_within(&redeem(secret.to_owned()), Duration::from_secs(60))
        .await;
    assert_eq!(redeemed.status, StatusCode::FOUND, "{redeemed:?}");
    issued.push(redeemed.headers["location"].to_str().unwrap().to_owned());
    let wrong = api
        .send_event_within(&redeem("B".repeat(43)), Duration::from_secs(60))
        .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);
    // A configuration fault: the table does not exist. 500, and its log line says why.
    let misconfigured = api_with_session_credentials(&standins, "no-such-table").await;
    let failed = send(&misconfigured, "GET", &download_path, "alice", None).await;
    assert_eq!(
        failed.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{failed:?}"
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let mut forbidden: Vec<String> = [
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "x-amz-security-token",
        "Authorization",
        "authorization",
        "Bearer",
        "AWS4-HMAC-SHA256",
        TOKEN,
        SESSION_TOKEN,
    ]
    .map(str::to_owned)
    .to_vec();
    let (access_key, secret_key) = Role::Api.key_pair();
    forbidden.extend([access_key, secret_key]);
    forbidden.extend(TOKEN.split('.').map(str::to_owned));
    for url in &issued {
        forbidden.push(url.clone());
        forbidden.push(url.split_once('?').unwrap().1.to_owned());
    }
    let secret = presign_gate::domain::LinkSecret::parse(secret).unwrap();
    forbidden.extend([link_url.clone(), secret.expose().to_owned(), secret.hash()]);
    for needle in &forbidden {
        assert!(
            !logs.contains(needle.as_str()),
            "the logs contain {needle:?}"
        );
    }

    // Every line is JSON; the URLs issued and refused are each on record with who, what and
    // which invocation.
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let audit = |message: &str, action: &str, caller: &str| {
        lines.iter().any(|line| {
            line["fields"]["message"] == json!(message)
                && line["span"]["request_id"] == json!(REQUEST_ID)
                && line["span"]["action"] == json!(action)
                && line["span"]["caller"] == json!(caller)
                && line["span"]["file_id"] == json!(id)
        })
    };
    assert!(
        audit("upload URL issued", "create_upload", "alice"),
        "{logs}"
    );
    assert!(
        audit("download URL issued", "presign_download", "alice"),
        "{logs}"
    );
    assert!(
        audit("request refused", "presign_download", "bob"),
        "{logs}"
    );
    // A redemption has no caller: its line names the link, and the file and owner it led to.
    let redemption = |message: &str, file: Option<&str>| {
        lines.iter().any(|line| {
            line["fields"]["message"] == json!(message)
                && line["span"]["action"] == json!("redeem_link")
                && line["span"]["link_id"] == json!(link_id)
                && line["span"].get("caller").is_none()
                && line["span"].get("file_id").and_then(Value::as_str) == file
        })
    };
    assert!(redemption("share link redeemed", Some(&id)), "{logs}");
    assert!(redemption("request refused", None), "{logs}");

    // The 500: status, code and the backend's cause, at ERROR, in the request's span.
    let failures: Vec<&Value> = lines
        .iter()
        .filter(|line| line["fields"]["message"] == json!("request failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{logs}");
    let failure = failures[0];
    assert_eq!(failure["level"], json!("ERROR"), "{failure}");
    assert_eq!(failure["fields"]["status"], json!(500), "{failure}");
    assert_eq!(failure["fields"]["code"], json!("internal"), "{failure}");
    let cause = failure["fields"]["cause"].as_str().unwrap_or("");
    assert!(!cause.is_empty(), "the cause is named: {failure}");
    for (field, value) in [
        ("request_id", REQUEST_ID),
        ("action", "presign_download"),
        ("caller", "alice"),
    ] {
        assert_eq!(failure["span"][field], json!(value), "{failure}");
    }
    assert_eq!(failure["span"]["file_id"], json!(id), "{failure}");
}
