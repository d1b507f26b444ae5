//! A PutEvents request read as EventBridge reads it (EventBridge API Reference, "PutEvents" and
//! "PutEventsRequestEntry"; EventBridge User Guide, "Calculating PutEvents event entry size"):
//! 1 to 10 entries whose sizes add up to at most 256 KB, or the whole call is refused with a
//! `ValidationException`; then each entry on its own: Source, DetailType and Detail (a JSON
//! object) are required, or that entry alone fails (`InvalidArgument`, `MalformedDetail`, the
//! codes of "PutEventsResultEntry").

use serde_json::Value;
use time::OffsetDateTime;

/// At most 10 entries a call.
pub const MAX_ENTRIES: usize = 10;
/// The entries of one call add up to at most 256 KB.
pub const MAX_TOTAL_BYTES: usize = 256 * 1024;
/// A `Time` counts 14 bytes, whatever its form.
const TIME_BYTES: usize = 14;

/// One entry that EventBridge accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub source: String,
    pub detail_type: String,
    pub detail: Value,
    /// The bus's name (an ARN is reduced to its name); `default` when none is given.
    pub bus: String,
    pub time: Option<OffsetDateTime>,
    pub resources: Vec<String>,
}

/// Why one entry failed, as `PutEventsResultEntry` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError {
    pub code: &'static str,
    pub message: String,
}

impl EntryError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The call's entries, each accepted or refused; Err is the `ValidationException`'s message.
pub fn read_entries(
    request: &Value,
    region: &str,
    account: &str,
) -> Result<Vec<Result<Entry, EntryError>>, String> {
    let entries = match &request["Entries"] {
        Value::Array(entries) => entries,
        Value::Null => {
            return Err(
                "1 validation error detected: Value null at 'entries' failed to satisfy \
                        constraint: Member must not be null"
                    .into(),
            );
        }
        _ => return Err("Start of list found where not expected".into()),
    };
    if entries.is_empty() || entries.len() > MAX_ENTRIES {
        let bound = if entries.is_empty() {
            "greater than or equal to 1"
        } else {
            "less than or equal to 10"
        };
        return Err(format!(
            "1 validation error detected: Value at 'entries' failed to satisfy constraint: \
             Member must have length {bound}"
        ));
    }
    if entries.iter().map(entry_size).sum::<usize>() > MAX_TOTAL_BYTES {
        return Err("Total size of the entries in the request is over the limit.".into());
    }
    Ok(entries
        .iter()
        .map(|entry| read_entry(entry, region, account))
        .collect())
}

/// An entry's size as EventBridge counts it: Time, Source, DetailType, Detail and each resource,
/// in UTF-8 bytes.
pub fn entry_size(entry: &Value) -> usize {
    let text = |name: &str| entry[name].as_str().map_or(0, str::len);
    let time = if entry["Time"].is_null() {
        0
    } else {
        TIME_BYTES
    };
    let resources: usize = entry["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::len)
        .sum();
    time + text("Source") + text("DetailType") + text("Detail") + resources
}

fn read_entry(entry: &Value, region: &str, account: &str) -> Result<Entry, EntryError> {
    let required = |name: &str| {
        entry[name]
            .as_str()
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                EntryError::new(
                    "InvalidArgument",
                    format!(
                        "Parameter {name} is not valid. Reason: {name} is a required argument."
                    ),
                )
            })
    };
    let source = required("Source")?;
    let detail_type = required("DetailType")?;
    let detail = required("Detail")?;
    let detail = serde_json::from_str::<Value>(&detail)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| EntryError::new("MalformedDetail", "Detail is malformed."))?;
    let bus = match entry["EventBusName"].as_str() {
        None | Some("") => "default".to_owned(),
        Some(name) => bus_name(name, region, account).ok_or_else(|| {
            EntryError::new(
                "InvalidArgument",
                format!("Parameter EventBusName is not valid. Reason: {name:?} is not a bus of this account and region."),
            )
        })?,
    };
    // JSON 1.1 sends a timestamp as epoch seconds.
    let time = match &entry["Time"] {
        Value::Null => None,
        value => {
            let seconds = value.as_f64().and_then(|seconds| {
                OffsetDateTime::from_unix_timestamp(seconds.floor() as i64).ok()
            });
            Some(seconds.ok_or_else(|| {
                EntryError::new("InvalidArgument", "Parameter Time is not valid.")
            })?)
        }
    };
    let resources = entry["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    Ok(Entry {
        source,
        detail_type,
        detail,
        bus,
        time,
        resources,
    })
}

