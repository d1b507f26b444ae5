//! The reconciliation's multipart grants (issue 20, point 2.6), evaluated by the local IAM from
//! template.yaml as IAM would (IAM User Guide, "Policy evaluation logic"): ListMultipartUploads
//! under `users/` and AbortMultipartUpload there are allowed by exactly `ListUserUploads` and
//! `AbortUserUploads`, and refused without them; any other prefix is refused.

use std::collections::BTreeMap;

use local_aws::iam::{Authorizer, Decision, RequestContext, StackIam};
use local_aws::role_credentials;

const ROLE: &str = "ReconcileFunctionRole";

fn stack() -> StackIam {
    StackIam::parse(
        include_str!("../../template.yaml"),
        "us-east-1",
        &BTreeMap::new(),
    )
    .expect("template.yaml")
}

fn decide(stack: &StackIam, request: &RequestContext) -> Decision {
    let authorizer = Authorizer::new(stack, "admin");
    let role = authorizer
        .principal(&role_credentials(ROLE).0)
        .expect("the reconcile role");
    authorizer.authorize_s3(role, request)
}

/// `stack` without the reconcile role's statement `sid`.
fn without(mut stack: StackIam, sid: &str) -> StackIam {
    let role = stack
        .roles
        .iter_mut()
        .find(|role| role.logical_id == ROLE)
        .expect("the reconcile role");
    let before = role.statements.len();
    role.statements
        .retain(|statement| statement.sid != format!("{ROLE}/files/{sid}"));
    assert_eq!(role.statements.len(), before - 1, "{sid} was there");
    stack
}

#[test]
fn the_reconcile_role_lists_and_aborts_uploads_under_users_by_its_own_statements_only() {
    let stack = stack();
    // ListMultipartUploads is authorized as s3:ListBucketMultipartUploads on the bucket, with
    // the request's prefix as s3:prefix (Amazon S3 User Guide, "Actions, resources, and
    // condition keys for Amazon S3").
    let list = |prefix: &str| {
        RequestContext::new("s3:ListBucketMultipartUploads", &stack.bucket_arn)
            .with("s3:prefix", prefix)
    };
    let abort = RequestContext::new(
        "s3:AbortMultipartUpload",
        format!("{}/users/alice/f", stack.bucket_arn),
    );
    assert_eq!(
        decide(&stack, &list("users/")),
        Decision::Allowed(vec![format!("{ROLE}/files/ListUserUploads")])
    );
    assert_eq!(
        decide(&stack, &abort),
        Decision::Allowed(vec![format!("{ROLE}/files/AbortUserUploads")])
    );
    // Nowhere else.
    assert_eq!(decide(&stack, &list("elsewhere/")), Decision::ImplicitDeny);
    assert_eq!(
        decide(
            &stack,
            &RequestContext::new("s3:ListBucketMultipartUploads", &stack.bucket_arn)
        ),
        Decision::ImplicitDeny
    );
    let abort_elsewhere = RequestContext::new(
        "s3:AbortMultipartUpload",
        format!("{}/elsewhere/f", stack.bucket_arn),
    );
    assert_eq!(decide(&stack, &abort_elsewhere), Decision::ImplicitDeny);

    // Each statement is needed: without it, its action is refused.
    let no_list = without(stack.clone(), "ListUserUploads");
    assert_eq!(decide(&no_list, &list("users/")), Decision::ImplicitDeny);
    let no_abort = without(stack.clone(), "AbortUserUploads");
    assert_eq!(decide(&no_abort, &abort), Decision::ImplicitDeny);
}
