//! In-memory fakes of the two ports, for tests that need the application's logic but not real
//! SigV4 or DynamoDB semantics: the fuzz harnesses, the fast tests of `service.rs`, and the
//! validation rows of the API. No network, so they run in microseconds.
//!
//! Each fake is a handle: its clones share its state, so a test keeps one while the service owns
//! another. Both write to a `Journal` of what was called (one journal for both, in call order,
//! when made by `pair`), can be told to fail an operation as a backend outage would or to stall
//! it as a backend that never answers would, and
//! `FakeBucket::head` and `FakeBucket::delete` yield once after acting, so two operations joined
//! on one task both see the object before either acts on it, as two real ones racing would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use presign_gate::bucket::ObjectInfo;
use presign_gate::domain::{
    ExpiryPolicy, FileId, FileRecord, FileSharing, FileStatus, Ledger, ObjectKey, OwnerId,
    QuotaLimits, RejectReason, UploadPolicy,
};
use presign_gate::error::AppError;
use presign_gate::service::FileService;
use presign_gate::store::{OwnershipStore, ReconcileCursor, Transition};
use time::OffsetDateTime;

mod bucket;
mod grants;
mod links;
mod listing;

pub use bucket::{FAKE_BUCKET_URL, FakeBucket, FakeUpload, PreconditionFailed, Version};

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

/// Something a test runs once at a chosen point of an operation, as another client acting at
/// that moment would.
#[derive(Clone, Default)]
pub struct Hook(Arc<Mutex<Option<Action>>>);

type Action = Box<dyn FnOnce() + Send>;

impl Hook {
    pub fn set(&self, action: impl FnOnce() + Send + 'static) {
        *lock(&self.0) = Some(Box::new(action));
    }

    fn run(&self) {
        let action = lock(&self.0).take();
        if let Some(action) = action {
            action();
        }
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// The records and every owner's ledger, behind one lock: each operation on them is atomic, as
/// a DynamoDB transaction is.
#[derive(Debug, Default)]
struct Table {
    records: BTreeMap<(String, FileId), FileRecord>,
    ledgers: BTreeMap<String, Ledger>,
    /// Each shared record's grants and links, by the record's key; they go with it (see
    /// `delete`).
    grants: BTreeMap<(String, FileId), FileSharing>,
    /// Share links' own items, and every owner's link tallies (see `links`).
    links: links::LinkTable,
}

impl Table {
    /// The ledger's share of a record's change, as the DynamoDB adapter applies it: a pending
    /// reservation leaves its tally if that is still there (`counted`), and `bytes` are added to
    /// (or taken from) the available ones.
    fn release(&mut self, record: &FileRecord, counted: bool, bytes: i128) {
        let ledger = self
            .ledgers
            .entry(record.owner.as_str().to_owned())
            .or_default();
        if let (FileStatus::Pending, Some(purge_at), true) =
            (record.status, record.purge_at, counted)
        {
            ledger.release(purge_at, record.size);
        }
        let available = i128::from(ledger.available_bytes) + bytes;
        ledger.available_bytes = u64::try_from(available.max(0)).unwrap_or(u64::MAX);
    }
}

#[derive(Clone, Debug, Default)]
pub struct FakeStore {
    table: Arc<Mutex<Table>>,
    /// Where the reconciliation run continues (`ReconcileCursor`).
    cursor: Arc<Mutex<Option<String>>>,
    pub journal: Journal,
    pub outages: Outages,
    pub stalls: Stalls,
    /// Runs once when `delete` is called, before the record goes.
    pub before_delete: Hook,
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

    /// Puts a record as it is, whatever is there, and leaves the ledgers alone.
    pub fn insert(&self, record: FileRecord) {
        lock(&self.table)
            .records
            .insert(Self::key(&record.owner, record.id), record);
    }

    /// The record as stored, read without going through the port.
    pub fn record(&self, owner: &OwnerId, id: FileId) -> Option<FileRecord> {
        lock(&self.table)
            .records
            .get(&Self::key(owner, id))
            .cloned()
    }

    /// `owner`'s records as stored, read without going through the port.
    pub fn records_of(&self, owner: &OwnerId) -> Vec<FileRecord> {
        lock(&self.table)
            .records
            .values()
            .filter(|record| &record.owner == owner)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.table).records.len()
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
        counted: bool,
        release_bytes: impl FnOnce(&FileRecord) -> i128,
    ) -> Transition {
        let mut table = lock(&self.table);
        match table.records.get_mut(&Self::key(owner, id)) {
            Some(record) if record.status == from => {
                let before = record.clone();
                change(record);
                table.release(&before, counted, release_bytes(&before));
                Transition::Applied
            }
            _ => Transition::Stale,
        }
    }
}

impl ReconcileCursor for FakeStore {
    async fn read_cursor(&self) -> Result<Option<String>, AppError> {
        self.call("store.read_cursor").await?;
        Ok(lock(&self.cursor).clone())
    }

    async fn write_cursor(&self, after: Option<&str>) -> Result<(), AppError> {
        self.call("store.write_cursor").await?;
        *lock(&self.cursor) = after.map(str::to_owned);
        Ok(())
    }
}

impl OwnershipStore for FakeStore {
    async fn reserve(
        &self,
        record: &FileRecord,
        limits: &QuotaLimits,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        self.call("store.reserve").await?;
        let mut table = lock(&self.table);
        let key = Self::key(&record.owner, record.id);
        if table.records.contains_key(&key) {
            return Err(AppError::Internal("reservation collision".into()));
        }
        let owner = record.owner.as_str().to_owned();
        let admitted = table
            .ledgers
            .get(&owner)
            .cloned()
            .unwrap_or_default()
            .admit(record, now, limits)?;
        table.ledgers.insert(owner, admitted);
        table.records.insert(key, record.clone());
        Ok(())
    }

