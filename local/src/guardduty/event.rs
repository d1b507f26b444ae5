//! What a scan finds and how GuardDuty reports it: the tag value and the EventBridge event
//! (GuardDuty User Guide, "Monitoring S3 object scans with Amazon EventBridge" for the event,
//! "Monitoring S3 object scans in Malware Protection for S3" for the five result values).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

/// The tag GuardDuty puts on a scanned object.
pub const STATUS_TAG: &str = "GuardDutyMalwareScanStatus";
/// The name GuardDuty gives the EICAR test file's finding.
const EICAR_THREAT: &str = "EICAR-Test-File (not a virus)";

/// A scan's result, as the tag value and the event's `scanResultStatus` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanResult {
    NoThreatsFound,
    ThreatsFound,
    Unsupported,
    AccessDenied,
    Failed,
}

impl ScanResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoThreatsFound => "NO_THREATS_FOUND",
            Self::ThreatsFound => "THREATS_FOUND",
            Self::Unsupported => "UNSUPPORTED",
            Self::AccessDenied => "ACCESS_DENIED",
            Self::Failed => "FAILED",
        }
    }

    /// The event's `scanStatus`.
    fn scan_status(self) -> &'static str {
        match self {
            Self::NoThreatsFound | Self::ThreatsFound => "COMPLETED",
            Self::Unsupported | Self::AccessDenied => "SKIPPED",
            Self::Failed => "FAILED",
        }
    }
}

/// The EICAR anti-virus test file's 68 characters ("EICAR Anti-Virus Test File", eicar.org).
/// Assembled at run time so that no file of the repository is itself flagged by a scanner.
pub fn eicar() -> String {
    [
        r"X5O!P%@AP[4\PZX54(P^)7CC)7}$",
        "EICAR-STANDARD-ANTIVIRUS",
        "-TEST-FILE!$H+H*",
    ]
    .concat()
}

/// The stand-in's engine: the EICAR test string anywhere in the object is a threat.
pub fn scan(bytes: &[u8]) -> ScanResult {
    let signature = eicar();
    let found = bytes
        .windows(signature.len())
        .any(|window| window == signature.as_bytes());
    if found {
        ScanResult::ThreatsFound
    } else {
        ScanResult::NoThreatsFound
    }
}

/// The scanned object, as the event names it.
#[derive(Debug, Clone)]
pub struct ScannedObject {
    pub bucket: String,
    /// As stored, not URL-encoded (unlike S3's own notifications).
    pub key: String,
    /// Without quotes.
    pub e_tag: String,
    /// None in a bucket without versioning.
    pub version_id: Option<String>,
}

/// The `GuardDuty Malware Protection Object Scan Result` event.
pub fn scan_result_event(
    object: &ScannedObject,
    result: ScanResult,
    plan_arn: &str,
    account: &str,
    region: &str,
) -> Value {
    let mut details = json!({
        "bucketName": object.bucket,
        "objectKey": object.key,
        "eTag": object.e_tag,
        "s3Throttled": false,
    });
    if let Some(version) = &object.version_id {
        details["versionId"] = json!(version);
    }
    let threats = match result {
        ScanResult::ThreatsFound => json!([{ "name": EICAR_THREAT }]),
        _ => Value::Null,
    };
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "GuardDuty Malware Protection Object Scan Result",
        "source": "aws.guardduty",
        "account": account,
        "time": event_time(),
        "region": region,
        "resources": [plan_arn],
        "detail": {
            "schemaVersion": "1.0",
            "scanStatus": result.scan_status(),
            "resourceType": "S3_OBJECT",
            "s3ObjectDetails": details,
            "scanResultDetails": { "scanResultStatus": result.as_str(), "threats": threats },
        }
    })
}

/// EventBridge's `time`: RFC 3339, whole seconds, UTC.
fn event_time() -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eicar_string_is_a_threat_wherever_it_is_and_nothing_else_is() {
        let signature = eicar();
        assert_eq!(signature.len(), 68);
        assert_eq!(scan(signature.as_bytes()), ScanResult::ThreatsFound);
        let embedded = format!("header\n{signature}\ntrailer");
        assert_eq!(scan(embedded.as_bytes()), ScanResult::ThreatsFound);
        let near_miss = signature.replace("TEST", "TEXT");
        assert_eq!(scan(near_miss.as_bytes()), ScanResult::NoThreatsFound);
        assert_eq!(
            scan(&signature.as_bytes()[..67]),
            ScanResult::NoThreatsFound
        );
        assert_eq!(scan(b""), ScanResult::NoThreatsFound);
    }

    #[test]
    fn the_event_has_guardduty_s_shape() {
        let object = ScannedObject {
            bucket: "files".into(),
            key: "users/a b/c".into(),
            e_tag: "abc".into(),
            version_id: Some("v1".into()),
        };
        let event = scan_result_event(&object, ScanResult::ThreatsFound, "arn:plan", "1", "r");
        assert_eq!(event["detail"]["scanStatus"], "COMPLETED");
        assert_eq!(
            event["detail"]["s3ObjectDetails"]["objectKey"],
            "users/a b/c"
        );
        assert_eq!(event["detail"]["s3ObjectDetails"]["versionId"], "v1");
        assert_eq!(
            event["detail"]["scanResultDetails"]["threats"][0]["name"],
            EICAR_THREAT
        );
        assert_eq!(event["resources"], json!(["arn:plan"]));
        let time = event["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 20, "{time}");
        assert_eq!(
            uuid::Uuid::parse_str(event["id"].as_str().unwrap())
                .unwrap()
                .get_version_num(),
            4
        );

        let skipped = scan_result_event(
            &ScannedObject {
                version_id: None,
                ..object
            },
            ScanResult::AccessDenied,
            "arn:plan",
            "1",
            "r",
        );
        assert_eq!(skipped["detail"]["scanStatus"], "SKIPPED");
        assert!(
            skipped["detail"]["s3ObjectDetails"]
                .get("versionId")
                .is_none()
        );
        assert_eq!(
            skipped["detail"]["scanResultDetails"]["threats"],
            Value::Null
        );
        assert_eq!(ScanResult::Failed.scan_status(), "FAILED");
    }
}
