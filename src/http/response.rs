//! Everything the API sends back: the JSON views of records and URLs, and the one mapping from
//! `AppError` to status, code and message.

use std::collections::BTreeMap;

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::bucket::PresignedRequest;
use crate::domain::{
    FileRecord, Grant, QuotaLimits, SharedFile, UploadPolicy, UploadedPart, Usage, format_timestamp,
};
use crate::error::AppError;
use crate::service::UploadInstructions;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileView<'a> {
    id: String,
    filename: &'a str,
    content_type: &'a str,
    size: u64,
    status: &'static str,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploaded_at: Option<String>,
    /// Why a rejected upload was refused (`malware`, `unscannable`, `mismatch`, `over_quota`).
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_for: Option<&'static str>,
}

impl<'a> FileView<'a> {
    /// The record taken apart field by field, with no `..`: a field added to `FileRecord` does
    /// not compile until it is either shown here or named as kept back.
    pub fn of(record: &'a FileRecord) -> Result<Self, AppError> {
        let FileRecord {
            // Kept back: the owner is the caller, and the key, the purge time and the multipart
            // upload (S3's upload id above all) are the server's. The Idempotency-Key is the
            // client's own, which it has already.
            owner: _,
            key: _,
            purge_at: _,
            multipart: _,
            idempotency_key: _,
            id,
            filename,
            content_type,
            size,
            sha256,
            status,
            created_at,
            etag,
            uploaded_at,
            rejected_for,
        } = record;
        Ok(Self {
            id: id.to_string(),
            filename,
            content_type,
            size: *size,
            status: status.as_str(),
            created_at: format_timestamp(*created_at)?,
            sha256: sha256.as_deref(),
            etag: etag.as_deref(),
            uploaded_at: uploaded_at.map(format_timestamp).transpose()?,
            rejected_for: rejected_for.map(|reason| reason.as_str()),
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlView<'a> {
    method: &'a str,
    url: &'a str,
    /// Every header the client must send, exactly; absent for downloads, which need none.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<&'a str, &'a str>,
    expires_at: String,
}

impl<'a> UrlView<'a> {
    pub fn of(request: &'a PresignedRequest) -> Result<Self, AppError> {
        Ok(Self {
            method: &request.method,
            url: &request.url,
            headers: request
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect(),
            expires_at: format_timestamp(request.expires_at)?,
        })
    }
}

/// One grant, as its owner sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantView<'a> {
    grantee: &'a str,
    granted_at: String,
    /// `null`: until revoked.
    expires_at: Option<String>,
}

impl<'a> GrantView<'a> {
    pub fn of(grant: &'a Grant) -> Result<Self, AppError> {
        Ok(Self {
            grantee: grant.grantee.as_str(),
            granted_at: format_timestamp(grant.granted_at)?,
            expires_at: grant.expires_at.map(format_timestamp).transpose()?,
        })
    }
}

/// One file shared with the caller, in `GET /shared`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedView<'a> {
    owner: &'a str,
    id: String,
    filename: &'a str,
    content_type: &'a str,
    size: u64,
    granted_at: String,
    expires_at: Option<String>,
}

impl<'a> SharedView<'a> {
    pub fn of(shared: &'a SharedFile) -> Result<Self, AppError> {
        Ok(Self {
            owner: shared.owner.as_str(),
            id: shared.id.to_string(),
            filename: &shared.filename,
            content_type: &shared.content_type,
            size: shared.size,
            granted_at: format_timestamp(shared.granted_at)?,
            expires_at: shared.expires_at.map(format_timestamp).transpose()?,
        })
    }
}

/// `upload` of `POST /uploads`: the PUT URL, or the plan of a multipart upload.
#[derive(Serialize)]
#[serde(untagged)]
pub enum UploadView<'a> {
    Put(UrlView<'a>),
    #[serde(rename_all = "camelCase")]
    Multipart {
        method: &'static str,
        part_size: u64,
        part_count: u32,
        part_sha256: bool,
        expires_at: String,
    },
}

impl<'a> UploadView<'a> {
    pub fn of(upload: &'a UploadInstructions) -> Result<Self, AppError> {
        Ok(match upload {
            UploadInstructions::Put(url) => Self::Put(UrlView::of(url)?),
            UploadInstructions::Multipart { plan, expires_at } => Self::Multipart {
                method: "MULTIPART",
                part_size: plan.part_size(),
                part_count: plan.part_count(),
                part_sha256: plan.part_sha256(),
                expires_at: format_timestamp(*expires_at)?,
            },
        })
    }
}

/// One part URL of `POST /files/{id}/parts`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartUrlView<'a> {
    part_number: u32,
    #[serde(flatten)]
    url: UrlView<'a>,
}

impl<'a> PartUrlView<'a> {
    pub fn of(part_number: u32, url: &'a PresignedRequest) -> Result<Self, AppError> {
        Ok(Self {
            part_number,
            url: UrlView::of(url)?,
        })
    }
}

