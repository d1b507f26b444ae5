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
use crate::cfn::{Resolver, Template};
use crate::error::Error;

pub use crate::cfn::{ACCOUNT_ID, PARTITION, STACK_NAME};

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
        Self::from_template(&Template::load(text, region, overrides)?)
    }

    /// The IAM of the template as deployed with its parameters (conditions applied).
    pub fn from_template(template: &Template) -> Result<Self, Error> {
        let resolver = template.resolver();
        let resources = template.value["Resources"]
            .as_mapping()
            .ok_or_else(|| Error::Template("no Resources".into()))?;

        let mut roles = Vec::new();
        let mut bucket_policy = Vec::new();
        let mut function_roles = BTreeMap::new();
        let (mut bucket, mut table) = (None, None);
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default();
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::IAM::Role" => roles.push(role(&resolver, id, resource)?),
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

/// `!GetAtt Role.Arn`: the logical id.
pub(crate) fn get_att_target(value: &Value) -> Option<String> {
    get_att(value).and_then(|(id, attribute)| (attribute == "Arn").then_some(id))
}

/// `!GetAtt Resource.Attribute`: the logical id and the attribute.
pub(crate) fn get_att(value: &Value) -> Option<(String, String)> {
    let Value::Tagged(tagged) = value else {
        return None;
    };
    if tagged.tag != "GetAtt" {
        return None;
    }
    let (id, attribute) = tagged.value.as_str()?.split_once('.')?;
    Some((id.to_owned(), attribute.to_owned()))
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

fn role(resolver: &Resolver<'_>, id: &str, resource: &Value) -> Result<RoleDefinition, Error> {
    let properties = &resource["Properties"];
    if !properties["ManagedPolicyArns"].is_null() || !properties["PermissionsBoundary"].is_null() {
        return Err(Error::Template(format!(
            "{id}: the local IAM evaluates inline policies only"
        )));
    }
    let mut all = Vec::new();
    for policy in properties["Policies"].as_sequence().into_iter().flatten() {
        let name = resolver.resolve_string(&policy["PolicyName"])?;
        let document = resolver.resolve(&policy["PolicyDocument"])?;
        all.extend(statements(&format!("{id}/{name}"), &document)?);
    }
    Ok(RoleDefinition {
        logical_id: id.to_owned(),
        arn: resolver.attribute(id, "Arn")?,
        statements: all,
    })
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
