//! Outbound events (issue 22, section 2): the table's stream, the publisher that reads it (its
//! event source mapping, its role, its failure queue), the bus it publishes to, and the optional
//! webhook. Each exactly as template.yaml writes it, with `EventBusName` empty (the stack's own
//! bus) and set (an existing one), and with `WebhookUrl` empty (no webhook resource deployed) and
//! set (all of them).

use super::*;

pub const PUBLISHER: &str = "PublisherFunction";
pub const WEBHOOK_ROLE: &str = "WebhookRole";

/// The `source` of every event the publisher puts, and the only one the webhook forwards.
const SOURCE: &str = "presign-gate";
/// What Lambda's poller calls with the publisher's role to read the table's stream (Lambda
/// Developer Guide, "Using AWS Lambda with Amazon DynamoDB"; DynamoDB Developer Guide, "IAM policy
/// to allow an AWS Lambda function to access DynamoDB stream records"). No item action: the
/// records carry the images.
pub const PUBLISHER_STREAM_ACTIONS: &[&str] = &[
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
];
/// The resources deployed only with a webhook.
const WEBHOOK_RESOURCES: &[&str] = &[
    "WebhookConnection",
    "WebhookDestination",
    "WebhookRule",
    WEBHOOK_ROLE,
    "WebhookDeadLetterQueue",
    "WebhookDeadLetterQueuePolicy",
];
/// (EventBusName, WebhookUrl): the defaults, and an existing bus with a webhook.
const OUTBOUND_SETTINGS: [(&str, &str); 2] = [
    ("", ""),
    ("shared-bus", "https://hooks.example.com/presign-gate"),
];

/// The stream's resources for a stream action of the publisher's role: ListStreams names no
/// stream, only a table, so it is granted on this table's streams (`<table ARN>/stream/*`, as the
/// DynamoDB guide's example and SAM's DynamoDBStreamReadPolicy grant it), in a statement of its
/// own; the read actions on the table's one stream. Any other DynamoDB action: none.
pub fn publisher_stream_resources(
    action: &str,
    statement: &Value,
    problems: &mut Vec<String>,
) -> Vec<Value> {
    let sid = &statement["Sid"];
    match action {
        "dynamodb:ListStreams" => {
            if strings(&statement["Action"]) != [action] {
                problems.push(format!("{sid}: {action} shares its statement"));
            }
            vec![json!({ "Fn::Sub": "${FilesTable.Arn}/stream/*" })]
        }
        _ if PUBLISHER_STREAM_ACTIONS.contains(&action) => {
            vec![json!({ "Fn::GetAtt": ["FilesTable", "StreamArn"] })]
        }
        _ => {
            problems.push(format!(
                "{sid}: {action}: the publisher reads the stream, never the table's items"
            ));
            vec![]
        }
    }
}

/// The bus the deployed publisher may put events on: the stack's own, or this account's bus of
/// the name `EventBusName` gives.
pub fn published_bus_arn(view: &Value) -> Value {
    if view["Resources"]["FileEventsBus"].is_null() {
        json!({ "Fn::Sub":
            "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}" })
    } else {
        get_att("FileEventsBus")
    }
}

/// Every outbound-events check, on the template as deployed with each of `OUTBOUND_SETTINGS`
/// (each problem names the setting), with the roles' and resource policies' general checks.
pub fn outbound_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (bus, webhook) in OUTBOUND_SETTINGS {
        let view = deployed(t, &[("EventBusName", bus), ("WebhookUrl", webhook)]);
        let mut found = publisher_problems(&view, bus);
        found.extend(webhook_problems(&view, bus, webhook));
        found.extend(iam_problems(&view));
        found.extend(resource_policy_problems(&view));
        found.extend(dangling_reference_problems(&view));
        problems.extend(
            found
                .into_iter()
                .map(|problem| format!("EventBusName={bus:?}, WebhookUrl={webhook:?}: {problem}")),
        );
    }
    problems
}

/// The bus's name as the deployed template gives it to the publisher, the rule and the output.
fn bus_name(bus: &str) -> Value {
    json!({ "Ref": if bus.is_empty() { "FileEventsBus" } else { "EventBusName" } })
}

