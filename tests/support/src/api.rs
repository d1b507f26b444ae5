//! The real handler driven as API Gateway drives it, over any store and bucket: the stand-ins,
//! or the in-memory fakes.

use std::time::{Duration, SystemTime};

use lambda_http::RequestExt;
use lambda_http::http::{HeaderMap, StatusCode};
use presign_gate::bucket::{ObjectStorage, S3Bucket, UrlSigner};
use presign_gate::http::Api;
use presign_gate::store::{DynamoDbOwnershipStore, GrantStore, LinkStore, OwnershipStore};
use serde_json::{Value, json};

use crate::events::HttpApiEvent;

/// The handler under test; over the stand-ins' adapters unless said otherwise.
pub struct TestApi<S = DynamoDbOwnershipStore, B = S3Bucket>(pub Api<S, B>);

/// What the handler answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }
}

impl<S, B> TestApi<S, B>
where
    S: OwnershipStore + GrantStore + LinkStore,
    B: UrlSigner + ObjectStorage,
{
    /// Sends `method path` as an HTTP API (payload 2.0) event whose JWT authorizer verified
    /// `caller`, or with no authorizer at all when `caller` is `None`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        caller: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let event = http_api_event(method, path, caller, body.map(|b| b.to_string()));
        self.send_event(&event).await
    }

    pub async fn send_event(&self, event: &Value) -> Answer {
        self.send_request(parse_event(event)).await
    }

    /// Sends `event` as the Lambda runtime would hand it over: with an invocation context whose
    /// deadline is `remaining` from now (the `Lambda-Runtime-Deadline-Ms` of the Runtime API).
    pub async fn send_event_within(&self, event: &Value, remaining: Duration) -> Answer {
        let deadline = SystemTime::now() + remaining;
        let deadline_ms = deadline
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis()
            .try_into()
            .expect("milliseconds fit u64");
        self.send_event_with_deadline_ms(event, deadline_ms).await
    }

    /// Sends `event` with `deadline_ms` as the invocation context's raw deadline, whatever an
    /// emulator of the Runtime API might put there.
    pub async fn send_event_with_deadline_ms(&self, event: &Value, deadline_ms: u64) -> Answer {
        let mut context = lambda_http::Context::default();
        context.request_id = "test-invocation".into();
        context.deadline = deadline_ms;
        self.send_request(parse_event(event).with_lambda_context(context))
            .await
    }

    async fn send_request(&self, request: lambda_http::Request) -> Answer {
        let response = self.0.handle(request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.body() {
            lambda_http::Body::Empty => Value::Null,
            body => serde_json::from_slice(body.as_ref()).expect("JSON response body"),
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A small text upload reservation, answered whatever it is.
    pub async fn reserve_raw(&self, caller: &str) -> Answer {
        let body = json!({ "filename": "a.txt", "contentType": "text/plain", "size": 3 });
        self.call("POST", "/uploads", Some(caller), Some(body))
            .await
    }

    /// `POST /files/{id}/complete` as `caller`.
    pub async fn complete(&self, caller: &str, id: &str) -> Answer {
        self.call("POST", &format!("/files/{id}/complete"), Some(caller), None)
            .await
    }

    /// `GET /files/{id}/download-url{query}` as `caller` (`query` empty or starting with `?`).
    pub async fn download_url(&self, caller: &str, id: &str, query: &str) -> Answer {
        let path = format!("/files/{id}/download-url{query}");
        self.call("GET", &path, Some(caller), None).await
    }

    /// Reserves an upload and returns the 201 answer's body.
    pub async fn reserve(
        &self,
        caller: &str,
        filename: &str,
        content_type: &str,
        body: &[u8],
    ) -> Value {
        let answer = self
            .call(
                "POST",
                "/uploads",
                Some(caller),
                Some(json!({ "filename": filename, "contentType": content_type, "size": body.len() })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        answer.body
    }
}

fn parse_event(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway event")
}

/// The file id of a `POST /uploads` answer.
pub fn file_id(reservation: &Value) -> String {
    reservation["file"]["id"]
        .as_str()
        .expect("file id")
        .to_owned()
}

/// `method path` as an HTTP API (payload 2.0) event whose JWT authorizer verified `caller`, or
/// with no authorizer at all when `caller` is `None`.
pub fn http_api_event(
    method: &str,
    path: &str,
    caller: Option<&str>,
    body: Option<String>,
) -> Value {
    let mut event = HttpApiEvent::new(method, path);
    if let Some(sub) = caller {
        event = event.caller(sub);
    }
    if let Some(body) = body {
        event = event.body(body);
    }
    event.to_json()
}
