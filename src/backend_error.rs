//! Classifying AWS SDK failures into the product's two backend errors. A leaf: the adapters in
//! `store` and `bucket` use it, and it uses nothing of theirs, nor the module that builds clients.

use std::error::Error;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::AppError;

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
