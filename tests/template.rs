//! template.yaml as a security reviewer reads it: least-privilege IAM, deny-only resource
//! policies, no local identity shortcut, and the routes, table keys and bucket name the code
//! expects. Each check returns the problems it found, and `checks_catch_a_widened_template`
//! proves that each one fails on a template that breaks its rule.

use std::collections::BTreeSet;

use presign_gate::http::routes::ROUTES;
use presign_gate::store::attr;
use serde_json::{Value, json};

const TEMPLATE: &str = include_str!("../template.yaml");

/// The S3 actions the API role has: a presigned URL can do at most what its signer may.
/// s3:DeleteObjectVersion: deletes name the version, so that nothing stays behind as a
/// noncurrent version on the versioned bucket (the S3 API reference asks for s3:DeleteObject too
/// on every DeleteObject).
/// `s3:PutObject` also covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload;
/// multipart adds only aborting an upload and listing its parts, and only to the API's role (the
/// events and reconciliation functions never touch an upload in progress).
const API_S3_ACTIONS: &[&str] = &[
    "s3:PutObject",
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
];
const API_DYNAMODB_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
];
const EVENTS_S3_ACTIONS: &[&str] = &["s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion"];
const EVENTS_DYNAMODB_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
];
const LOGS_ACTIONS: &[&str] = &["logs:CreateLogStream", "logs:PutLogEvents"];
/// The reconciliation lists users/ (and nothing else: a condition), reads and deletes objects
/// there, and reads and confirms records, and its cursor item, one at a time: no Scan, no Query.
const RECONCILE_S3_ACTIONS: &[&str] = &[
    "s3:ListBucket",
    // Multipart uploads under users/ (a condition, as for the objects), to abort those that no
    // pending record owns (issue 20, point 2.6).
    "s3:ListBucketMultipartUploads",
    "s3:AbortMultipartUpload",
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    // GuardDuty's verdict tag on a file still scanning, to recover a scan result that was lost
    // (issue 22); reading tags only: no function may change them (scanning.rs).
    "s3:GetObjectTagging",
];
const RECONCILE_DYNAMODB_ACTIONS: &[&str] = &["dynamodb:GetItem", "dynamodb:UpdateItem"];

#[path = "template/iam.rs"]
mod iam;
#[path = "template/outbound.rs"]
mod outbound;
#[path = "template/outbound_widening.rs"]
mod outbound_widening;
#[path = "template/reading.rs"]
mod reading;
#[path = "template/resources.rs"]
mod resources;
#[path = "template/scanning.rs"]
mod scanning;

use iam::*;
use outbound::*;
use reading::*;
use resources::*;
use scanning::*;

/// Every check, on the template as deployed with scanning on and with it off, and with each
/// outbound-events setting (each problem names the setting), and the checks of the template as
/// written.
fn all_problems(text: &str) -> Vec<String> {
    let t = parse(text);
    let mut problems = scanning_switch_problems(&t);
    for scan_uploads in ["true", "false"] {
        let view = deployed(&t, &[("ScanUploads", scan_uploads)]);
        let mut found = iam_problems(&view);
        found.extend(resource_policy_problems(&view));
        found.extend(bucket_name_problems(&view));
        found.extend(storage_and_events_problems(&view));
        found.extend(scanning_problems(&view, scan_uploads == "true"));
        found.extend(dangling_reference_problems(&view));
        found.extend(template_routes(&view).1);
        problems.extend(
            found
                .into_iter()
                .map(|problem| format!("ScanUploads={scan_uploads}: {problem}")),
        );
    }
    problems.extend(outbound_problems(&t));
    problems.extend(dev_identity_problems(text));
    problems
}

/// (what, text in template.yaml, its widened replacement, a problem that must be reported): each
/// replacement is made alone, and the checks must report the problem.
type Widening<'a> = (&'a str, &'a str, &'a str, &'a str);

fn assert_each_widening_is_caught(cases: &[Widening]) {
    for (what, from, to, expected) in cases {
        assert!(
            TEMPLATE.contains(from),
            "{what}: {from:?} not in template.yaml"
        );
        let problems = all_problems(&TEMPLATE.replacen(from, to, 1));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{what}: expected a problem containing {expected:?}, got {problems:?}"
        );
    }
}

