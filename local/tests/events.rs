//! The local EventBridge (PutEvents, signed and authorized as IAM would from the template's
//! roles) and its sink on the demo origin (`/__events`), with the PutEvents faults of
//! `/__faults`: what issue 22's publisher sends and what the demo and tests read.

mod support;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use reqwest::StatusCode;
use serde_json::{Value, json};

use support::{Options, Stack, http, template};

const BUS: &str = "presign-gate-local-files";
const PUBLISHER: Option<&str> = Some("PublisherFunctionRole");

async fn stack(events_log: Option<std::path::PathBuf>) -> Stack {
    Stack::start(Options {
        template: Some(template()),
        eventbridge: true,
        events_log,
        ..Options::default()
    })
    .await
}

fn entry(owner: &str, detail_type: &str) -> PutEventsRequestEntry {
    let detail = json!({"schemaVersion": 1, "owner": owner, "file": {"id": "f1"}});
    PutEventsRequestEntry::builder()
        .source("presign-gate")
        .detail_type(detail_type)
        .detail(detail.to_string())
        .event_bus_name(BUS)
        .build()
}

/// The error code of a refused call.
fn code<E: aws_sdk_eventbridge::error::ProvideErrorMetadata>(error: &E) -> &str {
    error.code().unwrap_or_default()
}

#[tokio::test]
async fn put_events_is_the_publisher_roles_and_not_the_api_roles() {
    let stack = stack(None).await;
    assert_eq!(stack.aws.event_bus.as_deref(), Some(BUS));
    let put = stack
        .eventbridge_as(PUBLISHER)
        .put_events()
        .entries(entry("alice", "File Reserved"))
        .send()
        .await
        .expect("the publisher's role may put events on its bus");
    assert_eq!(put.failed_entry_count(), 0);
    let id = put.entries()[0].event_id().expect("an event id").to_owned();
    let events = stack.sink(Some("alice")).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["id"], id);
    assert_eq!(event["source"], "presign-gate");
    assert_eq!(event["detail-type"], "File Reserved");
    assert_eq!(event["detail"]["file"]["id"], "f1");
    assert_eq!(event["account"], "123456789012");
    assert!(
        event["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{event}"
    );

    // The API's role has no events:PutEvents: the call is refused whole, as AWS refuses it.
    let refused = stack
        .eventbridge_as(Some("ApiFunctionRole"))
        .put_events()
        .entries(entry("alice", "File Deleted"))
        .send()
        .await
        .expect_err("the API's role may not put events");
    let refused = refused.into_service_error();
    assert_eq!(code(&refused), "AccessDeniedException");
    let message = aws_sdk_eventbridge::error::ProvideErrorMetadata::message(&refused);
    assert!(
        message.is_some_and(
            |m| m.contains("ApiFunctionRole") && m.contains(&format!("event-bus/{BUS}"))
        ),
        "{refused:?}"
    );
    // The publisher's role may not put on another bus: that entry alone fails.
    let mixed = stack
        .eventbridge_as(PUBLISHER)
        .put_events()
        .entries(entry("alice", "File Available"))
        .entries(
            PutEventsRequestEntry::builder()
                .source("presign-gate")
                .detail_type("File Available")
                .detail("{}")
                .event_bus_name("default")
                .build(),
        )
        .send()
        .await
        .expect("a call with one allowed entry is answered");
    assert_eq!(mixed.failed_entry_count(), 1);
    assert!(mixed.entries()[0].event_id().is_some());
    assert_eq!(
        mixed.entries()[1].error_code(),
        Some("AccessDeniedException")
    );
    assert_eq!(stack.sink(Some("alice")).await.len(), 2);

    // A key that is not the role's is not accepted.
    let unknown = aws_sdk_eventbridge::Client::from_conf(
        stack
            .eventbridge_as(PUBLISHER)
            .config()
            .to_builder()
            .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
                "local-PublisherFunctionRole",
                "not-its-secret",
                None,
                None,
                "tests",
            ))
            .build(),
    )
    .put_events()
    .entries(entry("alice", "File Reserved"))
    .send()
    .await
    .expect_err("a bad signature is refused");
    assert_eq!(
        code(&unknown.into_service_error()),
        "InvalidSignatureException"
    );
}

