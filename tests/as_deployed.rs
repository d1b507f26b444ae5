//! Where S3 answers the deployed roles otherwise than a bare S3 server would, and the function
//! must handle S3's answer. The stand-ins authorize every request as IAM does (local/src/iam).
//!
//! - HeadObject on a missing key: the roles have no s3:ListBucket, so S3 answers 403, not 404
//!   (Amazon S3 API Reference, HeadObject, "Permissions").
//! - Unsigned headers: S3 stores `Content-Encoding`, `Content-Disposition`, `Content-Language`
//!   and `Expires` as the uploader sent them, whatever the URL signed (Amazon S3 API Reference,
//!   PutObject, request headers), so the uploads here add them through the real presigned URL.
//!   An `x-amz-*` header the URL did not sign (`x-amz-meta-*`, `x-amz-tagging`) is refused
//!   outright: "There were headers present in the request which were not signed" (Amazon S3
//!   User Guide, "Authenticating Requests: Using Query Parameters"). (`Cache-Control` is signed;
//!   `tests/api.rs` shows S3 refusing any other value.)

use presign_gate_test_support as support;

use lambda_http::http::StatusCode;
use presign_gate::s3_events::handle_s3_event;
use support::*;

/// HeadObject as the API function's role makes it.
async fn head_status(standins: &StandIns, key: &str) -> Option<u16> {
    match standins
        .s3_client_as(Role::Api)
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
    {
        Ok(_) => None,
        Err(err) => err.raw_response().map(|r| r.status().as_u16()),
    }
}

#[tokio::test]
async fn complete_before_the_upload_is_upload_missing_not_a_server_error() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    let id = file_id(&reservation);
    let key = format!("users/alice/{id}");
    assert_eq!(
        head_status(&standins, &key).await,
        Some(403),
        "the stand-in answers a missing key as S3 does without s3:ListBucket"
    );
    let admin = standins
        .s3_client()
        .head_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        admin.raw_response().map(|r| r.status().as_u16()),
        Some(404),
        "with s3:ListBucket (the administrator) a missing key is 404"
    );

    let early = api.complete("alice", &id).await;
    assert_eq!(
        (early.status, early.error_code()),
        (StatusCode::CONFLICT, "upload_missing"),
        "{early:?}"
    );

    // The same front passes the upload and the confirmation through.
    assert_eq!(upload(&reservation, b"abc").await.status(), 200);
    let confirmed = api.complete("alice", &id).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{confirmed:?}");
    assert_eq!(confirmed.body["file"]["status"], "available");
}

#[tokio::test]
async fn an_object_created_event_whose_object_is_gone_succeeds_without_retry() {
    let standins = StandIns::start().await;
    let api = standins.api();
    // A confirmed file deleted before its event is handled (its record is gone too).
    let deleted = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;
    let delete = api
        .call("DELETE", &format!("/files/{deleted}"), Some("alice"), None)
        .await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT, "{delete:?}");
    // A reservation whose object is not there (yet, or any more).
    let pending = file_id(&api.reserve("alice", "b.txt", "text/plain", b"abc").await);
    for key in [
        format!("users/alice/{deleted}"),
        format!("users/alice/{pending}"),
        "users/alice/a-stray-already-removed".to_owned(),
    ] {
        assert_eq!(head_status(&standins, &key).await, Some(403), "{key}");
        let event = s3_event("s3/object-created.json", &key);
        let handled = handle_s3_event(&standins.files(), event).await;
        assert!(
            handled.is_ok(),
            "{key}: an error would make Lambda retry and then park the event: {handled:?}"
        );
    }
    let still = api
        .call("GET", &format!("/files/{pending}"), Some("alice"), None)
        .await;
    assert_eq!(still.body["file"]["status"], "pending", "{still:?}");
}

#[tokio::test]
async fn an_upload_that_adds_unsigned_headers_is_rejected_and_deleted() {
    let standins = StandIns::start().await;
    let api = standins.api();
    for (header, value) in [
        ("content-encoding", "gzip"),
        ("content-disposition", "inline"),
        ("content-language", "de"),
        ("expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
    ] {
        let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
        let id = file_id(&reservation);
        let put = upload_with(&reservation, b"abc", &[(header, value)]).await;
        assert_eq!(
            put.status(),
            200,
            "{header}: S3 stores unsigned headers as sent"
        );
        let stored = standins
            .s3_client()
            .head_object()
            .bucket(BUCKET)
            .key(format!("users/alice/{id}"))
            .send()
            .await
            .expect("the object is there");
        let kept = match header {
            "content-encoding" => stored.content_encoding().map(str::to_owned),
            "content-disposition" => stored.content_disposition().map(str::to_owned),
            "content-language" => stored.content_language().map(str::to_owned),
            _ => stored.expires_string().map(str::to_owned),
        };
        assert!(kept.is_some(), "{header}: the stand-in kept it, as S3 does");

        let complete = api.complete("alice", &id).await;
        assert_eq!(
            (complete.status, complete.error_code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "upload_rejected"),
            "{header}: {complete:?}"
        );
        assert!(
            complete.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(header)),
            "{header}: {complete:?}"
        );
        assert_eq!(
            head_status(&standins, &format!("users/alice/{id}")).await,
            Some(403),
            "{header}: the object is deleted"
        );
    }
}

/// S3 refuses a presigned request that carries an `x-amz-*` header its signature does not cover
/// (`x-amz-content-sha256` excepted): "There were headers present in the request which were not
/// signed" (Amazon S3 User Guide, "Authenticating Requests: Using Query Parameters"). Without it,
/// an uploader could add metadata, or tag its own object (`x-amz-tagging`, which S3 would
/// authorize as the URL signer's `s3:PutObjectTagging`), through a URL that signed neither.
#[tokio::test]
async fn an_upload_url_refuses_every_amz_header_it_did_not_sign() {
    let standins = StandIns::start().await;
    let api = standins.api();
    for (header, value) in [
        ("x-amz-meta-note", "hello"),
        (
            "x-amz-tagging",
            "GuardDutyMalwareScanStatus=NO_THREATS_FOUND",
        ),
        ("x-amz-storage-class", "STANDARD_IA"),
    ] {
        let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
        let id = file_id(&reservation);
        let put = upload_with(&reservation, b"abc", &[(header, value)]).await;
        assert_eq!(put.status(), 403, "{header}");
        let body = put.text().await.unwrap();
        assert!(body.contains("AccessDenied"), "{header}: {body}");
        assert!(
            body.contains("headers present in the request which were not signed"),
            "{header}: {body}"
        );
        assert_eq!(
            head_status(&standins, &format!("users/alice/{id}")).await,
            Some(403),
            "{header}: nothing is stored"
        );
        // The same URL with exactly its headers still works.
        assert_eq!(upload(&reservation, b"abc").await.status(), 200, "{header}");
    }
}
