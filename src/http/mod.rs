//! The HTTP face of the function: routing, identity, request parsing, and turning results and
//! errors into responses. Every request ends in a response here; none ends in a panic or in the
//! runtime's generic 500.

mod identity;
mod lambda;
mod links;
mod response;
pub mod routes;
mod sharing;

use lambda_http::http::{HeaderName, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::{Instrument, Span, field};

pub use lambda::RejectUnparseable;
pub use response::{FileView, status_and_code};
use response::{
    PartUrlView, UploadView, UploadedPartView, UrlView, UsageView, describe_file, error_response,
    json,
};
use routes::Action;

use crate::bucket::{ObjectStorage, UrlSigner};
use crate::deadline::{Deadline, REQUEST_MARGIN};
use crate::domain::{Disposition, FileId, IdempotencyKey, OwnerId, PartsRequest, UploadRequest};
use crate::error::AppError;
use crate::service::{FileService, UploadInstructions};
use crate::store::{GrantStore, LinkStore, OwnershipStore};

/// Request bodies are a few hundred bytes of JSON; anything near this is not a real client.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 100;

/// `nextToken` is opaque to clients but carries only the last file id of the page. The store
/// pairs it with the caller's own partition key, so a forged token can at most skip around the
/// caller's own files: it cannot name another user.
mod page_token {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use crate::domain::FileId;

    pub fn encode(last: FileId) -> String {
        URL_SAFE_NO_PAD.encode(last.to_string())
    }

    pub fn decode(token: &str) -> Option<FileId> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        FileId::parse(std::str::from_utf8(&bytes).ok()?)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_token_is_the_last_id_in_url_safe_base64_and_reads_back() {
            let last = FileId::parse("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0").unwrap();
            let token = encode(last);
            assert_eq!(token, "MGYxZTJkM2MtNGI1YS00OTY4LTg3NzYtYTViNGMzZDJlMWYw");
            assert_eq!(decode(&token), Some(last));
            assert_eq!(decode("bm90LWFuLWlk"), None, "base64 of \"not-an-id\"");
        }
    }
}

pub struct Api<S, B> {
    files: FileService<S, B>,
    dev_user_header: Option<HeaderName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DownloadUrlsBody {
    ids: Vec<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    disposition: Option<String>,
}

/// The optional body of `POST /files/{id}/upload-url`. Unknown fields are refused: a misspelt
/// `expiresIn` would otherwise sign the default lifetime without a word.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UploadUrlBody {
    #[serde(default)]
    expires_in: Option<u64>,
}

