//! `make bench-capacity`: the DynamoDB capacity units each operation on a reservation costs, with
//! 1, 20 and 1,000 of the owner's reservations pending, and each sharing operation with 1 and 25
//! grants on the file (`sharing`), on the local stack (local-aws before
//! moto's DynamoDB, as the integration tests run it).
//!
//! moto reports no consumed capacity, so the units are computed from the sizes of the items each
//! operation reads and writes, read back from the table before and after it, with DynamoDB's
//! rules (Amazon DynamoDB Developer Guide):
//! - "Item sizes and formats": an item is the sum of its attribute names and values; a string is
//!   its UTF-8 length, a number about one byte per two significant digits plus one, a map or list
//!   3 bytes plus one byte per element plus its elements.
//! - "DynamoDB read and write operations": a strongly consistent read costs one unit per 4 KB; a
//!   write one unit per 1 KB of the larger of the item before and after it (PutItem,
//!   UpdateItem, DeleteItem); a transactional write twice that, for each item in it.
//!
//! The pending reservations' purge times are spread over two days, the longest a reservation
//! lives, so that the ledger holds as many tallies as it ever can (its worst case). Only the
//! store's ports and the raw items are used (the ledger's part was also run, unchanged, on the
//! commit before the tallied ledger for BENCHMARKS.md's before figures).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use presign_gate::domain::{
    FileId, FileRecord, FileStatus, Grant, NewUpload, OwnerId, QuotaLimits, RejectReason,
};
use presign_gate::store::{GrantStore, OwnershipStore, SHARED_PREFIX, attr};
use presign_gate_test_support::{Role, StandIns};
use time::OffsetDateTime;

type Item = HashMap<String, AttributeValue>;

const PENDING: [usize; 3] = [1, 20, 1000];
const LIMITS: QuotaLimits = QuotaLimits {
    max_pending_uploads: 1000,
    max_bytes: 1 << 50,
};
/// The grid the service rounds purge times up to (`domain::PURGE_GRID` where it exists).
const GRID_SECS: i64 = 4 * 3600;

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => {
            let digits = n.trim_start_matches('-').replace('.', "");
            let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
            significant.max(1).div_ceil(2) + 1
        }
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(name, value)| name.len() + value_size(value) + 1)
                .sum::<usize>()
        }
        AttributeValue::L(list) => 3 + list.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        other => panic!("no size rule here for {other:?}"),
    }
}

fn item_size(item: Option<&Item>) -> usize {
    item.map_or(0, |item| {
        item.iter()
            .map(|(name, value)| name.len() + value_size(value))
            .sum()
    })
}

fn write_units(before: Option<&Item>, after: Option<&Item>) -> usize {
    item_size(before)
        .max(item_size(after))
        .div_ceil(1024)
        .max(1)
}

fn read_units(item: Option<&Item>) -> usize {
    item_size(item).div_ceil(4096).max(1)
}

struct Table<'a> {
    standins: &'a StandIns,
}

impl Table<'_> {
    async fn raw(&self, owner: &OwnerId, sort_key: &str) -> Option<Item> {
        self.standins.raw_item(owner.as_str(), sort_key).await
    }

    async fn ledger(&self, owner: &OwnerId) -> Option<Item> {
        self.raw(owner, attr::USAGE_SORT_KEY).await
    }

    async fn record(&self, record: &FileRecord) -> Option<Item> {
        self.raw(&record.owner, &record.id.to_string()).await
    }
}

fn reservation(owner: &OwnerId, now: OffsetDateTime, lives: Duration) -> FileRecord {
    let upload = NewUpload {
        filename: "holiday photo.png".into(),
        content_type: "image/png".into(),
        size: 3_456_789,
        sha256: None,
        parts: None,
    };
    let purge = (now + lives).unix_timestamp();
    let purge = purge.div_euclid(GRID_SECS) * GRID_SECS + GRID_SECS;
    let purge_at = OffsetDateTime::from_unix_timestamp(purge).expect("a purge time");
    FileRecord::pending(owner.clone(), FileId::new_random(), upload, now, purge_at)
}

/// One row: the operation, the ledger's size after it, and its read and write units.
struct Row {
    operation: &'static str,
    ledger_bytes: usize,
    reads: usize,
    writes: usize,
}

