//! The table's DynamoDB stream, read from moto and delivered to the publisher as Lambda's event
//! source mapping would (the template's FilterCriteria, BatchSize, BisectBatchOnFunctionError,
//! MaximumRetryAttempts and ReportBatchItemFailures), with the writes made as the product makes
//! them: transactions through local-aws's DynamoDB front.

mod support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem, Update,
};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use support::outbound::Moto;
use support::{Options, Recorder, Stack, template};

const TABLE: &str = "presign-gate-local-FilesTable";
/// The fixture's MaximumRetryAttempts.
const MAX_RETRIES: usize = 10;

struct Streaming {
    stack: Stack,
    publisher: Recorder,
    _moto: Moto,
}

impl Streaming {
    /// The stack reading the table's stream into `publisher`, the table created with its stream
    /// as `DynamoDbOwnershipStore::create_table` creates it.
    async fn start(publisher: Recorder) -> Self {
        let moto = Moto::start();
        let stack = Stack::start(Options {
            template: Some(template()),
            dynamodb: Some(moto.endpoint.clone()),
            publisher: Some(publisher.invoke_url()),
            ..Options::default()
        })
        .await;
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute")
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .expect("key")
        };
        stack
            .dynamodb()
            .create_table()
            .table_name(TABLE)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("owner"))
            .attribute_definitions(attribute("fileId"))
            .key_schema(key("owner", KeyType::Hash))
            .key_schema(key("fileId", KeyType::Range))
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .expect("stream"),
            )
            .send()
            .await
            .expect("CreateTable");
        Self {
            stack,
            publisher,
            _moto: moto,
        }
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), String> {
        self.stack
            .dynamodb()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{:?}", e.into_service_error()))
    }

    /// One transaction putting each file, pending.
    async fn put_files(&self, files: &[&str]) {
        let puts = files.iter().map(|file| put_file(file, "pending")).collect();
        self.transact(puts).await.expect("the files are put");
    }

    /// The files of the next invocation's records.
    async fn next_files(&mut self) -> Vec<String> {
        file_ids(&self.next_batch().await)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The records of the next invocation.
    async fn next_batch(&mut self) -> Vec<Value> {
        let event = self.publisher.next().await.json();
        event["Records"].as_array().expect("Records").clone()
    }
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_owned())
}

fn key(file: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("owner".to_owned(), s("alice")),
        ("fileId".to_owned(), s(file)),
    ])
}

/// A Put of the item under `file` with one more attribute.
fn put(file: &str, attribute: &str, value: AttributeValue) -> TransactWriteItem {
    let mut item = key(file);
    item.insert(attribute.into(), value);
    let put = Put::builder()
        .table_name(TABLE)
        .set_item(Some(item))
        .build();
    TransactWriteItem::builder().put(put.expect("put")).build()
}

fn put_file(file: &str, status: &str) -> TransactWriteItem {
    put(file, "status", s(status))
}

/// The owner's ledger item: no file.
fn put_usage(bytes: &str) -> TransactWriteItem {
    put("#usage", "bytes", AttributeValue::N(bytes.into()))
}

fn set_status(file: &str, status: &str, condition: Option<&str>) -> TransactWriteItem {
    let update = Update::builder()
        .table_name(TABLE)
        .set_key(Some(key(file)))
        .update_expression("SET #s = :s")
        .set_condition_expression(condition.map(str::to_owned))
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", s(status))
        .build()
        .expect("update");
    TransactWriteItem::builder().update(update).build()
}

fn delete_file(file: &str) -> TransactWriteItem {
    let delete = Delete::builder()
        .table_name(TABLE)
        .set_key(Some(key(file)))
        .build()
        .expect("delete");
    TransactWriteItem::builder().delete(delete).build()
}

fn file_ids(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| {
            r["dynamodb"]["Keys"]["fileId"]["S"]
                .as_str()
                .unwrap_or_default()
        })
        .collect()
}

fn answer(body: &Value) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(body.to_string())))
}

/// A publisher that handles everything.
async fn handling_everything() -> Recorder {
    Recorder::start(|_| answer(&json!({"batchItemFailures": []}))).await
}

