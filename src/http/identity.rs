//! Who is calling. Only API Gateway's authorizer, which verified the token, can say; nothing in
//! the body, query or path is ever consulted.

use lambda_http::http::HeaderName;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::domain::OwnerId;
use crate::error::AppError;

/// The caller's `sub`: from the JWT authorizer's claims (HTTP API, payload 2.0) or the Cognito
/// authorizer's claims (REST API, payload 1.0). Only when the function runs locally with
/// `DEV_USER_HEADER` set, and only when no authorizer spoke, that header names the caller.
pub fn caller(
    request: &Request,
    dev_user_header: Option<&HeaderName>,
) -> Result<OwnerId, AppError> {
    let authorizer_sub = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|authorizer| authorizer.jwt.as_ref())
            .and_then(|jwt| jwt.claims.get("sub"))
            .map(String::as_str),
        Some(RequestContext::ApiGatewayV1(context)) => context
            .authorizer
            .fields
            .get("claims")
            .and_then(|claims| claims.get("sub"))
            .and_then(|sub| sub.as_str()),
        _ => None,
    };
    let sub = match authorizer_sub {
        Some(sub) => Some(sub),
        None => dev_user_header
            .and_then(|header| request.headers().get(header))
            .and_then(|value| value.to_str().ok()),
    };
    sub.and_then(OwnerId::parse)
        .ok_or(AppError::Unauthenticated)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `sub` both samples' authorizers verified.
    const SAMPLE_SUB: &str = "3f1c0b5e-9d2a-4c7e-8b1f-2a6d4e8c9f01";

    fn request(event: &str) -> Request {
        lambda_http::request::from_str(event).expect("a sample API Gateway event")
    }

    #[test]
    fn the_jwt_authorizer_names_the_caller_of_an_http_api_request() {
        let request = request(include_str!("../../events/http-api/get-file.json"));
        assert_eq!(caller(&request, None).unwrap().as_str(), SAMPLE_SUB);
    }

    #[test]
    fn the_cognito_authorizer_names_the_caller_of_a_rest_api_request() {
        let request = request(include_str!("../../events/rest-api/get-file-cognito.json"));
        assert!(matches!(
            request.request_context_ref(),
            Some(RequestContext::ApiGatewayV1(_))
        ));
        assert_eq!(caller(&request, None).unwrap().as_str(), SAMPLE_SUB);
    }
}
