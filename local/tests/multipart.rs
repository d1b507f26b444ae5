//! Multipart uploads through local-aws as a browser and the API make them: presigned UploadPart
//! from an allowed origin (CORS, the ETag exposed), ListParts in order with ETags and pages,
//! NoSuchUpload once an upload is gone, and CompleteMultipartUpload checked whole before anything
//! is assembled ("UploadPart", "ListParts", "CompleteMultipartUpload", Amazon S3 API Reference).

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use reqwest::{Method, StatusCode};
use support::{BUCKET, Options, Recorder, Stack, http, put, sha256_base64};

const MIB: usize = 1024 * 1024;

async fn upload_part(
    stack: &Stack,
    key: &str,
    upload_id: &str,
    number: i32,
    body: Vec<u8>,
) -> String {
    stack
        .s3()
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("UploadPart")
        .e_tag()
        .expect("ETag")
        .to_owned()
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(number, e_tag)| {
                    CompletedPart::builder()
                        .part_number(*number)
                        .e_tag(*e_tag)
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// Asserts that S3 refused the request with `status` and the error `code`.
fn assert_refused<T: std::fmt::Debug, E: std::fmt::Debug>(
    result: Result<T, aws_sdk_s3::error::SdkError<E>>,
    status: u16,
    code: &str,
) {
    let error = result.expect_err(code);
    let debug = format!("{error:?}");
    assert_eq!(
        error.raw_response().map(|r| r.status().as_u16()),
        Some(status),
        "{debug}"
    );
    assert!(
        debug.contains(&format!("<Code>{code}</Code>")),
        "{code}: {debug}"
    );
}

#[tokio::test]
async fn a_browser_sends_a_presigned_part_from_the_demo_origin_and_reads_its_etag() {
    let stack = Stack::start(Options::default()).await;
    let origin = stack.demo_origin();
    let key = "users/alice/big";
    let upload_id = stack.create_upload(key).await;
    let body = b"a part from a browser";
    let (url, headers) = stack
        .presign_part(key, &upload_id, 1, body.len(), Some(&sha256_base64(body)))
        .await;

    // The browser's preflight for exactly the headers the part URL signed.
    let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["x-amz-checksum-sha256"],
        "what a part URL makes a browser send"
    );
    let preflight = http()
        .request(Method::OPTIONS, &url)
        .header("origin", &origin)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", names.join(","))
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), StatusCode::OK);

    let answer = put(&url, &headers, &[("origin", &origin)], body).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("access-control-allow-origin"), Some(origin.as_str()));
    let exposed = header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.split(',').any(|h| h.trim() == "etag"), "{exposed}");
    let e_tag = header("etag").expect("the part's ETag").to_owned();

    let listed = stack
        .s3()
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .expect("ListParts");
    assert_eq!(listed.parts()[0].e_tag(), Some(e_tag.as_str()));
    assert_eq!(listed.parts()[0].size(), Some(body.len() as i64));
    // S3 lists the checksum a part was uploaded with, and completing with another is refused.
    let sha256 = sha256_base64(body);
    assert_eq!(listed.parts()[0].checksum_sha256(), Some(sha256.as_str()));
    let complete = |checksum: String| {
        stack
            .s3()
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(
                        CompletedPart::builder()
                            .part_number(1)
                            .e_tag(&e_tag)
                            .checksum_sha256(checksum)
                            .build(),
                    )
                    .build(),
            )
            .send()
    };
    assert_refused(complete(sha256_base64(b"other")).await, 400, "InvalidPart");
    complete(sha256)
        .await
        .expect("completed with the part's checksum");
    assert_eq!(stack.stored(key).await.as_deref(), Some(&body[..]));
}

