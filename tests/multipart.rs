//! Multipart uploads end to end: the real handler against s3s-fs (which supports multipart and
//! verifies SigV4 as S3 does) and moto, the part URLs used with plain HTTP.

use presign_gate_test_support as support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::http::StatusCode;
use presign_gate::domain::{ExpiryPolicy, ObjectKey, OwnerId, UploadPolicy};
use presign_gate::s3_events::handle_s3_event;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::*;

const MIB: usize = 1024 * 1024;

fn sha256_b64(bytes: &[u8]) -> String {
    BASE64.encode(Sha256::digest(bytes))
}

/// `len` bytes that differ from part to part, so a part put in the wrong place shows.
fn file_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / MIB) as u8)
        .collect()
}

/// The handler over the stand-ins, taking files up to 64 MiB, multipart above 8 MiB.
fn api(standins: &StandIns) -> TestApi {
    standins.api_with(
        UploadPolicy::new(["application/octet-stream", "text/plain"], 64 * MIB as u64)
            .unwrap()
            .with_multipart_threshold(8 * MIB as u64)
            .unwrap(),
        ExpiryPolicy::new(300, 900).unwrap(),
    )
}

async fn reserve(api: &TestApi, caller: &str, size: usize, multipart: bool) -> Answer {
    let mut body =
        json!({ "filename": "big.bin", "contentType": "application/octet-stream", "size": size });
    if multipart {
        body["multipart"] = json!(true);
    }
    api.call("POST", "/uploads", Some(caller), Some(body)).await
}

async fn sign_parts(api: &TestApi, caller: &str, id: &str, parts: Value) -> Answer {
    api.call(
        "POST",
        &format!("/files/{id}/parts"),
        Some(caller),
        Some(json!({ "parts": parts })),
    )
    .await
}

async fn list_parts(api: &TestApi, caller: &str, id: &str) -> Answer {
    api.call("GET", &format!("/files/{id}/parts"), Some(caller), None)
        .await
}

/// PUTs `body` to a part URL with exactly the headers the API listed.
async fn put_part(part: &Value, body: &[u8]) -> reqwest::Response {
    assert_eq!(part["method"], "PUT");
    put_presigned(part, body, &[]).await
}

