//! Issue 20, 2.7: idempotent reservations. `POST /uploads` with an `Idempotency-Key` header makes
//! one reservation, whatever the number of requests: a repeat of the same key by the same caller
//! answers the same file (a fresh upload URL, or the same part plan), never a second record, a
//! second charge to the quota, or a second S3 upload; the same key with another request is 422
//! `idempotency_key_reused` (IETF draft "The Idempotency-Key HTTP Header Field",
//! draft-ietf-httpapi-idempotency-key-header: a key reused with a different payload). Over the
//! in-memory fakes; `tests/store.rs` shows the record's condition in DynamoDB refusing a repeat.

use presign_gate::domain::{
    ExpiryPolicy, FileId, FileRecord, FileSharing, FileStatus, Grant, IdempotencyKey, Ledger,
    OwnerId, QuotaLimits, RejectReason, UploadPolicy,
};
use presign_gate::error::AppError;
use presign_gate::http::Api;
use presign_gate::service::FileService;
use presign_gate::store::{GrantStore, LinkStore, OwnershipStore, Transition};
use presign_gate_test_support::fakes::{FakeBucket, FakeStore, pair};
use presign_gate_test_support::{Answer, TestApi, http_api_event};
use serde_json::{Value, json};
use time::OffsetDateTime;

const MIB: u64 = 1024 * 1024;

/// The API over the fakes (through `S`, the fake store or a wrapper of it), text up to 1 TiB,
/// multipart from 100 MiB or when asked, at most `max_pending` reservations waiting at once.
fn api_over<S: OwnershipStore + GrantStore + LinkStore>(
    store: S,
    bucket: FakeBucket,
    max_pending: u32,
) -> TestApi<S, FakeBucket> {
    let files = FileService::new(
        store,
        bucket,
        UploadPolicy::new(["text/plain"], 1 << 40)
            .unwrap()
            .with_multipart_threshold(100 * MIB)
            .unwrap(),
        ExpiryPolicy::new(300, 900).unwrap(),
    )
    .with_quotas(QuotaLimits {
        max_pending_uploads: max_pending,
        max_bytes: 1 << 40,
    });
    TestApi(Api::new(files, None))
}

fn body(filename: &str, size: u64, multipart: bool) -> Value {
    json!({"filename": filename, "contentType": "text/plain", "size": size, "multipart": multipart})
}

/// `POST /uploads` by `caller` with `body`, and the `Idempotency-Key` header when given.
async fn reserve<S: OwnershipStore + GrantStore + LinkStore>(
    api: &TestApi<S, FakeBucket>,
    caller: &str,
    key: Option<&str>,
    body: &Value,
) -> Answer {
    let mut event = http_api_event("POST", "/uploads", Some(caller), Some(body.to_string()));
    if let Some(key) = key {
        event["headers"]["idempotency-key"] = json!(key);
    }
    api.send_event(&event).await
}

fn id_of(answer: &Answer) -> String {
    assert_eq!(answer.status.as_u16(), 201, "{answer:?}");
    answer.body["file"]["id"]
        .as_str()
        .expect("file id")
        .to_owned()
}

fn pending_count(store: &FakeStore, owner: &str) -> usize {
    let owner = OwnerId::parse(owner).unwrap();
    store.records_of(&owner).len()
}

