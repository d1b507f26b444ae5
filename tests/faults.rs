//! Injected backend faults at every call site: throttling, 5xx, access denied, timeouts and
//! dropped connections from DynamoDB (GetItem of a record and of a usage ledger, Query,
//! BatchGetItem, and the TransactWriteItems of a reservation, a confirmation and a delete) and S3
//! (HeadObject, DeleteObject, and the multipart calls: CreateMultipartUpload, ListParts,
//! CompleteMultipartUpload, AbortMultipartUpload). Transient faults are 503 `unavailable` with
//! `Retry-After`, the others 500 `internal`; never a URL, and nothing after the failed call runs.
//!
//! The backends are a scripted fake that speaks the services' wire formats on a loopback port,
//! so the SDK's own deserializers, retry classifiers and timeouts run exactly as against AWS.
//! (aws-smithy-mocks' modeled errors skip the deserializer that sets the error code, and it can
//! neither time out nor drop a connection.) The production retry policy applies: 3 attempts.
//! Only the timeouts are shortened, so that a hang costs a second, not six. Attempts are counted
//! where the SDK makes them (an interceptor on the clients), not where the fake receives them: an
//! attempt cut by its timeout before its request fully arrived is one all the same.
//!
//! No assertion here is on wall-clock time: the bounds themselves are the clients' configuration
//! (`src/aws.rs` checks them on the built clients); the timeouts below only keep a hang from
//! holding the run.

use presign_gate_test_support as support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use lambda_http::http::StatusCode;
use presign_gate::bucket::S3Bucket;
use presign_gate::domain::{ExpiryPolicy, PartPlan, UploadPolicy};
use presign_gate::http::Api;
use presign_gate::service::FileService;
use presign_gate::store::{DynamoDbOwnershipStore, attr};
use serde_json::{Value, json};
use support::{Answer, TestApi, http_api_event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TABLE: &str = "file-records";
const ID: &str = "5104d741-d096-4f89-a36e-71bc29774738";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Throttle,
    ServerError,
    Denied,
    Timeout,
    Reset,
    /// BatchGetItem answers 200 and leaves every key unprocessed, as DynamoDB may under load.
    NeverProcessed,
    /// No fault, but S3's word that the multipart upload is gone (completed or aborted).
    NoSuchUpload,
    /// No fault, but S3's word that `If-None-Match: *` failed: an object is at the key.
    PreconditionFailed,
    /// No fault, but S3's word that a conflicting write to the key happened meanwhile: 409
    /// `ConditionalRequestConflict` (Amazon S3 API Reference, CompleteMultipartUpload and
    /// PutObject, `If-None-Match`).
    ConditionalRequestConflict,
}

impl Fault {
    fn transient(self) -> bool {
        self != Self::Denied
    }
}

/// What the fake backend saw, in order: operation names.
type Log = Arc<Mutex<Vec<String>>>;

struct Script {
    /// The operation that fails.
    target: &'static str,
    fault: Fault,
    /// The record every successful read returns.
    status: &'static str,
    /// That record is a multipart reservation (`MULTIPART_SIZE` bytes), whose object exists
    /// only once a CompleteMultipartUpload has reached the backend.
    multipart: bool,
}

/// The size of the multipart record: a part of 5 MiB and one of 1 MiB.
const MULTIPART_SIZE: u64 = 6 << 20;
const PART_SIZES: [u64; 2] = [5 << 20, 1 << 20];

/// The S3 operations the fake tells apart.
const S3_OPERATIONS: [&str; 6] = [
    "HeadObject",
    "DeleteObject",
    "CreateMultipartUpload",
    "ListParts",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
];

fn item(status: &str, multipart: bool) -> Value {
    let mut item = json!({
        "owner": {"S": "alice"},
        "fileId": {"S": ID},
        "objectKey": {"S": format!("users/alice/{ID}")},
        "filename": {"S": "a.txt"},
        "contentType": {"S": "text/plain"},
        "size": {"N": "3"},
        "status": {"S": status},
        "createdAt": {"S": "2026-11-29T12:00:00Z"},
    });
    if status == "pending" {
        item[attr::PURGE_AT] = json!({"N": support::mocked::PURGE_AT_2099});
    }
    if multipart {
        let plan = PartPlan::for_size(MULTIPART_SIZE).unwrap();
        assert_eq!(plan.part_count() as usize, PART_SIZES.len());
        for (name, value) in [
            (attr::SIZE, json!({"N": MULTIPART_SIZE.to_string()})),
            (attr::MULTIPART_UPLOAD_ID, json!({"S": "fake-upload"})),
            (attr::PART_SIZE, json!({"N": plan.part_size().to_string()})),
            (
                attr::PART_COUNT,
                json!({"N": plan.part_count().to_string()}),
            ),
            (
                attr::MULTIPART_EXPIRES_AT,
                json!({"S": "2099-01-01T00:00:00Z"}),
            ),
        ] {
            item[name] = value;
        }
    }
    item
}

