//! The reconciliation run (issue 11, point 8): over the in-memory fakes for each rule, the bound
//! and the continuation; then over the stand-ins (local-aws lists with ListObjectsV2 as S3 does,
//! moto keeps the records and the cursor), as the reconciliation function's role, for the real
//! adapters.

use presign_gate_test_support as support;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use presign_gate::deadline::Deadline;
use presign_gate::domain::{FileId, FileRecord, FileStatus, ObjectKey, OwnerId};
use presign_gate::error::AppError;
use presign_gate::service::{FileService, ReconcileLimits, ReconcileReport};
use presign_gate::store::{CURSOR_OWNER, CURSOR_SORT_KEY, ReconcileCursor, attr};
use support::fakes::{FakeBucket, FakeStore, seed, service_over_pair, small_object};
use time::OffsetDateTime;

/// The longest URL lifetime of these tests' policy: an object with no record older than this is
/// a stray.
const STRAY_AGE: Duration = Duration::from_secs(900);

fn limits(max_objects: u32) -> ReconcileLimits {
    ReconcileLimits {
        max_objects,
        stray_age: STRAY_AGE,
    }
}

/// The fakes' objects are all modified at the epoch: these are "now" for a young and an old one.
fn young() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::from_secs(60)
}

fn old() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + STRAY_AGE + Duration::from_secs(1)
}

struct Harness {
    files: FileService<FakeStore, FakeBucket>,
    store: FakeStore,
    bucket: FakeBucket,
}

fn harness() -> Harness {
    let (files, store, bucket) = service_over_pair();
    Harness {
        files,
        store,
        bucket,
    }
}

impl Harness {
    fn file(&self, owner: &str, status: FileStatus) -> FileRecord {
        seed(
            &self.store,
            &self.bucket,
            owner,
            FileId::new_random(),
            "text/plain",
            status,
        )
    }

    /// An object under `owner` with no record.
    fn stray(&self, owner: &str) -> ObjectKey {
        let key = ObjectKey::for_file(&OwnerId::parse(owner).unwrap(), FileId::new_random());
        self.bucket.put(&key, small_object("text/plain"));
        key
    }

    fn status(&self, record: &FileRecord) -> Option<FileStatus> {
        self.store
            .record(&record.owner, record.id)
            .map(|record| record.status)
    }

    async fn run(&self, now: OffsetDateTime, max_objects: u32) -> ReconcileReport {
        self.files
            .reconcile(now, limits(max_objects), Deadline::NONE)
            .await
            .expect("reconcile run")
    }
}

#[tokio::test]
async fn pending_uploads_are_confirmed_and_old_strays_deleted() {
    let h = harness();
    let pending = h.file("alice", FileStatus::Pending);
    let mismatched = h.file("alice", FileStatus::Pending);
    h.bucket.replace(&mismatched.key, small_object("image/png"));
    let rejected_but_replayed = h.file("bob", FileStatus::Rejected);
    let available = h.file("carol", FileStatus::Available);
    let stray = h.stray("mallory");
    let odd_key = ObjectKey::stray("users/mallory/not-a-file-id").unwrap();
    h.bucket.put(&odd_key, small_object("text/plain"));
    // A reservation whose object never came: left to the table's TTL.
    let never_uploaded = h.file("dave", FileStatus::Pending);
    h.bucket.delete_now(&never_uploaded.key);

    // Young: the records are repaired, the strays wait for the events function's turn.
    let report = h.run(young(), 100).await;
    assert_eq!(
        report,
        ReconcileReport {
            examined: 6,
            confirmed: 1,
            rejected: 2,
            strays_deleted: 0,
            failed: 0,
            finished: true,
            ..ReconcileReport::default()
        }
    );
    assert_eq!(h.status(&pending), Some(FileStatus::Available));
    assert!(h.bucket.contains(&pending.key));
    assert_eq!(h.status(&mismatched), Some(FileStatus::Rejected));
    assert!(!h.bucket.contains(&mismatched.key));
    assert!(!h.bucket.contains(&rejected_but_replayed.key));
    assert_eq!(h.status(&available), Some(FileStatus::Available));
    assert!(h.bucket.contains(&available.key));
    assert!(h.bucket.contains(&stray) && h.bucket.contains(&odd_key));
    assert_eq!(h.status(&never_uploaded), Some(FileStatus::Pending));

    // Old: the strays go; everything else is in order and stays as it is.
    let report = h.run(old(), 100).await;
    assert_eq!(
        report,
        ReconcileReport {
            examined: 4,
            strays_deleted: 2,
            finished: true,
            ..ReconcileReport::default()
        }
    );
    assert!(!h.bucket.contains(&stray) && !h.bucket.contains(&odd_key));
    assert!(h.bucket.contains(&pending.key) && h.bucket.contains(&available.key));
    assert_eq!(h.status(&pending), Some(FileStatus::Available));
    assert_eq!(h.status(&never_uploaded), Some(FileStatus::Pending));
}

