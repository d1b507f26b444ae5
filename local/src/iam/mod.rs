//! The local IAM: who signed a request, and whether the template lets that principal do it.
//!
//! Every role of template.yaml gets local credentials of its own ([`role_credentials`]); each
//! function runs locally with its role's, so a request (and a presigned URL, which carries its
//! signer's credentials) is authorized as that role, as in AWS. The account's administrator
//! (the stand-ins' own `--access-key`, what tests and `make local`'s setup use to create the
//! bucket and table and to look inside them) is allowed everything by its identity, and is
//! still subject to the bucket policy's denies, as an administrator is in AWS.
//!
//! Evaluation follows the IAM User Guide, "Policy evaluation logic" for a principal and a
//! resource in the same account: an explicit `Deny` in any applicable policy (the principal's or
//! the resource's) refuses; otherwise an `Allow` in either grants; otherwise the request is
//! implicitly denied. SCPs, permission boundaries, session policies and KMS key policies are not
//! modelled: the template declares none.

pub mod policy;
pub mod stack;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

pub use self::policy::{Effect, Principals, RequestContext, Statement};
pub use self::stack::{StackIam, StackNames};

/// The local key pair that stands for a role's temporary credentials.
pub fn role_credentials(role_logical_id: &str) -> (String, String) {
    (
        format!("local-{role_logical_id}"),
        format!("local-{role_logical_id}-secret"),
    )
}

/// Who a request is from.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `ApiFunctionRole`, or `administrator`.
    pub name: String,
    /// What AWS would name in an error: the role's ARN, or the administrator user's.
    pub arn: String,
    statements: Vec<Statement>,
}

/// The outcome of one authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every statement that allows it, by sid.
    Allowed(Vec<String>),
    /// No statement allows it.
    ImplicitDeny,
    /// The first statement that denies it.
    ExplicitDeny(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Self::Allowed(_))
    }
}

/// The principals and the bucket policy, and where each grant is recorded (see
/// [`Self::with_grants_log`]).
#[derive(Debug)]
pub struct Authorizer {
    by_access_key: HashMap<String, Principal>,
    bucket_policy: Vec<Statement>,
    /// `--grants-log`: each grant as a JSON line. Appended to a file rather than kept in memory,
    /// which would grow with every request of a long `make local`.
    grants_log: Option<Mutex<std::fs::File>>,
}

impl Authorizer {
    pub fn new(stack: &StackIam, admin_access_key: &str) -> Self {
        let mut by_access_key = HashMap::new();
        by_access_key.insert(
            admin_access_key.to_owned(),
            Principal {
                name: "administrator".into(),
                arn: format!("arn:aws:iam::{}:user/administrator", stack::ACCOUNT_ID),
                // The AdministratorAccess managed policy.
                statements: vec![Statement {
                    sid: "AdministratorAccess".into(),
                    effect: Effect::Allow,
                    principals: None,
                    actions: vec!["*".into()],
                    resources: vec!["*".into()],
                    conditions: Vec::new(),
                }],
            },
        );
        for role in &stack.roles {
            let (access_key, _) = role_credentials(&role.logical_id);
            by_access_key.insert(
                access_key,
                Principal {
                    name: role.logical_id.clone(),
                    arn: role.arn.clone(),
                    statements: role.statements.clone(),
                },
            );
        }
        Self {
            by_access_key,
            bucket_policy: stack.bucket_policy.clone(),
            grants_log: None,
        }
    }

    /// Appends every grant to `file` as a JSON array of sids, one line each. A statement that was
    /// the only one to allow some request cannot be removed without refusing that request.
    pub fn with_grants_log(self, file: std::fs::File) -> Self {
        Self {
            grants_log: Some(Mutex::new(file)),
            ..self
        }
    }

    /// Every key pair the stand-ins accept: the administrator's and each role's.
    pub fn key_pairs(stack: &StackIam) -> Vec<(String, String)> {
        stack
            .roles
            .iter()
            .map(|role| role_credentials(&role.logical_id))
            .collect()
    }

    pub fn principal(&self, access_key: &str) -> Option<&Principal> {
        self.by_access_key.get(access_key)
    }

    /// An S3 request: the principal's statements and the bucket policy.
    pub fn authorize_s3(&self, principal: &Principal, request: &RequestContext) -> Decision {
        self.decide(principal, request, &self.bucket_policy)
    }

    /// A DynamoDB request: the table has no resource policy, so the principal's statements alone.
    pub fn authorize_dynamodb(&self, principal: &Principal, request: &RequestContext) -> Decision {
        self.decide(principal, request, &[])
    }

    /// An EventBridge request: the buses have no resource policy here, so the principal's
    /// statements alone.
    pub fn authorize_events(&self, principal: &Principal, request: &RequestContext) -> Decision {
        self.decide(principal, request, &[])
    }