async fn measure(standins: &StandIns, pending: usize) -> Vec<Row> {
    let table = Table { standins };
    let api = standins.store_as(Role::Api);
    let events = standins.store_as(Role::Events);
    let owner = OwnerId::parse(&format!("owner-{pending}")).expect("an owner");
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("now");
    let two_days = 48 * 3600 / pending.max(1) as u64;
    for n in 0..pending.saturating_sub(1) {
        let lives = Duration::from_secs(3600 + n as u64 * two_days);
        let record = reservation(&owner, now, lives);
        api.reserve(&record, &LIMITS, now).await.expect("reserve");
    }
    let mut rows = Vec::new();
    // Each operation: the ledger and the record before and after, and the units they cost.
    let subject = reservation(&owner, now, Duration::from_secs(25 * 3600));
    let ledger_before = table.ledger(&owner).await;
    api.reserve(&subject, &LIMITS, now).await.expect("reserve");
    let ledger_after = table.ledger(&owner).await;
    let record_after = table.record(&subject).await;
    rows.push(Row {
        operation: "reserve (consistent GetItem of the ledger, then a transaction: Put record, Put ledger)",
        ledger_bytes: item_size(ledger_after.as_ref()),
        reads: read_units(ledger_before.as_ref()),
        writes: 2 * (write_units(None, record_after.as_ref())
            + write_units(ledger_before.as_ref(), ledger_after.as_ref())),
    });

    let confirmed = table.record(&subject).await;
    let ledger_before = ledger_after;
    let transition = events
        .mark_uploaded(&subject, FileStatus::Available, "\"etag\"", now, &LIMITS)
        .await
        .expect("confirm");
    assert_eq!(format!("{transition:?}"), "Applied");
    let ledger_after = table.ledger(&owner).await;
    let record_after = table.record(&subject).await;
    rows.push(Row {
        operation: "confirm (a transaction: Update record, Update ledger)",
        ledger_bytes: item_size(ledger_after.as_ref()),
        reads: 0,
        writes: 2
            * (write_units(confirmed.as_ref(), record_after.as_ref())
                + write_units(ledger_before.as_ref(), ledger_after.as_ref())),
    });

    let mut available = subject.clone();
    available.status = presign_gate::domain::FileStatus::Available;
    available.purge_at = None;
    rows.push(
        release(
            &table,
            &owner,
            "delete an available file (a transaction: Delete record, Update ledger)",
            &available,
            || api.delete(&available),
        )
        .await,
    );

    let rejected = reservation(&owner, now, Duration::from_secs(25 * 3600));
    api.reserve(&rejected, &LIMITS, now).await.expect("reserve");
    rows.push(
        release(
            &table,
            &owner,
            "reject (a transaction: Update record, Update ledger)",
            &rejected,
            || events.mark_rejected(&rejected, RejectReason::Mismatch),
        )
        .await,
    );

    let deleted = reservation(&owner, now, Duration::from_secs(25 * 3600));
    api.reserve(&deleted, &LIMITS, now).await.expect("reserve");
    rows.push(
        release(
            &table,
            &owner,
            "delete a pending reservation (a transaction: Delete record, Update ledger)",
            &deleted,
            || api.delete(&deleted),
        )
        .await,
    );
    rows
}

/// The units of `change`, a transaction of `record`'s change and the ledger's.
async fn release<F, T>(
    table: &Table<'_>,
    owner: &OwnerId,
    operation: &'static str,
    record: &FileRecord,
    change: impl FnOnce() -> F,
) -> Row
where
    F: std::future::Future<Output = Result<T, presign_gate::error::AppError>>,
    T: std::fmt::Debug,
{
    let ledger_before = table.ledger(owner).await;
    let record_before = table.record(record).await;
    let outcome = change().await.expect(operation);
    assert_eq!(format!("{outcome:?}"), "Applied", "{operation}");
    let ledger_after = table.ledger(owner).await;
    let record_after = table.record(record).await;
    Row {
        operation,
        ledger_bytes: item_size(ledger_after.as_ref()),
        reads: 0,
        writes: 2
            * (write_units(record_before.as_ref(), record_after.as_ref())
                + write_units(ledger_before.as_ref(), ledger_after.as_ref())),
    }
}

/// A sub as long as Cognito's.
fn sub(n: usize) -> OwnerId {
    OwnerId::parse(&format!("{n:08}-1b3f-4e5a-9c7d-0f1e2d3c4b5a")).expect("a sub")
}

