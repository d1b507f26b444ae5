//! `src/bin/api.rs` of the product, line for line, on tokio's multi-thread runtime instead of
//! `current_thread`: the harness runs both to measure what the flavour costs.

use std::convert::Infallible;

use lambda_http::{Error, Request, service_fn};
use presign_gate::config::Config;
use presign_gate::http::Api;
use presign_gate::{aws, telemetry};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    if let Some(header) = &config.dev_user_header {
        tracing::warn!(
            header = header.as_str(),
            "DEV_USER_HEADER is set: any caller can claim any identity with this header. \
             This is for local development only and must never be deployed."
        );
    }
    let api = Api::new(aws::file_service(&config).await, config.dev_user_header);
    let api = &api;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(api.handle(request).await)
    }))
    .await
}