#[tokio::test]
async fn the_sink_answers_an_owners_events_newest_first_and_forgets_them_on_delete() {
    let log = tempfile::NamedTempFile::new().expect("log file");
    let stack = stack(Some(log.path().to_owned())).await;
    let client = stack.eventbridge_as(PUBLISHER);
    for (owner, kind) in [
        ("alice", "File Reserved"),
        ("bob", "File Reserved"),
        ("alice", "File Scanning"),
    ] {
        client
            .put_events()
            .entries(entry(owner, kind))
            .send()
            .await
            .expect("put");
    }
    let kinds = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["detail-type"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        kinds(&stack.sink(Some("alice")).await),
        ["File Scanning", "File Reserved"]
    );
    assert_eq!(kinds(&stack.sink(Some("bob")).await), ["File Reserved"]);
    assert!(stack.sink(Some("carol")).await.is_empty());
    assert_eq!(stack.sink(None).await.len(), 3);

    let deleted = http()
        .delete(format!("{}/__events", stack.demo_origin()))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(stack.sink(None).await.is_empty());
    let logged: Vec<Value> = std::fs::read_to_string(log.path())
        .expect("the log")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(logged.len(), 3, "the log keeps what DELETE forgets");
    assert_eq!(logged[2]["detail-type"], "File Scanning");
}

#[tokio::test]
async fn put_events_refuses_what_eventbridge_refuses() {
    let stack = stack(None).await;
    let client = stack.eventbridge_as(PUBLISHER);
    let eleven = client
        .put_events()
        .set_entries(Some(vec![entry("alice", "File Reserved"); 11]))
        .send()
        .await
        .expect_err("11 entries");
    assert_eq!(code(&eleven.into_service_error()), "ValidationException");
    let huge = json!({"owner": "alice", "pad": "x".repeat(256 * 1024)}).to_string();
    let too_big = client
        .put_events()
        .entries(
            PutEventsRequestEntry::builder()
                .source("presign-gate")
                .detail_type("File Reserved")
                .detail(huge)
                .event_bus_name(BUS)
                .build(),
        )
        .send()
        .await
        .expect_err("an entry over 256 KB");
    assert_eq!(code(&too_big.into_service_error()), "ValidationException");

    let answered = client
        .put_events()
        .entries(
            PutEventsRequestEntry::builder()
                .source("presign-gate")
                .detail("{}")
                .event_bus_name(BUS)
                .build(),
        )
        .entries(
            PutEventsRequestEntry::builder()
                .source("presign-gate")
                .detail_type("File Reserved")
                .detail("[\"not an object\"]")
                .event_bus_name(BUS)
                .build(),
        )
        .entries(entry("alice", "File Reserved"))
        .send()
        .await
        .expect("entries are refused one by one");
    let codes: Vec<Option<&str>> = answered.entries().iter().map(|e| e.error_code()).collect();
    assert_eq!(
        codes,
        [Some("InvalidArgument"), Some("MalformedDetail"), None]
    );
    assert_eq!(answered.failed_entry_count(), 2);
    assert_eq!(
        stack.sink(None).await.len(),
        1,
        "only the valid entry is kept"
    );
}

#[tokio::test]
async fn faults_fail_a_whole_call_or_its_first_entries() {
    let stack = stack(None).await;
    let client = stack.eventbridge_as(PUBLISHER);
    let plan = json!({"putEvents": [{"status": 500, "times": 1}, {"failEntries": 1, "times": 1}]});
    let queued = http()
        .post(format!("{}/__faults", stack.demo_origin()))
        .header("content-type", "application/json")
        .body(plan.to_string())
        .send()
        .await
        .expect("POST /__faults");
    assert_eq!(queued.status(), StatusCode::NO_CONTENT);

    let failed = client
        .put_events()
        .entries(entry("alice", "File Reserved"))
        .send()
        .await
        .expect_err("the first call fails whole");
    let failed = failed.into_service_error();
    assert_eq!(code(&failed), "InternalException");
    assert!(stack.sink(None).await.is_empty());

    let partly = client
        .put_events()
        .entries(entry("alice", "File Reserved"))
        .entries(entry("alice", "File Scanning"))
        .send()
        .await
        .expect("the second call is answered");
    assert_eq!(partly.failed_entry_count(), 1);
    assert_eq!(partly.entries()[0].error_code(), Some("InternalFailure"));
    assert!(partly.entries()[1].event_id().is_some());
    let kept = stack.sink(None).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["detail-type"], "File Scanning");

    let whole = client
        .put_events()
        .entries(entry("alice", "File Available"))
        .send()
        .await
        .expect("faults are used up");
    assert_eq!(whole.failed_entry_count(), 0);
    let report: Value = serde_json::from_str(
        &http()
            .get(format!("{}/__faults", stack.demo_origin()))
            .send()
            .await
            .expect("GET /__faults")
            .text()
            .await
            .expect("a body"),
    )
    .expect("JSON");
    assert_eq!(report["served"]["putEvents"], 2);
    assert_eq!(report["putEvents"], json!([]));
}
