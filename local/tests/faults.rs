//! The faults a test injects through the demo origin's `/__faults`: S3 and the API answer the
//! next matching requests with the error asked for, inside their CORS rules (the preflight is
//! still the rule's, the error carries the rule's headers), then serve as before.

mod support;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Options, Recorder, Stack, http, put};

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn control(stack: &Stack, method: Method, body: Option<Value>) -> reqwest::Response {
    let mut request = http().request(method, format!("{}/__faults", stack.demo_origin()));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().await.expect("the demo server answers")
}

async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_str(&response.text().await.expect("a body")).expect("a JSON body")
}

async fn report(stack: &Stack) -> Value {
    json_of(control(stack, Method::GET, None).await).await
}

#[tokio::test]
async fn s3_answers_injected_503s_with_the_buckets_cors_then_stores_the_object() {
    let stack = Stack::start(Options::default()).await;
    let origin = stack.demo_origin();
    let queued = control(
        &stack,
        Method::POST,
        Some(json!({ "s3": [{ "status": 503, "times": 2, "method": "PUT" }] })),
    )
    .await;
    assert_eq!(queued.status(), StatusCode::NO_CONTENT);

    // The preflight is the bucket's CORS rule's, and takes no fault.
    let object = format!("{}/files/users/alice/faulted", stack.s3_endpoint());
    let preflight = http()
        .request(Method::OPTIONS, &object)
        .header("origin", &origin)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "content-type,if-none-match",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        Some(origin.as_str())
    );

    let body = b"faulted bytes";
    let (url, headers) = stack
        .presign_put("users/alice/faulted", "text/plain", body.len(), None)
        .await;
    for attempt in 1..=2 {
        let refused = put(&url, &headers, &[("origin", &origin)], body).await;
        assert_eq!(
            refused.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "attempt {attempt}"
        );
        assert_eq!(
            header(&refused, "access-control-allow-origin"),
            Some(origin.as_str())
        );
        assert_eq!(
            header(&refused, "access-control-expose-headers").map(str::to_ascii_lowercase),
            Some("etag".into())
        );
        assert_eq!(header(&refused, "content-type"), Some("application/xml"));
        let text = refused.text().await.unwrap();
        assert!(text.contains("<Code>SlowDown</Code>"), "{text}");
        assert_eq!(stack.stored("users/alice/faulted").await, None);
    }
    let stored = put(&url, &headers, &[("origin", &origin)], body).await;
    assert_eq!(stored.status(), StatusCode::OK);
    assert_eq!(
        stack.stored("users/alice/faulted").await.as_deref(),
        Some(&body[..])
    );
    assert_eq!(
        report(&stack).await,
        json!({ "s3": [], "api": [], "scans": [], "scanDelayMs": null, "putEvents": [],
                "served": { "s3": 2, "api": 0, "scans": 0, "putEvents": 0 } })
    );
}

#[tokio::test]
async fn a_fault_takes_only_the_requests_it_names_and_a_bad_plan_queues_nothing() {
    let stack = Stack::start(Options::default()).await;
    for bad in [
        json!({ "s3": [{ "status": 200 }] }),
        json!({ "s3": [{ "status": 503, "times": 0 }] }),
        json!({ "s3": [{ "status": 503 }], "api": [{ "status": 503, "method": "NOT A METHOD" }] }),
        json!({ "s3": [{ "status": 503, "unknown": true }] }),
        json!({ "dynamodb": [] }),
    ] {
        let refused = control(&stack, Method::POST, Some(bad.clone())).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    // A plan that is not sent as JSON, as another origin's page could send it without a
    // preflight (a `text/plain` POST is a CORS "simple request"), queues nothing.
    let simple = http()
        .post(format!("{}/__faults", stack.demo_origin()))
        .header("content-type", "text/plain")
        .body(json!({ "s3": [{ "status": 503 }] }).to_string())
        .send()
        .await
        .expect("the demo server answers");
    assert_eq!(simple.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(report(&stack).await["s3"], json!([]));

    // A GET fault: the PUT goes through, the GET takes it, with S3's code for a 500.
    control(
        &stack,
        Method::POST,
        Some(json!({ "s3": [{ "status": 500, "method": "GET", "path": "/users/bob/k" }] })),
    )
    .await;
    stack.put_object("users/bob/k", b"kept").await;
    let get = http()
        .get(format!("{}/files/users/bob/k", stack.s3_endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        get.text()
            .await
            .unwrap()
            .contains("<Code>InternalError</Code>")
    );
    assert_eq!(
        stack.stored("users/bob/k").await.as_deref(),
        Some(&b"kept"[..])
    );

    // DELETE clears what is queued and the counts.
    control(
        &stack,
        Method::POST,
        Some(json!({ "s3": [{ "status": 503 }] })),
    )
    .await;
    assert_eq!(
        control(&stack, Method::DELETE, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        report(&stack).await,
        json!({ "s3": [], "api": [], "scans": [], "scanDelayMs": null, "putEvents": [],
                "served": { "s3": 0, "api": 0, "scans": 0, "putEvents": 0 } })
    );
}

#[tokio::test]
async fn the_api_answers_an_injected_503_with_retry_after_and_its_cors_and_the_function_never_sees_it()
 {
    let mut function = Recorder::start(|_| {
        Response::builder()
            .status(StatusCode::CREATED)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    })
    .await;
    let stack = Stack::start(Options {
        api_function: Some(format!("http://{}", function.address).parse().unwrap()),
        ..Options::default()
    })
    .await;
    let origin = stack.demo_origin();
    let api = format!("http://{}", stack.aws.api.expect("API front"));
    control(
        &stack,
        Method::POST,
        Some(json!({ "api": [
            { "status": 503, "method": "POST", "path": "/uploads", "retryAfter": "1" },
            { "status": 429, "path": "/files" },
        ] })),
    )
    .await;
    let send = |method: Method, path: &str| {
        http()
            .request(method, format!("{api}{path}"))
            .header("origin", &origin)
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };

    let refused = send(Method::POST, "/uploads").await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&refused, "retry-after"), Some("1"));
    assert_eq!(
        header(&refused, "access-control-allow-origin"),
        Some(origin.as_str())
    );
    assert_eq!(
        header(&refused, "access-control-expose-headers"),
        Some("retry-after")
    );
    let body = json_of(refused).await;
    assert_eq!(body["error"]["code"], "unavailable");

    // API Gateway's throttling: no error code.
    let throttled = send(Method::GET, "/files").await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        json_of(throttled).await,
        json!({ "message": "Too Many Requests" })
    );
    assert!(
        function.received.try_recv().is_err(),
        "a faulted request reached the function"
    );

    let passed = send(Method::POST, "/uploads").await.unwrap();
    assert_eq!(passed.status(), StatusCode::CREATED);
    assert_eq!(function.next().await.path, "/uploads");
    assert_eq!(
        report(&stack).await["served"],
        json!({ "s3": 0, "api": 2, "scans": 0, "putEvents": 0 })
    );
}
