//! Malware scanning (issue 22, `ScanUploads`): GuardDuty Malware Protection for S3, its service
//! role, the scan-result rule to the events function, and the bucket policy that enforces the
//! verdict. Each exactly as template.yaml writes it when scanning is on, and none of it deployed
//! when scanning is off.

use super::*;

pub const MALWARE_SCAN_ROLE: &str = "MalwareScanRole";

/// The resources deployed only while `ScanUploads` is "true".
const SCANNING_RESOURCES: &[&str] = &[
    "MalwareProtectionPlan",
    MALWARE_SCAN_ROLE,
    "ScanResultRule",
    "ScanResultInvokePermission",
];
const SCANNING_CONDITION: &str = "ScanUploadsEnabled";

/// The actions that change an object's tags: only GuardDuty's role may (GuardDuty User Guide,
/// "Using tag-based access control (TBAC) with Malware Protection for S3": "you must enforce that
/// no one can modify the tags added by GuardDuty"). A PutObject that carries x-amz-tagging is
/// authorized as s3:PutObjectTagging too.
const TAG_WRITES: &[&str] = &[
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
];

/// On the template as written: the switch, and the condition on every scanning resource.
pub fn scanning_switch_problems(t: &Value) -> Vec<String> {
    let parameter = &t["Parameters"]["ScanUploads"];
    let mut output = t["Outputs"]["MalwareProtectionPlanArn"].clone();
    if let Some(output) = output.as_object_mut() {
        output.remove("Description");
    }
    let mut expected = vec![
        (
            "ScanUploads' type".to_owned(),
            &parameter["Type"],
            json!("String"),
        ),
        (
            "ScanUploads' default".to_owned(),
            &parameter["Default"],
            json!("true"),
        ),
        (
            "ScanUploads' allowed values".to_owned(),
            &parameter["AllowedValues"],
            json!(["true", "false"]),
        ),
        (
            format!("the condition {SCANNING_CONDITION}"),
            &t["Conditions"][SCANNING_CONDITION],
            json!({ "Fn::Equals": [{ "Ref": "ScanUploads" }, "true"] }),
        ),
        (
            "the output MalwareProtectionPlanArn (but its description)".to_owned(),
            &output,
            json!({
                "Condition": SCANNING_CONDITION,
                "Value": get_att("MalwareProtectionPlan"),
            }),
        ),
        // Every function is told whether to wait for a verdict (Globals reach all three).
        (
            "Globals' SCAN_UPLOADS".to_owned(),
            &t["Globals"]["Function"]["Environment"]["Variables"]["SCAN_UPLOADS"],
            json!({ "Ref": "ScanUploads" }),
        ),
    ];
    let guardduty = resources(t).filter(|(_, r)| {
        r["Type"]
            .as_str()
            .is_some_and(|kind| kind.starts_with("AWS::GuardDuty::"))
    });
    let conditional: BTreeSet<&str> = guardduty
        .map(|(name, _)| name.as_str())
        .chain(SCANNING_RESOURCES.iter().copied())
        .collect();
    for name in conditional {
        expected.push((
            format!("{name}'s Condition"),
            &t["Resources"][name]["Condition"],
            json!(SCANNING_CONDITION),
        ));
    }
    for (name, function) in resources_of_type(t, "AWS::Serverless::Function") {
        expected.push((
            format!("{name}'s own SCAN_UPLOADS"),
            &function["Properties"]["Environment"]["Variables"]["SCAN_UPLOADS"],
            Value::Null,
        ));
    }
    mismatches(expected)
}

