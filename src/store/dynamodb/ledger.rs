//! The owner's usage ledger item: its key, its pending entries, and its mapping to and from
//! the domain's `Ledger`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::item::{Item, attr, n, s};
use crate::domain::{FileId, Ledger, OwnerId, PendingEntry};
use crate::error::AppError;

pub(super) fn ledger_key(owner: &OwnerId) -> Item {
    HashMap::from([
        (attr::OWNER.to_owned(), s(owner.as_str())),
        (attr::FILE_ID.to_owned(), s(attr::USAGE_SORT_KEY)),
    ])
}

pub(super) fn pending_attribute(id: FileId) -> String {
    format!("{}{id}", attr::PENDING_PREFIX)
}

const ENTRY_SIZE: &str = "size";
pub(super) const ENTRY_PURGE_AT: &str = "purgeAt";

/// The whole ledger item, as a reservation writes it.
pub(super) fn ledger_to_item(owner: &OwnerId, ledger: &Ledger, version: u64) -> Item {
    let mut item = ledger_key(owner);
    item.insert(attr::VERSION.to_owned(), n(version));
    item.insert(attr::AVAILABLE_BYTES.to_owned(), n(ledger.available_bytes));
    for (id, entry) in &ledger.pending {
        let entry = HashMap::from([
            (ENTRY_SIZE.to_owned(), n(entry.size)),
            (
                ENTRY_PURGE_AT.to_owned(),
                n(entry.purge_at.unix_timestamp()),
            ),
        ]);
        item.insert(pending_attribute(*id), AttributeValue::M(entry));
    }
    item
}

/// The ledger and its version. Available bytes below zero (files confirmed before quotas
/// existed, then deleted) count as zero.
pub(super) fn ledger_from_item(item: &Item) -> Result<(Ledger, u64), AppError> {
    let corrupt = |what: &str| AppError::Internal(format!("corrupt usage ledger: {what}").into());
    let number = |value: Option<&AttributeValue>| -> Option<i128> {
        value
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
    };
    let version = match item.get(attr::VERSION) {
        None => 0,
        Some(v) => number(Some(v))
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| corrupt(attr::VERSION))?,
    };
    let available_bytes = match item.get(attr::AVAILABLE_BYTES) {
        None => 0,
        Some(v) => number(Some(v))
            .map(|bytes| u64::try_from(bytes.max(0)).unwrap_or(u64::MAX))
            .ok_or_else(|| corrupt(attr::AVAILABLE_BYTES))?,
    };
    let mut pending = std::collections::BTreeMap::new();
    for (name, value) in item {
        let Some(id) = name.strip_prefix(attr::PENDING_PREFIX) else {
            continue;
        };
        let id = FileId::parse(id).ok_or_else(|| corrupt(name))?;
        let entry = value.as_m().map_err(|_| corrupt(name))?;
        let size = number(entry.get(ENTRY_SIZE)).and_then(|v| u64::try_from(v).ok());
        let purge_at = number(entry.get(ENTRY_PURGE_AT))
            .and_then(|v| i64::try_from(v).ok())
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok());
        let (Some(size), Some(purge_at)) = (size, purge_at) else {
            return Err(corrupt(name));
        };
        pending.insert(id, PendingEntry { size, purge_at });
    }
    Ok((
        Ledger {
            available_bytes,
            pending,
        },
        version,
    ))
}
