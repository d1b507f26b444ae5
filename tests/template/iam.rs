//! The roles' checks: each function's role grants exactly its actions on exactly its resources,
//! and the scheduler's role only invokes the reconciliation (GuardDuty's role: scanning.rs; the
//! webhook's: outbound.rs).

use super::*;

/// Every function and the role it runs with; problems if a function has no role of its own.
pub fn function_roles(t: &Value, problems: &mut Vec<String>) -> Vec<(String, String)> {
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
pub fn iam_problems(t: &Value) -> Vec<String> {
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
                        "dynamodb" if function == PUBLISHER => {
                            publisher_stream_resources(&action, &statement, &mut problems)
                        }
                        "dynamodb" => vec![table.clone()],
                        "events" if function == PUBLISHER => vec![published_bus_arn(t)],
                        "logs" => log_group.iter().cloned().collect(),
                        "sqs" if function == PUBLISHER => vec![get_att("PublisherFailureQueue")],
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
            PUBLISHER => [
                PUBLISHER_STREAM_ACTIONS,
                LOGS_ACTIONS,
                &["events:PutEvents", "sqs:SendMessage"],
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
pub fn reconcile_s3_resources(
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
pub fn scheduler_role_problems(t: &Value, problems: &mut Vec<String>) {
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
        // GuardDuty's service role is pinned with the other scanning resources (scanning.rs),
        // the webhook's with the outbound events (outbound.rs).
        if function_roles.contains(&json!(role_name))
            || role_name == MALWARE_SCAN_ROLE
            || role_name == WEBHOOK_ROLE
        {
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
