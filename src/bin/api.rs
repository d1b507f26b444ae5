//! The API function. Single-threaded tokio: measured cheaper per invocation than the multi-thread
//! runtime (BENCHMARKS.md), and a Lambda environment handles one request at a time.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    presign_gate::entry::run_api().await
}
