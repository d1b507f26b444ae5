//! Faults a test asks the local stack to inject: the next requests to S3 or to the API that
//! match a fault are answered with its error, as the real service words one (S3's XML `<Error>`,
//! the API's JSON `error` with `Retry-After`, API Gateway's throttling 429), without reaching
//! the bucket or the function. The injector sits inside the bucket's and the API's CORS layers:
//! their rules still answer the preflight (a fault never answers an `OPTIONS`) and add their
//! headers to the error, as S3 and API Gateway do, so a browser test of a retry crosses real CORS.
//!
//! Local only: local-aws is never deployed. Faults are set on the demo origin, which serves no
//! CORS, so only its own pages and a test's plain HTTP client reach it (a JSON `POST` from another
//! origin needs a preflight nothing answers):
//!
//! - `POST /__faults` with `{"s3": [fault...], "api": [fault...]}` queues faults (204; 400 for a
//!   plan it cannot read);
//! - `GET /__faults` answers what is still queued and how many requests each side refused;
//! - `DELETE /__faults` clears the queues and the counts.
//!
//! A fault is `{"status": 503, "times": 2, "method": "PUT", "path": "/uploads",
//! "retryAfter": "1", "code": "SlowDown"}`: only `status` (400 to 599) is required; `times`
//! defaults to 1; `method` and `path` (the end of the request's path) narrow which requests it
//! takes. Faults are tried in the order queued; each request takes at most one.
//!
//! The same plan may hold `scans` and `scanDelayMs`, for the GuardDuty stand-in (see
//! `guardduty::faults`), and `putEvents`, for the local EventBridge (see `eventbridge::faults`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tower::Service;

use crate::HttpBody;
use crate::eventbridge::faults::PutEventsFault;
use crate::guardduty::faults::ScanFault;

/// The path of the control endpoint on the demo origin.
pub const CONTROL_PATH: &str = "/__faults";
/// A fault plan is a few lines of JSON.
const MAX_PLAN_BYTES: usize = 64 * 1024;

/// One fault: the error to answer, and which requests take it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    pub status: u16,
    #[serde(default = "once")]
    pub times: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

const fn once() -> u32 {
    1
}

impl Fault {
    fn check(&self) -> Result<(), String> {
        if !(400..=599).contains(&self.status) {
            return Err(format!(
                "status {} is not an error (400 to 599)",
                self.status
            ));
        }
        if self.times == 0 {
            return Err("times must be at least 1".into());
        }
        if let Some(method) = &self.method {
            Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("{method:?} is not a method"))?;
        }
        if let Some(value) = &self.retry_after {
            HeaderValue::from_str(value)
                .map_err(|_| format!("retryAfter {value:?} is not a header value"))?;
        }
        Ok(())
    }

    fn takes(&self, method: &Method, path: &str) -> bool {
        method != Method::OPTIONS
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && self.path.as_deref().is_none_or(|p| path.ends_with(p))
    }
}

/// What `POST /__faults` takes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultPlan {
    #[serde(default)]
    pub s3: Vec<Fault>,
    #[serde(default)]
    pub api: Vec<Fault>,
    #[serde(default)]
    pub scans: Vec<ScanFault>,
    #[serde(default)]
    pub scan_delay_ms: Option<u64>,
    #[serde(default)]
    pub put_events: Vec<PutEventsFault>,
}

/// Which listener a fault is for: it decides how the error is worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    S3,
    Api,
}

#[derive(Debug, Default)]
struct Queues {
    s3: Vec<Fault>,
    api: Vec<Fault>,
    served_s3: u64,
    served_api: u64,
    scans: Vec<ScanFault>,
    served_scans: u64,
    scan_delay: Option<std::time::Duration>,
    put_events: Vec<PutEventsFault>,
    served_put_events: u64,
}

/// The faults queued for the stack, shared by the demo server (which sets them) and the S3 and
/// API listeners (which serve them).
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Mutex<Queues>>);

