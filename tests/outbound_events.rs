//! File events end to end (issue 22, section 2), on the stack as deployed: the API and the
//! events function change records on the local DynamoDB, local-aws reads the table's stream from
//! moto and hands it to the publisher's real handler (as the template's event source mapping
//! would, with its filters, batch size and partial batch responses), which signs PutEvents as
//! its own role to local-aws's EventBridge; the test reads what arrived from its sink.

use presign_gate_test_support as support;

use std::time::Duration;

use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use support::{StandIns, TestApi, eicar, file_id, http_client, upload};

const ALICE: &str = "alice";

/// Alice's events in the sink, oldest first.
async fn sink(standins: &StandIns) -> Vec<Value> {
    let origin = standins.demo_origin.as_deref().expect("a demo origin");
    let answer: Value = http_client()
        .get(format!("{origin}/__events?owner={ALICE}"))
        .send()
        .await
        .expect("the sink answers")
        .text()
        .await
        .map(|text| serde_json::from_str(&text).expect("JSON"))
        .expect("a body");
    let mut events = answer["events"].as_array().cloned().unwrap_or_default();
    events.reverse();
    events
}

/// The `(detail-type, file id)` of alice's events about `id`, once there are `count`.
async fn events_about(standins: &StandIns, id: &str, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let about: Vec<Value> = sink(standins)
            .await
            .into_iter()
            .filter(|event| event["detail"]["file"]["id"] == id)
            .collect();
        if about.len() >= count {
            return about;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "fewer than {count} events about {id} after 10 s: {:?}",
        sink(standins).await
    );
}

fn detail_types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["detail-type"].as_str().unwrap_or_default())
        .collect()
}

async fn uploaded(api: &TestApi, body: &[u8]) -> String {
    let reservation = api.reserve(ALICE, "a.txt", "text/plain", body).await;
    let put = upload(&reservation, body).await;
    assert_eq!(put.status(), 200, "{:?}", put.text().await);
    file_id(&reservation)
}

#[tokio::test]
async fn an_upload_and_its_delete_are_told_in_order_with_the_files_public_fields() {
    let standins = StandIns::start_scanning(0).await;
    let api = standins.api();
    let id = uploaded(&api, b"told in order").await;
    let told = events_about(&standins, &id, 3).await;
    assert_eq!(
        detail_types(&told),
        ["File Reserved", "File Scanning", "File Available"]
    );
    let delete = api
        .call("DELETE", &format!("/files/{id}"), Some(ALICE), None)
        .await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    let told = events_about(&standins, &id, 4).await;
    assert_eq!(
        detail_types(&told),
        [
            "File Reserved",
            "File Scanning",
            "File Available",
            "File Deleted"
        ]
    );
    let previous: Vec<&Value> = told
        .iter()
        .map(|event| &event["detail"]["previousStatus"])
        .collect();
    assert_eq!(
        previous,
        [
            &json!(null),
            &json!("pending"),
            &json!("scanning"),
            &json!("available")
        ]
    );
    for event in &told {
        assert_eq!(event["source"], "presign-gate");
        assert_eq!(event["detail"]["owner"], ALICE);
        assert_eq!(event["detail"]["file"]["filename"], "a.txt");
        // Never a URL, a key or a signature: the file's public view only.
        let text = event.to_string();
        for secret in ["http", "users/", "X-Amz", "uploadId"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    // One id per change.
    let mut ids: Vec<&str> = told
        .iter()
        .map(|event| event["detail"]["eventId"].as_str().expect("an eventId"))
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 4);
}

#[tokio::test]
async fn a_malware_upload_is_told_rejected_with_its_reason() {
    let standins = StandIns::start_scanning(0).await;
    let api = standins.api();
    let id = uploaded(&api, &eicar()).await;
    let told = events_about(&standins, &id, 3).await;
    assert_eq!(
        detail_types(&told),
        ["File Reserved", "File Scanning", "File Rejected"]
    );
    assert_eq!(told[2]["detail"]["file"]["rejectedFor"], "malware");
}

/// The bus refusing a call, then an entry: the publisher answers a partial batch failure, the
/// stream is read again from the refused record, and no change goes untold. Changes after the
/// refused one may be told twice, with the same `eventId`.
#[tokio::test]
async fn an_event_stream_fault_loses_no_event_and_repeats_keep_their_id() {
    let standins = StandIns::start_scanning(0).await;
    let api = standins.api();
    standins
        .set_faults(
            json!({"putEvents": [{"status": 500, "times": 2}, {"failEntries": 1, "times": 1}]}),
        )
        .await;
    let id = uploaded(&api, b"told despite faults").await;
    let told = events_about(&standins, &id, 3).await;
    let mut distinct: Vec<(String, String)> = Vec::new();
    for event in &told {
        let key = (
            event["detail"]["eventId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            event["detail-type"].as_str().unwrap_or_default().to_owned(),
        );
        if !distinct.contains(&key) {
            distinct.push(key);
        }
    }
    let types: Vec<&str> = distinct.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(types, ["File Reserved", "File Scanning", "File Available"]);
    // The faults were met: the first calls were refused and retried.
    let origin = standins.demo_origin.as_deref().expect("a demo origin");
    let report: Value = http_client()
        .get(format!("{origin}/__faults"))
        .send()
        .await
        .expect("faults")
        .text()
        .await
        .map(|text| serde_json::from_str(&text).expect("JSON"))
        .expect("a body");
    assert!(
        report["served"]["putEvents"].as_u64().unwrap_or(0) >= 3,
        "{report}"
    );
}
