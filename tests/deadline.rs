//! One deadline per request (issue 11, point 7): the real handler, over the in-memory fakes, with
//! the invocation context the Lambda runtime attaches. A backend that stalls on the second, third
//! or fourth call of `complete` or `DELETE` ends in 503 `unavailable` with `Retry-After` before the
//! invocation's deadline, and repeating the request once the backend answers again finishes it.
//!
//! The stalled call never answers (`Stalls`), so without the deadline these tests would hang: the
//! only timing checked is "answered before the invocation's deadline", with the deadline a second
//! after the margin the handler keeps back.

use std::time::Duration;

use lambda_http::http::{StatusCode, header};
use presign_gate::domain::{FileId, FileRecord, FileStatus};
use presign_gate::http::Api;
use presign_gate_test_support::fakes::{
    FakeBucket, FakeStore, seed, service_over_pair, small_object,
};
use presign_gate_test_support::{Answer, TestApi, http_api_event};

/// What the invocation has left when the request arrives: the handler cuts a second before.
const INVOCATION_REMAINING: Duration = Duration::from_secs(2);

struct Harness {
    api: TestApi<FakeStore, FakeBucket>,
    store: FakeStore,
    bucket: FakeBucket,
}

fn harness() -> Harness {
    let (files, store, bucket) = service_over_pair();
    Harness {
        api: TestApi(Api::new(files, None)),
        store,
        bucket,
    }
}

impl Harness {
    /// alice's file in `status`, with its object in the bucket.
    fn seeded(&self, status: FileStatus) -> FileRecord {
        seed(
            &self.store,
            &self.bucket,
            "alice",
            FileId::new_random(),
            "text/plain",
            status,
        )
    }

    async fn send(&self, method: &str, record: &FileRecord) -> Answer {
        let path = match method {
            "POST" => format!("/files/{}/complete", record.id),
            _ => format!("/files/{}", record.id),
        };
        let event = http_api_event(method, &path, Some("alice"), None);
        let within = self.api.send_event_within(&event, INVOCATION_REMAINING);
        tokio::time::timeout(INVOCATION_REMAINING, within)
            .await
            .unwrap_or_else(|_| {
                panic!("{method} {path}: no answer before the invocation's deadline")
            })
    }

    /// Sends the request with `operation` stalled: it must be cut with a 503 that says when to
    /// retry, after the calls `journal` lists. Then the backend recovers.
    async fn cut_at(&self, method: &str, record: &FileRecord, operation: &'static str) {
        self.store.stalls.stall(operation);
        let answer = self.send(method, record).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
        assert_eq!(answer.error_code(), "unavailable");
        assert_eq!(answer.headers[header::RETRY_AFTER], "1");
        let journal = self.store.journal.entries();
        assert!(
            journal
                .last()
                .is_some_and(|last| last.starts_with(operation)),
            "the request must have been cut at {operation}: {journal:?}"
        );
        self.store.stalls.heal(operation);
    }

    fn status(&self, record: &FileRecord) -> Option<FileStatus> {
        self.store
            .record(&record.owner, record.id)
            .map(|record| record.status)
    }
}

#[tokio::test]
async fn complete_cut_at_the_head_or_the_confirmation_is_finished_by_a_retry() {
    // get (1st), head (2nd), mark_uploaded (3rd).
    for stalled in ["bucket.head", "store.mark_uploaded"] {
        let h = harness();
        let record = h.seeded(FileStatus::Pending);
        h.cut_at("POST", &record, stalled).await;
        assert_eq!(h.status(&record), Some(FileStatus::Pending), "{stalled}");

        let answer = h.send("POST", &record).await;
        assert_eq!(answer.status, StatusCode::OK, "{stalled}: {answer:?}");
        assert_eq!(answer.body["file"]["status"], "available");
        assert_eq!(h.status(&record), Some(FileStatus::Available));
        assert!(h.bucket.contains(&record.key));
    }
}

#[tokio::test]
async fn a_rejection_cut_before_its_delete_deletes_on_the_retry() {
    // get (1st), head (2nd), mark_rejected (3rd), delete (4th): the object is not what was
    // reserved, so it must end deleted however the request was cut.
    for stalled in ["store.mark_rejected", "bucket.delete"] {
        let h = harness();
        let record = h.seeded(FileStatus::Pending);
        h.bucket.replace(&record.key, small_object("image/png"));
        h.cut_at("POST", &record, stalled).await;
        assert!(h.bucket.contains(&record.key), "{stalled}");

        let answer = h.send("POST", &record).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{stalled}: {answer:?}"
        );
        assert_eq!(answer.error_code(), "upload_rejected");
        assert_eq!(h.status(&record), Some(FileStatus::Rejected));
        assert!(!h.bucket.contains(&record.key), "{stalled}: bytes left");
    }
}

#[tokio::test]
async fn delete_cut_at_either_of_its_writes_is_finished_by_a_retry() {
    // get (1st), object delete (2nd), record delete (3rd).
    for stalled in ["bucket.delete", "store.delete"] {
        let h = harness();
        let record = h.seeded(FileStatus::Available);
        h.cut_at("DELETE", &record, stalled).await;
        // Never a record-less object: the record goes last.
        assert_eq!(h.status(&record), Some(FileStatus::Available), "{stalled}");
        assert_eq!(h.bucket.contains(&record.key), stalled == "bucket.delete");

        let answer = h.send("DELETE", &record).await;
        assert_eq!(
            answer.status,
            StatusCode::NO_CONTENT,
            "{stalled}: {answer:?}"
        );
        assert_eq!(h.status(&record), None);
        assert!(!h.bucket.contains(&record.key));
    }
}

/// A first call that stalls is cut the same way, and without any deadline (no invocation
/// context) the handler still answers a healthy backend as before.
#[tokio::test]
async fn the_first_call_is_bounded_too_and_no_context_means_no_deadline() {
    let h = harness();
    let record = h.seeded(FileStatus::Available);
    h.cut_at("DELETE", &record, "store.get").await;
    let event = http_api_event("GET", &format!("/files/{}", record.id), Some("alice"), None);
    let answer = h.api.send_event(&event).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}

/// `cargo lambda watch` (what `make local` runs) sends `Lambda-Runtime-Deadline-Ms: 600000`, a
/// duration where Lambda sends an instant. Read as an instant it is 1970, and every request of the
/// local stack was answered 503 at once; it must count as no deadline.
#[tokio::test]
async fn an_emulators_relative_deadline_does_not_cut_requests() {
    let h = harness();
    let record = h.seeded(FileStatus::Available);
    let event = http_api_event("GET", &format!("/files/{}", record.id), Some("alice"), None);
    let answer = h.api.send_event_with_deadline_ms(&event, 600_000).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
}
