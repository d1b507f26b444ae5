//! S3's authorization, in front of the bucket: each request (SDK call or presigned URL, already
//! verified by s3s against the signer's key) is turned into the IAM actions S3 authorizes it as,
//! with the condition keys S3 supplies, and evaluated by the local IAM (see `iam`).
//!
//! The actions follow the Amazon S3 User Guide, "Actions, resources, and condition keys for
//! Amazon S3" (Service Authorization Reference) and each operation's "Permissions" section in
//! the Amazon S3 API Reference: HeadObject and GetObject are `s3:GetObject` (`...Version` with a
//! version id); CreateMultipartUpload, UploadPart and CompleteMultipartUpload are `s3:PutObject`;
//! ListParts is `s3:ListMultipartUploadParts`; ListObjects(V2) is `s3:ListBucket` with
//! `s3:prefix`; a PutObject with `x-amz-tagging` also needs `s3:PutObjectTagging` (PutObject,
//! "Permissions"); Put/GetObjectTagging with a version id need `s3:Put/GetObjectVersionTagging`
//! too ("You also need permission for..."), DeleteObjectTagging with one
//! `s3:DeleteObjectVersionTagging` ("You will need permission for..."); CopyObject also needs `s3:GetObject` on its source; DeleteObject(s) needs
//! `s3:DeleteObject` for every key, and `s3:DeleteObjectVersion` besides when it names a version
//! (DeleteObject, "Permissions": "you must always have the s3:DeleteObject permission").
//!
//! Condition keys: `s3:authType` (`REST-QUERY-STRING` for a presigned URL, `REST-HEADER`
//! otherwise), `s3:signatureAge` (milliseconds since `X-Amz-Date`), `s3:prefix`,
//! `s3:if-none-match`, `s3:ObjectCreationOperation` (true for PutObject, CopyObject and
//! CompleteMultipartUpload: "Enforce conditional writes on Amazon S3 buckets"),
//! `aws:PrincipalArn` (the role's ARN for a role session: IAM User Guide, "AWS global condition
//! context keys"), and `s3:ExistingObjectTag/<key>` for the reads and tagging operations of an
//! object, from its tags at the time of the request (Amazon S3 User Guide, "Tagging and access
//! control policies"; tag keys compare case-insensitively here, as every condition key does). The local endpoint is plain HTTP but stands for S3's HTTPS one:
//! `aws:SecureTransport` is `true` and `s3:TlsVersion` `1.3` (README, "The local AWS").
//!
//! A presigned request whose `x-amz-*` headers are not all in `X-Amz-SignedHeaders` is refused as
//! S3 refuses it ("There were headers present in the request which were not signed";
//! `x-amz-content-sha256` excepted): s3s verifies only the headers that were signed.

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{CopyObjectInput, CopySource, DeleteObjectsInput};
use s3s::path::S3Path;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::bucket::tags::TagStore;
use crate::iam::{Authorizer, Principal, RequestContext};

#[derive(Clone)]
pub struct S3AccessControl {
    authorizer: Arc<Authorizer>,
    /// The objects' tags, for `s3:ExistingObjectTag/<key>`.
    tags: Option<TagStore>,
}

fn access_denied(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, message.into())
}

fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// The query's parameters, percent-decoded.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn query_value<'q>(pairs: &'q [(String, String)], name: &str) -> Option<&'q str> {
    pairs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Milliseconds since the request's `X-Amz-Date`, never negative.
fn signature_age(amz_date: &str) -> Option<i128> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    let signed = time::PrimitiveDateTime::parse(amz_date, format)
        .ok()?
        .assume_utc();
    let age = OffsetDateTime::now_utc() - signed;
    Some(age.whole_milliseconds().max(0))
}

impl S3AccessControl {
    pub fn new(authorizer: Arc<Authorizer>) -> Self {
        Self {
            authorizer,
            tags: None,
        }
    }

    /// Reads `s3:ExistingObjectTag/<key>` from `tags`.
    pub fn with_tags(self, tags: TagStore) -> Self {
        Self {
            tags: Some(tags),
            ..self
        }
    }

    fn principal(&self, access_key: Option<&str>) -> S3Result<&Principal> {
        // The bucket blocks public access: an anonymous request is refused.
        let access_key = access_key.ok_or_else(|| access_denied("Access Denied"))?;
        self.authorizer
            .principal(access_key)
            .ok_or_else(|| S3Error::new(S3ErrorCode::InvalidAccessKeyId))
    }