impl<S, B> Api<S, B>
where
    S: OwnershipStore + GrantStore + LinkStore,
    B: UrlSigner + ObjectStorage,
{
    pub fn new(files: FileService<S, B>, dev_user_header: Option<HeaderName>) -> Self {
        Self {
            files,
            dev_user_header,
        }
    }

    /// Answers one request. Each request leaves one audit line (`request handled`) carrying the
    /// request id, caller, action, file id and outcome, and never the URL.
    ///
    /// All of it runs under the invocation's deadline less `REQUEST_MARGIN` (see `deadline`): a
    /// slow backend ends in a 503 with `Retry-After` from this function, not in Lambda's timeout.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let context = request.lambda_context_ref();
        let request_id = context
            .map(|context| context.request_id.clone())
            .unwrap_or_default();
        let deadline = context.map_or(Deadline::NONE, |context| {
            Deadline::of_invocation(context.deadline, REQUEST_MARGIN)
        });
        let span = tracing::info_span!(
            "request",
            request_id,
            action = field::Empty,
            caller = field::Empty,
            file_id = field::Empty,
            owner = field::Empty,
            link_id = field::Empty,
        );
        async {
            let response = match deadline.bound(self.dispatch(&request)).await {
                Ok(response) => response,
                Err(error) => {
                    let (status, code) = status_and_code(&error);
                    if status.is_server_error() {
                        // The source names the backend failure; it contains no URL.
                        let cause = std::error::Error::source(&error)
                            .map(ToString::to_string)
                            .unwrap_or_default();
                        tracing::error!(status = status.as_u16(), code, cause, "request failed");
                    } else {
                        tracing::info!(status = status.as_u16(), code, "request refused");
                    }
                    return error_response(&error);
                }
            };
            tracing::info!(status = response.status().as_u16(), "request handled");
            response
        }
        .instrument(span)
        .await
    }

    async fn dispatch(&self, request: &Request) -> Result<Response<Body>, AppError> {
        let path = route_path(request);
        let (action, params) = routes::resolve(request.method().as_str(), &path)?;
        let span = Span::current();
        span.record("action", action.name());
        if action.is_public() {
            return self.redeem_link(params.link, request).await;
        }
        let caller = identity::caller(request, self.dev_user_header.as_ref())?;
        span.record("caller", caller.as_str());
        // Anything that is not an id this server could have issued is simply not found.
        let id = params
            .id
            .map(|text| FileId::parse(text).ok_or(AppError::NotFound))
            .transpose()?;
        if let Some(id) = id {
            span.record("file_id", field::display(id));
        }
        let id = || id.ok_or_else(|| AppError::Internal("route without an id".into()));
        match action {
            Action::CreateUpload => self.create_upload(&caller, request).await,
            Action::ListFiles => self.list_files(&caller, request).await,
            Action::DeleteFile => {
                self.files.delete_file(&caller, id()?).await?;
                tracing::info!("file deleted");
                response::no_content()
            }
            Action::GetFile => {
                let record = self.files.file(&caller, id()?).await?;
                json(StatusCode::OK, &json!({ "file": FileView::of(&record)? }))
            }
            Action::CompleteUpload => {
                let record = self.files.complete_upload(&caller, id()?).await?;
                json(StatusCode::OK, &json!({ "file": FileView::of(&record)? }))
            }
            Action::PresignDownload => self.presign_download(&caller, id()?, request).await,
            Action::PresignDownloads => self.presign_downloads(&caller, request).await,
            Action::GetUsage => {
                let (usage, limits) = self.files.usage(&caller).await?;
                let view = UsageView::of(usage, limits, self.files.upload_policy());
                json(StatusCode::OK, &view)
            }
            Action::PresignParts => self.presign_parts(&caller, id()?, request).await,
            Action::PresignUpload => self.presign_upload(&caller, id()?, request).await,
            Action::GrantFile => self.grant_file(&caller, id()?, request).await,
            Action::ListGrants => self.list_grants(&caller, id()?).await,
            Action::RevokeGrant => {
                self.revoke_grant(&caller, id()?, param(params.grantee)?)
                    .await
            }
            Action::ListShared => self.list_shared(&caller, request).await,
            Action::PresignSharedDownload => {
                self.presign_shared_download(&caller, param(params.owner)?, id()?, request)
                    .await
            }
            Action::CreateLink => self.create_link(&caller, id()?, request).await,
            Action::ListLinks => self.list_links(&caller, id()?).await,
            Action::RevokeLink => self.revoke_link(&caller, id()?, params.link).await,
            // Answered above, before any identity is asked for.
            Action::RedeemLink => Err(AppError::Internal("a public route dispatched".into())),
            Action::ListParts => {
                let (plan, parts) = self.files.uploaded_parts(&caller, id()?).await?;
                let parts: Vec<UploadedPartView> = parts.iter().map(UploadedPartView::of).collect();
                json(
                    StatusCode::OK,
                    &json!({
                        "partSize": plan.part_size(),
                        "partCount": plan.part_count(),
                        "partSha256": plan.part_sha256(),
                        "parts": parts,
                    }),
                )
            }
        }
    }

    async fn presign_parts(
        &self,
        caller: &OwnerId,
        id: FileId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let body: PartsRequest = json_body(request)?;
        let urls = self.files.presign_parts(caller, id, body).await?;
        let numbers: Vec<String> = urls.iter().map(|(n, _)| n.to_string()).collect();
        let expires_at = urls.first().map(|(_, url)| url.expires_at);
        tracing::info!(
            parts = numbers.join(","),
            issued = urls.len(),
            expires_at = expires_at.map(|at| at.to_string()),
            "part URLs issued"
        );
        let parts = urls
            .iter()
            .map(|(number, url)| PartUrlView::of(*number, url))
            .collect::<Result<Vec<_>, _>>()?;
        json(StatusCode::OK, &json!({ "parts": parts }))
    }

    /// `POST /files/{id}/upload-url`: the body is optional (`{"expiresIn"?: seconds}`); the
    /// answer is `upload` as a single-PUT reservation's.
    async fn presign_upload(
        &self,
        caller: &OwnerId,
        id: FileId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let body: UploadUrlBody = if request.body().as_ref().is_empty() {
            UploadUrlBody::default()
        } else {
            json_body(request)?
        };
        let (_, url) = self
            .files
            .presign_upload_again(caller, id, body.expires_in)
            .await?;
        tracing::info!(expires_at = %url.expires_at, "upload URL issued");
        let upload = UploadInstructions::Put(url);
        json(
            StatusCode::OK,
            &json!({ "upload": UploadView::of(&upload)? }),
        )
    }

    async fn create_upload(
        &self,
        caller: &OwnerId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let upload: UploadRequest = json_body(request)?;
        let key = idempotency_key(request)?;
        let (record, upload) = self.files.reserve_upload_once(caller, upload, key).await?;
        Span::current().record("file_id", field::display(record.id));
        match &upload {
            UploadInstructions::Put(url) => {
                tracing::info!(expires_at = %url.expires_at, "upload URL issued");
            }
            UploadInstructions::Multipart { plan, expires_at } => tracing::info!(
                %expires_at,
                part_count = plan.part_count(),
                "multipart upload reserved"
            ),
        }
        json(
            StatusCode::CREATED,
            &json!({ "file": FileView::of(&record)?, "upload": UploadView::of(&upload)? }),
        )
    }

    async fn list_files(
        &self,
        caller: &OwnerId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let limit = page_limit(request)?;
        let after = next_token(request, page_token::decode)?;
        let (records, next) = self.files.list_files(caller, limit, after).await?;
        let files = records
            .iter()
            .map(FileView::of)
            .collect::<Result<Vec<_>, _>>()?;
        json(
            StatusCode::OK,
            &json!({ "files": files, "nextToken": next.map(page_token::encode) }),
        )
    }

    async fn presign_downloads(
        &self,
        caller: &OwnerId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let body: DownloadUrlsBody = json_body(request)?;
        let disposition = body
            .disposition
            .as_deref()
            .map(parse_disposition)
            .transpose()?
            .unwrap_or_default();
        let answers = self
            .files
            .presign_downloads(caller, &body.ids, body.expires_in, disposition)
            .await?;
        let mut urls = serde_json::Map::new();
        let mut errors = serde_json::Map::new();
        let mut issued = Vec::new();
        for (id, answer) in &answers {
            match answer {
                Ok(url) => {
                    urls.insert(
                        id.clone(),
                        serde_json::to_value(UrlView::of(url)?)
                            .map_err(|e| AppError::Internal(e.into()))?,
                    );
                    issued.push(id.as_str());
                }
                Err(error) => {
                    let mut entry = json!({ "code": status_and_code(error).1 });
                    describe_file(&mut entry, error);
                    errors.insert(id.clone(), entry);
                }
            }
        }
        tracing::info!(
            file_ids = issued.join(","),
            issued = issued.len(),
            refused = errors.len(),
            "download URLs issued"
        );
        json(StatusCode::OK, &json!({ "urls": urls, "errors": errors }))
    }

    async fn presign_download(
        &self,
        caller: &OwnerId,
        id: FileId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let (expires_in, disposition) = download_options(request)?;
        let url = self
            .files
            .presign_download(caller, id, expires_in, disposition)
            .await?;
        tracing::info!(expires_at = %url.expires_at, "download URL issued");
        json(StatusCode::OK, &UrlView::of(&url)?)
    }
}