fn xml(body: &str) -> Vec<u8> {
    response(200, &[("content-type", "application/xml")], body)
}

/// One part a page, as S3 may answer (fewer than `max-parts`, and where to go on), the last page
/// not truncated but still naming its last part.
fn list_parts_page(request_line: &str) -> Vec<u8> {
    let after: usize = request_line
        .split(['?', '&', ' '])
        .find_map(|pair| pair.strip_prefix("part-number-marker="))
        .map_or(0, |n| n.parse().unwrap());
    let number = after + 1;
    let size = PART_SIZES[after];
    let truncated = number < PART_SIZES.len();
    xml(&format!(
        "<ListPartsResult><Bucket>files</Bucket><UploadId>fake-upload</UploadId>\
         <Part><PartNumber>{number}</PartNumber><ETag>\"part-{number}\"</ETag><Size>{size}</Size></Part>\
         <IsTruncated>{truncated}</IsTruncated><NextPartNumberMarker>{number}</NextPartNumberMarker>\
         </ListPartsResult>"
    ))
}

fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status} X\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers.iter().any(|(name, _)| *name == "content-length") {
        text.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

/// The canned answer to `operation` (whose request starts with `request_line` and whose body is
/// `body`), or the scripted fault; `None` means hang up. `completed`: a CompleteMultipartUpload
/// has reached the backend; `aborted`: an AbortMultipartUpload has, after which ListParts answers
/// `NoSuchUpload`, as S3 does for an upload aborted (Amazon S3 API Reference, ListParts).
fn answer(
    script: &Script,
    operation: &str,
    request_line: &str,
    body: &str,
    (completed, aborted): (bool, bool),
) -> Option<Vec<u8>> {
    let dynamodb = !S3_OPERATIONS.contains(&operation);
    if operation == script.target {
        let json_error = |status, kind: &str| {
            let body = json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": "injected"});
            response(
                status,
                &[("content-type", "application/x-amz-json-1.0")],
                &body.to_string(),
            )
        };
        let xml_error = |status, code: &str| {
            // HEAD responses carry no body; the status alone must tell.
            let body = if operation == "HeadObject" {
                String::new()
            } else {
                format!("<Error><Code>{code}</Code><Message>injected</Message></Error>")
            };
            response(status, &[("content-type", "application/xml")], &body)
        };
        return match (script.fault, dynamodb) {
            (Fault::Throttle, true) => Some(json_error(400, "ThrottlingException")),
            (Fault::Throttle, false) => Some(xml_error(503, "SlowDown")),
            (Fault::ServerError, true) => Some(json_error(500, "InternalServerError")),
            (Fault::ServerError, false) => Some(xml_error(500, "InternalError")),
            (Fault::Denied, true) => Some(json_error(400, "AccessDeniedException")),
            (Fault::Denied, false) => Some(xml_error(403, "AccessDenied")),
            (Fault::Timeout | Fault::Reset, _) => None,
            (Fault::NoSuchUpload, _) => Some(xml_error(404, "NoSuchUpload")),
            (Fault::PreconditionFailed, _) => Some(xml_error(412, "PreconditionFailed")),
            (Fault::ConditionalRequestConflict, _) => {
                Some(xml_error(409, "ConditionalRequestConflict"))
            }
            (Fault::NeverProcessed, _) => {
                let keys = json!({"Keys": [{"owner": {"S": "alice"}, "fileId": {"S": ID}}], "ConsistentRead": true});
                let body = json!({"Responses": {TABLE: []}, "UnprocessedKeys": {TABLE: keys}});
                Some(response(
                    200,
                    &[("content-type", "application/x-amz-json-1.0")],
                    &body.to_string(),
                ))
            }
        };
    }
    let ok_json = |body: Value| {
        response(
            200,
            &[("content-type", "application/x-amz-json-1.0")],
            &body.to_string(),
        )
    };
    Some(match operation {
        // An owner's usage ledger: none yet.
        "GetItem" if body.contains(attr::USAGE_SORT_KEY) => ok_json(json!({})),
        "GetItem" => ok_json(json!({"Item": item(script.status, script.multipart)})),
        "Query" => ok_json(
            json!({"Items": [item(script.status, script.multipart)], "Count": 1, "ScannedCount": 1}),
        ),
        "BatchGetItem" => ok_json(json!({
            "Responses": {TABLE: [item(script.status, script.multipart)]},
            "UnprocessedKeys": {},
        })),
        "TransactWriteItems" | "DeleteItem" => ok_json(json!({})),
        "HeadObject" if script.multipart && !completed => response(404, &[], ""),
        "HeadObject" if script.multipart => response(
            200,
            &[
                ("content-type", "text/plain"),
                ("content-length", &MULTIPART_SIZE.to_string()),
                ("etag", "\"fake-upload-2\""),
            ],
            "",
        ),
        "HeadObject" => response(
            200,
            &[
                ("content-type", "text/plain"),
                ("content-length", "3"),
                ("etag", "\"900150983cd24fb0d6963f7d28e17f72\""),
            ],
            "",
        ),
        "DeleteObject" | "AbortMultipartUpload" => response(204, &[("content-length", "0")], ""),
        "CreateMultipartUpload" => xml(
            "<InitiateMultipartUploadResult><Bucket>files</Bucket><Key>k</Key>\
             <UploadId>fake-upload</UploadId></InitiateMultipartUploadResult>",
        ),
        "ListParts" if aborted => response(
            404,
            &[("content-type", "application/xml")],
            "<Error><Code>NoSuchUpload</Code><Message>aborted</Message></Error>",
        ),
        "ListParts" => list_parts_page(request_line),
        "CompleteMultipartUpload" => xml(
            "<CompleteMultipartUploadResult><Bucket>files</Bucket><Key>k</Key>\
             <ETag>\"fake-upload-2\"</ETag></CompleteMultipartUploadResult>",
        ),
        other => panic!("the fake backend got an unexpected {other}"),
    })
}

async fn serve(mut stream: TcpStream, script: Arc<Script>, log: Log) {
    let mut buffer = Vec::new();
    loop {
        // One request: headers, then a body of content-length bytes.
        let header_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
        let header = |name: &str| {
            head.lines()
                .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                .map(str::trim)
                .map(str::to_owned)
        };
        let length: usize = header("content-length").map_or(0, |n| n.parse().unwrap());
        while buffer.len() < header_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buffer[header_end..header_end + length]).into_owned();
        buffer.drain(..header_end + length);
        let operation = match header("x-amz-target") {
            Some(target) => {
                let op = target.rsplit('.').next().unwrap();
                // Back to the API's spelling (the head was lowercased).
                [
                    "GetItem",
                    "Query",
                    "BatchGetItem",
                    "TransactWriteItems",
                    "DeleteItem",
                ]
                .into_iter()
                .find(|name| name.eq_ignore_ascii_case(op))
                .unwrap_or_else(|| panic!("unexpected DynamoDB operation {op}"))
            }
            None => {
                // S3's operation, from the method and the query (lowercased like the head).
                let request_line = head.lines().next().unwrap();
                let (method, target) = request_line.split_once(' ').unwrap();
                let query = target.split_once('?').map_or("", |(_, query)| query);
                let has = |name: &str| query.split(['&', ' ']).any(|pair| pair.starts_with(name));
                match method {
                    "head" => "HeadObject",
                    "post" if has("uploads") => "CreateMultipartUpload",
                    "get" if has("uploadid=") => "ListParts",
                    "post" if has("uploadid=") => "CompleteMultipartUpload",
                    "delete" if has("uploadid=") => "AbortMultipartUpload",
                    "delete" => "DeleteObject",
                    _ => panic!("unexpected S3 request {request_line}"),
                }
            }
        };
        let state = {
            let mut log = log.lock().unwrap();
            log.push(operation.to_owned());
            (
                log.iter().any(|seen| seen == "CompleteMultipartUpload"),
                log.iter().any(|seen| seen == "AbortMultipartUpload"),
            )
        };
        let request_line = head.lines().next().unwrap_or_default();
        match answer(&script, operation, request_line, &body, state) {
            Some(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            None if script.fault == Fault::Timeout => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            None => return, // Reset: close without answering
        }
    }
}

async fn fake_backend(script: Script) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let script = Arc::new(script);
    let task_log = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, script.clone(), task_log.clone()));
        }
    });
    (endpoint, log)
}

