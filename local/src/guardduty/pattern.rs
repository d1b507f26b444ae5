//! EventBridge event patterns, the subset the template's rules use (EventBridge User Guide,
//! "Creating Amazon EventBridge event patterns" and "Content filtering in Amazon EventBridge
//! event patterns"): nested objects of fields, each leaf an array of exact values (strings,
//! numbers, booleans, null) or `{"prefix": "..."}` matchers. A field the event lacks does not
//! match; an array in the event matches when any of its elements does. Any other construct
//! (`anything-but`, `numeric`, `exists`, `suffix`, ...) is refused when the template is read,
//! so a rule the stand-in cannot evaluate stops it instead of matching wrongly.

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
            Self::Fields(fields) => fields
                .iter()
                .all(|(name, pattern)| event.get(name).is_some_and(|value| pattern.matches(value))),
            Self::AnyOf(matchers) => {
                let one = |value: &Value| matchers.iter().any(|m| m.matches(value));
                match event {
                    Value::Array(values) => values.iter().any(one),
                    value => one(value),
                }
            }
        }
    }
}

impl Matcher {
    fn parse(value: &Value) -> Result<Self, String> {
        match value {
            Value::Object(filter) => match (filter.len(), filter.get("prefix")) {
                (1, Some(Value::String(prefix))) => Ok(Self::Prefix(prefix.clone())),
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
            json!({"a": "x"}),
            json!({}),
            json!(["a"]),
        ] {
            assert!(Pattern::parse(&refused).is_err(), "{refused}");
        }
    }
}