fn header_names(part: &Value) -> Vec<&str> {
    part["headers"]
        .as_object()
        .expect("headers")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Reserves `bytes` as a multipart upload for alice and returns its id and plan.
async fn reserved(api: &TestApi, bytes: &[u8]) -> (String, u64, u64) {
    reserved_with(api, bytes, false).await
}

/// `reserved`, with every part to carry its SHA-256 when `part_sha256`.
async fn reserved_with(api: &TestApi, bytes: &[u8], part_sha256: bool) -> (String, u64, u64) {
    let body = json!({ "filename": "big.bin", "contentType": "application/octet-stream",
                       "size": bytes.len(), "multipart": true, "partSha256": part_sha256 });
    let answer = api
        .call("POST", "/uploads", Some("alice"), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let upload = &answer.body["upload"];
    assert_eq!(upload["partSha256"], json!(part_sha256));
    (
        file_id(&answer.body),
        upload["partSize"].as_u64().expect("partSize"),
        upload["partCount"].as_u64().expect("partCount"),
    )
}

/// Signs and uploads the parts `numbers` of `bytes` for alice, each with its SHA-256 when the
/// reservation asked for that (as `GET /files/{id}/parts` says).
async fn upload_parts(api: &TestApi, id: &str, bytes: &[u8], part_size: usize, numbers: &[usize]) {
    let hashed = list_parts(api, "alice", id).await.body["partSha256"] == json!(true);
    let parts: Vec<Value> = numbers
        .iter()
        .map(|n| {
            let start = (n - 1) * part_size;
            let end = (start + part_size).min(bytes.len());
            match hashed {
                true => json!({ "partNumber": n, "sha256": sha256_b64(&bytes[start..end]) }),
                false => json!({ "partNumber": n }),
            }
        })
        .collect();
    let signed = sign_parts(api, "alice", id, json!(parts)).await;
    assert_eq!(signed.status, StatusCode::OK, "{signed:?}");
    for (part, number) in signed.body["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .zip(numbers)
    {
        assert_eq!(part["partNumber"], json!(number));
        let start = (number - 1) * part_size;
        let end = (start + part_size).min(bytes.len());
        let put = put_part(part, &bytes[start..end]).await;
        assert_eq!(put.status(), 200, "{:?}", put.text().await);
    }
}

#[tokio::test]
async fn a_two_part_upload_completes_and_downloads_byte_identical() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let bytes = file_bytes(6 * MIB);
    let answer = reserve(&api, "alice", bytes.len(), true).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
    let upload = &answer.body["upload"];
    assert_eq!(upload["method"], "MULTIPART");
    assert_eq!(upload["partSize"], json!(5 * MIB));
    assert_eq!(upload["partCount"], json!(2));
    assert!(upload["expiresAt"].is_string());
    // Exactly the contract's fields: no URL, and never S3's upload id.
    let mut keys: Vec<&str> = upload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["expiresAt", "method", "partCount", "partSha256", "partSize"]
    );
    let id = file_id(&answer.body);
    assert!(!answer.body.to_string().contains("uploadId"));

    let signed = sign_parts(
        &api,
        "alice",
        &id,
        json!([{ "partNumber": 2 }, { "partNumber": 1 }]),
    )
    .await;
    assert_eq!(signed.status, StatusCode::OK, "{signed:?}");
    let parts = signed.body["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    // In the order asked, each signing its exact length.
    assert_eq!(parts[0]["partNumber"], 2);
    assert_eq!(
        parts[0]["headers"]["content-length"],
        json!(MIB.to_string())
    );
    assert_eq!(
        parts[1]["headers"]["content-length"],
        json!((5 * MIB).to_string())
    );
    assert!(parts[0]["expiresAt"].is_string());
    // Nothing else to send: the browser sets Content-Length (and Host) itself, so a part PUT
    // needs no CORS-allowed header at all.
    assert_eq!(header_names(&parts[0]), ["content-length"]);
    for (part, range) in [(&parts[1], 0..5 * MIB), (&parts[0], 5 * MIB..6 * MIB)] {
        let put = put_part(part, &bytes[range]).await;
        assert_eq!(put.status(), 200, "{:?}", put.text().await);
    }

    let listed = list_parts(&api, "alice", &id).await;
    assert_eq!(listed.status, StatusCode::OK, "{listed:?}");
    assert_eq!(listed.body["partSize"], json!(5 * MIB));
    assert_eq!(listed.body["partCount"], 2);
    let sizes: Vec<(u64, u64)> = listed.body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partNumber"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sizes, [(1, 5 * MIB as u64), (2, MIB as u64)]);

    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.status, StatusCode::OK, "{complete:?}");
    assert_eq!(complete.body["file"]["status"], "available");
    assert_eq!(complete.body["file"]["size"], json!(6 * MIB));
    // Idempotent, like every complete.
    let again = api.complete("alice", &id).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body["file"]["etag"], complete.body["file"]["etag"]);

    let download = api.download_url("alice", &id, "").await;
    assert_eq!(download.status, StatusCode::OK, "{download:?}");
    let got = http_client()
        .get(download.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let got = got.bytes().await.unwrap();
    assert_eq!(Sha256::digest(&got), Sha256::digest(&bytes));

    // Done: the file takes no more parts.
    let late = sign_parts(&api, "alice", &id, json!([{ "partNumber": 1 }])).await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{late:?}");
    assert_eq!(late.error_code(), "not_pending");
}

#[tokio::test]
async fn sizes_above_the_threshold_are_multipart_and_below_it_a_single_put() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let above = reserve(&api, "alice", 8 * MIB + 1, false).await;
    assert_eq!(above.status, StatusCode::CREATED, "{above:?}");
    assert_eq!(above.body["upload"]["method"], "MULTIPART");
    assert_eq!(above.body["upload"]["partCount"], 2);
    let at = reserve(&api, "alice", 8 * MIB, false).await;
    assert_eq!(at.body["upload"]["method"], "PUT");
    // A single-PUT file takes no parts.
    let single = sign_parts(
        &api,
        "alice",
        &file_id(&at.body),
        json!([{ "partNumber": 1 }]),
    )
    .await;
    assert_eq!(single.status, StatusCode::CONFLICT, "{single:?}");
    assert_eq!(single.error_code(), "not_pending");
    // A whole-file checksum cannot be verified on a multipart upload: the message says what to do.
    let mut body = json!({ "filename": "big.bin", "contentType": "application/octet-stream",
                           "size": 9 * MIB, "sha256": sha256_b64(b"x") });
    let refused = api
        .call("POST", "/uploads", Some("alice"), Some(body.clone()))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");
    assert_eq!(refused.error_code(), "invalid_request");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("each part's sha256"),
        "{refused:?}"
    );
    body["size"] = json!(MIB);
    body["multipart"] = json!(true);
    let refused = api
        .call("POST", "/uploads", Some("alice"), Some(body))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{refused:?}");
}