/// One part S3 holds, in `GET /files/{id}/parts`. `etag` is null only where the S3 stand-in
/// reports none (s3s-fs's ListParts); S3 always reports it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadedPartView<'a> {
    part_number: u32,
    size: u64,
    etag: Option<&'a str>,
}

impl<'a> UploadedPartView<'a> {
    pub fn of(part: &'a UploadedPart) -> Self {
        Self {
            part_number: part.part_number,
            size: part.size,
            etag: part.etag.as_deref(),
        }
    }
}

/// `GET /usage`: the caller's usage and the limits it counts against, in the same terms, and
/// how the API will plan an upload (`uploads`), so that a client decides as the server does.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    pending_uploads: u64,
    bytes: u64,
    limits: LimitsView,
    uploads: UploadsView,
}

/// Uploads above `multipartThresholdBytes` are multipart (`MULTIPART_THRESHOLD_BYTES`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadsView {
    multipart_threshold_bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LimitsView {
    pending_uploads: u32,
    bytes: u64,
}

impl UsageView {
    pub fn of(usage: Usage, limits: QuotaLimits, uploads: &UploadPolicy) -> Self {
        Self {
            pending_uploads: usage.pending_uploads,
            bytes: usage.bytes,
            limits: LimitsView {
                pending_uploads: limits.max_pending_uploads,
                bytes: limits.max_bytes,
            },
            uploads: UploadsView {
                multipart_threshold_bytes: uploads.multipart_threshold_bytes(),
            },
        }
    }
}

/// A JSON response. `no-store` because bodies can hold presigned URLs, which are credentials
/// that no shared or browser cache should keep.
pub fn json(status: StatusCode, body: &impl Serialize) -> Result<Response<Body>, AppError> {
    let body = serde_json::to_string(body).map_err(|e| AppError::Internal(e.into()))?;
    base(status)
        .body(Body::Text(body))
        .map_err(|e| AppError::Internal(e.into()))
}

/// A 204. No body, but `no-store` all the same: every answer of this API is private to its caller,
/// and a cache that keeps none of them needs no rule for which.
pub fn no_content() -> Result<Response<Body>, AppError> {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::CACHE_CONTROL, NO_STORE)
        .body(Body::Empty)
        .map_err(|e| AppError::Internal(e.into()))
}

/// The `Cache-Control` of every response, success, 204 or error.
const NO_STORE: &str = "no-store";

fn base(status: StatusCode) -> lambda_http::http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, NO_STORE)
}

