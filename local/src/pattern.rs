//! Event patterns, the subset the template uses (EventBridge User Guide, "Creating Amazon
//! EventBridge event patterns" and "Content filtering in Amazon EventBridge event patterns"): nested
//! objects of fields, each leaf an array of exact values (strings, numbers, booleans, null),
//! `{"prefix": "..."}` or `{"exists": true|false}` matchers. A field the event lacks matches only
//! `{"exists": false}`; an array in the event matches when any of its elements does; `exists: true`
//! matches leaf values only, never an object, as the guide says. Any other construct
//! (`anything-but`, `numeric`, `suffix`, ...) is refused when the template is read, so a rule the
//! stand-in cannot evaluate stops it instead of matching wrongly.
//!
//! EventBridge rules (the GuardDuty stand-in's) and Lambda's event filtering (the stream poller's
//! `FilterCriteria`: Lambda Developer Guide, "Control which events Lambda sends to your function",
//! which uses the same syntax) both read patterns here.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    Fields(BTreeMap<String, Pattern>),
    AnyOf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    Exact(Value),
    Prefix(String),
    /// `{"exists": true}` (a leaf value is there) or `{"exists": false}` (the field is absent).
    Exists(bool),
}

impl Pattern {
    /// A rule's `EventPattern`, intrinsic functions resolved.
    pub fn parse(value: &Value) -> Result<Self, String> {
        match value {
            Value::Object(fields) if !fields.is_empty() => fields
                .iter()
                .map(|(name, inner)| {
                    let inner = match inner {
                        Value::Array(matchers) => matchers
                            .iter()
                            .map(Matcher::parse)
                            .collect::<Result<_, _>>()
                            .map(Self::AnyOf),
                        Value::Object(_) => Self::parse(inner),
                        other => Err(format!("{name}: {other} is neither an array nor an object")),
                    }?;
                    Ok((name.clone(), inner))
                })
                .collect::<Result<_, String>>()
                .map(Self::Fields),
            other => Err(format!(
                "an event pattern is a non-empty object, not {other}"
            )),
        }
    }

    pub fn matches(&self, event: &Value) -> bool {
        match self {
            Self::Fields(fields) => fields.iter().all(|(name, pattern)| match event.get(name) {
                Some(value) => pattern.matches(value),
                None => pattern.matches_absent(),
            }),
            Self::AnyOf(matchers) => {
                let one = |value: &Value| matchers.iter().any(|m| m.matches(value));
                match event {
                    Value::Array(values) => values.iter().any(one),
                    value => one(value),
                }
            }
        }
    }

    /// Whether a field the event lacks matches: only where every leaf under it says
    /// `{"exists": false}`.
    fn matches_absent(&self) -> bool {
        match self {
            Self::Fields(fields) => fields.values().all(Self::matches_absent),
            Self::AnyOf(matchers) => matchers.contains(&Matcher::Exists(false)),
        }
    }
}

