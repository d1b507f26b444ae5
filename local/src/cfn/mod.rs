//! template.yaml as CloudFormation deploys it, for every stand-in that reads it (`template`,
//! `iam`, `guardduty`): the parameters (each at its default unless overridden, as
//! `sam deploy --parameter-overrides` would), the `Conditions` evaluated, the resources and
//! outputs whose `Condition` is false left out, and every `Fn::If` replaced by the branch it
//! chooses (`AWS::NoValue` removing the property or the list element, CloudFormation User Guide,
//! "Condition functions" and "Pseudo parameters reference"). Other intrinsic functions are
//! resolved by whoever reads a part (see [`Resolver`]).

mod conditions;
mod resolver;

use std::collections::BTreeMap;

use serde_norway::Value;

pub(crate) use self::resolver::Resolver;
use crate::error::Error;

/// The local account: the one every ARN names.
pub const ACCOUNT_ID: &str = "123456789012";
pub const PARTITION: &str = "aws";
pub const STACK_NAME: &str = "presign-gate-local";
/// The stack id's last group is what the template puts at the end of the bucket's name.
const STACK_UUID: &str = "00000000-0000-4000-8000-00000000loc0";
/// The id of the template's malware protection plan, which GuardDuty would generate.
pub const PLAN_ID: &str = "b4c7f464ab0000000loc";

/// The template with its conditions applied, and the values of its parameters.
#[derive(Debug, Clone)]
pub struct Template {
    pub value: Value,
    /// Every declared parameter (default or override) and the pseudo parameters.
    pub parameters: BTreeMap<String, String>,
}

impl Template {
    pub fn load(
        text: &str,
        region: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let raw: Value = serde_norway::from_str(text)?;
        let parameters = parameters(&raw, region, overrides)?;
        let value = conditions::apply(&raw, &parameters)?;
        Ok(Self { value, parameters })
    }

    pub(crate) fn resolver(&self) -> Resolver<'_> {
        Resolver {
            template: &self.value,
            parameters: &self.parameters,
        }
    }

    /// The resources of a type, by logical id.
    pub(crate) fn resources_of<'t>(
        &'t self,
        kind: &'t str,
    ) -> impl Iterator<Item = (&'t str, &'t Value)> + 't {
        self.value["Resources"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter(move |(_, resource)| resource["Type"].as_str() == Some(kind))
            .map(|(id, resource)| (id.as_str().unwrap_or_default(), resource))
    }
}

fn parameters(
    template: &Value,
    region: &str,
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut parameters = BTreeMap::from([
        ("AWS::AccountId".to_owned(), ACCOUNT_ID.to_owned()),
        ("AWS::Region".to_owned(), region.to_owned()),
        ("AWS::Partition".to_owned(), PARTITION.to_owned()),
        ("AWS::URLSuffix".to_owned(), "amazonaws.com".to_owned()),
        ("AWS::StackName".to_owned(), STACK_NAME.to_owned()),
        (
            "AWS::StackId".to_owned(),
            format!(
                "arn:{PARTITION}:cloudformation:{region}:{ACCOUNT_ID}:stack/{STACK_NAME}/{STACK_UUID}"
            ),
        ),
    ]);
    // CloudFormation passes every parameter as a string; YAML may write a default as a number.
    let text = |value: &Value| match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(declared) = template["Parameters"].as_mapping() {
        for (name, declaration) in declared {
            let name = name.as_str().unwrap_or_default().to_owned();
            let value = overrides
                .get(&name)
                .cloned()
                .or(text(&declaration["Default"]));
            if let (Some(value), Some(allowed)) =
                (&value, declaration["AllowedValues"].as_sequence())
                && !allowed.iter().any(|a| text(a).as_ref() == Some(value))
            {
                return Err(Error::Config(format!(
                    "parameter {name}: {value:?} is not one of its AllowedValues"
                )));
            }
            if let Some(value) = value {
                parameters.insert(name, value);
            }
        }
    }
    if let Some(unknown) = overrides
        .keys()
        .find(|name| !parameters.contains_key(*name))
    {
        return Err(Error::Config(format!(
            "the template has no parameter {unknown}"
        )));
    }
    Ok(parameters)
}