#[tokio::test]
async fn a_repeated_key_answers_the_same_file_with_a_fresh_url_and_reserves_once() {
    let (store, bucket) = pair();
    // One pending reservation at most: a second one would be refused with 429.
    let api = api_over(store.clone(), bucket, 1);
    let request = body("a.txt", 3, false);
    let first = reserve(&api, "alice", Some("upload-1"), &request).await;
    let id = id_of(&first);
    assert_eq!(first.body["upload"]["method"], "PUT");
    let second = reserve(&api, "alice", Some("upload-1"), &request).await;
    assert_eq!(id_of(&second), id, "{second:?}");
    assert_eq!(second.body["file"], first.body["file"]);
    assert_eq!(second.body["upload"]["method"], "PUT");
    assert!(second.body["upload"]["url"].as_str().unwrap().contains(&id));
    assert_eq!(pending_count(&store, "alice"), 1);
    assert_eq!(store.journal.matching("store.reserve").len(), 1);
    let ledger: Ledger = store
        .ledger(&OwnerId::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(ledger.reservations(), 1, "charged once: {ledger:?}");
    // The record keeps the key; its id is the one the key gives.
    let owner = OwnerId::parse("alice").unwrap();
    let key = IdempotencyKey::parse("upload-1").unwrap();
    let record: FileRecord = store
        .record(&owner, FileId::for_idempotency_key(&owner, &key))
        .expect("the record under the key's id");
    assert_eq!(record.id.to_string(), id);
    assert_eq!(record.idempotency_key, Some(key));
    // Another key is another reservation (refused here: the quota is one).
    let other = reserve(&api, "alice", Some("upload-2"), &request).await;
    assert_eq!(other.error_code(), "quota_exceeded", "{other:?}");
}

#[tokio::test]
async fn a_key_is_the_callers_own() {
    let (store, bucket) = pair();
    let api = api_over(store.clone(), bucket, 5);
    let request = body("a.txt", 3, false);
    let alice = id_of(&reserve(&api, "alice", Some("upload-1"), &request).await);
    let bob = id_of(&reserve(&api, "bob", Some("upload-1"), &request).await);
    assert_ne!(alice, bob);
    // Each repeat answers its own caller's file.
    assert_eq!(
        id_of(&reserve(&api, "bob", Some("upload-1"), &request).await),
        bob
    );
    assert_eq!(
        id_of(&reserve(&api, "alice", Some("upload-1"), &request).await),
        alice
    );
    assert_eq!(pending_count(&store, "bob"), 1);
    assert_eq!(pending_count(&store, "alice"), 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused_and_changes_nothing() {
    let (store, bucket) = pair();
    let api = api_over(store.clone(), bucket, 5);
    let id = id_of(&reserve(&api, "alice", Some("k"), &body("a.txt", 3, false)).await);
    for other in [
        body("b.txt", 3, false),
        body("a.txt", 4, false),
        json!({"filename": "a.txt", "contentType": "text/plain", "size": 3, "sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}),
        body("a.txt", 6 * MIB, true),
    ] {
        let answer = reserve(&api, "alice", Some("k"), &other).await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (422, "idempotency_key_reused"),
            "{other}: {answer:?}"
        );
        assert!(answer.body.get("upload").is_none());
    }
    assert_eq!(pending_count(&store, "alice"), 1);
    assert_eq!(store.journal.matching("store.reserve").len(), 1);
    assert!(store.journal.matching("bucket.create_multipart").is_empty());
    // The URL lifetime is no part of the request's identity: a repeat may ask for another.
    let longer = json!({"filename": "a.txt", "contentType": "text/plain", "size": 3, "multipart": false, "expiresIn": 900});
    assert_eq!(id_of(&reserve(&api, "alice", Some("k"), &longer).await), id);
}

#[tokio::test]
async fn a_repeated_multipart_key_answers_the_same_plan_and_creates_one_s3_upload() {
    let (store, bucket) = pair();
    let api = api_over(store.clone(), bucket.clone(), 1);
    let request = body("big.txt", 6 * MIB, true);
    let first = reserve(&api, "alice", Some("mp-1"), &request).await;
    let second = reserve(&api, "alice", Some("mp-1"), &request).await;
    assert_eq!(id_of(&second), id_of(&first));
    assert_eq!(second.body["upload"], first.body["upload"]);
    assert_eq!(second.body["upload"]["method"], "MULTIPART");
    assert_eq!(bucket.journal.matching("bucket.create_multipart").len(), 1);
    assert_eq!(bucket.uploads().len(), 1);
    assert_eq!(pending_count(&store, "alice"), 1);
}

#[tokio::test]
async fn a_repeat_of_a_file_no_longer_pending_is_not_pending() {
    let (store, bucket) = pair();
    let api = api_over(store.clone(), bucket, 5);
    let request = body("a.txt", 3, false);
    let id = id_of(&reserve(&api, "alice", Some("k"), &request).await);
    let owner = OwnerId::parse("alice").unwrap();
    let mut record = store.record(&owner, FileId::parse(&id).unwrap()).unwrap();
    record.status = presign_gate::domain::FileStatus::Available;
    store.insert(record);
    let answer = reserve(&api, "alice", Some("k"), &request).await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (409, "not_pending"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_malformed_key_is_a_400_and_reserves_nothing() {
    let (store, bucket) = pair();
    let api = api_over(store.clone(), bucket, 5);
    let long = "k".repeat(129);
    // API Gateway joins a header sent twice with a comma, which no key holds.
    for key in ["", "a b", long.as_str(), "k1,k2", "ä"] {
        let answer = reserve(&api, "alice", Some(key), &body("a.txt", 3, false)).await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (400, "invalid_request"),
            "{key:?}: {answer:?}"
        );
    }
    assert_eq!(pending_count(&store, "alice"), 0);
    // Without the header, each request is a reservation of its own, as before.
    let request = body("a.txt", 3, false);
    let one = id_of(&reserve(&api, "alice", None, &request).await);
    let two = id_of(&reserve(&api, "alice", None, &request).await);
    assert_ne!(one, two);
}

/// The fake store, except that its first read of a record misses: as two first requests with
/// the same key both read before either wrote.
#[derive(Clone)]
struct FirstReadMisses {
    store: FakeStore,
    missed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Grants pass through: this store only changes how the first record read goes.
impl GrantStore for FirstReadMisses {
    async fn get_with_grants(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> Result<Option<(FileRecord, FileSharing)>, AppError> {
        self.store.get_with_grants(owner, id).await
    }
    async fn write_grants(
        &self,
        record: &FileRecord,
        read: &FileSharing,
        grants: &[Grant],
    ) -> Result<Transition, AppError> {
        self.store.write_grants(record, read, grants).await
    }
    async fn shared_with(
        &self,
        grantee: &OwnerId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<presign_gate::domain::SharedFile>, Option<String>), AppError> {
        self.store.shared_with(grantee, limit, after).await
    }
}

/// Links pass through too.
impl LinkStore for FirstReadMisses {
    async fn link_ledger(
        &self,
        owner: &OwnerId,
    ) -> Result<presign_gate::domain::LinkLedger, AppError> {
        self.store.link_ledger(owner).await
    }
    async fn write_links(
        &self,
        record: &FileRecord,
        read: &FileSharing,
        links: &[presign_gate::domain::ShareLink],
        new: Option<(&presign_gate::domain::ShareLink, &str)>,
        ledger: &presign_gate::domain::LinkLedger,
        tallies: &std::collections::BTreeMap<OffsetDateTime, u64>,
    ) -> Result<Transition, AppError> {
        self.store
            .write_links(record, read, links, new, ledger, tallies)
            .await
    }
    async fn redeem(
        &self,
        id: presign_gate::domain::LinkId,
        secret_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<presign_gate::domain::LinkTarget>, AppError> {
        self.store.redeem(id, secret_hash, now).await
    }
    async fn link_downloads(
        &self,
        ids: &[presign_gate::domain::LinkId],
    ) -> Result<std::collections::HashMap<presign_gate::domain::LinkId, u64>, AppError> {
        self.store.link_downloads(ids).await
    }
}

impl OwnershipStore for FirstReadMisses {
    async fn reserve(
        &self,
        record: &FileRecord,
        limits: &QuotaLimits,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        self.store.reserve(record, limits, now).await
    }
    async fn ledger(&self, owner: &OwnerId) -> Result<Ledger, AppError> {
        self.store.ledger(owner).await
    }
    async fn get(&self, owner: &OwnerId, id: FileId) -> Result<Option<FileRecord>, AppError> {
        let record = self.store.get(owner, id).await?;
        if !self.missed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(None);
        }
        Ok(record)
    }
    async fn get_many(&self, owner: &OwnerId, ids: &[FileId]) -> Result<Vec<FileRecord>, AppError> {
        self.store.get_many(owner, ids).await
    }
    async fn mark_uploaded(
        &self,
        record: &FileRecord,
        status: FileStatus,
        etag: &str,
        uploaded_at: OffsetDateTime,
        limits: &QuotaLimits,
    ) -> Result<Transition, AppError> {
        self.store
            .mark_uploaded(record, status, etag, uploaded_at, limits)
            .await
    }
    async fn mark_scanned(&self, record: &FileRecord) -> Result<Transition, AppError> {
        self.store.mark_scanned(record).await
    }
    async fn mark_rejected(
        &self,
        record: &FileRecord,
        reason: RejectReason,
    ) -> Result<Transition, AppError> {
        self.store.mark_rejected(record, reason).await
    }
    async fn list(
        &self,
        owner: &OwnerId,
        limit: u32,
        after: Option<FileId>,
    ) -> Result<(Vec<FileRecord>, Option<FileId>), AppError> {
        self.store.list(owner, limit, after).await
    }
    async fn delete(&self, record: &FileRecord) -> Result<Transition, AppError> {
        self.store.delete(record).await
    }
}

/// A repeat that raced past the read (the first request's record written between its read and
/// its own write) is refused by the record's condition, or by the quota the first one took, and
/// then answers the first one's file; a multipart repeat aborts the S3 upload it created.
#[tokio::test]
async fn a_repeat_that_raced_past_the_read_answers_the_first_reservation() {
    for (request, max_pending) in [
        (body("a.txt", 3, false), 5),
        (body("a.txt", 3, false), 1),
        (body("big.txt", 6 * MIB, true), 5),
        (body("big.txt", 6 * MIB, true), 1),
    ] {
        let (store, bucket) = pair();
        let first = api_over(store.clone(), bucket.clone(), max_pending);
        let id = id_of(&reserve(&first, "alice", Some("k"), &request).await);
        let racing = FirstReadMisses {
            store: store.clone(),
            missed: Default::default(),
        };
        let repeat = api_over(racing, bucket.clone(), max_pending);
        let answer = reserve(&repeat, "alice", Some("k"), &request).await;
        assert_eq!(id_of(&answer), id, "{request} {max_pending}");
        assert_eq!(pending_count(&store, "alice"), 1);
        let ledger = store
            .ledger(&OwnerId::parse("alice").unwrap())
            .await
            .unwrap();
        assert_eq!(ledger.reservations(), 1);
        // Any S3 upload the repeat created is aborted; the first one's stays.
        let multipart = request["multipart"] == true;
        assert_eq!(bucket.uploads().len(), usize::from(multipart), "{request}");
    }
}
