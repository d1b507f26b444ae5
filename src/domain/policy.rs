use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use super::Disposition;
use super::multipart::{MAX_SINGLE_PUT_SIZE, PartPlan};
use crate::error::AppError;

/// S3's own limit on key-independent metadata is generous; filenames are capped at what every
/// common filesystem accepts.
const MAX_FILENAME_BYTES: usize = 255;

/// What the caller asked to upload: the body of `POST /uploads` exactly as sent, not yet checked.
/// The HTTP layer deserializes it directly, so a new field of the request is declared once here.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadRequest {
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    #[serde(default)]
    pub sha256: Option<String>,
    /// The upload URL's lifetime in seconds; the expiry policy's default when absent.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// `true` asks for a multipart upload whatever the size; sizes above the threshold are
    /// multipart anyway.
    #[serde(default)]
    pub multipart: Option<bool>,
    /// `true`: every part of this multipart upload will carry its SHA-256, which S3 verifies.
    #[serde(default)]
    pub part_sha256: Option<bool>,
}

/// An upload that passed every rule; the only way to get one is [`UploadPolicy::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct NewUpload {
    pub filename: String,
    /// Canonical form (`type/subtype`, lowercase, no parameters): the exact value S3 will demand.
    pub content_type: String,
    pub size: u64,
    pub sha256: Option<String>,
    /// How the parts are cut, for a multipart upload; `None` for a single PUT.
    pub parts: Option<PartPlan>,
}

/// What may be uploaded: the allowed content types, the size limit, and from which size an
/// upload is multipart.
#[derive(Clone, Debug)]
pub struct UploadPolicy {
    allowed_content_types: Vec<String>,
    max_upload_bytes: u64,
    multipart_threshold_bytes: u64,
}

/// `MULTIPART_THRESHOLD_BYTES`' default: 100 MiB, Uppy's own threshold for multipart.
pub const DEFAULT_MULTIPART_THRESHOLD_BYTES: u64 = 100 * 1024 * 1024;

