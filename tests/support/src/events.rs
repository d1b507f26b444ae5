//! The events the functions receive, built one way for every test, fuzz target and benchmark:
//! API Gateway HTTP API (payload 2.0) and REST API (payload 1.0) requests, and S3 notifications
//! from the samples in `events/`.

use std::collections::BTreeMap;

use presign_gate::s3_events::S3Event;
use serde_json::{Value, json};

/// An API Gateway REST API (payload 1.0) `GET` of `path` on stage `prod`, as API Gateway sends it
/// after its Cognito authorizer verified `sub`: REST APIs leave the stage out of `path` and put it
/// in the request context's `path`.
pub fn rest_api_get(resource: &str, path: &str, sub: &str) -> Value {
    json!({
        "resource": resource,
        "path": path,
        "httpMethod": "GET",
        "headers": {"host": "api.example.com"},
        "multiValueHeaders": {"host": ["api.example.com"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "stage": "prod", "requestId": "r",
            "resourcePath": resource, "httpMethod": "GET", "path": format!("/prod{path}"),
            "identity": {"sourceIp": "203.0.113.1"},
            "authorizer": {"claims": {"sub": sub}},
        },
        "body": null,
        "isBase64Encoded": false,
    })
}

/// An API Gateway HTTP API (payload 2.0) event, as API Gateway sends it to the function.
#[derive(Clone, Debug)]
pub struct HttpApiEvent {
    method: String,
    raw_path: String,
    raw_query: String,
    headers: BTreeMap<String, String>,
    caller: Option<String>,
    body: Option<String>,
}

impl HttpApiEvent {
    /// `method path_and_query`, with the JSON content type and no authorizer.
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (raw_path, raw_query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Self::raw(method, raw_path, raw_query)
    }

    /// `rawPath` and `rawQueryString` exactly as given, for inputs a fuzzer makes.
    pub fn raw(method: &str, raw_path: &str, raw_query: &str) -> Self {
        Self {
            method: method.to_owned(),
            raw_path: raw_path.to_owned(),
            raw_query: raw_query.to_owned(),
            headers: BTreeMap::from([
                ("content-type".to_owned(), "application/json".to_owned()),
                ("host".to_owned(), "api.example.com".to_owned()),
            ]),
            caller: None,
            body: None,
        }
    }

    /// The caller the JWT authorizer verified: `sub` among its claims.
    pub fn caller(mut self, sub: &str) -> Self {
        self.caller = Some(sub.to_owned());
        self
    }

    /// Sets (or replaces) a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn json_body(self, body: &Value) -> Self {
        self.body(body.to_string())
    }

    pub fn to_json(&self) -> Value {
        let mut context = json!({
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "http": { "method": self.method, "path": self.raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "test" },
            "requestId": "test-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "29/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_000_000_000u64,
        });
        if let Some(sub) = &self.caller {
            context["authorizer"] = json!({ "jwt": { "claims": { "sub": sub }, "scopes": null } });
        }
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": self.raw_path,
            "rawQueryString": self.raw_query,
            "headers": self.headers,
            "requestContext": context,
            "body": self.body,
            "isBase64Encoded": false,
        })
    }

    /// The request as `lambda_http` parses the event, or why it cannot.
    pub fn try_request(&self) -> Result<lambda_http::Request, serde_json::Error> {
        lambda_http::request::from_str(&self.to_json().to_string())
    }

    /// The request as `lambda_http` parses the event; for events known to be valid.
    pub fn request(&self) -> lambda_http::Request {
        self.try_request().expect("valid API Gateway event")
    }
}

/// Object keys as S3 writes them into event notifications: URL-encoded, `+` for a space.
pub fn s3_encode(key: &str) -> String {
    const KEY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(key, KEY_ENCODE)
        .to_string()
        .replace("%20", "+")
}

/// The repository's `events/` folder of sample events.
pub fn samples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// The sample event `events/<file>`, pointed at the object `key` of the test bucket and
/// URL-encoded as S3 encodes keys in notifications.
pub fn s3_event(file: &str, key: &str) -> S3Event {
    let path = samples_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut event: Value = serde_json::from_str(&text).expect("sample event is JSON");
    event["Records"][0]["s3"]["object"]["key"] = json!(s3_encode(key));
    event["Records"][0]["s3"]["bucket"]["name"] = json!(crate::BUCKET);
    serde_json::from_value(event).expect("sample event is an S3 event")
}