impl Matcher {
    fn parse(value: &Value) -> Result<Self, String> {
        match value {
            Value::Object(filter) => match (filter.len(), filter.get("prefix")) {
                (1, Some(Value::String(prefix))) => Ok(Self::Prefix(prefix.clone())),
                (1, None) if filter.get("exists").is_some_and(Value::is_boolean) => {
                    Ok(Self::Exists(filter["exists"] == Value::Bool(true)))
                }
                _ => Err(format!(
                    "local-aws cannot evaluate the event filter {value}"
                )),
            },
            Value::Array(_) => Err(format!("{value} is not a value to match")),
            exact => Ok(Self::Exact(exact.clone())),
        }
    }

    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::Prefix(prefix), Value::String(text)) => text.starts_with(prefix.as_str()),
            (Self::Prefix(_), _) => false,
            (Self::Exists(exists), value) => *exists && !value.is_object(),
            (Self::Exact(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Self::Exact(exact), value) => exact == value,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule() -> Pattern {
        Pattern::parse(&json!({
            "source": ["aws.guardduty"],
            "detail-type": ["GuardDuty Malware Protection Object Scan Result"],
            "resources": ["arn:aws:guardduty:us-east-1:123456789012:malware-protection-plan/p1"],
            "detail": {"s3ObjectDetails": {"bucketName": ["files"], "objectKey": [{"prefix": "users/"}]}}
        }))
        .unwrap()
    }

    fn event(plan: &str, bucket: &str, key: &str) -> Value {
        json!({
            "source": "aws.guardduty",
            "detail-type": "GuardDuty Malware Protection Object Scan Result",
            "resources": [format!("arn:aws:guardduty:us-east-1:123456789012:malware-protection-plan/{plan}")],
            "detail": {"s3ObjectDetails": {"bucketName": bucket, "objectKey": key, "s3Throttled": false}}
        })
    }

    #[test]
    fn the_scan_result_rule_takes_its_plan_bucket_and_prefix_only() {
        let rule = rule();
        assert!(rule.matches(&event("p1", "files", "users/a/b")));
        assert!(
            !rule.matches(&event("p1", "other", "users/a/b")),
            "wrong bucket"
        );
        assert!(
            !rule.matches(&event("p1", "files", "reconcile/x")),
            "wrong prefix"
        );
        assert!(
            !rule.matches(&event("p2", "files", "users/a/b")),
            "wrong plan"
        );
        let mut no_detail = event("p1", "files", "users/a/b");
        no_detail["detail"] = json!({});
        assert!(
            !rule.matches(&no_detail),
            "a field the event lacks does not match"
        );
        let mut other_source = event("p1", "files", "users/a/b");
        other_source["source"] = json!("aws.s3");
        assert!(!rule.matches(&other_source));
    }

    #[test]
    fn exact_values_of_every_kind_and_what_is_refused() {
        let pattern = Pattern::parse(&json!({"a": [1, true, null, "x"]})).unwrap();
        for value in [
            json!(1.0),
            json!(true),
            json!(null),
            json!("x"),
            json!(["y", "x"]),
        ] {
            assert!(pattern.matches(&json!({"a": value})), "{value}");
        }
        assert!(!pattern.matches(&json!({"a": "1"})));
        for refused in [
            json!({"a": [{"anything-but": "x"}]}),
            json!({"a": [{"prefix": "x", "suffix": "y"}]}),
            json!({"a": [{"numeric": [">", 1]}]}),
            json!({"a": [{"exists": "yes"}]}),
            json!({"a": "x"}),
            json!({}),
            json!(["a"]),
        ] {
            assert!(Pattern::parse(&refused).is_err(), "{refused}");
        }
    }

    /// The publisher's FilterCriteria: a file's status in the new or the old image.
    #[test]
    fn exists_matches_leaves_that_are_there_and_fields_that_are_not() {
        let new_status = Pattern::parse(
            &json!({"dynamodb": {"NewImage": {"status": {"S": [{"exists": true}]}}}}),
        )
        .unwrap();
        let record = |image: Value| json!({"eventName": "INSERT", "dynamodb": image});
        assert!(new_status.matches(&record(json!({"NewImage": {"status": {"S": "pending"}}}))));
        assert!(!new_status.matches(&record(json!({"NewImage": {"used": {"N": "1"}}}))));
        assert!(!new_status.matches(&record(json!({"OldImage": {"status": {"S": "pending"}}}))));
        assert!(
            !new_status.matches(&record(json!({"NewImage": {"status": {"S": {"x": 1}}}}))),
            "exists matches leaves only"
        );
        let no_status =
            Pattern::parse(&json!({"dynamodb": {"NewImage": {"status": [{"exists": false}]}}}))
                .unwrap();
        assert!(no_status.matches(&record(json!({"NewImage": {"used": {"N": "1"}}}))));
        assert!(
            no_status.matches(&record(json!({"OldImage": {}}))),
            "no NewImage at all"
        );
        assert!(!no_status.matches(&record(json!({"NewImage": {"status": {"S": "x"}}}))));
    }
}
