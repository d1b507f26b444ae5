//! Every sample in events/ (for `sam local invoke -e` and `cargo lambda invoke --data-file`) is
//! used here, so none can rot: the API Gateway samples drive the real handler against the
//! stand-ins and must get their expected status; the S3 samples must parse as the `S3Event` the
//! events function receives and name an object key the code accepts.
//!
//! The API samples share one caller and one file id. The test seeds that file (a pending record
//! and its uploaded object), then sends the samples in the order of `API_SAMPLES`, which walks the
//! file through its life: read, confirm, download, delete.

#[path = "deploy/not_yet_served.rs"]
mod not_yet_served;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aws_lambda_events::event::s3::S3Event;
use lambda_http::http::StatusCode;
use not_yet_served::NOT_YET_SERVED;
use presign_gate::domain::{FileId, FileRecord, FileStatus, ObjectKey, OwnerId};
use presign_gate::http::routes::ROUTES;
use presign_gate::store::OwnershipStore;
use serde_json::Value;
use support::*;
use time::{Duration, OffsetDateTime};

/// The caller (`sub`) and file id the API samples use.
const SAMPLE_SUB: &str = "3f1c0b5e-9d2a-4c7e-8b1f-2a6d4e8c9f01";
const SAMPLE_FILE_ID: &str = "7b9e2c14-5d3a-4f8e-9a61-0c2b3d4e5f60";
const SAMPLE_BODY: &[u8] = b"hello, sam local!\n";

/// API Gateway samples, in the order they are sent, with the status each must get.
const API_SAMPLES: &[(&str, u16)] = &[
    // A new reservation of its own.
    ("http-api/create-upload.json", 201),
    // The seeded file, still pending.
    ("http-api/get-file.json", 200),
    ("http-api/complete-upload.json", 200),
    ("http-api/download-url.json", 200),
    // Another caller asking for the same file: the same answer as for no such file.
    ("http-api/download-url-not-owner.json", 404),
    ("rest-api/get-file-cognito.json", 200),
    ("http-api/download-urls.json", 200),
    ("http-api/list-files.json", 200),
    ("http-api/delete-file.json", 204),
];

/// S3 samples (for the events function), with the event name prefix and the caller whose object
/// each names.
const S3_SAMPLES: &[(&str, &str, &str)] = &[
    ("s3/object-created.json", "ObjectCreated:", SAMPLE_SUB),
    (
        "s3/object-removed.json",
        "ObjectRemoved:",
        "auth0|64f1c2example",
    ),
];

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

/// Every file under events/, as paths relative to it.
fn sample_files() -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("readable events/ folder") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, root, found);
            } else {
                let relative = path.strip_prefix(root).expect("under events/");
                found.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let root = events_dir();
    let mut found = BTreeSet::new();
    walk(&root, &root, &mut found);
    found
}

fn load(name: &str) -> Value {
    let path = events_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// The (method, route) an API Gateway sample is for: `routeKey` of an HTTP API (payload 2.0)
/// event, or `httpMethod` and `resource` of a REST API (payload 1.0) event.
fn route_of(name: &str, event: &Value) -> (String, String) {
    if event["version"] == "2.0" {
        let key = event["routeKey"].as_str().expect("routeKey");
        let (method, path) = key
            .split_once(' ')
            .unwrap_or_else(|| panic!("{name}: routeKey {key:?} is not 'METHOD /path'"));
        (method.to_owned(), path.to_owned())
    } else {
        (
            event["httpMethod"].as_str().expect("httpMethod").to_owned(),
            event["resource"].as_str().expect("resource").to_owned(),
        )
    }
}

#[test]
fn every_sample_is_checked_by_a_test() {
    let listed: BTreeSet<String> = API_SAMPLES
        .iter()
        .map(|(name, _)| *name)
        .chain(S3_SAMPLES.iter().map(|(name, _, _)| *name))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        sample_files(),
        listed,
        "every file in events/ must be listed in API_SAMPLES or S3_SAMPLES, and every listed file must exist"
    );
}

