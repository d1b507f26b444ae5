//! Share links end to end (README, "Share links"): the real handler against the stand-ins, each
//! function with its own role (the local IAM evaluates template.yaml), the redemption sent with
//! no identity at all, and the URL it leads to fetched with plain HTTP.

use presign_gate_test_support as support;

use lambda_http::http::StatusCode;
use presign_gate::domain::{FileId, LinkPolicy, ObjectKey, OwnerId};
use presign_gate::http::Api;
use serde_json::{Value, json};
use support::*;

const BODY: &[u8] = b"for whoever holds the link\n";

async fn create_link(api: &TestApi, owner: &str, id: &str, body: Value) -> Answer {
    api.call(
        "POST",
        &format!("/files/{id}/links"),
        Some(owner),
        Some(body),
    )
    .await
}

/// The link's path and query as the handler sees them, from the URL it answered with.
fn link_path(answer: &Answer) -> String {
    let url = answer.body["link"]["url"].as_str().expect("a link url");
    let rest = url
        .strip_prefix("https://api.example.com")
        .expect("the link is on the host the API was reached at");
    assert!(rest.starts_with("/links/"), "{url}");
    rest.to_owned()
}

/// A redemption as a browser sends it: no authorizer, no identity.
async fn redeem(api: &TestApi, path: &str) -> Answer {
    api.call("GET", path, None, None).await
}

/// A redemption by a client that asks for JSON.
async fn redeem_json(api: &TestApi, path: &str) -> Answer {
    let event = HttpApiEvent::new("GET", path)
        .header("accept", "application/json")
        .to_json();
    api.send_event(&event).await
}

/// The API over the stand-ins with at most `max` live links an owner.
fn api_with_live_links(standins: &StandIns, max: u32) -> TestApi {
    let links = LinkPolicy {
        max_live_links: max,
        ..LinkPolicy::default()
    };
    TestApi(Api::new(
        standins.files_as(Role::Api).with_links(links),
        None,
    ))
}

async fn fetch(url: &str) -> Vec<u8> {
    let response = http_client().get(url).send().await.expect("GET the URL");
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("the body").to_vec()
}

