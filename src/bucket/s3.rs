use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, IdentityCache, ProvideCredentials, SharedCredentialsProvider,
};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::presigning::{PresignedRequest as SdkPresignedRequest, PresigningConfig};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use time::OffsetDateTime;

use super::{
    Completion, DownloadTarget, FILE_CACHE_CONTROL, MultipartTarget, ObjectInfo, ObjectLookup,
    ObjectStorage, PartTarget, PartsLookup, PresignedRequest, UploadTarget, UrlSigner, Validity,
    lifetime, part_signer::PartSigner,
};
use crate::backend_error::backend_error;
use crate::domain::{ObjectKey, UploadedPart};

/// Parts asked for in one ListParts request: S3's own maximum.
const PARTS_PER_PAGE: i32 = 1000;

/// 10,000 parts at 1,000 a page, and one more page to learn there is no more: a listing that
/// claims to go on longer is not followed.
const MAX_PART_PAGES: u32 = 11;

/// S3's error code for an upload that was completed or aborted.
const NO_SUCH_UPLOAD: &str = "NoSuchUpload";
use crate::error::AppError;

/// The files bucket. Presigning happens locally with the function's credentials (no request to
/// S3), so a URL can do exactly what the function's role may do to that key and nothing more.
#[derive(Clone, Debug)]
pub struct S3Bucket {
    pub(super) client: Client,
    pub(super) bucket: String,
    /// The provider of the client's credentials, which sign the URLs: read for their expiry
    /// (`signing`). The SDK client does not hand its own back.
    credentials: Option<SharedCredentialsProvider>,
}

impl S3Bucket {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            credentials: None,
        }
    }

    /// Signs every URL with credentials read from `provider` (the one the client was built
    /// with), for no longer than they last. Without it, URLs are signed by the client's own
    /// credentials for the lifetime asked.
    #[must_use]
    pub fn signing_with(mut self, provider: Option<SharedCredentialsProvider>) -> Self {
        self.credentials = provider;
        self
    }
}

impl S3Bucket {
    /// The credentials a URL is signed with, read once for it, and `validity` cut to what they
    /// can honour (`lifetime::bounded`). The URL is then signed with exactly these credentials
    /// (`signed_with`), so that the expiry read here is the one of the credentials in the URL,
    /// not of others the SDK's cache might hold. Lambda's credentials come from its environment
    /// variables: reading them makes no network call; the bound covers any other provider.
    async fn signing(
        &self,
        validity: Validity,
    ) -> Result<(Option<Credentials>, Validity), AppError> {
        let Some(provider) = &self.credentials else {
            return Ok((None, validity));
        };
        let credentials = tokio::time::timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials())
            .await
            .map_err(|_| AppError::Unavailable("the signing credentials took too long".into()))?
            .map_err(|e| AppError::Unavailable(e.into()))?;
        let validity = lifetime::bounded(validity, credentials.expiry())?;
        Ok((Some(credentials), validity))
    }
}

/// Bound on resolving the signing credentials (no network call with Lambda's environment
/// variables; a provider that makes one is cut here).
const CREDENTIALS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// An operation override that signs with `credentials`, when there are any. Uncached: they are
/// resolved already, and a cache would keep a partition for each URL's provider.
fn signed_with(credentials: Option<Credentials>) -> aws_sdk_s3::config::Builder {
    let config = aws_sdk_s3::config::Builder::default();
    match credentials {
        Some(credentials) => config
            .credentials_provider(credentials)
            .identity_cache(IdentityCache::no_cache()),
        None => config,
    }
}

fn presigning_config(validity: Validity) -> Result<PresigningConfig, AppError> {
    PresigningConfig::builder()
        .start_time(validity.start)
        .expires_in(validity.lifetime)
        .build()
        .map_err(|e| AppError::Internal(e.into()))
}

/// The SDK's presigned request, with only the headers the signature covers. The SDK also attaches
/// unsigned ones, such as `x-amzn-trace-id` inside Lambda, which a browser need not send and which
/// the bucket's CORS rules would refuse.
fn into_presigned(
    request: SdkPresignedRequest,
    validity: Validity,
) -> Result<PresignedRequest, AppError> {
    let url = request.uri().to_owned();
    let signed = signed_headers(&url)
        .ok_or_else(|| AppError::Internal("presigned URL without X-Amz-SignedHeaders".into()))?;
    let headers = request
        .headers()
        .filter(|(name, _)| signed.iter().any(|s| s.eq_ignore_ascii_case(name)))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect();
    Ok(PresignedRequest {
        method: request.method().to_owned(),
        url,
        headers,
        expires_at: OffsetDateTime::from(validity.start + validity.lifetime),
    })
}