impl Faults {
    fn queues(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues every fault of `plan`, or none if one cannot be served.
    pub fn add(&self, plan: FaultPlan) -> Result<(), String> {
        plan.s3.iter().chain(&plan.api).try_for_each(Fault::check)?;
        plan.scans.iter().try_for_each(ScanFault::check)?;
        plan.put_events.iter().try_for_each(PutEventsFault::check)?;
        let mut queues = self.queues();
        queues.put_events.extend(plan.put_events);
        queues.s3.extend(plan.s3);
        queues.api.extend(plan.api);
        queues.scans.extend(plan.scans);
        if let Some(delay) = plan.scan_delay_ms {
            queues.scan_delay = Some(std::time::Duration::from_millis(delay));
        }
        Ok(())
    }

    pub fn clear(&self) {
        *self.queues() = Queues::default();
    }

    /// What is still queued, and how many requests each side has refused.
    pub fn report(&self) -> serde_json::Value {
        let queues = self.queues();
        serde_json::json!({
            "s3": queues.s3,
            "api": queues.api,
            "scans": queues.scans,
            "scanDelayMs": queues.scan_delay.map(|delay| delay.as_millis()),
            "putEvents": queues.put_events,
            "served": {
                "s3": queues.served_s3,
                "api": queues.served_api,
                "scans": queues.served_scans,
                "putEvents": queues.served_put_events,
            },
        })
    }

    /// The first queued fault for `target` that takes this request, used once.
    fn take(&self, target: Target, method: &Method, path: &str) -> Option<Fault> {
        let mut queues = self.queues();
        let queues = &mut *queues;
        let (queue, served) = match target {
            Target::S3 => (&mut queues.s3, &mut queues.served_s3),
            Target::Api => (&mut queues.api, &mut queues.served_api),
        };
        let index = queue.iter().position(|fault| fault.takes(method, path))?;
        let fault = queue[index].clone();
        queue[index].times -= 1;
        if queue[index].times == 0 {
            queue.remove(index);
        }
        *served += 1;
        Some(fault)
    }

    /// The fault the next scan takes, used once.
    pub fn take_scan(&self) -> Option<ScanFault> {
        let mut queues = self.queues();
        let queues = &mut *queues;
        take_first(&mut queues.scans, &mut queues.served_scans, |fault| {
            &mut fault.times
        })
    }

    /// The fault the next PutEvents call takes, used once.
    pub fn take_put_events(&self) -> Option<PutEventsFault> {
        let mut queues = self.queues();
        let queues = &mut *queues;
        take_first(
            &mut queues.put_events,
            &mut queues.served_put_events,
            |fault| &mut fault.times,
        )
    }

    /// How long scans wait, if a plan set it.
    pub fn scan_delay(&self) -> Option<std::time::Duration> {
        self.queues().scan_delay
    }

    /// Wraps a listener's service (inside its CORS layer) so that it serves this target's faults.
    pub fn injector<S>(&self, target: Target, inner: S) -> Injector<S> {
        Injector {
            faults: self.clone(),
            target,
            inner,
        }
    }

    /// Answers the demo origin's `/__faults`.
    pub async fn control(&self, request: Request<Incoming>) -> Response<HttpBody> {
        match *request.method() {
            Method::GET => respond(
                StatusCode::OK,
                "application/json",
                self.report().to_string(),
            ),
            Method::DELETE => {
                self.clear();
                respond(StatusCode::NO_CONTENT, "text/plain", String::new())
            }
            Method::POST => {
                // Only `application/json`: a page of another origin can POST `text/plain`
                // without a preflight, but not JSON, whose preflight the demo origin never
                // answers; so no site a developer visits can queue faults on their stack.
                let json = request
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .is_some_and(|value| value.starts_with("application/json"));
                if !json {
                    return respond(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "text/plain",
                        "a fault plan is application/json".into(),
                    );
                }
                let body = match http_body_util::Limited::new(request.into_body(), MAX_PLAN_BYTES)
                    .collect()
                    .await
                {
                    Ok(body) => body.to_bytes(),
                    Err(error) => {
                        return respond(StatusCode::BAD_REQUEST, "text/plain", error.to_string());
                    }
                };
                let added = serde_json::from_slice::<FaultPlan>(&body)
                    .map_err(|error| error.to_string())
                    .and_then(|plan| self.add(plan));
                match added {
                    Ok(()) => respond(StatusCode::NO_CONTENT, "text/plain", String::new()),
                    Err(message) => respond(StatusCode::BAD_REQUEST, "text/plain", message),
                }
            }
            _ => respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", String::new()),
        }
    }
}

/// The first fault of `queue`, with one use fewer left (gone after its last).
fn take_first<F: Clone>(
    queue: &mut Vec<F>,
    served: &mut u64,
    times: impl Fn(&mut F) -> &mut u32,
) -> Option<F> {
    let fault = queue.first()?.clone();
    *times(&mut queue[0]) -= 1;
    if *times(&mut queue[0]) == 0 {
        queue.remove(0);
    }
    *served += 1;
    Some(fault)
}

/// A listener's service that answers the requests a queued fault takes.
#[derive(Debug, Clone)]
pub struct Injector<S> {
    faults: Faults,
    target: Target,
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<Request<Incoming>> for Injector<S>
where
    S: Service<Request<Incoming>, Response = Response<HttpBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<HttpBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let Some(fault) = self
            .faults
            .take(self.target, request.method(), request.uri().path())
        else {
            return Box::pin(self.inner.call(request));
        };
        // Never a path or query in the log: a presigned URL's query is a credential.
        tracing::info!(target = ?self.target, status = fault.status, "injected a fault");
        let target = self.target;
        Box::pin(async move {
            // The body is read first, as S3 reads it before it answers: a browser still sending
            // would otherwise see the connection reset rather than the answer.
            let _ = request.into_body().collect().await;
            Ok(fault_response(target, &fault))
        })
    }
}

/// The error as S3 or the API would send it.
fn fault_response(target: Target, fault: &Fault) -> Response<HttpBody> {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = match target {
        Target::S3 => {
            let (code, message) = match (fault.code.as_deref(), fault.status) {
                (Some(code), _) => (code, "An error local-aws was asked to inject."),
                (None, 503) => ("SlowDown", "Please reduce your request rate."),
                (None, 500) => (
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                ),
                (None, _) => ("InjectedFault", "An error local-aws was asked to inject."),
            };
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>local-fault</RequestId></Error>"
            );
            respond(status, "application/xml", xml)
        }
        // API Gateway's own throttling answer has no error code.
        Target::Api if fault.status == 429 && fault.code.is_none() => respond(
            status,
            "application/json",
            r#"{"message":"Too Many Requests"}"#.into(),
        ),
        Target::Api => {
            let code = fault.code.as_deref().unwrap_or("unavailable");
            let body = serde_json::json!({ "error": { "code": code, "message": "an error local-aws was asked to inject" } });
            respond(status, "application/json", body.to_string())
        }
    };
    if let Some(value) = fault
        .retry_after
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<HttpBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
