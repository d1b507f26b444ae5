//! The faults a test queues for PutEvents through `/__faults` (see `crate::faults`):
//! `{"putEvents": [{"status": 500, "times": 1}]}` fails the next whole calls with EventBridge's
//! error for that status; `{"putEvents": [{"failEntries": 1, "times": 1}]}` makes the first
//! entries of the next calls fail with `ErrorCode: InternalFailure` (the others are accepted).

use serde::{Deserialize, Serialize};

/// One PutEvents fault: exactly one of `status` and `failEntries`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutEventsFault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_entries: Option<usize>,
    #[serde(default = "once")]
    pub times: u32,
}

const fn once() -> u32 {
    1
}

impl PutEventsFault {
    pub fn check(&self) -> Result<(), String> {
        match (self.status, self.fail_entries) {
            (Some(status), None) if (400..=599).contains(&status) => {}
            (Some(status), None) => {
                return Err(format!(
                    "putEvents status {status} is not an error (400 to 599)"
                ));
            }
            (None, Some(1..)) => {}
            (None, Some(_)) => return Err("putEvents failEntries must be at least 1".into()),
            _ => return Err("a putEvents fault has either status or failEntries".into()),
        }
        if self.times == 0 {
            return Err("times must be at least 1".into());
        }
        Ok(())
    }

    /// The error code and message EventBridge answers a whole call with at this status
    /// (EventBridge API Reference, "Common Errors").
    pub fn error(status: u16) -> (&'static str, &'static str) {
        match status {
            400 | 429 => ("ThrottlingException", "Rate exceeded"),
            503 => (
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
            ),
            _ => (
                "InternalException",
                "This exception occurs due to unexpected causes.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(json: &str) -> Result<PutEventsFault, String> {
        serde_json::from_str::<PutEventsFault>(json)
            .map_err(|e| e.to_string())
            .and_then(|fault| fault.check().map(|()| fault))
    }

    #[test]
    fn a_fault_is_a_status_or_failed_entries() {
        assert_eq!(fault(r#"{"status": 500}"#).unwrap().times, 1);
        assert_eq!(
            fault(r#"{"failEntries": 2, "times": 3}"#)
                .unwrap()
                .fail_entries,
            Some(2)
        );
        for refused in [
            r#"{"status": 200}"#,
            r#"{"failEntries": 0}"#,
            r#"{"status": 500, "failEntries": 1}"#,
            r#"{}"#,
            r#"{"status": 500, "times": 0}"#,
            r#"{"status": 500, "method": "POST"}"#,
        ] {
            assert!(fault(refused).is_err(), "{refused}");
        }
    }
}