#[tokio::test]
async fn a_part_of_another_length_is_refused_by_s3() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    // A last part of 10 bytes: the refused bodies are small enough to be sent whole before S3
    // answers. (A large one can meet S3's early 403 and a closed connection mid-body, which the
    // client reports as a broken pipe instead of the answer.)
    let bytes = file_bytes(5 * MIB + 10);
    let (id, _, _) = reserved(&api, &bytes).await;
    let signed = sign_parts(&api, "alice", &id, json!([{ "partNumber": 2 }])).await;
    let part = &signed.body["parts"][0];
    assert_eq!(part["headers"]["content-length"], "10");
    for body in [&bytes[5 * MIB..5 * MIB + 9], &bytes[5 * MIB - 1..]] {
        let put = put_part(part, body).await;
        assert_eq!(
            put.status(),
            403,
            "{} bytes: {:?}",
            body.len(),
            put.text().await
        );
    }
    let listed = list_parts(&api, "alice", &id).await;
    assert_eq!(listed.body["parts"], json!([]));
    // The right length is taken.
    let put = put_part(part, &bytes[5 * MIB..]).await;
    assert_eq!(put.status(), 200);
}

#[tokio::test]
async fn a_declared_part_checksum_is_signed_into_the_url() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    // A last part of 10 bytes, sent whole before S3's early 403 (see
    // `a_part_of_another_length_is_refused_by_s3`).
    let bytes = file_bytes(5 * MIB + 10);
    let (id, _, _) = reserved_with(&api, &bytes, true).await;
    let part_bytes = &bytes[5 * MIB..];
    let declared = sha256_b64(part_bytes);
    // S3 fixes at CreateMultipartUpload whether parts carry a checksum and refuses a part that
    // differs either way ("Checksum Type mismatch", CreateMultipartUpload and UploadPart, Amazon
    // S3 API Reference: x-amz-checksum-algorithm); s3s-fs does not, so the API refuses first.
    let without = sign_parts(&api, "alice", &id, json!([{ "partNumber": 2 }])).await;
    assert_eq!(
        (without.status, without.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{without:?}"
    );
    let (plain_id, _, _) = reserved(&api, &bytes).await;
    let with = sign_parts(
        &api,
        "alice",
        &plain_id,
        json!([{ "partNumber": 2, "sha256": declared }]),
    )
    .await;
    assert_eq!(
        (with.status, with.error_code()),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{with:?}"
    );
    let signed = sign_parts(
        &api,
        "alice",
        &id,
        json!([{ "partNumber": 2, "sha256": declared }]),
    )
    .await;
    assert_eq!(signed.status, StatusCode::OK, "{signed:?}");
    let part = &signed.body["parts"][0];
    assert_eq!(part["headers"]["x-amz-checksum-sha256"], json!(declared));
    // Both names the bucket's CORS rule allows (content-length is the browser's own).
    assert_eq!(
        header_names(part),
        ["content-length", "x-amz-checksum-sha256"]
    );
    // Another checksum value, or none, breaks the signature: the client cannot swap in the
    // checksum of other bytes. (That S3 then refuses other bytes under the declared checksum is
    // `a_part_with_other_bytes_than_its_declared_checksum_is_refused`, on the local S3.)
    let mut other = part.clone();
    other["headers"]["x-amz-checksum-sha256"] = json!(sha256_b64(b"other"));
    let put = put_part(&other, part_bytes).await;
    assert_eq!(put.status(), 403, "{:?}", put.text().await);
    other["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-amz-checksum-sha256");
    let put = put_part(&other, part_bytes).await;
    assert_eq!(put.status(), 403, "{:?}", put.text().await);
    let put = put_part(part, part_bytes).await;
    assert_eq!(put.status(), 200, "{:?}", put.text().await);
    // A malformed checksum is the caller's mistake, refused before anything is read.
    let bad = sign_parts(
        &api,
        "alice",
        &id,
        json!([{ "partNumber": 1, "sha256": "nope" }]),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{bad:?}");
}

/// S3 verifies the checksum a part's headers declare ("UploadPart", Amazon S3 API Reference:
/// BadDigest). s3s-fs 0.14.1 verifies none for a part, so this runs on `make local`'s S3, which
/// adds that check in front of it.
#[tokio::test]
async fn a_part_with_other_bytes_than_its_declared_checksum_is_refused() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let bytes = file_bytes(6 * MIB);
    let (id, _, _) = reserved_with(&api, &bytes, true).await;
    let part_bytes = &bytes[5 * MIB..];
    let signed = sign_parts(
        &api,
        "alice",
        &id,
        json!([{ "partNumber": 2, "sha256": sha256_b64(part_bytes) }]),
    )
    .await;
    let part = &signed.body["parts"][0];
    let mut other = part_bytes.to_vec();
    other[0] ^= 1;
    let put = put_part(part, &other).await;
    assert_eq!(put.status(), 400);
    assert!(put.text().await.unwrap().contains("BadDigest"));
    assert_eq!(
        list_parts(&api, "alice", &id).await.body["parts"],
        json!([])
    );
    // The same URL then takes the declared bytes.
    let put = put_part(part, part_bytes).await;
    assert_eq!(put.status(), 200, "{:?}", put.text().await);
    let listed = list_parts(&api, "alice", &id).await;
    assert_eq!(listed.body["parts"][0]["size"], json!(MIB));
    // The other part, with its checksum too: the completion names both.
    upload_parts(&api, &id, &bytes, 5 * MIB, &[1]).await;
    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.status, StatusCode::OK, "{complete:?}");
}

