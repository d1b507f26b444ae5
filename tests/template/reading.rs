//! Reading template.yaml: YAML to JSON with the intrinsics kept, the resources, statements and
//! names the checks compare, what an expression resolves to for given parameters, and the
//! template as deployed for given parameters (conditions applied).

use super::*;

/// YAML to JSON, with CloudFormation's short forms turned into their long forms: `!Ref X` is
/// `{"Ref": "X"}`, `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` is `{"Fn::Sub": s}`.
pub fn to_json(yaml: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => serde_norway::to_string(&other)
                            .expect("scalar key")
                            .trim()
                            .to_owned(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = to_json(tagged.value);
            match (name, value) {
                ("Ref", value) => json!({ "Ref": value }),
                ("Condition", value) => json!({ "Condition": value }),
                ("GetAtt", Value::String(s)) => {
                    let (resource, attribute) = s.split_once('.').expect("!GetAtt Resource.Attr");
                    json!({ "Fn::GetAtt": [resource, attribute] })
                }
                (name, value) => json!({ format!("Fn::{name}"): value }),
            }
        }
    }
}

pub fn parse(text: &str) -> Value {
    to_json(serde_norway::from_str(text).expect("template.yaml is YAML"))
}

pub fn template() -> Value {
    parse(TEMPLATE)
}

pub fn resources(t: &Value) -> impl Iterator<Item = (&String, &Value)> {
    t["Resources"].as_object().expect("Resources").iter()
}

pub fn resources_of_type<'t>(t: &'t Value, kind: &str) -> Vec<(&'t String, &'t Value)> {
    let kind = kind.to_owned();
    resources(t).filter(|(_, r)| r["Type"] == kind).collect()
}

/// A string or a list of strings, as IAM allows for `Action`.
pub fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect(),
        other => vec![other.to_string()],
    }
}

/// `Resource` as a list of values (one value may be an intrinsic function).
pub fn resource_list(statement: &Value) -> Vec<Value> {
    match &statement["Resource"] {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

pub fn statements(document: &Value) -> Vec<Value> {
    match &document["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    }
}

pub fn get_att(resource: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, "Arn"] })
}

/// The files bucket's name as the template builds it: a `Fn::Sub` (string, or [string, vars]).
pub fn bucket_name(t: &Value) -> Value {
    let bucket = &t["Resources"]["FilesBucket"];
    assert_eq!(
        bucket["Type"], "AWS::S3::Bucket",
        "FilesBucket is the bucket"
    );
    bucket["Properties"]["BucketName"].clone()
}

/// `Fn::Sub` of `prefix + <bucket name> + suffix`, with the bucket name's own variables.
pub fn sub_around_bucket_name(t: &Value, prefix: &str, suffix: &str) -> Value {
    match &bucket_name(t)["Fn::Sub"] {
        Value::String(name) => json!({ "Fn::Sub": format!("{prefix}{name}{suffix}") }),
        Value::Array(parts) => {
            let name = parts[0].as_str().expect("Fn::Sub string");
            json!({ "Fn::Sub": [format!("{prefix}{name}{suffix}"), parts[1]] })
        }
        other => panic!("BucketName must be built with !Sub (shared, no cycle), got {other}"),
    }
}

/// The only ways to name the object ARNs under users/: through a reference to the bucket, or with
/// the bucket's own name string (which breaks the notification cycle).
pub fn user_object_arns(t: &Value) -> Vec<Value> {
    vec![
        json!({ "Fn::Sub": "arn:${AWS::Partition}:s3:::${FilesBucket}/users/*" }),
        sub_around_bucket_name(t, "arn:${AWS::Partition}:s3:::", "/users/*"),
    ]
}

/// An expression's value for the given parameter values, as CloudFormation resolves it: the
/// intrinsic functions the authorizer's scopes and their conditions use. `None` is
/// `AWS::NoValue` (the element is dropped).
pub fn resolve(t: &Value, expression: &Value, parameters: &[(&str, &str)]) -> Option<Value> {
    let Some((function, arguments)) = expression
        .as_object()
        .filter(|object| object.len() == 1)
        .and_then(|object| object.iter().next())
    else {
        return Some(expression.clone());
    };
    let argument = |n: usize| resolve(t, &arguments[n], parameters).expect("a value");
    Some(match function.as_str() {
        "Ref" if arguments == "AWS::NoValue" => return None,
        "Ref" => {
            let name = arguments.as_str().expect("Ref name");
            let (_, value) = parameters
                .iter()
                .find(|(parameter, _)| *parameter == name)
                .unwrap_or_else(|| panic!("no value for parameter {name}"));
            json!(value)
        }
        "Fn::Sub" => {
            let mut text = arguments.as_str().expect("Fn::Sub of a string").to_owned();
            for (name, value) in parameters {
                text = text.replace(&format!("${{{name}}}"), value);
            }
            assert!(!text.contains("${"), "unresolved Fn::Sub {text}");
            json!(text)
        }
        "Fn::Split" => {
            let delimiter = arguments[0].as_str().expect("delimiter").to_owned();
            let source = argument(1);
            json!(
                source
                    .as_str()
                    .expect("a string")
                    .split(&delimiter)
                    .collect::<Vec<_>>()
            )
        }
        // Out of range fails the deployment, as CloudFormation does.
        "Fn::Select" => {
            let index = arguments[0].as_u64().expect("index") as usize;
            argument(1)[index].clone()
        }
        "Condition" => {
            let name = arguments.as_str().expect("condition name");
            return resolve(t, &t["Conditions"][name], parameters);
        }
        "Fn::Equals" => json!(argument(0) == argument(1)),
        "Fn::Not" => json!(!argument(0).as_bool().expect("a condition")),
        "Fn::If" => {
            let name = arguments[0].as_str().expect("condition name");
            let holds = resolve(t, &t["Conditions"][name], parameters) == Some(json!(true));
            return resolve(t, &arguments[if holds { 1 } else { 2 }], parameters);
        }
        other => panic!("{other} is not resolved by this test"),
    })
}

