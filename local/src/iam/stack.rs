//! The stack's IAM, read from template.yaml as CloudFormation would deploy it: every role's inline
//! statements and the bucket policy, with the template's intrinsic functions resolved against a
//! fixed local account, region and stack, and each parameter at its default unless overridden
//! (as `sam deploy --parameter-overrides` would).
//!
//! The names come out as CloudFormation makes them: the bucket's `BucketName` expression (so the
//! events role's literal copy of it is checked against it, as AWS would), generated names for the
//! table and the roles. Tests and `make local` use [`StackNames`] for the bucket and table.

use std::collections::BTreeMap;

use serde_norway::Value;

use super::policy::Statement;
use crate::error::Error;

/// The local account: the one every ARN names.
pub const ACCOUNT_ID: &str = "123456789012";
pub const PARTITION: &str = "aws";
pub const STACK_NAME: &str = "presign-gate-local";
/// The stack id's last group is what the template puts at the end of the bucket's name.
const STACK_UUID: &str = "00000000-0000-4000-8000-00000000loc0";

/// The physical names the functions are configured with (`FILES_BUCKET`, `FILES_TABLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackNames {
    pub bucket: String,
    pub table: String,
}

/// One IAM role of the template.
#[derive(Debug, Clone)]
pub struct RoleDefinition {
    /// The role's logical id, e.g. `ApiFunctionRole`.
    pub logical_id: String,
    pub arn: String,
    /// Every statement of its inline policies; each `sid` is `<role>/<policy>/<Sid>`.
    pub statements: Vec<Statement>,
}

/// What the local IAM evaluates.
#[derive(Debug, Clone)]
pub struct StackIam {
    pub names: StackNames,
    pub bucket_arn: String,
    pub table_arn: String,
    pub roles: Vec<RoleDefinition>,
    /// The bucket policy's statements; each `sid` is `<policy>/<Sid>`.
    pub bucket_policy: Vec<Statement>,
    /// Function logical id -> the logical id of the role it runs as.
    pub function_roles: BTreeMap<String, String>,
}

impl StackIam {
    pub fn parse(
        text: &str,
        region: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, Error> {
        let template: Value = serde_norway::from_str(text)?;
        let resolver = Resolver::new(&template, region, overrides)?;
        let resources = template["Resources"]
            .as_mapping()
            .ok_or_else(|| Error::Template("no Resources".into()))?;

        let mut roles = Vec::new();
        let mut bucket_policy = Vec::new();
        let mut function_roles = BTreeMap::new();
        let (mut bucket, mut table) = (None, None);
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default();
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::IAM::Role" => roles.push(resolver.role(id, resource)?),
                "AWS::S3::BucketPolicy" => {
                    let document = resolver.resolve(&resource["Properties"]["PolicyDocument"])?;
                    bucket_policy = statements(id, &document)?;
                }
                "AWS::S3::Bucket" => bucket = Some(id),
                "AWS::DynamoDB::Table" => table = Some(id),
                "AWS::Serverless::Function" => {
                    let role = &resource["Properties"]["Role"];
                    let role = get_att_target(role).ok_or_else(|| {
                        Error::Template(format!("{id}: Role is not !GetAtt <Role>.Arn"))
                    })?;
                    function_roles.insert(id.to_owned(), role);
                }
                _ => {}
            }
        }
        let (Some(bucket), Some(table)) = (bucket, table) else {
            return Err(Error::Template("no bucket or no table".into()));
        };
        Ok(Self {
            names: StackNames {
                bucket: resolver.reference(bucket)?,
                table: resolver.reference(table)?,
            },
            bucket_arn: resolver.attribute(bucket, "Arn")?,
            table_arn: resolver.attribute(table, "Arn")?,
            roles,
            bucket_policy,
            function_roles,
        })
    }
}

/// `!GetAtt Role.Arn` (either spelling): the logical id.
fn get_att_target(value: &Value) -> Option<String> {
    let Value::Tagged(tagged) = value else {
        return None;
    };
    if tagged.tag != "GetAtt" {
        return None;
    }
    let text = tagged.value.as_str()?;
    let (id, attribute) = text.split_once('.')?;
    (attribute == "Arn").then(|| id.to_owned())
}

fn statements(policy: &str, document: &Value) -> Result<Vec<Statement>, Error> {
    let list = match &document["Statement"] {
        Value::Sequence(list) => list.clone(),
        single @ Value::Mapping(_) => vec![single.clone()],
        _ => return Err(Error::Template(format!("{policy}: no Statement"))),
    };
    list.iter()
        .enumerate()
        .map(|(index, statement)| {
            let mut parsed = Statement::parse(statement, format!("{index}"))
                .map_err(|e| Error::Template(format!("{policy}: {e}")))?;
            parsed.sid = format!("{policy}/{}", parsed.sid);
            Ok(parsed)
        })
        .collect()
}

struct Resolver<'t> {
    template: &'t Value,
    parameters: BTreeMap<String, String>,
}

