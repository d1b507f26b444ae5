//! The template's `Conditions`, and what they decide: which resources and outputs exist, and which
//! branch of each `Fn::If` is taken (CloudFormation User Guide, "Conditions syntax" and "Condition
//! functions": `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`). A condition function
//! this does not know is an error.

use std::collections::BTreeMap;

use serde_norway::Value;
use serde_norway::value::TaggedValue;

use super::Resolver;
use crate::error::Error;

/// The template without the resources and outputs whose condition is false, and with every
/// `Fn::If` replaced by its chosen branch.
pub(super) fn apply(
    template: &Value,
    parameters: &BTreeMap<String, String>,
) -> Result<Value, Error> {
    let resolver = Resolver {
        template,
        parameters,
    };
    let mut decided = BTreeMap::new();
    for (name, definition) in template["Conditions"].as_mapping().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default().to_owned();
        let holds = evaluate(&resolver, template, definition, 0)?;
        decided.insert(name, holds);
    }
    let mut pruned = serde_norway::Mapping::new();
    for (section, content) in template.as_mapping().into_iter().flatten() {
        let content = match section.as_str() {
            Some("Conditions") => content.clone(),
            Some("Resources" | "Outputs") => {
                let mut kept = serde_norway::Mapping::new();
                for (id, entry) in content.as_mapping().into_iter().flatten() {
                    let exists = match entry["Condition"].as_str() {
                        None => true,
                        Some(name) => holds(&decided, name)?,
                    };
                    if exists && let Some(entry) = choose(&decided, entry)? {
                        kept.insert(id.clone(), entry);
                    }
                }
                Value::Mapping(kept)
            }
            _ => match choose(&decided, content)? {
                Some(content) => content,
                None => continue,
            },
        };
        pruned.insert(section.clone(), content);
    }
    Ok(Value::Mapping(pruned))
}

fn holds(decided: &BTreeMap<String, bool>, name: &str) -> Result<bool, Error> {
    decided
        .get(name)
        .copied()
        .ok_or_else(|| Error::Template(format!("no condition {name}")))
}

/// A function's name and argument, in the short (`!Equals`) or the long (`Fn::Equals`) form.
fn function(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        Value::Mapping(mapping) if mapping.len() == 1 => {
            let (key, argument) = mapping.iter().next()?;
            let key = key.as_str()?;
            (key == "Ref" || key == "Condition" || key.starts_with("Fn::"))
                .then(|| (key.trim_start_matches("Fn::").to_owned(), argument))
        }
        _ => None,
    }
}

/// Conditions name each other; a loop among them would never end.
const MAX_DEPTH: usize = 32;

fn evaluate(
    resolver: &Resolver<'_>,
    template: &Value,
    definition: &Value,
    depth: usize,
) -> Result<bool, Error> {
    let unsupported = || {
        Error::Template(format!(
            "local-aws cannot evaluate the condition {definition:?}"
        ))
    };
    if depth > MAX_DEPTH {
        return Err(Error::Template(
            "the conditions name each other in a loop".into(),
        ));
    }
    let (name, argument) = function(definition).ok_or_else(unsupported)?;
    let list = || argument.as_sequence().ok_or_else(unsupported);
    let each = |items: &[Value]| {
        items
            .iter()
            .map(|item| evaluate(resolver, template, item, depth + 1))
            .collect::<Result<Vec<bool>, Error>>()
    };
    Ok(match name.as_str() {
        "Equals" => {
            let [left, right] = list()?.as_slice() else {
                return Err(unsupported());
            };
            scalar(resolver, left)? == scalar(resolver, right)?
        }
        "Not" => {
            let [inner] = list()?.as_slice() else {
                return Err(unsupported());
            };
            !evaluate(resolver, template, inner, depth + 1)?
        }
        "And" => each(list()?)?.into_iter().all(|b| b),
        "Or" => each(list()?)?.into_iter().any(|b| b),
        "Condition" => {
            let other = argument.as_str().ok_or_else(unsupported)?;
            let other = &template["Conditions"][other];
            if other.is_null() {
                return Err(unsupported());
            }
            evaluate(resolver, template, other, depth + 1)?
        }
        _ => return Err(unsupported()),
    })
}

/// One side of `Fn::Equals`, as the string CloudFormation compares.
fn scalar(resolver: &Resolver<'_>, value: &Value) -> Result<String, Error> {
    match resolver.resolve(value)? {
        Value::Bool(b) => Ok(b.to_string()),
        other => resolver.resolve_string(&other),
    }
}

