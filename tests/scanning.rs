//! Malware scanning (issue 22, section 1), on the stack as the template deploys it by default:
//! local-aws plays GuardDuty Malware Protection for S3 (it tags each new object under users/ as
//! GuardDuty's role and sends the scan result in GuardDuty's EventBridge JSON), the bucket policy
//! is enforced as written, and S3's notifications and the scan results reach the events
//! function's real handler (`support::events_function`).
//!
//! What GuardDuty does that the stand-in does not (a real engine, its size and archive limits,
//! EventBridge's own retries and dead-letter queue) is listed in README, "Malware scanning".

use presign_gate_test_support as support;

use std::time::Duration;

use lambda_http::http::StatusCode;
use presign_gate::deadline::Deadline;
use presign_gate::service::ReconcileLimits;
use serde_json::{Value, json};
use support::{
    Answer, BUCKET, Role, StandIns, TestApi, eicar, file_id, http_client, upload, upload_with,
};
use time::OffsetDateTime;

const ALICE: &str = "alice";

async fn file(api: &TestApi, id: &str) -> Value {
    let answer = api
        .call("GET", &format!("/files/{id}"), Some(ALICE), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["file"].clone()
}

/// The file once its status is no longer `from`, polled as a client would (bounded: the scan
/// waits the stand-in's delay, then one delivery).
async fn settled(api: &TestApi, id: &str, from: &str) -> Value {
    for _ in 0..200 {
        let file = file(api, id).await;
        if file["status"] != from {
            return file;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("file {id} still {from} after 10 s");
}

/// Reserves, uploads and completes `body` as alice: its id, and `complete`'s answer, which is
/// the file scanning, or (when the verdict came first) available or rejected.
async fn uploaded(api: &TestApi, body: &[u8]) -> (String, Answer) {
    let reservation = api.reserve(ALICE, "a.txt", "text/plain", body).await;
    let put = upload(&reservation, body).await;
    assert_eq!(put.status(), 200, "{:?}", put.text().await);
    let id = file_id(&reservation);
    let complete = api.complete(ALICE, &id).await;
    assert!(
        [StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY].contains(&complete.status),
        "{complete:?}"
    );
    (id, complete)
}

/// Whether an object is stored at `key`. local-aws keeps one version per key (as our keys have
/// in S3, local/src/versions.rs), so none there means no version left.
async fn stored(standins: &StandIns, key: &str) -> bool {
    standins
        .s3_client()
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .is_ok()
}

/// Whether the object at `key` is gone, waiting for it a little: a rejection writes the record
/// first and deletes the object second, so the status can be seen before the delete is done.
async fn gone(standins: &StandIns, key: &str) -> bool {
    for _ in 0..100 {
        if !stored(standins, key).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn scan_tag(standins: &StandIns, key: &str) -> Option<String> {
    let tagging = standins
        .s3_client()
        .get_object_tagging()
        .bucket(BUCKET)
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

fn key_of(id: &str) -> String {
    format!("users/{ALICE}/{id}")
}

/// A presigned GET of `key` signed by the API's role, as a bug in the function could sign one:
/// what S3 itself answers, whatever the record says.
async fn presigned_get_status(standins: &StandIns, key: &str) -> u16 {
    let request = standins
        .s3_client_as(Role::Api)
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(60))
                .expect("a lifetime"),
        )
        .await
        .expect("presign");
    let answer = http_client().get(request.uri()).send().await.expect("GET");
    answer.status().as_u16()
}

#[tokio::test]
async fn a_clean_upload_is_scanning_then_available_and_unreadable_until_scanned() {
    let standins = StandIns::start_scanning(1500).await;
    let api = standins.api();
    let body = b"hello, scanned world";
    let (id, completed) = uploaded(&api, body).await;
    assert_eq!(
        completed.body["file"]["status"], "scanning",
        "{completed:?}"
    );

    // While GuardDuty has not answered: the API refuses with the status, and S3 refuses a
    // presigned GET of the untagged object even if the function signed one.
    let refused = api.download_url(ALICE, &id, "").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error_code(), "not_ready");
    assert_eq!(refused.body["error"]["status"], "scanning");
    assert_eq!(presigned_get_status(&standins, &key_of(&id)).await, 403);
    // The functions' own header-signed reads still work (HeadObject of the confirmation).
    let head = standins
        .s3_client_as(Role::Events)
        .head_object()
        .bucket(BUCKET)
        .key(key_of(&id))
        .send()
        .await;
    assert!(head.is_ok(), "{head:?}");
    // A scanning file counts against the quota like an available one.
    let usage = api.call("GET", "/usage", Some(ALICE), None).await;
    assert_eq!(usage.body["bytes"], body.len());

    let file = settled(&api, &id, "scanning").await;
    assert_eq!(file["status"], "available", "{file}");
    assert_eq!(
        scan_tag(&standins, &key_of(&id)).await.as_deref(),
        Some("NO_THREATS_FOUND")
    );
    let download = api.download_url(ALICE, &id, "").await;
    assert_eq!(download.status, StatusCode::OK, "{download:?}");
    let url = download.body["url"].as_str().expect("a url");
    let got = http_client().get(url).send().await.expect("GET");
    assert_eq!(got.status(), 200);
    assert_eq!(&got.bytes().await.expect("body")[..], body);
    let usage = api.call("GET", "/usage", Some(ALICE), None).await;
    assert_eq!(usage.body["bytes"], body.len());
}

#[tokio::test]
async fn an_infected_upload_is_rejected_as_malware_and_every_version_deleted() {
    let standins = StandIns::start_scanning(0).await;
    let api = standins.api();
    let (id, completed) = uploaded(&api, &eicar()).await;
    // The verdict may come before `complete`, which then says why the upload was refused.
    if completed.status == StatusCode::UNPROCESSABLE_ENTITY {
        assert_eq!(
            completed.body["error"]["message"],
            "upload rejected: the upload was rejected: the malware scan found a threat in it"
        );
        assert_eq!(completed.body["error"]["rejectedFor"], "malware");
    }

    let file = settled(&api, &id, "scanning").await;
    assert_eq!(file["status"], "rejected", "{file}");
    assert_eq!(file["rejectedFor"], "malware", "{file}");
    assert!(gone(&standins, &key_of(&id)).await);
    let refused = api.download_url(ALICE, &id, "").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["error"]["status"], "rejected");
    // The batch says the same of each file it refuses.
    let batch = api
        .call(
            "POST",
            "/files/download-urls",
            Some(ALICE),
            Some(json!({ "ids": [id] })),
        )
        .await;
    assert_eq!(batch.body["errors"][&id]["code"], "not_ready", "{batch:?}");
    assert_eq!(batch.body["errors"][&id]["status"], "rejected", "{batch:?}");
    // Its bytes no longer count.
    let usage = api.call("GET", "/usage", Some(ALICE), None).await;
    assert_eq!(usage.body["bytes"], 0, "{usage:?}");
    assert_eq!(usage.body["pendingUploads"], 0, "{usage:?}");
    let results = standins.events.as_ref().expect("events").scan_results();
    assert!(
        results.iter().all(|delivery| delivery.handled.is_ok()),
        "{results:?}"
    );
}

#[tokio::test]
async fn duplicate_and_unscannable_results_settle_once_and_no_verdict_leaves_the_file_scanning() {
    let standins = StandIns::start_scanning(0).await;
    let api = standins.api();
    let events = standins.events.clone().expect("events");

    // Delivered twice: applied once, the second changes nothing.
    standins
        .set_faults(json!({"scans": [{"delivery": "twice"}]}))
        .await;
    let (twice, _) = uploaded(&api, b"delivered twice").await;
    assert_eq!(
        settled(&api, &twice, "scanning").await["status"],
        "available"
    );

    // UNSUPPORTED (a password-protected archive, say): nothing can show it clean.
    standins
        .set_faults(json!({"scans": [{"result": "UNSUPPORTED"}]}))
        .await;
    let (unsupported, _) = uploaded(&api, b"an encrypted archive").await;
    let rejected = settled(&api, &unsupported, "scanning").await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejectedFor"], "unscannable");
    assert!(gone(&standins, &key_of(&unsupported)).await);

    // FAILED and ACCESS_DENIED: no verdict, the file waits.
    for result in ["FAILED", "ACCESS_DENIED"] {
        standins
            .set_faults(json!({"scans": [{"result": result}]}))
            .await;
        let (id, _) = uploaded(&api, result.as_bytes()).await;
        wait_for_scan_results(&events, 1, &key_of(&id)).await;
        assert_eq!(file(&api, &id).await["status"], "scanning", "{result}");
        assert!(stored(&standins, &key_of(&id)).await, "{result}");
    }
    let twice_results = wait_for_scan_results(&events, 2, &key_of(&twice)).await;
    assert!(twice_results.iter().all(|d| d.handled.is_ok()));
}

/// The scan results delivered for `key`, once there are `count` of them.
async fn wait_for_scan_results(
    events: &support::events_function::EventsFunction,
    count: usize,
    key: &str,
) -> Vec<support::events_function::Delivery> {
    for _ in 0..200 {
        let results: Vec<_> = events
            .scan_results()
            .into_iter()
            .filter(|d| d.event["detail"]["s3ObjectDetails"]["objectKey"] == key)
            .collect();
        if results.len() >= count {
            return results;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} scan results for {key} after 10 s");
}

#[tokio::test]
async fn a_result_before_s3s_event_confirms_first_and_a_late_event_changes_nothing() {
    let standins = StandIns::start_scanning(0).await;
    let api = standins.api();
    let events = standins.events.clone().expect("events");
    events.hold_s3_notifications(true);

    // No `complete`, and S3's event not handled yet: the scan result is the first news.
    let body = b"scanned before confirmed";
    let reservation = api.reserve(ALICE, "a.txt", "text/plain", body).await;
    assert_eq!(upload(&reservation, body).await.status(), 200);
    let id = file_id(&reservation);
    assert_eq!(settled(&api, &id, "pending").await["status"], "available");

    // S3's event arrives late: the file stays available.
    events.hold_s3_notifications(false);
    let late = support::s3_event("s3/object-created.json", &key_of(&id));
    let files = standins.files();
    let handled = presign_gate::s3_events::handle_s3_event(&files, late).await;
    assert!(handled.is_ok(), "{handled:?}");
    assert_eq!(file(&api, &id).await["status"], "available");
}

#[tokio::test]
async fn a_result_for_a_deleted_file_resurrects_nothing_and_a_lost_one_is_recovered_from_the_tag() {
    let standins = StandIns::start_scanning(0).await;
    let api = standins.api();
    let events = standins.events.clone().expect("events");

    // The verdict held until the file is deleted: it finds no file, and leaves no object.
    standins
        .set_faults(json!({"scans": [{"delivery": "hold", "holdMs": 1500}]}))
        .await;
    let (deleted, _) = uploaded(&api, &eicar()).await;
    let delete = api
        .call("DELETE", &format!("/files/{deleted}"), Some(ALICE), None)
        .await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT, "{delete:?}");
    let results = wait_for_scan_results(&events, 1, &key_of(&deleted)).await;
    assert!(results[0].handled.is_ok(), "{results:?}");
    let record = api
        .call("GET", &format!("/files/{deleted}"), Some(ALICE), None)
        .await;
    assert_eq!(record.status, StatusCode::NOT_FOUND);
    assert!(gone(&standins, &key_of(&deleted)).await);

    // A verdict lost on the way: the object is tagged, the file still scanning; the
    // reconciliation reads the tag and finishes the job.
    standins
        .set_faults(json!({"scans": [{"delivery": "drop"}]}))
        .await;
    let (lost, _) = uploaded(&api, b"verdict lost").await;
    for _ in 0..200 {
        if scan_tag(&standins, &key_of(&lost)).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(file(&api, &lost).await["status"], "scanning");
    let limits = ReconcileLimits {
        max_objects: 100,
        stray_age: Duration::from_secs(900),
    };
    let report = standins
        .files_as(Role::Reconcile)
        .reconcile(OffsetDateTime::now_utc(), limits, Deadline::NONE)
        .await
        .expect("reconcile");
    assert_eq!(report.confirmed, 1, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(file(&api, &lost).await["status"], "available");
}

#[tokio::test]
async fn a_scan_that_never_answers_is_reported_overdue_by_the_reconciliation() {
    let standins = StandIns::start_scanning(0).await;
    let api = standins.api();
    standins
        .set_faults(json!({"scans": [{"result": "FAILED"}]}))
        .await;
    let (id, _) = uploaded(&api, b"never scanned").await;
    let limits = ReconcileLimits {
        max_objects: 100,
        stray_age: Duration::from_secs(900),
    };
    let reconcile = standins.files_as(Role::Reconcile);
    let now = OffsetDateTime::now_utc();
    let soon = reconcile
        .reconcile(now, limits, Deadline::NONE)
        .await
        .expect("reconcile");
    assert_eq!(soon.scans_overdue, 0, "{soon:?}");
    let later = reconcile
        .reconcile(now + Duration::from_secs(2 * 3600), limits, Deadline::NONE)
        .await
        .expect("reconcile");
    assert_eq!(later.scans_overdue, 1, "{later:?}");
    assert_eq!(file(&api, &id).await["status"], "scanning");
}

#[tokio::test]
async fn no_uploader_or_function_can_mark_an_object_clean() {
    let standins = StandIns::start_scanning(5000).await;
    let api = standins.api();
    let body = b"claims to be clean";
    let tag = "GuardDutyMalwareScanStatus=NO_THREATS_FOUND";

    // An upload URL with the tag header added: the header is not signed, and S3 refuses it.
    let reservation = api.reserve(ALICE, "a.txt", "text/plain", body).await;
    let refused = upload_with(&reservation, body, &[("x-amz-tagging", tag)]).await;
    assert_eq!(refused.status(), 403, "{:?}", refused.text().await);
    assert!(gone(&standins, &key_of(&file_id(&reservation))).await);

    // A PUT the API's role signs with the tag: S3 authorizes it as s3:PutObjectTagging too,
    // which the bucket policy denies to all but GuardDuty's role.
    let key = key_of(&file_id(&reservation));
    let signed = standins
        .s3_client_as(Role::Api)
        .put_object()
        .bucket(BUCKET)
        .key(&key)
        .if_none_match("*")
        .tagging(tag)
        .body(body.to_vec().into())
        .send()
        .await;
    assert_eq!(status_of(&signed), Some(403), "{signed:?}");

    // The real upload, then a tagging call by each function's role: all refused.
    assert_eq!(upload(&reservation, body).await.status(), 200);
    for role in [
        Role::Api,
        Role::Events,
        Role::Reconcile,
        Role::Administrator,
    ] {
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(
                aws_sdk_s3::types::Tag::builder()
                    .key("GuardDutyMalwareScanStatus")
                    .value("NO_THREATS_FOUND")
                    .build()
                    .expect("a tag"),
            )
            .build()
            .expect("a tag set");
        let put = standins
            .s3_client_as(role)
            .put_object_tagging()
            .bucket(BUCKET)
            .key(&key)
            .tagging(tagging)
            .send()
            .await;
        assert_eq!(status_of(&put), Some(403), "{role:?}: {put:?}");
    }
    assert_eq!(scan_tag(&standins, &key).await, None);
    assert_eq!(presigned_get_status(&standins, &key).await, 403);
}

fn status_of<T, E>(
    result: &Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> Option<u16> {
    match result {
        Ok(_) => Some(200),
        Err(error) => error.raw_response().map(|r| r.status().as_u16()),
    }
}
