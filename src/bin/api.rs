//! The API function: wires configuration and AWS clients together once, at cold start, and hands
//! every request to the library.

use std::convert::Infallible;

use lambda_http::{Error, Request, service_fn};
use presign_gate::config::Config;
use presign_gate::http::Api;
use presign_gate::service::FileService;
use presign_gate::storage::S3Bucket;
use presign_gate::store::DynamoDbOwnershipStore;
use presign_gate::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
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
    let sdk = aws::lambda_sdk_config(config.region.clone()).await;
    let files = FileService::new(
        DynamoDbOwnershipStore::new(aws::dynamodb_client(&sdk), &config.table),
        S3Bucket::new(
            aws::s3_client(&sdk, config.force_path_style),
            &config.bucket,
        ),
        config.uploads,
        config.expiry,
    );
    let api = Api::new(files, config.dev_user_header);
    let api = &api;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(api.handle(request).await)
    }))
    .await
}
