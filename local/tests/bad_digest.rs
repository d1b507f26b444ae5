//! A PUT whose bytes fail their checksum stores nothing, so the same presigned URL can be used
//! again with the right bytes, as on S3 (a failed PutObject leaves no object; "PutObject",
//! Amazon S3 API Reference: BadDigest, "The Content-MD5 or checksum value that you specified did
//! not match what the server received"). s3s-fs 0.14.1 alone keeps the bad bytes, and the retry
//! then gets 412 from `If-None-Match: *`.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use support::{BUCKET, Options, Stack, put, sha256_base64};

#[tokio::test]
async fn a_bad_digest_put_leaves_nothing_and_the_url_works_again_with_the_right_bytes() {
    let stack = Stack::start(Options::default()).await;
    let good = b"the declared bytes";
    let bad = b"other bytes, same ";
    assert_eq!(good.len(), bad.len());
    let key = "users/alice/new-dir/file";
    let (url, headers) = stack
        .presign_put(key, "text/plain", good.len(), Some(&sha256_base64(good)))
        .await;

    let refused = put(&url, &headers, &[], bad).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("BadDigest"));
    assert_eq!(stack.stored(key).await, None);
    // Not even the directory the key would have made is left behind.
    assert!(
        !stack
            .data
            .path()
            .join("s3")
            .join(BUCKET)
            .join("users")
            .exists()
    );

    let accepted = put(&url, &headers, &[], good).await;
    assert_eq!(accepted.status(), 200, "{:?}", accepted.text().await);
    assert_eq!(stack.stored(key).await.as_deref(), Some(&good[..]));

    // Now the object exists, `If-None-Match: *` refuses the URL, as on S3.
    let again = put(&url, &headers, &[], good).await;
    assert_eq!(again.status(), 412);
}

#[tokio::test]
async fn a_bad_digest_overwrite_keeps_the_previous_object() {
    let stack = Stack::start(Options::default()).await;
    let key = "users/bob/kept";
    stack.put_object(key, b"previous").await;
    let refused = stack
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_sha256(sha256_base64(b"declared"))
        .body(ByteStream::from_static(b"received"))
        .send()
        .await;
    let error = refused.expect_err("the checksum does not match");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(stack.stored(key).await.as_deref(), Some(&b"previous"[..]));
}

#[tokio::test]
async fn a_part_whose_checksum_fails_is_refused_and_the_part_can_be_sent_again() {
    let stack = Stack::start(Options::default()).await;
    let s3 = stack.s3();
    let key = "users/carol/parts";
    let upload_id = stack.create_upload(key).await;
    let send_part = |body: &'static [u8], declared: &'static [u8]| {
        s3.upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .part_number(1)
            .checksum_sha256(sha256_base64(declared))
            .body(ByteStream::from_static(body))
            .send()
    };
    let refused = send_part(b"received", b"declared").await;
    let error = refused.expect_err("the part's checksum does not match");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert!(format!("{error:?}").contains("BadDigest"), "{error:?}");

    let part = send_part(b"declared", b"declared")
        .await
        .expect("the right part");
    stack.complete_upload(key, &upload_id, part.e_tag()).await;
    assert_eq!(stack.stored(key).await.as_deref(), Some(&b"declared"[..]));
}
