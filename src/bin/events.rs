//! PLACEHOLDER for the S3 events function (ObjectCreated / ObjectRemoved under `users/`), so that
//! `sam build` and `make build` have a second binary to package. The real handler is written on
//! main and replaces this file; this one only logs how many records it was handed.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use presign_gate::telemetry;
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let records = event.payload["Records"].as_array().map_or(0, Vec::len);
        tracing::warn!(records, "placeholder events function: records ignored");
        Ok::<_, Error>(())
    }))
    .await
}
