//! Round trips: how many requests each route sends to DynamoDB and S3, counted by an interceptor
//! on the real clients (answered by `aws-smithy-mocks`, so no network). A download URL costs one
//! read, a reservation one write, a batch one `BatchGetItem` whatever its size, and a request
//! that validation refuses costs nothing at all. No timings here: see `make bench` for those.

use presign_gate_test_support::mocked;

use mocked::{MockedApi, Quirks, Read, request, reservation};
use serde_json::json;

#[tokio::test]
async fn a_download_url_costs_one_dynamodb_read_and_no_s3_request() {
    let mocked = MockedApi::new().await;
    let id = mocked.available[0];
    let (status, body) = mocked
        .call(request("GET", &format!("/files/{id}/download-url"), None))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mocked.dynamodb.of("GetItem"), 1);
    assert_eq!(
        mocked.dynamodb.total(),
        1,
        "{:?}",
        mocked.dynamodb.snapshot()
    );
    assert_eq!(mocked.s3.total(), 0, "presigning is local");
}

#[tokio::test]
async fn a_download_url_for_a_missing_or_pending_file_also_costs_one_read() {
    let mocked = MockedApi::new().await;
    let missing = presign_gate::domain::FileId::new_random();
    for (id, expected) in [(missing, 404), (mocked.pending, 409)] {
        mocked.dynamodb.reset();
        let (status, _) = mocked
            .call(request("GET", &format!("/files/{id}/download-url"), None))
            .await;
        assert_eq!(status, expected);
        assert_eq!(
            mocked.dynamodb.total(),
            1,
            "{:?}",
            mocked.dynamodb.snapshot()
        );
    }
}

#[tokio::test]
async fn an_upload_reservation_costs_one_ledger_read_one_transaction_and_no_s3_request() {
    let mocked = MockedApi::new().await;
    let (status, body) = mocked
        .call(request("POST", "/uploads", Some(reservation())))
        .await;
    assert_eq!(status, 201, "{body}");
    // The owner's usage ledger, then the record and the ledger written together.
    assert_eq!(mocked.dynamodb.of("GetItem"), 1);
    assert_eq!(mocked.dynamodb.of("TransactWriteItems"), 1);
    assert_eq!(
        mocked.dynamodb.total(),
        2,
        "{:?}",
        mocked.dynamodb.snapshot()
    );
    assert_eq!(mocked.s3.total(), 0, "presigning is local");
}

#[tokio::test]
async fn a_batch_costs_one_batch_get_item_whatever_its_size() {
    let mocked = MockedApi::new().await;
    let mut ids: Vec<String> = mocked.available.iter().map(ToString::to_string).collect();
    ids.push(mocked.pending.to_string());
    ids.push(presign_gate::domain::FileId::new_random().to_string());
    ids.push(ids[0].clone()); // a duplicate
    ids.push("not-a-uuid".into());
    let (status, body) = mocked
        .call(request(
            "POST",
            "/files/download-urls",
            Some(json!({ "ids": ids })),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["urls"].as_object().map(|urls| urls.len()),
        Some(mocked.available.len()),
        "{body}"
    );
    assert_eq!(mocked.dynamodb.of("BatchGetItem"), 1);
    assert_eq!(
        mocked.dynamodb.total(),
        1,
        "{:?}",
        mocked.dynamodb.snapshot()
    );
    assert_eq!(mocked.s3.total(), 0);
}

#[tokio::test]
async fn a_completion_reads_the_record_and_the_object_then_writes_once() {
    // The one write is a transaction: the record's change and the ledger's, together.
    let mocked = MockedApi::new().await;
    let id = mocked.pending;
    let (status, body) = mocked
        .call(request("POST", &format!("/files/{id}/complete"), None))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mocked.s3.of("HeadObject"), 1);
    assert_eq!(mocked.s3.total(), 1);
    assert_eq!(mocked.dynamodb.of("GetItem"), 1);
    assert_eq!(mocked.dynamodb.of("TransactWriteItems"), 1);
    assert_eq!(
        mocked.dynamodb.total(),
        2,
        "{:?}",
        mocked.dynamodb.snapshot()
    );
}

