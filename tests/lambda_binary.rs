//! The real `api` binary, run as Lambda runs it: its runtime loop polls a Runtime API on loopback
//! for API Gateway events, with the stand-ins behind it. What it writes to stdout and stderr with
//! `RUST_LOG=trace` holds no token, no claim beyond the audit trail's caller, no URL, signature or
//! credential; and a build without the `dev-identity` feature refuses `DEV_USER_HEADER`.
//!
//! The binary is the one cargo builds for these tests (`CARGO_BIN_EXE_api`: the dev profile under
//! `cargo test`), or the one `API_BINARY` names (`cargo build --release --bin api`, then
//! `API_BINARY=target/release/api cargo test --test lambda_binary`). Both run the same code: the
//! log filter has no `debug_assertions` branch, and no crate in the build sets tracing's
//! `max_level_*` or `release_max_level_*` features, so both compile in every level and filter them
//! at run time.

use presign_gate_test_support as support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use support::function_process::FunctionProcess;
use support::*;

/// A bearer token shaped like a JWT (header, claims, signature), and the claims API Gateway's JWT
/// authorizer passes along once it verified it.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3Qta2V5In0.eyJzdWIiOiJ0b2tlbi1jYXJyaWVyIn0.c2lnbmF0dXJlLW9mLXRoZS1pc3N1ZXItN2QxZjM";
const SUB: &str = "sub-5b0e9c2f-caller";
const EMAIL: &str = "carol.7d1f3@example.test";
const SESSION_TOKEN: &str = "session-token-of-the-role-4c8e2a";

/// The `api` binary as Lambda starts it, with `RUST_LOG=trace` and `settings`.
fn start(settings: &[(&str, &str)]) -> FunctionProcess {
    let binary = std::env::var_os("API_BINARY")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_api")), PathBuf::from);
    let trace = [("RUST_LOG", "trace")];
    FunctionProcess::start(
        Command::new(binary),
        "api",
        trace.iter().chain(settings).copied(),
    )
}

/// The binary as deployed against the stand-ins, a session token in its credentials (`extra`
/// added to its settings).
fn start_on(standins: &StandIns, extra: &[(&str, &str)]) -> FunctionProcess {
    let deployed = standins.deployed_settings(Role::Api);
    let mut settings: Vec<(&str, &str)> = deployed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    settings.push(("AWS_SESSION_TOKEN", SESSION_TOKEN));
    settings.extend_from_slice(extra);
    start(&settings)
}

/// An HTTP API event as API Gateway sends it after its JWT authorizer verified `TOKEN`: the
/// `authorization` header still on it, the token's claims in the request context.
fn authorized(method: &str, path: &str, body: Option<Value>) -> Value {
    let mut event = HttpApiEvent::new(method, path)
        .caller(SUB)
        .header("authorization", &format!("Bearer {TOKEN}"));
    if let Some(body) = body {
        event = event.json_body(&body);
    }
    let mut event = event.to_json();
    let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
    claims["email"] = json!(EMAIL);
    claims["iss"] = json!("https://issuer.example.test/tenant-7d1f3");
    claims["aud"] = json!("presign-gate-7d1f3");
    claims["token_use"] = json!("access");
    event
}