/// Every attempt the SDK makes, by operation name, in order.
#[derive(Debug)]
struct CountAttempts(Log);

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "CountAttempts"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map_or("<unknown>", |metadata| metadata.name());
        self.0.lock().unwrap().push(name.to_owned());
        Ok(())
    }
}

/// The handler over clients of `endpoint`, and the attempts its SDK clients make.
async fn api_against(endpoint: &str) -> (TestApi, Log) {
    // The production loader (retries included), with timeouts cut short for the test.
    let loader = presign_gate::aws::config_loader().timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(300))
            .read_timeout(Duration::from_millis(300))
            .operation_attempt_timeout(Duration::from_millis(300))
            .operation_timeout(Duration::from_secs(3))
            .build(),
    );
    let attempts = Log::default();
    let api = api_counted(endpoint, loader, &attempts).await;
    (api, attempts)
}

async fn api_loaded_by(endpoint: &str, loader: aws_config::ConfigLoader) -> TestApi {
    api_counted(endpoint, loader, &Log::default()).await
}

async fn api_counted(endpoint: &str, loader: aws_config::ConfigLoader, attempts: &Log) -> TestApi {
    let sdk = loader
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("k", "s", None, None, "tests"))
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .interceptor(CountAttempts(attempts.clone()))
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .interceptor(CountAttempts(attempts.clone()))
            .build(),
    );
    TestApi(Api::new(
        FileService::new(
            DynamoDbOwnershipStore::new(dynamodb, TABLE),
            S3Bucket::new(s3, "files"),
            UploadPolicy::new(["text/plain"], MULTIPART_SIZE).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        ),
        None,
    ))
}

