//! The reconciliation function: see `presign_gate::entry::run_reconcile`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    presign_gate::entry::run_reconcile().await
}
