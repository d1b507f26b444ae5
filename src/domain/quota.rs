//! Per-owner quotas: how many reservations may wait for their upload at once, and how many bytes
//! an owner may hold in pending and available files together.
//!
//! An owner's usage is kept in a ledger next to its records (one item per owner in the store),
//! changed in the same atomic write as the record whose change it accounts for. The table's TTL
//! purges an abandoned reservation without any write of ours, so a plain counter of pending
//! reservations could never come down for it. Pending reservations are instead tallied by their
//! purge time: a tally past its purge time counts for nothing, whether or not its records are
//! still there, and the next reservation drops it. Purge times are rounded up to a grid
//! (`PURGE_GRID`), so an owner's ledger holds at most a few tallies however many reservations
//! wait: every change of it costs the same at 1 or 1,000 pending uploads.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::FileRecord;
use crate::error::AppError;

/// The grid purge times are rounded up to. A reservation lives at most about two days (a
/// multipart one until the bucket's lifecycle rule may abort its upload, `lifecycle_abort_by`),
/// so a ledger holds at most 13 tallies. It divides a day, so the lifecycle's midnights are on
/// it. The price: an abandoned reservation counts up to 4 hours longer than its day of grace.
pub const PURGE_GRID: Duration = Duration::from_secs(4 * 3600);

/// `at` rounded up to `PURGE_GRID` (unchanged when on it): when a reservation that may be
/// purged from `at` on is purged, and its tally stops counting.
pub fn purge_time(at: OffsetDateTime) -> OffsetDateTime {
    let grid = PURGE_GRID.as_secs() as i64;
    let secs = at.unix_timestamp();
    let rounded = if secs.rem_euclid(grid) == 0 && at.nanosecond() == 0 {
        secs
    } else {
        (secs.div_euclid(grid) + 1) * grid
    };
    OffsetDateTime::from_unix_timestamp(rounded).unwrap_or(at)
}

/// The key of the tally of reservations purged at `purge_at`: whole seconds, as the table stores
/// purge times (epoch seconds, the TTL attribute's format).
fn tally_key(purge_at: OffsetDateTime) -> OffsetDateTime {
    purge_at.replace_nanosecond(0).unwrap_or(purge_at)
}

/// The limits of every owner (`QUOTA_MAX_PENDING_UPLOADS`, `QUOTA_MAX_BYTES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaLimits {
    pub max_pending_uploads: u32,
    pub max_bytes: u64,
}

impl QuotaLimits {
    /// Most pending uploads the setting may allow. The ledger's size no longer depends on it
    /// (tallies, not entries); it bounds what one owner can hold open at once: S3 multipart
    /// uploads, and records the daily reconciliation reads.
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

/// The reservations with one purge time that the ledger holds until each is confirmed,
/// rejected or deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingTally {
    pub count: u64,
    pub bytes: u64,
}

/// What an owner's ledger holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Bytes of the owner's available (confirmed) files.
    pub available_bytes: u64,
    /// Pending reservations by purge time.
    pub pending: BTreeMap<OffsetDateTime, PendingTally>,
}

/// An owner's usage at one instant, as `GET /usage` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub pending_uploads: u64,
    /// Bytes of pending and available files.
    pub bytes: u64,
}

impl Ledger {
    /// The tallies that still count at `now`.
    fn live(&self, now: OffsetDateTime) -> impl Iterator<Item = (&OffsetDateTime, &PendingTally)> {
        self.pending
            .iter()
            .filter(move |(purge_at, _)| **purge_at > now)
    }

    pub fn usage(&self, now: OffsetDateTime) -> Usage {
        let (count, bytes) = self
            .live(now)
            .fold((0u64, 0u64), |(count, bytes), (_, tally)| {
                (
                    count.saturating_add(tally.count),
                    bytes.saturating_add(tally.bytes),
                )
            });
        Usage {
            pending_uploads: count,
            bytes: self.available_bytes.saturating_add(bytes),
        }
    }

    /// Every reservation the ledger holds, counting or not.
    pub fn reservations(&self) -> u64 {
        self.pending.values().map(|tally| tally.count).sum()
    }

    /// Whether the reservation purged at `purge_at` still counts at `now`: its tally is there
    /// (no reservation dropped it since it lapsed) and before its purge time.
    pub fn counts(&self, purge_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        let key = tally_key(purge_at);
        key > now && self.pending.contains_key(&key)
    }