/// The template as CloudFormation deploys it for these parameter values, the others at their
/// defaults: the resources and outputs whose `Condition` is false are left out, each `Fn::If` is
/// its chosen branch, and an `AWS::NoValue` drops the property or element where it stands
/// (CloudFormation User Guide, "Conditions syntax" and "Condition functions"). A condition the
/// template does not declare fails the test, as it fails the deployment.
pub fn deployed(t: &Value, parameters: &[(&str, &str)]) -> Value {
    let defaults: Vec<(String, String)> = t["Parameters"]
        .as_object()
        .expect("Parameters")
        .iter()
        .filter_map(|(name, parameter)| {
            let value = match &parameter["Default"] {
                Value::Null => return None,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((name.clone(), value))
        })
        .collect();
    let mut values: Vec<(&str, &str)> = parameters.to_vec();
    for (name, value) in &defaults {
        if !parameters.iter().any(|(given, _)| given == name) {
            values.push((name, value));
        }
    }
    let holds = |condition: &str| {
        assert!(
            t["Conditions"][condition].is_object(),
            "no condition {condition} in Conditions"
        );
        resolve(t, &json!({ "Condition": condition }), &values) == Some(json!(true))
    };
    let mut view = t.clone();
    for section in ["Resources", "Outputs"] {
        if let Some(entries) = view[section].as_object_mut() {
            entries.retain(|_, entry| entry["Condition"].as_str().is_none_or(&holds));
        }
    }
    chosen_branches(view, &holds).expect("a template")
}

/// `value` with each `Fn::If` replaced by the branch `holds` chooses; `None` for `AWS::NoValue`.
fn chosen_branches(value: Value, holds: &dyn Fn(&str) -> bool) -> Option<Value> {
    match value {
        Value::Object(object) if object.len() == 1 && object.contains_key("Fn::If") => {
            let arguments = &object["Fn::If"];
            let condition = arguments[0]
                .as_str()
                .expect("Fn::If [condition, then, else]");
            let branch = if holds(condition) { 1 } else { 2 };
            chosen_branches(arguments[branch].clone(), holds)
        }
        Value::Object(object)
            if object.len() == 1 && object.get("Ref") == Some(&json!("AWS::NoValue")) =>
        {
            None
        }
        Value::Object(object) => Some(Value::Object(
            object
                .into_iter()
                .filter_map(|(key, value)| Some((key, chosen_branches(value, holds)?)))
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(
            items
                .into_iter()
                .filter_map(|item| chosen_branches(item, holds))
                .collect(),
        )),
        other => Some(other),
    }
}

/// The names a `Ref`, `Fn::GetAtt` or `Fn::Sub` variable (`${Name}`, `${Name.Attribute}`) in
/// `value` refers to, other than a `Fn::Sub`'s own variables.
pub fn referenced_names(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(object) if object.len() == 1 => {
            let (function, arguments) = object.iter().next().expect("one entry");
            match (function.as_str(), arguments) {
                ("Ref", Value::String(name)) => {
                    names.insert(name.clone());
                }
                ("Fn::GetAtt", Value::Array(parts)) => {
                    names.extend(parts[0].as_str().map(str::to_owned));
                }
                ("Fn::Sub", Value::String(text)) => sub_variables(text, &Value::Null, names),
                ("Fn::Sub", Value::Array(parts)) => {
                    sub_variables(parts[0].as_str().unwrap_or_default(), &parts[1], names);
                    referenced_names(&parts[1], names);
                }
                _ => referenced_names(arguments, names),
            }
        }
        Value::Object(object) => object.values().for_each(|v| referenced_names(v, names)),
        Value::Array(items) => items.iter().for_each(|v| referenced_names(v, names)),
        _ => {}
    }
}

/// `${Name}` and `${Name.Attribute}` of a `Fn::Sub` string, less its own `variables` and the
/// literal `${!...}`.
fn sub_variables(text: &str, variables: &Value, names: &mut BTreeSet<String>) {
    for variable in text
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
    {
        let name = variable.0.split('.').next().unwrap_or_default();
        if !name.starts_with('!') && variables[name].is_null() {
            names.insert(name.to_owned());
        }
    }
}
