//! The upload lifecycle against the stand-ins: confirmation by S3 events and by `complete`,
//! listing, deletion, and what happens to objects nobody reserved.

use presign_gate_test_support as support;

use std::collections::BTreeSet;

use lambda_http::http::StatusCode;
use presign_gate::s3_events::handle_s3_event;
use serde_json::json;
use support::*;

async fn file(api: &TestApi, caller: &str, id: &str) -> Answer {
    api.call("GET", &format!("/files/{id}"), Some(caller), None)
        .await
}

async fn object_exists(standins: &StandIns, key: &str) -> bool {
    standins
        .s3_client()
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn an_s3_event_confirms_an_upload_and_a_duplicate_changes_nothing() {
    let standins = StandIns::start().await;
    let api = standins.api();
    // A subject with characters that must be encoded, to walk the key through both encodings.
    let owner = "auth0|user name+1";
    let reservation = api
        .reserve(owner, "notes.txt", "text/plain", b"some notes")
        .await;
    assert_eq!(upload(&reservation, b"some notes").await.status(), 200);
    let id = file_id(&reservation);
    let key = format!("users/auth0%7Cuser%20name%2B1/{id}");
    assert!(
        object_exists(&standins, &key).await,
        "the key scheme is as documented"
    );

    let event = s3_event("s3/object-created.json", &key);
    handle_s3_event(&standins.files(), event.clone())
        .await
        .unwrap();
    let confirmed = file(&api, owner, &id).await;
    assert_eq!(
        confirmed.body["file"]["status"], "available",
        "{confirmed:?}"
    );
    let download = api.download_url(owner, &id, "").await;
    assert_eq!(download.status, StatusCode::OK);

    handle_s3_event(&standins.files(), event).await.unwrap();
    assert_eq!(
        file(&api, owner, &id).await.body,
        confirmed.body,
        "a duplicate is a no-op"
    );
    let complete = api.complete(owner, &id).await;
    assert_eq!(complete.body, confirmed.body, "and complete agrees");
}

#[tokio::test]
async fn a_mismatched_object_is_rejected_and_deleted_by_the_event() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reservation = api.reserve("alice", "a.txt", "text/plain", b"abc").await;
    let id = file_id(&reservation);
    let key = format!("users/alice/{id}");
    standins
        .s3_client()
        .put_object()
        .if_none_match("*") // the bucket policy refuses any write under users/ without it
        .bucket(BUCKET)
        .key(&key)
        .content_type("text/plain")
        .body(b"abcd".to_vec().into())
        .send()
        .await
        .unwrap();
    handle_s3_event(&standins.files(), s3_event("s3/object-created.json", &key))
        .await
        .unwrap();
    assert_eq!(
        file(&api, "alice", &id).await.body["file"]["status"],
        "rejected"
    );
    assert!(
        !object_exists(&standins, &key).await,
        "the object is deleted"
    );
    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.error_code(), "upload_rejected");
}

/// An object of the reserved size whose content type or SHA-256 differs from the reservation
/// (written with the SDK, as something other than the upload URL could) is rejected by `complete`
/// and by the S3 event alike: 422 `upload_rejected` naming the difference, the record
/// `rejected`, the object gone.
#[tokio::test]
async fn an_object_of_another_type_or_checksum_is_rejected_by_complete_and_by_the_event() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let s3 = standins.s3_client();
    let sha256 = |bytes: &[u8]| {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
    };
    // (what differs, the content type and bytes written, the reason's words)
    let cases: [(&str, &str, &[u8], &str); 2] = [
        ("content type", "image/png", b"abc", "content type"),
        ("checksum", "text/plain", b"abd", "SHA-256"),
    ];
    for by_event in [false, true] {
        for (what, content_type, bytes, reason) in cases {
            let reserved = api
                .call(
                    "POST",
                    "/uploads",
                    Some("alice"),
                    Some(json!({
                        "filename": "a.txt",
                        "contentType": "text/plain",
                        "size": 3,
                        "sha256": sha256(b"abc"),
                    })),
                )
                .await;
            assert_eq!(reserved.status, StatusCode::CREATED, "{reserved:?}");
            let id = file_id(&reserved.body);
            let key = format!("users/alice/{id}");
            s3.put_object()
                .if_none_match("*") // the bucket policy refuses any write under users/ without it
                .bucket(BUCKET)
                .key(&key)
                .content_type(content_type)
                .checksum_sha256(sha256(bytes))
                .body(bytes.to_vec().into())
                .send()
                .await
                .unwrap();
            if by_event {
                handle_s3_event(&standins.files(), s3_event("s3/object-created.json", &key))
                    .await
                    .unwrap();
            }
            let complete = api.complete("alice", &id).await;
            let message = complete.body["error"]["message"].as_str().unwrap_or("");
            assert_eq!(
                (complete.status, complete.error_code()),
                (StatusCode::UNPROCESSABLE_ENTITY, "upload_rejected"),
                "{what}, by event: {by_event}: {complete:?}"
            );
            // The event's rejection is reported to a later `complete` in general terms; the
            // confirmation that found the difference names it.
            if !by_event {
                assert!(message.contains(reason), "{what}: {message}");
            }
            assert_eq!(
                file(&api, "alice", &id).await.body["file"]["status"],
                "rejected",
                "{what}, by event: {by_event}"
            );
            assert!(
                !object_exists(&standins, &key).await,
                "{what}, by event: {by_event}: the object is deleted"
            );
        }
    }
}

