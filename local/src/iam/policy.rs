//! IAM policy statements and their evaluation, for the subset of the policy language the template
//! uses. Anything else in a statement (an operator, a field) is refused when the template is read,
//! so a template that outgrows this subset stops the local stack instead of being half-enforced.
//!
//! Follows the IAM User Guide: "IAM JSON policy elements: Condition operators" (operators, the
//! `...IfExists` suffix, `Null`, a key missing from the request), "IAM JSON policy elements:
//! Action / Resource" (wildcards `*` and `?`; actions are case-insensitive, resources are not),
//! and "Policy evaluation logic" (see [`super::Authorizer`]).

use std::collections::BTreeMap;

use serde_norway::Value;

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Who a bucket policy statement applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    /// `"*"`: everyone, the account's own principals included.
    Everyone,
    /// `{"AWS": [arn, ...]}`, `{"Service": [...]}`: the principal ARNs or service names named.
    Named(Vec<String>),
}

/// One condition test: `Operator: {key: [values]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operator: Operator,
    /// `...IfExists`: a key missing from the request passes.
    pub if_exists: bool,
    /// `ForAllValues:` or `ForAnyValue:` before the operator.
    pub set: Option<SetQualifier>,
    pub key: String,
    pub values: Vec<String>,
}

/// The set operators of multivalued keys (IAM User Guide, "Set operators for multivalued context
/// keys"). Every key the local stack supplies has one value, so each tests that value as the bare
/// operator would; they differ on a missing key: `ForAllValues` holds (every one of no values
/// matches), `ForAnyValue` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    ForAllValues,
    ForAnyValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    ArnEquals,
    ArnNotEquals,
    ArnLike,
    ArnNotLike,
    Null,
}

impl Operator {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "StringEquals" => Self::StringEquals,
            "StringNotEquals" => Self::StringNotEquals,
            "StringLike" => Self::StringLike,
            "StringNotLike" => Self::StringNotLike,
            "NumericEquals" => Self::NumericEquals,
            "NumericNotEquals" => Self::NumericNotEquals,
            "NumericLessThan" => Self::NumericLessThan,
            "NumericLessThanEquals" => Self::NumericLessThanEquals,
            "NumericGreaterThan" => Self::NumericGreaterThan,
            "NumericGreaterThanEquals" => Self::NumericGreaterThanEquals,
            "Bool" => Self::Bool,
            "ArnEquals" => Self::ArnEquals,
            "ArnNotEquals" => Self::ArnNotEquals,
            "ArnLike" => Self::ArnLike,
            "ArnNotLike" => Self::ArnNotLike,
            "Null" => Self::Null,
            _ => return None,
        })
    }

    /// The negated operators match a request that lacks the key ("Condition operators": a
    /// negated operator on a missing key evaluates to true).
    fn negated(self) -> bool {
        matches!(
            self,
            Self::StringNotEquals
                | Self::StringNotLike
                | Self::NumericNotEquals
                | Self::ArnNotEquals
                | Self::ArnNotLike
        )
    }
}

/// One statement of a role's policy or of the bucket policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The statement's `Sid`, or `<policy>[<index>]` when it has none: what a refusal names.
    pub sid: String,
    pub effect: Effect,
    /// Only in resource-based policies.
    pub principals: Option<Principals>,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// All of them must hold.
    pub conditions: Vec<Condition>,
}

/// What a statement is tested against: one action on one resource, with the request's
/// condition keys (lower-cased names: condition keys are case-insensitive).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub action: String,
    pub resource: String,
    pub keys: BTreeMap<String, String>,
}

impl RequestContext {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            resource: resource.into(),
            keys: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.keys.insert(key.to_ascii_lowercase(), value.into());
        self
    }
}