#[tokio::test]
async fn requests_refused_by_validation_send_nothing() {
    let mocked = MockedApi::new().await;
    let id = mocked.available[0];
    let too_many: Vec<String> = (0..101)
        .map(|_| presign_gate::domain::FileId::new_random().to_string())
        .collect();
    let refused = [
        (
            "POST",
            "/uploads".to_owned(),
            Some(
                json!({ "filename": "x.exe", "contentType": "application/x-msdownload", "size": 1 }),
            ),
            (400, "content_type_not_allowed"),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(json!({ "filename": "a.png", "contentType": "image/png", "size": 0 })),
            (400, "invalid_request"),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(json!({ "filename": "", "contentType": "image/png", "size": 1 })),
            (400, "invalid_request"),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(
                json!({ "filename": "a.png", "contentType": "image/png", "size": 1, "sha256": "short" }),
            ),
            (400, "invalid_request"),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(json!({ "filename": "a.png", "contentType": "image/png", "size": 1_u64 << 40 })),
            (413, "too_large"),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(
                json!({ "filename": "a.png", "contentType": "image/png", "size": 1, "expiresIn": 0 }),
            ),
            (400, "invalid_request"),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(json!("not an object")),
            (400, "invalid_request"),
        ),
        (
            "GET",
            "/files/not-a-uuid/download-url".to_owned(),
            None,
            (404, "not_found"),
        ),
        (
            "GET",
            format!("/files/{id}/download-url?expiresIn=0"),
            None,
            (400, "invalid_request"),
        ),
        (
            "GET",
            format!("/files/{id}/download-url?expiresIn=100000"),
            None,
            (400, "invalid_request"),
        ),
        (
            "GET",
            format!("/files/{id}/download-url?disposition=sideways"),
            None,
            (400, "invalid_request"),
        ),
        (
            "POST",
            "/files/download-urls".to_owned(),
            Some(json!({ "ids": [] })),
            (400, "invalid_request"),
        ),
        (
            "POST",
            "/files/download-urls".to_owned(),
            Some(json!({ "ids": too_many })),
            (400, "invalid_request"),
        ),
        (
            "POST",
            "/files/download-urls".to_owned(),
            Some(json!({ "ids": [id.to_string()], "expiresIn": 0 })),
            (400, "invalid_request"),
        ),
        (
            "GET",
            "/files?limit=0".to_owned(),
            None,
            (400, "invalid_request"),
        ),
        (
            "GET",
            "/files?nextToken=%%%".to_owned(),
            None,
            (400, "invalid_request"),
        ),
        (
            "PUT",
            "/uploads".to_owned(),
            None,
            (405, "method_not_allowed"),
        ),
        ("GET", "/nowhere".to_owned(), None, (404, "not_found")),
    ];
    for (method, path, body, (expected_status, expected_code)) in refused {
        let (status, answer) = mocked.call(request(method, &path, body.clone())).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (expected_status, Some(expected_code)),
            "{method} {path} {body:?}: {answer}"
        );
        assert_eq!(
            mocked.dynamodb.total(),
            0,
            "{method} {path} {body:?} reached DynamoDB: {:?}",
            mocked.dynamodb.snapshot()
        );
        assert_eq!(mocked.s3.total(), 0, "{method} {path} {body:?} reached S3");
    }
}