/// The HTTP status and stable error code of every error. The message is the error's `Display`,
/// which for backend failures is a fixed sentence: their details go to the log only.
pub fn status_and_code(error: &AppError) -> (StatusCode, &'static str) {
    match error {
        AppError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        AppError::ContentTypeNotAllowed(_) => (StatusCode::BAD_REQUEST, "content_type_not_allowed"),
        AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        AppError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        AppError::NotFound | AppError::RouteNotFound => (StatusCode::NOT_FOUND, "not_found"),
        AppError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        AppError::NotReady(_) => (StatusCode::CONFLICT, "not_ready"),
        AppError::UploadMissing | AppError::PartsMissing(_) => {
            (StatusCode::CONFLICT, "upload_missing")
        }
        AppError::NotPending(_) => (StatusCode::CONFLICT, "not_pending"),
        AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        AppError::NotSinglePut(_) => (StatusCode::CONFLICT, "not_single_put"),
        AppError::ReservationLapsed(_) => (StatusCode::CONFLICT, "reservation_lapsed"),
        AppError::UploadRejected(..) => (StatusCode::UNPROCESSABLE_ENTITY, "upload_rejected"),
        AppError::IdempotencyKeyReused(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
        }
        AppError::QuotaExceeded(_) => (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"),
        AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// What an error says of the file it is about, beside its code: a file not ready says what it
/// is instead, so a client can wait for a scan or give up; a rejected upload says why.
pub fn describe_file(entry: &mut serde_json::Value, error: &AppError) {
    match error {
        AppError::NotReady(status) => entry["status"] = status.as_str().into(),
        AppError::UploadRejected(_, Some(reason)) => entry["rejectedFor"] = reason.as_str().into(),
        _ => {}
    }
}

/// The response for an error. Built without anything fallible, so that reporting a failure
/// cannot itself fail.
pub fn error_response(error: &AppError) -> Response<Body> {
    let (status, code) = status_and_code(error);
    let mut body = serde_json::json!({ "error": { "code": code, "message": error.to_string() } });
    describe_file(&mut body["error"], error);
    let mut response = Response::new(Body::Text(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(NO_STORE),
    );
    match error {
        AppError::Unavailable(_) => {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        AppError::MethodNotAllowed(allow) => {
            if let Ok(value) = header::HeaderValue::from_str(allow) {
                headers.insert(header::ALLOW, value);
            }
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::{FileId, FileStatus, ObjectKey, OwnerId, RejectReason};

    fn text(response: &Response<Body>) -> &str {
        match response.body() {
            Body::Text(text) => text,
            other => panic!("not a text body: {other:?}"),
        }
    }

    /// `GET /usage` says from which size the API plans a multipart upload, so that a client
    /// hashes and reserves as the server will decide (issue 20, 2.9): the configured threshold,
    /// not the default.
    #[test]
    fn usage_reports_the_multipart_threshold_configured() {
        let uploads = UploadPolicy::new(["text/plain"], 1 << 30)
            .unwrap()
            .with_multipart_threshold(6 * 1024 * 1024)
            .unwrap();
        let usage = Usage {
            pending_uploads: 1,
            bytes: 5,
        };
        let limits = QuotaLimits {
            max_pending_uploads: 2,
            max_bytes: 10,
        };
        let body = serde_json::to_value(UsageView::of(usage, limits, &uploads)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "pendingUploads": 1,
                "bytes": 5,
                "limits": { "pendingUploads": 2, "bytes": 10 },
                "uploads": { "multipartThresholdBytes": 6_291_456 },
            })
        );
    }

    /// The README's table of errors: every error's status and code, its message as the body's,
    /// never cacheable, with `Retry-After` on 503 and `Allow` on 405 only.
    #[test]
    fn every_error_answers_its_documented_status_and_code() {
        let cases = [
            (AppError::invalid("bad"), 400, "invalid_request"),
            (
                AppError::ContentTypeNotAllowed("text/html".into()),
                400,
                "content_type_not_allowed",
            ),
            (AppError::TooLarge("big".into()), 413, "too_large"),
            (AppError::Unauthenticated, 401, "unauthenticated"),
            (AppError::NotFound, 404, "not_found"),
            (AppError::RouteNotFound, 404, "not_found"),
            (
                AppError::MethodNotAllowed("GET, DELETE".into()),
                405,
                "method_not_allowed",
            ),
            (AppError::NotReady(FileStatus::Scanning), 409, "not_ready"),
            (AppError::UploadMissing, 409, "upload_missing"),
            (AppError::NotPending("done".into()), 409, "not_pending"),
            (AppError::Conflict("self".into()), 409, "conflict"),
            (
                AppError::NotSinglePut("parts".into()),
                409,
                "not_single_put",
            ),
            (
                AppError::ReservationLapsed("late".into()),
                409,
                "reservation_lapsed",
            ),
            (
                AppError::UploadRejected("size".into(), Some(RejectReason::Mismatch)),
                422,
                "upload_rejected",
            ),
            (
                AppError::IdempotencyKeyReused("another request".into()),
                422,
                "idempotency_key_reused",
            ),
            (
                AppError::QuotaExceeded("limit".into()),
                429,
                "quota_exceeded",
            ),
            (
                AppError::Unavailable("throttled".into()),
                503,
                "unavailable",
            ),
            (AppError::Internal("AccessDenied".into()), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let response = error_response(&error);
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            let body: serde_json::Value = serde_json::from_str(text(&response)).unwrap();
            assert_eq!(body["error"]["code"], code, "{error:?}");
            assert_eq!(body["error"]["message"], error.to_string(), "{error:?}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], "application/json");
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
            let retry_after = headers
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap());
            assert_eq!(retry_after, (status == 503).then_some("1"), "{error:?}");
            let allow = headers.get(header::ALLOW).map(|v| v.to_str().unwrap());
            assert_eq!(allow, (status == 405).then_some("GET, DELETE"), "{error:?}");
        }
    }

    #[test]
    fn a_json_answer_has_its_status_and_body_and_is_never_cached() {
        let response = json(StatusCode::CREATED, &serde_json::json!({ "a": 1 })).unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(text(&response), r#"{"a":1}"#);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(no_content().unwrap().status(), StatusCode::NO_CONTENT);
    }

    /// A record with every optional field set shows every field a client may see, and nothing
    /// that is the server's own (the owner, the object key, the purge time).
    #[test]
    fn a_complete_record_shows_every_client_field() {
        let owner = OwnerId::parse("alice").unwrap();
        let id = FileId::new_random();
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let record = FileRecord {
            key: ObjectKey::for_file(&owner, id),
            owner,
            id,
            filename: "cat.png".into(),
            content_type: "image/png".into(),
            size: 42,
            sha256: Some("x".repeat(44)),
            status: FileStatus::Available,
            created_at: at,
            purge_at: Some(at),
            etag: Some("\"e\"".into()),
            uploaded_at: Some(at),
            rejected_for: None,
            multipart: Some(Box::new(crate::domain::MultipartUpload {
                upload_id: "secret-upload-id".into(),
                plan: crate::domain::PartPlan::for_size(42).unwrap(),
                expires_at: at,
            })),
            idempotency_key: None,
        };
        let view = serde_json::to_value(FileView::of(&record).unwrap()).unwrap();
        assert_eq!(
            view,
            serde_json::json!({
                "id": id.to_string(),
                "filename": "cat.png",
                "contentType": "image/png",
                "size": 42,
                "status": "available",
                "createdAt": "2023-11-14T22:13:20Z",
                "sha256": "x".repeat(44),
                "etag": "\"e\"",
                "uploadedAt": "2023-11-14T22:13:20Z",
            })
        );
    }
}
