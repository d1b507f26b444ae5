//! The other resources' checks: deny-only resource policies, storage and its events, the
//! bucket's name, no local identity, and the routes.

use super::*;

/// Resource policies only take away: the bucket's and the queues' statements are all Deny (but
/// the two that let EventBridge park scan results and webhook events), the bucket refuses plain
/// HTTP and presigned requests older than the longest URL lifetime, and no Deny refuses the
/// functions' own reads.
pub fn resource_policy_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bucket_statements = Vec::new();
    for kind in ["AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"] {
        for (name, policy) in resources_of_type(t, kind) {
            for statement in statements(&policy["Properties"]["PolicyDocument"]) {
                // The one exception: EventBridge parks undelivered scan results in the events
                // dead-letter queue (pinned in scanning.rs).
                let parks_scan_results = name == "EventsDeadLetterQueuePolicy"
                    && statement == undelivered_scan_results();
                // And undelivered webhook events in the webhook's (outbound.rs).
                let parks_webhook_events = name == "WebhookDeadLetterQueuePolicy"
                    && statement == undelivered_webhook_events();
                if statement["Effect"] != "Deny" && !parks_scan_results && !parks_webhook_events {
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
    problems.extend(header_signed_read_problems(&bucket_statements));
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

/// The queue-policy statement `sid` that lets EventBridge park `rule`'s undelivered events in
/// `queue`, and no other rule's (EventBridge User Guide, "Using dead-letter queues to process
/// undelivered events": the queue's policy lets events.amazonaws.com send, from that rule).
pub fn undelivered_events_of(sid: &str, queue: &str, rule: &str) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": { "Service": "events.amazonaws.com" },
        "Action": "sqs:SendMessage",
        "Resource": get_att(queue),
        "Condition": { "ArnEquals": { "aws:SourceArn": get_att(rule) } },
    })
}

/// README, "Deploying": the bucket blocks all public access, enforces bucket-owner ownership,
/// encrypts by default and refuses TLS below 1.2; the bucket and the table outlive the stack; a
/// failed S3 event is retried twice within an hour and then lands in the dead-letter queue. Each
/// property exactly as documented, so that a weakened one (a `false`, a dropped rule) is reported
/// even where checkov's generic rules would accept it.
pub fn storage_and_events_problems(t: &Value) -> Vec<String> {
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
    let mut problems = mismatches(expected);
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

/// (what, its value in the template, the value it must have): a problem for each that differs.
pub fn mismatches(expected: Vec<(String, &Value, Value)>) -> Vec<String> {
    expected
        .into_iter()
        .filter(|(_, actual, expected)| *actual != expected)
        .map(|(what, actual, expected)| format!("{what} is {actual}, expected {expected}"))
        .collect()
}

/// Whether an IAM action pattern (`s3:*`, `s3:Get*`, `s3:GetObject`) covers `action`; IAM
/// compares actions without case.
pub fn action_covers(pattern: &str, action: &str) -> bool {
    let (pattern, action) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

/// The functions read objects with requests signed in headers, over TLS 1.2 or later (the events
/// and reconciliation functions' HeadObject, which confirms an upload), and GuardDuty reads them
/// to scan: a bucket-policy Deny that covers s3:GetObject must carry a condition such a request
/// never meets, or it breaks confirmation and scanning. Presigned GETs are the ones to refuse.
fn header_signed_read_problems(bucket_statements: &[Value]) -> Vec<String> {
    let spares_header_signed_reads = |condition: &Value| {
        condition["StringEquals"]["s3:authType"] == "REST-QUERY-STRING"
            || condition["Bool"]["aws:SecureTransport"] == "false"
            || condition["NumericLessThan"]["s3:TlsVersion"] == "1.2"
    };
    bucket_statements
        .iter()
        .filter(|s| s["Effect"] == "Deny")
        .filter(|s| {
            strings(&s["Action"])
                .iter()
                .any(|pattern| action_covers(pattern, "s3:GetObject"))
        })
        .filter(|s| !spares_header_signed_reads(&s["Condition"]))
        .map(|s| {
            format!(
                "the bucket-policy statement {} denies the functions' own reads (HeadObject on \
                 confirmation) and GuardDuty's: deny presigned requests (s3:authType \
                 REST-QUERY-STRING) only",
                s["Sid"]
            )
        })
        .collect()
}

/// Every `Ref`, `Fn::GetAtt` and `Fn::Sub` variable names a parameter, a pseudo parameter or a
/// resource that is deployed: one left out by its condition while another still refers to it
/// fails the deployment (CloudFormation User Guide, "Conditions syntax": a resource that refers to
/// a conditional resource must carry the same condition, or refer to it inside `Fn::If`).
pub fn dangling_reference_problems(view: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for section in ["Globals", "Resources", "Outputs"] {
        for (entry, value) in view[section].as_object().cloned().unwrap_or_default() {
            let mut names = BTreeSet::new();
            referenced_names(&value, &mut names);
            for name in names {
                let known = name.starts_with("AWS::")
                    || !view["Parameters"][&name].is_null()
                    || !view["Resources"][&name].is_null();
                if !known {
                    problems.push(format!(
                        "{section}.{entry} refers to {name}, which is not deployed"
                    ));
                }
            }
        }
    }
    problems
}

/// The bucket name the functions are given is the bucket's own.
pub fn bucket_name_problems(t: &Value) -> Vec<String> {
    let env = &t["Globals"]["Function"]["Environment"]["Variables"]["FILES_BUCKET"];
    if *env == bucket_name(t) || *env == json!({ "Ref": "FilesBucket" }) {
        vec![]
    } else {
        vec![format!("FILES_BUCKET {env} is not the bucket's name")]
    }
}

/// Neither the dev header nor the feature that compiles it in (`dev-identity`, which a
/// `BuildProperties: Features` entry would hand to cargo lambda) reaches the deployed template.
pub fn dev_identity_problems(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    ["dev_user_header", "x-dev-user", "dev-identity"]
        .into_iter()
        .filter(|needle| lower.contains(needle))
        .map(|needle| format!("{needle} appears in the template: it must never be deployed"))
        .collect()
}

/// (method, path) of every HttpApi event, with problems for events that escape the authorizer.
pub fn template_routes(t: &Value) -> (BTreeSet<(String, String)>, Vec<String>) {
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
