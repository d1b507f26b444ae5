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
];
const RECONCILE_DYNAMODB_ACTIONS: &[&str] = &["dynamodb:GetItem", "dynamodb:UpdateItem"];

/// YAML to JSON, with CloudFormation's short forms turned into their long forms: `!Ref X` is
/// `{"Ref": "X"}`, `!GetAtt A.B` is `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` is `{"Fn::Sub": s}`.
fn to_json(yaml: serde_norway::Value) -> Value {
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

fn parse(text: &str) -> Value {
    to_json(serde_norway::from_str(text).expect("template.yaml is YAML"))
}

fn template() -> Value {
    parse(TEMPLATE)
}

fn resources(t: &Value) -> impl Iterator<Item = (&String, &Value)> {
    t["Resources"].as_object().expect("Resources").iter()
}

fn resources_of_type<'t>(t: &'t Value, kind: &str) -> Vec<(&'t String, &'t Value)> {
    let kind = kind.to_owned();
    resources(t).filter(|(_, r)| r["Type"] == kind).collect()
}

/// A string or a list of strings, as IAM allows for `Action`.
fn strings(value: &Value) -> Vec<String> {
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
fn resource_list(statement: &Value) -> Vec<Value> {
    match &statement["Resource"] {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

fn statements(document: &Value) -> Vec<Value> {
    match &document["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    }
}

fn get_att(resource: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, "Arn"] })
}

/// The files bucket's name as the template builds it: a `Fn::Sub` (string, or [string, vars]).
fn bucket_name(t: &Value) -> Value {
    let bucket = &t["Resources"]["FilesBucket"];
    assert_eq!(
        bucket["Type"], "AWS::S3::Bucket",
        "FilesBucket is the bucket"
    );
    bucket["Properties"]["BucketName"].clone()
}

/// `Fn::Sub` of `prefix + <bucket name> + suffix`, with the bucket name's own variables.
fn sub_around_bucket_name(t: &Value, prefix: &str, suffix: &str) -> Value {
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
fn user_object_arns(t: &Value) -> Vec<Value> {
    vec![
        json!({ "Fn::Sub": "arn:${AWS::Partition}:s3:::${FilesBucket}/users/*" }),
        sub_around_bucket_name(t, "arn:${AWS::Partition}:s3:::", "/users/*"),
    ]
}

/// Every function and the role it runs with; problems if a function has no role of its own.
fn function_roles(t: &Value, problems: &mut Vec<String>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let globals = &t["Globals"]["Function"];
    for key in ["Policies", "Role", "PermissionsBoundary"] {
        if !globals[key].is_null() {
            problems.push(format!(
                "Globals.Function sets {key}: each function names its own"
            ));
        }
    }
    for (name, function) in resources_of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .chain(resources_of_type(t, "AWS::Lambda::Function"))
    {
        let properties = &function["Properties"];
        if !properties["Policies"].is_null() {
            problems.push(format!(
                "{name} has Policies (SAM policy templates or managed policies): use its own role's inline statements"
            ));
        }
        match properties["Role"]["Fn::GetAtt"].as_array() {
            Some(att) if att.len() == 2 && att[1] == "Arn" => {
                let role = att[0].as_str().unwrap_or_default().to_owned();
                if t["Resources"][&role]["Type"] != "AWS::IAM::Role" {
                    problems.push(format!(
                        "{name}'s role {role} is not a role of this template"
                    ));
                }
                pairs.push((name.clone(), role));
            }
            _ => problems.push(format!("{name} has no !GetAtt <Role>.Arn of its own")),
        }
    }
    let roles: BTreeSet<&String> = pairs.iter().map(|(_, role)| role).collect();
    if roles.len() != pairs.len() {
        problems.push("two functions share a role".into());
    }
    pairs
}

/// Least privilege: only inline Allow statements, exact actions on exact ARNs, per function.
fn iam_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if t.to_string().contains("FullAccess") {
        problems.push("a *FullAccess managed policy is named".into());
    }
    for kind in [
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::User",
        "AWS::IAM::Group",
    ] {
        for (name, _) in resources_of_type(t, kind) {
            problems.push(format!(
                "{name}: {kind} is not allowed; roles carry inline policies"
            ));
        }
    }
    let objects = user_object_arns(t);
    let table = get_att("FilesTable");
    for (function, role_name) in function_roles(t, &mut problems) {
        let role = &t["Resources"][&role_name]["Properties"];
        for key in ["ManagedPolicyArns", "PermissionsBoundary"] {
            if !role[key].is_null() {
                problems.push(format!("{role_name} has {key}"));
            }
        }
        // Only Lambda may assume it.
        for statement in statements(&role["AssumeRolePolicyDocument"]) {
            if statement["Principal"] != json!({ "Service": "lambda.amazonaws.com" })
                || statement["Action"] != "sts:AssumeRole"
            {
                problems.push(format!("{role_name}: trust policy {statement}"));
            }
        }
        let log_group = t["Resources"][&function]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .map(get_att);
        if log_group.is_none() {
            problems.push(format!(
                "{function} has no LoggingConfig.LogGroup of its own"
            ));
        }
        let mut granted = BTreeSet::new();
        for policy in role["Policies"].as_array().cloned().unwrap_or_default() {
            for statement in statements(&policy["PolicyDocument"]) {
                let sid = statement["Sid"].as_str().unwrap_or("?").to_owned();
                let at = format!("{role_name}/{sid}");
                if statement["Effect"] != "Allow" {
                    problems.push(format!("{at}: a role statement is Allow or absent"));
                }
                for key in ["NotAction", "NotResource"] {
                    if !statement[key].is_null() {
                        problems.push(format!("{at}: {key} is not allowed"));
                    }
                }
                let resources = resource_list(&statement);
                if resources.is_empty() {
                    problems.push(format!("{at}: no Resource"));
                }
                for resource in &resources {
                    if resource.as_str().is_some_and(|r| r.contains('*')) {
                        problems.push(format!("{at}: Resource {resource}"));
                    }
                }
                for action in strings(&statement["Action"]) {
                    if action.contains('*') || action.contains('?') {
                        problems.push(format!("{at}: wildcard action {action}"));
                    }
                    let allowed: Vec<Value> = match action.split(':').next().unwrap_or_default() {
                        "s3" if function == "ReconcileFunction" => {
                            reconcile_s3_resources(&action, &statement, &objects, &mut problems)
                        }
                        "s3" => objects.clone(),
                        "dynamodb" => vec![table.clone()],
                        "logs" => log_group.iter().cloned().collect(),
                        "sqs" => vec![get_att("EventsDeadLetterQueue")],
                        other => {
                            problems.push(format!("{at}: {action}: no {other} action is expected"));
                            vec![]
                        }
                    };
                    for resource in &resources {
                        if !allowed.contains(resource) {
                            problems.push(format!("{at}: {action} on {resource}"));
                        }
                    }
                    granted.insert(action);
                }
            }
        }
        let expected: BTreeSet<String> = match function.as_str() {
            "ApiFunction" => [API_S3_ACTIONS, API_DYNAMODB_ACTIONS, LOGS_ACTIONS].concat(),
            "EventsFunction" => [
                EVENTS_S3_ACTIONS,
                EVENTS_DYNAMODB_ACTIONS,
                LOGS_ACTIONS,
                &["sqs:SendMessage"],
            ]
            .concat(),
            "ReconcileFunction" => [
                RECONCILE_S3_ACTIONS,
                RECONCILE_DYNAMODB_ACTIONS,
                LOGS_ACTIONS,
            ]
            .concat(),
            other => {
                problems.push(format!("unexpected function {other}"));
                vec![]
            }
        }
        .into_iter()
        .map(str::to_owned)
        .collect();
        if granted != expected {
            problems.push(format!(
                "{role_name} grants {granted:?}, expected exactly {expected:?}"
            ));
        }
    }
    scheduler_role_problems(t, &mut problems);
    problems
}

/// The reconciling role's S3 resources for `action`: `s3:ListBucket` on the bucket alone, in a
/// statement of its own limited to the `users/` prefix; anything else on objects under users/
/// (its cursor is an item of the table, never an object).
fn reconcile_s3_resources(
    action: &str,
    statement: &Value,
    objects: &[Value],
    problems: &mut Vec<String>,
) -> Vec<Value> {
    match action {
        // ListObjectsV2 and ListMultipartUploads alike: users/ only.
        "s3:ListBucket" | "s3:ListBucketMultipartUploads" => {
            let sid = &statement["Sid"];
            if statement["Condition"] != json!({ "StringEquals": { "s3:prefix": "users/" } }) {
                problems.push(format!(
                    "{sid}: {action} without exactly the condition s3:prefix = users/"
                ));
            }
            if strings(&statement["Action"]) != [action] {
                problems.push(format!("{sid}: {action} shares its statement"));
            }
            vec![get_att("FilesBucket")]
        }
        _ => objects.to_vec(),
    }
}

/// Every role that is no function's is the schedule's: only EventBridge Scheduler of this
/// account may assume it, and it may only invoke the reconciliation function.
fn scheduler_role_problems(t: &Value, problems: &mut Vec<String>) {
    let mut function_roles = Vec::new();
    let functions = resources_of_type(t, "AWS::Serverless::Function");
    for (_, function) in &functions {
        function_roles.push(function["Properties"]["Role"]["Fn::GetAtt"][0].clone());
    }
    let schedules = resources_of_type(t, "AWS::Scheduler::Schedule");
    if schedules.len() != 1 {
        problems.push(format!(
            "expected one schedule (the reconciliation), found {}",
            schedules.len()
        ));
    }
    for (name, schedule) in schedules {
        let target = &schedule["Properties"]["Target"];
        if target["Arn"] != get_att("ReconcileFunction") {
            problems.push(format!("{name} targets {}", target["Arn"]));
        }
        if target["RoleArn"] != get_att("ReconcileSchedulerRole") {
            problems.push(format!("{name} runs as {}", target["RoleArn"]));
        }
        // The scheduler role's trust policy names the default group as aws:SourceArn.
        if schedule["Properties"]["GroupName"] != "default" {
            problems.push(format!(
                "{name} is not in the schedule group the role trusts"
            ));
        }
    }
    for (role_name, role) in resources_of_type(t, "AWS::IAM::Role") {
        if function_roles.contains(&json!(role_name)) {
            continue;
        }
        if role_name != "ReconcileSchedulerRole" {
            problems.push(format!(
                "{role_name} is neither a function's nor the schedule's role"
            ));
            continue;
        }
        let properties = &role["Properties"];
        let trust = statements(&properties["AssumeRolePolicyDocument"]);
        let expected_trust = json!([{
            "Effect": "Allow",
            "Principal": { "Service": "scheduler.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": { "StringEquals": {
                "aws:SourceAccount": { "Ref": "AWS::AccountId" },
                "aws:SourceArn": { "Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule-group/default" },
            } },
        }]);
        if json!(trust) != expected_trust {
            problems.push(format!("{role_name}: trust policy {trust:?}"));
        }
        for key in ["ManagedPolicyArns", "PermissionsBoundary"] {
            if !properties[key].is_null() {
                problems.push(format!("{role_name} has {key}"));
            }
        }
        let granted: Vec<Value> = properties["Policies"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .flat_map(|policy| statements(&policy["PolicyDocument"]))
            .map(|statement| {
                json!([
                    statement["Effect"],
                    statement["Action"],
                    statement["Resource"],
                    statement["Condition"]
                ])
            })
            .collect();
        let expected = vec![json!([
            "Allow",
            "lambda:InvokeFunction",
            get_att("ReconcileFunction"),
            null
        ])];
        if granted != expected {
            problems.push(format!(
                "{role_name} grants {granted:?}, expected exactly {expected:?}"
            ));
        }
    }
}

/// Resource policies only take away: the bucket's and the queue's statements are all Deny, and
/// the bucket refuses plain HTTP and presigned requests older than the longest URL lifetime.
fn resource_policy_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bucket_statements = Vec::new();
    for kind in ["AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"] {
        for (name, policy) in resources_of_type(t, kind) {
            for statement in statements(&policy["Properties"]["PolicyDocument"]) {
                if statement["Effect"] != "Deny" {
                    problems.push(format!("{name}: {statement} grants access"));
                }
                if kind == "AWS::S3::BucketPolicy" {
                    bucket_statements.push(statement);
                }
            }
        }
    }
    let denies = |condition: Value| {
        bucket_statements
            .iter()
            .any(|s| s["Effect"] == "Deny" && s["Condition"] == condition)
    };
    if !denies(json!({ "Bool": { "aws:SecureTransport": "false" } })) {
        problems.push("the bucket policy does not deny requests without TLS".into());
    }
    if !denies(json!({
        "StringEquals": { "s3:authType": "REST-QUERY-STRING" },
        // s3:signatureAge is in milliseconds.
        "NumericGreaterThan": { "s3:signatureAge": { "Fn::Sub": "${UrlTtlMaxSeconds}000" } },
    })) {
        problems.push(
            "the bucket policy does not deny presigned requests older than UrlTtlMaxSeconds".into(),
        );
    }
    // No object is created under users/ without If-None-Match: * (PutObject and
    // CompleteMultipartUpload; CreateMultipartUpload and UploadPart are exempt).
    let conditional_writes = bucket_statements.iter().any(|s| {
        s["Effect"] == "Deny"
            && s["Principal"] == "*"
            && strings(&s["Action"]) == ["s3:PutObject"]
            && resource_list(s) == [json!({ "Fn::Sub": "${FilesBucket.Arn}/users/*" })]
            && s["Condition"]
                == json!({
                    "Null": { "s3:if-none-match": "true" },
                    "Bool": { "s3:ObjectCreationOperation": "true" },
                })
    });
    if !conditional_writes {
        problems.push(
            "the bucket policy does not deny object writes under users/ without If-None-Match"
                .into(),
        );
    }
    // S3 may invoke the events function for this bucket only.
    let permission = &t["Resources"]["EventsInvokePermission"]["Properties"];
    if permission["Principal"] != "s3.amazonaws.com"
        || permission["SourceAccount"] != json!({ "Ref": "AWS::AccountId" })
        || permission["SourceArn"] != sub_around_bucket_name(t, "arn:${AWS::Partition}:s3:::", "")
    {
        problems.push(format!(
            "EventsInvokePermission is not scoped to the files bucket: {permission}"
        ));
    }
    problems
}

/// README, "Deploying": the bucket blocks all public access, enforces bucket-owner ownership,
/// encrypts by default and refuses TLS below 1.2; the bucket and the table outlive the stack; a
/// failed S3 event is retried twice within an hour and then lands in the dead-letter queue. Each
/// property exactly as documented, so that a weakened one (a `false`, a dropped rule) is reported
/// even where checkov's generic rules would accept it.
fn storage_and_events_problems(t: &Value) -> Vec<String> {
    let resources = &t["Resources"];
    let bucket = &resources["FilesBucket"]["Properties"];
    let mut expected = vec![
        (
            "the bucket's public access block".to_owned(),
            &bucket["PublicAccessBlockConfiguration"],
            json!({
                "BlockPublicAcls": true,
                "BlockPublicPolicy": true,
                "IgnorePublicAcls": true,
                "RestrictPublicBuckets": true,
            }),
        ),
        (
            "the bucket's object ownership".to_owned(),
            &bucket["OwnershipControls"],
            json!({ "Rules": [{ "ObjectOwnership": "BucketOwnerEnforced" }] }),
        ),
        (
            "the bucket's default encryption".to_owned(),
            &bucket["BucketEncryption"],
            json!({ "ServerSideEncryptionConfiguration": [{
                "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" },
                "BucketKeyEnabled": true,
            }] }),
        ),
        (
            "the events function's EventInvokeConfig".to_owned(),
            &resources["EventsFunction"]["Properties"]["EventInvokeConfig"],
            json!({
                "MaximumRetryAttempts": 2,
                "MaximumEventAgeInSeconds": 3600,
                "DestinationConfig": { "OnFailure": {
                    "Type": "SQS",
                    "Destination": get_att("EventsDeadLetterQueue"),
                } },
            }),
        ),
        (
            "EventsDeadLetterQueue's type".to_owned(),
            &resources["EventsDeadLetterQueue"]["Type"],
            json!("AWS::SQS::Queue"),
        ),
    ];
    for name in ["FilesBucket", "FilesTable"] {
        for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
            expected.push((
                format!("{name}'s {policy}"),
                &resources[name][policy],
                json!("Retain"),
            ));
        }
    }
    let mut problems: Vec<String> = expected
        .into_iter()
        .filter(|(_, actual, expected)| *actual != expected)
        .map(|(what, actual, expected)| format!("{what} is {actual}, expected {expected}"))
        .collect();
    let tls_deny = json!({
        "Sid": "DenyOutdatedTls",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [
            { "Fn::GetAtt": ["FilesBucket", "Arn"] },
            { "Fn::Sub": "${FilesBucket.Arn}/*" },
        ],
        "Condition": { "NumericLessThan": { "s3:TlsVersion": "1.2" } },
    });
    let bucket_policy = statements(&resources["FilesBucketPolicy"]["Properties"]["PolicyDocument"]);
    if !bucket_policy.contains(&tls_deny) {
        problems.push(format!(
            "the bucket policy does not deny TLS below 1.2 on the bucket and its objects: \
             expected {tls_deny} among {bucket_policy:?}"
        ));
    }
    problems
}