#[test]
fn template_is_least_privilege_and_deploys_no_dev_identity() {
    let problems = all_problems(TEMPLATE);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn template_routes_are_the_routes_the_code_serves() {
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let (declared, _) = template_routes(&template());
    assert_eq!(declared, served, "template.yaml routes vs ROUTES");
}

#[test]
fn table_layout_is_the_one_the_code_uses() {
    let t = template();
    let table = &t["Resources"]["FilesTable"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["KeySchema"],
        json!([
            { "AttributeName": attr::OWNER, "KeyType": "HASH" },
            { "AttributeName": attr::FILE_ID, "KeyType": "RANGE" },
        ])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([
            { "AttributeName": attr::OWNER, "AttributeType": "S" },
            { "AttributeName": attr::FILE_ID, "AttributeType": "S" },
        ])
    );
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({ "AttributeName": attr::PURGE_AT, "Enabled": true })
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    // The publisher's stream (issue 22, section 2); the local stand-ins' table is created with the
    // same one by `DynamoDbOwnershipStore::create_table`.
    assert_eq!(
        table["StreamSpecification"],
        json!({ "StreamViewType": "NEW_AND_OLD_IMAGES" })
    );
}

#[test]
fn functions_are_built_from_this_crate_for_al2023() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["Architectures"], json!([{ "Ref": "Architecture" }]));
    assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64");
    let cargo = include_str!("../Cargo.toml");
    // `make test` and `make deploy` build every function in one cargo run before `sam build`,
    // whose own per-function cargo lambda runs then find them up to date: a function missing from
    // that run would still build, alone and slowly, in `sam build`.
    let release_build = include_str!("../Makefile")
        .lines()
        .find(|line| line.starts_with("LAMBDA_RELEASE_BUILD = cargo lambda build --release "))
        .expect("the Makefile's LAMBDA_RELEASE_BUILD");
    for (function, binary) in [
        ("ApiFunction", "api"),
        ("EventsFunction", "events"),
        ("ReconcileFunction", "reconcile"),
        (PUBLISHER, "publish"),
    ] {
        let metadata = &t["Resources"][function]["Metadata"];
        assert_eq!(metadata["BuildMethod"], "rust-cargolambda", "{function}");
        assert_eq!(metadata["BuildProperties"]["Binary"], binary, "{function}");
        assert!(
            cargo.contains(&format!("[[bin]]\nname = \"{binary}\"")),
            "Cargo.toml has no [[bin]] {binary}"
        );
        assert!(
            format!("{release_build} ").contains(&format!(" --bin {binary} ")),
            "LAMBDA_RELEASE_BUILD does not build {binary}: {release_build}"
        );
    }
    assert_eq!(
        resources_of_type(&t, "AWS::Serverless::Function").len(),
        4,
        "a function was added: build it in LAMBDA_RELEASE_BUILD and list it here"
    );
    let env = &t["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"];
    for (variable, parameter) in [
        ("URL_TTL_SECONDS", "UrlTtlSeconds"),
        ("URL_TTL_MAX_SECONDS", "UrlTtlMaxSeconds"),
        ("MAX_UPLOAD_BYTES", "MaxUploadBytes"),
        ("ALLOWED_CONTENT_TYPES", "AllowedContentTypes"),
        ("QUOTA_MAX_PENDING_UPLOADS", "QuotaMaxPendingUploads"),
        ("QUOTA_MAX_BYTES", "QuotaMaxBytes"),
        ("MULTIPART_THRESHOLD_BYTES", "MultipartThresholdBytes"),
        ("MULTIPART_EXPIRY_SECONDS", "MultipartExpirySeconds"),
    ] {
        assert_eq!(env[variable], json!({ "Ref": parameter }), "{variable}");
    }
    // Issue 20, 2.2: no URL lifetime longer than role credentials can honour. A presigned URL
    // dies with the role session that signed it (S3 User Guide, "Download and upload objects
    // with presigned URLs", expiration time), and a role session lasts an hour unless its role
    // allows more (IAM User Guide, "Update the maximum session duration for a role").
    for parameter in ["UrlTtlSeconds", "UrlTtlMaxSeconds"] {
        assert_eq!(
            t["Parameters"][parameter]["MaxValue"],
            json!(3600),
            "{parameter}: URLs outliving the credentials that signed them"
        );
        assert!(
            t["Parameters"][parameter]["Default"].as_u64() <= Some(3600),
            "{parameter}"
        );
    }
    // The reconciliation judges strays by the same longest URL lifetime, and runs on schedule.
    let env = &t["Resources"]["ReconcileFunction"]["Properties"]["Environment"]["Variables"];
    for (variable, parameter) in [
        ("URL_TTL_SECONDS", "UrlTtlSeconds"),
        ("URL_TTL_MAX_SECONDS", "UrlTtlMaxSeconds"),
        ("RECONCILE_MAX_OBJECTS", "ReconcileMaxObjects"),
    ] {
        assert_eq!(env[variable], json!({ "Ref": parameter }), "{variable}");
    }
    let schedule = &t["Resources"]["ReconcileSchedule"]["Properties"];
    assert_eq!(
        schedule["ScheduleExpression"],
        json!({ "Ref": "ReconcileScheduleExpression" })
    );
    assert_eq!(
        t["Parameters"]["ReconcileScheduleExpression"]["Default"],
        "rate(1 day)"
    );
    // The deployed quotas default to the code's, and the template allows no setting the
    // function would refuse at start.
    let quotas = presign_gate::domain::QuotaLimits::default();
    let pending = &t["Parameters"]["QuotaMaxPendingUploads"];
    assert_eq!(pending["Default"], json!(quotas.max_pending_uploads));
    assert_eq!(pending["MinValue"], json!(1));
    assert_eq!(
        pending["MaxValue"],
        json!(presign_gate::domain::QuotaLimits::MAX_PENDING_UPLOADS_SETTING)
    );
    assert_eq!(
        t["Parameters"]["QuotaMaxBytes"]["Default"],
        json!(quotas.max_bytes)
    );
}

