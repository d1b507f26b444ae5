//! How long a presigned URL can really work: no longer than the credentials that sign it.
//!
//! A URL signed with temporary credentials (a Lambda function's execution role) stops working
//! when their session ends, whatever its `X-Amz-Expires` says, and S3 then answers 403
//! `ExpiredToken` (Amazon S3 User Guide, "Download and upload objects with presigned URLs",
//! expiration time: with IAM role credentials the URL expires when the role session does, even
//! if a longer time was asked; AWS Knowledge Center, "Why is my presigned URL for an Amazon S3
//! bucket expiring before the expiration time that I specified?"). So a URL is signed for no
//! longer than the credentials have left, less a margin, and reports that true end.

use std::time::{Duration, SystemTime};

use super::Validity;
use crate::error::AppError;

/// Taken off what the credentials have left: the URL must still work when it reaches S3, on a
/// clock that may differ from ours by a little. Also the SDK's own margin: its credentials cache
/// refreshes credentials 10 s before they expire, so fresher ones sign the next URL.
pub(crate) const CREDENTIALS_MARGIN: Duration = Duration::from_secs(10);

/// `validity` cut to end `CREDENTIALS_MARGIN` before `expiry`, when the credentials have one
/// (those from Lambda's environment variables carry none: the template's `UrlTtlMaxSeconds`
/// bounds those). Credentials with less than a second left after the margin sign nothing:
/// unavailable, retry (the credentials are refreshed by then).
pub(crate) fn bounded(
    validity: Validity,
    expiry: Option<SystemTime>,
) -> Result<Validity, AppError> {
    let Some(expiry) = expiry else {
        return Ok(validity);
    };
    let left = expiry
        .duration_since(validity.start)
        .unwrap_or_default()
        .saturating_sub(CREDENTIALS_MARGIN);
    // Whole seconds, as SigV4's X-Amz-Expires is, so that start + lifetime is the true end.
    let left = Duration::from_secs(left.as_secs());
    if left < Duration::from_secs(1) {
        return Err(AppError::Unavailable(
            "the signing credentials expire too soon to sign a URL".into(),
        ));
    }
    Ok(Validity {
        start: validity.start,
        lifetime: validity.lifetime.min(left),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn validity(lifetime: u64) -> Validity {
        Validity {
            start: at(1_000),
            lifetime: Duration::from_secs(lifetime),
        }
    }

    fn lifetime(result: Result<Validity, AppError>) -> Option<u64> {
        result.ok().map(|v| v.lifetime.as_secs())
    }

    #[test]
    fn a_url_ends_a_margin_before_its_credentials() {
        assert_eq!(lifetime(bounded(validity(900), Some(at(1_060)))), Some(50));
        // Whole seconds only.
        let expiry = at(1_060) + Duration::from_millis(999);
        assert_eq!(lifetime(bounded(validity(900), Some(expiry))), Some(50));
        // Credentials that outlive the asked lifetime leave it as it is.
        assert_eq!(lifetime(bounded(validity(300), Some(at(5_000)))), Some(300));
        // No expiry known: as asked.
        assert_eq!(lifetime(bounded(validity(900), None)), Some(900));
        assert_eq!(bounded(validity(900), None).unwrap().start, at(1_000));
    }

    #[test]
    fn credentials_about_to_expire_sign_nothing() {
        for expiry in [at(1_010), at(1_010) + Duration::from_millis(999), at(900)] {
            assert!(
                matches!(
                    bounded(validity(900), Some(expiry)),
                    Err(AppError::Unavailable(_))
                ),
                "{expiry:?}"
            );
        }
        assert_eq!(lifetime(bounded(validity(900), Some(at(1_011)))), Some(1));
    }
}
