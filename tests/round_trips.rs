//! Round trips: how many requests each route sends to DynamoDB and S3, counted by an interceptor
//! on the real clients (answered by `aws-smithy-mocks`, so no network). A download URL costs one
//! read, a reservation one write, a batch one `BatchGetItem` whatever its size, and a request
//! that validation refuses costs nothing at all. No timings here: see `make bench` for those.

use presign_gate_test_support::mocked;

use mocked::{MockedApi, request, reservation};
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
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(json!({ "filename": "a.png", "contentType": "image/png", "size": 0 })),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(json!({ "filename": "", "contentType": "image/png", "size": 1 })),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(
                json!({ "filename": "a.png", "contentType": "image/png", "size": 1, "sha256": "short" }),
            ),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(json!({ "filename": "a.png", "contentType": "image/png", "size": 1_u64 << 40 })),
        ),
        (
            "POST",
            "/uploads".to_owned(),
            Some(
                json!({ "filename": "a.png", "contentType": "image/png", "size": 1, "expiresIn": 0 }),
            ),
        ),
        ("POST", "/uploads".to_owned(), Some(json!("not an object"))),
        ("GET", "/files/not-a-uuid/download-url".to_owned(), None),
        ("GET", format!("/files/{id}/download-url?expiresIn=0"), None),
        (
            "GET",
            format!("/files/{id}/download-url?expiresIn=100000"),
            None,
        ),
        (
            "GET",
            format!("/files/{id}/download-url?disposition=sideways"),
            None,
        ),
        (
            "POST",
            "/files/download-urls".to_owned(),
            Some(json!({ "ids": [] })),
        ),
        (
            "POST",
            "/files/download-urls".to_owned(),
            Some(json!({ "ids": too_many })),
        ),
        (
            "POST",
            "/files/download-urls".to_owned(),
            Some(json!({ "ids": [id.to_string()], "expiresIn": 0 })),
        ),
        ("GET", "/files?limit=0".to_owned(), None),
        ("GET", "/files?nextToken=%%%".to_owned(), None),
        ("PUT", "/uploads".to_owned(), None),
        ("GET", "/nowhere".to_owned(), None),
    ];
    for (method, path, body) in refused {
        let (status, answer) = mocked.call(request(method, &path, body.clone())).await;
        assert!(
            (400..500).contains(&status),
            "{method} {path} {body:?}: {status} {answer}"
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