#[tokio::test]
async fn list_parts_answers_in_order_with_etags_one_page_at_a_time() {
    let stack = Stack::start(Options::default()).await;
    let key = "users/bob/listed";
    let upload_id = stack.create_upload(key).await;
    let mut e_tags = Vec::new();
    for number in [3, 1, 2] {
        let e_tag = upload_part(&stack, key, &upload_id, number, vec![number as u8; 10]).await;
        e_tags.push((number, e_tag));
    }
    e_tags.sort();

    let list = |marker: Option<i32>, max: Option<i32>| {
        stack
            .s3()
            .list_parts()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .set_part_number_marker(marker.map(|m| m.to_string()))
            .set_max_parts(max)
            .send()
    };
    let all = list(None, None).await.expect("ListParts");
    let got: Vec<(i32, String)> = all
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.e_tag().unwrap().to_owned()))
        .collect();
    let expected: Vec<(i32, String)> = e_tags.clone();
    assert_eq!(got, expected);
    assert_eq!(all.is_truncated(), Some(false));

    let first = list(None, Some(2)).await.expect("first page");
    let numbers: Vec<i32> = first
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(first.is_truncated(), Some(true));
    assert_eq!(first.next_part_number_marker(), Some("2"));
    let second = list(Some(2), Some(2)).await.expect("second page");
    let numbers: Vec<i32> = second
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(numbers, [3]);
    assert_eq!(second.is_truncated(), Some(false));
}

#[tokio::test]
async fn an_aborted_upload_is_no_such_upload_for_list_part_and_complete() {
    let stack = Stack::start(Options::default()).await;
    let s3 = stack.s3();
    let key = "users/carol/aborted";
    let upload_id = stack.create_upload(key).await;
    let e_tag = upload_part(&stack, key, &upload_id, 1, b"stored".to_vec()).await;
    s3.abort_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .expect("AbortMultipartUpload");

    let listed = s3
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await;
    assert_refused(listed, 404, "NoSuchUpload");
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .part_number(2)
        .body(ByteStream::from_static(b"late"))
        .send()
        .await;
    assert_refused(part, 404, "NoSuchUpload");
    let complete = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &e_tag)]))
        .send()
        .await;
    assert_refused(complete, 404, "NoSuchUpload");
    assert_eq!(stack.stored(key).await, None);
}

#[tokio::test]
async fn a_refused_completion_keeps_the_upload_and_a_good_one_is_reported_with_its_size() {
    let mut function = Recorder::function(0).await;
    let stack = Stack::start(Options {
        events: Some(function.invoke_url()),
        ..Options::default()
    })
    .await;
    let s3 = stack.s3();
    let key = "users/dave/assembled";
    let upload_id = stack.create_upload(key).await;
    let first = vec![1u8; 5 * MIB];
    let e_tag_1 = upload_part(&stack, key, &upload_id, 1, first.clone()).await;
    let small = upload_part(&stack, key, &upload_id, 3, b"tail".to_vec()).await;
    let complete = |parts: CompletedMultipartUpload| {
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(parts)
            .send()
    };

    // Part 2 was never sent; then a wrong ETag; then out of order; then a small middle part.
    for (parts, code) in [
        (completed(&[(1, &e_tag_1), (2, &small)]), "InvalidPart"),
        (completed(&[(1, "\"0123\""), (3, &small)]), "InvalidPart"),
        (completed(&[(3, &small), (1, &e_tag_1)]), "InvalidPartOrder"),
    ] {
        assert_refused(complete(parts).await, 400, code);
    }
    let tiny = upload_part(&stack, key, &upload_id, 2, b"tiny".to_vec()).await;
    let refused = complete(completed(&[(1, &e_tag_1), (2, &tiny), (3, &small)])).await;
    assert_refused(refused, 400, "EntityTooSmall");
    assert_eq!(stack.stored(key).await, None, "nothing was assembled");

    // The upload and its parts are as they were: sending part 2 again completes it.
    let second = vec![2u8; 5 * MIB];
    let e_tag_2 = upload_part(&stack, key, &upload_id, 2, second.clone()).await;
    let done = complete(completed(&[(1, &e_tag_1), (2, &e_tag_2), (3, &small)]))
        .await
        .expect("complete");
    let e_tag = done.e_tag().expect("ETag").trim_matches('"').to_owned();
    assert!(e_tag.ends_with("-3"), "S3's multipart ETag: {e_tag}");
    let stored = stack.stored(key).await.expect("the object");
    assert_eq!(stored.len(), 10 * MIB + 4);
    assert_eq!(&stored[..5 * MIB], &first[..]);

    let record = function.next_record().await;
    assert_eq!(record["eventName"], "ObjectCreated:CompleteMultipartUpload");
    assert_eq!(record["s3"]["object"]["size"], 10 * MIB + 4);
    assert_eq!(record["s3"]["object"]["eTag"], e_tag);
}

