//! Every sample in events/ (for `sam local invoke -e` and `cargo lambda invoke --data-file`) is
//! used here, so none can rot: the API Gateway samples drive the real handler against the
//! stand-ins and must get their expected status; the S3 samples drive the events handler against
//! the same stand-ins and must have their documented effect.
//!
//! The API samples share one caller and one file id. The test seeds that file (a pending record
//! and its uploaded object), then sends the samples in the order of `API_SAMPLES`, which walks the
//! file through its life: read, confirm, download, share, link, delete.

use presign_gate_test_support as support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use presign_gate::domain::{
    FileId, FileRecord, FileStatus, LinkId, LinkPolicy, LinkSecret, ObjectKey, OwnerId,
    QuotaLimits, ShareLink,
};
use presign_gate::http::routes::ROUTES;
use presign_gate::inbound_events::{InboundEvent, handle_inbound_event};
use presign_gate::s3_events::{S3Event, decode_event_key, handle_s3_event};
use presign_gate::store::{GrantStore, LinkStore, OwnershipStore, Transition};
use serde_json::Value;
use support::*;
use time::{Duration, OffsetDateTime};

/// The caller (`sub`) and file id the API samples use.
const SAMPLE_SUB: &str = "3f1c0b5e-9d2a-4c7e-8b1f-2a6d4e8c9f01";
const SAMPLE_FILE_ID: &str = "7b9e2c14-5d3a-4f8e-9a61-0c2b3d4e5f60";
const SAMPLE_BODY: &[u8] = b"hello, sam local!\n";
/// The share link the redeem and revoke samples name, and its secret.
const SAMPLE_LINK_ID: &str = "c4f0e8a2-6b1d-4e3f-9a7c-5d2e1f0a9b8c";
const SAMPLE_LINK_SECRET: &str = "c2FtcGxlIGxpbmsgc2VjcmV0IGZvciBzYW0gbG9jYWw";

