//! The S3 events function. Single-threaded tokio, like the API function: one event at a time.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    presign_gate::entry::run_events().await
}
