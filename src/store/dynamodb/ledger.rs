//! The owner's usage ledger item: its key, its tallies, and its mapping to and from the domain's
//! `Ledger`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::item::{Item, attr, n, s};
use crate::domain::{FileId, Ledger, OwnerId, PendingTally};
use crate::error::AppError;

pub(super) fn ledger_key(owner: &OwnerId) -> Item {
    HashMap::from([
        (attr::OWNER.to_owned(), s(owner.as_str())),
        (attr::FILE_ID.to_owned(), s(attr::USAGE_SORT_KEY)),
    ])
}

/// The attribute of the tally of reservations purged at `purge_at`.
pub(super) fn tally_attribute(purge_at: OffsetDateTime) -> String {
    format!("{}{}", attr::TALLY_PREFIX, purge_at.unix_timestamp())
}

/// The attribute a ledger written before tallies kept reservation `id` in.
pub(super) fn legacy_pending_attribute(id: FileId) -> String {
    format!("{}{id}", attr::LEGACY_PENDING_PREFIX)
}

pub(super) const TALLY_COUNT: &str = "count";
pub(super) const TALLY_BYTES: &str = "bytes";
const LEGACY_SIZE: &str = "size";
const LEGACY_PURGE_AT: &str = "purgeAt";

/// The whole ledger item, as a reservation writes it.
pub(super) fn ledger_to_item(owner: &OwnerId, ledger: &Ledger, version: u64) -> Item {
    let mut item = ledger_key(owner);
    item.insert(attr::VERSION.to_owned(), n(version));
    item.insert(attr::AVAILABLE_BYTES.to_owned(), n(ledger.available_bytes));
    for (purge_at, tally) in &ledger.pending {
        let tally = HashMap::from([
            (TALLY_COUNT.to_owned(), n(tally.count)),
            (TALLY_BYTES.to_owned(), n(tally.bytes)),
        ]);
        item.insert(tally_attribute(*purge_at), AttributeValue::M(tally));
    }
    item
}

/// The ledger and its version. Numbers below zero (available bytes of files confirmed before
/// quotas existed, then deleted) count as zero.
pub(super) fn ledger_from_item(item: &Item) -> Result<(Ledger, u64), AppError> {
    let corrupt = |what: &str| AppError::Internal(format!("corrupt usage ledger: {what}").into());
    let number = |value: Option<&AttributeValue>| -> Option<i128> {
        value
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
    };
    let count = |value: Option<&AttributeValue>| {
        number(value).map(|v| u64::try_from(v.max(0)).unwrap_or(u64::MAX))
    };
    let time = |value: Option<i128>| {
        value
            .and_then(|v| i64::try_from(v).ok())
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
    };
    let version = match item.get(attr::VERSION) {
        None => 0,
        Some(v) => count(Some(v)).ok_or_else(|| corrupt(attr::VERSION))?,
    };
    let available_bytes = match item.get(attr::AVAILABLE_BYTES) {
        None => 0,
        Some(v) => count(Some(v)).ok_or_else(|| corrupt(attr::AVAILABLE_BYTES))?,
    };
    let mut pending: BTreeMap<OffsetDateTime, PendingTally> = BTreeMap::new();
    for (name, value) in item {
        let (purge_at, count, bytes) = if let Some(at) = name.strip_prefix(attr::TALLY_PREFIX) {
            let tally = value.as_m().map_err(|_| corrupt(name))?;
            (
                time(at.parse().ok()),
                count(tally.get(TALLY_COUNT)),
                count(tally.get(TALLY_BYTES)),
            )
        } else if let Some(id) = name.strip_prefix(attr::LEGACY_PENDING_PREFIX) {
            FileId::parse(id).ok_or_else(|| corrupt(name))?;
            let entry = value.as_m().map_err(|_| corrupt(name))?;
            (
                time(number(entry.get(LEGACY_PURGE_AT))),
                Some(1),
                count(entry.get(LEGACY_SIZE)),
            )
        } else {
            continue;
        };
        let (Some(purge_at), Some(count), Some(bytes)) = (purge_at, count, bytes) else {
            return Err(corrupt(name));
        };
        let tally = pending.entry(purge_at).or_default();
        tally.count = tally.count.saturating_add(count);
        tally.bytes = tally.bytes.saturating_add(bytes);
    }
    Ok((
        Ledger {
            available_bytes,
            pending,
        },
        version,
    ))
}
