//! GuardDuty Malware Protection for S3, as local-aws plays it with the real template: every
//! object created under users/ of the stack's bucket is scanned, tagged
//! `GuardDutyMalwareScanStatus` as the scan role, and its result event reaches the events
//! function; the bucket policy then lets no presigned GET read an object not tagged clean, and
//! no one but the scan role tag one (GuardDuty User Guide, "Using tag-based access control (TBAC)
//! with Malware Protection for S3"; "Monitoring S3 object scans with Amazon EventBridge").

mod support;

use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging};
use serde_json::{Value, json};
use support::{Options, Recorder, Stack, browser_request, http, put};

/// The EICAR test file, assembled here so that no file of the repository is one.
fn eicar() -> Vec<u8> {
    let halves = [
        r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD",
        "-ANTIVIRUS-TEST-FILE!$H+H*",
    ];
    halves.concat().into_bytes()
}

struct Scanning {
    stack: Stack,
    function: Recorder,
    bucket: String,
}

impl Scanning {
    async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    async fn start_with(parameters: Vec<(&'static str, &'static str)>) -> Self {
        let function = Recorder::function(0).await;
        let stack = Stack::start(Options {
            events: Some(function.invoke_url()),
            parameters,
            ..Options::default()
        })
        .await;
        // The plan protects the template's bucket, not the harness's own.
        let bucket = stack.aws.names.bucket.clone();
        stack
            .s3()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create the stack's bucket");
        Self {
            stack,
            function,
            bucket,
        }
    }

    /// A presigned upload of the API's role, as the product signs one: URL and headers.
    async fn presign_put(&self, key: &str, length: usize) -> (String, Vec<(String, String)>) {
        let request = self
            .stack
            .s3_as("ApiFunctionRole")
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/octet-stream")
            .content_length(i64::try_from(length).expect("small"))
            .if_none_match("*")
            .presigned(five_minutes())
            .await
            .expect("presign");
        browser_request(&request)
    }

    /// Uploads `body` through a presigned URL of the API's role.
    async fn upload(&self, key: &str, body: &[u8]) {
        let (url, headers) = self.presign_put(key, body.len()).await;
        let answer = put(&url, &headers, &[], body).await;
        assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    }

    /// The next scan-result event the events function receives (S3's own notifications, which
    /// it receives too, passed over).
    async fn next_event(&mut self) -> Value {
        loop {
            let event = self.function.next().await.json();
            if event.get("Records").is_none() {
                assert_eq!(event["source"], "aws.guardduty", "{event}");
                return event;
            }
        }
    }

    async fn status_tag(&self, key: &str) -> Option<String> {
        let tagging = self
            .stack
            .s3()
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .expect("GetObjectTagging");
        tagging
            .tag_set()
            .iter()
            .find(|tag| tag.key() == "GuardDutyMalwareScanStatus")
            .map(|tag| tag.value().to_owned())
    }

    /// The status of a presigned GET of the API's role.
    async fn presigned_get(&self, key: &str) -> u16 {
        let request = self
            .stack
            .s3_as("ApiFunctionRole")
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(five_minutes())
            .await
            .expect("presign");
        let answer = http().get(request.uri()).send().await.expect("GET");
        answer.status().as_u16()
    }

    async fn faults(&self, plan: Value) {
        let answer = http()
            .post(format!("{}/__faults", self.stack.demo_origin()))
            .header("content-type", "application/json")
            .body(plan.to_string())
            .send()
            .await
            .expect("the demo server answers");
        assert_eq!(answer.status(), 204, "{:?}", answer.text().await);
    }
}

/// The HTTP status of an SDK call's error.
fn http_status<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    error
        .raw_response()
        .map(|response| response.status().as_u16())
}

fn five_minutes() -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(300)).expect("lifetime")
}

