//! Malware verdicts over the fakes (issue 22, section 1): one upload's deliveries (the client's
//! `complete`, S3's ObjectCreated event, the scan result, and the scan result again) in every
//! order, for every verdict, end in the one state the verdict decides, with the object and the
//! quota to match. And a verdict after the file's deletion resurrects nothing.

use presign_gate_test_support as support;

use presign_gate::bucket::{ObjectLookup, ObjectStorage};
use presign_gate::domain::{FileId, FileRecord, FileStatus, RejectReason, ScanVerdict};
use presign_gate::service::{FileService, ScanResult};
use support::fakes::{FakeBucket, FakeStore, seed, service_over_pair};

#[derive(Clone, Copy, Debug)]
enum Delivery {
    Complete,
    ObjectCreated,
    Verdict,
}

/// Every order of `items` (Heap's algorithm).
fn orders<T: Copy>(items: &[T]) -> Vec<Vec<T>> {
    fn heap<T: Copy>(k: usize, items: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
        if k <= 1 {
            out.push(items.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, items, out);
            let swap = if k.is_multiple_of(2) { i } else { 0 };
            items.swap(swap, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(items.len(), &mut items.to_vec(), &mut out);
    out
}

struct Upload {
    files: FileService<FakeStore, FakeBucket>,
    bucket: FakeBucket,
    record: FileRecord,
}

fn upload() -> Upload {
    let (files, store, bucket) = service_over_pair();
    let files = files.with_scanning(true);
    let record = seed(
        &store,
        &bucket,
        "alice",
        FileId::new_random(),
        "text/plain",
        FileStatus::Pending,
    );
    Upload {
        files,
        bucket,
        record,
    }
}

impl Upload {
    async fn deliver(&self, delivery: Delivery, verdict: ScanVerdict) {
        let key = self.record.key.as_str();
        match delivery {
            // The client's `complete` may be told the upload was rejected: that is its answer.
            Delivery::Complete => {
                let _ = self
                    .files
                    .complete_upload(&self.record.owner, self.record.id)
                    .await;
            }
            Delivery::ObjectCreated => {
                self.files.object_created(key).await.expect("S3's event");
            }
            Delivery::Verdict => {
                let result = ScanResult {
                    key,
                    etag: Some("e"),
                    version_id: None,
                    verdict,
                };
                self.files
                    .scan_result(result)
                    .await
                    .expect("the scan result");
            }
        }
    }

    async fn state(&self) -> (FileStatus, Option<RejectReason>, bool, u64) {
        let record = self
            .files
            .file(&self.record.owner, self.record.id)
            .await
            .expect("the record");
        let stored = matches!(
            self.bucket.head(&self.record.key).await.expect("head"),
            ObjectLookup::Found(_)
        );
        let (usage, _) = self.files.usage(&self.record.owner).await.expect("usage");
        (record.status, record.rejected_for, stored, usage.bytes)
    }
}

#[tokio::test]
async fn every_order_of_an_uploads_deliveries_ends_as_its_verdict_decides() {
    use Delivery::*;
    let expected = [
        (ScanVerdict::Clean, (FileStatus::Available, None, true, 3)),
        (
            ScanVerdict::Threats,
            (FileStatus::Rejected, Some(RejectReason::Malware), false, 0),
        ),
        (
            ScanVerdict::Unscannable,
            (
                FileStatus::Rejected,
                Some(RejectReason::Unscannable),
                false,
                0,
            ),
        ),
        (
            ScanVerdict::Inconclusive,
            (FileStatus::Scanning, None, true, 3),
        ),
    ];
    let orders = orders(&[Complete, ObjectCreated, Verdict, Verdict]);
    assert_eq!(orders.len(), 24);
    for (verdict, end) in expected {
        for order in &orders {
            let upload = upload();
            for delivery in order {
                upload.deliver(*delivery, verdict).await;
            }
            assert_eq!(upload.state().await, end, "{verdict:?} delivered {order:?}");
        }
    }
}

#[tokio::test]
async fn a_verdict_after_the_delete_resurrects_nothing_and_still_removes_malware() {
    for verdict in [ScanVerdict::Clean, ScanVerdict::Threats] {
        let upload = upload();
        upload.deliver(Delivery::ObjectCreated, verdict).await;
        upload
            .files
            .delete_file(&upload.record.owner, upload.record.id)
            .await
            .expect("delete");
        // The object came back (a late PUT through a URL still valid) before the verdict.
        upload.bucket.put(
            &upload.record.key,
            support::fakes::small_object("text/plain"),
        );
        upload.deliver(Delivery::Verdict, verdict).await;
        let gone = upload
            .files
            .file(&upload.record.owner, upload.record.id)
            .await;
        assert!(gone.is_err(), "{verdict:?}: {gone:?}");
        let stored = matches!(
            upload.bucket.head(&upload.record.key).await.expect("head"),
            ObjectLookup::Found(_)
        );
        // A clean stray is left to S3's own event (which deletes it as unreserved); a
        // malicious one goes at once.
        assert_eq!(stored, verdict == ScanVerdict::Clean, "{verdict:?}");
    }
}

#[tokio::test]
async fn a_later_threat_deletes_an_available_file_outright() {
    let upload = upload();
    upload.deliver(Delivery::Complete, ScanVerdict::Clean).await;
    upload.deliver(Delivery::Verdict, ScanVerdict::Clean).await;
    assert_eq!(upload.state().await.0, FileStatus::Available);
    upload
        .deliver(Delivery::Verdict, ScanVerdict::Threats)
        .await;
    let gone = upload
        .files
        .file(&upload.record.owner, upload.record.id)
        .await;
    assert!(gone.is_err(), "{gone:?}");
    assert!(!matches!(
        upload.bucket.head(&upload.record.key).await.expect("head"),
        ObjectLookup::Found(_)
    ));
    let (usage, _) = upload
        .files
        .usage(&upload.record.owner)
        .await
        .expect("usage");
    assert_eq!(usage.bytes, 0);
}
