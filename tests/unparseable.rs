//! `lambda_http` panics while turning an event whose raw query string is not a valid URI into a
//! request (found by `make fuzz`). The function's guard answers 400 instead of letting the
//! invocation fail, which API Gateway would turn into a 500.

use std::convert::Infallible;

use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Body, Context, LambdaEvent, Request, Response, Service, service_fn};
use presign_gate::http::RejectUnparseable;
use presign_gate_test_support::HttpApiEvent;
use serde_json::{Value, json};

fn guarded() -> RejectUnparseable<
    impl Service<
        LambdaEvent<LambdaRequest>,
        Response: serde::Serialize + Send + 'static,
        Error = Infallible,
        Future: Send + 'static,
    >,
> {
    let handler = service_fn(|_request: Request| async {
        Ok::<_, Infallible>(Response::new(Body::Text("handled".into())))
    });
    RejectUnparseable(Adapter::from(handler))
}

async fn answer(event: Value) -> Value {
    let payload: LambdaRequest = serde_json::from_value(event).expect("an API Gateway event");
    let response = guarded()
        .call(LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

fn http_api_event(raw_query: &str) -> Value {
    HttpApiEvent::raw("GET", "/files", raw_query).to_json()
}

#[tokio::test]
async fn an_invalid_query_string_is_a_400_not_a_failed_invocation() {
    // Without the guard, lambda_http panics on this event (if it stops doing so, the guard can go).
    let payload: LambdaRequest = serde_json::from_value(http_api_event("limit=\"1 2\"")).unwrap();
    let mut bare = guarded().0;
    let unguarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(bare.call(LambdaEvent::new(payload, Context::default())))
    }));
    assert!(
        unguarded.is_err(),
        "lambda_http no longer panics on an invalid query string"
    );

    let refused = answer(http_api_event("limit=\"1 2\"")).await;
    assert_eq!(refused["statusCode"], 400, "{refused}");
    let body: Value = serde_json::from_str(refused["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(refused["headers"]["content-type"], "application/json");
    assert_eq!(refused["headers"]["cache-control"], "no-store");

    let handled = answer(http_api_event("limit=2")).await;
    assert_eq!(
        (handled["statusCode"].clone(), handled["body"].clone()),
        (json!(200), json!("handled"))
    );
}
