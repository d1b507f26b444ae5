//! The bare hello handler on tokio's multi-thread runtime (the `#[tokio::main]` default).

use std::convert::Infallible;

use lambda_http::http::header::{CONTENT_TYPE, HeaderValue};
use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_request: Request| async {
        let mut response = Response::new(Body::from("hello"));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        Ok::<_, Infallible>(response)
    }))
    .await
}