#[tokio::test]
async fn a_run_is_bounded_and_the_next_continues_where_it_stopped() {
    let h = harness();
    let mut strays: Vec<ObjectKey> = (0..5).map(|_| h.stray("mallory")).collect();
    strays.sort_by(|a, b| a.as_str().cmp(b.as_str()));

    let mut examined = Vec::new();
    for run in 0..3 {
        let report = h.run(old(), 2).await;
        examined.push((report.examined, report.strays_deleted, report.finished));
        let cursor = h.store.read_cursor().await.unwrap();
        let expected = [Some(strays[1].as_str()), Some(strays[3].as_str()), None][run];
        assert_eq!(cursor.as_deref(), expected, "cursor after run {run}");
    }
    assert_eq!(examined, [(2, 2, false), (2, 2, false), (1, 1, true)]);
    assert!(strays.iter().all(|key| !h.bucket.contains(key)));
    // Each run listed from where the one before it stopped.
    assert_eq!(
        h.store.journal.matching("bucket.list_managed"),
        [
            "bucket.list_managed ".to_owned(),
            format!("bucket.list_managed {}", strays[1].as_str()),
            format!("bucket.list_managed {}", strays[3].as_str()),
        ]
    );
}

// On tokio's paused clock, which moves only when every task waits: the deadline falls while the
// stalled delete hangs, never while the fakes work, however loaded the machine.
#[tokio::test(start_paused = true)]
async fn a_run_cut_by_its_deadline_saves_its_place_and_a_failure_does_not_stop_it() {
    let h = harness();
    let pending = h.file("alice", FileStatus::Pending);
    let stray = h.stray("mallory");

    // The stray's delete never answers: the run stops at its deadline, after the first object.
    h.store.stalls.stall("bucket.delete");
    let deadline = Deadline::at(tokio::time::Instant::now() + Duration::from_millis(300));
    let report = h
        .files
        .reconcile(old(), limits(100), deadline)
        .await
        .expect("a cut run still ends well");
    assert_eq!(
        report,
        ReconcileReport {
            examined: 1,
            confirmed: 1,
            finished: false,
            ..ReconcileReport::default()
        }
    );
    assert_eq!(
        h.store.read_cursor().await.unwrap().as_deref(),
        Some(pending.key.as_str())
    );
    h.store.stalls.heal("bucket.delete");

    // An outage on one object is counted and skipped; the run goes on to the end.
    let second_stray = h.stray("zed");
    h.store.outages.fail("bucket.delete");
    let report = h.run(old(), 100).await;
    assert_eq!(
        report,
        ReconcileReport {
            examined: 2,
            failed: 2,
            finished: true,
            ..ReconcileReport::default()
        }
    );
    h.store.outages.heal("bucket.delete");

    // A listing that fails fails the run, but keeps the place reached before it.
    h.store.outages.fail("bucket.list_managed");
    let failed = h.files.reconcile(old(), limits(100), Deadline::NONE).await;
    assert!(
        matches!(failed, Err(AppError::Unavailable(_))),
        "{failed:?}"
    );
    assert_eq!(h.store.journal.matching("store.write_cursor").len(), 3);
    h.store.outages.heal("bucket.list_managed");

    let report = h.run(old(), 100).await;
    assert_eq!((report.examined, report.strays_deleted), (3, 2));
    assert!(!h.bucket.contains(&stray) && !h.bucket.contains(&second_stray));
    assert_eq!(h.status(&pending), Some(FileStatus::Available));
}

/// A limit above one page (S3's 1,000 keys) that is not a multiple of it: the last page asks only
/// for what is left, and the run examines exactly the limit.
#[tokio::test]
async fn a_run_over_several_pages_stops_exactly_at_its_limit() {
    let h = harness();
    for _ in 0..1_600 {
        h.stray("mallory");
    }

    let report = h.run(young(), 1_500).await;
    assert_eq!((report.examined, report.finished), (1_500, false));
    assert_eq!(h.store.journal.matching("bucket.list_managed").len(), 2);

    let report = h.run(young(), 1_500).await;
    assert_eq!((report.examined, report.finished), (100, true));
}

// On tokio's paused clock, as above: the deadline falls while the listing hangs.
#[tokio::test(start_paused = true)]
async fn a_listing_cut_by_the_deadline_ends_the_run_well() {
    let h = harness();
    let first = h.stray("alice");
    h.stray("bob");
    h.run(young(), 1).await;

    h.store.stalls.stall("bucket.list_managed");
    let deadline = Deadline::at(tokio::time::Instant::now() + Duration::from_millis(300));
    let report = h
        .files
        .reconcile(young(), limits(100), deadline)
        .await
        .expect("a run out of time is not a failed listing");
    assert_eq!(report, ReconcileReport::default());
    // Its place is kept: the next run goes on after the first object.
    assert_eq!(
        h.store.read_cursor().await.unwrap().as_deref(),
        Some(first.as_str())
    );
}