    fn require(&self, principal: &Principal, request: &RequestContext) -> S3Result<()> {
        let decision = self.authorizer.authorize_s3(principal, request);
        if decision.allowed() {
            Ok(())
        } else {
            // Principal, action and resource only: what `make local`'s user needs to see why.
            let refusal = Authorizer::refusal(principal, request, &decision);
            tracing::info!("S3 refused: {refusal}");
            Err(access_denied(refusal))
        }
    }

    /// Whether the principal may list the bucket, as S3 asks before it tells a missing key
    /// from a forbidden one. A GetObject or HeadObject carries no `s3:prefix`, so a grant limited
    /// to a prefix does not count (Amazon S3 API Reference, GetObject, "Permissions").
    pub fn may_list(&self, access_key: Option<&str>, bucket: &str) -> bool {
        let Ok(principal) = self.principal(access_key) else {
            return false;
        };
        let request = Self::of(
            principal,
            RequestContext::new("s3:ListBucket", bucket_arn(bucket)),
        );
        self.authorizer.authorize_s3(principal, &request).allowed()
    }

    /// The keys every request carries locally.
    fn common(request: RequestContext) -> RequestContext {
        request
            .with("aws:SecureTransport", "true")
            .with("s3:TlsVersion", "1.3")
    }

    /// The keys every request of `principal` carries.
    fn of(principal: &Principal, request: RequestContext) -> RequestContext {
        Self::common(request).with("aws:PrincipalArn", principal.arn.clone())
    }