fn publisher_problems(view: &Value, bus: &str) -> Vec<String> {
    let resources = &view["Resources"];
    let mut output = view["Outputs"].clone();
    for name in ["EventBusName", "PublisherFailureQueueUrl"] {
        if let Some(entry) = output[name].as_object_mut() {
            entry.remove("Description");
        }
    }
    let publisher = with_parsed_filters(&resources[PUBLISHER]["Properties"]);
    let expected = vec![
        (
            "the table's StreamSpecification".to_owned(),
            &resources["FilesTable"]["Properties"]["StreamSpecification"],
            // The publisher compares the old status with the new one.
            json!({ "StreamViewType": "NEW_AND_OLD_IMAGES" }),
        ),
        (
            format!("{PUBLISHER}'s properties"),
            &publisher,
            publisher_properties(bus),
        ),
        (
            "PublisherFunctionRole".to_owned(),
            &resources["PublisherFunctionRole"],
            publisher_role(view),
        ),
        (
            "PublisherFailureQueue's properties".to_owned(),
            &resources["PublisherFailureQueue"]["Properties"],
            queue_properties(),
        ),
        (
            "PublisherFailureQueuePolicy's properties".to_owned(),
            &resources["PublisherFailureQueuePolicy"]["Properties"],
            queue_policy("PublisherFailureQueue", vec![]),
        ),
        (
            "the output EventBusName (but its description)".to_owned(),
            &output["EventBusName"],
            json!({ "Value": bus_name(bus) }),
        ),
        (
            "the output PublisherFailureQueueUrl (but its description)".to_owned(),
            &output["PublisherFailureQueueUrl"],
            json!({ "Value": { "Ref": "PublisherFailureQueue" } }),
        ),
        (
            "the parameter EventBusName".to_owned(),
            &view["Parameters"]["EventBusName"]["Default"],
            json!(""),
        ),
        (
            "the condition CreateEventBus".to_owned(),
            &view["Conditions"]["CreateEventBus"],
            json!({ "Fn::Equals": [{ "Ref": "EventBusName" }, ""] }),
        ),
    ];
    let mut problems = mismatches(expected);
    let created = &resources["FileEventsBus"];
    let expected_bus = json!({
        "Type": "AWS::Events::EventBus",
        "Condition": "CreateEventBus",
        "Properties": { "Name": { "Fn::Sub": "${AWS::StackName}-files" } },
    });
    if bus.is_empty() && *created != expected_bus {
        problems.push(format!(
            "FileEventsBus is {created}, expected {expected_bus}"
        ));
    }
    if !bus.is_empty() && !created.is_null() {
        problems.push("FileEventsBus is deployed with EventBusName set".into());
    }
    // The bus's name reaches the publisher only, and no other function reads the stream.
    if !view["Globals"]["Function"]["Environment"]["Variables"]["EVENT_BUS_NAME"].is_null() {
        problems.push("Globals set EVENT_BUS_NAME".into());
    }
    for (name, function) in resources_of_type(view, "AWS::Serverless::Function") {
        let properties = &function["Properties"];
        if name != PUBLISHER && !properties["Environment"]["Variables"]["EVENT_BUS_NAME"].is_null()
        {
            problems.push(format!("{name} has EVENT_BUS_NAME"));
        }
        for (event, definition) in properties["Events"]
            .as_object()
            .cloned()
            .unwrap_or_default()
        {
            if name != PUBLISHER && definition["Type"] == "DynamoDB" {
                problems.push(format!("{name}.{event} reads the table's stream"));
            }
        }
    }
    problems
}

/// The publisher: its own role and log group, the bus's name, and one event source mapping on the
/// table's stream (Lambda Developer Guide, "Using AWS Lambda with Amazon DynamoDB"): from the
/// oldest record kept, batches halved on error, partial failures reported by the function, ten
/// retries, then the batch's place to the failure queue; file records only (those with a status
/// before or after the change).
fn publisher_properties(bus: &str) -> Value {
    let status_in =
        |image: &str| json!({ "dynamodb": { image: { "status": { "S": [{ "exists": true }] } } } });
    json!({
        "Description": "Presign Gate outbound events (table stream to EventBridge)",
        "MemorySize": 128,
        "Role": get_att("PublisherFunctionRole"),
        "LoggingConfig": { "LogGroup": { "Ref": "PublisherFunctionLogGroup" } },
        "Environment": { "Variables": { "EVENT_BUS_NAME": bus_name(bus) } },
        "Events": { "FileChanges": {
            "Type": "DynamoDB",
            "Properties": {
                "Stream": { "Fn::GetAtt": ["FilesTable", "StreamArn"] },
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": 100,
                "BisectBatchOnFunctionError": true,
                "MaximumRetryAttempts": 10,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "DestinationConfig": { "OnFailure": {
                    "Destination": get_att("PublisherFailureQueue"),
                } },
                // Parsed (`with_parsed_filters`): only the patterns' meaning counts.
                "FilterCriteria": { "Filters": [
                    { "Pattern": status_in("NewImage") },
                    { "Pattern": status_in("OldImage") },
                ] },
            },
        } },
    })
}

