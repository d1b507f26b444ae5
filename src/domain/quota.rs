//! Per-owner quotas: how many reservations may wait for their upload at once, and how many bytes
//! an owner may hold in pending and available files together.
//!
//! An owner's usage is kept in a ledger next to its records (one item per owner in the store),
//! changed in the same atomic write as the record whose change it accounts for. Pending
//! reservations are kept one by one with their purge time rather than as a counter, because the
//! table's TTL purges an abandoned reservation without any write of ours: an entry past its purge
//! time counts for nothing, whether or not its record is still there, and the next reservation
//! drops it from the ledger.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::{FileId, FileRecord};
use crate::error::AppError;

/// The limits of every owner (`QUOTA_MAX_PENDING_UPLOADS`, `QUOTA_MAX_BYTES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaLimits {
    pub max_pending_uploads: u32,
    pub max_bytes: u64,
}

impl QuotaLimits {
    /// Most pending uploads the setting may allow: each one is an entry of the owner's ledger,
    /// which lives in one item (400 KB at most in DynamoDB; an entry takes under 100 bytes).
    pub const MAX_PENDING_UPLOADS_SETTING: u32 = 1000;
}

impl Default for QuotaLimits {
    fn default() -> Self {
        Self {
            max_pending_uploads: 20,
            max_bytes: 10 * 1024 * 1024 * 1024,
        }
    }
}

/// A reservation the ledger holds until it is confirmed, rejected or deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingEntry {
    pub size: u64,
    /// The record's purge time: from then on the table's TTL may delete the record unseen.
    pub purge_at: OffsetDateTime,
}

/// What an owner's ledger holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Bytes of the owner's available (confirmed) files.
    pub available_bytes: u64,
    pub pending: BTreeMap<FileId, PendingEntry>,
}

/// An owner's usage at one instant, as `GET /usage` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub pending_uploads: u64,
    /// Bytes of pending and available files.
    pub bytes: u64,
}

impl Ledger {
    /// The reservations that still count at `now`.
    fn live(&self, now: OffsetDateTime) -> impl Iterator<Item = (&FileId, &PendingEntry)> {
        self.pending
            .iter()
            .filter(move |(_, entry)| entry.purge_at > now)
    }

    pub fn usage(&self, now: OffsetDateTime) -> Usage {
        let (count, bytes) = self
            .live(now)
            .fold((0u64, 0u64), |(count, bytes), (_, entry)| {
                (count + 1, bytes.saturating_add(entry.size))
            });
        Usage {
            pending_uploads: count,
            bytes: self.available_bytes.saturating_add(bytes),
        }
    }

    /// The ledger with `record` (a new reservation) added and expired entries dropped, or
    /// `QuotaExceeded` naming the limit it would break.
    pub fn admit(
        &self,
        record: &FileRecord,
        now: OffsetDateTime,
        limits: &QuotaLimits,
    ) -> Result<Ledger, AppError> {
        let purge_at = record
            .purge_at
            .ok_or_else(|| AppError::Internal("a reservation without a purge time".into()))?;
        self.check(record.size, now, limits)?;
        let mut pending: BTreeMap<FileId, PendingEntry> =
            self.live(now).map(|(id, entry)| (*id, *entry)).collect();
        pending.insert(
            record.id,
            PendingEntry {
                size: record.size,
                purge_at,
            },
        );
        Ok(Ledger {
            available_bytes: self.available_bytes,
            pending,
        })
    }

    /// The ledger with the reservation `id` of `size` bytes confirmed although its entry no
    /// longer counts at `now` (past its purge time, or dropped by a later reservation): its bytes
    /// are admitted again as available, if they fit the bytes limit next to everything that
    /// counts now; `QuotaExceeded` if not. Expired entries are dropped, `id`'s too.
    ///
    /// Why re-admit rather than always refuse: a single PUT made in time can be confirmed late
    /// through no fault of its uploader (S3 events retried, the on-failure queue redriven, the
    /// daily reconciliation), and a file that fits is worth keeping. Why not admit it regardless:
    /// a lapsed entry's place may have gone to new reservations meanwhile, and admitting both is
    /// the quota bypass of issue 20, point 2.5. The pending-uploads limit is not checked: the file
    /// leaves the pending ones.
    pub fn readmit(
        &self,
        id: FileId,
        size: u64,
        now: OffsetDateTime,
        limits: &QuotaLimits,
    ) -> Result<Ledger, AppError> {
        let pending: BTreeMap<FileId, PendingEntry> = self
            .live(now)
            .filter(|(entry_id, _)| **entry_id != id)
            .map(|(id, entry)| (*id, *entry))
            .collect();
        let rest = Ledger {
            available_bytes: self.available_bytes,
            pending,
        };
        let bytes = rest.usage(now).bytes;
        if bytes.saturating_add(size) > limits.max_bytes {
            return Err(AppError::QuotaExceeded(format!(
                "the reservation lapsed before its upload was confirmed, and its {size} bytes no \
                 longer fit: {bytes} bytes are in use, the limit is {} bytes",
                limits.max_bytes
            )));
        }
        Ok(Ledger {
            available_bytes: rest.available_bytes.saturating_add(size),
            ..rest
        })
    }

