//! CloudFormation's intrinsic functions, resolved as CloudFormation would deploy the template:
//! against a fixed local account, region and stack, each parameter at its default unless
//! overridden (as `sam deploy --parameter-overrides` would). A function it does not know is an
//! error, so a template that outgrows the local stand-ins stops them instead of being misread.

use std::collections::BTreeMap;

use serde_norway::Value;

use super::{ACCOUNT_ID, PARTITION, PLAN_ID, STACK_NAME};
use crate::error::Error;

/// Resolves intrinsic functions in a template whose conditions are already applied (see
/// [`super::Template`]).
pub(crate) struct Resolver<'t> {
    pub(crate) template: &'t Value,
    /// Every parameter's value and the pseudo parameters (`AWS::Region`, ...).
    pub(crate) parameters: &'t BTreeMap<String, String>,
}

impl<'t> Resolver<'t> {
    pub(crate) fn resource(&self, id: &str) -> Result<&'t Value, Error> {
        let resource = &self.template["Resources"][id];
        if resource.is_null() {
            return Err(Error::Template(format!("no resource {id}")));
        }
        Ok(resource)
    }

    pub(crate) fn kind(&self, id: &str) -> Result<&'t str, Error> {
        Ok(self.resource(id)?["Type"].as_str().unwrap_or_default())
    }

    /// `!Ref` of a parameter or a resource: the physical name CloudFormation returns.
    pub(crate) fn reference(&self, name: &str) -> Result<String, Error> {
        if let Some(value) = self.parameters.get(name) {
            return Ok(value.clone());
        }
        let resource = self.resource(name)?;
        let explicit = |property: &str| -> Result<Option<String>, Error> {
            match &resource["Properties"][property] {
                Value::Null => Ok(None),
                value => self.resolve_string(value).map(Some),
            }
        };
        // Names CloudFormation generates look like `<stack>-<LogicalId>-<random>`; locally the
        // random part is left out.
        let generated = format!("{STACK_NAME}-{name}");
        Ok(match self.kind(name)? {
            "AWS::S3::Bucket" => explicit("BucketName")?.unwrap_or(generated.to_ascii_lowercase()),
            "AWS::DynamoDB::Table" => explicit("TableName")?.unwrap_or(generated),
            "AWS::IAM::Role" => explicit("RoleName")?.unwrap_or(generated),
            "AWS::Logs::LogGroup" => explicit("LogGroupName")?.unwrap_or(generated),
            // `Ref` of a bus is its name (AWS::Events::EventBus, "Return values").
            "AWS::Events::EventBus" => explicit("Name")?.unwrap_or(generated),
            // `Ref` of a plan is its id (CloudFormation User Guide,
            // AWS::GuardDuty::MalwareProtectionPlan, "Return values").
            "AWS::GuardDuty::MalwareProtectionPlan" => PLAN_ID.to_owned(),
            _ => generated,
        })
    }

    /// `!GetAtt Resource.Attribute`; only the ARNs the policies use.
    pub(crate) fn attribute(&self, id: &str, attribute: &str) -> Result<String, Error> {
        let name = self.reference(id)?;
        let region = &self.parameters["AWS::Region"];
        let arn = match (self.kind(id)?, attribute) {
            ("AWS::S3::Bucket", "Arn") => format!("arn:{PARTITION}:s3:::{name}"),
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:{PARTITION}:dynamodb:{region}:{ACCOUNT_ID}:table/{name}")
            }
            // The stream's label is the time DynamoDB (moto) enabled it, unknown until the table
            // exists: every label of the table's streams, which the local IAM matches as a
            // wildcard.
            ("AWS::DynamoDB::Table", "StreamArn") => {
                format!("arn:{PARTITION}:dynamodb:{region}:{ACCOUNT_ID}:table/{name}/stream/*")
            }
            ("AWS::Events::EventBus", "Arn") => {
                format!("arn:{PARTITION}:events:{region}:{ACCOUNT_ID}:event-bus/{name}")
            }
            ("AWS::IAM::Role", "Arn") => format!("arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{name}"),
            ("AWS::Logs::LogGroup", "Arn") => {
                format!("arn:{PARTITION}:logs:{region}:{ACCOUNT_ID}:log-group:{name}:*")
            }
            ("AWS::SQS::Queue", "Arn") => {
                format!("arn:{PARTITION}:sqs:{region}:{ACCOUNT_ID}:{name}")
            }
            ("AWS::Serverless::Function", "Arn") => {
                format!("arn:{PARTITION}:lambda:{region}:{ACCOUNT_ID}:function:{name}")
            }
            ("AWS::GuardDuty::MalwareProtectionPlan", "Arn") => format!(
                "arn:{PARTITION}:guardduty:{region}:{ACCOUNT_ID}:malware-protection-plan/{name}"
            ),
            ("AWS::Events::Rule", "Arn") => {
                format!("arn:{PARTITION}:events:{region}:{ACCOUNT_ID}:rule/{name}")
            }
            (kind, _) => {
                return Err(Error::Template(format!(
                    "local-aws cannot resolve !GetAtt {id}.{attribute} ({kind})"
                )));
            }
        };
        Ok(arn)
    }

    pub(crate) fn resolve_string(&self, value: &Value) -> Result<String, Error> {
        match self.resolve(value)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(Error::Template(format!("{other:?} is not a string"))),
        }
    }

    /// The value with every intrinsic function replaced by what it returns.
    pub(crate) fn resolve(&self, value: &Value) -> Result<Value, Error> {
        Ok(match value {
            Value::Tagged(tagged) => self.intrinsic(&tagged.tag.to_string(), &tagged.value)?,
            Value::Mapping(mapping) => {
                if mapping.len() == 1
                    && let Some((Value::String(key), argument)) = mapping.iter().next()
                    && (key == "Ref" || key.starts_with("Fn::"))
                {
                    return self.intrinsic(key.trim_start_matches("Fn::"), argument);
                }
                let mut resolved = serde_norway::Mapping::new();
                for (key, item) in mapping {
                    resolved.insert(key.clone(), self.resolve(item)?);
                }
                Value::Mapping(resolved)
            }
            Value::Sequence(items) => Value::Sequence(
                items
                    .iter()
                    .map(|item| self.resolve(item))
                    .collect::<Result<_, _>>()?,
            ),
            other => other.clone(),
        })
    }

    fn intrinsic(&self, function: &str, argument: &Value) -> Result<Value, Error> {
        let function = function.trim_start_matches('!');
        let unsupported =
            || Error::Template(format!("local-aws cannot resolve {function} {argument:?}"));
        Ok(Value::String(match function {
            "Ref" => self.reference(argument.as_str().ok_or_else(unsupported)?)?,
            "GetAtt" => {
                let (id, attribute) = match argument {
                    Value::String(text) => text.split_once('.').ok_or_else(unsupported)?,
                    _ => return Err(unsupported()),
                };
                self.attribute(id, attribute)?
            }
            "Sub" => {
                let (text, variables) = match argument {
                    Value::String(text) => (text.clone(), BTreeMap::new()),
                    Value::Sequence(pair) if pair.len() == 2 => {
                        let text = pair[0].as_str().ok_or_else(unsupported)?.to_owned();
                        let mut variables = BTreeMap::new();
                        for (name, value) in pair[1].as_mapping().ok_or_else(unsupported)? {
                            let name = name.as_str().ok_or_else(unsupported)?.to_owned();
                            variables.insert(name, self.resolve_string(value)?);
                        }
                        (text, variables)
                    }
                    _ => return Err(unsupported()),
                };
                self.substitute(&text, &variables)?
            }
            "Select" => {
                let pair = argument.as_sequence().ok_or_else(unsupported)?;
                let index = match pair.first() {
                    Some(Value::Number(n)) => n.as_u64(),
                    Some(Value::String(s)) => s.parse().ok(),
                    _ => None,
                }
                .ok_or_else(unsupported)?;
                let list = self.resolve(pair.get(1).ok_or_else(unsupported)?)?;
                let list = list.as_sequence().ok_or_else(unsupported)?;
                let item = list
                    .get(usize::try_from(index).map_err(|_| unsupported())?)
                    .ok_or_else(unsupported)?;
                self.resolve_string(item)?
            }
            "Split" => {
                let pair = argument.as_sequence().ok_or_else(unsupported)?;
                let separator = pair
                    .first()
                    .and_then(Value::as_str)
                    .ok_or_else(unsupported)?;
                let text = self.resolve_string(pair.get(1).ok_or_else(unsupported)?)?;
                return Ok(Value::Sequence(
                    text.split(separator)
                        .map(|part| Value::String(part.to_owned()))
                        .collect(),
                ));
            }
            "Join" => {
                let pair = argument.as_sequence().ok_or_else(unsupported)?;
                let separator = pair
                    .first()
                    .and_then(Value::as_str)
                    .ok_or_else(unsupported)?;
                let list = self.resolve(pair.get(1).ok_or_else(unsupported)?)?;
                let parts = list
                    .as_sequence()
                    .ok_or_else(unsupported)?
                    .iter()
                    .map(|part| self.resolve_string(part))
                    .collect::<Result<Vec<_>, _>>()?;
                parts.join(separator)
            }
            _ => return Err(unsupported()),
        }))
    }

    /// `${Name}`, `${Resource.Attribute}`, and `${!Literal}` of Fn::Sub.
    fn substitute(
        &self,
        text: &str,
        variables: &BTreeMap<String, String>,
    ) -> Result<String, Error> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| Error::Template(format!("unclosed ${{ in {text:?}")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(value);
            } else if let Some((id, attribute)) = name.split_once('.') {
                out.push_str(&self.attribute(id, attribute)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}