/// The function's properties with each event filter's `Pattern`, a JSON string, parsed (left as
/// it is if it is not JSON, which then matches no expected pattern).
fn with_parsed_filters(properties: &Value) -> Value {
    let mut properties = properties.clone();
    let filters =
        &mut properties["Events"]["FileChanges"]["Properties"]["FilterCriteria"]["Filters"];
    for filter in filters.as_array_mut().into_iter().flatten() {
        let parsed = filter["Pattern"]
            .as_str()
            .and_then(|p| serde_json::from_str(p).ok());
        if let Some(parsed) = parsed {
            filter["Pattern"] = parsed;
        }
    }
    properties
}

/// The publisher's role: Lambda only; its log group; the stream read actions on the table's
/// stream (`publisher_stream_resources`); PutEvents on the one bus for `presign-gate` events only
/// (EventBridge User Guide, "Using IAM policy conditions in Amazon EventBridge"); and the failure
/// queue.
fn publisher_role(view: &Value) -> Value {
    let policy = |name: &str, statements: Value| json!({ "PolicyName": name, "PolicyDocument": { "Version": "2012-10-17", "Statement": statements } });
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": "Presign Gate outbound events function",
            "AssumeRolePolicyDocument": { "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow",
                "Principal": { "Service": "lambda.amazonaws.com" },
                "Action": "sts:AssumeRole",
            }] },
            "Policies": [
                policy("logs", json!([{
                    "Sid": "OwnLogGroupOnly",
                    "Effect": "Allow",
                    "Action": LOGS_ACTIONS,
                    "Resource": get_att("PublisherFunctionLogGroup"),
                }])),
                policy("stream", json!([
                    {
                        "Sid": "ReadFileChanges",
                        "Effect": "Allow",
                        "Action": &PUBLISHER_STREAM_ACTIONS[..3],
                        "Resource": { "Fn::GetAtt": ["FilesTable", "StreamArn"] },
                    },
                    {
                        "Sid": "ListFileStreams",
                        "Effect": "Allow",
                        "Action": "dynamodb:ListStreams",
                        "Resource": { "Fn::Sub": "${FilesTable.Arn}/stream/*" },
                    },
                ])),
                policy("events", json!([{
                    "Sid": "PublishFileEvents",
                    "Effect": "Allow",
                    "Action": "events:PutEvents",
                    "Resource": published_bus_arn(view),
                    "Condition": { "ForAllValues:StringEquals": { "events:source": SOURCE } },
                }])),
                policy("on-failure-destination", json!([{
                    "Sid": "FailedBatches",
                    "Effect": "Allow",
                    "Action": "sqs:SendMessage",
                    "Resource": get_att("PublisherFailureQueue"),
                }])),
            ],
        },
    })
}

/// An SSE-SQS queue that keeps messages for 14 days, the most SQS keeps.
fn queue_properties() -> Value {
    json!({ "SqsManagedSseEnabled": true, "MessageRetentionPeriod": 1209600 })
}

/// `queue`'s policy: plain HTTP refused, then `allowed`.
fn queue_policy(queue: &str, allowed: Vec<Value>) -> Value {
    let mut statements = vec![json!({
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sqs:*",
        "Resource": get_att(queue),
        "Condition": { "Bool": { "aws:SecureTransport": "false" } },
    })];
    statements.extend(allowed);
    json!({
        "Queues": [{ "Ref": queue }],
        "PolicyDocument": { "Version": "2012-10-17", "Statement": statements },
    })
}

/// EventBridge may park the webhook rule's undelivered events in the webhook's dead-letter queue,
/// and no other rule's.
pub fn undelivered_webhook_events() -> Value {
    undelivered_events_of(
        "UndeliveredWebhookEvents",
        "WebhookDeadLetterQueue",
        "WebhookRule",
    )
}