/// A route's parameter other than `{id}`, which its route always has.
fn param(value: Option<&str>) -> Result<&str, AppError> {
    value.ok_or_else(|| AppError::Internal("route without its parameter".into()))
}

/// `limit` of a listing: `DEFAULT_PAGE_SIZE` when absent.
fn page_limit(request: &Request) -> Result<u32, AppError> {
    match single_query_value(request, "limit")? {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_PAGE_SIZE).contains(limit))
            .ok_or_else(|| {
                AppError::invalid(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE_SIZE}"
                ))
            }),
    }
}

/// `nextToken` of a listing, decoded by `decode`: `None` when absent, 400 when not one of ours.
fn next_token<T>(
    request: &Request,
    decode: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, AppError> {
    single_query_value(request, "nextToken")?
        .map(|token| decode(token).ok_or_else(|| AppError::invalid("nextToken is not valid")))
        .transpose()
}

/// `expiresIn` and `disposition` of a download URL request.
fn download_options(request: &Request) -> Result<(Option<u64>, Disposition), AppError> {
    let expires_in = single_query_value(request, "expiresIn")?
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| AppError::invalid("expiresIn must be a whole number of seconds"))
        })
        .transpose()?;
    let disposition = single_query_value(request, "disposition")?
        .map(parse_disposition)
        .transpose()?
        .unwrap_or_default();
    Ok((expires_in, disposition))
}