impl<'t> Resolver<'t> {
    fn new(
        template: &'t Value,
        region: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, Error> {
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
        if let Some(declared) = template["Parameters"].as_mapping() {
            for (name, declaration) in declared {
                let name = name.as_str().unwrap_or_default().to_owned();
                let default = match &declaration["Default"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                if let Some(value) = overrides.get(&name).cloned().or(default) {
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
        Ok(Self {
            template,
            parameters,
        })
    }

    fn resource(&self, id: &str) -> Result<&'t Value, Error> {
        let resource = &self.template["Resources"][id];
        if resource.is_null() {
            return Err(Error::Template(format!("no resource {id}")));
        }
        Ok(resource)
    }

    fn kind(&self, id: &str) -> Result<&'t str, Error> {
        Ok(self.resource(id)?["Type"].as_str().unwrap_or_default())
    }

    /// `!Ref` of a parameter or a resource: the physical name CloudFormation returns.
    fn reference(&self, name: &str) -> Result<String, Error> {
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
            _ => generated,
        })
    }

    /// `!GetAtt Resource.Attribute`; only the ARNs the policies use.
    fn attribute(&self, id: &str, attribute: &str) -> Result<String, Error> {
        let name = self.reference(id)?;
        let region = &self.parameters["AWS::Region"];
        let arn = match (self.kind(id)?, attribute) {
            ("AWS::S3::Bucket", "Arn") => format!("arn:{PARTITION}:s3:::{name}"),
            ("AWS::DynamoDB::Table", "Arn") => {
                format!("arn:{PARTITION}:dynamodb:{region}:{ACCOUNT_ID}:table/{name}")
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
            (kind, _) => {
                return Err(Error::Template(format!(
                    "the local IAM cannot resolve !GetAtt {id}.{attribute} ({kind})"
                )));
            }
        };
        Ok(arn)
    }

    fn role(&self, id: &str, resource: &Value) -> Result<RoleDefinition, Error> {
        let properties = &resource["Properties"];
        if !properties["ManagedPolicyArns"].is_null()
            || !properties["PermissionsBoundary"].is_null()
        {
            return Err(Error::Template(format!(
                "{id}: the local IAM evaluates inline policies only"
            )));
        }
        let mut all = Vec::new();
        for policy in properties["Policies"].as_sequence().into_iter().flatten() {
            let name = self.resolve_string(&policy["PolicyName"])?;
            let document = self.resolve(&policy["PolicyDocument"])?;
            all.extend(statements(&format!("{id}/{name}"), &document)?);
        }
        Ok(RoleDefinition {
            logical_id: id.to_owned(),
            arn: self.attribute(id, "Arn")?,
            statements: all,
        })
    }

    fn resolve_string(&self, value: &Value) -> Result<String, Error> {
        match self.resolve(value)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(Error::Template(format!("{other:?} is not a string"))),
        }
    }

    /// The value with every intrinsic function replaced by what it returns.
    fn resolve(&self, value: &Value) -> Result<Value, Error> {
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
        let unsupported = || {
            Error::Template(format!(
                "the local IAM cannot resolve {function} {argument:?}"
            ))
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stack() -> StackIam {
        StackIam::parse(
            include_str!("../../../template.yaml"),
            "us-east-1",
            &BTreeMap::new(),
        )
        .expect("the template's IAM resolves")
    }

    #[test]
    fn names_resolve_as_cloudformation_would() {
        let stack = stack();
        assert_eq!(
            stack.names,
            StackNames {
                bucket: "presign-gate-123456789012-us-east-1-00000000loc0".into(),
                table: "presign-gate-local-FilesTable".into(),
            }
        );
        assert_eq!(
            stack.bucket_arn,
            "arn:aws:s3:::presign-gate-123456789012-us-east-1-00000000loc0"
        );
        assert_eq!(
            stack.table_arn,
            "arn:aws:dynamodb:us-east-1:123456789012:table/presign-gate-local-FilesTable"
        );
        assert_eq!(stack.function_roles["ApiFunction"], "ApiFunctionRole");
        assert_eq!(stack.function_roles["EventsFunction"], "EventsFunctionRole");
        assert_eq!(
            stack.function_roles["ReconcileFunction"],
            "ReconcileFunctionRole"
        );
    }

    #[test]
    fn every_role_statement_names_resolved_resources() {
        let stack = stack();
        let events = stack
            .roles
            .iter()
            .find(|role| role.logical_id == "EventsFunctionRole")
            .unwrap();
        let objects = events
            .statements
            .iter()
            .find(|s| s.sid == "EventsFunctionRole/files/UserObjects")
            .unwrap();
        // The events role spells the bucket's name out (see the template's notes): it must come
        // out as the bucket's own name.
        assert_eq!(objects.resources, [format!("{}/users/*", stack.bucket_arn)]);
        for role in &stack.roles {
            for statement in &role.statements {
                for resource in &statement.resources {
                    assert!(!resource.contains("${"), "{}: {resource}", statement.sid);
                }
            }
        }
    }

    #[test]
    fn parameters_take_their_defaults_unless_overridden() {
        let age = |stack: &StackIam| {
            let deny = stack
                .bucket_policy
                .iter()
                .find(|s| s.sid == "FilesBucketPolicy/DenyLongLivedPresignedUrls")
                .unwrap();
            deny.conditions
                .iter()
                .find(|c| c.key == "s3:signatureage")
                .unwrap()
                .values
                .clone()
        };
        assert_eq!(age(&stack()), ["900000"]);
        let overrides = BTreeMap::from([("UrlTtlMaxSeconds".to_owned(), "60".to_owned())]);
        let stack = StackIam::parse(
            include_str!("../../../template.yaml"),
            "us-east-1",
            &overrides,
        )
        .unwrap();
        assert_eq!(age(&stack), ["60000"]);
        let unknown = BTreeMap::from([("NoSuchParameter".to_owned(), "1".to_owned())]);
        assert!(
            StackIam::parse(
                include_str!("../../../template.yaml"),
                "us-east-1",
                &unknown
            )
            .is_err()
        );
    }
}
