//! The API as API Gateway fronts it: every request goes on to the function (cargo lambda watch's
//! HTTP address), whose own CORS headers are dropped; CORS is the template's `CorsConfiguration`,
//! applied outside this service by the CorsLayer (see `cors`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{CONNECTION, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::Service;

use crate::HttpBody;

#[derive(Clone)]
pub struct ApiFront {
    /// The function's HTTP address, possibly with a path prefix.
    function: Uri,
    client: Client<HttpConnector, Incoming>,
}

impl ApiFront {
    pub fn new(function: Uri) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self { function, client }
    }

    fn upstream(&self, request: &Uri) -> Option<Uri> {
        let prefix = self.function.path().trim_end_matches('/');
        let path = request.path_and_query().map_or("/", PathAndQuery::as_str);
        let mut parts = self.function.clone().into_parts();
        parts.path_and_query = Some(format!("{prefix}{path}").parse().ok()?);
        Uri::from_parts(parts).ok()
    }
}

impl Service<Request<Incoming>> for ApiFront {
    type Response = Response<HttpBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        let front = self.clone();
        Box::pin(async move {
            let Some(upstream) = front.upstream(request.uri()) else {
                return Ok(message(StatusCode::BAD_REQUEST, "Bad Request"));
            };
            *request.uri_mut() = upstream;
            // The Host the caller used stays, and the scheme is forwarded, as API Gateway does
            // (its event's `headers.host` and `x-forwarded-proto`): the function builds share
            // link URLs from them, which must lead back here, not to the function's own address.
            request.headers_mut().remove(CONNECTION);
            request
                .headers_mut()
                .insert("x-forwarded-proto", HeaderValue::from_static("http"));
            match front.client.request(request).await {
                Ok(response) => {
                    let (mut parts, body) = response.into_parts();
                    let own_cors: Vec<_> = parts
                        .headers
                        .keys()
                        .filter(|name| name.as_str().starts_with("access-control-"))
                        .cloned()
                        .collect();
                    for name in own_cors {
                        parts.headers.remove(name);
                    }
                    let body = body.map_err(Into::into).boxed_unsync();
                    Ok(Response::from_parts(parts, body))
                }
                Err(error) => {
                    // What API Gateway answers when its integration fails.
                    tracing::warn!(%error, "the API function did not answer");
                    Ok(message(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable",
                    ))
                }
            }
        })
    }
}

fn message(status: StatusCode, text: &str) -> Response<HttpBody> {
    crate::json_response(
        status,
        "application/json",
        &serde_json::json!({ "message": text }),
    )
}
