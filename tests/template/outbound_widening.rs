//! Each outbound-events rule of outbound.rs fails on a template that breaks it.

use super::*;

#[test]
fn checks_catch_a_widened_outbound_setup() {
    const EXISTING_BUS: &str =
        "EventBusName=\"shared-bus\", WebhookUrl=\"https://hooks.example.com/presign-gate\": ";
    let bus_resource = "                Resource: !If
                  - CreateEventBus
                  - !GetAtt FileEventsBus.Arn
                  - !Sub \"arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}\"
";
    let with_s3 = "                Resource: !Sub \"${FilesTable.Arn}/stream/*\"
              - Sid: UserObjects
                Effect: Allow
                Action: s3:GetObject
                Resource: !Sub \"arn:${AWS::Partition}:s3:::${FilesBucket}/users/*\"
";
    let cases: &[Widening] = &[
        (
            "events on every bus",
            bus_resource,
            "                Resource: \"*\"\n",
            "PublisherFunctionRole/PublishFileEvents: events:PutEvents on \"*\"",
        ),
        (
            "events on another bus",
            "event-bus/${EventBusName}",
            "event-bus/default",
            &format!("{EXISTING_BUS}PublisherFunctionRole/PublishFileEvents: events:PutEvents on"),
        ),
        (
            "events of any source",
            "                Condition:\n                  ForAllValues:StringEquals:\n                    events:source: presign-gate\n",
            "",
            "PublisherFunctionRole is",
        ),
        (
            "the stream read actions on every stream",
            "                Resource: !GetAtt FilesTable.StreamArn\n",
            "                Resource: \"*\"\n",
            "PublisherFunctionRole/ReadFileChanges: Resource \"*\"",
        ),
        (
            "ListStreams on everything",
            "                Resource: !Sub \"${FilesTable.Arn}/stream/*\"\n",
            "                Resource: \"*\"\n",
            "PublisherFunctionRole/ListFileStreams: Resource \"*\"",
        ),
        (
            "ListStreams on every table's streams",
            "                Resource: !Sub \"${FilesTable.Arn}/stream/*\"\n",
            "                Resource: !Sub \"arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*/stream/*\"\n",
            "PublisherFunctionRole/ListFileStreams: dynamodb:ListStreams on",
        ),
        (
            "the publisher reads the table's items",
            "                  - dynamodb:GetShardIterator\n",
            "                  - dynamodb:GetShardIterator\n                  - dynamodb:GetItem\n",
            "the publisher reads the stream, never the table's items",
        ),
        (
            "the publisher reads the bucket",
            "                Resource: !Sub \"${FilesTable.Arn}/stream/*\"\n",
            with_s3,
            "PublisherFunctionRole grants",
        ),
        (
            "partial failures ignored: the whole batch retried, and events published twice",
            "            FunctionResponseTypes: [ReportBatchItemFailures]\n",
            "",
            "PublisherFunction's properties is",
        ),
        (
            "failed batches dropped without a trace",
            "            DestinationConfig:\n              OnFailure:\n                Destination: !GetAtt PublisherFailureQueue.Arn\n",
            "",
            "PublisherFunction's properties is",
        ),
        (
            "records written before the mapping skipped",
            "StartingPosition: TRIM_HORIZON",
            "StartingPosition: LATEST",
            "PublisherFunction's properties is",
        ),
        (
            "deleted files never announced",
            "                - Pattern: '{\"dynamodb\": {\"OldImage\": {\"status\": {\"S\": [{\"exists\": true}]}}}}'\n",
            "",
            "PublisherFunction's properties is",
        ),
        (
            "no old image to compare with",
            "StreamViewType: NEW_AND_OLD_IMAGES",
            "StreamViewType: NEW_IMAGE",
            "the table's StreamSpecification is",
        ),
        (
            "the bus's name given to every function",
            "        SCAN_UPLOADS: !Ref ScanUploads\n",
            "        SCAN_UPLOADS: !Ref ScanUploads\n        EVENT_BUS_NAME: !Ref EventBusName\n",
            "Globals set EVENT_BUS_NAME",
        ),
        (
            "a second bus created beside the one named",
            "    Type: AWS::Events::EventBus\n    Condition: CreateEventBus\n",
            "    Type: AWS::Events::EventBus\n",
            "FileEventsBus is deployed with EventBusName set",
        ),
        (
            "undeliverable webhook events dropped",
            "          DeadLetterConfig:\n            Arn: !GetAtt WebhookDeadLetterQueue.Arn\n",
            "",
            &format!("{EXISTING_BUS}WebhookRule is"),
        ),
        (
            "the webhook sent every event of the bus",
            "        source: [presign-gate]\n",
            "        source: [{prefix: \"\"}]\n",
            &format!("{EXISTING_BUS}WebhookRule is"),
        ),
        (
            "the webhook fed from the default bus",
            "      EventBusName: !If [CreateEventBus, !Ref FileEventsBus, !Ref EventBusName]\n      EventPattern:",
            "      EventBusName: default\n      EventPattern:",
            &format!("{EXISTING_BUS}WebhookRule is"),
        ),
        (
            "a fixed API key",
            "ApiKeyValue: !Sub \"${WebhookApiKey}\"",
            "ApiKeyValue: changeme",
            &format!("{EXISTING_BUS}WebhookConnection is"),
        ),
        (
            "the webhook role invoking any API destination",
            "                Resource: !GetAtt WebhookDestination.ArnForPolicy\n",
            "                Resource: !Sub \"arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:api-destination/*\"\n",
            &format!("{EXISTING_BUS}WebhookRole is"),
        ),
        (
            "the webhook's dead-letter queue open to any rule",
            "              ArnEquals:\n                aws:SourceArn: !GetAtt WebhookRule.Arn\n",
            "              ArnEquals:\n                aws:SourceAccount: !Ref AWS::AccountId\n",
            "WebhookDeadLetterQueuePolicy: {",
        ),
        (
            "a webhook connection without a webhook",
            "    Type: AWS::Events::Connection\n    Condition: HasWebhook\n",
            "    Type: AWS::Events::Connection\n",
            "WebhookConnection is deployed with WebhookUrl empty",
        ),
    ];
    assert_each_widening_is_caught(cases);
}
