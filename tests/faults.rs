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

#[path = "faults/backend.rs"]
mod backend;
#[path = "faults/paused.rs"]
mod paused;

use backend::*;

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