/// The bucket name the functions are given is the bucket's own.
fn bucket_name_problems(t: &Value) -> Vec<String> {
    let env = &t["Globals"]["Function"]["Environment"]["Variables"]["FILES_BUCKET"];
    if *env == bucket_name(t) || *env == json!({ "Ref": "FilesBucket" }) {
        vec![]
    } else {
        vec![format!("FILES_BUCKET {env} is not the bucket's name")]
    }
}

/// Neither the dev header nor the feature that compiles it in (`dev-identity`, which a
/// `BuildProperties: Features` entry would hand to cargo lambda) reaches the deployed template.
fn dev_identity_problems(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    ["dev_user_header", "x-dev-user", "dev-identity"]
        .into_iter()
        .filter(|needle| lower.contains(needle))
        .map(|needle| format!("{needle} appears in the template: it must never be deployed"))
        .collect()
}

/// (method, path) of every HttpApi event, with problems for events that escape the authorizer.
fn template_routes(t: &Value) -> (BTreeSet<(String, String)>, Vec<String>) {
    let mut routes = BTreeSet::new();
    let mut problems = Vec::new();
    for (name, function) in resources_of_type(t, "AWS::Serverless::Function") {
        let events = function["Properties"]["Events"].as_object().cloned();
        for (event_name, event) in events.unwrap_or_default() {
            match event["Type"].as_str() {
                Some("HttpApi") => {}
                Some("Api") => problems.push(format!("{name}.{event_name}: a REST Api event")),
                _ => continue,
            }
            let properties = &event["Properties"];
            if properties["ApiId"] != json!({ "Ref": "HttpApi" }) {
                problems.push(format!("{name}.{event_name} is not on HttpApi"));
            }
            let method = properties["Method"].as_str().unwrap_or_default();
            let path = properties["Path"].as_str().unwrap_or_default();
            // Only a public route (a share link's redemption) goes without the JWT authorizer,
            // and then with route throttling of its own; every other route keeps the default.
            let public = ROUTES.iter().any(|route| {
                route.action.is_public()
                    && route.method.eq_ignore_ascii_case(method)
                    && route.path == path
            });
            if public {
                let route_key = format!("{} {path}", method.to_ascii_uppercase());
                let settings =
                    &t["Resources"]["HttpApi"]["Properties"]["RouteSettings"][&route_key];
                if properties["Auth"] != json!({ "Authorizer": "NONE" })
                    || settings["ThrottlingRateLimit"]
                        != json!({ "Ref": "LinkThrottlingRateLimit" })
                    || settings["ThrottlingBurstLimit"]
                        != json!({ "Ref": "LinkThrottlingBurstLimit" })
                {
                    problems.push(format!(
                        "{name}.{event_name}: the public route must have no authorizer and its \
                         own throttling"
                    ));
                }
            } else if !properties["Auth"].is_null() {
                problems.push(format!(
                    "{name}.{event_name} overrides the default authorizer"
                ));
            }
            if !routes.insert((method.to_ascii_uppercase(), path.to_owned())) {
                problems.push(format!("{method} {path} is declared twice"));
            }
        }
    }
    let auth = &t["Resources"]["HttpApi"]["Properties"]["Auth"];
    let default = auth["DefaultAuthorizer"].as_str().unwrap_or_default();
    let authorizer = &auth["Authorizers"][default];
    if default.is_empty()
        || authorizer["JwtConfiguration"]["issuer"] != json!({ "Ref": "JwtIssuer" })
        || authorizer["JwtConfiguration"]["audience"] != json!({ "Ref": "JwtAudience" })
    {
        problems.push(format!(
            "HttpApi's default authorizer is not the JWT authorizer: {auth}"
        ));
    }
    (routes, problems)
}

/// An expression's value for the given parameter values, as CloudFormation resolves it: the
/// intrinsic functions the authorizer's scopes and their conditions use. `None` is
/// `AWS::NoValue` (the element is dropped).
fn resolve(t: &Value, expression: &Value, parameters: &[(&str, &str)]) -> Option<Value> {
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

fn all_problems(text: &str) -> Vec<String> {
    let t = parse(text);
    let mut problems = iam_problems(&t);
    problems.extend(resource_policy_problems(&t));
    problems.extend(bucket_name_problems(&t));
    problems.extend(storage_and_events_problems(&t));
    problems.extend(dev_identity_problems(text));
    problems.extend(template_routes(&t).1);
    problems
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
        3,
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
    // (what, text in template.yaml, its widened replacement, a problem that must be reported)
    let cases: &[(&str, &str, &str, &str)] = &[
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
    // And a route the code does not serve.
    let (routes, _) = template_routes(&parse(&TEMPLATE.replace("Path: /uploads", "Path: /upload")));
    assert!(!routes.contains(&("POST".to_owned(), "/uploads".to_owned())));
}
