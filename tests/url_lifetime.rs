//! Issue 20, 2.2: a presigned URL works no longer than the credentials that signed it. Signed
//! with temporary credentials (a Lambda function's execution role), it stops working when their
//! session ends, whatever `X-Amz-Expires` says, and S3 answers 403 `ExpiredToken` (Amazon S3 User
//! Guide, "Download and upload objects with presigned URLs", expiration time; AWS Knowledge
//! Center, "Why is my presigned URL for an Amazon S3 bucket expiring before the expiration time
//! that I specified?"). So every URL is signed for at most what its credentials have left, and
//! its `expiresAt` says so.
//!
//! The real S3 adapter signs (locally: presigning makes no request), over the in-memory store.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use presign_gate::aws;
use presign_gate::bucket::S3Bucket;
use presign_gate::domain::{
    ExpiryPolicy, FileId, FileRecord, FileStatus, OwnerId, UploadPolicy, UploadRequest,
};
use presign_gate::http::Api;
use presign_gate::service::FileService;
use presign_gate_test_support::fakes::FakeStore;
use presign_gate_test_support::{Answer, TestApi};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const MIB: u64 = 1024 * 1024;

fn upload_policy() -> UploadPolicy {
    UploadPolicy::new(["text/plain"], 1 << 40)
        .unwrap()
        .with_multipart_threshold(100 * MIB)
        .unwrap()
}

/// The API over S3 credentials that expire `expiry` from now (`None`: never, as far as the
/// SDK knows), with URL lifetimes of 300 s by default and up to 900 s.
async fn api_signing_with(expiry: Option<Duration>) -> (TestApi<FakeStore, S3Bucket>, FakeStore) {
    let credentials = Credentials::new(
        "ASIAEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session-token".into()),
        expiry.map(|left| SystemTime::now() + left),
        "role session",
    );
    let provider = SharedCredentialsProvider::new(credentials);
    let sdk = aws::config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(provider.clone())
        .load()
        .await;
    let bucket = S3Bucket::new(aws::s3_client(&sdk, false), "files")
        .signing_with(sdk.credentials_provider());
    let store = FakeStore::default();
    let files = FileService::new(
        store.clone(),
        bucket,
        upload_policy(),
        ExpiryPolicy::new(300, 900).unwrap(),
    );
    (TestApi(Api::new(files, None)), store)
}

/// `X-Amz-Expires` of a URL.
fn x_amz_expires(url: &str) -> u64 {
    url.split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("X-Amz-Expires="))
        .expect("X-Amz-Expires")
        .parse()
        .unwrap()
}

/// The URL's `X-Amz-Expires` and its `expiresAt` as seconds from `before`, checking that they
/// agree (to the second the signing time was cut to).
fn lifetime_of(signed: &Value, before: OffsetDateTime) -> (u64, i64) {
    let url = signed["url"].as_str().expect("url");
    let expires_at =
        OffsetDateTime::parse(signed["expiresAt"].as_str().expect("expiresAt"), &Rfc3339).unwrap();
    (x_amz_expires(url), (expires_at - before).whole_seconds())
}

fn created(answer: &Answer) -> &Value {
    assert_eq!(answer.status.as_u16(), 201, "{answer:?}");
    &answer.body
}

/// Every kind of URL (a single PUT's, a download's, a part's), asked for the longest lifetime
/// allowed (900 s): `X-Amz-Expires` and `expiresAt` of each.
async fn lifetimes(api: &TestApi<FakeStore, S3Bucket>, store: &FakeStore) -> Vec<(u64, i64)> {
    let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut seen = Vec::new();

    let reserved = api
        .call(
            "POST",
            "/uploads",
            Some("alice"),
            Some(json!({"filename": "a.txt", "contentType": "text/plain", "size": 3, "expiresIn": 900})),
        )
        .await;
    let reserved = created(&reserved);
    seen.push(lifetime_of(&reserved["upload"], before));

    // The same file, confirmed: its download URL.
    let owner = OwnerId::parse("alice").unwrap();
    let id = FileId::parse(reserved["file"]["id"].as_str().unwrap()).unwrap();
    let mut record = store.record(&owner, id).expect("the reservation's record");
    record.status = FileStatus::Available;
    record.etag = Some("\"e\"".into());
    record.uploaded_at = Some(before);
    store.insert(record);
    let download = api
        .call(
            "GET",
            &format!("/files/{id}/download-url?expiresIn=900"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(download.status.as_u16(), 200, "{download:?}");
    seen.push(lifetime_of(&download.body, before));

    // A pending multipart reservation (its S3 upload id as CreateMultipartUpload gave it): a
    // part's URL.
    let request: UploadRequest = serde_json::from_value(
        json!({"filename": "big.txt", "contentType": "text/plain", "size": 6 * MIB, "multipart": true}),
    )
    .unwrap();
    let upload = upload_policy().check(request).unwrap();
    let multipart_id = FileId::new_random();
    let created_at = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let day = time::Duration::hours(24);
    store.insert(
        FileRecord::pending_multipart(
            owner,
            multipart_id,
            upload,
            created_at,
            created_at + day + day,
            "upload-1".into(),
            created_at + day,
        )
        .unwrap(),
    );
    let parts = api
        .call(
            "POST",
            &format!("/files/{multipart_id}/parts"),
            Some("alice"),
            Some(json!({"parts": [{"partNumber": 1}], "expiresIn": 900})),
        )
        .await;
    assert_eq!(parts.status.as_u16(), 200, "{parts:?}");
    seen.push(lifetime_of(&parts.body["parts"][0], before));
    seen
}

#[tokio::test]
async fn urls_signed_by_credentials_expiring_in_a_minute_live_at_most_that_minute() {
    let (api, store) = api_signing_with(Some(Duration::from_secs(60))).await;
    for (expires, until_expires_at) in lifetimes(&api, &store).await {
        assert!((1..=60).contains(&expires), "X-Amz-Expires {expires}");
        assert!(
            (1..=60).contains(&until_expires_at),
            "expiresAt {until_expires_at} s away"
        );
        // expiresAt is the signing time (a second or so after `before`) plus X-Amz-Expires.
        assert!(
            until_expires_at.abs_diff(expires as i64) <= 2,
            "{expires} against {until_expires_at}"
        );
    }
}

/// The same requests with credentials that outlive the asked lifetime: signed as asked. (So the
/// test above is the credentials' doing.)
#[tokio::test]
async fn credentials_that_outlive_the_lifetime_asked_sign_it_whole() {
    for expiry in [None, Some(Duration::from_secs(3600))] {
        let (api, store) = api_signing_with(expiry).await;
        for (expires, _) in lifetimes(&api, &store).await {
            assert_eq!(expires, 900, "{expiry:?}");
        }
    }
}

/// Credentials within seconds of their end sign nothing: a URL that would be dead on arrival is
/// a 503 to retry (by then the credentials are fresh), never a URL that S3 refuses.
#[tokio::test]
async fn credentials_about_to_expire_sign_no_url() {
    let (api, _) = api_signing_with(Some(Duration::from_secs(5))).await;
    let answer = api
        .call(
            "POST",
            "/uploads",
            Some("alice"),
            Some(json!({"filename": "a.txt", "contentType": "text/plain", "size": 3})),
        )
        .await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (503, "unavailable"),
        "{answer:?}"
    );
    assert!(!answer.body.to_string().contains("X-Amz-"), "{answer:?}");
}
