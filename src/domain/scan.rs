//! The malware scanner's verdict on one stored object, and what it does to the file.
//!
//! GuardDuty Malware Protection for S3 reports one of five result values (GuardDuty User Guide,
//! "Monitoring S3 object scans in Malware Protection for S3", "S3 object potential malware scan
//! result status values"). Each is decided here on purpose:
//!
//! - `NO_THREATS_FOUND`: the file becomes available.
//! - `THREATS_FOUND`: the file is rejected (`malware`) and its object deleted.
//! - `UNSUPPORTED` (for example a password-protected archive, or an object over GuardDuty's size
//!   limits): rejected (`unscannable`) and deleted. Nothing can show it is clean, and the bucket
//!   policy refuses every presigned GET of an object not tagged `NO_THREATS_FOUND`, so an
//!   "available" file would answer every download with 403.
//! - `ACCESS_DENIED` (GuardDuty's role cannot read the object: a deployment fault, not the
//!   uploader's) and `FAILED` (GuardDuty's own error): the file stays `scanning`, the event is
//!   logged as an error, and the reconciliation reports it once it has waited too long; a rescan
//!   (or a fixed role) produces a new verdict.
//! - Any other value is treated like `FAILED`: never as clean.

use super::{FileRecord, FileStatus, RejectReason};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ScanVerdict {
    Clean,
    Threats,
    Unscannable,
    /// No verdict: the scanner could not read the object, failed, or said something unknown.
    Inconclusive,
}

impl ScanVerdict {
    /// From GuardDuty's `scanResultStatus` (or its `GuardDutyMalwareScanStatus` tag value).
    pub fn from_result_status(status: &str) -> Self {
        match status {
            "NO_THREATS_FOUND" => Self::Clean,
            "THREATS_FOUND" => Self::Threats,
            "UNSUPPORTED" => Self::Unscannable,
            _ => Self::Inconclusive,
        }
    }

    /// Why a file with this verdict is rejected, if it is.
    pub fn rejection(self) -> Option<RejectReason> {
        match self {
            Self::Threats => Some(RejectReason::Malware),
            Self::Unscannable => Some(RejectReason::Unscannable),
            Self::Clean | Self::Inconclusive => None,
        }
    }
}

/// What a verdict does to a file in its current state. Pending files are confirmed first (the
/// verdict may arrive before S3's event), so they never reach this.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ScanOutcome {
    /// scanning -> available.
    MakeAvailable,
    /// scanning or available -> rejected, object deleted.
    Reject(RejectReason),
    /// Nothing to change: a duplicate, a late verdict for a settled file, or no verdict.
    Keep,
}

/// The transition table. Rejection is final and wins over everything: a threat found by a later
/// scan rejects a file already available, and a clean verdict never revives a rejected one
/// (duplicate and out-of-order deliveries of the same verdicts end in the same state).
pub fn scan_outcome(record: &FileRecord, verdict: ScanVerdict, same_bytes: bool) -> ScanOutcome {
    match (record.status, verdict) {
        (FileStatus::Rejected | FileStatus::Pending, _) => ScanOutcome::Keep,
        // A verdict on other bytes than the record's (cannot happen with If-None-Match keeping
        // one version per key) says nothing about the file.
        (_, _) if !same_bytes => ScanOutcome::Keep,
        (FileStatus::Scanning, ScanVerdict::Clean) => ScanOutcome::MakeAvailable,
        (FileStatus::Scanning | FileStatus::Available, ScanVerdict::Threats) => {
            ScanOutcome::Reject(RejectReason::Malware)
        }
        (FileStatus::Scanning, ScanVerdict::Unscannable) => {
            ScanOutcome::Reject(RejectReason::Unscannable)
        }
        // An available file rescanned as unscannable stays: S3 refuses its presigned reads once
        // its tag is no longer NO_THREATS_FOUND, and its owner may delete it.
        (FileStatus::Available, ScanVerdict::Clean | ScanVerdict::Unscannable)
        | (_, ScanVerdict::Inconclusive) => ScanOutcome::Keep,
    }
}

/// Whether an ETag names the same bytes as another, with or without S3's quotes.
pub fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_values_map_to_verdicts_and_unknown_ones_are_never_clean() {
        use ScanVerdict::*;
        for (status, verdict) in [
            ("NO_THREATS_FOUND", Clean),
            ("THREATS_FOUND", Threats),
            ("UNSUPPORTED", Unscannable),
            ("ACCESS_DENIED", Inconclusive),
            ("FAILED", Inconclusive),
            ("THREAT_FOUND", Inconclusive),
            ("no_threats_found", Inconclusive),
            ("", Inconclusive),
        ] {
            assert_eq!(ScanVerdict::from_result_status(status), verdict, "{status}");
        }
    }

    #[test]
    fn every_state_and_verdict_has_its_outcome() {
        use FileStatus::*;
        use ScanOutcome::*;
        use ScanVerdict::*;
        let reject = |reason| Reject(reason);
        let table = [
            (Scanning, Clean, MakeAvailable),
            (Scanning, Threats, reject(RejectReason::Malware)),
            (Scanning, Unscannable, reject(RejectReason::Unscannable)),
            (Scanning, Inconclusive, Keep),
            (Available, Clean, Keep),
            (Available, Threats, reject(RejectReason::Malware)),
            (Available, Unscannable, Keep),
            (Available, Inconclusive, Keep),
            (Rejected, Clean, Keep),
            (Rejected, Threats, Keep),
            (Pending, Clean, Keep),
        ];
        for (status, verdict, outcome) in table {
            assert_eq!(
                scan_outcome(&FileRecord::example(status), verdict, true),
                outcome,
                "{status:?} {verdict:?}"
            );
            assert_eq!(
                scan_outcome(&FileRecord::example(status), verdict, false),
                Keep,
                "{status:?} {verdict:?} on other bytes"
            );
        }
    }

    #[test]
    fn etags_compare_with_or_without_quotes() {
        assert!(same_etag("\"abc\"", "abc"));
        assert!(same_etag("abc", "abc"));
        assert!(!same_etag("\"abc\"", "abd"));
    }
}
