//! The environment every function starts in: what Lambda gives every function, plus the
//! function's own settings, identical for all so that the figures compare the code alone.

use presign_gate_test_support::runtime_api::lambda_environment;

pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "presign-gate-bench-key";
pub const SECRET_KEY: &str = "presign-gate-bench-secret";
const BUCKET: &str = "files";
pub const TABLE: &str = "file-records";

/// The variables of every function's process, with the DynamoDB endpoint at `dynamodb_endpoint`.
pub fn base_env(dynamodb_endpoint: &str) -> Vec<(String, String)> {
    let mut env = lambda_environment("bench");
    env.extend(
        [
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_SESSION_TOKEN", "bench-session-token"),
            ("FILES_BUCKET", BUCKET),
            ("FILES_TABLE", TABLE),
            ("RUST_LOG", "info"),
            // An unused port: an instance-metadata probe would fail here rather than go anywhere.
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"),
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    env
}
