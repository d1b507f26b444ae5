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
    // S3's 409 to a conditional write (a PUT or CompleteMultipartUpload with `If-None-Match`)
    // when a conflicting operation on the key happens meanwhile (Amazon S3 API Reference,
    // PutObject and CompleteMultipartUpload, `If-None-Match`: a PUT is to be retried; a
    // completion's upload may be gone, to be started again). Not finished yet: retry later, and
    // the retry learns which way it went. Never a fault of ours to report as 500.
    "ConditionalRequestConflict",
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

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// A service's answer with `status` and, when given, an error code in its body.
    fn answered(status: u16, code: Option<&str>) -> SdkError<GetItemError, HttpResponse> {
        let mut metadata = ErrorMetadata::builder().message("refused");
        if let Some(code) = code {
            metadata = metadata.code(code);
        }
        let status = StatusCode::try_from(status).expect("an HTTP status");
        SdkError::service_error(
            GetItemError::generic(metadata.build()),
            Response::new(status, SdkBody::empty()),
        )
    }

    fn is_unavailable(err: SdkError<GetItemError, HttpResponse>) -> bool {
        match backend_error(err) {
            AppError::Unavailable(_) => true,
            AppError::Internal(_) => false,
            other => panic!("neither backend error: {other:?}"),
        }
    }

    #[test]
    fn a_timeout_or_an_unreachable_endpoint_is_unavailable() {
        assert!(is_unavailable(SdkError::timeout_error("attempt timed out")));
        assert!(!is_unavailable(SdkError::construction_failure(
            "the request could not be built"
        )));
    }

    #[test]
    fn throttling_and_server_faults_are_unavailable_by_status() {
        assert!(is_unavailable(answered(429, None)), "429");
        assert!(is_unavailable(answered(500, None)), "500");
        assert!(is_unavailable(answered(503, None)), "503");
        assert!(!is_unavailable(answered(400, None)), "400");
        assert!(!is_unavailable(answered(403, None)), "403");
        assert!(!is_unavailable(answered(499, None)), "499");
    }

    #[test]
    fn a_transient_error_code_is_unavailable_whatever_the_status() {
        assert!(is_unavailable(answered(400, Some("ThrottlingException"))));
        assert!(is_unavailable(answered(
            400,
            Some("ProvisionedThroughputExceededException")
        )));
        assert!(!is_unavailable(answered(
            400,
            Some("AccessDeniedException")
        )));
        assert!(!is_unavailable(answered(400, Some("ValidationException"))));
        // A 409 is no fault of ours to report, but it is worth retrying with this code only.
        assert!(is_unavailable(answered(
            409,
            Some("ConditionalRequestConflict")
        )));
        assert!(!is_unavailable(answered(409, Some("OperationAborted"))));
    }
}