    /// The ledger with `record` (a new reservation) added and lapsed tallies dropped, or
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
        let mut pending: BTreeMap<OffsetDateTime, PendingTally> =
            self.live(now).map(|(at, tally)| (*at, *tally)).collect();
        let tally = pending.entry(tally_key(purge_at)).or_default();
        tally.count += 1;
        tally.bytes = tally.bytes.saturating_add(record.size);
        Ok(Ledger {
            available_bytes: self.available_bytes,
            pending,
        })
    }

    /// Takes one reservation of `size` bytes out of the tally of `purge_at`, if that tally is
    /// still there; whether it was. A tally dropped as lapsed has nothing left to release.
    pub fn release(&mut self, purge_at: OffsetDateTime, size: u64) -> bool {
        let Some(tally) = self.pending.get_mut(&tally_key(purge_at)) else {
            return false;
        };
        tally.count = tally.count.saturating_sub(1);
        tally.bytes = tally.bytes.saturating_sub(size);
        true
    }

    /// Checks that the reservation of `size` bytes purged at `purge_at`, confirmed although it
    /// no longer counts at `now` (past its purge time, or its tally dropped by a later
    /// reservation), fits the bytes limit next to everything that counts now as an available
    /// file; `QuotaExceeded` if not. Its own share of a tally that still counts is left out: only
    /// a ledger written before tallies existed can hold one then.
    ///
    /// Why re-admit rather than always refuse: a single PUT made in time can be confirmed late
    /// through no fault of its uploader (S3 events retried, the on-failure queue redriven, the
    /// daily reconciliation), and a file that fits is worth keeping. Why not admit it regardless:
    /// a lapsed reservation's place may have gone to new reservations meanwhile, and admitting
    /// both is the quota bypass of issue 20, point 2.5. The pending-uploads limit is not checked:
    /// the file leaves the pending ones.
    pub fn readmit(
        &self,
        purge_at: OffsetDateTime,
        size: u64,
        now: OffsetDateTime,
        limits: &QuotaLimits,
    ) -> Result<(), AppError> {
        let mut rest = self.clone();
        if purge_at > now {
            rest.release(purge_at, size);
        }
        let bytes = rest.usage(now).bytes;
        if bytes.saturating_add(size) > limits.max_bytes {
            return Err(AppError::QuotaExceeded(format!(
                "the reservation lapsed before its upload was confirmed, and its {size} bytes no \
                 longer fit: {bytes} bytes are in use, the limit is {} bytes",
                limits.max_bytes
            )));
        }
        Ok(())
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
    use crate::domain::{FileId, NewUpload, OwnerId};

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
    fn purge_times_are_rounded_up_to_the_grid() {
        let grid = PURGE_GRID.as_secs() as i64;
        assert_eq!(purge_time(at(0)), at(0));
        assert_eq!(purge_time(at(1)), at(grid));
        assert_eq!(purge_time(at(grid - 1)), at(grid));
        assert_eq!(purge_time(at(grid)), at(grid));
        assert_eq!(purge_time(at(grid + 1)), at(2 * grid));
        // A fraction of a second past the grid is past it.
        assert_eq!(
            purge_time(at(grid) + time::Duration::milliseconds(1)),
            at(2 * grid)
        );
        // Midnights stay midnights: the lifecycle rule's bounds are on the grid.
        assert_eq!(24 * 3600 % grid, 0);
    }

    #[test]
    fn reservations_with_one_purge_time_share_one_tally() {
        let ledger = Ledger::default()
            .admit(&reservation(10, 50), at(10), &LIMITS)
            .unwrap()
            .admit(&reservation(20, 50), at(10), &LIMITS)
            .unwrap();
        assert_eq!(
            ledger.pending,
            BTreeMap::from([(
                at(50),
                PendingTally {
                    count: 2,
                    bytes: 30
                }
            )])
        );
        assert_eq!(ledger.reservations(), 2);
        let mut released = ledger.clone();
        assert!(released.release(at(50), 10));
        assert_eq!(released.usage(at(10)).bytes, 20);
        assert_eq!(released.usage(at(10)).pending_uploads, 1);
        // A purge time with no tally has nothing to release.
        assert!(!released.release(at(60), 20));
        // Purge times count in whole seconds, as the table stores them.
        assert!(released.counts(at(50) + time::Duration::milliseconds(500), at(10)));
        assert_eq!(released.reservations(), 1);
        assert!(released.release(at(50) + time::Duration::milliseconds(500), 20));
        assert_eq!(released.reservations(), 0);
    }

    #[test]
    fn reservations_are_admitted_up_to_each_limit() {
        let ledger = Ledger::default();
        let ledger = ledger.admit(&reservation(40, 50), at(10), &LIMITS).unwrap();
        let ledger = ledger.admit(&reservation(40, 60), at(10), &LIMITS).unwrap();
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
        let mut one_pending = ledger.clone();
        one_pending.release(at(60), 40);
        one_pending.available_bytes = 60;
        match one_pending.admit(&reservation(1, 50), at(10), &LIMITS) {
            Err(AppError::QuotaExceeded(message)) => assert!(message.contains("bytes limit")),
            other => panic!("{other:?}"),
        }
        // Exactly at the byte limit is still within it.
        one_pending.available_bytes = 59;
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
        assert!(ledger.counts(at(20), at(19)));
        assert!(!ledger.counts(at(20), at(20)));
        // At 20 the first tally counts no more; 40 pending + 30 fits 100.
        assert!(ledger.readmit(at(20), 30, at(20), &LIMITS).is_ok());
        // Its place taken by a new reservation meanwhile: 40 + 40 + 30 is over 100.
        let taken = ledger.admit(&reservation(40, 80), at(20), &LIMITS).unwrap();
        assert!(!taken.pending.contains_key(&at(20)), "dropped as lapsed");
        assert!(!taken.counts(at(20), at(19)));
        match taken.readmit(at(20), 30, at(20), &LIMITS) {
            Err(AppError::QuotaExceeded(message)) => assert!(message.contains("lapsed")),
            other => panic!("{other:?}"),
        }
        // Exactly at the limit fits; the pending-uploads limit plays no part.
        assert!(taken.readmit(at(20), 20, at(20), &LIMITS).is_ok());
    }

    #[test]
    fn a_reservation_still_counted_is_not_counted_twice_when_readmitted() {
        // A ledger written before tallies held this reservation as its own entry, which reads
        // as a tally of its purge time; its confirmation cannot name a tally, so it re-admits.
        let ledger = Ledger::default()
            .admit(&reservation(60, 50), at(10), &LIMITS)
            .unwrap();
        assert!(ledger.readmit(at(50), 60, at(20), &LIMITS).is_ok());
        let mut other = ledger.clone();
        other.available_bytes = 41;
        assert!(other.readmit(at(50), 60, at(20), &LIMITS).is_err());
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
        assert_eq!(
            admitted.pending.keys().copied().collect::<Vec<_>>(),
            [at(50), at(80)]
        );
        assert_eq!(admitted.usage(at(20)).bytes, 100);
    }
}
