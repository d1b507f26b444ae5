//! CORS for the bucket and the API: tower-http's CorsLayer, configured from template.yaml's rules.
//!
//! tower-http answers every preflight itself with 200, leaving out `Access-Control-Allow-Origin`
//! for an origin it does not allow and listing its allowed methods and headers whatever was
//! asked. A browser then fails the request, but S3 answers such a preflight with 403 Forbidden
//! ("Troubleshooting CORS: 403 Forbidden error: This CORS request is not allowed", Amazon S3 User
//! Guide, cors-troubleshooting.html; "OPTIONS object", Amazon S3 API Reference,
//! RESTOPTIONSobject.html: no Access-Control header when a requested header is not allowed).
//! [`RefuseDisallowedPreflight`] reads tower-http's answer and turns a preflight it did not fully
//! allow (origin, method, every requested header) into S3's 403; it decides nothing from the
//! rules itself.
//!
//! API Gateway's HTTP API answers preflights itself and replaces whatever CORS headers the
//! function returns with its configured ones ("Configuring CORS for an HTTP API", API Gateway
//! Developer Guide, http-api-cors.html): the API front strips the function's CORS headers and
//! applies the CorsLayer of the template's `CorsConfiguration`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE,
};
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::Service;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::HttpBody;
use crate::template::{CorsRule, Origins};

/// The CorsLayer for `rule`, with `extra_headers` allowed besides the rule's own.
pub fn layer(rule: &CorsRule, extra_headers: &[HeaderName]) -> CorsLayer {
    let origins = match &rule.origins {
        Origins::Any => AllowOrigin::any(),
        Origins::List(origins) => AllowOrigin::list(origins.iter().cloned()),
    };
    let headers = rule
        .allowed_headers
        .iter()
        .chain(extra_headers)
        .cloned()
        .collect::<Vec<_>>();
    let mut layer = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(AllowMethods::list(rule.methods.iter().cloned()))
        .allow_headers(AllowHeaders::list(headers))
        .expose_headers(ExposeHeaders::list(rule.exposed_headers.iter().cloned()))
        .allow_credentials(rule.allow_credentials);
    if let Some(max_age) = rule.max_age {
        layer = layer.max_age(max_age);
    }
    layer
}

/// S3's refusal of a preflight that tower-http's CorsLayer (inside) did not fully allow.
#[derive(Clone)]
pub struct RefuseDisallowedPreflight<S> {
    inner: S,
}

impl<S> RefuseDisallowedPreflight<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<B>> for RefuseDisallowedPreflight<S>
where
    S: Service<Request<B>, Response = Response<HttpBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<HttpBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let preflight = (request.method() == Method::OPTIONS).then(|| request.headers().clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            match preflight {
                Some(asked) if !preflight_allowed(&asked, response.headers()) => {
                    Ok(cors_forbidden())
                }
                _ => Ok(response),
            }
        })
    }
}

/// Whether a preflight answer allows the origin, the method and every header that was asked.
fn preflight_allowed(asked: &HeaderMap, answer: &HeaderMap) -> bool {
    let listed = |name: &HeaderName| -> Vec<String> {
        answer
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|item| item.trim().to_ascii_lowercase())
            .filter(|item| !item.is_empty())
            .collect()
    };
    let covers = |allowed: &[String], wanted: &str| {
        allowed
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(wanted))
    };
    let Some(method) = asked
        .get(ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|m| m.to_str().ok())
    else {
        return false;
    };
    let allowed_headers = listed(&ACCESS_CONTROL_ALLOW_HEADERS);
    let headers_allowed = asked
        .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|header| !header.is_empty())
        .all(|header| covers(&allowed_headers, header));
    answer.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN)
        && covers(&listed(&ACCESS_CONTROL_ALLOW_METHODS), method)
        && headers_allowed
}

/// S3's answer to a preflight its CORS rules do not allow: 403, no Access-Control headers.
fn cors_forbidden() -> Response<HttpBody> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessForbidden</Code>\
        <Message>CORSResponse: This CORS request is not allowed.</Message></Error>";
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&HeaderName, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| ((*name).clone(), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn a_preflight_is_allowed_only_when_origin_method_and_every_header_are() {
        let answer = headers(&[
            (&ACCESS_CONTROL_ALLOW_ORIGIN, "http://a.example"),
            (&ACCESS_CONTROL_ALLOW_METHODS, "PUT,GET"),
            (&ACCESS_CONTROL_ALLOW_HEADERS, "content-type,if-none-match"),
        ]);
        let asked = |method, wanted| {
            headers(&[
                (&ACCESS_CONTROL_REQUEST_METHOD, method),
                (&ACCESS_CONTROL_REQUEST_HEADERS, wanted),
            ])
        };
        assert!(preflight_allowed(
            &asked("PUT", "Content-Type, if-none-match"),
            &answer
        ));
        assert!(!preflight_allowed(
            &asked("DELETE", "content-type"),
            &answer
        ));
        assert!(!preflight_allowed(
            &asked("PUT", "content-type,x-other"),
            &answer
        ));
        let mut no_origin = answer.clone();
        no_origin.remove(ACCESS_CONTROL_ALLOW_ORIGIN);
        assert!(!preflight_allowed(
            &asked("PUT", "content-type"),
            &no_origin
        ));
        assert!(!preflight_allowed(&HeaderMap::new(), &answer));
    }
}
