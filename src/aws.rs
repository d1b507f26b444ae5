//! Building the SDK clients once at cold start, with the bounds every call must respect, and
//! classifying SDK failures into the product's two backend errors.

use std::error::Error;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::config::Config;
use crate::error::AppError;
use crate::service::FileService;
use crate::storage::S3Bucket;
use crate::store::DynamoDbOwnershipStore;

/// A stalled backend must turn into a 503 well inside 10 seconds, not hang until the Lambda
/// timeout: each attempt is cut at 2 s (1 s to connect), and the whole call, retries and backoff
/// included, at 6 s.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build()
}

fn retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(500))
}

/// The loader every client starts from, with timeouts and retries already bounded. Callers add
/// region and credentials: the Lambda entry points from the environment, tests explicitly.
pub fn config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .retry_config(retries())
}

/// The SDK configuration for a Lambda function: region and credentials from the environment that
/// Lambda sets, so start-up makes no network call and never probes the instance metadata service.
/// Endpoint overrides (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_DYNAMODB`) are honoured by the
/// loader itself.
pub async fn lambda_sdk_config(region: String) -> SdkConfig {
    config_loader()
        .region(aws_config::Region::new(region))
        .credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
        .load()
        .await
}

/// The application over DynamoDB and S3, as both Lambda functions run it.
pub async fn file_service(config: &Config) -> FileService<DynamoDbOwnershipStore, S3Bucket> {
    let sdk = lambda_sdk_config(config.region.clone()).await;
    FileService::new(
        DynamoDbOwnershipStore::new(dynamodb_client(&sdk), &config.table),
        S3Bucket::new(s3_client(&sdk, config.force_path_style), &config.bucket),
        config.uploads.clone(),
        config.expiry,
    )
}

pub fn s3_client(sdk: &SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

/// Error codes AWS services use for "slow down" or a passing fault on their side.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "TransactionConflictException",
];

/// `Unavailable` (503, retry later) for throttling, timeouts, unreachable endpoints and 5xx;
/// `Internal` (500) for everything else, such as access denied or a malformed request, which
/// retrying will not fix. The full SDK error is kept as the source for the log.
pub(crate) fn backend_error<E>(err: SdkError<E, HttpResponse>) -> AppError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status == 429
                || status >= 500
                || service
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    };
    let source = DisplayErrorContext(&err).to_string().into();
    if transient {
        AppError::Unavailable(source)
    } else {
        AppError::Internal(source)
    }
}
