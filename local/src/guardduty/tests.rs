//! The plan as the real template declares it, and the IAM the scanner meets.

use std::collections::BTreeMap;

use super::*;
use crate::iam::{Authorizer, Decision, RequestContext, StackIam, role_credentials};

fn template(scan_uploads: &str) -> Template {
    let overrides = BTreeMap::from([("ScanUploads".to_owned(), scan_uploads.to_owned())]);
    Template::load(
        include_str!("../../../template.yaml"),
        "us-east-1",
        &overrides,
    )
    .expect("template.yaml loads")
}

fn event_for(bucket: &str, key: &str, plan_arn: &str) -> serde_json::Value {
    let object = ScannedObject {
        bucket: bucket.into(),
        key: key.into(),
        e_tag: "e".into(),
        version_id: Some("v".into()),
    };
    scan_result_event(
        &object,
        ScanResult::NoThreatsFound,
        plan_arn,
        ACCOUNT_ID,
        "us-east-1",
    )
}

#[test]
fn the_template_s_plan_scans_users_and_its_rule_takes_its_events_only() {
    let template = template("true");
    let iam = StackIam::from_template(&template).unwrap();
    let plan = ScanPlan::from_template(&template).unwrap().expect("a plan");
    assert_eq!(plan.bucket, iam.names.bucket);
    assert_eq!(plan.prefixes, ["users/"]);
    assert_eq!(plan.role, "MalwareScanRole");
    assert!(plan.tagging);
    assert_eq!(
        plan.arn,
        format!(
            "arn:aws:guardduty:us-east-1:{ACCOUNT_ID}:malware-protection-plan/{}",
            crate::cfn::PLAN_ID
        )
    );
    assert!(plan.protects(&iam.names.bucket, "users/a/b"));
    assert!(!plan.protects(&iam.names.bucket, "reconcile/cursor"));
    assert!(!plan.protects("other", "users/a/b"));

    let bucket = iam.names.bucket.as_str();
    assert!(plan.delivers(&event_for(bucket, "users/a/b", &plan.arn)));
    assert!(
        !plan.delivers(&event_for("other", "users/a/b", &plan.arn)),
        "wrong bucket"
    );
    assert!(
        !plan.delivers(&event_for(bucket, "elsewhere/b", &plan.arn)),
        "wrong prefix"
    );
    let other_plan = plan.arn.replace(crate::cfn::PLAN_ID, "another");
    assert!(
        !plan.delivers(&event_for(bucket, "users/a/b", &other_plan)),
        "wrong plan"
    );
}

#[test]
fn without_scanning_there_is_no_plan_no_scan_role_and_no_tag_statement() {
    let template = template("false");
    assert!(ScanPlan::from_template(&template).unwrap().is_none());
    let iam = StackIam::from_template(&template).unwrap();
    assert!(iam.roles.iter().all(|r| r.logical_id != "MalwareScanRole"));
    assert!(
        iam.bucket_policy
            .iter()
            .all(|s| !s.sid.contains("Scanned") && !s.sid.contains("MalwareScanner")),
        "{:?}",
        iam.bucket_policy.iter().map(|s| &s.sid).collect::<Vec<_>>()
    );
    let on = StackIam::from_template(&self::template("true")).unwrap();
    assert_eq!(on.bucket_policy.len(), iam.bucket_policy.len() + 2);
}

fn authorizer() -> (Authorizer, StackIam) {
    let iam = StackIam::from_template(&template("true")).unwrap();
    (Authorizer::new(&iam, "admin"), iam)
}

#[test]
fn only_the_scan_role_may_tag_user_objects() {
    let (authorizer, iam) = authorizer();
    let object = format!("{}/users/a/b", iam.bucket_arn);
    let role = |name: &str| {
        authorizer
            .principal(&role_credentials(name).0)
            .unwrap()
            .clone()
    };
    let tag_as = |name: &str, action: &str| {
        let principal = role(name);
        let request = RequestContext::new(action, &object)
            .with("aws:PrincipalArn", principal.arn.clone())
            .with("aws:SecureTransport", "true");
        authorizer.authorize_s3(&principal, &request)
    };
    let denied =
        Decision::ExplicitDeny("FilesBucketPolicy/DenyObjectTaggingExceptMalwareScanner".into());
    for action in [
        "s3:PutObjectTagging",
        "s3:PutObjectVersionTagging",
        "s3:DeleteObjectTagging",
    ] {
        assert_eq!(tag_as("ApiFunctionRole", action), denied, "{action}");
    }
    let admin = authorizer.principal("admin").unwrap();
    let request = RequestContext::new("s3:PutObjectTagging", &object)
        .with("aws:PrincipalArn", admin.arn.clone());
    assert_eq!(
        authorizer.authorize_s3(admin, &request),
        denied,
        "not even the administrator"
    );
    for action in [
        "s3:PutObjectTagging",
        "s3:PutObjectVersionTagging",
        "s3:GetObjectVersion",
    ] {
        assert!(tag_as("MalwareScanRole", action).allowed(), "{action}");
    }
    // The role's ARN is what the bucket policy's !GetAtt MalwareScanRole.Arn resolves to.
    let scan_role = iam
        .roles
        .iter()
        .find(|r| r.logical_id == "MalwareScanRole")
        .unwrap();
    assert_eq!(role("MalwareScanRole").arn, scan_role.arn);
}

#[test]
fn a_presigned_read_needs_the_clean_tag_and_a_header_signed_one_does_not() {
    let (authorizer, iam) = authorizer();
    let api = authorizer
        .principal(&role_credentials("ApiFunctionRole").0)
        .unwrap();
    let get = |auth_type: &str| {
        RequestContext::new("s3:GetObject", format!("{}/users/a/b", iam.bucket_arn))
            .with("aws:PrincipalArn", api.arn.clone())
            .with("aws:SecureTransport", "true")
            .with("s3:authType", auth_type)
    };
    let denied =
        Decision::ExplicitDeny("FilesBucketPolicy/DenyPresignedReadsOfUnscannedObjects".into());
    let tagged = |request: RequestContext, value: &str| {
        request.with(&format!("s3:ExistingObjectTag/{STATUS_TAG}"), value)
    };
    assert_eq!(
        authorizer.authorize_s3(api, &get("REST-QUERY-STRING")),
        denied,
        "untagged"
    );
    assert_eq!(
        authorizer.authorize_s3(api, &tagged(get("REST-QUERY-STRING"), "THREATS_FOUND")),
        denied
    );
    assert!(
        authorizer
            .authorize_s3(api, &tagged(get("REST-QUERY-STRING"), "NO_THREATS_FOUND"))
            .allowed()
    );
    assert!(
        authorizer.authorize_s3(api, &get("REST-HEADER")).allowed(),
        "the function's own read"
    );
}
