//! The S3 events function: confirms uploads that S3 reports, removes records of objects that S3
//! reports removed, and deletes whatever lands in the bucket without a reservation.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use presign_gate::config::Config;
use presign_gate::events::{S3Event, handle_s3_event};
use presign_gate::{aws, telemetry};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    let files = aws::file_service(&config).await;
    let files = &files;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        handle_s3_event(files, event.payload)
            .await
            .map_err(|failed| Error::from(failed.to_string()))
    }))
    .await
}