/// A cursor that cannot be read (the table unavailable, a permission missing) fails the run,
/// rather than silently starting every run over from the first object.
#[tokio::test]
async fn a_cursor_that_cannot_be_read_fails_the_run_instead_of_starting_over() {
    let h = harness();
    h.store.outages.fail("store.read_cursor");
    let run = h.files.reconcile(old(), limits(10), Deadline::NONE).await;
    assert!(matches!(run, Err(AppError::Unavailable(_))), "{run:?}");
    assert!(h.store.journal.matching("bucket.list_managed").is_empty());
}

/// The real adapters, as the reconciliation function's role: local-aws lists `users/` with
/// ListObjectsV2 (prefix, start-after, max-keys, truncation); moto holds the records and the
/// cursor item.
#[tokio::test]
async fn the_run_repairs_the_stand_ins_as_its_role_and_keeps_its_cursor_in_the_table() {
    let standins = support::StandIns::start().await;
    let api = standins.api();
    let files = standins.files_as(support::Role::Reconcile);
    let s3 = standins.s3_client();

    // Uploaded, but its ObjectCreated event was lost: still pending.
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    assert_eq!(support::upload(&reservation, b"abc").await.status(), 200);
    let id = support::file_id(&reservation);
    // Bytes with no reservation at all, and an object outside users/ that is none of ours.
    let stray = format!("users/mallory/{}", FileId::new_random());
    for key in [stray.as_str(), "elsewhere/keep"] {
        s3.put_object()
            .if_none_match("*") // the bucket policy refuses any write under users/ without it
            .bucket(support::BUCKET)
            .key(key)
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let dynamodb = standins.dynamodb_client();
    let cursor_item = || async {
        dynamodb
            .get_item()
            .table_name(support::TABLE)
            .key(attr::OWNER, AttributeValue::S(CURSOR_OWNER.into()))
            .key(attr::FILE_ID, AttributeValue::S(CURSOR_SORT_KEY.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem of the cursor")
            .item
    };
    let cursor = || async {
        let item = cursor_item().await.expect("the cursor item");
        item["after"].as_s().expect("a string").clone()
    };
    let exists = |key: String| {
        let s3 = s3.clone();
        async move {
            s3.head_object()
                .bucket(support::BUCKET)
                .key(key)
                .send()
                .await
                .is_ok()
        }
    };
    let now = OffsetDateTime::now_utc();
    let run = |now, max_objects| files.reconcile(now, limits(max_objects), Deadline::NONE);

    // The first run ever has no cursor to read. (Kept in the bucket, as it once was, reading it
    // answered 403 AccessDenied to this role, whose s3:ListBucket is limited to users/: the run
    // failed before it could write one, every time. Amazon S3 API Reference, GetObject,
    // "Permissions".)
    assert!(cursor_item().await.is_none());

    // One object a run: alice's upload first (key order), confirmed.
    let report = run(now, 1).await.unwrap();
    assert_eq!(
        (report.examined, report.confirmed, report.finished),
        (1, 1, false)
    );
    assert_eq!(cursor().await, format!("users/alice/{id}"));
    let file = api
        .call("GET", &format!("/files/{id}"), Some("alice"), None)
        .await;
    assert_eq!(file.body["file"]["status"], "available", "{file:?}");

    // Then the stray, too young to judge; the listing ends, so the next run starts over.
    let report = run(now, 1).await.unwrap();
    assert_eq!(
        (report.examined, report.strays_deleted, report.finished),
        (1, 0, true)
    );
    assert_eq!(cursor().await, "");
    assert!(exists(stray.clone()).await);

    // A day later the stray goes; the confirmed file and the object outside users/ stay.
    let report = run(now + Duration::from_secs(24 * 3600), 100)
        .await
        .unwrap();
    assert_eq!(
        report,
        ReconcileReport {
            examined: 2,
            strays_deleted: 1,
            finished: true,
            ..ReconcileReport::default()
        }
    );
    assert!(!exists(stray).await);
    assert!(exists(format!("users/alice/{id}")).await);
    assert!(exists("elsewhere/keep".to_owned()).await);
    let download = api.download_url("alice", &id, "").await;
    let url = download.body["url"].as_str().expect("download url");
    let body = support::http_client().get(url).send().await.unwrap();
    assert_eq!(body.bytes().await.unwrap().as_ref(), b"abc");
}