    fn decide(
        &self,
        principal: &Principal,
        request: &RequestContext,
        resource_policy: &[Statement],
    ) -> Decision {
        let applies_to = |statement: &Statement| match &statement.principals {
            None | Some(Principals::Everyone) => true,
            Some(Principals::Named(arns)) => arns.contains(&principal.arn),
        };
        let applicable = principal
            .statements
            .iter()
            .chain(resource_policy.iter().filter(|s| applies_to(s)))
            .filter(|statement| statement.matches(request));
        let mut allowed_by = Vec::new();
        for statement in applicable {
            match statement.effect {
                Effect::Deny => return Decision::ExplicitDeny(statement.sid.clone()),
                Effect::Allow => allowed_by.push(statement.sid.clone()),
            }
        }
        if allowed_by.is_empty() {
            return Decision::ImplicitDeny;
        }
        if let Some(Ok(mut log)) = self.grants_log.as_ref().map(Mutex::lock) {
            let line = serde_json::Value::from(allowed_by.clone()).to_string();
            if let Err(error) = writeln!(log, "{line}") {
                tracing::warn!(%error, "cannot write the grants log");
            }
        }
        Decision::Allowed(allowed_by)
    }

    /// What AWS says when it refuses, naming the principal, the action and the resource.
    pub fn refusal(principal: &Principal, request: &RequestContext, decision: &Decision) -> String {
        let why = match decision {
            Decision::ExplicitDeny(sid) => {
                format!("with an explicit deny in a resource-based policy ({sid})")
            }
            _ => format!(
                "because no identity-based policy allows the {} action",
                request.action
            ),
        };
        format!(
            "User: {} is not authorized to perform: {} on resource: \"{}\" {why}",
            principal.arn, request.action, request.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn authorizer() -> (Authorizer, StackIam) {
        let stack = StackIam::parse(
            include_str!("../../../template.yaml"),
            "us-east-1",
            &BTreeMap::new(),
        )
        .unwrap();
        (Authorizer::new(&stack, "admin"), stack)
    }

    fn role<'a>(authorizer: &'a Authorizer, name: &str) -> &'a Principal {
        authorizer.principal(&role_credentials(name).0).unwrap()
    }

    #[test]
    fn an_explicit_deny_wins_over_any_allow() {
        let (authorizer, stack) = authorizer();
        let admin = authorizer.principal("admin").unwrap();
        let put = RequestContext::new("s3:PutObject", format!("{}/users/a/b", stack.bucket_arn))
            .with("s3:ObjectCreationOperation", "true")
            .with("aws:SecureTransport", "true");
        assert_eq!(
            authorizer.authorize_s3(admin, &put),
            Decision::ExplicitDeny(
                "FilesBucketPolicy/DenyUserObjectWritesWithoutIfNoneMatch".into()
            )
        );
        assert!(
            authorizer
                .authorize_s3(admin, &put.with("s3:if-none-match", "*"))
                .allowed()
        );
    }

    #[test]
    fn each_role_has_exactly_its_own_rights() {
        let (authorizer, stack) = authorizer();
        let outside = format!("{}/reconcile/cursor", stack.bucket_arn);
        let get_outside = RequestContext::new("s3:GetObject", &outside);
        for name in [
            "ApiFunctionRole",
            "EventsFunctionRole",
            "ReconcileFunctionRole",
        ] {
            assert_eq!(
                authorizer.authorize_s3(role(&authorizer, name), &get_outside),
                Decision::ImplicitDeny,
                "{name}: nothing outside users/"
            );
        }
        let get_user_object =
            RequestContext::new("s3:GetObject", format!("{}/users/a/b", stack.bucket_arn));
        assert_eq!(
            authorizer.authorize_s3(role(&authorizer, "ReconcileFunctionRole"), &get_user_object),
            Decision::Allowed(vec!["ReconcileFunctionRole/files/UserObjects".into()])
        );
        let list =
            RequestContext::new("s3:ListBucket", &stack.bucket_arn).with("s3:prefix", "users/");
        assert!(
            !authorizer
                .authorize_s3(role(&authorizer, "EventsFunctionRole"), &list)
                .allowed()
        );
        assert!(
            authorizer
                .authorize_s3(role(&authorizer, "ReconcileFunctionRole"), &list)
                .allowed()
        );
        let query = RequestContext::new("dynamodb:Query", &stack.table_arn);
        assert!(
            authorizer
                .authorize_dynamodb(role(&authorizer, "ApiFunctionRole"), &query)
                .allowed()
        );
        assert!(
            !authorizer
                .authorize_dynamodb(role(&authorizer, "EventsFunctionRole"), &query)
                .allowed()
        );
    }

    #[test]
    fn grants_record_which_statements_allowed_each_request() {
        let (authorizer, stack) = authorizer();
        let log = tempfile::NamedTempFile::new().unwrap();
        let authorizer = authorizer.with_grants_log(log.reopen().unwrap());
        let get = RequestContext::new("s3:GetObject", format!("{}/users/a", stack.bucket_arn));
        authorizer.authorize_s3(role(&authorizer, "ApiFunctionRole"), &get);
        let refused = RequestContext::new("s3:ListBucket", &stack.bucket_arn);
        authorizer.authorize_s3(role(&authorizer, "ApiFunctionRole"), &refused);
        assert_eq!(
            std::fs::read_to_string(log.path()).unwrap(),
            "[\"ApiFunctionRole/files/UserObjects\"]\n",
            "one line per allowed request, none for a refused one"
        );
    }
}
