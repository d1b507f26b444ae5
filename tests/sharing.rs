//! Read grants end to end (README, "Sharing"): the real handler against the stand-ins, each
//! function with its own role (the local IAM evaluates template.yaml, so a call the template does
//! not grant fails here), and the shared download URL fetched with plain HTTP.

use presign_gate_test_support as support;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::StatusCode;
use presign_gate::domain::{FileId, Grant, OwnerId};
use presign_gate::store::{GrantStore, SHARED_PREFIX, Transition, attr};
use serde_json::{Value, json};
use support::*;
use time::OffsetDateTime;

const BODY: &[u8] = b"shared with bob, and only with bob\n";

async fn grant(api: &TestApi, owner: &str, id: &str, body: Value) -> Answer {
    api.call(
        "POST",
        &format!("/files/{id}/grants"),
        Some(owner),
        Some(body),
    )
    .await
}

async fn shared_download(api: &TestApi, caller: &str, owner: &str, id: &str) -> Answer {
    api.call(
        "GET",
        &format!("/shared/{owner}/{id}/download-url"),
        Some(caller),
        None,
    )
    .await
}

/// The sort keys of `grantee`'s entries, read from the table itself.
async fn entries_of(standins: &StandIns, grantee: &str) -> Vec<String> {
    standins
        .dynamodb_client()
        .query()
        .table_name(TABLE)
        .key_condition_expression("#owner = :grantee AND begins_with(#sk, :shared)")
        .expression_attribute_names("#owner", attr::OWNER)
        .expression_attribute_names("#sk", attr::FILE_ID)
        .expression_attribute_values(":grantee", AttributeValue::S(grantee.into()))
        .expression_attribute_values(":shared", AttributeValue::S(SHARED_PREFIX.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("Query the grantee's partition")
        .items()
        .iter()
        .filter_map(|item| item.get(attr::FILE_ID)?.as_s().ok().cloned())
        .collect()
}

#[tokio::test]
async fn a_grantee_downloads_identical_bytes_until_the_grant_is_revoked() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "for-bob.txt", "text/plain", BODY)
        .await;

    let answer = grant(&api, "alice", &id, json!({"grantee": "bob"})).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    assert_eq!(answer.body["grant"]["grantee"], "bob");
    assert_eq!(answer.body["grant"]["expiresAt"], Value::Null);

    let listed = api.call("GET", "/shared", Some("bob"), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    assert_eq!(listed.body["files"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed.body["files"][0]["owner"], "alice");
    assert_eq!(listed.body["files"][0]["id"], id.as_str());
    assert_eq!(listed.body["files"][0]["filename"], "for-bob.txt");
    // alice's own listing shows her file, and not bob's entry.
    let own = api.call("GET", "/files", Some("alice"), None).await;
    assert_eq!(
        own.body["files"].as_array().map(Vec::len),
        Some(1),
        "{own:?}"
    );
    assert!(
        api.call("GET", "/files", Some("bob"), None).await.body["files"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );

    let answer = shared_download(&api, "bob", "alice", &id).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let url = answer.body["url"].as_str().expect("a url");
    let response = http_client().get(url).send().await.expect("GET the URL");
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), BODY);

    // Nobody else, and nothing else for bob: not the owner's routes, not a re-share, not a
    // revocation of his own grant.
    assert_eq!(
        shared_download(&api, "carol", "alice", &id).await.status,
        404
    );
    for (method, path, body) in [
        ("GET", format!("/files/{id}"), None),
        ("GET", format!("/files/{id}/download-url"), None),
        ("DELETE", format!("/files/{id}"), None),
        ("GET", format!("/files/{id}/grants"), None),
        (
            "POST",
            format!("/files/{id}/grants"),
            Some(json!({"grantee": "carol"})),
        ),
        ("DELETE", format!("/files/{id}/grants/bob"), None),
    ] {
        let answer = api.call(method, &path, Some("bob"), body).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {answer:?}"
        );
    }

    let grants = api
        .call("GET", &format!("/files/{id}/grants"), Some("alice"), None)
        .await;
    assert_eq!(grants.body["grants"][0]["grantee"], "bob", "{grants:?}");
    let revoked = api
        .call(
            "DELETE",
            &format!("/files/{id}/grants/bob"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{revoked:?}");
    let answer = shared_download(&api, "bob", "alice", &id).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    assert!(entries_of(&standins, "bob").await.is_empty());
}

#[tokio::test]
async fn grants_are_refused_with_the_api_s_statuses() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api.stored_file("alice", "a.txt", "text/plain", BODY).await;
    let pending = file_id(&api.reserve("alice", "p.txt", "text/plain", BODY).await);
    let cases = [
        (id.as_str(), json!({"grantee": ""}), 400, "invalid_request"),
        (
            id.as_str(),
            json!({"grantee": "bob", "expiresIn": 5}),
            400,
            "invalid_request",
        ),
        (
            id.as_str(),
            json!({"grantee": "bob", "expiresAt": "2001-01-01T00:00:00Z"}),
            400,
            "invalid_request",
        ),
        (
            id.as_str(),
            json!({"grantee": "bob", "expiresAt": "soon"}),
            400,
            "invalid_request",
        ),
        (id.as_str(), json!({"grantee": "alice"}), 409, "conflict"),
        (
            pending.as_str(),
            json!({"grantee": "bob"}),
            409,
            "not_ready",
        ),
    ];
    for (id, body, status, code) in cases {
        let answer = grant(&api, "alice", id, body.clone()).await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (status, code),
            "{body}: {answer:?}"
        );
    }
    // Someone else's file is not found, exactly like a missing one.
    let answer = grant(&api, "mallory", &id, json!({"grantee": "mallory2"})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    let answer = grant(
        &api,
        "alice",
        &FileId::new_random().to_string(),
        json!({"grantee": "bob"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
}

/// Deleting a shared file takes every grantee's entry with it, through the API's delete and
/// through the events function's removal of a record whose object is gone (each with its role).
#[tokio::test]
async fn a_deleted_file_leaves_no_grant_behind() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let deleted = api.stored_file("alice", "a.txt", "text/plain", BODY).await;
    let removed = api.stored_file("alice", "b.txt", "text/plain", BODY).await;
    for id in [&deleted, &removed] {
        for grantee in ["bob", "carol"] {
            let answer = grant(&api, "alice", id, json!({"grantee": grantee})).await;
            assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        }
    }
    assert_eq!(entries_of(&standins, "bob").await.len(), 2);

    let answer = api
        .call("DELETE", &format!("/files/{deleted}"), Some("alice"), None)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    assert_eq!(entries_of(&standins, "carol").await.len(), 1);

    let alice = OwnerId::parse("alice").unwrap();
    let key = presign_gate::domain::ObjectKey::for_file(&alice, FileId::parse(&removed).unwrap());
    let events = standins.files_as(Role::Events);
    events
        .object_removed(key.as_str())
        .await
        .expect("the record removed");

    for grantee in ["bob", "carol"] {
        assert!(entries_of(&standins, grantee).await.is_empty(), "{grantee}");
        for id in [&deleted, &removed] {
            assert_eq!(
                shared_download(&api, grantee, "alice", id).await.status,
                404
            );
        }
    }
    let usage = api.call("GET", "/usage", Some("alice"), None).await;
    assert_eq!(usage.body["bytes"], 0, "{usage:?}");
}

/// `GET /shared` is newest grant first across owners, and pages with its token.
#[tokio::test]
async fn the_shared_listing_is_newest_first_and_pages() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let store = standins.store();
    let mut ids = Vec::new();
    for (n, owner) in ["alice", "carol", "alice"].into_iter().enumerate() {
        let id = api.stored_file(owner, "f.txt", "text/plain", BODY).await;
        let owner = OwnerId::parse(owner).unwrap();
        let (record, read) = store
            .get_with_grants(&owner, FileId::parse(&id).unwrap())
            .await
            .unwrap()
            .unwrap();
        let grants = [Grant {
            grantee: OwnerId::parse("bob").unwrap(),
            granted_at: OffsetDateTime::from_unix_timestamp(1_800_000_000 + n as i64).unwrap(),
            expires_at: None,
        }];
        assert_eq!(
            store.write_grants(&record, &read, &grants).await.unwrap(),
            Transition::Applied
        );
        ids.push(id);
    }
    let first = api.call("GET", "/shared?limit=2", Some("bob"), None).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let token = first.body["nextToken"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = api
        .call(
            "GET",
            &format!("/shared?limit=2&nextToken={token}"),
            Some("bob"),
            None,
        )
        .await;
    let order: Vec<&str> = first.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["files"].as_array().unwrap())
        .filter_map(|file| file["id"].as_str())
        .collect();
    assert_eq!(order, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);
    let forged = api
        .call("GET", "/shared?nextToken=bm90LWEta2V5", Some("bob"), None)
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{forged:?}");
}

/// A grant and a delete of the same file at once, on the real store: whichever commits first,
/// no entry is left in the grantee's partition and no URL is signed (the grant's transaction
/// requires the record, the delete's requires the grant version it read).
#[tokio::test]
async fn a_grant_racing_a_delete_leaves_no_entry() {
    let standins = StandIns::start().await;
    let api = standins.api();
    for round in 0..5 {
        let id = api.stored_file("alice", "r.txt", "text/plain", BODY).await;
        let grantee = format!("racer-{round}");
        let path = format!("/files/{id}");
        let (granted, deleted) = tokio::join!(
            grant(&api, "alice", &id, json!({ "grantee": grantee })),
            api.call("DELETE", &path, Some("alice"), None)
        );
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
        assert!(
            [StatusCode::CREATED, StatusCode::NOT_FOUND].contains(&granted.status),
            "{granted:?}"
        );
        assert!(
            entries_of(&standins, &grantee).await.is_empty(),
            "round {round}"
        );
        let answer = shared_download(&api, &grantee, "alice", &id).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    }
}