impl Statement {
    /// Reads a statement whose values are already plain (intrinsics resolved).
    pub fn parse(value: &Value, default_sid: String) -> Result<Self, String> {
        let mapping = value
            .as_mapping()
            .ok_or_else(|| format!("{default_sid}: a statement is not a mapping"))?;
        for key in mapping.keys() {
            let key = key.as_str().unwrap_or_default();
            if !matches!(
                key,
                "Sid" | "Effect" | "Principal" | "Action" | "Resource" | "Condition"
            ) {
                return Err(format!(
                    "{default_sid}: the local IAM does not evaluate {key:?}"
                ));
            }
        }
        let sid = value["Sid"].as_str().map_or(default_sid, str::to_owned);
        let effect = match value["Effect"].as_str() {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            other => return Err(format!("{sid}: Effect {other:?}")),
        };
        let principals = match &value["Principal"] {
            Value::Null => None,
            Value::String(star) if star == "*" => Some(Principals::Everyone),
            Value::Mapping(by_kind) => {
                let mut named = Vec::new();
                for (kind, names) in by_kind {
                    if !matches!(kind.as_str(), Some("AWS" | "Service")) {
                        return Err(format!("{sid}: Principal {kind:?}"));
                    }
                    named.extend(strings(names).map_err(|e| format!("{sid}: Principal {e}"))?);
                }
                if named.iter().any(|n| n == "*") {
                    Some(Principals::Everyone)
                } else {
                    Some(Principals::Named(named))
                }
            }
            other => return Err(format!("{sid}: Principal {other:?}")),
        };
        let actions = strings(&value["Action"]).map_err(|e| format!("{sid}: Action {e}"))?;
        let resources = strings(&value["Resource"]).map_err(|e| format!("{sid}: Resource {e}"))?;
        let mut conditions = Vec::new();
        if let Some(blocks) = value["Condition"].as_mapping() {
            for (operator, tests) in blocks {
                let name = operator.as_str().unwrap_or_default();
                let (set, unqualified) = if let Some(rest) = name.strip_prefix("ForAllValues:") {
                    (Some(SetQualifier::ForAllValues), rest)
                } else if let Some(rest) = name.strip_prefix("ForAnyValue:") {
                    (Some(SetQualifier::ForAnyValue), rest)
                } else {
                    (None, name)
                };
                let (base, if_exists) = match unqualified.strip_suffix("IfExists") {
                    Some(base) => (base, true),
                    None => (unqualified, false),
                };
                let operator = Operator::parse(base)
                    .ok_or_else(|| format!("{sid}: the local IAM has no operator {name:?}"))?;
                let tests = tests
                    .as_mapping()
                    .ok_or_else(|| format!("{sid}: {name} is not a mapping"))?;
                for (key, values) in tests {
                    conditions.push(Condition {
                        operator,
                        if_exists,
                        set,
                        key: key.as_str().unwrap_or_default().to_ascii_lowercase(),
                        values: strings(values).map_err(|e| format!("{sid}: {name} {e}"))?,
                    });
                }
            }
        }
        if actions.is_empty() || resources.is_empty() {
            return Err(format!("{sid}: no Action or no Resource"));
        }
        Ok(Self {
            sid,
            effect,
            principals,
            actions,
            resources,
            conditions,
        })
    }

    /// Whether this statement applies to the request: its action, its resource and every
    /// condition match. The principal is the caller's business (see [`super::Authorizer`]).
    pub fn matches(&self, request: &RequestContext) -> bool {
        self.actions.iter().any(|pattern| {
            glob(
                &pattern.to_ascii_lowercase(),
                &request.action.to_ascii_lowercase(),
            )
        }) && self
            .resources
            .iter()
            .any(|pattern| glob(pattern, &request.resource))
            && self
                .conditions
                .iter()
                .all(|condition| condition.holds(request.keys.get(&condition.key)))
    }
}

impl Condition {
    fn holds(&self, value: Option<&String>) -> bool {
        if self.operator == Operator::Null {
            // `Null: {key: "true"}` holds when the key is absent, `"false"` when present.
            let absent = value.is_none();
            return self
                .values
                .iter()
                .any(|expected| expected.eq_ignore_ascii_case("true") == absent);
        }
        let Some(value) = value else {
            return match self.set {
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => self.if_exists || self.operator.negated(),
            };
        };
        let any = |test: &dyn Fn(&str) -> bool| self.values.iter().any(|v| test(v));
        match self.operator {
            Operator::StringEquals => any(&|v| v == value),
            Operator::StringNotEquals => !any(&|v| v == value),
            Operator::StringLike => any(&|v| glob(v, value)),
            Operator::ArnEquals | Operator::ArnLike => any(&|v| arn_matches(v, value)),
            Operator::ArnNotEquals | Operator::ArnNotLike => !any(&|v| arn_matches(v, value)),
            Operator::StringNotLike => !any(&|v| glob(v, value)),
            Operator::Bool => any(&|v| v.eq_ignore_ascii_case(value)),
            Operator::NumericEquals => numeric(value, &self.values, |a, b| a == b),
            Operator::NumericNotEquals => !numeric(value, &self.values, |a, b| a == b),
            Operator::NumericLessThan => numeric(value, &self.values, |a, b| a < b),
            Operator::NumericLessThanEquals => numeric(value, &self.values, |a, b| a <= b),
            Operator::NumericGreaterThan => numeric(value, &self.values, |a, b| a > b),
            Operator::NumericGreaterThanEquals => numeric(value, &self.values, |a, b| a >= b),
            Operator::Null => unreachable!("handled above"),
        }
    }
}