/// ListMultipartUploads as S3 answers it (Amazon S3 API Reference, ListMultipartUploads), which
/// s3s-fs 0.14.1 does not implement: only the uploads in progress under the prefix, in key order
/// and for one key in upload-id order, paged with `max-uploads`, `key-marker` and
/// `upload-id-marker`, with `IsTruncated`, the next markers and each upload's `Initiated`; an
/// upload completed or aborted is no longer listed.
#[tokio::test]
async fn multipart_uploads_are_listed_by_prefix_and_paged_with_both_markers() {
    let stack = Stack::start(Options::default()).await;
    let before = aws_sdk_s3::primitives::DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            .try_into()
            .expect("a date in range"),
    );
    let mut twice = [
        stack.create_upload("users/alice/a").await,
        stack.create_upload("users/alice/a").await,
    ];
    twice.sort();
    let b = stack.create_upload("users/bob/b").await;
    let outside = stack.create_upload("elsewhere/x").await;
    let done = stack.create_upload("users/carol/c").await;
    let e_tag = upload_part(&stack, "users/carol/c", &done, 1, b"c".to_vec()).await;
    stack
        .complete_upload("users/carol/c", &done, Some(&e_tag))
        .await;
    let aborted = stack.create_upload("users/dave/d").await;
    stack
        .s3()
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("users/dave/d")
        .upload_id(&aborted)
        .send()
        .await
        .expect("AbortMultipartUpload");

    let list = |key_marker: Option<&str>, id_marker: Option<&str>, max: Option<i32>| {
        stack
            .s3()
            .list_multipart_uploads()
            .bucket(BUCKET)
            .prefix("users/")
            .set_key_marker(key_marker.map(str::to_owned))
            .set_upload_id_marker(id_marker.map(str::to_owned))
            .set_max_uploads(max)
            .send()
    };
    let names =
        |output: &aws_sdk_s3::operation::list_multipart_uploads::ListMultipartUploadsOutput| {
            output
                .uploads()
                .iter()
                .map(|u| {
                    (
                        u.key().unwrap().to_owned(),
                        u.upload_id().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        };
    let pair = |key: &str, id: &str| (key.to_owned(), id.to_owned());

    // Everything at once (the default page is 1,000): outside users/, completed and aborted
    // uploads are not there.
    let all = list(None, None, None).await.expect("ListMultipartUploads");
    assert_eq!(
        names(&all),
        [
            pair("users/alice/a", &twice[0]),
            pair("users/alice/a", &twice[1]),
            pair("users/bob/b", &b),
        ]
    );
    assert_eq!(all.is_truncated(), Some(false));
    for upload in all.uploads() {
        assert!(upload.initiated().expect("Initiated").secs() >= before.secs());
    }

    // A page of one, then on from its markers: the second upload of the same key comes next.
    let first = list(None, None, Some(1)).await.expect("first page");
    assert_eq!(names(&first), [pair("users/alice/a", &twice[0])]);
    assert_eq!(first.is_truncated(), Some(true));
    assert_eq!(first.next_key_marker(), Some("users/alice/a"));
    assert_eq!(first.next_upload_id_marker(), Some(twice[0].as_str()));
    let second = list(Some("users/alice/a"), Some(&twice[0]), Some(1))
        .await
        .expect("second page");
    assert_eq!(names(&second), [pair("users/alice/a", &twice[1])]);
    // A key marker alone skips every upload of that key.
    let after_key = list(Some("users/alice/a"), None, None)
        .await
        .expect("after a key");
    assert_eq!(names(&after_key), [pair("users/bob/b", &b)]);
    assert_eq!(after_key.is_truncated(), Some(false));

    // The upload outside users/ is listed under its own prefix.
    let elsewhere = stack
        .s3()
        .list_multipart_uploads()
        .bucket(BUCKET)
        .prefix("elsewhere/")
        .send()
        .await
        .expect("ListMultipartUploads elsewhere/");
    assert_eq!(names(&elsewhere), [pair("elsewhere/x", &outside)]);
}
