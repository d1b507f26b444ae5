//! The publisher, on the table's stream. Single-threaded tokio, like the other functions: one
//! batch at a time.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    presign_gate::entry::run_publish().await
}