/// The request body as JSON of type `T`, within the size limit.
fn json_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, AppError> {
    let body = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(AppError::TooLarge(format!(
            "the request body must not exceed {MAX_BODY_BYTES} bytes"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::invalid(format!("invalid request body: {e}")))
}

/// The request's `Idempotency-Key` header, checked, if it sent one; given twice it is refused.
/// Never logged: it is the client's.
fn idempotency_key(request: &Request) -> Result<Option<IdempotencyKey>, AppError> {
    let values: Vec<_> = request.headers().get_all(IDEMPOTENCY_KEY).iter().collect();
    match values.as_slice() {
        [] => Ok(None),
        // A value that is not visible ASCII reads as empty, which the check refuses.
        [value] => IdempotencyKey::parse(value.to_str().unwrap_or_default()).map(Some),
        _ => Err(AppError::invalid(
            "Idempotency-Key must be given at most once",
        )),
    }
}

/// The request header that makes a reservation idempotent (IETF draft "The Idempotency-Key HTTP
/// Header Field"). HTTP header names are case-insensitive; lowercase is how `http` holds them.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn parse_disposition(text: &str) -> Result<Disposition, AppError> {
    Disposition::parse(text)
        .ok_or_else(|| AppError::invalid("disposition must be attachment or inline"))
}

/// A query parameter given at most once; a repeated one is ambiguous and refused.
fn single_query_value<'r>(request: &'r Request, name: &str) -> Result<Option<&'r str>, AppError> {
    let values = request
        .query_string_parameters_ref()
        .and_then(|query| query.all(name))
        .unwrap_or_default();
    match values.as_slice() {
        [] => Ok(None),
        [value] => Ok(Some(value)),
        _ => Err(AppError::invalid(format!(
            "{name} must be given at most once"
        ))),
    }
}

/// The path as the routes are written, whatever API Gateway put in front of it: HTTP APIs on a
/// named stage include the stage in `rawPath`, REST APIs never put it in `path`, so there a first
/// segment that happens to spell the stage's name is part of the path.
fn route_path(request: &Request) -> String {
    let raw = request.raw_http_path();
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.as_deref(),
        _ => None,
    };
    if let Some(stage) = stage.filter(|stage| *stage != "$default")
        && let Some(rest) = raw.strip_prefix('/').and_then(|r| r.strip_prefix(stage))
        && rest.starts_with('/')
    {
        return rest.to_owned();
    }
    raw.to_owned()
}
