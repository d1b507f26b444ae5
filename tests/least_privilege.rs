//! The roles of template.yaml, as the local stack enforces them (local/src/iam, which follows the
//! IAM User Guide's "Policy evaluation logic"): every statement a function's role holds is the
//! only grant of some request the function makes, so taking any one out would refuse that request
//! and fail this test, which names it; and a request outside a role's rights is refused here as
//! AWS refuses it.

use presign_gate_test_support as support;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::StatusCode;
use presign_gate::deadline::Deadline;
use presign_gate::s3_events::handle_s3_event;
use presign_gate::service::ReconcileLimits;
use presign_gate::store::attr;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;
use time::OffsetDateTime;

/// Everything each function does on the stand-ins, as its own role: the API's single and
/// multipart uploads, downloads, listings, grants and deletes; the events function's confirmation and
/// rejection; a reconciliation run.
async fn every_function_at_work(standins: &StandIns) {
    Box::pin(the_api_at_work(standins)).await;
    Box::pin(the_events_function_at_work(standins)).await;
    Box::pin(the_reconciliation_at_work(standins)).await;
}

async fn the_api_at_work(standins: &StandIns) {
    let api = standins.api();
    let stored = Box::pin(api.stored_file("alice", "a.txt", "text/plain", b"abc")).await;
    let download = api.download_url("alice", &stored, "").await;
    let url = download.body["url"].as_str().expect("a download URL");
    let got = http_client().get(url).send().await.expect("GET the URL");
    assert_eq!(got.status(), 200);
    // Sharing: a grant, the grantee's listing and download. The file is deleted below with its
    // grant, in one transaction with the grantee's entry.
    let granted = Box::pin(api.call(
        "POST",
        &format!("/files/{stored}/grants"),
        Some("alice"),
        Some(json!({ "grantee": "bob" })),
    ))
    .await;
    assert_eq!(granted.status, StatusCode::CREATED, "{granted:?}");
    for path in [
        "/shared".to_owned(),
        format!("/shared/alice/{stored}/download-url"),
    ] {
        let answer = Box::pin(api.call("GET", &path, Some("bob"), None)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {answer:?}");
    }
    for (method, path, body) in [
        ("GET", "/files".to_owned(), None),
        ("GET", "/usage".to_owned(), None),
        (
            "POST",
            "/files/download-urls".to_owned(),
            Some(json!({ "ids": [stored] })),
        ),
    ] {
        let answer = Box::pin(api.call(method, &path, Some("alice"), body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{method} {path}: {answer:?}");
    }

    let multipart = Box::pin(api.call(
        "POST",
        "/uploads",
        Some("alice"),
        Some(json!({ "filename": "m.txt", "contentType": "text/plain", "size": 3, "multipart": true })),
    ))
    .await;
    assert_eq!(multipart.status, StatusCode::CREATED, "{multipart:?}");
    let multipart = file_id(&multipart.body);
    let parts = Box::pin(api.call(
        "GET",
        &format!("/files/{multipart}/parts"),
        Some("alice"),
        None,
    ))
    .await;
    assert_eq!(parts.status, StatusCode::OK, "{parts:?}");
    let deleted = Box::pin(api.call(
        "DELETE",
        &format!("/files/{multipart}"),
        Some("alice"),
        None,
    ))
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    let deleted =
        Box::pin(api.call("DELETE", &format!("/files/{stored}"), Some("alice"), None)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
}

/// One upload confirmed, one of other bytes than reserved rejected (and deleted), one object
/// removed.
async fn the_events_function_at_work(standins: &StandIns) {
    let api = standins.api();
    let events = standins.files();
    let confirmed = api.reserve("bob", "b.txt", "text/plain", b"abc").await;
    assert_eq!(upload(&confirmed, b"abc").await.status(), 200);
    let key = format!("users/bob/{}", file_id(&confirmed));
    handle_s3_event(&events, s3_event("s3/object-created.json", &key))
        .await
        .expect("confirmed by the events function");
    let mismatched = api.reserve("bob", "c.txt", "text/plain", b"abc").await;
    let mismatched_key = format!("users/bob/{}", file_id(&mismatched));
    standins
        .s3_client()
        .put_object()
        .bucket(BUCKET)
        .key(&mismatched_key)
        .if_none_match("*")
        .content_type("text/plain")
        .body(b"abcdef".to_vec().into())
        .send()
        .await
        .expect("other bytes, written by the administrator");
    handle_s3_event(&events, s3_event("s3/object-created.json", &mismatched_key))
        .await
        .expect("rejected by the events function");
    handle_s3_event(&events, s3_event("s3/object-removed.json", &key))
        .await
        .expect("removed by the events function");
}

/// An upload whose event was lost is confirmed, a stray deleted, an upload no record owns aborted.
async fn the_reconciliation_at_work(standins: &StandIns) {
    let api = standins.api();
    let lost = api.reserve("carol", "d.txt", "text/plain", b"abc").await;
    assert_eq!(upload(&lost, b"abc").await.status(), 200);
    standins
        .s3_client()
        .put_object()
        .bucket(BUCKET)
        .key("users/mallory/00000000-0000-4000-8000-000000000001")
        .if_none_match("*")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect("a stray");
    standins
        .s3_client()
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("users/mallory/00000000-0000-4000-8000-000000000002")
        .send()
        .await
        .expect("a multipart upload no record owns");
    let limits = ReconcileLimits {
        max_objects: 100,
        stray_age: Duration::from_secs(900),
    };
    let later = OffsetDateTime::now_utc() + Duration::from_secs(24 * 3600);
    let report = standins
        .files_as(Role::Reconcile)
        .reconcile(later, limits, Deadline::NONE)
        .await
        .expect("a reconciliation run");
    // The strays: mallory's, and bob's object whose record the events function removed on a
    // (synthetic) ObjectRemoved event while the object stayed.
    assert_eq!(
        (report.confirmed, report.strays_deleted),
        (1, 2),
        "{report:?}"
    );
}

/// The stack as deployed (scanning, the stream and the bus): an upload scanned and told, so the
/// events function applies a scan result and the publisher reads the stream and puts events.
async fn the_publisher_at_work(standins: &StandIns) {
    let api = standins.api();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    assert_eq!(upload(&reservation, b"abc").await.status(), 200);
    let origin = standins.demo_origin.as_deref().expect("a demo origin");
    for _ in 0..200 {
        let sink = http_client()
            .get(format!("{origin}/__events?owner=alice"))
            .send()
            .await
            .expect("the sink")
            .text()
            .await
            .expect("a body");
        if sink.contains("File Available") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the upload was never told available");
}

#[tokio::test]
async fn every_statement_of_every_function_role_is_needed_by_a_request_it_makes() {
    let standins = StandIns::start().await;
    every_function_at_work(&standins).await;
    let deployed = StandIns::start_scanning(0).await;
    the_publisher_at_work(&deployed).await;

    // A statement that alone allowed some request cannot be removed without refusing it.
    let needed: BTreeSet<String> = standins
        .grants()
        .into_iter()
        .chain(deployed.grants())
        .filter(|by| by.len() == 1)
        .flatten()
        .collect();
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
        .expect("template.yaml");
    let stack = local_aws::iam::StackIam::parse(&template, "us-east-1", &Default::default())
        .expect("the template's IAM");
    let mut unneeded = Vec::new();
    for role in &stack.roles {
        if !stack.function_roles.values().any(|r| *r == role.logical_id) {
            continue; // the schedule's role: it invokes a function, which the stand-ins do not
        }
        for statement in &role.statements {
            // CloudWatch Logs and SQS have no stand-in: those statements are checked by
            // tests/template.rs alone (README, "The local AWS").
            let local = statement.actions.iter().all(|action| {
                ["s3:", "dynamodb:", "events:"]
                    .iter()
                    .any(|service| action.starts_with(service))
            });
            if local && !needed.contains(&statement.sid) {
                unneeded.push(statement.sid.clone());
            }
        }
    }
    assert!(
        unneeded.is_empty(),
        "no tested request needs these statements: {unneeded:?} (grants: {needed:?})"
    );
}

/// What AWS answers a request no statement allows: S3's 403 AccessDenied, DynamoDB's
/// AccessDeniedException.
#[tokio::test]
async fn requests_outside_a_role_are_refused_as_aws_refuses_them() {
    let standins = StandIns::start().await;
    let s3_status = |result: Result<(), u16>| result.err();
    let head_outside = async |role| {
        standins
            .s3_client_as(role)
            .head_object()
            .bucket(BUCKET)
            .key("reconcile/anything")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.raw_response().map_or(0, |r| r.status().as_u16()))
    };
    // Objects outside users/: no role but the administrator's.
    assert_eq!(s3_status(head_outside(Role::Api).await), Some(403));
    assert_eq!(s3_status(head_outside(Role::Events).await), Some(403));
    assert_eq!(
        s3_status(head_outside(Role::Administrator).await),
        Some(404)
    );

    let list = async |role, prefix: &str| {
        standins
            .s3_client_as(role)
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(prefix)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.raw_response().map_or(0, |r| r.status().as_u16()))
    };
    assert_eq!(s3_status(list(Role::Api, "users/").await), Some(403));
    assert_eq!(s3_status(list(Role::Events, "users/").await), Some(403));
    assert_eq!(
        s3_status(list(Role::Reconcile, "").await),
        Some(403),
        "only users/"
    );
    assert_eq!(s3_status(list(Role::Reconcile, "users/").await), None);

    let write = standins
        .s3_client_as(Role::Reconcile)
        .put_object()
        .bucket(BUCKET)
        .key("users/mallory/x")
        .if_none_match("*")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("the reconciliation never writes under users/");
    assert_eq!(write.raw_response().map(|r| r.status().as_u16()), Some(403));

    let dynamodb_refusal = |error: &str| {
        assert!(error.contains("AccessDeniedException"), "{error}");
    };
    let scan = standins
        .dynamodb_client_as(Role::Api)
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .expect_err("the API never scans");
    dynamodb_refusal(&format!("{scan:?}"));
    let query = standins
        .dynamodb_client_as(Role::Events)
        .query()
        .table_name(TABLE)
        .key_condition_expression("#o = :o")
        .expression_attribute_names("#o", attr::OWNER)
        .expression_attribute_values(":o", AttributeValue::S("alice".into()))
        .send()
        .await
        .expect_err("the events function reads records one by one");
    dynamodb_refusal(&format!("{query:?}"));
    let delete = standins
        .dynamodb_client_as(Role::Reconcile)
        .delete_item()
        .table_name(TABLE)
        .key(attr::OWNER, AttributeValue::S("alice".into()))
        .key(attr::FILE_ID, AttributeValue::S("x".into()))
        .send()
        .await
        .expect_err("the reconciliation deletes no record");
    dynamodb_refusal(&format!("{delete:?}"));
}
