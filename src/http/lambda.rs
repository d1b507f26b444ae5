//! The bridge from the Lambda runtime to [`Api::handle`](super::Api::handle), with one guard that
//! `lambda_http` lacks.
//!
//! `lambda_http` turns the API Gateway event into an `http::Request` with a conversion that panics
//! when the path or raw query string is not a valid URI (found by `make fuzz`). The runtime would
//! catch the panic and report a failed invocation, which API Gateway answers with a 500. The guard
//! catches it first and answers what it is: a malformed request, 400 `invalid_request`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::{Context, Poll};

use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use lambda_http::request::{LambdaRequest, RequestOrigin};
use lambda_http::{Body, BoxFuture, LambdaEvent, Service};
use serde::Serialize;

use super::response::error_response;
use crate::error::AppError;

/// Wraps `lambda_http`'s `Adapter`.
pub struct RejectUnparseable<S>(pub S);

/// What goes back to API Gateway: the adapter's response, or the guard's refusal in the payload
/// format the request came in. Both serialise to what API Gateway expects.
#[derive(Serialize)]
#[serde(untagged)]
pub enum GuardedResponse<R> {
    Handled(R),
    RefusedRest(ApiGatewayProxyResponse),
    RefusedHttp(ApiGatewayV2httpResponse),
}

impl<S> Service<LambdaEvent<LambdaRequest>> for RejectUnparseable<S>
where
    S: Service<LambdaEvent<LambdaRequest>>,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = GuardedResponse<S::Response>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<LambdaRequest>) -> Self::Future {
        let origin = event.payload.request_origin();
        match catch_unwind(AssertUnwindSafe(|| self.0.call(event))) {
            Ok(response) => Box::pin(async move { response.await.map(GuardedResponse::Handled) }),
            Err(_) => {
                tracing::info!(
                    status = 400,
                    code = "invalid_request",
                    "request URI refused"
                );
                let response = malformed_request(&origin);
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

/// The 400 for a request `lambda_http` could not parse, in the payload format it came in.
fn malformed_request<R>(origin: &RequestOrigin) -> GuardedResponse<R> {
    let error = AppError::invalid("the request path or query string is not a valid URI");
    let (parts, body) = error_response(&error).into_parts();
    let body = match body {
        Body::Text(text) => Some(Body::Text(text)),
        _ => None,
    };
    let status_code = i64::from(parts.status.as_u16());
    if matches!(origin, RequestOrigin::ApiGatewayV1) {
        let mut response = ApiGatewayProxyResponse::default();
        response.status_code = status_code;
        response.headers = parts.headers;
        response.body = body;
        GuardedResponse::RefusedRest(response)
    } else {
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = status_code;
        response.headers = parts.headers;
        response.body = body;
        GuardedResponse::RefusedHttp(response)
    }
}