    /// Whether one more reservation of `size` bytes fits at `now`: `QuotaExceeded` naming the
    /// limit it would break. A check ahead of work that costs something (a multipart upload to
    /// create); what decides is `admit`, in the reservation's transaction.
    pub fn check(
        &self,
        size: u64,
        now: OffsetDateTime,
        limits: &QuotaLimits,
    ) -> Result<(), AppError> {
        let usage = self.usage(now);
        if usage.pending_uploads >= u64::from(limits.max_pending_uploads) {
            return Err(AppError::QuotaExceeded(format!(
                "the pendingUploads limit is reached: at most {} uploads may wait for their \
                 upload at once; finish or delete one first",
                limits.max_pending_uploads
            )));
        }
        if usage.bytes.saturating_add(size) > limits.max_bytes {
            return Err(AppError::QuotaExceeded(format!(
                "the bytes limit would be exceeded: {} bytes in use plus {} reserved now is over \
                 the limit of {} bytes for pending and available files",
                usage.bytes, size, limits.max_bytes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewUpload, OwnerId};

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn reservation(size: u64, purge_at: i64) -> FileRecord {
        let upload = NewUpload {
            filename: "a.txt".into(),
            content_type: "text/plain".into(),
            size,
            sha256: None,
            parts: None,
        };
        FileRecord::pending(
            OwnerId::parse("alice").unwrap(),
            FileId::new_random(),
            upload,
            at(0),
            at(purge_at),
        )
    }

    const LIMITS: QuotaLimits = QuotaLimits {
        max_pending_uploads: 2,
        max_bytes: 100,
    };

    #[test]
    fn reservations_are_admitted_up_to_each_limit() {
        let ledger = Ledger::default();
        let ledger = ledger.admit(&reservation(40, 50), at(10), &LIMITS).unwrap();
        let ledger = ledger.admit(&reservation(40, 50), at(10), &LIMITS).unwrap();
        assert_eq!(
            ledger.usage(at(10)),
            Usage {
                pending_uploads: 2,
                bytes: 80
            }
        );
        match ledger.admit(&reservation(1, 50), at(10), &LIMITS) {
            Err(AppError::QuotaExceeded(message)) => assert!(message.contains("pendingUploads")),
            other => panic!("{other:?}"),
        }
        let one_pending = Ledger {
            available_bytes: 60,
            pending: ledger.pending.into_iter().take(1).collect(),
        };
        match one_pending.admit(&reservation(1, 50), at(10), &LIMITS) {
            Err(AppError::QuotaExceeded(message)) => assert!(message.contains("bytes limit")),
            other => panic!("{other:?}"),
        }
        // Exactly at the byte limit is still within it.
        let one_pending = Ledger {
            available_bytes: 59,
            ..one_pending
        };
        assert!(
            one_pending
                .admit(&reservation(1, 50), at(10), &LIMITS)
                .is_ok()
        );
    }

    #[test]
    fn a_lapsed_reservation_is_confirmed_only_if_its_bytes_still_fit() {
        let lapsed = reservation(30, 20);
        let ledger = Ledger::default()
            .admit(&lapsed, at(10), &LIMITS)
            .unwrap()
            .admit(&reservation(40, 80), at(10), &LIMITS)
            .unwrap();
        // At 20 the first entry counts no more; 40 pending + 30 fits 100.
        let readmitted = ledger.readmit(lapsed.id, 30, at(20), &LIMITS).unwrap();
        assert_eq!(readmitted.available_bytes, 30);
        assert_eq!(readmitted.pending.len(), 1);
        assert!(!readmitted.pending.contains_key(&lapsed.id));
        assert_eq!(readmitted.usage(at(20)).bytes, 70);
        // Its place taken by a new reservation meanwhile: 40 + 40 + 30 is over 100.
        let taken = ledger.admit(&reservation(40, 80), at(20), &LIMITS).unwrap();
        assert!(
            !taken.pending.contains_key(&lapsed.id),
            "dropped as expired"
        );
        match taken.readmit(lapsed.id, 30, at(20), &LIMITS) {
            Err(AppError::QuotaExceeded(message)) => assert!(message.contains("lapsed")),
            other => panic!("{other:?}"),
        }
        // Exactly at the limit fits; the pending-uploads limit plays no part.
        assert!(taken.readmit(lapsed.id, 20, at(20), &LIMITS).is_ok());
    }

    #[test]
    fn expired_reservations_count_for_nothing_and_are_dropped() {
        let ledger = Ledger::default()
            .admit(&reservation(60, 20), at(10), &LIMITS)
            .unwrap()
            .admit(&reservation(30, 50), at(10), &LIMITS)
            .unwrap();
        // At 20 the first one's purge time has come: the table's TTL may have deleted it.
        assert_eq!(
            ledger.usage(at(20)),
            Usage {
                pending_uploads: 1,
                bytes: 30
            }
        );
        let next = reservation(70, 80);
        let admitted = ledger.admit(&next, at(20), &LIMITS).unwrap();
        assert_eq!(admitted.pending.len(), 2);
        assert!(admitted.pending.contains_key(&next.id));
        assert_eq!(admitted.usage(at(20)).bytes, 100);
    }
}