/// A request value that is not a number matches no numeric test.
fn numeric(value: &str, expected: &[String], test: impl Fn(f64, f64) -> bool) -> bool {
    let Ok(value) = value.parse::<f64>() else {
        return false;
    };
    expected
        .iter()
        .filter_map(|e| e.parse::<f64>().ok())
        .any(|e| test(value, e))
}

/// A string or a list of strings (numbers and booleans as YAML wrote them).
fn strings(value: &Value) -> Result<Vec<String>, String> {
    let one = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{other:?} is not a string")),
    };
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// The ARN operators ("IAM JSON policy elements: Condition operators", "Amazon Resource Name
/// (ARN) condition operators"): `ArnEquals` and `ArnLike` alike compare each of the six
/// colon-separated parts separately, case-sensitively, each part with the wildcards `*` and `?`.
fn arn_matches(pattern: &str, arn: &str) -> bool {
    let parts = |text: &'_ str| text.splitn(6, ':').map(str::to_owned).collect::<Vec<_>>();
    let (pattern, arn) = (parts(pattern), parts(arn));
    pattern.len() == 6 && arn.len() == 6 && pattern.iter().zip(&arn).all(|(p, a)| glob(p, a))
}

/// IAM's wildcards: `*` any run of characters (`/` included), `?` any one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(yaml: &str) -> Statement {
        Statement::parse(&serde_norway::from_str(yaml).unwrap(), "test[0]".into()).unwrap()
    }

    #[test]
    fn wildcards_follow_iam() {
        assert!(glob("arn:aws:s3:::b/users/*", "arn:aws:s3:::b/users/a/b/c"));
        assert!(glob("arn:aws:s3:::b/users/*", "arn:aws:s3:::b/users/"));
        assert!(!glob(
            "arn:aws:s3:::b/users/*",
            "arn:aws:s3:::b/reconcile/cursor"
        ));
        assert!(glob("s3:Get*", "s3:GetObject"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn actions_are_case_insensitive_and_resources_are_not() {
        let s =
            statement("{Effect: Allow, Action: s3:getobject, Resource: 'arn:aws:s3:::b/users/*'}");
        assert!(s.matches(&RequestContext::new(
            "s3:GetObject",
            "arn:aws:s3:::b/users/x"
        )));
        assert!(!s.matches(&RequestContext::new(
            "s3:GetObject",
            "arn:aws:s3:::b/Users/x"
        )));
        assert!(!s.matches(&RequestContext::new(
            "s3:PutObject",
            "arn:aws:s3:::b/users/x"
        )));
    }

    #[test]
    fn a_missing_key_fails_a_test_but_passes_a_negated_one_or_if_exists() {
        let equals = statement(
            "{Effect: Allow, Action: s3:ListBucket, Resource: 'arn:aws:s3:::b', Condition: {StringEquals: {'s3:prefix': users/}}}",
        );
        let list = RequestContext::new("s3:ListBucket", "arn:aws:s3:::b");
        assert!(
            !equals.matches(&list),
            "no prefix: the prefix-limited grant does not apply"
        );
        assert!(equals.matches(&list.clone().with("s3:prefix", "users/")));
        assert!(!equals.matches(&list.clone().with("s3:prefix", "reconcile/")));

        let not_equals = statement(
            "{Effect: Deny, Action: '*', Resource: '*', Condition: {StringNotEquals: {'s3:prefix': users/}}}",
        );
        assert!(not_equals.matches(&list));
        assert!(!not_equals.matches(&list.clone().with("s3:prefix", "users/")));

        let if_exists = statement(
            "{Effect: Allow, Action: '*', Resource: '*', Condition: {StringEqualsIfExists: {'s3:prefix': users/}}}",
        );
        assert!(if_exists.matches(&list));
        assert!(!if_exists.matches(&list.with("s3:prefix", "x/")));
    }

    #[test]
    fn null_bool_and_numeric_tests() {
        let s = statement(
            "{Effect: Deny, Action: s3:PutObject, Resource: '*', Condition: {'Null': {'s3:if-none-match': 'true'}, Bool: {'s3:ObjectCreationOperation': 'true'}}}",
        );
        let put = RequestContext::new("s3:PutObject", "arn:aws:s3:::b/users/x");
        assert!(s.matches(&put.clone().with("s3:ObjectCreationOperation", "true")));
        assert!(
            !s.matches(
                &put.clone()
                    .with("s3:ObjectCreationOperation", "true")
                    .with("s3:if-none-match", "*")
            )
        );
        assert!(!s.matches(&put.clone().with("s3:ObjectCreationOperation", "false")));

        let age = statement(
            "{Effect: Deny, Action: 's3:*', Resource: '*', Condition: {NumericGreaterThan: {'s3:signatureAge': '900000'}}}",
        );
        assert!(age.matches(&put.clone().with("s3:signatureAge", "900001")));
        assert!(!age.matches(&put.clone().with("s3:signatureAge", "900000")));
        assert!(!age.matches(&put.clone().with("s3:signatureAge", "not a number")));
        assert!(!age.matches(&put), "no signature age: a numeric test fails");
    }

    #[test]
    fn arn_operators_compare_part_by_part_and_the_negated_ones_pass_a_missing_key() {
        let scanner = "arn:aws:iam::123456789012:role/scanner";
        let not_scanner = statement(&format!(
            "{{Effect: Deny, Action: 's3:PutObjectTagging', Resource: '*', Condition: {{ArnNotEquals: {{'aws:PrincipalArn': '{scanner}'}}}}}}"
        ));
        let tag = RequestContext::new("s3:PutObjectTagging", "arn:aws:s3:::b/users/x");
        assert!(!not_scanner.matches(&tag.clone().with("aws:PrincipalArn", scanner)));
        assert!(
            not_scanner.matches(
                &tag.clone()
                    .with("aws:PrincipalArn", "arn:aws:iam::123456789012:role/api")
            )
        );
        assert!(
            not_scanner.matches(&tag),
            "no principal ARN: a negated test holds"
        );

        let like = statement(
            "{Effect: Allow, Action: '*', Resource: '*', Condition: {ArnLike: {'aws:SourceArn': 'arn:aws:guardduty:*:123456789012:malware-protection-plan/*'}}}",
        );
        let from = |arn: &str| tag.clone().with("aws:SourceArn", arn);
        assert!(like.matches(&from(
            "arn:aws:guardduty:us-east-1:123456789012:malware-protection-plan/p"
        )));
        assert!(!like.matches(&from(
            "arn:aws:guardduty:us-east-1:999999999999:malware-protection-plan/p"
        )));
        // `*` stays within its part: a region wildcard cannot swallow the account.
        assert!(!like.matches(&from(
            "arn:aws:guardduty:us-east-1:123456789012:x:malware-protection-plan/p"
        )));
        let not_like = statement(
            "{Effect: Deny, Action: '*', Resource: '*', Condition: {ArnNotLike: {'aws:PrincipalArn': 'arn:aws:iam::*:role/scan*'}}}",
        );
        assert!(!not_like.matches(&tag.clone().with("aws:PrincipalArn", scanner)));
        assert!(
            not_like.matches(
                &tag.clone()
                    .with("aws:PrincipalArn", "arn:aws:iam::1:user/scanner")
            )
        );
        assert!(
            not_like.matches(&tag.with("aws:PrincipalArn", "ARN:aws:iam::1:role/scanner")),
            "case-sensitive"
        );
    }

    #[test]
    fn set_qualifiers_test_the_one_value_and_differ_on_a_missing_key() {
        let all = statement(
            "{Effect: Allow, Action: 'events:PutEvents', Resource: '*', Condition: {'ForAllValues:StringEquals': {'events:source': presign-gate}}}",
        );
        let any = statement(
            "{Effect: Allow, Action: 'events:PutEvents', Resource: '*', Condition: {'ForAnyValue:StringEquals': {'events:source': presign-gate}}}",
        );
        let request = |source: Option<&str>| {
            let request = RequestContext::new("events:PutEvents", "arn:aws:events:::event-bus/b");
            match source {
                Some(source) => request.with("events:source", source),
                None => request,
            }
        };
        assert!(all.matches(&request(Some("presign-gate"))));
        assert!(!all.matches(&request(Some("aws.s3"))));
        assert!(all.matches(&request(None)));
        assert!(any.matches(&request(Some("presign-gate"))));
        assert!(!any.matches(&request(Some("aws.s3"))));
        assert!(!any.matches(&request(None)));
    }

    #[test]
    fn what_the_local_iam_cannot_evaluate_is_refused() {
        for yaml in [
            "{Effect: Allow, NotAction: s3:GetObject, Resource: '*'}",
            "{Effect: Allow, Action: '*', Resource: '*', Condition: {DateGreaterThan: {'aws:CurrentTime': x}}}",
            "{Effect: Maybe, Action: '*', Resource: '*'}",
            "{Effect: Allow, Action: '*'}",
        ] {
            let value = serde_norway::from_str(yaml).unwrap();
            assert!(Statement::parse(&value, "t".into()).is_err(), "{yaml}");
        }
    }
}