/// What a call site's scenario sends and needs.
struct Scenario {
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// The record status every successful read returns.
    status: &'static str,
    /// The record is a multipart reservation.
    multipart: bool,
    /// The operation that fails.
    operation: &'static str,
    /// The calls before it.
    before: Vec<&'static str>,
}

/// The request that reaches call site `site`, the record status it needs, and the calls before.
fn scenario(site: &str) -> Scenario {
    let reserve = Some(json!({"filename": "a.txt", "contentType": "text/plain", "size": 3}));
    let (method, path, body, status, operation, before) = match site {
        "GetItem" => (
            "GET",
            format!("/files/{ID}/download-url"),
            None,
            "available",
            "GetItem",
            vec![],
        ),
        "GetItem (usage ledger)" => ("GET", "/usage".into(), None, "available", "GetItem", vec![]),
        "GetItem (reservation's usage ledger)" => (
            "POST",
            "/uploads".into(),
            reserve,
            "pending",
            "GetItem",
            vec![],
        ),
        "Query" => ("GET", "/files".into(), None, "available", "Query", vec![]),
        "BatchGetItem" => (
            "POST",
            "/files/download-urls".into(),
            Some(json!({"ids": [ID]})),
            "available",
            "BatchGetItem",
            vec![],
        ),
        "TransactWriteItems (reserve)" => (
            "POST",
            "/uploads".into(),
            reserve,
            "pending",
            "TransactWriteItems",
            vec!["GetItem"],
        ),
        "HeadObject" => (
            "POST",
            format!("/files/{ID}/complete"),
            None,
            "pending",
            "HeadObject",
            vec!["GetItem"],
        ),
        "TransactWriteItems (confirm)" => (
            "POST",
            format!("/files/{ID}/complete"),
            None,
            "pending",
            "TransactWriteItems",
            vec!["GetItem", "HeadObject"],
        ),
        // The object's version comes from HeadObject, so the delete can name it.
        "DeleteObject" => (
            "DELETE",
            format!("/files/{ID}"),
            None,
            "available",
            "DeleteObject",
            vec!["GetItem", "HeadObject"],
        ),
        "TransactWriteItems (delete)" => (
            "DELETE",
            format!("/files/{ID}"),
            None,
            "available",
            "TransactWriteItems",
            vec!["GetItem", "HeadObject", "DeleteObject"],
        ),
        "DeleteItem (delete a rejected record)" => (
            "DELETE",
            format!("/files/{ID}"),
            None,
            "rejected",
            "DeleteItem",
            vec!["GetItem", "HeadObject", "DeleteObject"],
        ),
        other => return multipart_scenario(other),
    };
    Scenario {
        method,
        path,
        body,
        status,
        multipart: false,
        operation,
        before,
    }
}