/// The names in `X-Amz-SignedHeaders` (`;`-separated, percent-encoded as `%3B`).
fn signed_headers(url: &str) -> Option<Vec<String>> {
    let query = url.split_once('?')?.1;
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))?;
    let decoded = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .ok()?;
    Some(decoded.split(';').map(str::to_owned).collect())
}

impl UrlSigner for S3Bucket {
    async fn presign_upload(
        &self,
        target: UploadTarget<'_>,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        let content_length = i64::try_from(target.content_length)
            .map_err(|_| AppError::Internal("upload size exceeds i64".into()))?;
        let (credentials, validity) = self.signing(validity).await?;
        // Each of these becomes a signed header: S3 refuses the PUT unless the browser sends
        // exactly these values, so the reservation's type and size (and checksum, when declared)
        // are enforced by S3 itself, and `If-None-Match: *` makes the URL unable to overwrite.
        // `Cache-Control` is signed so that the browser's own never reaches the object (see
        // `FILE_CACHE_CONTROL`).
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(target.key.as_str())
            .content_type(target.content_type)
            .content_length(content_length)
            .cache_control(FILE_CACHE_CONTROL)
            .if_none_match("*")
            .set_checksum_sha256(target.sha256.map(str::to_owned))
            .customize()
            .config_override(signed_with(credentials))
            .presigned(presigning_config(validity)?)
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        into_presigned(request, validity)
    }

    async fn presign_download(
        &self,
        target: DownloadTarget<'_>,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        let (credentials, validity) = self.signing(validity).await?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(target.key.as_str())
            .response_content_type(target.content_type)
            .response_content_disposition(target.content_disposition)
            .response_cache_control(FILE_CACHE_CONTROL)
            .customize()
            .config_override(signed_with(credentials))
            .presigned(presigning_config(validity)?)
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        into_presigned(request, validity)
    }

    async fn presign_part(
        &self,
        target: PartTarget<'_>,
        validity: Validity,
    ) -> Result<PresignedRequest, AppError> {
        let (credentials, validity) = self.signing(validity).await?;
        self.sdk_part(target, validity, credentials).await
    }

