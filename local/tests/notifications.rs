//! S3 event notifications: what the deployed bucket sends the events function, for every write
//! and removal under the template's prefix, with Lambda's asynchronous retries.
//! ("Event message structure", Amazon S3 User Guide, notification-content-structure.html;
//! "How Lambda handles errors and retries with asynchronous invocation", Lambda Developer Guide.)

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use serde_json::Value;
use support::{BUCKET, Options, Recorder, Stack, put, sha256_base64};

async fn stack_with(function: &Recorder) -> Stack {
    Stack::start(Options {
        events: Some(function.invoke_url()),
        ..Options::default()
    })
    .await
}

fn assert_s3_record(record: &Value, event_name: &str, encoded_key: &str) {
    assert_eq!(record["eventVersion"], "2.1", "{record}");
    assert_eq!(record["eventSource"], "aws:s3");
    assert_eq!(record["eventName"], event_name);
    assert_eq!(record["s3"]["bucket"]["name"], BUCKET);
    assert_eq!(
        record["s3"]["bucket"]["arn"],
        format!("arn:aws:s3:::{BUCKET}")
    );
    assert_eq!(record["s3"]["object"]["key"], encoded_key);
    let sequencer = record["s3"]["object"]["sequencer"]
        .as_str()
        .expect("sequencer");
    assert!(
        sequencer.chars().all(|c| c.is_ascii_hexdigit()),
        "{sequencer}"
    );
}

#[tokio::test]
async fn a_presigned_put_is_reported_as_object_created_put_with_size_and_etag() {
    let mut function = Recorder::function(0).await;
    let stack = stack_with(&function).await;
    let body = b"hello, events";
    let key = "users/alice/a b+c.txt";
    let (url, headers) = stack
        .presign_put(key, "text/plain", body.len(), Some(&sha256_base64(body)))
        .await;
    let answer = put(&url, &headers, &[], body).await;
    assert_eq!(answer.status(), 200);
    let e_tag = answer.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_owned();

    let delivery = function.next().await;
    assert_eq!(delivery.path, "/2015-03-31/functions/events/invocations");
    assert_eq!(delivery.headers["content-type"], "application/json");
    let record = delivery.json()["Records"][0].clone();
    // S3 URL-encodes the key, a space as `+` and a `+` as `%2B`.
    assert_s3_record(&record, "ObjectCreated:Put", "users/alice/a+b%2Bc.txt");
    assert_eq!(record["s3"]["object"]["size"], body.len());
    assert_eq!(record["s3"]["object"]["eTag"], e_tag);
}

#[tokio::test]
async fn multipart_copy_and_both_deletes_are_reported_and_keys_outside_the_prefix_are_not() {
    let mut function = Recorder::function(0).await;
    let stack = stack_with(&function).await;
    let s3 = stack.s3();

    // Outside `users/`: the template's filters select nothing, so nothing is sent for it.
    stack.put_object("elsewhere/x", b"x").await;

    let key = "users/bob/multi";
    let upload_id = stack.create_upload(key).await;
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"one part"))
        .send()
        .await
        .expect("upload part");
    let e_tag = stack.complete_upload(key, &upload_id, part.e_tag()).await;
    let record = function.next_record().await;
    assert_s3_record(&record, "ObjectCreated:CompleteMultipartUpload", key);
    assert_eq!(record["s3"]["object"]["size"], 8);
    assert_eq!(record["s3"]["object"]["eTag"], e_tag.trim_matches('"'));

    s3.copy_object()
        .bucket(BUCKET)
        .key("users/bob/copy")
        .copy_source(format!("{BUCKET}/{key}"))
        .send()
        .await
        .expect("copy");
    let record = function.next_record().await;
    assert_s3_record(&record, "ObjectCreated:Copy", "users/bob/copy");
    assert_eq!(record["s3"]["object"]["size"], 8);

    // The deployed bucket is versioned (the template says so): a plain delete adds a delete
    // marker, which S3 reports as ObjectRemoved:DeleteMarkerCreated, with no size or ETag.
    s3.delete_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("delete");
    let record = function.next_record().await;
    assert_s3_record(&record, "ObjectRemoved:DeleteMarkerCreated", key);
    assert!(record["s3"]["object"].get("size").is_none(), "{record}");
    assert!(record["s3"]["object"].get("eTag").is_none(), "{record}");

    s3.delete_objects()
        .bucket(BUCKET)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("users/bob/copy")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("delete objects");
    let record = function.next_record().await;
    assert_s3_record(
        &record,
        "ObjectRemoved:DeleteMarkerCreated",
        "users/bob/copy",
    );

    // Every event so far was under `users/`: the object outside it was never reported.
    assert!(function.received.try_recv().is_err());
}

