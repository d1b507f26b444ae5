//! How each operation changes an owner's usage ledger: the ledger's share of a record's change,
//! a release whose tally may be gone, a late confirmation re-admitted on the version read, and a
//! reservation's whole new ledger. The item's layout is in `ledger`.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use time::OffsetDateTime;

use super::DynamoDbOwnershipStore;
use super::item::{attr, build_error, n};
use super::ledger::{
    TALLY_BYTES, TALLY_COUNT, ledger_from_item, ledger_key, ledger_to_item,
    legacy_pending_attribute, tally_attribute,
};
use super::transaction::{Outcome, TRANSACTION_ATTEMPTS, TRANSACTION_BACKOFF, retry_waits};
use crate::domain::{FileRecord, FileStatus, Ledger, OwnerId, QuotaLimits};
use crate::error::AppError;
use crate::store::{OwnershipStore, Transition};

/// How a record's change moves the ledger.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum LedgerChange {
    /// pending -> available while its tally counts: the reservation leaves its tally, and its
    /// bytes count as available from now on.
    Confirmed,
    /// pending -> available after the reservation lapsed, its bytes checked against the quota on
    /// the ledger at `version` (`None`: no ledger item yet), and written only over that version.
    Readmitted { version: Option<u64> },
    /// A pending reservation rejected or deleted: it leaves its tally.
    ReservationReleased,
    /// A pending reservation rejected or deleted after its tally was dropped as lapsed.
    ReservationLapsed,
    /// An available file deleted.
    FileRemoved,
}