fn scan_result(event: &Value) -> (&str, &str) {
    let detail = &event["detail"];
    (
        detail["s3ObjectDetails"]["objectKey"]
            .as_str()
            .unwrap_or_default(),
        detail["scanResultDetails"]["scanResultStatus"]
            .as_str()
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn clean_and_infected_uploads_are_tagged_reported_and_only_clean_ones_downloadable() {
    let mut scanning = Scanning::start().await;
    let clean = "users/alice/clean report.txt";
    scanning.upload(clean, b"just a report").await;
    let event = scanning.next_event().await;
    assert_eq!(
        event["detail-type"],
        "GuardDuty Malware Protection Object Scan Result"
    );
    assert_eq!(event["account"], "123456789012");
    assert_eq!(event["region"], "us-east-1");
    assert_eq!(
        event["resources"],
        json!([format!(
            "arn:aws:guardduty:us-east-1:123456789012:malware-protection-plan/{}",
            local_aws::cfn::PLAN_ID
        )])
    );
    let object = &event["detail"]["s3ObjectDetails"];
    assert_eq!(object["bucketName"], scanning.bucket.as_str());
    assert_eq!(object["objectKey"], clean, "not URL-encoded");
    assert_eq!(event["detail"]["scanStatus"], "COMPLETED");
    assert_eq!(scan_result(&event).1, "NO_THREATS_FOUND");
    let head = scanning
        .stack
        .s3()
        .head_object()
        .bucket(&scanning.bucket)
        .key(clean)
        .send()
        .await
        .expect("HeadObject");
    assert_eq!(object["versionId"], head.version_id().expect("a version"));
    assert_eq!(
        object["eTag"],
        head.e_tag().expect("ETag").trim_matches('"')
    );
    assert_eq!(
        scanning.status_tag(clean).await.as_deref(),
        Some("NO_THREATS_FOUND")
    );
    assert_eq!(scanning.presigned_get(clean).await, 200);

    let infected = "users/alice/eicar.com";
    scanning.upload(infected, &eicar()).await;
    let event = scanning.next_event().await;
    assert_eq!(scan_result(&event), (infected, "THREATS_FOUND"));
    assert_eq!(
        event["detail"]["scanResultDetails"]["threats"][0]["name"],
        "EICAR-Test-File (not a virus)"
    );
    assert_eq!(
        scanning.status_tag(infected).await.as_deref(),
        Some("THREATS_FOUND")
    );
    assert_eq!(scanning.presigned_get(infected).await, 403);
    // The events function's own reads are signed with headers: it can still look at the file.
    let read = scanning
        .stack
        .s3_as("EventsFunctionRole")
        .get_object()
        .bucket(&scanning.bucket)
        .key(infected)
        .send()
        .await
        .expect("a header-signed GetObject of the events role");
    assert_eq!(read.tag_count(), Some(1), "x-amz-tagging-count");

    // Outside users/ nothing is scanned: the next event is the next upload's under users/.
    scanning
        .stack
        .s3()
        .put_object()
        .bucket(&scanning.bucket)
        .key("elsewhere/x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("PutObject");
    scanning.upload("users/alice/after", b"after").await;
    assert_eq!(
        scan_result(&scanning.next_event().await).0,
        "users/alice/after"
    );
}

#[tokio::test]
async fn an_unscanned_object_cannot_be_downloaded_or_marked_clean_by_anyone_but_the_scanner() {
    let scanning = Scanning::start().await;
    // No scan before the test ends.
    scanning.faults(json!({ "scanDelayMs": 600_000 })).await;
    let key = "users/bob/pending";
    scanning.upload(key, b"not scanned yet").await;
    assert_eq!(scanning.status_tag(key).await, None);
    assert_eq!(scanning.presigned_get(key).await, 403, "untagged");

    let clean_tag = Tagging::builder()
        .tag_set(
            Tag::builder()
                .key("GuardDutyMalwareScanStatus")
                .value("NO_THREATS_FOUND")
                .build()
                .expect("tag"),
        )
        .build()
        .expect("tagging");
    let api = scanning.stack.s3_as("ApiFunctionRole");
    let refused = api
        .put_object_tagging()
        .bucket(&scanning.bucket)
        .key(key)
        .tagging(clean_tag.clone())
        .send()
        .await
        .expect_err("the API role may not tag");
    assert_eq!(http_status(&refused), Some(403));
    let refused = scanning
        .stack
        .s3()
        .put_object_tagging()
        .bucket(&scanning.bucket)
        .key(key)
        .tagging(clean_tag)
        .send()
        .await
        .expect_err("nor may the administrator");
    assert_eq!(http_status(&refused), Some(403));
    // A signed upload that carries its own tag is a PutObjectTagging too.
    let refused = api
        .put_object()
        .bucket(&scanning.bucket)
        .key("users/bob/self-tagged")
        .if_none_match("*")
        .tagging("GuardDutyMalwareScanStatus=NO_THREATS_FOUND")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("a tagged PutObject of the API role");
    assert_eq!(http_status(&refused), Some(403));
    assert_eq!(scanning.presigned_get(key).await, 403, "still untagged");

    // A presigned PUT with a tag header added: unsigned, so refused before any policy.
    let (url, headers) = scanning.presign_put("users/bob/added-tag", 1).await;
    let answer = put(
        &url,
        &headers,
        &[(
            "x-amz-tagging",
            "GuardDutyMalwareScanStatus=NO_THREATS_FOUND",
        )],
        b"x",
    )
    .await;
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await.expect("body").contains("not signed"));
}

#[tokio::test]
async fn forced_results_are_tagged_and_duplicated_or_lost_events_are_as_asked() {
    let mut scanning = Scanning::start().await;
    scanning
        .faults(json!({ "scans": [
            { "result": "FAILED" },
            { "result": "ACCESS_DENIED", "delivery": "twice" },
            { "delivery": "drop" },
        ]}))
        .await;
    scanning.upload("users/carol/one", b"1").await;
    let event = scanning.next_event().await;
    assert_eq!(scan_result(&event), ("users/carol/one", "FAILED"));
    assert_eq!(event["detail"]["scanStatus"], "FAILED");
    assert_eq!(
        scanning.status_tag("users/carol/one").await.as_deref(),
        Some("FAILED")
    );

    scanning.upload("users/carol/two", b"2").await;
    let first = scanning.next_event().await;
    let second = scanning.next_event().await;
    assert_eq!(scan_result(&first), ("users/carol/two", "ACCESS_DENIED"));
    assert_eq!(first["detail"]["scanStatus"], "SKIPPED");
    assert_eq!(first["detail"], second["detail"], "the same result twice");

    scanning.upload("users/carol/three", b"3").await;
    scanning.upload("users/carol/four", b"4").await;
    // Three's event is lost; its tag is still there.
    assert_eq!(
        scan_result(&scanning.next_event().await).0,
        "users/carol/four"
    );
    assert_eq!(
        scanning.status_tag("users/carol/three").await.as_deref(),
        Some("NO_THREATS_FOUND")
    );
}

#[tokio::test]
async fn with_scan_uploads_false_nothing_is_scanned_and_an_untagged_object_is_downloadable() {
    let mut scanning = Scanning::start_with(vec![("ScanUploads", "false")]).await;
    let key = "users/dave/plain";
    scanning.upload(key, &eicar()).await;
    // S3's own notification arrives; no scan result follows it.
    let record = scanning.function.next_record().await;
    assert_eq!(record["s3"]["object"]["key"], key);
    assert_eq!(scanning.status_tag(key).await, None);
    assert_eq!(scanning.presigned_get(key).await, 200);
    // No statement denies tagging any more; none allows it to the API's role either.
    let refused = scanning
        .stack
        .s3_as("ApiFunctionRole")
        .delete_object_tagging()
        .bucket(&scanning.bucket)
        .key(key)
        .send()
        .await
        .expect_err("the API role has no tagging permission");
    assert_eq!(http_status(&refused), Some(403));
    // The uploads after it: still no scan result, only S3's notifications.
    scanning.upload("users/dave/second", b"2").await;
    let next = scanning.function.next().await.json();
    assert!(next.get("Records").is_some(), "{next}");
}
