//! The audit log records every URL issued, and never a URL, a signature, a credential or a token,
//! even with every log level turned on.

use presign_gate_test_support as support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use lambda_http::http::StatusCode;
use presign_gate::telemetry;
use serde_json::{Value, json};
use support::*;

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
    let mut issued = Vec::new();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    issued.push(reservation["upload"]["url"].as_str().unwrap().to_owned());
    assert_eq!(upload(&reservation, b"abc").await.status(), 200);
    let id = file_id(&reservation);
    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.status, StatusCode::OK);
    let download = api.download_url("alice", &id, "").await;
    issued.push(download.body["url"].as_str().unwrap().to_owned());
    let refused = api.download_url("bob", &id, "").await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let mut forbidden: Vec<String> = [
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "x-amz-security-token",
        "Authorization",
        "AWS4-HMAC-SHA256",
        standins.access_key(),
        standins.secret_key(),
    ]
    .map(str::to_owned)
    .to_vec();
    for url in &issued {
        forbidden.push(url.clone());
        forbidden.push(url.split_once('?').unwrap().1.to_owned());
    }
    for needle in &forbidden {
        assert!(
            !logs.contains(needle.as_str()),
            "the logs contain {needle:?}"
        );
    }

    // Every line is JSON; the URLs issued and refused are each on record with who and what.
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let audit = |message: &str, action: &str, caller: &str| {
        lines.iter().any(|line| {
            line["fields"]["message"] == json!(message)
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
}