#[tokio::test]
async fn a_function_error_is_retried_twice_with_the_same_event() {
    // Fails the first two invocations, handles the third: Lambda's two retries deliver it.
    let mut function = Recorder::function(2).await;
    let stack = stack_with(&function).await;
    stack.put_object("users/carol/retried", b"abc").await;
    let first = function.next().await.json();
    let second = function.next().await.json();
    let third = function.next().await.json();
    assert_eq!(first, second);
    assert_eq!(second, third);
    assert_s3_record(
        &first["Records"][0],
        "ObjectCreated:Put",
        "users/carol/retried",
    );
}

#[tokio::test]
async fn an_unreachable_function_is_retried() {
    // The first two invocations find their connection closed without an answer.
    let mut function = Recorder::unreachable_function(2).await;
    let stack = stack_with(&function).await;
    stack.put_object("users/dave/late", b"abc").await;
    let record = function.next_record().await;
    assert_s3_record(&record, "ObjectCreated:Put", "users/dave/late");
}

#[tokio::test]
async fn without_an_events_url_nothing_is_sent_and_writes_still_succeed() {
    let stack = Stack::start(Options::default()).await;
    stack.put_object("users/erin/quiet", b"abc").await;
    assert_eq!(
        stack.stored("users/erin/quiet").await.as_deref(),
        Some(&b"abc"[..])
    );
}

/// The deployed bucket is versioned: every write reports a version id, HeadObject reports the
/// current one, and a DeleteObject that names it removes the object for good, which S3 reports as
/// ObjectRemoved:Delete; a version that is not there deletes nothing ("Deleting object versions
/// from a versioning-enabled bucket", Amazon S3 User Guide).
#[tokio::test]
async fn objects_have_versions_and_a_delete_that_names_one_removes_it_for_good() {
    let mut function = Recorder::function(0).await;
    let stack = stack_with(&function).await;
    let key = "users/alice/versioned";
    let put = stack
        .s3()
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from_static(b"v1"))
        .send()
        .await
        .expect("PutObject");
    let version = put.version_id().expect("a version id").to_owned();
    function.next().await;
    let head = stack
        .s3()
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("HeadObject");
    assert_eq!(head.version_id(), Some(version.as_str()));
    let other = stack
        .s3()
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .version_id("not-this-one")
        .send()
        .await
        .expect_err("another version");
    assert_eq!(other.raw_response().map(|r| r.status().as_u16()), Some(404));

    let untouched = stack
        .s3()
        .delete_object()
        .bucket(BUCKET)
        .key(key)
        .version_id("not-this-one")
        .send()
        .await
        .expect("deleting a version that is not there");
    assert_eq!(untouched.version_id(), Some("not-this-one"));
    assert_eq!(stack.stored(key).await.as_deref(), Some(&b"v1"[..]));

    stack
        .s3()
        .delete_object()
        .bucket(BUCKET)
        .key(key)
        .version_id(&version)
        .send()
        .await
        .expect("DeleteObject of the version");
    assert_eq!(stack.stored(key).await, None);
    let record = function.next_record().await;
    assert_s3_record(&record, "ObjectRemoved:Delete", key);
}