    /// `s3:ExistingObjectTag/<key>` for each tag of the object an operation reads or tags.
    async fn existing_tags(
        &self,
        operation: &str,
        path: &S3Path,
        query: &[(String, String)],
    ) -> Vec<(String, String)> {
        let (Some(store), S3Path::Object { bucket, key }) = (&self.tags, path) else {
            return Vec::new();
        };
        if !matches!(
            operation,
            "GetObject"
                | "HeadObject"
                | "GetObjectTagging"
                | "PutObjectTagging"
                | "DeleteObjectTagging"
        ) {
            return Vec::new();
        }
        let version = query_value(query, "versionId");
        store
            .current(bucket, key, version)
            .await
            .map(|(_, tags)| tags)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (format!("s3:ExistingObjectTag/{name}"), value))
            .collect()
    }

    /// Authorizes one operation of `principal`: every action S3 authorizes it as, with the
    /// request's condition keys.
    async fn authorize(
        &self,
        principal: &Principal,
        operation: &str,
        path: &S3Path,
        query: &[(String, String)],
        headers: &http::HeaderMap,
    ) -> S3Result<()> {
        let presigned = query_value(query, "X-Amz-Signature").is_some();
        if presigned {
            let unsigned = unsigned_amz_headers(query, headers);
            if !unsigned.is_empty() {
                return Err(access_denied(format!(
                    "There were headers present in the request which were not signed: {}",
                    unsigned.join(", ")
                )));
            }
        }
        let amz_date = if presigned {
            query_value(query, "X-Amz-Date").map(str::to_owned)
        } else {
            headers
                .get("x-amz-date")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let if_none_match = headers
            .get(http::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let existing_tags = self.existing_tags(operation, path, query).await;
        for request in actions(operation, path, query, headers) {
            let mut request = Self::of(principal, request).with(
                "s3:authType",
                if presigned {
                    "REST-QUERY-STRING"
                } else {
                    "REST-HEADER"
                },
            );
            if let Some(age) = amz_date.as_deref().and_then(signature_age) {
                request = request.with("s3:signatureAge", age.to_string());
            }
            if let Some(value) = &if_none_match {
                request = request.with("s3:if-none-match", value.clone());
            }
            for (name, value) in &existing_tags {
                request = request.with(name, value.clone());
            }
            self.require(principal, &request)?;
        }
        Ok(())
    }

    /// Authorizes an object operation of a role signed with headers, as the S3 endpoint would
    /// authorize the same request: how a stand-in for an AWS service acting as a role (GuardDuty
    /// and its scan role) meets the same policies as everyone else.
    pub async fn authorize_role(
        &self,
        role_logical_id: &str,
        operation: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<()> {
        let (access_key, _) = crate::iam::role_credentials(role_logical_id);
        let principal = self.principal(Some(&access_key))?;
        let path = S3Path::Object {
            bucket: bucket.into(),
            key: key.into(),
        };
        let query: Vec<(String, String)> = version_id
            .map(|v| ("versionId".to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        self.authorize(principal, operation, &path, &query, &http::HeaderMap::new())
            .await
    }
}

/// The actions S3 authorizes one operation as, before any per-key part (DeleteObjects, the
/// source of a copy).
fn actions(
    operation: &str,
    path: &S3Path,
    query: &[(String, String)],
    headers: &http::HeaderMap,
) -> Vec<RequestContext> {
    let versioned = query_value(query, "versionId").is_some();
    let resource = match path {
        S3Path::Root => "*".to_owned(),
        S3Path::Bucket { bucket } => bucket_arn(bucket),
        S3Path::Object { bucket, key } => object_arn(bucket, key),
    };
    let on = |action: &str| RequestContext::new(action, resource.clone());
    let creation = |action: &str, creates: bool| {
        on(action).with(
            "s3:ObjectCreationOperation",
            if creates { "true" } else { "false" },
        )
    };
    let listing = |action: &str| {
        let mut request = on(action);
        for key in ["prefix", "delimiter", "max-keys"] {
            if let Some(value) = query_value(query, key) {
                request = request.with(&format!("s3:{key}"), value);
            }
        }
        request
    };
    let tagging = headers.contains_key("x-amz-tagging");
    let mut all = match operation {
        "GetObject" | "HeadObject" if versioned => vec![on("s3:GetObjectVersion")],
        "GetObject" | "HeadObject" => vec![on("s3:GetObject")],
        "PutObject" | "CopyObject" | "CompleteMultipartUpload" => {
            vec![creation("s3:PutObject", true)]
        }
        "CreateMultipartUpload" | "UploadPart" | "UploadPartCopy" => {
            vec![creation("s3:PutObject", false)]
        }
        "ListParts" => vec![on("s3:ListMultipartUploadParts")],
        // A version's delete needs both (Amazon S3 API Reference, DeleteObject, "Permissions":
        // "you must always have the s3:DeleteObject permission").
        "DeleteObject" if versioned => vec![on("s3:DeleteObject"), on("s3:DeleteObjectVersion")],
        "DeleteObject" => vec![on("s3:DeleteObject")],
        "PutObjectTagging" | "GetObjectTagging" if versioned => vec![
            on(&format!("s3:{operation}")),
            on(&format!(
                "s3:{}",
                operation.replace("Object", "ObjectVersion")
            )),
        ],
        "DeleteObjectTagging" if versioned => vec![on("s3:DeleteObjectVersionTagging")],
        // Authorized key by key (see `delete_objects`).
        "DeleteObjects" => Vec::new(),
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => vec![listing("s3:ListBucket")],
        "ListObjectVersions" => vec![listing("s3:ListBucketVersions")],
        "ListMultipartUploads" => vec![listing("s3:ListBucketMultipartUploads")],
        "ListBuckets" => vec![RequestContext::new("s3:ListAllMyBuckets", "*")],
        other => vec![on(&format!("s3:{other}"))],
    };
    if tagging
        && matches!(
            operation,
            "PutObject" | "CreateMultipartUpload" | "CopyObject"
        )
    {
        all.push(on("s3:PutObjectTagging"));
    }
    all
}

/// The `x-amz-*` headers of a presigned request that its signature does not cover.
fn unsigned_amz_headers(query: &[(String, String)], headers: &http::HeaderMap) -> Vec<String> {
    let signed: Vec<String> = query_value(query, "X-Amz-SignedHeaders")
        .unwrap_or_default()
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-") && *name != "x-amz-content-sha256")
        .filter(|name| !signed.iter().any(|s| s == name))
        .map(str::to_owned)
        .collect()
}

#[async_trait::async_trait]
impl S3Access for S3AccessControl {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let principal = self.principal(cx.credentials().map(|c| c.access_key.as_str()))?;
        let query = query_pairs(cx.uri().query());
        self.authorize(
            principal,
            cx.s3_op().name(),
            cx.s3_path(),
            &query,
            cx.headers(),
        )
        .await
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        let principal = self.principal(req.credentials.as_ref().map(|c| c.access_key.as_str()))?;
        let source = match &req.input.copy_source {
            CopySource::Bucket {
                bucket,
                key,
                version_id,
            } => {
                let action = if version_id.is_some() {
                    "s3:GetObjectVersion"
                } else {
                    "s3:GetObject"
                };
                RequestContext::new(action, object_arn(bucket, key))
            }
            _ => {
                return Err(access_denied(
                    "access points and outposts are not part of this stack",
                ));
            }
        };
        self.require(principal, &Self::of(principal, source))
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        // S3 reports a refused key in the answer's Errors and deletes the others; locally the
        // whole request is refused, which no caller of this stack relies on either way.
        let principal = self.principal(req.credentials.as_ref().map(|c| c.access_key.as_str()))?;
        for object in &req.input.delete.objects {
            let resource = object_arn(&req.input.bucket, &object.key);
            let mut actions = vec!["s3:DeleteObject"];
            if object.version_id.is_some() {
                actions.push("s3:DeleteObjectVersion");
            }
            for action in actions {
                let request = RequestContext::new(action, resource.clone());
                self.require(principal, &Self::of(principal, request))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_requests_must_sign_every_amz_header() {
        let query = query_pairs(Some(
            "X-Amz-Signature=abc&X-Amz-SignedHeaders=host%3Bx-amz-checksum-sha256%3Bif-none-match",
        ));
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-checksum-sha256", "x".parse().unwrap());
        headers.insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        headers.insert("content-type", "text/plain".parse().unwrap());
        assert!(unsigned_amz_headers(&query, &headers).is_empty());
        headers.insert("x-amz-tagging", "a=b".parse().unwrap());
        assert_eq!(unsigned_amz_headers(&query, &headers), ["x-amz-tagging"]);
    }

    #[test]
    fn operations_are_authorized_as_s3_documents() {
        let object = S3Path::Object {
            bucket: "b".into(),
            key: "users/x".into(),
        };
        let none = http::HeaderMap::new();
        let names = |op: &str, query: &str, headers: &http::HeaderMap| {
            actions(op, &object, &query_pairs(Some(query)), headers)
                .into_iter()
                .map(|r| (r.action, r.keys.get("s3:objectcreationoperation").cloned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("HeadObject", "", &none),
            [("s3:GetObject".into(), None)]
        );
        assert_eq!(
            names("GetObject", "versionId=v", &none),
            [("s3:GetObjectVersion".into(), None)]
        );
        assert_eq!(
            names("UploadPart", "partNumber=1&uploadId=u", &none),
            [("s3:PutObject".into(), Some("false".into()))]
        );
        assert_eq!(
            names("CompleteMultipartUpload", "uploadId=u", &none),
            [("s3:PutObject".into(), Some("true".into()))]
        );
        assert_eq!(
            names("DeleteObject", "versionId=v", &none),
            [
                ("s3:DeleteObject".into(), None),
                ("s3:DeleteObjectVersion".into(), None)
            ]
        );
        assert_eq!(
            names("PutObjectTagging", "tagging&versionId=v", &none),
            [
                ("s3:PutObjectTagging".into(), None),
                ("s3:PutObjectVersionTagging".into(), None)
            ]
        );
        assert_eq!(
            names("GetObjectTagging", "tagging&versionId=v", &none),
            [
                ("s3:GetObjectTagging".into(), None),
                ("s3:GetObjectVersionTagging".into(), None)
            ]
        );
        assert_eq!(
            names("DeleteObjectTagging", "tagging&versionId=v", &none),
            [("s3:DeleteObjectVersionTagging".into(), None)]
        );
        assert_eq!(
            names("DeleteObjectTagging", "tagging", &none),
            [("s3:DeleteObjectTagging".into(), None)]
        );
        let mut tagged = http::HeaderMap::new();
        tagged.insert("x-amz-tagging", "a=b".parse().unwrap());
        assert_eq!(
            names("PutObject", "", &tagged),
            [
                ("s3:PutObject".into(), Some("true".into())),
                ("s3:PutObjectTagging".into(), None)
            ]
        );
        let bucket = S3Path::Bucket { bucket: "b".into() };
        let list = actions(
            "ListObjectsV2",
            &bucket,
            &query_pairs(Some("list-type=2&prefix=users%2F")),
            &none,
        );
        assert_eq!(list[0].action, "s3:ListBucket");
        assert_eq!(list[0].resource, "arn:aws:s3:::b");
        assert_eq!(list[0].keys["s3:prefix"], "users/");
    }

    #[test]
    fn signature_age_is_measured_from_x_amz_date() {
        let now = OffsetDateTime::now_utc() - time::Duration::seconds(10);
        let format = format_description!("[year][month][day]T[hour][minute][second]Z");
        let age = signature_age(&now.format(format).unwrap()).unwrap();
        assert!((9_000..=12_000).contains(&age), "{age}");
        assert_eq!(signature_age("yesterday"), None);
    }
}
