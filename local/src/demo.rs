//! The demo page's own origin: `demo/` at `/`, `client/` at `/client/`, and optionally a vendor
//! directory (Uppy's browser bundle) at `/vendor/`. tower-http's ServeDir lists no directory
//! (a directory answers its index.html or 404) and refuses paths that climb out (`..`).
//! `/__faults` is the control of the faults S3 and the API inject for tests (see `faults`);
//! `/__events` reads the events the local EventBridge received (see `eventbridge::sink`).

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tower::{Service, ServiceExt};
use tower_http::services::ServeDir;

use crate::HttpBody;
use crate::eventbridge::Sink;
use crate::eventbridge::sink::EVENTS_PATH;
use crate::faults::{CONTROL_PATH, Faults};

#[derive(Debug, Clone)]
pub struct DemoSite {
    pub demo_dir: PathBuf,
    pub client_dir: PathBuf,
    pub vendor_dir: Option<PathBuf>,
}

#[derive(Clone)]
pub struct DemoServer {
    demo: ServeDir,
    client: ServeDir,
    vendor: Option<ServeDir>,
    faults: Faults,
    sink: Sink,
}

impl DemoServer {
    pub fn new(site: &DemoSite, faults: Faults, sink: Sink) -> Self {
        Self {
            faults,
            sink,
            demo: ServeDir::new(&site.demo_dir),
            client: ServeDir::new(&site.client_dir),
            vendor: site.vendor_dir.as_ref().map(ServeDir::new),
        }
    }
}

impl Service<Request<Incoming>> for DemoServer {
    type Response = Response<HttpBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let path = request.uri().path().to_owned();
        if path == CONTROL_PATH {
            let faults = self.faults.clone();
            return Box::pin(async move {
                let mut response = faults.control(request).await;
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                Ok(response)
            });
        }
        if path == EVENTS_PATH {
            let response = self.sink.control(&request);
            return Box::pin(async move { Ok(response) });
        }
        let (files, rest) = if let Some(rest) = path.strip_prefix("/client/") {
            (Some(self.client.clone()), rest)
        } else if let Some(rest) = path.strip_prefix("/vendor/") {
            (self.vendor.clone(), rest)
        } else {
            (Some(self.demo.clone()), path.trim_start_matches('/'))
        };
        let rest = format!("/{rest}");
        let is_module = rest.ends_with(".mjs") || rest.ends_with(".js");
        let mut request = request;
        let rewritten = match request.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest,
        };
        Box::pin(async move {
            let (Some(files), Ok(uri)) = (files, rewritten.parse()) else {
                return Ok(crate::empty_response(StatusCode::NOT_FOUND));
            };
            *request.uri_mut() = uri;
            let response = match files.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (mut parts, body) = response.into_parts();
            if is_module && parts.status.is_success() {
                // Browsers load ES modules only with a JavaScript type; mime_guess names .mjs
                // application/javascript (also accepted), this keeps one type for both.
                parts
                    .headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/javascript"));
            }
            // Edits show on reload: the browser asks again every time (Last-Modified answers 304).
            parts
                .headers
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(Response::from_parts(
                parts,
                body.map_err(Into::into).boxed_unsync(),
            ))
        })
    }
}
