//! What a test can make the GuardDuty stand-in do instead of an ordinary scan, queued through the
//! demo origin's `/__faults` (see `crate::faults`):
//!
//! ```json
//! {"scans": [{"result": "FAILED", "times": 2},
//!            {"delivery": "twice"},
//!            {"delivery": "hold", "holdMs": 3000},
//!            {"delivery": "drop"}],
//!  "scanDelayMs": 0}
//! ```
//!
//! Each scan takes the first queued fault (used `times` times, 1 by default): `result` replaces
//! what the scan found (any of the five values, the tag included); `delivery` is what happens to
//! the event: `normal` (the default), `twice` (delivered twice, as an at-least-once bus may),
//! `drop` (never delivered: the tag is then the only record), or `hold` (delivered `holdMs` after
//! the tag, so later scans' events may overtake it). `scanDelayMs` sets how long every scan waits
//! before it reads the object (`--scan-delay-ms` until set; `DELETE /__faults` restores it).

use serde::{Deserialize, Serialize};

use super::event::ScanResult;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Delivery {
    #[default]
    Normal,
    Twice,
    Drop,
    Hold,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScanFault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ScanResult>,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_ms: Option<u64>,
    #[serde(default = "once")]
    pub times: u32,
}

const fn once() -> u32 {
    1
}

impl ScanFault {
    pub fn check(&self) -> Result<(), String> {
        if self.times == 0 {
            return Err("times must be at least 1".into());
        }
        match (self.delivery, self.hold_ms) {
            (Delivery::Hold, None) => Err("a held delivery needs holdMs".into()),
            (Delivery::Hold, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err("holdMs is for \"delivery\": \"hold\" only".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_faults_read_as_documented_and_nonsense_is_refused() {
        let fault: ScanFault =
            serde_json::from_str(r#"{"result": "ACCESS_DENIED", "times": 2}"#).unwrap();
        assert_eq!(fault.result, Some(ScanResult::AccessDenied));
        assert_eq!(fault.delivery, Delivery::Normal);
        assert!(fault.check().is_ok());
        let held: ScanFault = serde_json::from_str(r#"{"delivery": "hold", "holdMs": 5}"#).unwrap();
        assert!(held.check().is_ok());
        for bad in [
            r#"{"delivery": "hold"}"#,
            r#"{"holdMs": 5}"#,
            r#"{"times": 0}"#,
        ] {
            let fault: ScanFault = serde_json::from_str(bad).unwrap();
            assert!(fault.check().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ScanFault>(r#"{"result": "MAYBE"}"#).is_err());
        assert!(serde_json::from_str::<ScanFault>(r#"{"colour": "red"}"#).is_err());
    }
}
