//! Hostile input beyond the documented-error table of `api.rs`: body-size boundaries, content
//! types with parameters and odd casing, Unicode filenames, encoded ids, oversized and forged
//! paging input, and active content that must never render inline. Every answer is a clear 4xx
//! (or the success the input deserves), never a 5xx.

use presign_gate_test_support as support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::http::StatusCode;
use presign_gate::domain::{ExpiryPolicy, UploadPolicy};
use presign_gate::http::MAX_BODY_BYTES;
use serde_json::json;
use support::*;

/// One query parameter of a URL, percent-decoded.
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))?;
    Some(
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .ok()?
            .into_owned(),
    )
}

fn assert_4xx(answer: &Answer, what: &str) {
    assert!(
        answer.status.is_client_error(),
        "{what}: expected a 4xx, got {answer:?}"
    );
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {answer:?}"
    );
}

#[tokio::test]
async fn request_bodies_are_limited_to_16_kib_on_every_json_route() {
    let standins = StandIns::start().await;
    let api = standins.api();
    // Valid JSON padded with whitespace to an exact length.
    let padded = |json: &str, len: usize| format!("{json}{}", " ".repeat(len - json.len()));
    let upload = r#"{"filename": "a.txt", "contentType": "text/plain", "size": 3}"#;
    let batch = r#"{"ids": ["00000000-0000-4000-8000-000000000000"]}"#;

    let at_limit = api
        .send_event(&http_api_event(
            "POST",
            "/uploads",
            Some("alice"),
            Some(padded(upload, MAX_BODY_BYTES)),
        ))
        .await;
    assert_eq!(at_limit.status, StatusCode::CREATED, "{at_limit:?}");
    let at_limit = api
        .send_event(&http_api_event(
            "POST",
            "/files/download-urls",
            Some("alice"),
            Some(padded(batch, MAX_BODY_BYTES)),
        ))
        .await;
    assert_eq!(at_limit.status, StatusCode::OK, "{at_limit:?}");

    for (path, json) in [("/uploads", upload), ("/files/download-urls", batch)] {
        for len in [MAX_BODY_BYTES + 1, 1024 * 1024] {
            let answer = api
                .send_event(&http_api_event(
                    "POST",
                    path,
                    Some("alice"),
                    Some(padded(json, len)),
                ))
                .await;
            assert_eq!(
                (answer.status.as_u16(), answer.error_code()),
                (413, "too_large"),
                "{path} with {len} bytes"
            );
        }
    }
    // A base64-encoded body is limited by its decoded size, and still refused when too big.
    let mut event = http_api_event("POST", "/uploads", Some("alice"), None);
    event["body"] =
        json!(base64::engine::general_purpose::STANDARD.encode(padded(upload, MAX_BODY_BYTES + 1)));
    event["isBase64Encoded"] = json!(true);
    let answer = api.send_event(&event).await;
    assert_eq!(answer.error_code(), "too_large", "{answer:?}");
}

#[tokio::test]
async fn content_types_are_canonicalised_or_refused() {
    let standins = StandIns::start().await;
    let api = standins.api();
    for given in [
        "text/plain; charset=utf-8",
        "Text/PLAIN",
        "TEXT/plain;charset=\"UTF-8\"",
        " text/plain ",
        "text/plain;",
        "text/plain ; format=flowed",
    ] {
        let answer = api
            .call(
                "POST",
                "/uploads",
                Some("alice"),
                Some(json!({"filename": "a.txt", "contentType": given, "size": 3})),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{given:?}: {answer:?}");
        assert_eq!(
            answer.body["file"]["contentType"], "text/plain",
            "{given:?}"
        );
        assert_eq!(
            answer.body["upload"]["headers"]["content-type"], "text/plain",
            "{given:?}"
        );
        // And S3 takes exactly that header.
        assert_eq!(
            upload(&answer.body, b"abc").await.status(),
            200,
            "{given:?}"
        );
    }
    let refused = [
        ("text/html; x=text/plain", "content_type_not_allowed"),
        ("TEXT/HTML", "content_type_not_allowed"),
        ("image/svg+xml", "content_type_not_allowed"),
        ("text/plain, text/html", "invalid_request"),
        ("text/plain\r\nx-amz-acl: public-read", "invalid_request"),
        ("text/pla in", "invalid_request"),
        ("text/", "invalid_request"),
        ("/plain", "invalid_request"),
        ("text/plain/extra", "invalid_request"),
        ("", "invalid_request"),
        ("text\u{0}/plain", "invalid_request"),
        ("téxt/plain", "invalid_request"),
    ];
    for (given, code) in refused {
        let answer = api
            .call(
                "POST",
                "/uploads",
                Some("alice"),
                Some(json!({"filename": "a.txt", "contentType": given, "size": 3})),
            )
            .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (400, code),
            "{given:?}: {answer:?}"
        );
    }
}