#[tokio::test]
async fn at_trace_the_binary_logs_no_token_claim_url_or_credential() {
    let standins = StandIns::start().await;
    let mut function = start_on(&standins, &[]);
    let mut issued = Vec::new();

    let (status, reservation) = function.request(&authorized(
        "POST",
        "/uploads",
        Some(json!({ "filename": "a.txt", "contentType": "text/plain", "size": 3 })),
    ));
    assert_eq!(status, 201, "{reservation}");
    issued.push(reservation["upload"]["url"].as_str().unwrap().to_owned());
    assert_eq!(upload(&reservation, b"abc").await.status(), 200);
    let id = file_id(&reservation);
    let (status, body) =
        function.request(&authorized("POST", &format!("/files/{id}/complete"), None));
    assert_eq!(status, 200, "{body}");
    let (status, download) = function.request(&authorized(
        "GET",
        &format!("/files/{id}/download-url"),
        None,
    ));
    assert_eq!(status, 200, "{download}");
    issued.push(download["url"].as_str().unwrap().to_owned());
    let (stdout, stderr) = function.stop();

    let mut forbidden: Vec<String> = [
        TOKEN,
        "Bearer",
        "authorization",
        "Authorization",
        EMAIL,
        "issuer.example.test",
        "presign-gate-7d1f3",
        "token_use",
        "http://",
        "https://",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "x-amz-security-token",
        "AWS4-HMAC-SHA256",
        SESSION_TOKEN,
    ]
    .map(str::to_owned)
    .to_vec();
    let (access_key, secret_key) = Role::Api.key_pair();
    forbidden.extend([access_key, secret_key]);
    forbidden.extend(TOKEN.split('.').map(str::to_owned));
    for url in &issued {
        let (address, query) = url.split_once('?').expect("a presigned URL has a query");
        forbidden.extend([url.clone(), address.to_owned(), query.to_owned()]);
        let signature = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("X-Amz-Signature="))
            .expect("signature");
        forbidden.push(signature.to_owned());
    }
    for needle in &forbidden {
        assert!(
            !stdout.contains(needle.as_str()),
            "stdout has {needle:?}:\n{stdout}"
        );
        assert!(
            !stderr.contains(needle.as_str()),
            "stderr has {needle:?}:\n{stderr}"
        );
    }
    // The caller's `sub` is on record as the audit trail's caller, and nowhere else.
    assert!(!stderr.contains(SUB), "{stderr}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    for line in &lines {
        let mut rest = line.clone();
        if rest["span"]["caller"] == json!(SUB) {
            rest["span"]["caller"] = Value::Null;
        }
        assert!(
            !rest.to_string().contains(SUB),
            "sub outside the caller: {line}"
        );
    }

    // The logs are there: trace level reached this crate, and the audit trail names the caller.
    let logged = |level: &str, message: &str| {
        lines.iter().any(|line| {
            line["level"] == json!(level) && line["fields"]["message"] == json!(message)
        })
    };
    assert!(logged("DEBUG", "configuration read"), "{stdout}");
    for (message, action) in [
        ("upload URL issued", "create_upload"),
        ("download URL issued", "presign_download"),
    ] {
        assert!(
            lines
                .iter()
                .any(|line| line["fields"]["message"] == json!(message)
                    && line["span"]["action"] == json!(action)
                    && line["span"]["caller"] == json!(SUB)
                    && line["span"]["file_id"] == json!(id)),
            "no {message:?} for {SUB}:\n{stdout}"
        );
    }
}

/// The guard in front of `lambda_http` (`http::RejectUnparseable`) on the real entry point: an
/// event whose path or query makes no valid URI, or a URI over the 64 KiB `http` accepts, is a
/// 400 `invalid_request` in the payload format it came in, not a failed invocation (which API
/// Gateway would turn into a 500), and the function goes on to the next event.
#[test]
fn the_binary_answers_unparseable_requests_with_400_in_their_payload_format() {
    let mut function = start(&[
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "not-used-no-call-is-made"),
        ("FILES_BUCKET", BUCKET),
        ("FILES_TABLE", TABLE),
    ]);
    let long_query = format!("limit={}", "1".repeat(70 * 1024));
    let rest = |path: &str| rest_api_get("/files/{id}", path, SUB);
    let cases = [
        (
            "HTTP API, invalid query",
            HttpApiEvent::raw("GET", "/files", "limit=\"1 2\"")
                .caller(SUB)
                .to_json(),
            false,
        ),
        (
            "HTTP API, URI over 64 KiB",
            HttpApiEvent::raw("GET", "/files", &long_query)
                .caller(SUB)
                .to_json(),
            false,
        ),
        (
            "REST API, path over 64 KiB",
            rest(&format!("/files/{}", "a".repeat(70 * 1024))),
            true,
        ),
    ];
    for (what, event, rest_payload) in cases {
        let response = function.invoke(&event);
        assert_eq!(response["statusCode"], json!(400), "{what}: {response}");
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{what}: {e}: {response}"));
        assert_eq!(body["error"]["code"], json!("invalid_request"), "{what}");
        // API Gateway merges `headers` and `multiValueHeaders` (API Gateway Developer Guide,
        // "Output format of a Lambda function for proxy integration"); the guard uses `headers`.
        assert_eq!(
            response["headers"]["cache-control"],
            json!("no-store"),
            "{what}: {response}"
        );
        // Payload 2.0 answers carry `cookies`, 1.0 answers do not: each in the format API
        // Gateway expects back.
        assert_eq!(
            response.get("cookies").is_some(),
            !rest_payload,
            "{what}: {response}"
        );
    }
    // Still serving: the next event is answered by the handler (no authorizer: 401).
    let (status, body) = function.request(&HttpApiEvent::new("GET", "/files").to_json());
    assert_eq!(status, 401, "{body}");
    let (stdout, _) = function.stop();
    assert_eq!(
        stdout.matches("request URI refused").count(),
        3,
        "each refusal logged once:\n{stdout}"
    );
}