/// API Gateway samples, in the order they are sent, with the status each must get.
const API_SAMPLES: &[(&str, u16)] = &[
    // A new reservation of its own.
    ("http-api/create-upload.json", 201),
    // The seeded file, still pending.
    ("http-api/get-file.json", 200),
    // Its parts: the seeded file is a single PUT, so it takes none (a multipart reservation's id
    // gets 200 from both).
    ("http-api/presign-parts.json", 409),
    ("http-api/list-parts.json", 409),
    // A fresh upload URL: the seeded file is a pending single PUT.
    ("http-api/upload-url.json", 200),
    ("http-api/complete-upload.json", 200),
    ("http-api/download-url.json", 200),
    // Another caller asking for the same file: the same answer as for no such file.
    ("http-api/download-url-not-owner.json", 404),
    ("rest-api/get-file-cognito.json", 200),
    ("http-api/download-urls.json", 200),
    // The file shared with the other caller: listed for both, downloadable by the grantee, and
    // revoked again.
    ("http-api/grant-file.json", 201),
    ("http-api/list-grants.json", 200),
    ("http-api/list-shared.json", 200),
    ("http-api/shared-download-url.json", 200),
    ("http-api/revoke-grant.json", 204),
    // A share link made, listed, redeemed with no identity (a browser, redirected), revoked. The
    // redeemed and revoked one is seeded with a known id and secret (`seed_sample_link`): a
    // link made through the API has a fresh random secret that no sample file could hold.
    ("http-api/create-link.json", 201),
    ("http-api/list-links.json", 200),
    ("http-api/redeem-link.json", 302),
    ("http-api/revoke-link.json", 204),
    ("http-api/list-files.json", 200),
    ("http-api/get-usage.json", 200),
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

/// GuardDuty samples (for the events function, through ScanResultRule), in order, with the
/// sample file's status after each: the clean verdict confirms the seeded upload and makes it
/// available; the threat found by a later scan deletes the file (README, "Malware scanning").
const SCAN_RESULT_SAMPLES: &[(&str, Option<&str>)] = &[
    ("guardduty/scan-result-clean.json", Some("available")),
    ("guardduty/scan-result-threats.json", None),
];

/// The publisher's samples, checked by tests/file_events.rs: a batch of the table's stream (for
/// `sam local invoke PublisherFunction`), and the file events a rule's target receives, one per
/// detail-type.
const PUBLISHER_SAMPLES: &[&str] = &[
    "dynamodb/file-changes.json",
    "eventbridge/file-available.json",
    "eventbridge/file-deleted.json",
    "eventbridge/file-expired.json",
    "eventbridge/file-rejected.json",
    "eventbridge/file-reserved.json",
    "eventbridge/file-scanning.json",
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
        .chain(SCAN_RESULT_SAMPLES.iter().map(|(name, _)| *name))
        .chain(PUBLISHER_SAMPLES.iter().copied())
        .map(str::to_owned)
        .collect();
    assert_eq!(
        sample_files(),
        listed,
        "every file in events/ must be listed in API_SAMPLES, S3_SAMPLES, SCAN_RESULT_SAMPLES or PUBLISHER_SAMPLES, and every listed file must exist"
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
        .if_none_match("*") // the bucket policy refuses any write under users/ without it
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
        rejected_for: None,
        multipart: None,
        idempotency_key: None,
    };
    standins
        .store()
        .reserve(&record, &QuotaLimits::default(), now)
        .await
        .expect("reserve the sample file");
}

/// The samples' share link on the sample file (available by then), written as the API writes a
/// new link, with the samples' id and secret.
async fn seed_sample_link(standins: &StandIns) {
    let store = standins.store();
    let owner = OwnerId::parse(SAMPLE_SUB).expect("sample sub");
    let id = FileId::parse(SAMPLE_FILE_ID).expect("sample file id");
    let (record, sharing) = store
        .get_with_grants(&owner, id)
        .await
        .expect("read the sample file")
        .expect("the sample file");
    let ledger = store.link_ledger(&owner).await.expect("the link tallies");
    let now = OffsetDateTime::now_utc();
    let link = ShareLink {
        id: LinkId::parse(SAMPLE_LINK_ID).expect("sample link id"),
        created_at: now,
        expires_at: now + Duration::days(1),
        max_downloads: None,
    };
    let links = sharing
        .with_link(link.clone(), now)
        .expect("room for a link");
    let tallies = ledger
        .admit(link.expires_at, now, &LinkPolicy::default())
        .expect("room for a link");
    let hash = LinkSecret::parse(SAMPLE_LINK_SECRET)
        .expect("sample secret")
        .hash();
    let written = store
        .write_links(
            &record,
            &sharing,
            &links,
            Some((&link, &hash)),
            &ledger,
            &tallies,
        )
        .await
        .expect("write the sample link");
    assert_eq!(written, Transition::Applied);
}

#[tokio::test]
async fn api_samples_get_their_expected_status() {
    let standins = StandIns::start().await;
    seed_sample_file(&standins).await;
    let api = standins.api();
    let mut failures = Vec::new();
    for (name, expected) in API_SAMPLES {
        if *name == "http-api/redeem-link.json" {
            seed_sample_link(&standins).await;
        }
        let answer = api.send_event(&load(name)).await;
        if answer.status.as_u16() != *expected {
            failures.push(format!("{name}: expected {expected}, got {answer:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The S3 samples as the events function receives them: the created one confirms the seeded
/// upload, the removed one names another owner's copy of the id and so changes nothing.
#[tokio::test]
async fn s3_samples_have_their_effect() {
    let standins = StandIns::start().await;
    seed_sample_file(&standins).await;
    let api = standins.api();
    let files = standins.files();
    let path = format!("/files/{SAMPLE_FILE_ID}");
    for (name, event_prefix, owner) in S3_SAMPLES {
        let event: S3Event = serde_json::from_value(load(name))
            .unwrap_or_else(|e| panic!("{name} is not an S3Event: {e}"));
        assert_eq!(event.records.len(), 1, "{name}");
        let record = &event.records[0];
        let event_name = record.event_name.as_deref().unwrap_or_default();
        assert!(
            event_name.starts_with(event_prefix),
            "{name}: {event_name:?}"
        );
        let raw_key = record.s3.object.key.as_deref().expect("object key");
        let key = decode_event_key(raw_key).expect("URL-encoded UTF-8 key");
        let (key_owner, key_id) = ObjectKey::parse(&key)
            .unwrap_or_else(|| panic!("{name}: {key:?} is not a users/<owner>/<id> key"));
        assert_eq!(
            (key_owner.as_str(), key_id.to_string().as_str()),
            (*owner, SAMPLE_FILE_ID),
            "{name}"
        );
        handle_s3_event(&files, event)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let status =
            api.call("GET", &path, Some(SAMPLE_SUB), None).await.body["file"]["status"].clone();
        assert_eq!(status, "available", "{name}");
    }
}

/// The GuardDuty samples as the events function receives them, on a stack that scans uploads,
/// for a deployment whose bucket is the samples' own.
#[tokio::test]
async fn scan_result_samples_have_their_effect() {
    let standins = StandIns::start().await;
    seed_sample_file(&standins).await;
    let api = standins.api();
    let files = standins.files().with_scanning(true);
    let path = format!("/files/{SAMPLE_FILE_ID}");
    for (name, status) in SCAN_RESULT_SAMPLES {
        let sample = load(name);
        let bucket = sample["detail"]["s3ObjectDetails"]["bucketName"]
            .as_str()
            .expect("a bucket name")
            .to_owned();
        let event: InboundEvent = serde_json::from_value(sample)
            .unwrap_or_else(|e| panic!("{name} is not an event of the events function: {e}"));
        assert!(matches!(event, InboundEvent::ScanResult(_)), "{name}");
        handle_inbound_event(&files, &bucket, event)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let answer = api.call("GET", &path, Some(SAMPLE_SUB), None).await;
        match status {
            Some(status) => assert_eq!(answer.body["file"]["status"], *status, "{name}"),
            None => assert_eq!(answer.status.as_u16(), 404, "{name}: {answer:?}"),
        }
    }
}