/// A bus's name, given as a name or as the ARN of a bus of this account and region.
fn bus_name(name: &str, region: &str, account: &str) -> Option<String> {
    match name.strip_prefix("arn:") {
        None => Some(name.to_owned()),
        Some(_) => name
            .strip_prefix(&format!("arn:aws:events:{region}:{account}:event-bus/"))
            .filter(|name| !name.is_empty())
            .map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(detail: &str) -> Value {
        json!({"Source": "presign-gate", "DetailType": "File Reserved", "Detail": detail,
               "EventBusName": "presign-gate-local-files"})
    }

    fn read(entries: Vec<Value>) -> Result<Vec<Result<Entry, EntryError>>, String> {
        read_entries(&json!({ "Entries": entries }), "us-east-1", "123456789012")
    }

    #[test]
    fn a_call_takes_one_to_ten_entries_of_256_kb_in_all() {
        assert_eq!(read(vec![entry("{}"); 10]).unwrap().len(), 10);
        assert!(
            read(vec![entry("{}"); 11])
                .unwrap_err()
                .contains("less than or equal to 10")
        );
        assert!(
            read(vec![])
                .unwrap_err()
                .contains("greater than or equal to 1")
        );
        assert!(read_entries(&json!({}), "us-east-1", "1").is_err());
        let overhead = "presign-gate".len() + "File Reserved".len() + r#"{"a":""}"#.len();
        let fits = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_TOTAL_BYTES - overhead));
        assert_eq!(entry_size(&entry(&fits)), MAX_TOTAL_BYTES);
        assert!(read(vec![entry(&fits)]).unwrap()[0].is_ok());
        let over = format!(
            r#"{{"a":"{}"}}"#,
            "x".repeat(MAX_TOTAL_BYTES - overhead + 1)
        );
        assert_eq!(
            read(vec![entry(&over)]).unwrap_err(),
            "Total size of the entries in the request is over the limit."
        );
        let half = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_TOTAL_BYTES / 2));
        assert!(
            read(vec![entry(&half), entry(&half)]).is_err(),
            "the sizes add up"
        );
    }

    #[test]
    fn each_entry_needs_its_fields_and_a_json_object() {
        let results = read(vec![
            entry(r#"{"owner":"a"}"#),
            json!({"Source": "s", "Detail": "{}"}),
            entry("[1]"),
            entry("not json"),
            json!({"DetailType": "t", "Detail": "{}", "Source": ""}),
        ])
        .unwrap();
        let accepted = results[0].as_ref().unwrap();
        assert_eq!(accepted.detail, json!({"owner": "a"}));
        assert_eq!(accepted.bus, "presign-gate-local-files");
        let codes: Vec<_> = results[1..]
            .iter()
            .map(|r| r.as_ref().unwrap_err().code)
            .collect();
        assert_eq!(
            codes,
            [
                "InvalidArgument",
                "MalformedDetail",
                "MalformedDetail",
                "InvalidArgument"
            ]
        );
        assert!(
            results[1]
                .as_ref()
                .unwrap_err()
                .message
                .contains("DetailType")
        );
    }

    #[test]
    fn a_bus_is_named_by_name_or_arn_and_defaults_to_default() {
        assert_eq!(bus_name("b", "us-east-1", "1"), Some("b".into()));
        assert_eq!(
            bus_name("arn:aws:events:us-east-1:1:event-bus/b", "us-east-1", "1"),
            Some("b".into())
        );
        assert_eq!(
            bus_name("arn:aws:events:eu-west-1:1:event-bus/b", "us-east-1", "1"),
            None
        );
        let mut no_bus = entry("{}");
        no_bus.as_object_mut().unwrap().remove("EventBusName");
        no_bus["Time"] = json!(1_700_000_000.5);
        let read = read(vec![no_bus]).unwrap().remove(0).unwrap();
        assert_eq!(read.bus, "default");
        assert_eq!(read.time.unwrap().unix_timestamp(), 1_700_000_000);
    }
}