#[tokio::test]
async fn a_files_changes_reach_the_publisher_in_order_and_other_items_do_not() {
    let mut streaming = Streaming::start(handling_everything().await).await;
    let file = "0b6e1f3e-4f1e-4c5e-9a55-6f1c2f1e0a01";
    streaming
        .transact(vec![put_file(file, "pending"), put_usage("1")])
        .await
        .expect("reserve");
    // Cancelled after its first item was applied in moto: nothing of it may reach the publisher.
    let cancelled = streaming
        .transact(vec![
            set_status(file, "available", None),
            set_status("no-such-file", "x", Some("attribute_exists(fileId)")),
        ])
        .await;
    assert!(
        cancelled.is_err_and(|e| e.contains("TransactionCanceled")),
        "the transaction is cancelled"
    );
    streaming
        .transact(vec![set_status(file, "scanning", None), put_usage("2")])
        .await
        .expect("scan");
    streaming
        .transact(vec![delete_file(file), put_usage("0")])
        .await
        .expect("delete");

    let mut records = Vec::new();
    while records.len() < 3 {
        records.extend(streaming.next_batch().await);
    }
    assert_eq!(
        file_ids(&records),
        [file; 3],
        "the ledger's #usage is no file: filtered out"
    );
    let names: Vec<_> = records
        .iter()
        .map(|r| r["eventName"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
    let status = |record: &Value, image: &str| record["dynamodb"][image]["status"]["S"].clone();
    assert_eq!(status(&records[0], "NewImage"), "pending");
    assert_eq!(
        status(&records[1], "OldImage"),
        "pending",
        "the cancelled change never happened"
    );
    assert_eq!(status(&records[1], "NewImage"), "scanning");
    assert_eq!(status(&records[2], "OldImage"), "scanning");
    assert!(records[2]["dynamodb"].get("NewImage").is_none());
    let sequence: Vec<u128> = records
        .iter()
        .map(|r| {
            r["dynamodb"]["SequenceNumber"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .expect("a sequence number")
        })
        .collect();
    assert!(
        sequence.windows(2).all(|pair| pair[0] < pair[1]),
        "{sequence:?}"
    );
    for record in &records {
        assert_eq!(record["eventSource"], "aws:dynamodb");
        assert_eq!(record["awsRegion"], "us-east-1");
        assert_eq!(record["dynamodb"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
        assert!(
            record["dynamodb"]["ApproximateCreationDateTime"].is_i64(),
            "{record}"
        );
        assert!(
            record["eventSourceARN"]
                .as_str()
                .is_some_and(|arn| arn.starts_with(&format!(
                    "arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/stream/"
                ))),
            "{record}"
        );
    }
    // Nothing more: each record was sent once.
    streaming.put_files(&["second"]).await;
    assert_eq!(streaming.next_files().await, ["second"]);
}

#[tokio::test]
async fn a_reported_failure_is_retried_from_that_record_until_the_retries_are_spent() {
    // The publisher fails the "poison" record every time, as a bus that keeps refusing it.
    let publisher = Recorder::start_reading(0, |_, body| {
        let event: Value = serde_json::from_slice(body).unwrap_or_default();
        let failures: Vec<Value> = event["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["dynamodb"]["Keys"]["fileId"]["S"] == "poison")
            .map(|r| json!({"itemIdentifier": r["dynamodb"]["SequenceNumber"]}))
            .collect();
        answer(&json!({ "batchItemFailures": failures }))
    })
    .await;
    let mut streaming = Streaming::start(publisher).await;
    streaming.put_files(&["first", "poison", "last"]).await;
    assert_eq!(streaming.next_files().await, ["first", "poison", "last"]);
    for retry in 1..=MAX_RETRIES {
        assert_eq!(
            streaming.next_files().await,
            ["poison", "last"],
            "retry {retry} starts at the failed record; the first is not sent again"
        );
    }
    // Discarded after MaximumRetryAttempts: the mapping reads on.
    streaming.put_files(&["after"]).await;
    assert_eq!(streaming.next_files().await, ["after"]);
}

#[tokio::test]
async fn a_failed_batch_is_halved_and_retried() {
    let publisher = Recorder::start(|n| {
        let mut response = answer(&json!({}));
        if n == 0 {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
                .headers_mut()
                .insert("x-amz-function-error", "Unhandled".parse().expect("header"));
        }
        response
    })
    .await;
    let mut streaming = Streaming::start(publisher).await;
    streaming.put_files(&["a", "b", "c"]).await;
    assert_eq!(streaming.next_files().await, ["a", "b", "c"]);
    assert_eq!(
        streaming.next_files().await,
        ["a", "b"],
        "BisectBatchOnFunctionError"
    );
    assert_eq!(streaming.next_files().await, ["c"]);
}