#[tokio::test]
async fn a_missing_part_makes_complete_a_409_that_says_how_many() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let bytes = file_bytes(11 * MIB);
    let (id, part_size, count) = reserved(&api, &bytes).await;
    assert_eq!(count, 3);
    upload_parts(&api, &id, &bytes, part_size as usize, &[2]).await;
    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.status, StatusCode::CONFLICT, "{complete:?}");
    assert_eq!(complete.error_code(), "upload_missing");
    assert_eq!(
        complete.body["error"]["message"],
        "2 of 3 parts have not been uploaded yet"
    );
    // Resumed: the rest of the parts, and complete finishes it.
    upload_parts(&api, &id, &bytes, part_size as usize, &[1, 3]).await;
    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.status, StatusCode::OK, "{complete:?}");
    let stored = standins
        .s3_client()
        .get_object()
        .bucket(BUCKET)
        .key(stored_key("alice", &id))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.cache_control(), Some("private, no-store"));
    assert_eq!(stored.content_type(), Some("application/octet-stream"));
    let got = stored.body.collect().await.unwrap().into_bytes();
    assert_eq!(Sha256::digest(&got), Sha256::digest(&bytes));
}

fn stored_key(owner: &str, id: &str) -> String {
    let owner = OwnerId::parse(owner).unwrap();
    ObjectKey::for_file(&owner, presign_gate::domain::FileId::parse(id).unwrap())
        .as_str()
        .to_owned()
}