impl DynamoDbOwnershipStore {
    /// The ledger's share of a record's change, as `change` says. The record's own condition, in
    /// the same transaction, is what makes it happen once. Taking a reservation out of its tally
    /// is conditional on the tally still being there: one dropped as lapsed holds nothing of it
    /// any more (see `release`).
    ///
    /// A tally's numbers are nested in its map, so they change by SET arithmetic: UpdateItem's
    /// ADD works on top-level attributes only (Amazon DynamoDB Developer Guide, "Using update
    /// expressions in DynamoDB", ADD: "only use ADD on top-level attributes").
    pub(super) fn ledger_update(
        &self,
        record: &FileRecord,
        change: LedgerChange,
    ) -> Result<TransactWriteItem, AppError> {
        let size = i128::from(record.size);
        let mut sets = Vec::new();
        let mut adds = vec!["#version :one"];
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(ledger_key(&record.owner)))
            .expression_attribute_names("#version", attr::VERSION)
            .expression_attribute_values(":one", n(1));
        let bytes = match change {
            LedgerChange::Confirmed | LedgerChange::Readmitted { .. } => Some(size),
            LedgerChange::FileRemoved => Some(-size),
            LedgerChange::ReservationReleased | LedgerChange::ReservationLapsed => None,
        };
        if let Some(bytes) = bytes {
            adds.push("#available :bytes");
            update = update
                .expression_attribute_names("#available", attr::AVAILABLE_BYTES)
                .expression_attribute_values(":bytes", AttributeValue::N(bytes.to_string()));
        }
        if matches!(
            change,
            LedgerChange::Confirmed | LedgerChange::ReservationReleased
        ) {
            let purge_at = record.purge_at.ok_or_else(|| {
                AppError::Internal("a pending record without a purge time".into())
            })?;
            sets.push("#tally.#count = #tally.#count - :one");
            sets.push("#tally.#size = #tally.#size - :size");
            update = update
                .condition_expression("attribute_exists(#tally)")
                .expression_attribute_names("#tally", tally_attribute(purge_at))
                .expression_attribute_names("#count", TALLY_COUNT)
                .expression_attribute_names("#size", TALLY_BYTES)
                .expression_attribute_values(":size", n(record.size));
        }
        if let LedgerChange::Readmitted { version } = change {
            update = match version {
                Some(version) => update
                    .condition_expression("#version = :version")
                    .expression_attribute_values(":version", n(version)),
                None => update
                    .condition_expression("attribute_not_exists(#owner)")
                    .expression_attribute_names("#owner", attr::OWNER),
            };
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression = format!("SET {} ", sets.join(", "));
        }
        expression.push_str(&format!("ADD {}", adds.join(", ")));
        if change != LedgerChange::FileRemoved {
            expression.push_str(" REMOVE #legacy");
            update =
                update.expression_attribute_names("#legacy", legacy_pending_attribute(record.id));
        }
        Ok(TransactWriteItem::builder()
            .update(
                update
                    .update_expression(expression)
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }

    /// A pending record's change `change` (rejected, or deleted) with its reservation taken out
    /// of its tally; when the tally is gone (lapsed, and dropped by a later reservation), the
    /// change alone, as the reservation counts for nothing any more. `Stale` when the record is
    /// not as `change` expects.
    pub(super) async fn release(
        &self,
        record: &FileRecord,
        change: TransactWriteItem,
    ) -> Result<Transition, AppError> {
        let items = vec![
            change.clone(),
            self.ledger_update(record, LedgerChange::ReservationReleased)?,
        ];
        match self.transact(items).await? {
            Outcome::Committed => return Ok(Transition::Applied),
            Outcome::ConditionFailed(failed) if failed.contains(&0) => {
                return Ok(Transition::Stale);
            }
            Outcome::ConditionFailed(_) => {}
        }
        let items = vec![
            change,
            self.ledger_update(record, LedgerChange::ReservationLapsed)?,
        ];
        Ok(match self.transact(items).await? {
            Outcome::Committed => Transition::Applied,
            Outcome::ConditionFailed(_) => Transition::Stale,
        })
    }

    /// The second half of `mark_available`, when the reservation no longer counts: the ledger
    /// read, the bytes checked against `limits` (`Ledger::readmit`), and the ledger updated with
    /// `change` on condition that its version is still the one read (optimistic concurrency, as
    /// `reserve`). An UpdateItem, not a PutItem of the whole ledger as `reserve` writes: the
    /// events and reconciliation roles may update items but not put them (template.yaml), and
    /// both confirm. The reservation stays in its lapsed tally, which counts for nothing, until
    /// the next reservation drops it.
    pub(super) async fn readmit(
        &self,
        record: &FileRecord,
        change: TransactWriteItem,
        now: OffsetDateTime,
        limits: &QuotaLimits,
    ) -> Result<Transition, AppError> {
        for wait in retry_waits(TRANSACTION_BACKOFF, TRANSACTION_ATTEMPTS) {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let (ledger, version) = self.read_ledger(&record.owner).await?;
            if let Err(refused) =
                ledger.readmit(record.purge_at.unwrap_or(now), record.size, now, limits)
            {
                // A repeat of a confirmation that went through is no refusal: the record says.
                return match self.get(&record.owner, record.id).await? {
                    Some(stored) if stored.status == FileStatus::Pending => Err(refused),
                    _ => Ok(Transition::Stale),
                };
            }
            let items = vec![
                change.clone(),
                self.ledger_update(record, LedgerChange::Readmitted { version })?,
            ];
            match self.transact(items).await? {
                Outcome::Committed => return Ok(Transition::Applied),
                Outcome::ConditionFailed(failed) if failed.contains(&0) => {
                    return Ok(Transition::Stale);
                }
                // The ledger changed since it was read: read it again.
                Outcome::ConditionFailed(_) => {}
            }
        }
        Err(AppError::Unavailable(
            "the owner's usage kept changing during a confirmation".into(),
        ))
    }

    /// The whole ledger `ledger` as `next_version`, written only over `version` (`None`: only
    /// where there is no ledger yet): optimistic concurrency.
    pub(super) fn versioned_ledger(
        &self,
        owner: &OwnerId,
        ledger: &Ledger,
        version: Option<u64>,
        next_version: u64,
    ) -> Result<TransactWriteItem, AppError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(ledger_to_item(owner, ledger, next_version)));
        let put = match version {
            None => put
                .condition_expression("attribute_not_exists(#owner)")
                .expression_attribute_names("#owner", attr::OWNER),
            Some(version) => put
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", attr::VERSION)
                .expression_attribute_values(":version", AttributeValue::N(version.to_string())),
        }
        .build()
        .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The owner's ledger and its version, `None` when it has no ledger item yet.
    pub(super) async fn read_ledger(
        &self,
        owner: &OwnerId,
    ) -> Result<(Ledger, Option<u64>), AppError> {
        match self.consistent_item(ledger_key(owner)).await? {
            None => Ok((Ledger::default(), None)),
            Some(item) => {
                let (ledger, version) = ledger_from_item(&item)?;
                Ok((ledger, Some(version)))
            }
        }
    }
}
