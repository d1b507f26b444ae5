//! What the API function runs, whatever tokio runtime its `main` chooses (the bench harness runs it
//! on both): configuration read and checked and AWS clients built once, at cold start, then the
//! runtime loop handing every invocation to the library.

use std::convert::Infallible;

use lambda_http::{Adapter, Error, Request, service_fn};

use crate::config::Config;
use crate::http::{Api, RejectUnparseable};
use crate::{aws, telemetry};

/// The API function behind API Gateway.
pub async fn run_api() -> Result<(), Error> {
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
    // The API lives as long as the process; a 'static borrow lets every request future own it.
    let api: &'static Api<_, _> = Box::leak(Box::new(api));
    let handler = service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(api.handle(request).await)
    });
    lambda_runtime::run(RejectUnparseable(Adapter::from(handler))).await
}