/// The call sites of a multipart reservation (`MULTIPART_SIZE` bytes, pending).
fn multipart_scenario(site: &str) -> Scenario {
    let complete = format!("/files/{ID}/complete");
    let (method, path, body, operation, before) = match site {
        "CreateMultipartUpload (reserve)" => (
            "POST",
            "/uploads".into(),
            Some(
                json!({"filename": "a.txt", "contentType": "text/plain", "size": MULTIPART_SIZE, "multipart": true}),
            ),
            "CreateMultipartUpload",
            // The ledger is read first: a caller over the quota costs no upload.
            vec!["GetItem"],
        ),
        "ListParts (list parts)" => (
            "GET",
            format!("/files/{ID}/parts"),
            None,
            "ListParts",
            vec!["GetItem"],
        ),
        "ListParts (complete)" => (
            "POST",
            complete,
            None,
            "ListParts",
            vec!["GetItem", "HeadObject"],
        ),
        "CompleteMultipartUpload" => (
            "POST",
            complete,
            None,
            "CompleteMultipartUpload",
            vec!["GetItem", "HeadObject", "ListParts", "ListParts"],
        ),
        "AbortMultipartUpload (delete)" => (
            "DELETE",
            format!("/files/{ID}"),
            None,
            "AbortMultipartUpload",
            vec!["GetItem"],
        ),
        other => panic!("{other}"),
    };
    Scenario {
        method,
        path,
        body,
        status: "pending",
        multipart: true,
        operation,
        before,
    }
}

const CALL_SITES: [&str; 16] = [
    "GetItem",
    "GetItem (usage ledger)",
    "GetItem (reservation's usage ledger)",
    "Query",
    "BatchGetItem",
    "TransactWriteItems (reserve)",
    "HeadObject",
    "TransactWriteItems (confirm)",
    "DeleteObject",
    "TransactWriteItems (delete)",
    "DeleteItem (delete a rejected record)",
    "CreateMultipartUpload (reserve)",
    "ListParts (list parts)",
    "ListParts (complete)",
    "CompleteMultipartUpload",
    "AbortMultipartUpload (delete)",
];

/// The answer at `site` under `fault`, and the attempts the SDK made, in order.
async fn run(site: &'static str, fault: Fault) -> (Answer, Vec<String>, Scenario) {
    let scenario = scenario(site);
    let (endpoint, _) = fake_backend(Script {
        target: scenario.operation,
        fault,
        status: scenario.status,
        multipart: scenario.multipart,
    })
    .await;
    let (api, attempts) = api_against(&endpoint).await;
    let body = scenario.body.as_ref().map(ToString::to_string);
    let event = http_api_event(scenario.method, &scenario.path, Some("alice"), body);
    let answer = api.send_event(&event).await;
    let seen = attempts.lock().unwrap().clone();
    (answer, seen, scenario)
}

#[tokio::test]
async fn every_call_site_fails_closed_under_every_fault() {
    for fault in [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Denied,
        Fault::Timeout,
        Fault::Reset,
    ] {
        for site in CALL_SITES {
            let (answer, seen, scenario) = run(site, fault).await;
            let what = format!("{site} {fault:?}: {answer:?}, calls {seen:?}");
            if site == "HeadObject" && matches!(fault, Fault::Denied) {
                // Without s3:ListBucket, S3 answers HeadObject on a missing key with 403 (S3 API
                // reference, HeadObject, "Permissions"), so on a pending record a 403 is read as
                // "not uploaded yet" (src/service.rs `confirm`): fail closed all the same, with
                // nothing written after it.
                assert_eq!(
                    (answer.status.as_u16(), answer.error_code()),
                    (409, "upload_missing"),
                    "{what}"
                );
                assert_eq!(seen, ["GetItem", "HeadObject"], "{what}");
                continue;
            }
            let expected = if fault.transient() {
                (503, "unavailable")
            } else {
                (500, "internal")
            };
            assert_eq!(
                (answer.status.as_u16(), answer.error_code()),
                expected,
                "{what}"
            );
            if fault.transient() {
                assert_eq!(answer.headers["retry-after"], "1", "{what}");
            } else {
                assert!(answer.headers.get("retry-after").is_none(), "{what}");
            }
            let text = answer.body.to_string();
            assert!(
                !text.contains("X-Amz-") && !text.contains("http"),
                "no URL and no backend detail: {what}"
            );
            assert_eq!(
                answer.body["error"]["message"],
                if fault.transient() {
                    "a backend is unavailable"
                } else {
                    "internal error"
                },
                "{what}"
            );
            // Everything before the failed call ran once; the failed call was tried by the
            // SDK's retry policy (3 attempts when transient, once when not); nothing after it.
            // CompleteMultipartUpload has bounds of its own (src/bucket/s3.rs,
            // `completion_timeouts`): its one attempt may take 12 s, which is also the whole
            // call's bound, so a hang is not tried again.
            let attempts = match (site, fault) {
                ("CompleteMultipartUpload", Fault::Timeout) => 1,
                _ if fault.transient() => 3,
                _ => 1,
            };
            let mut expected_calls: Vec<String> =
                scenario.before.iter().map(|s| s.to_string()).collect();
            expected_calls.extend(std::iter::repeat_n(scenario.operation.to_owned(), attempts));
            assert_eq!(seen, expected_calls, "{what}");
        }
    }
}