#[tokio::test]
async fn unicode_filenames_are_kept_exactly_or_refused() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let reserve_named = async |name: &str| {
        let body = json!({"filename": name, "contentType": "text/plain", "size": 3});
        api.call("POST", "/uploads", Some("alice"), Some(body))
            .await
    };
    let emoji_255 = format!("{}abc", "😀".repeat(63)); // 63 × 4 + 3 = 255 bytes
    assert_eq!(emoji_255.len(), 255);
    let accepted = [
        "cafe\u{301}.txt".to_owned(), // combining acute accent
        "😀 party 🎉.txt".to_owned(),
        "שלום.txt".to_owned(), // right-to-left script, without override characters
        "a\u{200D}b.txt".to_owned(), // zero-width joiner (emoji sequences need it)
        "\"quotes\" and \\ and %41.txt".to_owned(),
        emoji_255.clone(),
        format!("{}é", "a".repeat(253)), // 255 bytes, 254 characters
    ];
    for name in &accepted {
        let answer = reserve_named(name).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{name:?}: {answer:?}");
        assert_eq!(answer.body["file"]["filename"], json!(name), "kept exactly");
        let id = file_id(&answer.body);
        assert_eq!(upload(&answer.body, b"abc").await.status(), 200);
        api.complete("alice", &id).await;
        let download = api.download_url("alice", &id, "").await;
        let url = download.body["url"].as_str().expect("download url");
        let disposition = query_param(url, "response-content-disposition").unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\""),
            "{disposition}"
        );
        // The ASCII fallback cannot break out of its quotes: after the quoted fallback comes
        // nothing, or exactly the RFC 5987 form, percent-encoded (no quote, space or backslash).
        let (fallback, after) = disposition
            .strip_prefix("attachment; filename=\"")
            .and_then(|rest| rest.split_once('"'))
            .unwrap_or_else(|| panic!("no closing quote: {disposition}"));
        assert!(
            fallback
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'\\'),
            "{disposition}"
        );
        let extended = after.strip_prefix("; filename*=UTF-8''");
        assert!(
            after.is_empty()
                || extended.is_some_and(|encoded| !encoded.is_empty()
                    && encoded
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b';' | b','))),
            "{disposition}"
        );
        assert!(!disposition.contains(['\r', '\n']), "{disposition}");
    }
    let refused = [
        "invoice\u{202E}fdp.exe".to_owned(), // right-to-left override
        "a\u{202D}b".to_owned(),             // left-to-right override
        "a\u{2066}b\u{2069}".to_owned(),     // isolates
        "a\u{200F}b".to_owned(),             // right-to-left mark
        "a\u{061C}b".to_owned(),             // Arabic letter mark
        "a\r\nContent-Type: text/html".to_owned(),
        "a\u{0}b".to_owned(),
        "a\u{85}b".to_owned(),            // C1 next line
        format!("{emoji_255}x"),          // 256 bytes
        format!("{}😀", "a".repeat(252)), // 256 bytes, 253 characters
    ];
    for name in &refused {
        let answer = reserve_named(name).await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (400, "invalid_request"),
            "{name:?}: {answer:?}"
        );
    }
    // A lone surrogate escape is not valid JSON text for a Rust string: refused, not a panic.
    let answer = api
        .send_event(&http_api_event(
            "POST",
            "/uploads",
            Some("alice"),
            Some(r#"{"filename": "\ud800.txt", "contentType": "text/plain", "size": 3}"#.into()),
        ))
        .await;
    assert_eq!(answer.error_code(), "invalid_request", "{answer:?}");
}

