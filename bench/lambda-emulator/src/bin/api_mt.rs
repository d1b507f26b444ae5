//! The product's API function on tokio's multi-thread runtime instead of `current_thread`: the
//! harness runs both to measure what the flavour costs.

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    presign_gate::entry::run_api().await
}
