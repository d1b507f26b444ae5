//! The event every function is handed. Its construction stays in this one function, the only
//! place in the harness that knows API Gateway's payload, so that a shared test-event builder can
//! take its place.

use presign_gate::domain::FileId;

/// API Gateway HTTP API (payload 2.0) event for `GET /files/{id}/download-url`, whose JWT
/// authorizer verified `owner`.
pub fn download_url_event(owner: &str, id: FileId) -> String {
    let path = format!("/files/{id}/download-url");
    serde_json::json!({
        "version": "2.0",
        "routeKey": "GET /files/{id}/download-url",
        "rawPath": path,
        "rawQueryString": "",
        "headers": { "host": "api.example.com", "user-agent": "bench" },
        "pathParameters": { "id": id.to_string() },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "authorizer": { "jwt": { "claims": { "sub": owner }, "scopes": null } },
            "domainName": "api.example.com",
            "http": { "method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "bench" },
            "requestId": "bench-request",
            "routeKey": "GET /files/{id}/download-url",
            "stage": "$default",
            "time": "29/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_000_000_000u64,
        },
        "isBase64Encoded": false,
    })
    .to_string()
}
