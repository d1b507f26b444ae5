//! How long S3 can still complete a multipart upload: until the bucket's lifecycle rule aborts it.
//!
//! The rule (`AbortIncompleteMultipartUpload`, `DaysAfterInitiation` in template.yaml's
//! `FilesBucket`) makes an upload not completed within that many days after its initiation
//! "eligible for an abort operation" (Amazon S3 User Guide, "Configuring a bucket lifecycle
//! configuration to delete incomplete multipart uploads"). S3 counts lifecycle days by adding
//! them to the start time and "rounding the resulting time to the next day's midnight UTC"
//! (Amazon S3 User Guide, "Lifecycle configuration elements": created 2014-01-15 10:30 UTC with 3
//! days, the action is due 2014-01-19 00:00 UTC). With 1 day that is 24 to 48 h after initiation.
//!
//! A multipart reservation's ledger entry must count until then: an upload whose parts S3 still
//! holds could otherwise be completed after its bytes stopped counting, next to new reservations
//! that took their place.

use std::time::Duration;

use time::OffsetDateTime;

/// `DaysAfterInitiation` of the bucket's `AbortIncompleteMultipartUpload` rule; tests/template.rs
/// checks template.yaml says the same.
pub const LIFECYCLE_ABORT_DAYS: u32 = 1;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The latest instant the lifecycle rule makes an upload initiated at or before `initiated_by`
/// eligible for its abort: `initiated_by` plus `LIFECYCLE_ABORT_DAYS`, then up to the midnight UTC
/// that follows. Rounded *up* always, even from an exact midnight (S3's "next day's midnight"
/// read either way is no later), so the bound never falls short.
pub fn lifecycle_abort_by(initiated_by: OffsetDateTime) -> OffsetDateTime {
    let due = initiated_by + DAY * LIFECYCLE_ABORT_DAYS;
    let midnight = due.replace_time(time::Time::MIDNIGHT);
    midnight + DAY
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_abort_is_due_at_the_midnight_after_one_day() {
        // The User Guide's example, with one day instead of three.
        assert_eq!(
            lifecycle_abort_by(datetime!(2014-01-15 10:30 UTC)),
            datetime!(2014-01-17 00:00 UTC)
        );
        // Just before midnight: a little over 24 h.
        assert_eq!(
            lifecycle_abort_by(datetime!(2026-03-01 23:59:59 UTC)),
            datetime!(2026-03-03 00:00 UTC)
        );
        // Just after: almost 48 h, the worst case.
        assert_eq!(
            lifecycle_abort_by(datetime!(2026-03-02 00:00:01 UTC)),
            datetime!(2026-03-04 00:00 UTC)
        );
        // An exact midnight rounds up too: 48 h, never less than S3's own reading.
        assert_eq!(
            lifecycle_abort_by(datetime!(2026-03-02 00:00 UTC)),
            datetime!(2026-03-04 00:00 UTC)
        );
        // Across a month and a year.
        assert_eq!(
            lifecycle_abort_by(datetime!(2026-12-31 12:00 UTC)),
            datetime!(2027-01-02 00:00 UTC)
        );
    }

    #[test]
    fn the_bound_is_between_one_and_two_days_after_initiation() {
        let start = datetime!(2026-03-01 00:00 UTC);
        for minutes in (0..3 * 24 * 60).step_by(7) {
            let initiated = start + Duration::from_secs(minutes * 60 + 13);
            let bound = lifecycle_abort_by(initiated);
            assert!(bound > initiated + DAY, "{initiated}");
            assert!(bound <= initiated + 2 * DAY, "{initiated}");
            assert_eq!(bound.time(), time::Time::MIDNIGHT, "{initiated}");
        }
    }
}