    async fn ledger(&self, owner: &OwnerId) -> Result<Ledger, AppError> {
        self.call("store.ledger").await?;
        Ok(lock(&self.table)
            .ledgers
            .get(owner.as_str())
            .cloned()
            .unwrap_or_default())
    }

    async fn get(&self, owner: &OwnerId, id: FileId) -> Result<Option<FileRecord>, AppError> {
        self.call("store.get").await?;
        Ok(self.record(owner, id))
    }

    async fn get_many(&self, owner: &OwnerId, ids: &[FileId]) -> Result<Vec<FileRecord>, AppError> {
        self.journal.record(format!("store.get_many {}", ids.len()));
        self.stalls.wait("store.get_many").await;
        self.outages.check("store.get_many")?;
        let table = lock(&self.table);
        Ok(ids
            .iter()
            .filter_map(|id| table.records.get(&Self::key(owner, *id)).cloned())
            .collect())
    }

    /// As the DynamoDB adapter: conditional on the reservation's entry still counting at
    /// `uploaded_at`; a lapsed one is re-admitted under `limits` or refused (`Ledger::readmit`).
    async fn mark_uploaded(
        &self,
        record: &FileRecord,
        status: FileStatus,
        etag: &str,
        uploaded_at: OffsetDateTime,
        limits: &QuotaLimits,
    ) -> Result<Transition, AppError> {
        self.call("store.mark_uploaded").await?;
        let counted = {
            let table = lock(&self.table);
            let pending = table
                .records
                .get(&Self::key(&record.owner, record.id))
                .is_some_and(|stored| stored.status == FileStatus::Pending);
            let owner = record.owner.as_str().to_owned();
            let ledger = table.ledgers.get(&owner).cloned().unwrap_or_default();
            let counted = record
                .purge_at
                .is_some_and(|purge_at| ledger.counts(purge_at, uploaded_at));
            if pending && !counted {
                let purge_at = record.purge_at.unwrap_or(uploaded_at);
                ledger.readmit(purge_at, record.size, uploaded_at, limits)?;
            }
            // A lapsed reservation stays in its tally, which counts for nothing.
            counted
        };
        let transition = self.transition(
            &record.owner,
            record.id,
            FileStatus::Pending,
            |record| {
                record.status = status;
                record.etag = Some(etag.to_owned());
                record.uploaded_at = Some(uploaded_at);
                record.purge_at = None;
            },
            counted,
            |record| i128::from(record.size),
        );
        self.journal
            .record(format!("store.mark_uploaded {transition:?}"));
        Ok(transition)
    }

    async fn mark_scanned(&self, record: &FileRecord) -> Result<Transition, AppError> {
        self.call("store.mark_scanned").await?;
        let transition = self.transition(
            &record.owner,
            record.id,
            FileStatus::Scanning,
            |record| record.status = FileStatus::Available,
            false,
            |_| 0,
        );
        self.journal
            .record(format!("store.mark_scanned {transition:?}"));
        Ok(transition)
    }

    /// A pending reservation leaves its tally; a scanning file's bytes leave the ledger.
    async fn mark_rejected(
        &self,
        record: &FileRecord,
        reason: RejectReason,
    ) -> Result<Transition, AppError> {
        self.call("store.mark_rejected").await?;
        let transition = match record.status {
            FileStatus::Pending | FileStatus::Scanning => self.transition(
                &record.owner,
                record.id,
                record.status,
                |record| {
                    record.status = FileStatus::Rejected;
                    record.rejected_for = Some(reason);
                },
                true,
                |record| match record.status {
                    FileStatus::Scanning => -i128::from(record.size),
                    _ => 0,
                },
            ),
            FileStatus::Available | FileStatus::Rejected => Transition::Stale,
        };
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
        let table = lock(&self.table);
        let page: Vec<FileRecord> = table
            .records
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

    async fn delete(&self, record: &FileRecord) -> Result<Transition, AppError> {
        self.call("store.delete").await?;
        self.before_delete.run();
        let mut table = lock(&self.table);
        let key = Self::key(&record.owner, record.id);
        let transition = match table.records.remove(&key) {
            Some(stored) if stored.status == record.status => {
                if let Some(sharing) = table.grants.remove(&key) {
                    table.links.remove_all(&stored.owner, &sharing.links);
                }
                match stored.status {
                    FileStatus::Pending => table.release(&stored, true, 0),
                    FileStatus::Available | FileStatus::Scanning => {
                        table.release(&stored, false, -i128::from(stored.size))
                    }
                    FileStatus::Rejected => {}
                }
                Transition::Applied
            }
            Some(stored) => {
                table.records.insert(key, stored);
                Transition::Stale
            }
            None => Transition::Stale,
        };
        self.journal.record(format!("store.delete {transition:?}"));
        Ok(transition)
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
        version_id: None,
        unsigned_headers: Vec::new(),
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
        rejected_for: None,
        multipart: None,
        idempotency_key: None,
    };
    store.insert(record.clone());
    record
}
