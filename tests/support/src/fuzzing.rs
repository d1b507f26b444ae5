//! The fuzz harnesses, shared by the coverage-guided targets in `fuzz/` and by
//! `tests/fuzz_regressions.rs`, which replays every saved input in `make test`.
//!
//! The real handler runs over in-memory fakes of the ports (no network, so millions of inputs
//! an hour), seeded with files of two users. Beyond "no panic", each run checks what must hold
//! for any input: no 5xx (the fakes never fail), every error is the documented JSON, and every
//! URL issued names a key under the caller's own prefix.

use std::sync::{Arc, Mutex, OnceLock};

use lambda_http::Service as _;
use lambda_http::http::HeaderName;
use lambda_http::request::LambdaRequest;
use presign_gate::domain::{ExpiryPolicy, FileId, FileStatus, OwnerId, UploadPolicy};
use presign_gate::http::{Api, RejectUnparseable};
use presign_gate::s3_events::{S3Event, decode_event_key, handle_s3_event};
use presign_gate::service::FileService;
use serde_json::Value;

use crate::events::{HttpApiEvent, s3_encode};
use crate::fakes::{FAKE_BUCKET_URL, FakeBucket, FakeStore, seed};

/// Ids seeded into the fake store, so that inputs can name real files.
pub const ALICE_AVAILABLE: &str = "11111111-1111-4111-8111-111111111111";
pub const ALICE_PENDING: &str = "22222222-2222-4222-8222-222222222222";
pub const ALICE_HTML: &str = "33333333-3333-4333-8333-333333333333";
pub const BOB_AVAILABLE: &str = "44444444-4444-4444-8444-444444444444";

fn id(text: &str) -> FileId {
    FileId::parse(text).expect("a canonical id")
}

pub fn service() -> FileService<FakeStore, FakeBucket> {
    service_with_log().0
}

/// The service, and the log of keys its bucket deletes.
pub fn service_with_log() -> (FileService<FakeStore, FakeBucket>, Arc<Mutex<Vec<String>>>) {
    let store = FakeStore::default();
    let bucket = FakeBucket::default();
    let deleted = bucket.deleted.clone();
    seed(
        &store,
        &bucket,
        "alice",
        id(ALICE_AVAILABLE),
        "text/plain",
        FileStatus::Available,
    );
    seed(
        &store,
        &bucket,
        "alice",
        id(ALICE_PENDING),
        "text/plain",
        FileStatus::Pending,
    );
    seed(
        &store,
        &bucket,
        "alice",
        id(ALICE_HTML),
        "text/html",
        FileStatus::Available,
    );
    seed(
        &store,
        &bucket,
        "bob",
        id(BOB_AVAILABLE),
        "text/plain",
        FileStatus::Available,
    );
    let service = FileService::new(
        store,
        bucket,
        UploadPolicy::new(["text/plain", "image/png", "text/html"], 1024 * 1024).unwrap(),
        ExpiryPolicy::new(300, 900).unwrap(),
    );
    (service, deleted)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

/// API Gateway refuses request lines over 10 KiB, so longer ones never reach the function (and
/// lambda_http itself panics on a URI over 64 KiB, before any of our code runs).
const MAX_URI_BYTES: usize = 10 * 1024;

/// What one fuzz input for the API is.
// One value per input, made and taken apart at once: boxing a variant would save nothing.
#[allow(clippy::large_enum_variant)]
pub enum ApiInput {
    /// A request the handler gets: `lambda_http` parsed the event.
    Request {
        event: HttpApiEvent,
        request: lambda_http::Request,
        /// The authorizer's `sub` (`-` for none) and the dev header's value.
        caller: String,
        dev_user: String,
    },
    /// An event whose path and query make no valid URI: `lambda_http` panics while converting
    /// it, so the function's guard (`http::RejectUnparseable`) answers it, never the handler.
    Unparseable(LambdaRequest),
}

/// Splits fuzz bytes into the fields of a request, separated by `\n`:
/// method, path, query, caller (`-` for none), dev header, content type, and the rest as body.
/// `None` when the input is not a request API Gateway could send.
pub fn api_input(data: &[u8]) -> Option<ApiInput> {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.splitn(7, '\n');
    let mut next = || fields.next().unwrap_or("");
    let method = match next() {
        "" | "G" => "GET",
        "P" => "POST",
        "D" => "DELETE",
        other => other,
    };
    let path = next();
    let query = next();
    let caller = next();
    let dev_user = next();
    let content_type = next();
    let body = next();
    if path.len() + query.len() > MAX_URI_BYTES
        || !path.starts_with('/')
        || HeaderName::from_bytes(method.as_bytes()).is_err()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return None;
    }
    let mut event = HttpApiEvent::raw(method, path, query)
        .header("content-type", content_type)
        .header("x-dev-user", dev_user)
        .body(body);
    if caller != "-" {
        event = event.caller(caller);
    }
    // API Gateway sends a rawPath starting with `/`, and lambda_http 1.3 appends rawQueryString
    // to the URI verbatim and panics ("failed to build request") when the result is not a valid
    // URI, before any of our code runs.
    let uri_ok =
        lambda_http::http::Uri::try_from(format!("https://api.example.com{path}?{query}")).is_ok();
    if !uri_ok {
        // Only events API Gateway could send: ones that deserialise.
        return serde_json::from_value(event.to_json())
            .ok()
            .map(ApiInput::Unparseable);
    }
    // Only inputs API Gateway could send: lambda_http refuses the rest before our code runs.
    let request = event.try_request().ok()?;
    Some(ApiInput::Request {
        event,
        request,
        caller: caller.to_owned(),
        dev_user: dev_user.to_owned(),
    })
}