/// The sharing operations on an available file of `owner`'s that has `grants` grants (the
/// last one made by the operation measured), one row each: the record's item, then the entries.
async fn sharing(standins: &StandIns, grants: usize) -> Vec<Row> {
    let table = Table { standins };
    let api = standins.store_as(Role::Api);
    let owner = OwnerId::parse(&format!("sharer-{grants}")).expect("an owner");
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("now");
    let mut record = reservation(&owner, now, Duration::from_secs(3600));
    api.reserve(&record, &LIMITS, now).await.expect("reserve");
    api.mark_uploaded(&record, FileStatus::Available, "\"etag\"", now, &LIMITS)
        .await
        .expect("confirm");
    record.status = FileStatus::Available;
    record.purge_at = None;
    let grant = |n: usize| Grant {
        grantee: sub(n),
        granted_at: now,
        expires_at: Some(now + time::Duration::days(7)),
    };
    let mut written = Vec::new();
    for n in 0..grants - 1 {
        let (_, read) = api
            .get_with_grants(&owner, record.id)
            .await
            .expect("read")
            .expect("record");
        written.push(grant(n));
        api.write_grants(&record, &read, &written)
            .await
            .expect("grant");
    }
    // Every grant here is made at `now`: the entries' keys differ by partition only.
    let entry_key = format!(
        "{SHARED_PREFIX}{:012}#{}#{}",
        now.unix_timestamp(),
        record.id,
        owner.as_str()
    );
    let last = sub(grants - 1);
    let mut rows = Vec::new();

    let before = table.record(&record).await;
    let (_, read) = api
        .get_with_grants(&owner, record.id)
        .await
        .expect("read")
        .expect("record");
    written.push(grant(grants - 1));
    api.write_grants(&record, &read, &written)
        .await
        .expect("grant");
    let after = table.record(&record).await;
    let entry = table.raw(&last, &entry_key).await;
    assert!(entry.is_some(), "the grantee's entry");
    rows.push(Row {
        operation: "grant (consistent GetItem of the record; a transaction: Update record, Put entry)",
        ledger_bytes: item_size(after.as_ref()),
        reads: read_units(before.as_ref()),
        writes: 2 * (write_units(before.as_ref(), after.as_ref()) + write_units(None, entry.as_ref())),
    });
    rows.push(Row {
        operation: "list grants, or a shared download URL (consistent GetItem of the record)",
        ledger_bytes: item_size(after.as_ref()),
        reads: read_units(after.as_ref()),
        writes: 0,
    });
    rows.push(Row {
        operation: "GET /shared, a page of one entry (consistent Query)",
        ledger_bytes: item_size(entry.as_ref()),
        reads: read_units(entry.as_ref()),
        writes: 0,
    });

    let before = after;
    let (_, read) = api
        .get_with_grants(&owner, record.id)
        .await
        .expect("read")
        .expect("record");
    written.pop();
    api.write_grants(&record, &read, &written)
        .await
        .expect("revoke");
    let after = table.record(&record).await;
    rows.push(Row {
        operation: "revoke (consistent GetItem of the record; a transaction: Update record, Delete entry)",
        ledger_bytes: item_size(after.as_ref()),
        reads: read_units(before.as_ref()),
        writes: 2 * (write_units(before.as_ref(), after.as_ref()) + write_units(entry.as_ref(), None)),
    });

    // Deleting the shared file: a first transaction refused (its record is shared), a read, and
    // the transaction with every entry. A refused transaction is charged as if it wrote.
    let ledger_before = table.ledger(&owner).await;
    let before = after;
    let entries = written.len();
    let outcome = api.delete(&record).await.expect("delete");
    assert_eq!(format!("{outcome:?}"), "Applied");
    let ledger_after = table.ledger(&owner).await;
    let ledger_units = write_units(ledger_before.as_ref(), ledger_after.as_ref());
    let record_units = write_units(before.as_ref(), None);
    rows.push(Row {
        operation: "delete a shared file (refused transaction, consistent GetItem, transaction: Delete record, Update ledger, Delete each entry)",
        ledger_bytes: item_size(before.as_ref()),
        reads: read_units(before.as_ref()),
        writes: 2 * (record_units + ledger_units)
            + 2 * (record_units + ledger_units + entries * write_units(entry.as_ref(), None)),
    });
    rows
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let standins = StandIns::start().await;
    println!("| pending | operation | ledger item after (bytes) | read units | write units |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    for pending in PENDING {
        for row in measure(&standins, pending).await {
            println!(
                "| {pending} | {} | {} | {} | {} |",
                row.operation, row.ledger_bytes, row.reads, row.writes
            );
        }
    }
    println!(
        "\nA lapsed reservation costs nothing when it lapses: no write happens at its purge time."
    );
    println!("\n| grants | operation | item read or written (bytes) | read units | write units |");
    println!("| ---: | --- | ---: | ---: | ---: |");
    for grants in [1, 25] {
        for row in sharing(&standins, grants).await {
            println!(
                "| {grants} | {} | {} | {} | {} |",
                row.operation, row.ledger_bytes, row.reads, row.writes
            );
        }
    }
}
