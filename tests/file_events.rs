//! The publisher (issue 22, section 2): the table's stream turned into file events, checked
//! against the JSON Schemas in schemas/events/ that the README publishes, and its partial batch
//! response when the bus refuses a call or an entry.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use presign_gate::domain::{
    FileChange, FileEventKind, FileId, FileRecord, FileStatus, NewUpload, OwnerId, RejectReason,
};
use presign_gate::error::AppError;
use presign_gate::event_bus::{EVENT_SOURCE, EventBus, OutboundEvent};
use presign_gate::stream_events::{StreamBatch, outbound, publish_batch};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn load(path: &str) -> Value {
    let path = repository().join(path);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The schema file of a detail-type: `File Available` -> `file-available.v1.json`.
fn schema_file(detail_type: &str) -> String {
    format!(
        "schemas/events/{}.v1.json",
        detail_type.to_lowercase().replace(' ', "-")
    )
}

/// A validator for `detail_type`'s schema, with the common one it refers to registered.
fn validator(detail_type: &str) -> jsonschema::Validator {
    let common = jsonschema::Resource::from_contents(load("schemas/events/file-event.v1.json"));
    jsonschema::options()
        .should_validate_formats(true)
        .with_resource("urn:presign-gate:events:file-event:v1", common)
        .build(&load(&schema_file(detail_type)))
        .unwrap_or_else(|e| panic!("{detail_type}'s schema: {e}"))
}

fn problems(detail_type: &str, detail: &Value) -> Vec<String> {
    validator(detail_type)
        .iter_errors(detail)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

fn record(status: FileStatus) -> FileRecord {
    let upload = NewUpload {
        filename: "résumé final.pdf".into(),
        content_type: "application/pdf".into(),
        size: 42,
        sha256: Some("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into()),
        parts: None,
    };
    let at = OffsetDateTime::from_unix_timestamp(1_795_953_600).unwrap();
    let owner = OwnerId::parse("auth0|alice").unwrap();
    FileRecord {
        status,
        ..FileRecord::pending(owner, FileId::new_random(), upload, at, at)
    }
}

/// Every record state the table can hold, with its optional fields both ways.
fn states() -> Vec<FileRecord> {
    let mut states = Vec::new();
    for status in [
        FileStatus::Pending,
        FileStatus::Scanning,
        FileStatus::Available,
        FileStatus::Rejected,
    ] {
        let bare = FileRecord {
            sha256: None,
            ..record(status)
        };
        states.push(bare);
        let mut full = record(status);
        if status != FileStatus::Pending {
            full.etag = Some("\"0e2a2b5c9d5f1c3a7b4e6d8f0a1c2e3d\"".into());
            full.uploaded_at = Some(full.created_at);
            full.purge_at = None;
        }
        if status == FileStatus::Rejected {
            for reason in [
                RejectReason::Mismatch,
                RejectReason::OverQuota,
                RejectReason::Malware,
                RejectReason::Unscannable,
            ] {
                states.push(FileRecord {
                    rejected_for: Some(reason),
                    ..full.clone()
                });
            }
        } else {
            states.push(full);
        }
    }
    states
}

/// Every change the product makes to a record (README, "Events": the transitions), for every
/// state: the events the publisher can produce.
fn every_change() -> Vec<FileChange> {
    use FileStatus::*;
    let moves = [
        (Pending, Scanning),
        (Pending, Available),
        (Scanning, Available),
        (Pending, Rejected),
        (Scanning, Rejected),
    ];
    let change = |before: Option<FileRecord>, after: Option<FileRecord>, expired| FileChange {
        id: "5d6e7f8091a2b3c4d5e6f708192a3b4c".into(),
        occurred_at: OffsetDateTime::from_unix_timestamp(1_795_953_609).unwrap(),
        before,
        after,
        expired,
    };
    let mut changes = Vec::new();
    for state in states() {
        if state.status == Pending {
            changes.push(change(None, Some(state.clone()), false));
            changes.push(change(Some(state.clone()), None, true));
        }
        changes.push(change(Some(state.clone()), None, false));
        for (from, to) in moves {
            // Every rejection writes its reason; a record without one (rejected before reasons
            // were recorded) is only ever deleted.
            if state.status == to && (to != Rejected || state.rejected_for.is_some()) {
                let before = FileRecord {
                    status: from,
                    rejected_for: None,
                    ..state.clone()
                };
                changes.push(change(Some(before), Some(state.clone()), false));
            }
        }
    }
    changes
}

#[test]
fn every_event_the_publisher_can_produce_matches_its_schema() {
    let mut seen = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for change in every_change() {
        let event = change.event().expect("every change here makes an event");
        let outbound = outbound(&event).expect("an outbound event");
        let detail: Value = serde_json::from_str(&outbound.detail).expect("JSON detail");
        seen.insert(outbound.detail_type);
        for problem in problems(outbound.detail_type, &detail) {
            failures.push(format!("{}: {problem}\n  {detail}", outbound.detail_type));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let all: std::collections::BTreeSet<_> =
        FileEventKind::ALL.map(FileEventKind::detail_type).into();
    assert_eq!(seen, all, "every detail-type produced");
}

#[test]
fn the_schemas_refuse_what_no_event_may_carry() {
    let event = every_change()[0].clone().event().unwrap();
    let detail: Value = serde_json::from_str(&outbound(&event).unwrap().detail).unwrap();
    assert_eq!(event.kind, FileEventKind::Reserved);
    assert!(problems("File Reserved", &detail).is_empty());
    // Never a URL, key or upload id: the file view is closed.
    for (field, value) in [
        (
            "url",
            json!("https://bucket.s3.amazonaws.com/users/x?X-Amz-Signature=0"),
        ),
        ("objectKey", json!("users/alice/x")),
        ("uploadId", json!("2~abc")),
    ] {
        let mut widened = detail.clone();
        widened["file"][field] = value;
        assert!(!problems("File Reserved", &widened).is_empty(), "{field}");
    }
    // A detail-type's schema is its own: a reservation is not an available file.
    assert!(!problems("File Available", &detail).is_empty());
    let mut no_reason = detail.clone();
    no_reason["file"]["status"] = json!("rejected");
    no_reason["previousStatus"] = json!("scanning");
    assert!(!problems("File Rejected", &no_reason).is_empty());
}

/// The samples in events/eventbridge/ are what a rule's target receives: each valid against its
/// detail-type's schema.
#[test]
fn the_outbound_samples_match_their_schemas() {
    let dir = repository().join("events/eventbridge");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("events/eventbridge") {
        let path = entry.expect("an entry").path();
        let sample = load(&format!(
            "events/eventbridge/{}",
            path.file_name().unwrap().to_string_lossy()
        ));
        assert_eq!(sample["source"], EVENT_SOURCE, "{}", path.display());
        let detail_type = sample["detail-type"].as_str().expect("a detail-type");
        assert_eq!(
            path.file_stem().unwrap().to_string_lossy(),
            detail_type.to_lowercase().replace(' ', "-")
        );
        let problems = problems(detail_type, &sample["detail"]);
        assert!(problems.is_empty(), "{}: {problems:?}", path.display());
        checked += 1;
    }
    assert_eq!(checked, FileEventKind::ALL.len());
}

/// A bus that records what it is given, refusing as told.
#[derive(Clone, Default)]
struct RecordingBus {
    calls: Arc<Mutex<Vec<Vec<OutboundEvent>>>>,
    /// Per call, in order: `None` accepts every entry; `Some(None)` fails the call;
    /// `Some(Some(n))` refuses the n-th entry.
    plan: Arc<Mutex<Vec<Option<Option<usize>>>>>,
}

impl EventBus for RecordingBus {
    async fn put(&self, events: &[OutboundEvent]) -> Result<Vec<Option<String>>, AppError> {
        assert!(events.len() <= 10, "PutEvents takes 10 entries at most");
        self.calls.lock().unwrap().push(events.to_vec());
        let step = {
            let mut plan = self.plan.lock().unwrap();
            if plan.is_empty() {
                None
            } else {
                plan.remove(0)
            }
        };
        match step {
            None => Ok(vec![None; events.len()]),
            Some(None) => Err(AppError::Unavailable("throttled".into())),
            Some(Some(refused)) => Ok((0..events.len())
                .map(|i| (i == refused).then(|| "InternalFailure".to_owned()))
                .collect()),
        }
    }
}

impl RecordingBus {
    fn published(&self) -> Vec<OutboundEvent> {
        self.calls.lock().unwrap().concat()
    }
}

fn stream_sample() -> StreamBatch {
    serde_json::from_value(load("events/dynamodb/file-changes.json")).expect("a stream batch")
}

/// The stream sample (events/dynamodb/file-changes.json, for `sam local invoke
/// PublisherFunction`): a ledger item and a grant change make no event, the rest make exactly
/// the outbound samples, in order.
#[tokio::test]
async fn the_stream_sample_makes_the_outbound_samples() {
    let bus = RecordingBus::default();
    let response = publish_batch(&bus, stream_sample()).await;
    assert!(response.batch_item_failures.is_empty());
    let published = bus.published();
    let types: Vec<_> = published.iter().map(|event| event.detail_type).collect();
    assert_eq!(
        types,
        [
            "File Reserved",
            "File Scanning",
            "File Available",
            "File Deleted",
            "File Expired"
        ]
    );
    for event in &published {
        let name = event.detail_type.to_lowercase().replace(' ', "-");
        let sample = load(&format!("events/eventbridge/{name}.json"));
        let detail: Value = serde_json::from_str(&event.detail).unwrap();
        assert_eq!(detail, sample["detail"], "{name}");
        assert_eq!(
            OffsetDateTime::parse(
                sample["time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .unwrap(),
            event.time,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_refused_entry_or_call_is_retried_from_its_record_and_nothing_before_it_again() {
    let batch = || stream_sample();
    let sequence = |index: usize| batch().records[index].dynamodb.sequence_number.clone();
    // The third event (File Available, the stream's fourth record) refused.
    let bus = RecordingBus::default();
    bus.plan.lock().unwrap().push(Some(Some(2)));
    let response = publish_batch(&bus, batch()).await;
    let failures: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.clone())
        .collect();
    assert_eq!(failures, [sequence(3)]);

    // The whole call failed: retried from the first event's record (the second record: the
    // first is a ledger item, which makes none).
    let bus = RecordingBus::default();
    bus.plan.lock().unwrap().push(Some(None));
    let response = publish_batch(&bus, batch()).await;
    assert_eq!(response.batch_item_failures[0].item_identifier, sequence(1));

    // No file event at all: nothing to put, nothing to retry.
    let bus = RecordingBus::default();
    let mut only_ledger = batch();
    only_ledger.records.truncate(1);
    assert!(
        publish_batch(&bus, only_ledger)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(bus.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_large_batch_is_put_ten_at_a_time_in_order() {
    let sample = load("events/dynamodb/file-changes.json");
    let reserved = sample["Records"][1].clone();
    let records: Vec<Value> = (0..25)
        .map(|n| {
            let mut record = reserved.clone();
            record["eventID"] = json!(format!("event-{n:02}"));
            record["dynamodb"]["SequenceNumber"] = json!(format!("{:024}", 100 + n));
            record
        })
        .collect();
    let batch: StreamBatch = serde_json::from_value(json!({ "Records": records })).unwrap();
    let bus = RecordingBus::default();
    assert!(
        publish_batch(&bus, batch)
            .await
            .batch_item_failures
            .is_empty()
    );
    let sizes: Vec<_> = bus.calls.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let ids: Vec<String> = bus
        .published()
        .iter()
        .map(|event| {
            let detail: Value = serde_json::from_str(&event.detail).unwrap();
            detail["eventId"].as_str().unwrap().to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..25).map(|n| format!("event-{n:02}")).collect();
    assert_eq!(ids, expected);
}