async fn links_of(api: &TestApi, owner: &str, id: &str) -> Vec<Value> {
    let answer = api
        .call("GET", &format!("/files/{id}/links"), Some(owner), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    answer.body["links"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_link_downloads_identical_bytes_without_identity_until_revoked() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "report.txt", "text/plain", BODY)
        .await;

    let created = create_link(&api, "alice", &id, json!({"maxDownloads": 5})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let link_id = created.body["link"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["link"]["maxDownloads"], 5);
    let path = link_path(&created);

    // A browser is redirected to a short-lived URL, which serves the bytes.
    let redirect = redeem(&api, &path).await;
    assert_eq!(redirect.status, StatusCode::FOUND, "{redirect:?}");
    assert_eq!(redirect.headers["cache-control"], "no-store");
    assert_eq!(redirect.headers["referrer-policy"], "no-referrer");
    let location = redirect.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(fetch(&location).await, BODY);
    // A client asking for JSON gets the URL and its end, at most a minute away.
    let answer = redeem_json(&api, &path).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(fetch(answer.body["url"].as_str().unwrap()).await, BODY);
    let expires_at = time::OffsetDateTime::parse(
        answer.body["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(expires_at <= time::OffsetDateTime::now_utc() + time::Duration::seconds(61));

    // The owner lists it, counted, and never sees the secret again.
    let listed = links_of(&api, "alice", &id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], link_id.as_str());
    assert_eq!(listed[0]["downloads"], 2);
    assert!(listed[0].get("url").is_none(), "{listed:?}");

    // Nobody else manages alice's links.
    for (method, path) in [
        ("GET", format!("/files/{id}/links")),
        ("POST", format!("/files/{id}/links")),
        ("DELETE", format!("/files/{id}/links/{link_id}")),
    ] {
        let answer = api.call(method, &path, Some("mallory"), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
    }

    let revoked = api
        .call(
            "DELETE",
            &format!("/files/{id}/links/{link_id}"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{revoked:?}");
    let refused = redeem(&api, &path).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{refused:?}");
    assert!(links_of(&api, "alice", &id).await.is_empty());
    let again = api
        .call(
            "DELETE",
            &format!("/files/{id}/links/{link_id}"),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{again:?}");
}

/// Unknown, wrong secret, malformed, expired, exhausted: one and the same answer.
#[tokio::test]
async fn every_refused_redemption_is_the_same_404() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api.stored_file("alice", "a.txt", "text/plain", BODY).await;
    let once = link_path(&create_link(&api, "alice", &id, json!({"maxDownloads": 1})).await);
    assert_eq!(redeem(&api, &once).await.status, StatusCode::FOUND);
    let brief = link_path(&create_link(&api, "alice", &id, json!({"expiresIn": 1})).await);
    let live = link_path(&create_link(&api, "alice", &id, json!({})).await);
    let (live_id, live_secret) = live
        .strip_prefix("/links/")
        .and_then(|rest| rest.split_once("?secret="))
        .unwrap();
    let other_secret = "A".repeat(43);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let refusals = [
        once.clone(),
        brief,
        format!("/links/{live_id}?secret={other_secret}"),
        format!("/links/{live_id}?secret=short"),
        format!("/links/{live_id}"),
        format!("/links/{}?secret={live_secret}", FileId::new_random()),
        format!("/links/not-an-id?secret={live_secret}"),
    ];
    let mut bodies = Vec::new();
    for path in &refusals {
        let answer = redeem(&api, path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {answer:?}");
        bodies.push(answer.body);
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
    // And the live link still works.
    assert_eq!(redeem(&api, &live).await.status, StatusCode::FOUND);
}

/// However many redemptions race, no more downloads than `maxDownloads` are counted or signed.
#[tokio::test]
async fn concurrent_redemptions_never_exceed_max_downloads() {
    let standins = StandIns::start().await;
    let api = std::sync::Arc::new(standins.api());
    let id = api.stored_file("alice", "a.txt", "text/plain", BODY).await;
    let created = create_link(&api, "alice", &id, json!({"maxDownloads": 3})).await;
    let path = link_path(&created);
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (api, path) = (api.clone(), path.clone());
        racing.spawn(async move { redeem_json(&api, &path).await });
    }
    let answers: Vec<Answer> = racing.join_all().await;
    let granted = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::OK)
        .count();
    assert_eq!(granted, 3, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|answer| [StatusCode::OK, StatusCode::NOT_FOUND].contains(&answer.status)),
        "{answers:?}"
    );
    assert_eq!(links_of(&api, "alice", &id).await[0]["downloads"], 3);
}

/// Links are refused with the API's statuses; a file holds 25, an owner as many live links as
/// the setting says, and a revoked link gives its place back.
#[tokio::test]
async fn links_are_limited_per_file_and_per_owner() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api.stored_file("alice", "a.txt", "text/plain", BODY).await;
    let pending = file_id(&api.reserve("alice", "p.txt", "text/plain", BODY).await);
    for (file, body, status, code) in [
        (&id, json!({"expiresIn": 0}), 400, "invalid_request"),
        (&id, json!({"expiresIn": 604_801}), 400, "invalid_request"),
        (&id, json!({"maxDownloads": 0}), 400, "invalid_request"),
        (&id, json!({"maxdownloads": 1}), 400, "invalid_request"),
        (&pending, json!({}), 409, "not_ready"),
    ] {
        let answer = create_link(&api, "alice", file, body.clone()).await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (status, code),
            "{body}: {answer:?}"
        );
    }
    for _ in 0..25 {
        let answer = create_link(&api, "alice", &id, json!({})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    }
    let answer = create_link(&api, "alice", &id, json!({})).await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (409, "conflict")
    );

    let limited = api_with_live_links(&standins, 2);
    let bob = limited
        .stored_file("bob", "b.txt", "text/plain", BODY)
        .await;
    let first = create_link(&limited, "bob", &bob, json!({})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(
        create_link(&limited, "bob", &bob, json!({})).await.status,
        StatusCode::CREATED
    );
    let answer = create_link(&limited, "bob", &bob, json!({})).await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (429, "quota_exceeded"),
        "{answer:?}"
    );
    let first_id = first.body["link"]["id"].as_str().unwrap();
    let revoked = limited
        .call(
            "DELETE",
            &format!("/files/{bob}/links/{first_id}"),
            Some("bob"),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let answer = create_link(&limited, "bob", &bob, json!({})).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
}

/// Deleting a linked file ends its links at once and gives their places back, through the API's
/// delete and through the events function's removal of a record whose object is gone (each with
/// its own role).
#[tokio::test]
async fn a_deleted_file_leaves_no_link_behind() {
    let standins = StandIns::start().await;
    let limited = api_with_live_links(&standins, 2);
    let deleted = limited
        .stored_file("alice", "a.txt", "text/plain", BODY)
        .await;
    let removed = limited
        .stored_file("alice", "b.txt", "text/plain", BODY)
        .await;
    let mut paths = Vec::new();
    for id in [&deleted, &removed] {
        let answer = create_link(&limited, "alice", id, json!({})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        paths.push(link_path(&answer));
    }

    let answer = limited
        .call("DELETE", &format!("/files/{deleted}"), Some("alice"), None)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    let alice = OwnerId::parse("alice").unwrap();
    let key = ObjectKey::for_file(&alice, FileId::parse(&removed).unwrap());
    standins
        .files_as(Role::Events)
        .object_removed(key.as_str())
        .await
        .expect("the record removed");

    for path in &paths {
        assert_eq!(redeem(&limited, path).await.status, StatusCode::NOT_FOUND);
    }
    let other = limited
        .stored_file("alice", "c.txt", "text/plain", BODY)
        .await;
    for _ in 0..2 {
        let answer = create_link(&limited, "alice", &other, json!({})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    }
}