#[test]
fn every_route_has_an_http_api_sample() {
    let sampled: BTreeSet<(String, String)> = API_SAMPLES
        .iter()
        .filter(|(name, _)| name.starts_with("http-api/"))
        .map(|(name, _)| route_of(name, &load(name)))
        .collect();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .chain(
            NOT_YET_SERVED
                .iter()
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect();
    assert_eq!(sampled, routes);
}

/// The pending record and its uploaded object that the API samples are about.
async fn seed_sample_file(standins: &StandIns) {
    let owner = OwnerId::parse(SAMPLE_SUB).expect("sample sub");
    let id = FileId::parse(SAMPLE_FILE_ID).expect("sample file id");
    let key = ObjectKey::for_file(&owner, id);
    let now = OffsetDateTime::now_utc();
    standins
        .s3_client()
        .put_object()
        .bucket(BUCKET)
        .key(key.as_str())
        .content_type("text/plain")
        .body(SAMPLE_BODY.to_vec().into())
        .send()
        .await
        .expect("put the sample object");
    let record = FileRecord {
        owner,
        id,
        key,
        filename: "hello.txt".into(),
        content_type: "text/plain".into(),
        size: SAMPLE_BODY.len() as u64,
        sha256: None,
        status: FileStatus::Pending,
        created_at: now,
        purge_at: Some(now + Duration::days(1)),
        etag: None,
        uploaded_at: None,
    };
    standins
        .store()
        .reserve(&record)
        .await
        .expect("reserve the sample file");
}

#[tokio::test]
async fn api_samples_get_their_expected_status() {
    let standins = StandIns::start().await;
    seed_sample_file(&standins).await;
    let api = standins.api();
    let mut failures = Vec::new();
    for (name, expected) in API_SAMPLES {
        let event = load(name);
        let (method, path) = route_of(name, &event);
        let not_yet_served = NOT_YET_SERVED
            .iter()
            .any(|(m, p)| *m == method && *p == path);
        let served = ROUTES.iter().any(|r| r.method == method && r.path == path);
        assert!(
            !(served && not_yet_served),
            "{method} {path} is served now: delete it from tests/deploy/not_yet_served.rs"
        );
        let answer = api.send_event(&event).await;
        if not_yet_served {
            // The route comes with main; until then the router must refuse it as unknown (404)
            // or as another method on a known path (405), never answer it.
            let refused = matches!(
                (answer.status, answer.error_code()),
                (StatusCode::NOT_FOUND, "not_found")
                    | (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            );
            if !refused {
                failures.push(format!(
                    "{name}: {method} {path} is not served yet, so expected 404 or 405, got {answer:?}"
                ));
            }
        } else if answer.status.as_u16() != *expected {
            failures.push(format!("{name}: expected {expected}, got {answer:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn s3_samples_parse_as_the_events_function_input() {
    for (name, event_prefix, owner) in S3_SAMPLES {
        let text = std::fs::read_to_string(events_dir().join(name)).expect("readable sample");
        let event: S3Event =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not an S3Event: {e}"));
        assert_eq!(event.records.len(), 1, "{name}");
        let record = &event.records[0];
        let event_name = record.event_name.as_deref().unwrap_or_default();
        assert!(
            event_name.starts_with(event_prefix),
            "{name}: event {event_name:?}"
        );
        assert_eq!(record.event_source.as_deref(), Some("aws:s3"), "{name}");
        // S3 event keys are URL-encoded (a space is '+'); the decoded key is the object's key.
        let raw_key = record.s3.object.key.as_deref().expect("object key");
        let key = percent_encoding::percent_decode_str(&raw_key.replace('+', " "))
            .decode_utf8()
            .expect("UTF-8 key")
            .into_owned();
        let (key_owner, key_id) = ObjectKey::parse(&key)
            .unwrap_or_else(|| panic!("{name}: {key:?} is not a users/<owner>/<id> key"));
        assert_eq!(key_owner.as_str(), *owner, "{name}");
        assert_eq!(key_id.to_string(), SAMPLE_FILE_ID, "{name}");
    }
}