/// The status the handler answered, or `None` when the input is no request the handler gets:
/// not one API Gateway could send, or one the function's guard answers. The fuzz target skips
/// the latter because libFuzzer aborts on any panic, even one the guard catches;
/// `api_replay` (the saved inputs, in `make test`) runs them through the guard.
pub fn api_request(data: &[u8]) -> Option<u16> {
    let ApiInput::Request {
        event,
        request,
        caller,
        dev_user,
    } = api_input(data)?
    else {
        return None;
    };
    let (caller, dev_user) = (caller.as_str(), dev_user.as_str());
    let dev_header = HeaderName::from_static("x-dev-user");
    let api = Api::new(service(), Some(dev_header));
    let response = runtime().block_on(api.handle(request));
    let status = response.status();
    assert!(
        !status.is_server_error(),
        "{status} for {}",
        event.to_json()
    );
    let body: Value = match response.body() {
        lambda_http::Body::Empty => {
            assert_eq!(status, 204, "an empty body is only for 204");
            return Some(204);
        }
        body => serde_json::from_slice(body.as_ref()).expect("JSON body"),
    };
    if !status.is_success() {
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
        return Some(status.as_u16());
    }
    // The caller the handler must have acted for: the authorizer's, else the dev header's.
    let acting = if caller != "-" { caller } else { dev_user };
    let prefix = format!(
        "{FAKE_BUCKET_URL}users/{}/",
        OwnerId::parse(acting)
            .expect("a 2xx has a caller")
            .key_segment()
    );
    let mut urls = Vec::new();
    collect_urls(&body, &mut urls);
    for url in urls {
        // Exactly `users/<caller's segment>/<file id>`, and never bob's file for anyone else.
        let id = url
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('?'))
            .map(|(id, _)| id);
        assert!(
            id.is_some_and(|id| FileId::parse(id).is_some()),
            "{url} issued to {acting:?}"
        );
        assert!(id != Some(BOB_AVAILABLE) || acting == "bob", "{url}");
    }
    Some(status.as_u16())
}