/// S3's upload id, as the part URLs carry it (the only place it leaves the server).
fn upload_id_of(part: &Value) -> String {
    let url = part["url"].as_str().unwrap();
    let raw = url
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix("uploadId="))
        .expect("uploadId in a part URL");
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[tokio::test]
async fn delete_of_a_pending_multipart_upload_leaves_no_parts() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    // A last part of 10 bytes: the refused PUT below is sent whole before S3 answers.
    let bytes = file_bytes(5 * MIB + 10);
    let (id, part_size, _) = reserved(&api, &bytes).await;
    upload_parts(&api, &id, &bytes, part_size as usize, &[1]).await;
    let signed = sign_parts(&api, "alice", &id, json!([{ "partNumber": 2 }])).await;
    let part = signed.body["parts"][0].clone();
    let upload_id = upload_id_of(&part);
    let s3 = standins.s3_client();
    let parts_held = || async {
        s3.list_parts()
            .bucket(BUCKET)
            .key(stored_key("alice", &id))
            .upload_id(&upload_id)
            .send()
            .await
            .map(|output| output.parts().len())
    };
    assert_eq!(parts_held().await.unwrap(), 1);

    let deleted = api
        .call("DELETE", &format!("/files/{id}"), Some("alice"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    // ListParts: nothing held (S3 answers NoSuchUpload; s3s-fs lists an empty upload).
    assert!(parts_held().await.map_or(true, |n| n == 0));
    // The URL signed before the delete no longer stores anything.
    let put = put_part(&part, &bytes[5 * MIB..]).await;
    assert!(!put.status().is_success(), "{:?}", put.text().await);
    assert!(parts_held().await.map_or(true, |n| n == 0));
    assert_eq!(
        api.call("GET", &format!("/files/{id}"), Some("alice"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_second_caller_can_neither_sign_nor_list_parts() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let bytes = file_bytes(6 * MIB);
    let (id, _, _) = reserved(&api, &bytes).await;
    let signed = sign_parts(&api, "bob", &id, json!([{ "partNumber": 1 }])).await;
    assert_eq!(signed.status, StatusCode::NOT_FOUND, "{signed:?}");
    assert_eq!(signed.error_code(), "not_found");
    let listed = list_parts(&api, "bob", &id).await;
    assert_eq!(listed.status, StatusCode::NOT_FOUND, "{listed:?}");
    let completed = api.complete("bob", &id).await;
    assert_eq!(completed.status, StatusCode::NOT_FOUND, "{completed:?}");
    let deleted = api
        .call("DELETE", &format!("/files/{id}"), Some("bob"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND, "{deleted:?}");
    // Alice's upload is untouched.
    assert_eq!(list_parts(&api, "alice", &id).await.status, StatusCode::OK);
}

#[tokio::test]
async fn part_requests_are_checked_against_the_plan() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let (id, _, _) = reserved(&api, &file_bytes(6 * MIB)).await;
    for parts in [
        json!([]),
        json!([{ "partNumber": 0 }]),
        json!([{ "partNumber": 3 }]),
        json!([{ "partNumber": 1 }, { "partNumber": 1 }]),
        json!(
            (1..=101)
                .map(|n| json!({ "partNumber": n }))
                .collect::<Vec<_>>()
        ),
        json!([{ "partNumber": -1 }]),
        json!([{ "number": 1 }]),
    ] {
        let answer = sign_parts(&api, "alice", &id, parts.clone()).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{parts}: {answer:?}"
        );
        assert_eq!(answer.error_code(), "invalid_request");
    }
}

#[tokio::test]
async fn the_events_function_confirms_a_completed_multipart_object() {
    let standins = StandIns::start().await;
    let api = api(&standins);
    let bytes = file_bytes(6 * MIB);
    let (id, part_size, _) = reserved(&api, &bytes).await;
    upload_parts(&api, &id, &bytes, part_size as usize, &[1, 2]).await;
    // Completed at S3 by other means than `complete` (as a complete cut short after S3 assembled
    // the object would leave it): S3's event alone confirms it.
    let signed = sign_parts(&api, "alice", &id, json!([{ "partNumber": 1 }])).await;
    let upload_id = upload_id_of(&signed.body["parts"][0]);
    let key = stored_key("alice", &id);
    let s3 = standins.s3_client();
    let listed = s3
        .list_parts()
        .bucket(BUCKET)
        .key(&key)
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    let mut completed: Vec<_> = listed
        .parts()
        .iter()
        .map(|part| {
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(part.part_number().unwrap())
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build()
        })
        .collect();
    completed.sort_by_key(|part| part.part_number());
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(&key)
        .upload_id(&upload_id)
        .if_none_match("*")
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut event = s3_event("s3/object-created.json", &key);
    event.records[0].event_name = Some("ObjectCreated:CompleteMultipartUpload".into());
    handle_s3_event(&standins.files(), event).await.unwrap();
    let file = api
        .call("GET", &format!("/files/{id}"), Some("alice"), None)
        .await;
    assert_eq!(file.body["file"]["status"], "available", "{file:?}");
    // And `complete` afterwards answers the same record.
    let complete = api.complete("alice", &id).await;
    assert_eq!(complete.status, StatusCode::OK, "{complete:?}");
    assert_eq!(complete.body["file"]["etag"], file.body["file"]["etag"]);
}
