//! The sharing routes (README, "Sharing"): grants by a file's owner, and what a grantee sees and
//! downloads. The owner and the grantee in a path are callers' subs, percent-encoded as one
//! segment; the caller is still only ever the verified identity.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::json;
use tracing::{Span, field};

use super::response::{GrantView, SharedView, UrlView, json, no_content};
use super::{Api, download_options, json_body, next_token, page_limit};
use crate::bucket::{ObjectStorage, UrlSigner};
use crate::domain::{FileId, OwnerId, parse_timestamp};
use crate::error::AppError;
use crate::store::{GrantStore, OwnershipStore};

/// `POST /files/{id}/grants`. Unknown fields are refused: a misspelt `expiresAt` would otherwise
/// grant forever without a word.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GrantBody {
    grantee: String,
    #[serde(default)]
    expires_at: Option<String>,
}

/// `nextToken` of `GET /shared`: the sort key of the page's last entry, in URL-safe base64. The
/// store pairs it with the caller's own partition and refuses one that is no entry's key.
mod shared_token {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(last: &str) -> String {
        URL_SAFE_NO_PAD.encode(last)
    }

    pub fn decode(token: &str) -> Option<String> {
        String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()
    }
}

/// A sub named in a path segment, percent-decoded; one that names no one is simply not found.
pub(super) fn sub_segment(segment: &str) -> Result<OwnerId, AppError> {
    percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .and_then(|sub| OwnerId::parse(&sub))
        .ok_or(AppError::NotFound)
}

impl<S, B> Api<S, B>
where
    S: OwnershipStore + GrantStore,
    B: UrlSigner + ObjectStorage,
{
    pub(super) async fn grant_file(
        &self,
        caller: &OwnerId,
        id: FileId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let body: GrantBody = json_body(request)?;
        let grantee = OwnerId::parse(&body.grantee)
            .ok_or_else(|| AppError::invalid("grantee must be a caller's sub"))?;
        let expires_at = body
            .expires_at
            .as_deref()
            .map(|text| {
                parse_timestamp(text)
                    .ok_or_else(|| AppError::invalid("expiresAt must be an RFC 3339 timestamp"))
            })
            .transpose()?;
        let grant = self.files.grant(caller, id, grantee, expires_at).await?;
        tracing::info!(grantee = grant.grantee.as_str(), "grant made");
        json(
            StatusCode::CREATED,
            &json!({ "grant": GrantView::of(&grant)? }),
        )
    }

    pub(super) async fn list_grants(
        &self,
        caller: &OwnerId,
        id: FileId,
    ) -> Result<Response<Body>, AppError> {
        let grants = self.files.grants(caller, id).await?;
        let grants = grants
            .iter()
            .map(GrantView::of)
            .collect::<Result<Vec<_>, _>>()?;
        json(StatusCode::OK, &json!({ "grants": grants }))
    }

    pub(super) async fn revoke_grant(
        &self,
        caller: &OwnerId,
        id: FileId,
        grantee: &str,
    ) -> Result<Response<Body>, AppError> {
        let grantee = sub_segment(grantee)?;
        self.files.revoke(caller, id, &grantee).await?;
        tracing::info!(grantee = grantee.as_str(), "grant revoked");
        no_content()
    }

    pub(super) async fn list_shared(
        &self,
        caller: &OwnerId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let limit = page_limit(request)?;
        let after = next_token(request, shared_token::decode)?;
        let (entries, next) = self
            .files
            .shared_with(caller, limit, after.as_deref())
            .await?;
        let files = entries
            .iter()
            .map(SharedView::of)
            .collect::<Result<Vec<_>, _>>()?;
        json(
            StatusCode::OK,
            &json!({ "files": files, "nextToken": next.as_deref().map(shared_token::encode) }),
        )
    }

    pub(super) async fn presign_shared_download(
        &self,
        caller: &OwnerId,
        owner: &str,
        id: FileId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let owner = sub_segment(owner)?;
        Span::current().record("owner", field::display(&owner));
        let (expires_in, disposition) = download_options(request)?;
        let url = self
            .files
            .presign_shared_download(caller, &owner, id, expires_in, disposition)
            .await?;
        tracing::info!(expires_at = %url.expires_at, "shared download URL issued");
        json(StatusCode::OK, &UrlView::of(&url)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subs_in_paths_are_percent_decoded_and_checked() {
        assert_eq!(
            sub_segment("b%40b.example").unwrap().as_str(),
            "b@b.example"
        );
        assert!(matches!(sub_segment("%0A"), Err(AppError::NotFound)));
        assert!(matches!(sub_segment("%FF"), Err(AppError::NotFound)));
    }

    #[test]
    fn shared_tokens_read_back() {
        let key = "#shared#001700000000#0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0#alice";
        assert_eq!(
            shared_token::decode(&shared_token::encode(key)).as_deref(),
            Some(key)
        );
        assert_eq!(shared_token::decode("!"), None);
    }
}
