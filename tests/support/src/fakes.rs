//! In-memory fakes of the two ports, for tests that need the application's logic but not real
//! SigV4 or DynamoDB semantics: the fuzz harnesses, the fast tests of `service.rs`, and the
//! validation rows of the API. No network, so they run in microseconds.
//!
//! Each fake is a handle: its clones share its state, so a test keeps one while the service owns
//! another. Both write to a `Journal` of what was called (one journal for both, in call order,
//! when made by `pair`), can be told to fail an operation as a backend outage would or to stall
//! it as a backend that never answers would, and
//! `FakeBucket::head` yields once after reading, so two operations joined on one task both see
//! the object before either acts on it, as two real ones racing would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use presign_gate::bucket::{
    DownloadTarget, ListedObject, ObjectInfo, ObjectListing, ObjectPage, ObjectStorage,
    PresignedRequest, UploadTarget, UrlSigner, Validity,
};
use presign_gate::domain::{
    ExpiryPolicy, FileId, FileRecord, FileStatus, ObjectKey, OwnerId, UploadPolicy,
};
use presign_gate::error::AppError;
use presign_gate::service::FileService;
use presign_gate::store::{OwnershipStore, Transition};
use time::OffsetDateTime;

/// Every call the fakes answered, in order, such as `store.get` or `bucket.delete users/a/…`.
#[derive(Clone, Debug, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn record(&self, entry: String) {
        lock(&self.0).push(entry);
    }

    pub fn entries(&self) -> Vec<String> {
        lock(&self.0).clone()
    }

    /// The entries that start with `prefix`.
    pub fn matching(&self, prefix: &str) -> Vec<String> {
        lock(&self.0)
            .iter()
            .filter(|entry| entry.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// Operations to fail with `Unavailable`, by journal name (`store.delete`, `bucket.head`...).
#[derive(Clone, Debug, Default)]
pub struct Outages(Arc<Mutex<BTreeSet<&'static str>>>);

impl Outages {
    pub fn fail(&self, operation: &'static str) {
        lock(&self.0).insert(operation);
    }

    pub fn heal(&self, operation: &'static str) {
        lock(&self.0).remove(operation);
    }

    fn check(&self, operation: &'static str) -> Result<(), AppError> {
        if lock(&self.0).contains(operation) {
            Err(AppError::Unavailable(format!("{operation} is down").into()))
        } else {
            Ok(())
        }
    }
}

/// Operations that never answer, by journal name: the call is journalled (it reached the backend)
/// and then hangs, before any effect, until the caller gives up on it.
#[derive(Clone, Debug, Default)]
pub struct Stalls(Arc<Mutex<BTreeSet<&'static str>>>);

impl Stalls {
    pub fn stall(&self, operation: &'static str) {
        lock(&self.0).insert(operation);
    }

    pub fn heal(&self, operation: &'static str) {
        lock(&self.0).remove(operation);
    }

    async fn wait(&self, operation: &'static str) {
        if lock(&self.0).contains(operation) {
            std::future::pending::<()>().await;
        }
    }
}

/// A poisoned lock means another test thread panicked; its panic is the failure to report.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone, Debug, Default)]
pub struct FakeStore {
    records: Arc<Mutex<BTreeMap<(String, FileId), FileRecord>>>,
    pub journal: Journal,
    pub outages: Outages,
    pub stalls: Stalls,
}

impl FakeStore {
    fn key(owner: &OwnerId, id: FileId) -> (String, FileId) {
        (owner.as_str().to_owned(), id)
    }

    async fn call(&self, operation: &'static str) -> Result<(), AppError> {
        self.journal.record(operation.to_owned());
        self.stalls.wait(operation).await;
        self.outages.check(operation)
    }

    /// Puts a record as it is, whatever is there.
    pub fn insert(&self, record: FileRecord) {
        lock(&self.records).insert(Self::key(&record.owner, record.id), record);
    }

    /// The record as stored, read without going through the port.
    pub fn record(&self, owner: &OwnerId, id: FileId) -> Option<FileRecord> {
        lock(&self.records).get(&Self::key(owner, id)).cloned()
    }

    pub fn len(&self) -> usize {
        lock(&self.records).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn transition(
        &self,
        owner: &OwnerId,
        id: FileId,
        from: FileStatus,
        change: impl FnOnce(&mut FileRecord),
    ) -> Transition {
        let mut records = lock(&self.records);
        match records.get_mut(&Self::key(owner, id)) {
            Some(record) if record.status == from => {
                change(record);
                Transition::Applied
            }
            _ => Transition::Stale,
        }
    }
}

impl OwnershipStore for FakeStore {
    async fn reserve(&self, record: &FileRecord) -> Result<(), AppError> {
        self.call("store.reserve").await?;
        let mut records = lock(&self.records);
        let key = Self::key(&record.owner, record.id);
        if records.contains_key(&key) {
            return Err(AppError::Internal("reservation collision".into()));
        }
        records.insert(key, record.clone());
        Ok(())
    }

    async fn get(&self, owner: &OwnerId, id: FileId) -> Result<Option<FileRecord>, AppError> {
        self.call("store.get").await?;
        Ok(self.record(owner, id))
    }

    async fn get_many(&self, owner: &OwnerId, ids: &[FileId]) -> Result<Vec<FileRecord>, AppError> {
        self.journal.record(format!("store.get_many {}", ids.len()));
        self.stalls.wait("store.get_many").await;
        self.outages.check("store.get_many")?;
        let records = lock(&self.records);
        Ok(ids
            .iter()
            .filter_map(|id| records.get(&Self::key(owner, *id)).cloned())
            .collect())
    }

    async fn mark_available(
        &self,
        owner: &OwnerId,
        id: FileId,
        etag: &str,
        uploaded_at: OffsetDateTime,
    ) -> Result<Transition, AppError> {
        self.call("store.mark_available").await?;
        let transition = self.transition(owner, id, FileStatus::Pending, |record| {
            record.status = FileStatus::Available;
            record.etag = Some(etag.to_owned());
            record.uploaded_at = Some(uploaded_at);
            record.purge_at = None;
        });
        self.journal
            .record(format!("store.mark_available {transition:?}"));
        Ok(transition)
    }

    async fn mark_rejected(&self, owner: &OwnerId, id: FileId) -> Result<Transition, AppError> {
        self.call("store.mark_rejected").await?;
        let transition = self.transition(owner, id, FileStatus::Pending, |record| {
            record.status = FileStatus::Rejected;
        });
        self.journal
            .record(format!("store.mark_rejected {transition:?}"));
        Ok(transition)
    }

    async fn list(
        &self,
        owner: &OwnerId,
        limit: u32,
        after: Option<FileId>,
    ) -> Result<(Vec<FileRecord>, Option<FileId>), AppError> {
        self.call("store.list").await?;
        let records = lock(&self.records);
        let page: Vec<FileRecord> = records
            .values()
            .filter(|r| &r.owner == owner && after.is_none_or(|after| r.id > after))
            .take(limit as usize)
            .cloned()
            .collect();
        let next = (page.len() == limit as usize)
            .then(|| page.last().map(|r| r.id))
            .flatten();
        Ok((page, next))
    }

    async fn delete(&self, owner: &OwnerId, id: FileId) -> Result<(), AppError> {
        self.call("store.delete").await?;
        lock(&self.records).remove(&Self::key(owner, id));
        Ok(())
    }

    async fn delete_if_available(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> Result<Transition, AppError> {
        self.call("store.delete_if_available").await?;
        let mut records = lock(&self.records);
        let key = Self::key(owner, id);
        match records.get(&key) {
            Some(record) if record.status == FileStatus::Available => {
                records.remove(&key);
                Ok(Transition::Applied)
            }
            _ => Ok(Transition::Stale),
        }
    }
}

/// A bucket of object descriptions; it signs nothing real (`https://bucket.invalid/<key>?…`).
#[derive(Clone, Debug, Default)]
pub struct FakeBucket {
    objects: Arc<Mutex<BTreeMap<String, ObjectInfo>>>,
    /// Every key deleted, shared with whoever made the bucket.
    pub deleted: Arc<Mutex<Vec<String>>>,
    /// Where the reconciliation run continues (`ObjectListing`'s cursor).
    cursor: Arc<Mutex<Option<String>>>,
    pub journal: Journal,
    pub outages: Outages,
    pub stalls: Stalls,
}

/// The host of every URL the fake bucket signs.
pub const FAKE_BUCKET_URL: &str = "https://bucket.invalid/";

fn fake_url(method: &str, key: &str, validity: Validity) -> PresignedRequest {
    PresignedRequest {
        method: method.to_owned(),
        url: format!("{FAKE_BUCKET_URL}{key}?X-Amz-Signature=fake"),
        headers: Vec::new(),
        expires_at: OffsetDateTime::from(validity.start) + validity.lifetime,
    }
}

impl FakeBucket {
    /// Puts an object at `key`, as an upload would.
    pub fn put(&self, key: &ObjectKey, object: ObjectInfo) {
        lock(&self.objects).insert(key.as_str().to_owned(), object);
    }

    /// Removes the object at `key` without going through the port.
    pub fn delete_now(&self, key: &ObjectKey) {
        lock(&self.objects).remove(key.as_str());
    }

    pub fn contains(&self, key: &ObjectKey) -> bool {
        lock(&self.objects).contains_key(key.as_str())
    }

    async fn call(&self, operation: &'static str, key: &str) -> Result<(), AppError> {
        self.journal.record(format!("{operation} {key}"));
        self.stalls.wait(operation).await;
        self.outages.check(operation)
    }
}

impl UrlSigner for FakeBucket {
    async fn presign_upload(
        &self,
        target: UploadTarget<'_>,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        self.call("bucket.presign_upload", target.key.as_str())
            .await?;
        Ok(fake_url("PUT", target.key.as_str(), validity))
    }

    async fn presign_download(
        &self,
        target: DownloadTarget<'_>,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        self.call("bucket.presign_download", target.key.as_str())
            .await?;
        Ok(fake_url("GET", target.key.as_str(), validity))
    }
}

impl ObjectStorage for FakeBucket {
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, AppError> {
        self.call("bucket.head", key.as_str()).await?;
        let object = lock(&self.objects).get(key.as_str()).cloned();
        // S3 has answered; while the answer travels back, let another joined operation run.
        tokio::task::yield_now().await;
        Ok(object)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), AppError> {
        self.call("bucket.delete", key.as_str()).await?;
        lock(&self.objects).remove(key.as_str());
        lock(&self.deleted).push(key.as_str().to_owned());
        Ok(())
    }
}

/// Objects listed in key order, all modified at the epoch (the tests of the reconciliation pass
/// the "now" that makes them old or young), and the cursor kept beside them.
impl ObjectListing for FakeBucket {
    async fn list_managed(
        &self,
        start_after: Option<&str>,
        max: u32,
    ) -> Result<ObjectPage, AppError> {
        self.call("bucket.list_managed", start_after.unwrap_or_default())
            .await?;
        let objects = lock(&self.objects);
        let mut keys = objects.keys().filter(|key| {
            key.starts_with("users/") && start_after.is_none_or(|after| key.as_str() > after)
        });
        let page: Vec<ListedObject> = keys
            .by_ref()
            .take(max as usize)
            .map(|key| ListedObject {
                key: key.clone(),
                last_modified: OffsetDateTime::UNIX_EPOCH,
            })
            .collect();
        Ok(ObjectPage {
            objects: page,
            more: keys.next().is_some(),
        })
    }

    async fn read_cursor(&self) -> Result<Option<String>, AppError> {
        self.call("bucket.read_cursor", "").await?;
        Ok(lock(&self.cursor).clone())
    }

    async fn write_cursor(&self, after: Option<&str>) -> Result<(), AppError> {
        self.call("bucket.write_cursor", after.unwrap_or_default())
            .await?;
        *lock(&self.cursor) = after.map(str::to_owned);
        Ok(())
    }
}

/// A store and a bucket that write to one journal, so it shows the order of calls across both,
/// and share their outages and stalls, so a test names an operation without saying whose it is.
pub fn pair() -> (FakeStore, FakeBucket) {
    let journal = Journal::default();
    let outages = Outages::default();
    let stalls = Stalls::default();
    let store = FakeStore {
        journal: journal.clone(),
        outages: outages.clone(),
        stalls: stalls.clone(),
        ..FakeStore::default()
    };
    let bucket = FakeBucket {
        journal,
        outages,
        stalls,
        ..FakeBucket::default()
    };
    (store, bucket)
}

/// The application over a fresh `pair`, uploading text up to 1 KiB with URLs of 300 s (at most
/// 900 s), and handles on the store and the bucket it owns.
pub fn service_over_pair() -> (FileService<FakeStore, FakeBucket>, FakeStore, FakeBucket) {
    let (store, bucket) = pair();
    let files = FileService::new(
        store.clone(),
        bucket.clone(),
        UploadPolicy::new(["text/plain"], 1024).expect("a valid upload policy"),
        ExpiryPolicy::new(300, 900).expect("a valid expiry policy"),
    );
    (files, store, bucket)
}

/// A 3-byte object of `content_type`, as the seeded files have.
pub fn small_object(content_type: &str) -> ObjectInfo {
    ObjectInfo {
        size: 3,
        content_type: Some(content_type.to_owned()),
        sha256: None,
        etag: "\"e\"".into(),
    }
}

/// A record of `owner`'s file `id`: 3 bytes of `content_type`, in `status`, and its object.
pub fn seed(
    store: &FakeStore,
    bucket: &FakeBucket,
    owner: &str,
    id: FileId,
    content_type: &str,
    status: FileStatus,
) -> FileRecord {
    let owner = OwnerId::parse(owner).expect("a valid owner");
    let key = ObjectKey::for_file(&owner, id);
    bucket.put(&key, small_object(content_type));
    let record = FileRecord {
        owner,
        id,
        key,
        filename: "f.txt".into(),
        content_type: content_type.to_owned(),
        size: 3,
        sha256: None,
        status,
        created_at: OffsetDateTime::UNIX_EPOCH,
        purge_at: None,
        etag: None,
        uploaded_at: None,
    };
    store.insert(record.clone());
    record
}