/// On the template as deployed with `ScanUploads` = `enabled`.
pub fn scanning_problems(view: &Value, enabled: bool) -> Vec<String> {
    let deployed = &view["Resources"];
    let bucket_policy = statements(&deployed["FilesBucketPolicy"]["Properties"]["PolicyDocument"]);
    let queue_policy =
        statements(&deployed["EventsDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]);
    let notifications = &deployed["FilesBucket"]["Properties"]["NotificationConfiguration"];
    let mut problems = tag_write_problems(view);
    if !enabled {
        // Nothing scans, so nothing may wait for or enforce a verdict.
        for (name, resource) in resources(view) {
            let scanning = SCANNING_RESOURCES.contains(&name.as_str())
                || resource["Type"]
                    .as_str()
                    .is_some_and(|kind| kind.starts_with("AWS::GuardDuty::"));
            if scanning {
                problems.push(format!("{name} is deployed with scanning off"));
            }
        }
        let scanning_sids: Vec<Value> = verdict_denies()
            .into_iter()
            .chain([undelivered_scan_results()])
            .map(|statement| statement["Sid"].clone())
            .collect();
        for statement in bucket_policy.iter().chain(&queue_policy) {
            if scanning_sids.contains(&statement["Sid"]) {
                problems.push(format!(
                    "{} is deployed with scanning off",
                    statement["Sid"]
                ));
            }
        }
        if !notifications["EventBridgeConfiguration"].is_null() {
            problems.push("EventBridgeConfiguration is set with scanning off".into());
        }
        return problems;
    }
    let expected = vec![
        (
            "MalwareProtectionPlan's properties".to_owned(),
            &deployed["MalwareProtectionPlan"]["Properties"],
            json!({
                "Role": get_att(MALWARE_SCAN_ROLE),
                "ProtectedResource": { "S3Bucket": {
                    "BucketName": { "Ref": "FilesBucket" },
                    "ObjectPrefixes": ["users/"],
                } },
                // The verdict tag the bucket policy reads.
                "Actions": { "Tagging": { "Status": "ENABLED" } },
            }),
        ),
        (
            "MalwareProtectionPlan's type".to_owned(),
            &deployed["MalwareProtectionPlan"]["Type"],
            json!("AWS::GuardDuty::MalwareProtectionPlan"),
        ),
        (
            "ScanResultRule".to_owned(),
            &deployed["ScanResultRule"],
            scan_result_rule(),
        ),
        (
            "ScanResultInvokePermission".to_owned(),
            &deployed["ScanResultInvokePermission"],
            json!({
                "Type": "AWS::Lambda::Permission",
                "Condition": SCANNING_CONDITION,
                "Properties": {
                    "Action": "lambda:InvokeFunction",
                    "FunctionName": { "Ref": "EventsFunction" },
                    "Principal": "events.amazonaws.com",
                    "SourceAccount": { "Ref": "AWS::AccountId" },
                    "SourceArn": get_att("ScanResultRule"),
                },
            }),
        ),
        // GuardDuty turns S3's EventBridge delivery on; the template owns the bucket's whole
        // notification configuration and must keep it on, or an update turns scanning off.
        (
            "the bucket's EventBridgeConfiguration".to_owned(),
            &notifications["EventBridgeConfiguration"],
            json!({ "EventBridgeEnabled": true }),
        ),
        (
            "EventsDeadLetterQueuePolicy's queues".to_owned(),
            &deployed["EventsDeadLetterQueuePolicy"]["Properties"]["Queues"],
            json!([{ "Ref": "EventsDeadLetterQueue" }]),
        ),
    ];
    problems.extend(mismatches(expected));
    let policies = [
        ("the bucket policy", &bucket_policy, verdict_denies()),
        (
            "the events dead-letter queue's policy",
            &queue_policy,
            vec![undelivered_scan_results()],
        ),
    ];
    for (policy, actual, expected) in policies {
        for statement in expected {
            let sid = statement["Sid"].as_str().unwrap_or("?");
            if !actual.contains(&statement) {
                let found = actual.iter().find(|s| s["Sid"] == sid);
                problems.push(format!(
                    "{policy}'s statement {sid} is {}, expected {statement}",
                    found.unwrap_or(&Value::Null)
                ));
            }
        }
    }
    problems.extend(malware_scan_role_problems(view));
    problems
}

/// GuardDuty's verdicts for this plan, this bucket and users/ only, to the events function, with
/// retries for a day and then the events dead-letter queue (EventBridge User Guide, "Using
/// dead-letter queues to process undelivered events").
fn scan_result_rule() -> Value {
    json!({
        "Type": "AWS::Events::Rule",
        "Condition": SCANNING_CONDITION,
        "Properties": {
            "Description": "Presign Gate malware scan results to the events function",
            "EventBusName": "default",
            "EventPattern": {
                "source": ["aws.guardduty"],
                "detail-type": ["GuardDuty Malware Protection Object Scan Result"],
                "resources": [get_att("MalwareProtectionPlan")],
                "detail": { "s3ObjectDetails": {
                    "bucketName": [{ "Ref": "FilesBucket" }],
                    "objectKey": [{ "prefix": "users/" }],
                } },
            },
            "Targets": [{
                "Id": "events-function",
                "Arn": get_att("EventsFunction"),
                "RetryPolicy": { "MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400 },
                "DeadLetterConfig": { "Arn": get_att("EventsDeadLetterQueue") },
            }],
        },
    })
}

/// EventBridge may park this rule's undelivered events in the events dead-letter queue, and no
/// other rule's.
pub fn undelivered_scan_results() -> Value {
    undelivered_events_of(
        "UndeliveredScanResults",
        "EventsDeadLetterQueue",
        "ScanResultRule",
    )
}

/// The verdict, enforced by S3 (GuardDuty User Guide, TBAC): no presigned read of an object under
/// users/ that is not tagged clean (an untagged one fails StringNotEquals too), while the
/// functions' header-signed HeadObject still reads it; and no one but GuardDuty's role changes a
/// tag there.
fn verdict_denies() -> Vec<Value> {
    let user_objects = json!({ "Fn::Sub": "${FilesBucket.Arn}/users/*" });
    vec![
        json!({
            "Sid": "DenyPresignedReadsOfUnscannedObjects",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": user_objects,
            "Condition": {
                "StringEquals": { "s3:authType": "REST-QUERY-STRING" },
                "StringNotEquals": {
                    "s3:ExistingObjectTag/GuardDutyMalwareScanStatus": "NO_THREATS_FOUND",
                },
            },
        }),
        json!({
            "Sid": "DenyObjectTaggingExceptMalwareScanner",
            "Effect": "Deny",
            "Principal": "*",
            "Action": TAG_WRITES,
            "Resource": user_objects,
            "Condition": { "ArnNotEquals": { "aws:PrincipalArn": get_att(MALWARE_SCAN_ROLE) } },
        }),
    ]
}

/// GuardDuty's service role: only GuardDuty's malware protection plans of this account may
/// assume it, and it has exactly the statements of GuardDuty User Guide, "Create or update IAM
/// role policy" (AWS's Sids), for an SSE-S3 bucket: no KMS statement, and no wildcard but AWS's
/// (the managed rule's name prefix, the bucket's objects).
fn malware_scan_role_problems(view: &Value) -> Vec<String> {
    let role = &view["Resources"][MALWARE_SCAN_ROLE];
    let properties = &role["Properties"];
    let mut problems = Vec::new();
    let keys: BTreeSet<&str> = properties
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if role["Type"] != "AWS::IAM::Role"
        || keys != BTreeSet::from(["Description", "AssumeRolePolicyDocument", "Policies"])
    {
        problems.push(format!(
            "{MALWARE_SCAN_ROLE} is not a role of exactly a trust policy and inline policies: {role}"
        ));
    }
    let trust = json!([{
        "Effect": "Allow",
        "Principal": { "Service": "malware-protection-plan.guardduty.amazonaws.com" },
        "Action": "sts:AssumeRole",
        "Condition": {
            "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } },
            "ArnLike": { "aws:SourceArn": { "Fn::Sub":
                "arn:${AWS::Partition}:guardduty:${AWS::Region}:${AWS::AccountId}:malware-protection-plan/*" } },
        },
    }]);
    let actual_trust = json!(statements(&properties["AssumeRolePolicyDocument"]));
    if actual_trust != trust {
        problems.push(format!(
            "{MALWARE_SCAN_ROLE}: trust policy {actual_trust}, expected {trust}"
        ));
    }
    let policies = properties["Policies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if policies.len() != 1 || policies[0]["PolicyName"] != "malware-protection" {
        problems.push(format!(
            "{MALWARE_SCAN_ROLE} has policies {policies:?}, expected one, malware-protection"
        ));
    }
    let granted: Vec<Value> = policies
        .iter()
        .flat_map(|policy| statements(&policy["PolicyDocument"]))
        .collect();
    let expected = malware_scan_statements(view);
    for statement in &expected {
        let sid = statement["Sid"].as_str().unwrap_or("?");
        let found = granted.iter().find(|s| s["Sid"] == sid);
        if found != Some(statement) {
            let found = found.unwrap_or(&Value::Null);
            problems.push(format!(
                "{MALWARE_SCAN_ROLE}/{sid} is {found}, expected {statement}"
            ));
        }
    }
    for statement in &granted {
        if !expected.iter().any(|e| e["Sid"] == statement["Sid"]) {
            let sid = statement["Sid"].as_str().unwrap_or("?");
            problems.push(format!(
                "{MALWARE_SCAN_ROLE}/{sid}: not one of GuardDuty's statements: {statement}"
            ));
        }
    }
    if granted.len() != expected.len() && problems.is_empty() {
        problems.push(format!(
            "{MALWARE_SCAN_ROLE} repeats a statement: {granted:?}"
        ));
    }
    problems
}

fn malware_scan_statements(view: &Value) -> Vec<Value> {
    let managed_rule = json!({ "Fn::Sub":
        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/DO-NOT-DELETE-AmazonGuardDutyMalwareProtectionS3*" });
    let s3 = "arn:${AWS::Partition}:s3:::";
    let bucket = sub_around_bucket_name(view, s3, "");
    let objects = sub_around_bucket_name(view, s3, "/*");
    let statement = |sid: &str, action: Value, resource: &Value| json!({ "Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource });
    let mut managed_rule_writes = statement(
        "AllowManagedRuleToSendS3EventsToGuardDuty",
        json!([
            "events:PutRule",
            "events:DeleteRule",
            "events:PutTargets",
            "events:RemoveTargets"
        ]),
        &managed_rule,
    );
    managed_rule_writes["Condition"] = json!({ "StringLike": {
        "events:ManagedBy": "malware-protection-plan.guardduty.amazonaws.com",
    } });
    vec![
        managed_rule_writes,
        statement(
            "AllowGuardDutyToMonitorEventBridgeManagedRule",
            json!(["events:DescribeRule", "events:ListTargetsByRule"]),
            &managed_rule,
        ),
        statement(
            "AllowPostScanTag",
            json!([
                "s3:PutObjectTagging",
                "s3:GetObjectTagging",
                "s3:PutObjectVersionTagging",
                "s3:GetObjectVersionTagging"
            ]),
            &objects,
        ),
        statement(
            "AllowEnableS3EventBridgeEvents",
            json!(["s3:PutBucketNotification", "s3:GetBucketNotification"]),
            &bucket,
        ),
        statement(
            "AllowPutValidationObject",
            json!("s3:PutObject"),
            &sub_around_bucket_name(view, s3, "/malware-protection-resource-validation-object"),
        ),
        statement("AllowCheckBucketOwnership", json!("s3:ListBucket"), &bucket),
        statement(
            "AllowMalwareScan",
            json!(["s3:GetObject", "s3:GetObjectVersion"]),
            &objects,
        ),
    ]
}

/// No role but GuardDuty's may change an object's tags, whatever the bucket policy says.
fn tag_write_problems(view: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (role, definition) in resources_of_type(view, "AWS::IAM::Role") {
        if role == MALWARE_SCAN_ROLE {
            continue;
        }
        let policies = definition["Properties"]["Policies"].as_array().cloned();
        for statement in policies
            .unwrap_or_default()
            .iter()
            .flat_map(|policy| statements(&policy["PolicyDocument"]))
        {
            for pattern in strings(&statement["Action"]) {
                if TAG_WRITES.iter().any(|tag| action_covers(&pattern, tag)) {
                    problems.push(format!(
                        "{role} may change object tags ({pattern}): only {MALWARE_SCAN_ROLE} may"
                    ));
                }
            }
        }
    }
    problems
}

/// Each scanning rule fails on a template that breaks it.
#[test]
fn checks_catch_a_widened_scanning_setup() {
    const READ_DENY: &str = "          - !If
            - ScanUploadsEnabled
            - Sid: DenyPresignedReadsOfUnscannedObjects
              Effect: Deny
              Principal: \"*\"
              Action:
                - s3:GetObject
                - s3:GetObjectVersion
              Resource: !Sub \"${FilesBucket.Arn}/users/*\"
              Condition:
                StringEquals:
                  s3:authType: REST-QUERY-STRING
                StringNotEquals:
                  s3:ExistingObjectTag/GuardDutyMalwareScanStatus: NO_THREATS_FOUND
            - !Ref AWS::NoValue
";
    // A deny of every unscanned GET, beside the presigned one: it refuses the functions' HeadObject.
    const ALL_GETS_DENY: &str = "          - Sid: DenyUnscannedReads
            Effect: Deny
            Principal: \"*\"
            Action: s3:Get*
            Resource: !Sub \"${FilesBucket.Arn}/users/*\"
            Condition:
              StringNotEquals:
                s3:ExistingObjectTag/GuardDutyMalwareScanStatus: NO_THREATS_FOUND
";
    let all_gets_deny = format!("{READ_DENY}{ALL_GETS_DENY}");
    let cases: &[Widening] = &[
        (
            "scan results of any bucket",
            "            bucketName: [!Ref FilesBucket]\n",
            "",
            "ScanUploads=true: ScanResultRule is",
        ),
        (
            "scan results of any plan",
            "        resources: [!GetAtt MalwareProtectionPlan.Arn]\n",
            "",
            "ScanUploads=true: ScanResultRule is",
        ),
        (
            "scan results dropped after the retries",
            "          DeadLetterConfig:\n            Arn: !GetAtt EventsDeadLetterQueue.Arn\n",
            "",
            "ScanUploads=true: ScanResultRule is",
        ),
        (
            "tags changed by anyone",
            "aws:PrincipalArn: !GetAtt MalwareScanRole.Arn",
            "aws:PrincipalArn: \"*\"",
            "statement DenyObjectTaggingExceptMalwareScanner is",
        ),
        (
            "tags changed by a function",
            "aws:PrincipalArn: !GetAtt MalwareScanRole.Arn",
            "aws:PrincipalArn: [!GetAtt MalwareScanRole.Arn, !GetAtt EventsFunctionRole.Arn]",
            "statement DenyObjectTaggingExceptMalwareScanner is",
        ),
        (
            "unscanned objects served",
            READ_DENY,
            "",
            "statement DenyPresignedReadsOfUnscannedObjects is null",
        ),
        (
            "the functions' own reads of unscanned objects denied",
            "                StringEquals:\n                  s3:authType: REST-QUERY-STRING\n                StringNotEquals:",
            "                StringNotEquals:",
            "\"DenyPresignedReadsOfUnscannedObjects\" denies the functions' own reads",
        ),
        (
            "every read of unscanned objects denied",
            READ_DENY,
            &all_gets_deny,
            "\"DenyUnscannedReads\" denies the functions' own reads",
        ),
        (
            "the API may tag",
            "- s3:AbortMultipartUpload",
            "- s3:AbortMultipartUpload\n                  - s3:PutObjectTagging",
            "ApiFunctionRole may change object tags (s3:PutObjectTagging)",
        ),
        (
            "GuardDuty's role may delete",
            "                  - s3:GetObject\n                  - s3:GetObjectVersion\n",
            "                  - s3:GetObject\n                  - s3:GetObjectVersion\n                  - s3:DeleteObject\n",
            "MalwareScanRole/AllowMalwareScan is",
        ),
        (
            "GuardDuty's role given a KMS statement",
            "              - Sid: AllowMalwareScan\n",
            "              - Sid: AllowDecryptForMalwareScan\n                Effect: Allow\n                Action: [kms:Decrypt, kms:GenerateDataKey]\n                Resource: \"*\"\n              - Sid: AllowMalwareScan\n",
            "MalwareScanRole/AllowDecryptForMalwareScan: not one of GuardDuty's statements",
        ),
        (
            "GuardDuty's role assumable for any plan of the account",
            "              ArnLike:\n                aws:SourceArn: !Sub \"arn:${AWS::Partition}:guardduty:${AWS::Region}:${AWS::AccountId}:malware-protection-plan/*\"\n",
            "",
            "MalwareScanRole: trust policy",
        ),
        (
            "S3's EventBridge delivery left to be turned off",
            "        EventBridgeConfiguration: !If\n          - ScanUploadsEnabled\n          - EventBridgeEnabled: true\n          - !Ref AWS::NoValue\n",
            "",
            "ScanUploads=true: the bucket's EventBridgeConfiguration is null",
        ),
        (
            "no verdict tags",
            "          Status: ENABLED",
            "          Status: DISABLED",
            "MalwareProtectionPlan's properties",
        ),
        (
            "the plan deployed with scanning off",
            "    Type: AWS::GuardDuty::MalwareProtectionPlan\n    Condition: ScanUploadsEnabled\n",
            "    Type: AWS::GuardDuty::MalwareProtectionPlan\n",
            "ScanUploads=false: Resources.MalwareProtectionPlan refers to MalwareScanRole, which is not deployed",
        ),
        (
            "the events function invoked by any rule",
            "      SourceArn: !GetAtt ScanResultRule.Arn\n",
            "",
            "ScanResultInvokePermission is",
        ),
        (
            "the dead-letter queue open to any rule",
            "              Condition:\n                ArnEquals:\n                  aws:SourceArn: !GetAtt ScanResultRule.Arn\n",
            "",
            "EventsDeadLetterQueuePolicy: {",
        ),
        (
            "functions that never wait for a verdict",
            "        SCAN_UPLOADS: !Ref ScanUploads",
            "        SCAN_UPLOADS: \"false\"",
            "Globals' SCAN_UPLOADS",
        ),
        (
            "a lost scan result never recovered",
            "                  # GuardDuty's verdict tag of a file still scanning: recovers a lost scan result.\n                  - s3:GetObjectTagging\n",
            "",
            "ReconcileFunctionRole grants",
        ),
    ];
    assert_each_widening_is_caught(cases);
}
