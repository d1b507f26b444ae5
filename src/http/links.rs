//! The share link routes (README, "Share links"): the owner's create, list and revoke, and the
//! public redemption. A link's URL carries its secret in the query (`?secret=`), never in the
//! path: the API's access log records the path (template.yaml, `AccessLogSettings`), and no
//! line of ours records a query. The secret leaves this module only in the one answer that
//! creates the link.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{Span, field};

use super::response::{UrlView, json, no_content};
use super::{Api, json_body, single_query_value};
use crate::bucket::{ObjectStorage, UrlSigner};
use crate::domain::{FileId, LinkId, LinkSecret, OwnerId, ShareLink, format_timestamp};
use crate::error::AppError;
use crate::service::LinkStatus;
use crate::store::{GrantStore, LinkStore, OwnershipStore};

/// `POST /files/{id}/links`. Unknown fields are refused: a misspelt `maxDownloads` would
/// otherwise hand out a link without its limit.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LinkBody {
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    max_downloads: Option<u32>,
}

/// A link as `POST` and `GET /files/{id}/links` show it; `url` only when it is created.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkView {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    created_at: String,
    expires_at: String,
    /// `null`: no limit.
    max_downloads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    downloads: Option<u64>,
}

impl LinkView {
    fn of(link: &ShareLink) -> Result<Self, AppError> {
        Ok(Self {
            id: link.id.to_string(),
            url: None,
            created_at: format_timestamp(link.created_at)?,
            expires_at: format_timestamp(link.expires_at)?,
            max_downloads: link.max_downloads,
            downloads: None,
        })
    }
}

/// A link id in a path; one that could not be ours is simply not found.
fn link_segment(segment: Option<&str>) -> Result<LinkId, AppError> {
    segment.and_then(LinkId::parse).ok_or(AppError::NotFound)
}

/// Where this API is reached, as the caller reached it: the `Host` API Gateway received (its
/// `$context.domainName`, Amazon API Gateway Developer Guide, "Customize HTTP API access logs"),
/// the scheme it forwarded (`X-Forwarded-Proto`), and the stage when it is in the URL (a named
/// stage of an HTTP API, any stage of a REST API on its execute-api domain).
fn api_base(request: &Request) -> Result<String, AppError> {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| !host.is_empty())
        .ok_or_else(|| AppError::invalid("the request has no Host"))?;
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
    {
        Some("http") => "http",
        _ => "https",
    };
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .stage
            .as_deref()
            .filter(|stage| *stage != "$default"),
        Some(RequestContext::ApiGatewayV1(context)) => context
            .stage
            .as_deref()
            .filter(|_| host.contains(".execute-api.")),
        _ => None,
    };
    Ok(match stage {
        Some(stage) => format!("{scheme}://{host}/{stage}"),
        None => format!("{scheme}://{host}"),
    })
}

impl<S, B> Api<S, B>
where
    S: OwnershipStore + GrantStore + LinkStore,
    B: UrlSigner + ObjectStorage,
{
    pub(super) async fn create_link(
        &self,
        caller: &OwnerId,
        id: FileId,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let body: LinkBody = if request.body().as_ref().is_empty() {
            LinkBody::default()
        } else {
            json_body(request)?
        };
        let base = api_base(request)?;
        let (link, secret) = self
            .files
            .create_link(caller, id, body.expires_in, body.max_downloads)
            .await?;
        Span::current().record("link_id", field::display(link.id));
        tracing::info!(expires_at = %link.expires_at, "share link made");
        let mut view = LinkView::of(&link)?;
        view.url = Some(format!(
            "{base}/links/{}?secret={}",
            link.id,
            secret.expose()
        ));
        json(StatusCode::CREATED, &json!({ "link": view }))
    }

    pub(super) async fn list_links(
        &self,
        caller: &OwnerId,
        id: FileId,
    ) -> Result<Response<Body>, AppError> {
        let links = self.files.links(caller, id).await?;
        let links = links
            .iter()
            .map(|LinkStatus { link, downloads }| {
                let mut view = LinkView::of(link)?;
                view.downloads = Some(*downloads);
                Ok(view)
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        json(StatusCode::OK, &json!({ "links": links }))
    }

    pub(super) async fn revoke_link(
        &self,
        caller: &OwnerId,
        id: FileId,
        link: Option<&str>,
    ) -> Result<Response<Body>, AppError> {
        let link = link_segment(link)?;
        Span::current().record("link_id", field::display(link));
        self.files.revoke_link(caller, id, link).await?;
        tracing::info!("share link revoked");
        no_content()
    }

    /// `GET /links/{linkId}?secret=`: no identity. A browser is redirected (302) to a download
    /// URL; a client that asks for `application/json` gets it as `GET /files/{id}/download-url`
    /// answers. Unknown, revoked, expired, exhausted, a file gone and a wrong or malformed secret
    /// are all the one 404.
    pub(super) async fn redeem_link(
        &self,
        link: Option<&str>,
        request: &Request,
    ) -> Result<Response<Body>, AppError> {
        let link = link_segment(link)?;
        Span::current().record("link_id", field::display(link));
        let secret = single_query_value(request, "secret")
            .ok()
            .flatten()
            .and_then(LinkSecret::parse)
            .ok_or(AppError::NotFound)?;
        let (target, url) = self.files.redeem_link(link, &secret).await?;
        let span = Span::current();
        span.record("owner", field::display(&target.owner));
        span.record("file_id", field::display(target.file));
        tracing::info!(expires_at = %url.expires_at, "share link redeemed");
        let wants_json = request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|accept| accept.contains("application/json"));
        if wants_json {
            return json(StatusCode::OK, &UrlView::of(&url)?);
        }
        let location = HeaderValue::from_str(&url.url).map_err(|e| AppError::Internal(e.into()))?;
        Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, location)
            .header(header::CACHE_CONTROL, "no-store")
            // The page a link was followed from learns nothing of the download URL, and S3
            // nothing of the link.
            .header("referrer-policy", "no-referrer")
            .body(Body::Empty)
            .map_err(|e| AppError::Internal(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(stage: &str, host: &str, proto: Option<&str>) -> Request {
        let mut headers = json!({ "host": host });
        if let Some(proto) = proto {
            headers["x-forwarded-proto"] = json!(proto);
        }
        let event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/files/x/links",
            "rawQueryString": "",
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": host,
                "http": { "method": "POST", "path": "/files/x/links", "protocol": "HTTP/1.1",
                          "sourceIp": "203.0.113.1", "userAgent": "test" },
                "requestId": "r", "routeKey": "$default", "stage": stage,
                "time": "29/Nov/2026:12:00:00 +0000", "timeEpoch": 1_795_000_000_000u64
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    #[test]
    fn link_urls_start_where_the_caller_reached_the_api() {
        let host = "abc.execute-api.eu-west-1.amazonaws.com";
        assert_eq!(
            api_base(&request("$default", host, Some("https"))).unwrap(),
            format!("https://{host}")
        );
        assert_eq!(
            api_base(&request("prod", host, None)).unwrap(),
            format!("https://{host}/prod")
        );
        assert_eq!(
            api_base(&request("$default", "127.0.0.1:3000", Some("http"))).unwrap(),
            "http://127.0.0.1:3000"
        );
    }
}