/// Every ownership read is strongly consistent (`ConsistentRead`, as sent on the wire): a record
/// just written is seen and one just deleted is not, whichever route reads it.
#[tokio::test]
async fn every_ownership_read_is_strongly_consistent() {
    let mocked = MockedApi::new().await;
    let id = mocked.available[0];
    let ids: Vec<String> = mocked.available.iter().map(ToString::to_string).collect();
    let requests = [
        request("GET", &format!("/files/{id}/download-url"), None),
        request("GET", &format!("/files/{id}"), None),
        request("POST", "/files/download-urls", Some(json!({ "ids": ids }))),
        request("GET", "/files", None),
        request("GET", "/usage", None),
        request("POST", "/uploads", Some(reservation())),
        request("POST", &format!("/files/{}/complete", mocked.pending), None),
        request("DELETE", &format!("/files/{id}"), None),
    ];
    for request in requests {
        let (status, body) = mocked.call(request).await;
        assert!((200..300).contains(&status), "{status} {body}");
    }
    let reads = mocked.reads.all();
    for operation in ["GetItem", "BatchGetItem", "Query"] {
        assert!(
            reads.iter().any(|read| read.operation == operation),
            "no {operation} among {reads:?}"
        );
    }
    let eventual: Vec<&Read> = reads
        .iter()
        .filter(|read| read.consistent != Some(true))
        .collect();
    assert!(
        eventual.is_empty(),
        "reads without ConsistentRead: {eventual:?}"
    );
}

/// README, "GET /files": a page is in id order, 50 files unless `limit` says otherwise, and the
/// store is asked for exactly that many.
#[tokio::test]
async fn listings_are_in_id_order_with_a_default_page_of_50() {
    let mocked = MockedApi::new().await;
    let mut all: Vec<String> = mocked.available.iter().map(ToString::to_string).collect();
    all.push(mocked.pending.to_string());
    all.push(mocked.multipart.to_string());
    all.sort();
    let listed = |body: &serde_json::Value| -> Vec<String> {
        body["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|file| file["id"].as_str().expect("id").to_owned())
            .collect()
    };

    let (status, body) = mocked.call(request("GET", "/files", None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(listed(&body), all, "every file, in id order");
    assert_eq!(body["nextToken"], json!(null));

    let (status, page) = mocked.call(request("GET", "/files?limit=4", None)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(listed(&page), all[..4]);
    assert!(page["nextToken"].is_string(), "{page}");

    let limits: Vec<Option<i32>> = mocked
        .reads
        .all()
        .iter()
        .filter(|read| read.operation == "Query")
        .map(|read| read.limit)
        .collect();
    assert_eq!(limits, [Some(50), Some(4)]);
}

/// A batch answers only for the caller's own records, even when the store hands back another
/// owner's record for an id asked for: no URL for it, and the same `not_found` as a missing id.
#[tokio::test]
async fn a_batch_drops_records_of_other_owners_whatever_the_store_returns() {
    let mocked = MockedApi::with_quirks(Quirks {
        batch_ignores_owner: true,
        ..Quirks::default()
    })
    .await;
    let own = mocked.available[0].to_string();
    let foreign = mocked.foreign.to_string();
    let (status, body) = mocked
        .call(request(
            "POST",
            "/files/download-urls",
            Some(json!({ "ids": [own, foreign] })),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let urls = body["urls"].as_object().expect("urls");
    assert_eq!(urls.keys().collect::<Vec<_>>(), [&own], "{body}");
    assert_eq!(body["errors"], json!({ foreign: { "code": "not_found" } }));
    assert!(!body.to_string().contains("mallory"), "{body}");
}

/// BatchGetItem may leave keys unprocessed (throttling): they are asked for again, and when the
/// retry answers, the batch is whole.
#[tokio::test]
async fn unprocessed_batch_keys_are_read_again_and_answered() {
    let mocked = MockedApi::with_quirks(Quirks {
        batch_unprocessed_once: true,
        ..Quirks::default()
    })
    .await;
    let ids: Vec<String> = mocked.available.iter().map(ToString::to_string).collect();
    let (status, body) = mocked
        .call(request(
            "POST",
            "/files/download-urls",
            Some(json!({ "ids": ids })),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut answered: Vec<&String> = body["urls"].as_object().expect("urls").keys().collect();
    answered.sort();
    let mut expected: Vec<&String> = ids.iter().collect();
    expected.sort();
    assert_eq!(answered, expected, "{body}");
    assert_eq!(body["errors"], json!({}));
    assert_eq!(
        mocked.dynamodb.of("BatchGetItem"),
        2,
        "the first call left keys unprocessed, the second read them"
    );
}
