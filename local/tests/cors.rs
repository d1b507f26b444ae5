//! CORS as the deployed stack answers it, from template.yaml's rules: the bucket's `CorsRules`
//! (a preflight it does not allow gets 403, as S3 answers: "Troubleshooting CORS", Amazon S3 User
//! Guide, cors-troubleshooting.html) and the HTTP API's `CorsConfiguration` (API Gateway answers
//! preflights itself and replaces the function's CORS headers: "Configuring CORS for an HTTP
//! API", API Gateway Developer Guide, http-api-cors.html).

mod support;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use reqwest::Method;
use support::{Options, Recorder, Stack, http, put, sha256_base64};

const UPLOAD_HEADERS: &str = "content-type,if-none-match,x-amz-checksum-sha256";

async fn preflight(url: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    let mut request = http()
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method);
    if !headers.is_empty() {
        request = request.header("access-control-request-headers", headers);
    }
    request.send().await.expect("preflight answered")
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn the_bucket_allows_a_browser_upload_from_the_demo_origin() {
    let stack = Stack::start(Options::default()).await;
    let origin = stack.demo_origin();
    let object = format!("{}/files/users/alice/x", stack.s3_endpoint());
    let allowed = preflight(&object, &origin, "PUT", UPLOAD_HEADERS).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some(origin.as_str())
    );
    assert!(
        header(&allowed, "access-control-allow-methods")
            .unwrap()
            .contains("PUT")
    );
    assert_eq!(header(&allowed, "access-control-max-age"), Some("600"));
    let get = preflight(&object, &origin, "GET", "").await;
    assert_eq!(get.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_bucket_refuses_a_preflight_its_rules_do_not_allow_with_403() {
    let stack = Stack::start(Options::default()).await;
    let origin = stack.demo_origin();
    let object = format!("{}/files/users/alice/x", stack.s3_endpoint());
    for (origin, method, headers, what) in [
        (
            "http://elsewhere.example",
            "PUT",
            "content-type",
            "an origin not listed",
        ),
        (origin.as_str(), "DELETE", "", "a method not allowed"),
        (
            origin.as_str(),
            "PUT",
            "content-type,x-amz-meta-note",
            "a header not allowed",
        ),
    ] {
        let refused = preflight(&object, origin, method, headers).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{what}");
        let any_cors = refused
            .headers()
            .keys()
            .any(|name| name.as_str().starts_with("access-control-"));
        assert!(!any_cors, "{what}: {:?}", refused.headers());
        assert!(
            refused.text().await.unwrap().contains("AccessForbidden"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn local_allowed_origins_are_allowed_besides_the_demo() {
    let stack = Stack::start(Options {
        extra_origins: vec!["http://localhost:5173"],
        ..Options::default()
    })
    .await;
    let object = format!("{}/files/users/alice/x", stack.s3_endpoint());
    let allowed = preflight(&object, "http://localhost:5173", "PUT", "content-type").await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("http://localhost:5173")
    );
}

#[tokio::test]
async fn a_presigned_put_from_an_allowed_origin_exposes_its_etag() {
    let stack = Stack::start(Options::default()).await;
    let origin = stack.demo_origin();
    let body = b"exposed";
    let (url, headers) = stack
        .presign_put(
            "users/alice/etag",
            "text/plain",
            body.len(),
            Some(&sha256_base64(body)),
        )
        .await;
    let answer = put(&url, &headers, &[("origin", &origin)], body).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        header(&answer, "access-control-allow-origin"),
        Some(origin.as_str())
    );
    let exposed = header(&answer, "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.split(',').any(|h| h.trim() == "etag"), "{exposed}");
    assert!(header(&answer, "etag").is_some());

    // From an origin the rules do not list the write still happens (CORS is the browser's
    // check), but nothing allows a page to read the answer.
    let (url, headers) = stack
        .presign_put("users/alice/other", "text/plain", body.len(), None)
        .await;
    let answer = put(
        &url,
        &headers,
        &[("origin", "http://elsewhere.example")],
        body,
    )
    .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
}

/// A stand-in API function that answers with permissive CORS headers of its own.
async fn permissive_function() -> Recorder {
    Recorder::start(|_| {
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("access-control-allow-origin", "*")
            .header("access-control-allow-headers", "*")
            .body(Full::new(Bytes::from_static(b"{\"items\":[]}")))
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn the_api_answers_cors_from_its_template_configuration_only() {
    let mut function = permissive_function().await;
    let stack = Stack::start(Options {
        api_function: Some(
            format!("http://{}/lambda-url/api", function.address)
                .parse()
                .unwrap(),
        ),
        dev_user_header: Some("x-dev-user"),
        ..Options::default()
    })
    .await;
    let origin = stack.demo_origin();
    let api = format!("http://{}", stack.aws.api.expect("API front"));

    // The preflight is answered in front: the function never sees it.
    let allowed = preflight(
        &format!("{api}/uploads"),
        &origin,
        "POST",
        "content-type,x-dev-user",
    )
    .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some(origin.as_str())
    );
    let headers = header(&allowed, "access-control-allow-headers").unwrap();
    for wanted in ["authorization", "content-type", "x-dev-user"] {
        assert!(headers.split(',').any(|h| h.trim() == wanted), "{headers}");
    }

    // A request goes on to the function under its path prefix; the function's own `*` is
    // replaced by the template's rule.
    let answer = http()
        .get(format!("{api}/files?limit=5"))
        .header("origin", &origin)
        .header("x-dev-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        header(&answer, "access-control-allow-origin"),
        Some(origin.as_str())
    );
    assert_eq!(header(&answer, "access-control-allow-headers"), None);
    assert_eq!(
        header(&answer, "access-control-expose-headers"),
        Some("retry-after")
    );
    let seen = function.next().await;
    assert_eq!(seen.path, "/lambda-url/api/files?limit=5");
    assert_eq!(seen.headers["x-dev-user"], "alice");
    assert!(
        function.received.try_recv().is_err(),
        "the preflight reached the function"
    );

    // An origin the configuration does not list gets no CORS header: the browser refuses.
    let elsewhere = http()
        .get(format!("{api}/files"))
        .header("origin", "http://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&elsewhere, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn without_the_dev_header_setting_the_api_does_not_allow_it() {
    let function = permissive_function().await;
    let stack = Stack::start(Options {
        api_function: Some(format!("http://{}", function.address).parse().unwrap()),
        ..Options::default()
    })
    .await;
    let api = format!("http://{}", stack.aws.api.expect("API front"));
    let answer = preflight(
        &format!("{api}/uploads"),
        &stack.demo_origin(),
        "POST",
        "x-dev-user",
    )
    .await;
    let headers = header(&answer, "access-control-allow-headers").unwrap_or_default();
    assert!(!headers.contains("x-dev-user"), "{headers}");
}

#[tokio::test]
async fn an_api_function_that_does_not_answer_is_a_503_with_cors() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = unused.local_addr().unwrap();
    drop(unused);
    let stack = Stack::start(Options {
        api_function: Some(format!("http://{address}").parse().unwrap()),
        ..Options::default()
    })
    .await;
    let origin = stack.demo_origin();
    let api = format!("http://{}", stack.aws.api.expect("API front"));
    let answer = http()
        .get(format!("{api}/files"))
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header(&answer, "access-control-allow-origin"),
        Some(origin.as_str())
    );
}