/// `value` with each `Fn::If` replaced by its chosen branch; None for `AWS::NoValue`.
fn choose(decided: &BTreeMap<String, bool>, value: &Value) -> Result<Option<Value>, Error> {
    if let Some((name, argument)) = function(value) {
        match name.as_str() {
            "If" => {
                let invalid = || Error::Template(format!("Fn::If {argument:?}"));
                let [condition, then, otherwise] =
                    argument.as_sequence().ok_or_else(invalid)?.as_slice()
                else {
                    return Err(invalid());
                };
                let condition = condition.as_str().ok_or_else(invalid)?;
                let branch = if holds(decided, condition)? {
                    then
                } else {
                    otherwise
                };
                return choose(decided, branch);
            }
            "Ref" if argument.as_str() == Some("AWS::NoValue") => return Ok(None),
            _ => {}
        }
    }
    Ok(Some(match value {
        Value::Tagged(tagged) => {
            let inner = choose(decided, &tagged.value)?.ok_or_else(|| {
                Error::Template(format!("AWS::NoValue as the argument of {}", tagged.tag))
            })?;
            Value::Tagged(Box::new(TaggedValue {
                tag: tagged.tag.clone(),
                value: inner,
            }))
        }
        Value::Mapping(mapping) => {
            let mut kept = serde_norway::Mapping::new();
            for (key, item) in mapping {
                if let Some(item) = choose(decided, item)? {
                    kept.insert(key.clone(), item);
                }
            }
            Value::Mapping(kept)
        }
        Value::Sequence(items) => {
            let mut kept = Vec::new();
            for item in items {
                kept.extend(choose(decided, item)?);
            }
            Value::Sequence(kept)
        }
        other => other.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::Template;

    const TEMPLATE: &str = r#"
Parameters:
  Scan: {Type: String, Default: "true", AllowedValues: ["true", "false"]}
  Scopes: {Type: String, Default: "a"}
Conditions:
  ScanOn: !Equals [!Ref Scan, "true"]
  ScanOff: !Not [!Condition ScanOn]
  Both: {"Fn::And": [{"Condition": "ScanOn"}, !Not [!Equals [!Select [0, !Split [",", !Sub "${Scopes},"]], ""]]]}
Resources:
  Always:
    Type: AWS::S3::Bucket
    Properties:
      List:
        - one
        - !If [ScanOn, two, !Ref AWS::NoValue]
        - {"Fn::If": [ScanOff, three, !Ref "AWS::NoValue"]}
      Config: !If [Both, {On: true}, !Ref AWS::NoValue]
      Nested: !Sub ["${X}", {X: !If [ScanOn, yes, no]}]
  OnlyScanning:
    Type: AWS::IAM::Role
    Condition: ScanOn
"#;

    fn load(scan: &str) -> Value {
        let overrides = BTreeMap::from([("Scan".to_owned(), scan.to_owned())]);
        Template::load(TEMPLATE, "us-east-1", &overrides)
            .unwrap()
            .value
    }

    #[test]
    fn conditions_choose_resources_and_branches() {
        let on = load("true");
        let bucket = &on["Resources"]["Always"]["Properties"];
        assert_eq!(
            bucket["List"],
            serde_norway::from_str::<Value>("[one, two]").unwrap()
        );
        assert_eq!(bucket["Config"]["On"], Value::Bool(true));
        assert!(!on["Resources"]["OnlyScanning"].is_null());
        let Value::Tagged(sub) = &bucket["Nested"] else {
            panic!("the !Sub stays for the resolver: {:?}", bucket["Nested"]);
        };
        assert_eq!(sub.value[1]["X"], Value::String("yes".into()));

        let off = load("false");
        let bucket = &off["Resources"]["Always"]["Properties"];
        assert_eq!(
            bucket["List"],
            serde_norway::from_str::<Value>("[one, three]").unwrap()
        );
        assert!(
            bucket.get("Config").is_none(),
            "AWS::NoValue removes the property"
        );
        assert!(off["Resources"]["OnlyScanning"].is_null());
    }

    #[test]
    fn unknown_conditions_functions_and_values_are_refused() {
        let overrides = BTreeMap::from([("Scan".to_owned(), "maybe".to_owned())]);
        assert!(Template::load(TEMPLATE, "us-east-1", &overrides).is_err());
        for broken in [
            TEMPLATE.replace("!Not [!Condition ScanOn]", "!Contains [[a], a]"),
            TEMPLATE.replace("[ScanOn, two,", "[NoSuchCondition, two,"),
            TEMPLATE.replace("Condition: ScanOn\n", "Condition: Nope\n"),
        ] {
            assert!(
                Template::load(&broken, "us-east-1", &BTreeMap::new()).is_err(),
                "{broken}"
            );
        }
    }
}