/// The HTTP API lets browsers send exactly the request headers the API reads: the token, the
/// JSON body's type, and `POST /uploads`'s `Idempotency-Key` (a preflight that does not allow a
/// header makes the browser refuse the request; API Gateway Developer Guide, "Configuring CORS
/// for an HTTP API").
#[test]
fn the_api_allows_the_request_headers_the_code_reads() {
    let t = template();
    let cors = &t["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"];
    assert_eq!(
        cors["AllowHeaders"],
        json!([
            "authorization",
            "content-type",
            presign_gate::http::IDEMPOTENCY_KEY
        ])
    );
    assert_eq!(cors["ExposeHeaders"], json!(["retry-after"]));
}

/// Multipart: the bucket aborts incomplete uploads, never before a reservation lapses, and the
/// parameters' bounds are the code's.
#[test]
fn multipart_limits_agree_with_the_lifecycle_rule_and_the_code() {
    let t = template();
    let rules = t["Resources"]["FilesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let abort_days: Vec<u64> = rules
        .iter()
        .filter(|rule| rule["Status"] == "Enabled")
        .filter_map(|rule| rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"].as_u64())
        .collect();
    assert_eq!(
        abort_days.len(),
        1,
        "one AbortIncompleteMultipartUpload rule: {rules:?}"
    );
    // The multipart ledger entries count until this rule may abort their uploads (issue 20, 2.5).
    assert_eq!(
        abort_days[0],
        u64::from(presign_gate::domain::LIFECYCLE_ABORT_DAYS)
    );
    let expiry = &t["Parameters"]["MultipartExpirySeconds"];
    let longest = expiry["MaxValue"]
        .as_u64()
        .expect("MultipartExpirySeconds MaxValue");
    assert!(
        abort_days[0] * 86_400 >= longest,
        "the lifecycle rule aborts after {} days, before a reservation of {longest} s lapses",
        abort_days[0]
    );
    assert_eq!(longest, presign_gate::config::MAX_MULTIPART_EXPIRY_SECS);
    assert_eq!(
        expiry["Default"].as_u64(),
        Some(presign_gate::service::DEFAULT_MULTIPART_EXPIRY.as_secs())
    );
    assert_eq!(
        t["Parameters"]["MaxUploadBytes"]["MaxValue"].as_u64(),
        Some(presign_gate::domain::MAX_OBJECT_SIZE)
    );
    assert_eq!(
        t["Parameters"]["MultipartThresholdBytes"]["MaxValue"].as_u64(),
        Some(presign_gate::domain::MAX_SINGLE_PUT_SIZE)
    );
    assert_eq!(
        t["Parameters"]["MultipartThresholdBytes"]["Default"].as_u64(),
        Some(presign_gate::domain::DEFAULT_MULTIPART_THRESHOLD_BYTES)
    );
}

#[test]
fn jwt_authorization_scopes_are_required_on_every_route_only_when_set() {
    let t = template();
    let parameter = &t["Parameters"]["JwtAuthorizationScopes"];
    assert_eq!(parameter["Default"], "", "no scope required by default");
    assert_eq!(parameter["AllowedPattern"], "^$|^[^,\\s]+(,[^,\\s]+){0,4}$");
    // On the default authorizer, which every route uses (`template_routes` refuses overrides).
    let auth = &t["Resources"]["HttpApi"]["Properties"]["Auth"];
    let default = auth["DefaultAuthorizer"]
        .as_str()
        .expect("a default authorizer");
    let scopes = auth["Authorizers"][default]["AuthorizationScopes"]
        .as_array()
        .expect("AuthorizationScopes is a list, as SAM requires");
    let deployed = |value: &str| -> Vec<Value> {
        scopes
            .iter()
            .filter_map(|scope| resolve(&t, scope, &[("JwtAuthorizationScopes", value)]))
            .collect()
    };
    assert_eq!(deployed(""), Vec::<Value>::new());
    assert_eq!(deployed("files/api"), [json!("files/api")]);
    assert_eq!(
        deployed("a,b/c,d,e,f"),
        ["a", "b/c", "d", "e", "f"].map(|scope| json!(scope))
    );
    let (routes, problems) = template_routes(&t);
    assert!(problems.is_empty() && !routes.is_empty(), "{problems:?}");
}

/// Each rule fails on a template that breaks it, so a passing run means something.
#[test]
fn checks_catch_a_widened_template() {
    let cases: &[Widening] = &[
        (
            "wildcard action",
            "- s3:AbortMultipartUpload",
            "- s3:*",
            "wildcard action s3:*",
        ),
        (
            "bucket-wide object access",
            "Resource: !Sub \"arn:${AWS::Partition}:s3:::${FilesBucket}/users/*\"",
            "Resource: !Sub \"arn:${AWS::Partition}:s3:::${FilesBucket}/*\"",
            "s3:PutObject on",
        ),
        (
            "Resource '*'",
            "Resource: !GetAtt FilesTable.Arn\n\n  # ----",
            "Resource: \"*\"\n\n  # ----",
            "Resource \"*\"",
        ),
        (
            "extra action",
            "- dynamodb:Query",
            "- dynamodb:Query\n                  - dynamodb:Scan",
            "\"dynamodb:Scan\"",
        ),
        (
            "SAM policy template",
            "      Role: !GetAtt ApiFunctionRole.Arn",
            "      Role: !GetAtt ApiFunctionRole.Arn\n      Policies:\n        - S3CrudPolicy:\n            BucketName: x",
            "ApiFunction has Policies",
        ),
        (
            "managed policy",
            "      Description: Presign Gate API function",
            "      Description: Presign Gate API function\n      ManagedPolicyArns: [arn:aws:iam::aws:policy/AmazonS3FullAccess]",
            "ApiFunctionRole has ManagedPolicyArns",
        ),
        (
            "dev identity",
            "          ALLOWED_CONTENT_TYPES: !Ref AllowedContentTypes",
            "          ALLOWED_CONTENT_TYPES: !Ref AllowedContentTypes\n          DEV_USER_HEADER: x-dev-user",
            "x-dev-user appears",
        ),
        (
            "dev identity compiled in by sam build",
            "      BuildProperties:\n        Binary: api",
            "      BuildProperties:\n        Binary: api\n        Features: dev-identity",
            "dev-identity appears",
        ),
        (
            "public route",
            "            Path: /files/{id}/complete",
            "            Path: /files/{id}/complete\n            Auth:\n              Authorizer: NONE",
            "overrides the default authorizer",
        ),
        (
            "public link route behind the default throttling only",
            "          ThrottlingRateLimit: !Ref LinkThrottlingRateLimit",
            "          ThrottlingRateLimit: !Ref ThrottlingRateLimit",
            "its own throttling",
        ),
        (
            "public link route with another authorizer",
            "            Path: /links/{linkId}\n            Auth:\n              Authorizer: NONE",
            "            Path: /links/{linkId}\n            Auth:\n              Authorizer: Other",
            "must have no authorizer",
        ),
        (
            "allowing bucket policy",
            "Effect: Deny\n            Principal: \"*\"\n            Action: s3:*",
            "Effect: Allow\n            Principal: \"*\"\n            Action: s3:*",
            "grants access",
        ),
        (
            "unversioned deletes only",
            "                  # The same deletes, by version id: for good, on the versioned bucket.\n                  - s3:DeleteObjectVersion\n                Resource: !Sub \"arn",
            "                Resource: !Sub \"arn",
            "ApiFunctionRole grants",
        ),
        (
            "listing versions",
            "- s3:DeleteObjectVersion",
            "- s3:DeleteObjectVersion\n                  - s3:GetObjectVersion",
            "\"s3:GetObjectVersion\"",
        ),
        (
            "writes without If-None-Match",
            "s3:if-none-match: \"true\"",
            "s3:if-none-match: \"false\"",
            "without If-None-Match",
        ),
        (
            "multipart parts refused",
            "s3:ObjectCreationOperation: \"true\"",
            "s3:ObjectCreationOperation: \"false\"",
            "without If-None-Match",
        ),
        (
            "listing beyond users/",
            "                    s3:prefix: users/",
            "                    s3:prefix: \"\"",
            "s3:ListBucket without exactly the condition",
        ),
        (
            "a Scan for the reconciliation",
            "                  - dynamodb:GetItem\n                  - dynamodb:UpdateItem\n                Resource: !GetAtt FilesTable.Arn\n\n  ReconcileSchedule",
            "                  - dynamodb:GetItem\n                  - dynamodb:UpdateItem\n                  - dynamodb:Scan\n                Resource: !GetAtt FilesTable.Arn\n\n  ReconcileSchedule",
            "ReconcileFunctionRole grants",
        ),
        (
            "schedule role widened",
            "                Action: lambda:InvokeFunction",
            "                Action: lambda:*",
            "ReconcileSchedulerRole grants",
        ),
        (
            "schedule role trusted by anyone in the service",
            "            Condition:\n              StringEquals:\n                aws:SourceAccount: !Ref AWS::AccountId\n                aws:SourceArn: !Sub \"arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule-group/default\"\n",
            "",
            "ReconcileSchedulerRole: trust policy",
        ),
        (
            "schedule outside the trusted group",
            "      GroupName: default\n",
            "      GroupName: other\n",
            "not in the schedule group the role trusts",
        ),
        (
            "schedule role trusted by any schedule of the account",
            "                aws:SourceArn: !Sub \"arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule-group/default\"\n",
            "",
            "ReconcileSchedulerRole: trust policy",
        ),
        (
            "public ACLs honoured",
            "        IgnorePublicAcls: true",
            "        IgnorePublicAcls: false",
            "public access block",
        ),
        (
            "public policies allowed",
            "        BlockPublicPolicy: true",
            "        BlockPublicPolicy: false",
            "public access block",
        ),
        (
            "public ACLs accepted",
            "        BlockPublicAcls: true",
            "        BlockPublicAcls: false",
            "public access block",
        ),
        (
            "cross-account public access",
            "        RestrictPublicBuckets: true",
            "        RestrictPublicBuckets: false",
            "public access block",
        ),
        (
            "ACLs back in force",
            "ObjectOwnership: BucketOwnerEnforced",
            "ObjectOwnership: ObjectWriter",
            "object ownership",
        ),
        (
            "no default encryption",
            "              SSEAlgorithm: AES256",
            "              SSEAlgorithm: aws:kms",
            "default encryption",
        ),
        (
            "bucket deleted with the stack",
            "    DependsOn: EventsInvokePermission # S3 checks it may invoke the function when notifications are set\n    DeletionPolicy: Retain",
            "    DependsOn: EventsInvokePermission # S3 checks it may invoke the function when notifications are set\n    DeletionPolicy: Delete",
            "FilesBucket's DeletionPolicy",
        ),
        (
            "table replaced without a copy",
            "    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Retain\n    UpdateReplacePolicy: Retain",
            "    Type: AWS::DynamoDB::Table\n    DeletionPolicy: Retain\n    UpdateReplacePolicy: Delete",
            "FilesTable's UpdateReplacePolicy",
        ),
        (
            "TLS 1.0 accepted",
            "                s3:TlsVersion: \"1.2\"",
            "                s3:TlsVersion: \"1.0\"",
            "TLS below 1.2",
        ),
        (
            "events retried without end",
            "        MaximumRetryAttempts: 2\n        MaximumEventAgeInSeconds: 3600",
            "        MaximumRetryAttempts: 0\n        MaximumEventAgeInSeconds: 3600",
            "EventInvokeConfig",
        ),
        (
            "failed events dropped",
            "        DestinationConfig:\n          OnFailure:\n            Type: SQS\n            Destination: !GetAtt EventsDeadLetterQueue.Arn\n",
            "",
            "EventInvokeConfig",
        ),
        (
            "lifetime not enforced",
            "s3:signatureAge: !Sub \"${UrlTtlMaxSeconds}000\"",
            "s3:signatureAge: \"604800000\"",
            "older than UrlTtlMaxSeconds",
        ),
    ];
    assert_each_widening_is_caught(cases);
    // And a route the code does not serve.
    let (routes, _) = template_routes(&parse(&TEMPLATE.replace("Path: /uploads", "Path: /upload")));
    assert!(!routes.contains(&("POST".to_owned(), "/uploads".to_owned())));
}