fn webhook_problems(view: &Value, bus: &str, webhook: &str) -> Vec<String> {
    let by_name = &view["Resources"];
    let parameters = &view["Parameters"];
    let mut problems = mismatches(vec![
        (
            "the parameter WebhookUrl".to_owned(),
            &json!([
                &parameters["WebhookUrl"]["Default"],
                &parameters["WebhookUrl"]["AllowedPattern"]
            ]),
            json!(["", "^$|^https://[^\\s]+$"]),
        ),
        (
            "the parameter WebhookApiKey".to_owned(),
            &json!([
                &parameters["WebhookApiKey"]["Default"],
                &parameters["WebhookApiKey"]["NoEcho"]
            ]),
            json!(["", true]),
        ),
        (
            "the condition HasWebhook".to_owned(),
            &view["Conditions"]["HasWebhook"],
            json!({ "Fn::Not": [{ "Fn::Equals": [{ "Ref": "WebhookUrl" }, ""] }] }),
        ),
    ]);
    if webhook.is_empty() {
        for (name, resource) in resources(view) {
            let kind = resource["Type"].as_str().unwrap_or_default();
            if WEBHOOK_RESOURCES.contains(&name.as_str())
                || kind == "AWS::Events::Connection"
                || kind == "AWS::Events::ApiDestination"
            {
                problems.push(format!("{name} is deployed with WebhookUrl empty"));
            }
        }
        return problems;
    }
    let conditional = |kind: &str, properties: Value| json!({ "Type": kind, "Condition": "HasWebhook", "Properties": properties });
    let mut queue = by_name["WebhookDeadLetterQueue"].clone();
    if let Some(queue) = queue.as_object_mut() {
        queue.remove("Metadata"); // checkov's skip
    }
    let mut connection = by_name["WebhookConnection"].clone();
    if let Some(connection) = connection.as_object_mut() {
        connection.remove("Metadata"); // cfn-lint's ignore, explained in the template
    }
    let expected = vec![
        (
            "WebhookConnection",
            &connection,
            // The API key parameter, in the x-api-key header.
            conditional(
                "AWS::Events::Connection",
                json!({
                    "Description": "Presign Gate webhook credentials (x-api-key header)",
                    "AuthorizationType": "API_KEY",
                    "AuthParameters": { "ApiKeyAuthParameters": {
                        "ApiKeyName": "x-api-key",
                        "ApiKeyValue": { "Fn::Sub": "${WebhookApiKey}" },
                    } },
                }),
            ),
        ),
        (
            "WebhookDestination",
            &by_name["WebhookDestination"],
            conditional(
                "AWS::Events::ApiDestination",
                json!({
                    "Description": "Presign Gate webhook",
                    "ConnectionArn": get_att("WebhookConnection"),
                    "InvocationEndpoint": { "Ref": "WebhookUrl" },
                    "HttpMethod": "POST",
                }),
            ),
        ),
        (
            // On the publisher's bus, for its events only; retried for a day, then parked.
            "WebhookRule",
            &by_name["WebhookRule"],
            conditional(
                "AWS::Events::Rule",
                json!({
                    "Description": "Presign Gate file events to the webhook",
                    "EventBusName": bus_name(bus),
                    "EventPattern": { "source": [SOURCE] },
                    "Targets": [{
                        "Id": "webhook",
                        "Arn": get_att("WebhookDestination"),
                        "RoleArn": get_att(WEBHOOK_ROLE),
                        "RetryPolicy": { "MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400 },
                        "DeadLetterConfig": { "Arn": get_att("WebhookDeadLetterQueue") },
                    }],
                }),
            ),
        ),
        (
            // EventBridge of this account only, invoking this destination only (EventBridge User
            // Guide, "IAM roles for sending events to targets": events:InvokeApiDestination).
            WEBHOOK_ROLE,
            &by_name[WEBHOOK_ROLE],
            conditional(
                "AWS::IAM::Role",
                json!({
                    "Description": "Presign Gate webhook delivery",
                    "AssumeRolePolicyDocument": { "Version": "2012-10-17", "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "Service": "events.amazonaws.com" },
                        "Action": "sts:AssumeRole",
                        "Condition": { "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } } },
                    }] },
                    "Policies": [{ "PolicyName": "invoke", "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{
                            "Sid": "InvokeWebhook",
                            "Effect": "Allow",
                            "Action": "events:InvokeApiDestination",
                            "Resource": { "Fn::GetAtt": ["WebhookDestination", "ArnForPolicy"] },
                        }],
                    } }],
                }),
            ),
        ),
        (
            "WebhookDeadLetterQueue",
            &queue,
            conditional("AWS::SQS::Queue", queue_properties()),
        ),
        (
            "WebhookDeadLetterQueuePolicy",
            &by_name["WebhookDeadLetterQueuePolicy"],
            conditional(
                "AWS::SQS::QueuePolicy",
                queue_policy("WebhookDeadLetterQueue", vec![undelivered_webhook_events()]),
            ),
        ),
    ];
    problems.extend(mismatches(
        expected
            .into_iter()
            .map(|(name, actual, expected)| (name.to_owned(), actual, expected))
            .collect(),
    ));
    problems
}