    /// The credentials are read once for the batch, the SDK signs the first part, and
    /// `PartSigner` signs the others from that URL (each exactly as the SDK would: see
    /// `part_signer`). Any part it cannot sign so goes through the SDK.
    async fn presign_parts(
        &self,
        targets: &[PartTarget<'_>],
        validity: Validity,
    ) -> Result<Vec<PresignedRequest>, AppError> {
        let Some((first, others)) = targets.split_first() else {
            return Ok(Vec::new());
        };
        let (credentials, validity) = self.signing(validity).await?;
        // Without a provider of its own (`signing_with`), the client signs with credentials this
        // adapter cannot read (the SDK no longer hands its provider back): each part through it.
        if credentials.is_none() {
            let mut urls = Vec::with_capacity(targets.len());
            for target in targets {
                urls.push(self.sdk_part(*target, validity, None).await?);
            }
            return Ok(urls);
        }
        let template = self.sdk_part(*first, validity, credentials.clone()).await?;
        let signer = credentials.as_ref().and_then(|credentials| {
            PartSigner::from_template(&template, first, credentials.secret_access_key())
        });
        if signer.is_none() && !others.is_empty() {
            tracing::warn!(
                "part URLs signed one by one through the SDK: its URL was not reproduced"
            );
        }
        let mut urls = Vec::with_capacity(targets.len());
        urls.push(template);
        for target in others {
            let url = match signer.as_ref().and_then(|signer| signer.sign(target)) {
                Some(url) => url,
                None => {
                    self.sdk_part(*target, validity, credentials.clone())
                        .await?
                }
            };
            urls.push(url);
        }
        Ok(urls)
    }
}

impl S3Bucket {
    /// One UploadPart URL through the SDK's presigner, signed by `credentials` (or the client's).
    pub(super) async fn sdk_part(
        &self,
        target: PartTarget<'_>,
        validity: Validity,
        credentials: Option<Credentials>,
    ) -> Result<PresignedRequest, AppError> {
        let part_number = i32::try_from(target.part_number)
            .map_err(|_| AppError::Internal("part number exceeds i32".into()))?;
        // Signed, as for a single PUT: S3 refuses a body of any other length, and, when the
        // client declared one, any other SHA-256.
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(target.key.as_str())
            .upload_id(target.upload_id)
            .part_number(part_number)
            .content_length(i64_of(target.content_length, "part size")?)
            .set_checksum_sha256(target.sha256.map(str::to_owned))
            .customize()
            .config_override(signed_with(credentials))
            .presigned(presigning_config(validity)?)
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        into_presigned(request, validity)
    }
}

fn i64_of(value: u64, what: &str) -> Result<i64, AppError> {
    i64::try_from(value).map_err(|_| AppError::Internal(format!("{what} exceeds i64").into()))
}

impl ObjectStorage for S3Bucket {
    async fn head(&self, key: &ObjectKey) -> Result<ObjectLookup, AppError> {
        let output = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) if matches!(err.as_service_error(), Some(HeadObjectError::NotFound(_))) => {
                return Ok(ObjectLookup::Absent);
            }
            // A HEAD answer has no body, so the status is all there is to read.
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 403) =>
            {
                return Ok(ObjectLookup::Denied);
            }
            Err(err) => return Err(backend_error(err)),
        };
        let size = output
            .content_length
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| AppError::Internal("HeadObject returned no Content-Length".into()))?;
        let unsigned_headers = unsigned_headers(&output);
        Ok(ObjectLookup::Found(ObjectInfo {
            size,
            content_type: output.content_type,
            sha256: output.checksum_sha256,
            etag: output.e_tag.unwrap_or_default(),
            version_id: output.version_id,
            unsigned_headers,
        }))
    }

    async fn delete_version(
        &self,
        key: &ObjectKey,
        version_id: Option<&str>,
    ) -> Result<(), AppError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn create_multipart(&self, target: MultipartTarget<'_>) -> Result<String, AppError> {
        let output = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(target.key.as_str())
            .content_type(target.content_type)
            .cache_control(FILE_CACHE_CONTROL)
            // S3 refuses a part whose checksum type differs from the upload's, either way
            // (CreateMultipartUpload, Amazon S3 API Reference: x-amz-checksum-algorithm).
            .set_checksum_algorithm(target.part_sha256.then_some(ChecksumAlgorithm::Sha256))
            .send()
            .await
            .map_err(backend_error)?;
        output
            .upload_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| AppError::Internal("CreateMultipartUpload returned no upload id".into()))
    }

    async fn list_parts(&self, key: &ObjectKey, upload_id: &str) -> Result<PartsLookup, AppError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PART_PAGES {
            let output = match self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(upload_id)
                .max_parts(PARTS_PER_PAGE)
                .set_part_number_marker(marker.clone())
                .send()
                .await
            {
                Ok(output) => output,
                Err(err) if err.code() == Some(NO_SUCH_UPLOAD) => {
                    return Ok(PartsLookup::NoSuchUpload);
                }
                Err(err) => return Err(backend_error(err)),
            };
            for part in output.parts() {
                let (Some(number), Some(size)) = (part.part_number, part.size) else {
                    return Err(AppError::Internal(
                        "ListParts returned a part without number or size".into(),
                    ));
                };
                parts.push(UploadedPart {
                    part_number: u32::try_from(number)
                        .map_err(|_| AppError::Internal("a negative part number".into()))?,
                    size: u64::try_from(size)
                        .map_err(|_| AppError::Internal("a negative part size".into()))?,
                    etag: part.e_tag.clone(),
                    sha256: part.checksum_sha256.clone(),
                });
            }
            // S3 may answer fewer parts than asked for and say where to go on; the last page
            // says it is not truncated. A listing that never ends (a marker that does not move)
            // fails when the pages run out.
            match output
                .next_part_number_marker
                .filter(|next| !next.is_empty())
            {
                Some(next) if output.is_truncated == Some(true) => marker = Some(next),
                _ => {
                    parts.sort_by_key(|part| part.part_number);
                    parts.dedup_by_key(|part| part.part_number);
                    return Ok(PartsLookup::Found(parts));
                }
            }
        }
        Err(AppError::Internal(
            "ListParts kept saying there were more pages".into(),
        ))
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<Completion, AppError> {
        let completed = parts
            .iter()
            .map(|part| {
                let number = i32::try_from(part.part_number)
                    .map_err(|_| AppError::Internal("part number exceeds i32".into()))?;
                // A part uploaded with a checksum is completed with it (CompleteMultipartUpload,
                // Amazon S3 API Reference: the part's checksum as UploadPart returned it).
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.etag.clone())
                    .set_checksum_sha256(part.sha256.clone())
                    .build())
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            // Never over an object: the bucket policy also denies a completion without it.
            .if_none_match("*")
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default().timeout_config(completion_timeouts()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(Completion::Completed),
            // Completed or aborted already; or an object is at the key, so `If-None-Match: *`
            // failed (412, its code in the XML body as for every CompleteMultipartUpload error).
            Err(err)
                if err.code() == Some(NO_SUCH_UPLOAD)
                    || err.code() == Some("PreconditionFailed") =>
            {
                Ok(Completion::NotCompleted)
            }
            // 409 `ConditionalRequestConflict`: a conflicting write to the key happened while
            // this completion ran (Amazon S3 API Reference, CompleteMultipartUpload,
            // `If-None-Match`: on a 409, start the multipart upload again). Not finished yet:
            // `backend_error` makes it 503 `unavailable` with `Retry-After`. The caller's retry of
            // `complete` then completes the upload if S3 still has it, confirms the object if
            // the other write (a concurrent completion) stored it, or answers 409
            // `upload_missing` (reserve again) if neither. Never 500.
            Err(err) => Err(backend_error(err)),
        }
    }

    async fn abort_multipart(&self, key: &ObjectKey, upload_id: &str) -> Result<(), AppError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.code() == Some(NO_SUCH_UPLOAD) => Ok(()),
            Err(err) => Err(backend_error(err)),
        }
    }
}