/// A build without the feature (what `cargo test` builds, like `make build` and `sam build`)
/// refuses to start with `DEV_USER_HEADER` set: one console edit must not let every caller be
/// anyone.
#[cfg(not(feature = "dev-identity"))]
#[test]
fn without_the_dev_identity_the_binary_refuses_dev_user_header() {
    let mut function = start(&[
        ("AWS_REGION", "us-east-1"),
        ("FILES_BUCKET", BUCKET),
        ("FILES_TABLE", TABLE),
        ("DEV_USER_HEADER", "x-dev-user"),
    ]);
    // It must end by itself: a configuration error fails the cold start.
    let status = function.exit_status();
    let asked_for_work = function.asked_for_work();
    let (stdout, stderr) = function.stop();
    assert!(!status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(!asked_for_work, "it took events: {stdout}");
    assert!(
        stdout.contains("DEV_USER_HEADER must not be set")
            && stdout.contains("any caller claim any identity")
            && stdout.contains("`dev-identity`"),
        "{stdout}"
    );
}

/// A local build (`cargo test --features dev-identity`, as `make test` also runs this file) names
/// the caller by the dev header when no authorizer ran.
#[cfg(feature = "dev-identity")]
#[tokio::test]
async fn a_local_build_takes_the_caller_from_the_dev_header() {
    let standins = StandIns::start().await;
    let mut function = start_on(&standins, &[("DEV_USER_HEADER", "x-dev-user")]);
    let body = json!({ "filename": "a.txt", "contentType": "text/plain", "size": 3 });
    let event = HttpApiEvent::new("POST", "/uploads")
        .header("x-dev-user", "dave")
        .json_body(&body)
        .to_json();
    let (status, reservation) = function.request(&event);
    assert_eq!(status, 201, "{reservation}");
    let unnamed = HttpApiEvent::new("POST", "/uploads")
        .json_body(&body)
        .to_json();
    let (status, refused) = function.request(&unnamed);
    assert_eq!(status, 401, "{refused}");
    // An authorizer's caller wins over the header: the request acts for `SUB`, not for dave.
    let both = HttpApiEvent::new("GET", "/files")
        .caller(SUB)
        .header("x-dev-user", "dave")
        .to_json();
    let (status, listed) = function.request(&both);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["files"],
        json!([]),
        "dave's file is not SUB's: {listed}"
    );
    let (stdout, _) = function.stop();
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(
        lines.iter().any(|line| line["level"] == json!("WARN")
            && line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("DEV_USER_HEADER is set"))
            && line["fields"]["header"] == json!("x-dev-user")),
        "the start-up warning: {stdout}"
    );
    assert!(stdout.contains(r#""caller":"dave""#), "{stdout}");
    assert!(
        lines
            .iter()
            .any(|line| line["span"]["action"] == json!("list_files")
                && line["span"]["caller"] == json!(SUB)),
        "{stdout}"
    );
}