/// The status a saved input gets from the function: from the handler, or from the guard in
/// front of it (which must refuse it as `invalid_request`). `None` only when the input is not a
/// request API Gateway could send.
pub fn api_replay(data: &[u8]) -> Option<u16> {
    match api_input(data)? {
        ApiInput::Request { .. } => api_request(data),
        ApiInput::Unparseable(event) => Some(guard_answer(event)),
    }
}

/// The guard's answer to an event `lambda_http` cannot parse: a 400 `invalid_request` in the
/// format API Gateway expects.
fn guard_answer(event: LambdaRequest) -> u16 {
    let api: &'static Api<_, _> = Box::leak(Box::new(Api::new(
        service(),
        Some(HeaderName::from_static("x-dev-user")),
    )));
    let handler = lambda_http::service_fn(move |request: lambda_http::Request| async move {
        Ok::<_, std::convert::Infallible>(api.handle(request).await)
    });
    let mut guarded = RejectUnparseable(lambda_http::Adapter::from(handler));
    let answer = runtime()
        .block_on(guarded.call(lambda_http::LambdaEvent::new(
            event,
            lambda_http::Context::default(),
        )))
        .unwrap_or_else(|never| match never {});
    let answer = serde_json::to_value(answer).expect("the guard's answer serialises");
    let body: Value = answer["body"]
        .as_str()
        .and_then(|body| serde_json::from_str(body).ok())
        .unwrap_or_else(|| panic!("no JSON body: {answer}"));
    assert_eq!(body["error"]["code"], "invalid_request", "{answer}");
    let status = answer["statusCode"].as_u64().expect("statusCode");
    u16::try_from(status).expect("an HTTP status")
}

fn collect_urls<'v>(value: &'v Value, urls: &mut Vec<&'v str>) {
    match value {
        Value::Object(map) => {
            for (name, value) in map {
                match value {
                    Value::String(url) if name == "url" => urls.push(url),
                    other => collect_urls(other, urls),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_urls(v, urls)),
        _ => {}
    }
}

/// What the events harness did with one input.
#[derive(Debug, PartialEq)]
pub enum S3Replay {
    /// An S3 notification, handled: how many of its records failed, and the keys deleted.
    Event {
        failed_records: usize,
        deleted: Vec<String>,
    },
    /// A raw key, which round-tripped through S3's encoding.
    Key,
}

/// First byte 0: the bytes are an S3 notification (JSON) for the events function; otherwise
/// they are a raw event key to decode, which must round-trip through S3's encoding.
pub fn s3_event(data: &[u8]) {
    s3_replay(data);
}

/// `s3_event`, saying what it did; `None` for an input that is neither (empty, or JSON that is
/// no S3 notification, which Lambda would never hand the function).
pub fn s3_replay(data: &[u8]) -> Option<S3Replay> {
    let (&mode, rest) = data.split_first()?;
    if mode == 0 {
        let event = serde_json::from_slice::<S3Event>(rest).ok()?;
        let (files, deleted) = service_with_log();
        let failed_records = match runtime().block_on(handle_s3_event(&files, event)) {
            Ok(()) => 0,
            Err(failed) => failed.0.len(),
        };
        let deleted = deleted.lock().unwrap().clone();
        // The events function may only ever delete under users/, where its role has rights.
        for key in &deleted {
            assert!(
                key.starts_with("users/") && key.len() > 6,
                "deleted {key:?}"
            );
        }
        return Some(S3Replay::Event {
            failed_records,
            deleted,
        });
    }
    let text = String::from_utf8_lossy(rest);
    // Any key S3 could name, encoded as S3 encodes keys in notifications, decodes back.
    let encoded = s3_encode(&text);
    assert_eq!(
        decode_event_key(&encoded).as_deref(),
        Some(&*text),
        "{encoded}"
    );
    // And arbitrary text decodes or is refused, without panicking.
    let _ = decode_event_key(&text);
    Some(S3Replay::Key)
}