/// The request of `site`'s scenario against a fake backend that fails nothing unless `fault`
/// is given for the site's own operation: the answer and every request the backend saw.
async fn answered_at(site: &'static str, fault: Option<Fault>) -> (Answer, Vec<String>) {
    let scenario = scenario(site);
    let (endpoint, log) = fake_backend(Script {
        target: if fault.is_some() {
            scenario.operation
        } else {
            "none"
        },
        fault: fault.unwrap_or(Fault::Throttle),
        status: scenario.status,
        multipart: scenario.multipart,
    })
    .await;
    let (api, _) = api_against(&endpoint).await;
    let answer = api
        .call(
            scenario.method,
            &scenario.path,
            Some("alice"),
            scenario.body,
        )
        .await;
    let seen = log.lock().unwrap().clone();
    (answer, seen)
}

#[tokio::test]
async fn the_happy_path_of_the_fake_backend_issues_urls() {
    // The same scripts with no fault reaching their target: proves the fake answers as the
    // services do, so the failures above are the faults' doing.
    for site in ["GetItem", "BatchGetItem"] {
        let (answer, _) = answered_at(site, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert!(answer.body.to_string().contains("X-Amz-Signature"));
    }
    let (answer, seen) = answered_at("TransactWriteItems (confirm)", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(seen, ["GetItem", "HeadObject", "TransactWriteItems"]);
}

#[tokio::test]
async fn the_happy_path_of_the_fake_backend_runs_every_multipart_call() {
    let (answer, seen) = answered_at("CreateMultipartUpload (reserve)", None).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert_eq!(answer.body["upload"]["method"], "MULTIPART", "{answer:?}");
    assert_eq!(
        seen,
        [
            "GetItem",
            "CreateMultipartUpload",
            "GetItem",
            "TransactWriteItems"
        ]
    );

    // ListParts answered one part a page: every page is read, and no page after the last.
    let (answer, seen) = answered_at("ListParts (list parts)", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let parts: Vec<(u64, u64)> = answer.body["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .map(|part| {
            (
                part["partNumber"].as_u64().unwrap(),
                part["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(parts, [(1, PART_SIZES[0]), (2, PART_SIZES[1])]);
    assert_eq!(seen, ["GetItem", "ListParts", "ListParts"]);

    let (answer, seen) = answered_at("CompleteMultipartUpload", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.body["file"]["status"], "available", "{answer:?}");
    assert_eq!(
        seen,
        [
            "GetItem",
            "HeadObject",
            "ListParts",
            "ListParts",
            "CompleteMultipartUpload",
            "HeadObject",
            "TransactWriteItems"
        ]
    );

    // The abort is checked (issue 20, 2.6): ListParts says the upload is gone.
    let (answer, seen) = answered_at("AbortMultipartUpload (delete)", None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    assert_eq!(
        seen,
        [
            "GetItem",
            "AbortMultipartUpload",
            "ListParts",
            "HeadObject",
            "TransactWriteItems",
            "HeadObject"
        ]
    );
}

/// S3's answers that an upload is gone (`NoSuchUpload`: completed or aborted, by a DELETE or
/// the bucket's lifecycle rule) or that an object is at the key (`PreconditionFailed`) are no
/// faults: each call site answers what that means, never a 5xx.
#[tokio::test]
async fn s3_saying_an_upload_is_gone_is_an_answer_not_a_fault() {
    // Nothing more to list: the caller is told to call complete.
    let (answer, seen) = answered_at("ListParts (list parts)", Some(Fault::NoSuchUpload)).await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (409, "not_pending"),
        "{answer:?}"
    );
    assert_eq!(seen, ["GetItem", "ListParts"]);

    // Gone before complete listed it, and no object: aborted, so the file must be reserved again.
    let (answer, seen) = answered_at("ListParts (complete)", Some(Fault::NoSuchUpload)).await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (409, "upload_missing"),
        "{answer:?}"
    );
    assert_eq!(seen, ["GetItem", "HeadObject", "ListParts", "HeadObject"]);

    // The completion found the upload completed, or the key taken, by a concurrent complete: the
    // object is there (the fake's HEAD finds it once a completion reached it), and is looked at
    // again and confirmed.
    for fault in [Fault::NoSuchUpload, Fault::PreconditionFailed] {
        let (answer, seen) = answered_at("CompleteMultipartUpload", Some(fault)).await;
        assert_eq!(answer.status, StatusCode::OK, "{fault:?}: {answer:?}");
        assert_eq!(
            answer.body["file"]["status"], "available",
            "{fault:?}: {answer:?}"
        );
        assert_eq!(
            seen[4..],
            [
                "CompleteMultipartUpload",
                "HeadObject",
                "HeadObject",
                "TransactWriteItems"
            ],
            "{fault:?}"
        );
    }

    // Aborted already (a DELETE cut short after its abort): the delete finishes.
    let (answer, seen) =
        answered_at("AbortMultipartUpload (delete)", Some(Fault::NoSuchUpload)).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    assert_eq!(seen.last().map(String::as_str), Some("HeadObject"));
    assert!(seen.contains(&"TransactWriteItems".to_owned()), "{seen:?}");
}

/// Issue 20, 2.3: S3 answers a CompleteMultipartUpload with `If-None-Match` by 409
/// `ConditionalRequestConflict` when a conflicting operation on the key happens meanwhile (Amazon
/// S3 API Reference, CompleteMultipartUpload, `If-None-Match`). The completion is not finished:
/// 503 `unavailable` with `Retry-After` (which the client retries; the retry completes, confirms
/// what the other write stored, or says the upload is gone), never 500, and nothing is written.
#[tokio::test]
async fn a_completion_conflicting_with_a_write_in_flight_is_retried_later() {
    let (answer, seen) = answered_at(
        "CompleteMultipartUpload",
        Some(Fault::ConditionalRequestConflict),
    )
    .await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (503, "unavailable"),
        "{answer:?}"
    );
    assert_eq!(answer.headers["retry-after"], "1", "{answer:?}");
    assert!(!answer.body.to_string().contains("X-Amz-"), "{answer:?}");
    assert_eq!(
        seen,
        [
            "GetItem",
            "HeadObject",
            "ListParts",
            "ListParts",
            "CompleteMultipartUpload"
        ],
        "the record is neither confirmed nor rejected"
    );
}

#[tokio::test]
async fn batch_get_that_never_processes_its_keys_is_unavailable() {
    // DynamoDB may answer 200 and leave every key unprocessed under load. Requests counted as
    // the fake parses them, one per HTTP request whatever the reads that carried it.
    let (endpoint, requests) = fake_backend(Script {
        target: "BatchGetItem",
        fault: Fault::NeverProcessed,
        status: "available",
        multipart: false,
    })
    .await;
    let (api, attempts) = api_against(&endpoint).await;
    let answer = api
        .call(
            "POST",
            "/files/download-urls",
            Some("alice"),
            Some(json!({"ids": [ID]})),
        )
        .await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (503, "unavailable"),
        "{answer:?}"
    );
    assert!(answer.body.get("urls").is_none());
    let asked = ["BatchGetItem"; 4];
    assert_eq!(
        *attempts.lock().unwrap(),
        asked,
        "asked again with backoff, then gave up"
    );
    assert_eq!(*requests.lock().unwrap(), asked, "each reached the backend");
}

/// Pauses a stand-in with SIGSTOP; it resumes when this guard goes, whatever happens.
struct Paused(u32);

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

impl Paused {
    fn pause(child: &support::ChildGuard) -> Self {
        signal(child.0.id(), "-STOP");
        Self(child.0.id())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

/// The answer, or a failure naming `what` if there is none after a minute: a guard against a
/// hang, not a timing assertion (the bounds that make the answer come are the clients'
/// configuration, checked in `src/aws.rs`; this test starts its own moto on a shared machine).
async fn answered(what: &str, future: impl std::future::Future<Output = Answer>) -> Answer {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within a minute"))
}

/// `call` until it answers `status`, for up to a minute: a resumed stand-in first works through
/// the connections the paused period left behind.
async fn until_status(api: &TestApi, method: &str, path: &str, status: u16) -> Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = api.call(method, path, Some("alice"), None).await;
        if answer.status.as_u16() == status || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn listed_ids(answer: &Answer) -> std::collections::BTreeSet<String> {
    answer.body["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn paused_stand_ins_are_503_and_nothing_is_lost() {
    let standins = support::StandIns::start().await;
    let api = standins.api();
    let stored = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;
    let pending = api.reserve("alice", "b.txt", "text/plain", b"def").await;
    assert_eq!(support::upload(&pending, b"def").await.status(), 200);
    let pending = support::file_id(&pending);
    let before = listed_ids(&api.call("GET", "/files", Some("alice"), None).await);
    assert_eq!(before.len(), 2);

    // DynamoDB paused: download-url is a clear 503, never a URL.
    let download = format!("/files/{stored}/download-url");
    {
        let _paused = Paused::pause(&standins.dynamodb);
        let answer = answered(
            "download-url with DynamoDB paused",
            api.call("GET", &download, Some("alice"), None),
        )
        .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (503, "unavailable"),
            "{answer:?}"
        );
        assert_eq!(answer.headers["retry-after"], "1");
        assert!(answer.body.get("url").is_none());
    }
    let answer = until_status(&api, "GET", &download, 200).await;
    assert_eq!(answer.status, StatusCode::OK, "recovered: {answer:?}");
    assert!(answer.body["url"].as_str().is_some());

    // S3 paused during complete: 503, and the record stays pending rather than half-done.
    let complete = format!("/files/{pending}/complete");
    {
        let _paused = Paused::pause(&standins.s3);
        let answer = answered(
            "complete with S3 paused",
            api.call("POST", &complete, Some("alice"), None),
        )
        .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (503, "unavailable"),
            "{answer:?}"
        );
        let record = api
            .call("GET", &format!("/files/{pending}"), Some("alice"), None)
            .await;
        assert_eq!(record.body["file"]["status"], "pending", "{record:?}");
    }
    let answer = until_status(&api, "POST", &complete, 200).await;
    assert_eq!(answer.status, StatusCode::OK, "recovered: {answer:?}");
    assert_eq!(answer.body["file"]["status"], "available");

    // Nothing reserved before the faults was lost, and both files download.
    let after = listed_ids(&api.call("GET", "/files", Some("alice"), None).await);
    assert_eq!(after, before);
    for id in [&stored, &pending] {
        let answer = api.download_url("alice", id, "").await;
        let url = answer.body["url"].as_str().expect("download url");
        let response = support::http_client().get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// Issue 11, point 7: with the production SDK bounds (2 s an attempt, 6 s a call, 3 attempts), a
/// backend that stops answering at the second or third call of a request would hold it for 6 s
/// or more; the invocation's deadline, 4 s away here, cuts it first. The fake backend hangs at
/// `target` (after answering the calls before it), and the answer must arrive, as a 503 with
/// `Retry-After`, before the invocation's deadline: it can only have come from that deadline.
#[tokio::test]
async fn a_backend_that_stalls_mid_request_is_cut_by_the_invocation_deadline() {
    const INVOCATION_REMAINING: Duration = Duration::from_secs(4);
    let mut runs = Vec::new();
    // (the call site that stalls, its place in the request)
    for (site, place) in [
        ("HeadObject", 2),
        ("TransactWriteItems (confirm)", 3),
        ("DeleteObject", 3),
        ("TransactWriteItems (delete)", 4),
    ] {
        runs.push(tokio::spawn(async move {
            let scenario = scenario(site);
            assert_eq!(scenario.before.len() + 1, place, "{site}");
            let (endpoint, log) = fake_backend(Script {
                target: scenario.operation,
                fault: Fault::Timeout,
                status: scenario.status,
                multipart: false,
            })
            .await;
            let api = api_loaded_by(&endpoint, presign_gate::aws::config_loader()).await;
            let body = scenario.body.map(|b| b.to_string());
            let event = http_api_event(scenario.method, &scenario.path, Some("alice"), body);
            let answer = tokio::time::timeout(
                INVOCATION_REMAINING,
                api.send_event_within(&event, INVOCATION_REMAINING),
            )
            .await
            .unwrap_or_else(|_| panic!("{site}: no answer before the invocation's deadline"));
            assert_eq!(
                (answer.status.as_u16(), answer.error_code()),
                (503, "unavailable"),
                "{site}: {answer:?}"
            );
            assert_eq!(answer.headers["retry-after"], "1", "{site}");
            let seen = log.lock().unwrap().clone();
            let before = &scenario.before;
            assert_eq!(seen[..before.len()], before[..], "{site}: {seen:?}");
            assert_eq!(
                seen.get(before.len()).map(String::as_str),
                Some(scenario.operation),
                "{site}: {seen:?}"
            );
        }));
    }
    for run in runs {
        run.await.unwrap();
    }
}