#[tokio::test]
async fn objects_nobody_reserved_are_deleted() {
    let standins = StandIns::start().await;
    let s3 = standins.s3_client();
    let unreserved = "users/alice/00000000-0000-4000-8000-000000000000";
    let stray = "users/alice/holiday photo.txt";
    for key in [unreserved, stray] {
        s3.put_object()
            .if_none_match("*") // the bucket policy refuses any write under users/ without it
            .bucket(BUCKET)
            .key(key)
            .body(b"x".to_vec().into())
            .send()
            .await
            .unwrap();
        handle_s3_event(&standins.files(), s3_event("s3/object-created.json", key))
            .await
            .unwrap();
        assert!(!object_exists(&standins, key).await, "{key} deleted");
    }
}

#[tokio::test]
async fn object_removed_takes_the_record_with_it() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;
    let key = format!("users/alice/{id}");
    standins
        .s3_client()
        .delete_object()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();

    let removed = s3_event("s3/object-removed.json", &key);
    handle_s3_event(&standins.files(), removed.clone())
        .await
        .unwrap();
    assert_eq!(file(&api, "alice", &id).await.status, StatusCode::NOT_FOUND);
    let listing = api.call("GET", "/files", Some("alice"), None).await;
    assert_eq!(listing.body["files"], json!([]));
    handle_s3_event(&standins.files(), removed).await.unwrap();

    // Removal of a pending reservation's object leaves the reservation alone.
    let pending = api.reserve("alice", "b.txt", "text/plain", b"abc").await;
    let pending_id = file_id(&pending);
    let event = s3_event(
        "s3/object-removed.json",
        &format!("users/alice/{pending_id}"),
    );
    handle_s3_event(&standins.files(), event).await.unwrap();
    assert_eq!(
        file(&api, "alice", &pending_id).await.body["file"]["status"],
        "pending"
    );
}

#[tokio::test]
async fn listing_walks_every_file_of_one_user_and_none_of_another() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let mut alices = BTreeSet::new();
    for n in 0..5 {
        alices.insert(file_id(
            &api.reserve("alice", &format!("{n}.txt"), "text/plain", b"a")
                .await,
        ));
    }
    let mut bobs = BTreeSet::new();
    for n in 0..3 {
        bobs.insert(file_id(
            &api.reserve("bob", &format!("{n}.txt"), "text/plain", b"b")
                .await,
        ));
    }

    // In id order across pages (a BTreeSet iterates its ids sorted), each once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let query = match &token {
            Some(token) => format!("/files?limit=2&nextToken={token}"),
            None => "/files?limit=2".to_owned(),
        };
        let page = api.call("GET", &query, Some("alice"), None).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        let files = page.body["files"].as_array().unwrap();
        assert!(files.len() <= 2);
        seen.extend(
            files
                .iter()
                .map(|file| file["id"].as_str().unwrap().to_owned()),
        );
        token = page.body["nextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert!(token.is_none(), "the walk ends");
    assert_eq!(seen, alices.iter().cloned().collect::<Vec<_>>());

    // A token made from one of bob's ids only moves within alice's own files: the page is
    // exactly alice's files after that id (however many that is), and none of bob's.
    use base64::Engine as _;
    let bobs_id = bobs.iter().next().unwrap();
    let after_bobs_id: Vec<&str> = alices
        .iter()
        .filter(|id| *id > bobs_id)
        .map(String::as_str)
        .collect();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bobs_id);
    let page = api
        .call(
            "GET",
            &format!("/files?nextToken={forged}"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let listed: Vec<&str> = page.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, after_bobs_id, "{page:?}");

    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=99999999999",
        "nextToken=%%%",
        "nextToken=bm90LWFuLWlk",
    ] {
        let answer = api
            .call("GET", &format!("/files?{bad}"), Some("alice"), None)
            .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (400, "invalid_request"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn delete_removes_object_and_record_once() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;
    let path = format!("/files/{id}");

    let by_bob = api.call("DELETE", &path, Some("bob"), None).await;
    assert_eq!(by_bob.error_code(), "not_found");
    assert!(
        object_exists(&standins, &format!("users/alice/{id}")).await,
        "bob deleted nothing"
    );

    let deleted = api.call("DELETE", &path, Some("alice"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    assert!(!object_exists(&standins, &format!("users/alice/{id}")).await);
    let download = api
        .call("GET", &format!("{path}/download-url"), Some("alice"), None)
        .await;
    assert_eq!(download.error_code(), "not_found");
    let again = api.call("DELETE", &path, Some("alice"), None).await;
    assert_eq!(
        (again.status.as_u16(), again.error_code()),
        (404, "not_found")
    );
}

#[tokio::test]
async fn a_failing_record_fails_alone_and_is_reported() {
    let mut standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "a.txt", "text/plain", b"abc")
        .await;

    // Two records in one event: removing a confirmed file's record needs only DynamoDB, deleting
    // an unreserved object needs S3, which is down.
    let removed = s3_event("s3/object-removed.json", &format!("users/alice/{id}"));
    let created = s3_event(
        "s3/object-created.json",
        "users/alice/00000000-0000-4000-8000-000000000000",
    );
    let mut event = removed;
    event.records.extend(created.records);
    standins.s3.0.kill().unwrap();
    standins.s3.0.wait().unwrap();

    let failed = handle_s3_event(&standins.files(), event).await.unwrap_err();
    assert_eq!(
        failed.keys(),
        ["users/alice/00000000-0000-4000-8000-000000000000"]
    );
    // S3 was unreachable: a failure a later redrive can fix, under its own stable errorType.
    let diagnostic = lambda_runtime::Diagnostic::from(failed);
    assert_eq!(diagnostic.error_type, "S3EventBackendUnavailable");
    assert!(
        diagnostic
            .error_message
            .starts_with("1 record(s) failed: users/alice/00000000-0000-4000-8000-000000000000 ("),
        "{}",
        diagnostic.error_message
    );
    assert_eq!(
        file(&api, "alice", &id).await.status,
        StatusCode::NOT_FOUND,
        "the other record was handled"
    );
}