impl UploadPolicy {
    /// Refuses an empty allow-list or an entry that is not a valid `type/subtype`: configuration
    /// mistakes worth refusing to start over.
    pub fn new<'a>(
        allowed_content_types: impl IntoIterator<Item = &'a str>,
        max_upload_bytes: u64,
    ) -> Result<Self, String> {
        let allowed_content_types = allowed_content_types
            .into_iter()
            .map(|t| {
                canonical_content_type(t)
                    .ok_or_else(|| format!("{t:?} is not a valid content type"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if allowed_content_types.is_empty() {
            return Err("at least one content type must be allowed".into());
        }
        Ok(Self {
            allowed_content_types,
            max_upload_bytes,
            multipart_threshold_bytes: DEFAULT_MULTIPART_THRESHOLD_BYTES,
        })
    }

    /// The same policy with uploads above `bytes` made multipart (at most 5 GiB, the largest
    /// single PUT, which is also the switch whatever the setting).
    pub fn with_multipart_threshold(self, bytes: u64) -> Result<Self, String> {
        if bytes > MAX_SINGLE_PUT_SIZE {
            return Err(format!(
                "the multipart threshold must not exceed {MAX_SINGLE_PUT_SIZE} bytes, the largest \
                 single PUT S3 accepts"
            ));
        }
        Ok(Self {
            multipart_threshold_bytes: bytes,
            ..self
        })
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    pub fn multipart_threshold_bytes(&self) -> u64 {
        self.multipart_threshold_bytes
    }

    pub fn check(&self, request: UploadRequest) -> Result<NewUpload, AppError> {
        check_filename(&request.filename)?;
        let content_type = canonical_content_type(&request.content_type).ok_or_else(|| {
            AppError::invalid("contentType must be a media type such as image/png")
        })?;
        if !self.allowed_content_types.contains(&content_type) {
            return Err(AppError::ContentTypeNotAllowed(content_type));
        }
        if request.size < 1 {
            return Err(AppError::invalid("size must be at least 1 byte"));
        }
        if request.size > self.max_upload_bytes {
            return Err(AppError::TooLarge(format!(
                "size must not exceed {} bytes",
                self.max_upload_bytes
            )));
        }
        let multipart =
            request.multipart == Some(true) || request.size > self.multipart_threshold_bytes;
        let part_sha256 = request.part_sha256 == Some(true);
        if part_sha256 && !multipart {
            return Err(AppError::invalid(
                "partSha256 applies to multipart uploads; a single PUT declares the file's sha256",
            ));
        }
        let parts = multipart
            .then(|| {
                PartPlan::for_size(request.size).map(|plan| plan.with_part_sha256(part_sha256))
            })
            .transpose()?;
        if parts.is_some() && request.sha256.is_some() {
            // S3 checks each part's SHA-256, and a whole-object checksum only as a full-object
            // CRC (which the local S3 does not verify): see the README's "Multipart uploads".
            return Err(AppError::invalid(
                "a whole-file sha256 cannot be verified on a multipart upload; leave it out, \
                 reserve with \"partSha256\": true and send each part's sha256 with \
                 POST /files/{id}/parts instead",
            ));
        }
        if let Some(sha256) = &request.sha256 {
            check_sha256(sha256)?;
        }
        Ok(NewUpload {
            filename: request.filename,
            content_type,
            size: request.size,
            sha256: request.sha256,
            parts,
        })
    }
}

/// A declared SHA-256 (of a file or of a part): standard base64 of 32 bytes, the form S3 takes in
/// `x-amz-checksum-sha256`.
pub fn check_sha256(sha256: &str) -> Result<(), AppError> {
    let digest_len = BASE64.decode(sha256).map(|d| d.len());
    if digest_len != Ok(32) {
        return Err(AppError::invalid(
            "sha256 must be the standard base64 encoding of a 32-byte SHA-256 digest",
        ));
    }
    Ok(())
}

fn check_filename(filename: &str) -> Result<(), AppError> {
    if filename.is_empty() {
        return Err(AppError::invalid("filename must not be empty"));
    }
    if filename.len() > MAX_FILENAME_BYTES {
        return Err(AppError::invalid(format!(
            "filename must not exceed {MAX_FILENAME_BYTES} bytes of UTF-8"
        )));
    }
    // Control characters would corrupt the Content-Disposition header; bidirectional overrides
    // let "invoice\u{202E}fdp.exe" display as "invoiceexe.pdf".
    if filename
        .chars()
        .any(|c| c.is_control() || is_bidi_control(c))
    {
        return Err(AppError::invalid(
            "filename must not contain control or bidirectional formatting characters",
        ));
    }
    Ok(())
}

/// The characters Unicode lists as Bidi_Control (UAX #9, section 2): the Arabic letter mark,
/// the left-to-right and right-to-left marks, embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// `type/subtype` in lowercase with parameters dropped; `None` unless both parts are RFC 9110
/// tokens. S3 compares the signed Content-Type byte for byte, so there must be one spelling.
fn canonical_content_type(text: &str) -> Option<String> {
    let essence = text.split(';').next()?.trim();
    let (kind, subtype) = essence.split_once('/')?;
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    (is_token(kind) && is_token(subtype)).then(|| essence.to_ascii_lowercase())
}

/// Types a browser would run as script or markup if shown inline from the bucket's origin.
fn is_active_content(content_type: &str) -> bool {
    matches!(
        content_type,
        "text/html"
            | "application/xhtml+xml"
            | "text/xml"
            | "application/xml"
            | "text/xsl"
            | "text/javascript"
            | "application/javascript"
            | "application/x-javascript"
            | "text/ecmascript"
            | "application/ecmascript"
    ) || content_type.ends_with("+xml")
}

/// `inline` is refused for active content even when such a type is allowed for upload: a stored
/// SVG or HTML file shown inline would run the uploader's script for whoever opens the link.
pub fn check_disposition(content_type: &str, disposition: Disposition) -> Result<(), AppError> {
    if disposition == Disposition::Inline && is_active_content(content_type) {
        return Err(AppError::invalid(format!(
            "disposition=inline is not allowed for {content_type}; use attachment"
        )));
    }
    Ok(())
}

/// How long a presigned URL lives: a default, and a maximum no request may exceed.
#[derive(Clone, Copy, Debug)]
pub struct ExpiryPolicy {
    default_secs: u64,
    max_secs: u64,
}

/// SigV4 presigned URLs cannot live longer than seven days.
const SIGV4_MAX_EXPIRY_SECS: u64 = 7 * 24 * 3600;

impl ExpiryPolicy {
    pub fn new(default_secs: u64, max_secs: u64) -> Result<Self, String> {
        if !(1..=SIGV4_MAX_EXPIRY_SECS).contains(&max_secs) {
            return Err(format!(
                "the maximum URL lifetime must be 1..={SIGV4_MAX_EXPIRY_SECS} seconds"
            ));
        }
        if !(1..=max_secs).contains(&default_secs) {
            return Err(format!(
                "the default URL lifetime must be 1..={max_secs} seconds (the maximum)"
            ));
        }
        Ok(Self {
            default_secs,
            max_secs,
        })
    }

    pub fn max_secs(&self) -> u64 {
        self.max_secs
    }

    /// The lifetime for a request: the default when none was asked for, the asked value when it
    /// is within 1..=max, and an error otherwise. Never clamped silently: a caller that asked for
    /// an hour must not believe it got one.
    pub fn resolve(&self, requested: Option<u64>) -> Result<Duration, AppError> {
        let secs = requested.unwrap_or(self.default_secs);
        if !(1..=self.max_secs).contains(&secs) {
            return Err(AppError::invalid(format!(
                "expiresIn must be an integer from 1 to {}",
                self.max_secs
            )));
        }
        Ok(Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> UploadPolicy {
        UploadPolicy::new(["image/png", "Text/Plain", "image/svg+xml"], 1000).unwrap()
    }

    fn request(filename: &str, content_type: &str, size: u64) -> UploadRequest {
        UploadRequest {
            filename: filename.into(),
            content_type: content_type.into(),
            size,
            sha256: None,
            expires_in: None,
            multipart: None,
            part_sha256: None,
        }
    }

    #[test]
    fn part_checksums_are_chosen_at_reservation_and_only_for_multipart() {
        let policy = policy().with_multipart_threshold(100).unwrap();
        let asked = |size, part_sha256| UploadRequest {
            part_sha256,
            ..request("a.png", "image/png", size)
        };
        let plan = |result: Result<NewUpload, AppError>| result.unwrap().parts.unwrap();
        assert!(plan(policy.check(asked(200, Some(true)))).part_sha256());
        assert!(!plan(policy.check(asked(200, None))).part_sha256());
        assert_eq!(code(policy.check(asked(50, Some(true)))), "invalid_request");
        assert_eq!(code(policy.check(asked(50, Some(false)))), "ok");
    }

    fn code(result: Result<NewUpload, AppError>) -> String {
        match result {
            Ok(_) => "ok".into(),
            Err(AppError::InvalidRequest(_)) => "invalid_request".into(),
            Err(AppError::ContentTypeNotAllowed(_)) => "content_type_not_allowed".into(),
            Err(AppError::TooLarge(_)) => "too_large".into(),
            Err(other) => format!("{other:?}"),
        }
    }

    #[test]
    fn a_valid_upload_is_canonicalised() {
        let upload = policy()
            .check(request("a.txt", " TEXT/plain ; charset=utf-8", 10))
            .unwrap();
        assert_eq!(upload.content_type, "text/plain");
        assert_eq!(upload.size, 10);
    }

    #[test]
    fn sizes_are_bounded_on_both_sides() {
        assert_eq!(
            code(policy().check(request("a", "image/png", 0))),
            "invalid_request"
        );
        assert_eq!(code(policy().check(request("a", "image/png", 1))), "ok");
        assert_eq!(code(policy().check(request("a", "image/png", 1000))), "ok");
        assert_eq!(
            code(policy().check(request("a", "image/png", 1001))),
            "too_large"
        );
    }

    #[test]
    fn content_types_outside_the_allow_list_are_refused() {
        for t in ["image/jpeg", "text/html", "image/png2", "image"] {
            let expected = if t == "image" {
                "invalid_request"
            } else {
                "content_type_not_allowed"
            };
            assert_eq!(code(policy().check(request("a", t, 1))), expected, "{t}");
        }
        for t in ["", "/", "image/", "image/png\r\nx-evil: 1", "ima ge/png"] {
            assert_eq!(
                code(policy().check(request("a", t, 1))),
                "invalid_request",
                "{t:?}"
            );
        }
    }

    #[test]
    fn filenames_are_checked() {
        let at_limit = "é".repeat(127) + "a"; // 255 bytes
        assert_eq!(
            code(policy().check(request(&at_limit, "image/png", 1))),
            "ok"
        );
        let over = at_limit.clone() + "a";
        assert_eq!(
            code(policy().check(request(&over, "image/png", 1))),
            "invalid_request"
        );
        for bad in [
            "",
            "a\nb",
            "a\u{0}b",
            "a\u{7f}",
            "invoice\u{202E}fdp.exe",
            "\u{2066}x",
            // Arabic letter mark: a bidi formatting character outside the U+200x/U+202x blocks.
            "invoice\u{061C}fdp.exe",
        ] {
            assert_eq!(
                code(policy().check(request(bad, "image/png", 1))),
                "invalid_request",
                "{bad:?}"
            );
        }
        for good in [
            "日本語.png",
            "e\u{301}.png",
            "😀.png",
            "مرحبا.png",
            "a/b\\c.png",
        ] {
            assert_eq!(
                code(policy().check(request(good, "image/png", 1))),
                "ok",
                "{good:?}"
            );
        }
    }

    #[test]
    fn checksums_must_be_32_bytes_of_standard_base64() {
        let check = |sha: &str| {
            let mut r = request("a", "image/png", 1);
            r.sha256 = Some(sha.into());
            code(policy().check(r))
        };
        let good = BASE64.encode([7u8; 32]);
        assert_eq!(check(&good), "ok");
        assert_eq!(check(&BASE64.encode([7u8; 31])), "invalid_request");
        assert_eq!(check(good.trim_end_matches('=')), "invalid_request");
        assert_eq!(check("not base64!"), "invalid_request");
        assert_eq!(check(""), "invalid_request");
    }

    #[test]
    fn uploads_above_the_threshold_or_asked_for_are_multipart() {
        let policy = UploadPolicy::new(["text/plain"], 1 << 40)
            .unwrap()
            .with_multipart_threshold(100)
            .unwrap();
        let plan = |size: u64, multipart: Option<bool>| {
            let mut r = request("a", "text/plain", size);
            r.multipart = multipart;
            policy
                .check(r)
                .map(|upload| upload.parts.map(|p| p.part_count()))
        };
        assert_eq!(plan(100, None).unwrap(), None);
        assert_eq!(plan(100, Some(false)).unwrap(), None);
        assert_eq!(plan(101, None).unwrap(), Some(1));
        assert_eq!(plan(1, Some(true)).unwrap(), Some(1));
        assert_eq!(plan(11 << 20, None).unwrap(), Some(3));
        // A whole-file checksum is refused on a multipart upload, with what to do instead.
        let mut r = request("a", "text/plain", 101);
        r.sha256 = Some(BASE64.encode([7u8; 32]));
        match policy.check(r) {
            Err(AppError::InvalidRequest(message)) => assert!(message.contains("each part")),
            other => panic!("{other:?}"),
        }
        let policy = || UploadPolicy::new(["text/plain"], 1).unwrap();
        assert!(
            policy()
                .with_multipart_threshold(MAX_SINGLE_PUT_SIZE + 1)
                .is_err()
        );
        // 5 GiB itself is allowed: the largest single PUT.
        assert!(
            policy()
                .with_multipart_threshold(MAX_SINGLE_PUT_SIZE)
                .is_ok()
        );
    }

    #[test]
    fn invalid_configuration_is_refused() {
        assert!(UploadPolicy::new(["image/png", "nonsense"], 1).is_err());
        assert!(UploadPolicy::new([], 1).is_err());
        assert!(ExpiryPolicy::new(300, 900).is_ok());
        assert!(ExpiryPolicy::new(901, 900).is_err());
        assert!(ExpiryPolicy::new(0, 900).is_err());
        assert!(ExpiryPolicy::new(1, SIGV4_MAX_EXPIRY_SECS + 1).is_err());
        // SigV4's limit is seven days, to the second.
        assert!(ExpiryPolicy::new(1, 604_800).is_ok());
        assert!(ExpiryPolicy::new(1, 604_801).is_err());
    }

    #[test]
    fn expiry_is_never_clamped() {
        let expiry = ExpiryPolicy::new(300, 900).unwrap();
        assert_eq!(expiry.resolve(None).unwrap(), Duration::from_secs(300));
        assert_eq!(expiry.resolve(Some(1)).unwrap(), Duration::from_secs(1));
        assert_eq!(expiry.resolve(Some(900)).unwrap(), Duration::from_secs(900));
        assert!(matches!(
            expiry.resolve(Some(0)),
            Err(AppError::InvalidRequest(_))
        ));
        assert!(matches!(
            expiry.resolve(Some(901)),
            Err(AppError::InvalidRequest(_))
        ));
    }

    #[test]
    fn active_content_is_never_inline() {
        for t in [
            "text/html",
            "image/svg+xml",
            "application/xml",
            "text/javascript",
        ] {
            assert!(check_disposition(t, Disposition::Inline).is_err(), "{t}");
            assert!(check_disposition(t, Disposition::Attachment).is_ok(), "{t}");
        }
        for t in ["image/png", "application/pdf", "text/plain"] {
            assert!(check_disposition(t, Disposition::Inline).is_ok(), "{t}");
        }
    }
}