/// CompleteMultipartUpload's bounds. S3 assembles the object before it answers, which for a large
/// upload takes seconds ("Processing of a Complete Multipart Upload request could take several
/// minutes", Amazon S3 API Reference, CompleteMultipartUpload), far past the 2 s attempt every
/// other call gets; a completion cut at 2 s would be retried into `NoSuchUpload`. Still inside the
/// API function's 15 s timeout and the request's deadline, which cut it first if S3 takes longer:
/// the caller's retry of `complete`, or the object's event, then finds the object.
fn completion_timeouts() -> aws_sdk_s3::config::timeout::TimeoutConfig {
    aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .read_timeout(std::time::Duration::from_secs(12))
        .operation_attempt_timeout(std::time::Duration::from_secs(12))
        .operation_timeout(std::time::Duration::from_secs(12))
        .build()
}

/// The names of the stored headers an upload URL does not sign (with that value), for those the
/// object carries. User metadata is named `x-amz-meta-*` once, whatever its keys: they are the
/// uploader's words.
fn unsigned_headers(output: &HeadObjectOutput) -> Vec<String> {
    let present = |value: Option<&str>| value.is_some_and(|v| !v.is_empty());
    [
        (
            "cache-control",
            present(output.cache_control()) && output.cache_control() != Some(FILE_CACHE_CONTROL),
        ),
        ("content-disposition", present(output.content_disposition())),
        ("content-encoding", present(output.content_encoding())),
        ("content-language", present(output.content_language())),
        ("expires", present(output.expires_string())),
        (
            "x-amz-meta-*",
            output.metadata().is_some_and(|m| !m.is_empty()),
        ),
    ]
    .into_iter()
    .filter(|(_, present)| *present)
    .map(|(name, _)| name.to_owned())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_headers_are_read_from_the_url() {
        let url = "https://b.s3.amazonaws.com/k?X-Amz-Date=1&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&X-Amz-Signature=00";
        assert_eq!(
            signed_headers(url).unwrap(),
            ["content-length", "content-type", "host"]
        );
        assert_eq!(signed_headers("https://b/k?X-Amz-Date=1"), None);
        assert_eq!(signed_headers("https://b/k"), None);
    }
}