#[tokio::test]
async fn encoded_and_forged_ids_and_paging_input_are_clear_4xx() {
    let standins = StandIns::start().await;
    let api = standins.api();
    let id = api
        .stored_file("alice", "a.txt", "text/plain", b"<b>x</b>")
        .await;
    let bobs = api
        .stored_file("bob", "b.txt", "text/plain", b"<b>x</b>")
        .await;
    let encoded_hyphens = id.replace('-', "%2D");
    let double_encoded = id.replace('-', "%252D");
    let ids = [
        encoded_hyphens.as_str(),
        double_encoded.as_str(),
        &format!("{id}%2F..%2F{bobs}"),
        &format!("%7B{id}%7D"),
        &format!("urn:uuid:{id}"),
        &format!("{id}%20"),
        &format!("{id}\u{301}"),
        &bobs.replace('-', ""),
        "..",
        "%2e%2e%2f%2e%2e",
        "%252e%252e",
        "%00",
        &"9".repeat(10_000),
    ];
    for bad in ids {
        for (method, path) in [
            ("GET", format!("/files/{bad}")),
            ("GET", format!("/files/{bad}/download-url")),
            ("POST", format!("/files/{bad}/complete")),
            ("DELETE", format!("/files/{bad}")),
        ] {
            let answer = api.call(method, &path, Some("alice"), None).await;
            assert_eq!(
                (answer.status.as_u16(), answer.error_code()),
                (404, "not_found"),
                "{method} {path}"
            );
        }
    }
    // Paths that try to climb out of the route: no route, never someone else's file.
    for path in [
        format!("/files/{id}/../{bobs}/download-url"),
        format!("/files/{bobs}/download-url/../../{id}"),
        format!("/files//{id}"),
        format!("//files/{id}"),
        format!("/files/{id}/"),
    ] {
        let answer = api.call("GET", &path, Some("alice"), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {answer:?}");
    }
    // Batch: the same spellings are each not_found, the request itself fine.
    let answer = api
        .call(
            "POST",
            "/files/download-urls",
            Some("alice"),
            Some(json!({"ids": [encoded_hyphens, double_encoded, bobs, id]})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        answer.body["urls"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec![&id]
    );
    for bad in [
        json!({"ids": [1, 2]}),
        json!({"ids": [null]}),
        json!({"ids": {"0": id}}),
        json!({"ids": [id], "expiresIn": -1}),
        json!({"ids": [id], "expiresIn": 1e300}),
        json!({"ids": [id], "expiresIn": u64::MAX}),
        json!({"ids": [id], "disposition": "INLINE"}),
    ] {
        let answer = api
            .call(
                "POST",
                "/files/download-urls",
                Some("alice"),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {answer:?}");
    }

    let forged_tokens = [
        // Another user's partition named in the token, in every shape a forger might try.
        URL_SAFE_NO_PAD.encode(format!("bob/{bobs}")),
        URL_SAFE_NO_PAD.encode(format!("users/bob/{bobs}")),
        URL_SAFE_NO_PAD.encode(json!({"owner": "bob", "fileId": bobs}).to_string()),
        format!("{}==", URL_SAFE_NO_PAD.encode(&bobs)), // padding: not the format
        // As long as API Gateway lets a request line be (10 KiB). Far longer URIs never reach
        // the function, and lambda_http itself panics on a URI over 64 KiB.
        "A".repeat(9_000),
        URL_SAFE_NO_PAD.encode(vec![0xffu8; 36]),
    ];
    for token in &forged_tokens {
        let answer = api
            .call(
                "GET",
                &format!("/files?nextToken={token}"),
                Some("alice"),
                None,
            )
            .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (400, "invalid_request"),
            "{}",
            &token[..token.len().min(60)]
        );
    }
    for query in [
        "limit=-1",
        "limit=5.0",
        "limit=1e2",
        "limit=18446744073709551617",
        &format!("limit={}", "9".repeat(10_000)),
        "limit=",
        "limit=1&limit=2",
        "nextToken=",
        &format!("nextToken={0}&nextToken={0}", URL_SAFE_NO_PAD.encode(&id)),
    ] {
        let answer = api
            .call("GET", &format!("/files?{query}"), Some("alice"), None)
            .await;
        assert_4xx(&answer, &query[..query.len().min(60)]);
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    }
    // A well-formed token lists only the caller's own files.
    let answer = api
        .call(
            "GET",
            &format!(
                "/files?nextToken={}",
                URL_SAFE_NO_PAD.encode("00000000-0000-4000-8000-000000000000")
            ),
            Some("alice"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let listed: Vec<&str> = answer.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![id.as_str()]);
}

#[tokio::test]
async fn active_content_is_never_served_inline_even_when_uploads_allow_it() {
    let standins = StandIns::start().await;
    let active = [
        "text/html",
        "image/svg+xml",
        "application/xml",
        "text/xml",
        "text/javascript",
        "application/javascript",
        "application/xhtml+xml",
    ];
    let api = standins.api_with(
        UploadPolicy::new(active.iter().copied().chain(["image/png"]), 1024).unwrap(),
        ExpiryPolicy::new(300, 900).unwrap(),
    );
    let png = api
        .stored_file("alice", "a.png", "image/png", b"<b>x</b>")
        .await;
    let mut ids = Vec::new();
    for content_type in active {
        // Odd casing and parameters canonicalise to the same, still active, type.
        let given = format!("{}; charset=utf-8", content_type.to_uppercase());
        let id = api.stored_file("alice", "evil", &given, b"<b>x</b>").await;
        let default = api.download_url("alice", &id, "").await;
        assert_eq!(default.status, StatusCode::OK, "{default:?}");
        let url = default.body["url"].as_str().unwrap();
        assert_eq!(
            query_param(url, "response-content-disposition").as_deref(),
            Some("attachment; filename=\"evil\""),
            "{content_type}"
        );
        assert_eq!(
            query_param(url, "response-content-type").as_deref(),
            Some(content_type)
        );
        // The URL works, and the disposition is signed: it cannot be switched to inline.
        assert_eq!(http_client().get(url).send().await.unwrap().status(), 200);
        let switched = url.replace("attachment", "inline");
        assert_eq!(
            http_client().get(&switched).send().await.unwrap().status(),
            403,
            "{content_type}"
        );
        for query in ["?disposition=inline", "?disposition=inline&expiresIn=60"] {
            let inline = api.download_url("alice", &id, query).await;
            assert_eq!(
                (inline.status.as_u16(), inline.error_code()),
                (400, "invalid_request"),
                "{content_type}: {inline:?}"
            );
            assert!(inline.body.get("url").is_none());
        }
        ids.push(id);
    }
    let mut batch_ids = ids.clone();
    batch_ids.push(png.clone());
    let answer = api
        .call(
            "POST",
            "/files/download-urls",
            Some("alice"),
            Some(json!({"ids": batch_ids, "disposition": "inline"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let urls = answer.body["urls"].as_object().unwrap();
    assert_eq!(
        urls.keys().collect::<Vec<_>>(),
        vec![&png],
        "only the PNG inline"
    );
    for id in &ids {
        assert_eq!(answer.body["errors"][id]["code"], "invalid_request", "{id}");
    }
    let png_url = urls[&png]["url"].as_str().unwrap();
    assert!(
        query_param(png_url, "response-content-disposition")
            .unwrap()
            .starts_with("inline;")
    );
}
