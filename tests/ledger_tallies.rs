//! The usage ledger keeps pending reservations as tallies by purge time (`domain::Ledger`), so
//! that every change of it costs the same whatever the owner's pending count (issue 21, point 1).
//! These run the DynamoDB adapter on the local stack, each function as its own role: the ledger
//! stays small, a reservation whose tally was dropped as lapsed is still released once, and a
//! ledger written before tallies (one entry per reservation) keeps counting until it is rewritten.

use presign_gate_test_support as support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use presign_gate::domain::{
    FileId, FileRecord, FileStatus, NewUpload, OwnerId, PURGE_GRID, QuotaLimits, RejectReason,
    purge_time,
};
use presign_gate::store::{OwnershipStore, Transition, attr};
use support::{Role, StandIns, TABLE};
use time::OffsetDateTime;

fn alice() -> OwnerId {
    OwnerId::parse("alice").unwrap()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

const LIMITS: QuotaLimits = QuotaLimits {
    max_pending_uploads: 1000,
    max_bytes: 1 << 40,
};

fn reservation(size: u64, created: OffsetDateTime, purge_at: OffsetDateTime) -> FileRecord {
    let upload = NewUpload {
        filename: "a.txt".into(),
        content_type: "text/plain".into(),
        size,
        sha256: None,
        parts: None,
    };
    FileRecord::pending(alice(), FileId::new_random(), upload, created, purge_at)
}

/// The names of the ledger item's attributes that start with `prefix`.
async fn ledger_attributes(standins: &StandIns, prefix: &str) -> Vec<String> {
    let item = standins
        .raw_item("alice", attr::USAGE_SORT_KEY)
        .await
        .unwrap_or_default();
    let mut names: Vec<String> = item
        .into_keys()
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Reservations made over two days (the longest one lives) with purge times on the grid, as the
/// service makes them: however many, the ledger holds one tally per grid step, no more.
#[tokio::test]
async fn the_ledger_holds_one_tally_per_grid_step_however_many_reservations_wait() {
    let standins = StandIns::start().await;
    let api = standins.store_as(Role::Api);
    let now = now();
    let reservations = 120u64;
    for n in 0..reservations {
        let lives = Duration::from_secs(n * 48 * 3600 / reservations);
        let record = reservation(1, now, purge_time(now + lives));
        api.reserve(&record, &LIMITS, now).await.unwrap();
    }
    let tallies = ledger_attributes(&standins, attr::TALLY_PREFIX).await;
    let most = (48 * 3600 / PURGE_GRID.as_secs() + 1) as usize;
    assert!(
        tallies.len() <= most,
        "{} tallies: {tallies:?}",
        tallies.len()
    );
    let usage = api.ledger(&alice()).await.unwrap().usage(now);
    assert_eq!(
        (usage.pending_uploads, usage.bytes),
        (reservations, reservations)
    );
}

/// A lapsed reservation whose tally a later reservation dropped is rejected or deleted all the
/// same, once, and nothing is taken from (or written back as) a tally it is no longer in.
#[tokio::test]
async fn a_reservation_whose_tally_was_dropped_is_released_without_it() {
    let standins = StandIns::start().await;
    let api = standins.store_as(Role::Api);
    let events = standins.store_as(Role::Events);
    let created = now() - Duration::from_secs(3 * 24 * 3600);
    let lapsed_at = now() - Duration::from_secs(1);
    let to_reject = reservation(3, created, lapsed_at);
    let to_delete = reservation(4, created, lapsed_at);
    for record in [&to_reject, &to_delete] {
        api.reserve(record, &LIMITS, created).await.unwrap();
    }
    let fresh = reservation(5, now(), now() + Duration::from_secs(3600));
    api.reserve(&fresh, &LIMITS, now()).await.unwrap();
    let only_fresh = vec![format!(
        "{}{}",
        attr::TALLY_PREFIX,
        fresh.purge_at.unwrap().unix_timestamp()
    )];
    assert_eq!(
        ledger_attributes(&standins, attr::TALLY_PREFIX).await,
        only_fresh,
        "the lapsed tally is dropped"
    );

    assert_eq!(
        events
            .mark_rejected(&to_reject, RejectReason::Mismatch)
            .await
            .unwrap(),
        Transition::Applied
    );
    assert_eq!(
        events
            .mark_rejected(&to_reject, RejectReason::Mismatch)
            .await
            .unwrap(),
        Transition::Stale
    );
    assert_eq!(api.delete(&to_delete).await.unwrap(), Transition::Applied);
    assert_eq!(api.delete(&to_delete).await.unwrap(), Transition::Stale);

    let rejected = api.get(&alice(), to_reject.id).await.unwrap().unwrap();
    assert_eq!(rejected.status, FileStatus::Rejected);
    assert_eq!(api.get(&alice(), to_delete.id).await.unwrap(), None);
    assert_eq!(
        ledger_attributes(&standins, attr::TALLY_PREFIX).await,
        only_fresh,
        "no tally written back for the lapsed ones"
    );
    let ledger = api.ledger(&alice()).await.unwrap();
    assert_eq!(ledger.reservations(), 1, "{ledger:?}");
    assert_eq!(ledger.usage(now()).bytes, 5);
}

/// A ledger item as the previous version wrote it: one `pending:<file id>` map (size, purge time)
/// per reservation.
fn legacy_ledger(available: u64, reservations: &[&FileRecord]) -> HashMap<String, AttributeValue> {
    let n = |value: i64| AttributeValue::N(value.to_string());
    let mut item = HashMap::from([
        (attr::OWNER.to_owned(), AttributeValue::S("alice".into())),
        (
            attr::FILE_ID.to_owned(),
            AttributeValue::S(attr::USAGE_SORT_KEY.into()),
        ),
        (attr::VERSION.to_owned(), n(7)),
        (attr::AVAILABLE_BYTES.to_owned(), n(available as i64)),
    ]);
    for record in reservations {
        let entry = HashMap::from([
            ("size".to_owned(), n(record.size as i64)),
            (
                "purgeAt".to_owned(),
                n(record.purge_at.unwrap().unix_timestamp()),
            ),
        ]);
        item.insert(
            format!("{}{}", attr::LEGACY_PENDING_PREFIX, record.id),
            AttributeValue::M(entry),
        );
    }
    item
}

/// An owner's ledger written before tallies keeps every guarantee across the upgrade: its
/// reservations count, each is confirmed or released once (its own entry leaves), a confirmation
/// is not charged twice for the entry it still has, and the next reservation writes tallies.
#[tokio::test]
async fn a_ledger_written_before_tallies_keeps_counting_until_rewritten() {
    let standins = StandIns::start().await;
    let api = standins.store_as(Role::Api);
    let events = standins.store_as(Role::Events);
    let now = now();
    let to_confirm = reservation(10, now, now + Duration::from_secs(7200));
    let to_delete = reservation(20, now, now + Duration::from_secs(3600));
    for record in [&to_confirm, &to_delete] {
        api.reserve(record, &LIMITS, now).await.unwrap();
    }
    standins
        .dynamodb_client()
        .put_item()
        .table_name(TABLE)
        .set_item(Some(legacy_ledger(100, &[&to_confirm, &to_delete])))
        .send()
        .await
        .unwrap();
    let usage = api.ledger(&alice()).await.unwrap().usage(now);
    assert_eq!((usage.pending_uploads, usage.bytes), (2, 130));

    // Exactly at the limit: its own entry is not counted against it a second time.
    let limits = QuotaLimits {
        max_bytes: 130,
        ..LIMITS
    };
    assert_eq!(
        events
            .mark_uploaded(&to_confirm, FileStatus::Available, "\"e\"", now, &limits)
            .await
            .unwrap(),
        Transition::Applied
    );
    assert_eq!(api.delete(&to_delete).await.unwrap(), Transition::Applied);
    assert!(
        ledger_attributes(&standins, attr::LEGACY_PENDING_PREFIX)
            .await
            .is_empty(),
        "each reservation's own entry left with it"
    );
    let ledger = api.ledger(&alice()).await.unwrap();
    assert_eq!((ledger.reservations(), ledger.available_bytes), (0, 110));

    let next = reservation(1, now, now + Duration::from_secs(3600));
    api.reserve(&next, &LIMITS, now).await.unwrap();
    assert_eq!(
        ledger_attributes(&standins, attr::TALLY_PREFIX).await.len(),
        1
    );
    let usage = api.ledger(&alice()).await.unwrap().usage(now);
    assert_eq!((usage.pending_uploads, usage.bytes), (1, 111));
}
