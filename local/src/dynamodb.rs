//! DynamoDB's authorization, in front of moto's DynamoDB (which checks no signature and no
//! policy): each request's SigV4 signature is verified against its signer's key, the operation is
//! turned into the IAM actions DynamoDB authorizes it as, and the local IAM decides (see `iam`);
//! only then is the request passed on, byte for byte.
//!
//! Actions follow the DynamoDB Developer Guide, "Using IAM with DynamoDB transactions" (a
//! TransactWriteItems is authorized item by item as the PutItem, UpdateItem, DeleteItem and
//! ConditionCheckItem it holds; TransactGetItems as GetItem) and the Service Authorization
//! Reference, "Actions, resources, and condition keys for Amazon DynamoDB" (BatchGetItem and
//! BatchWriteItem on each table they name; a Query or Scan of an index on the index's ARN).
//! Refusals answer as DynamoDB does: 400 with `AccessDeniedException`,
//! `UnrecognizedClientException` for an unknown key, `InvalidSignatureException` for a bad
//! signature.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, HOST};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower::Service;

use crate::HttpBody;
use crate::iam::{Authorizer, RequestContext, stack};
use crate::sigv4::authenticate;
use crate::streams::Writes;

/// The largest request body DynamoDB takes (16 MB for a batch write, 4 MB for a transaction).
const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct DynamoDbFront {
    upstream: Uri,
    region: String,
    authorizer: Arc<Authorizer>,
    /// Access key -> secret key, every principal's.
    secrets: Arc<std::collections::HashMap<String, String>>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Held while a write is passed on: moto's server is threaded and checks a transaction's
    /// conditions, then applies it, without excluding other requests in between, where DynamoDB
    /// runs each transaction atomically with respect to every other write ("Amazon DynamoDB
    /// Transactions: How it works", Isolation levels: serializable). One write at a time restores
    /// that here; the stream poller reads between writes, and after each (see `streams`).
    writes: Writes,
}

/// The operations that write, passed on one at a time (`DynamoDbFront::writes`).
const WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

impl DynamoDbFront {
    pub fn new(
        upstream: Uri,
        region: String,
        authorizer: Arc<Authorizer>,
        key_pairs: Vec<(String, String)>,
        writes: Writes,
    ) -> Self {
        Self {
            upstream,
            region,
            authorizer,
            secrets: Arc::new(key_pairs.into_iter().collect()),
            client: Client::builder(TokioExecutor::new()).build_http(),
            writes,
        }
    }

    fn table_arn(&self, table: &str) -> String {
        format!(
            "arn:aws:dynamodb:{}:{}:table/{table}",
            self.region,
            stack::ACCOUNT_ID
        )
    }

    /// Verifies, authorizes, and passes the request on; or DynamoDB's refusal.
    async fn handle(self, request: Request<Incoming>) -> Response<HttpBody> {
        let (mut parts, body) = request.into_parts();
        let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return refusal(
                    "SerializationException",
                    "the request body could not be read",
                );
            }
        };
        let principal = match authenticate(&self.authorizer, &self.secrets, &parts, &body) {
            Ok(principal) => principal,
            Err(refused) => return refusal(refused.code, &refused.message),
        };
        let operation = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|target| target.strip_prefix("DynamoDB_20120810."))
            .unwrap_or_default()
            .to_owned();
        let Ok(input) = serde_json::from_slice::<Value>(&body) else {
            return refusal("SerializationException", "the request body is not JSON");
        };
        for request in requests(&operation, &input, |table| self.table_arn(table)) {
            let request = request.with("aws:PrincipalArn", principal.arn.clone());
            let decision = self.authorizer.authorize_dynamodb(principal, &request);
            if !decision.allowed() {
                let message = Authorizer::refusal(principal, &request, &decision);
                tracing::info!("DynamoDB refused: {message}");
                return refusal("AccessDeniedException", &message);
            }
        }

        parts.uri = self.upstream.clone();
        parts.headers.remove(HOST);
        parts.headers.remove(CONNECTION);
        let write = WRITES.contains(&operation.as_str());
        let one_write = match write {
            true => Some(self.writes.exclusive().await),
            false => None,
        };
        let answer = self
            .client
            .request(Request::from_parts(parts, Full::new(body)))
            .await;
        drop(one_write);
        if write {
            self.writes.done();
        }
        match answer {
            Ok(response) => response.map(|body| body.map_err(Into::into).boxed_unsync()),
            Err(error) => {
                tracing::warn!(%error, "moto's DynamoDB did not answer");
                let mut response = refusal("InternalServerError", "the local DynamoDB is down");
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response
            }
        }
    }
}

/// The actions (with their resources) DynamoDB authorizes `operation` as.
fn requests(
    operation: &str,
    input: &Value,
    table_arn: impl Fn(&str) -> String,
) -> Vec<RequestContext> {
    let on_table = |action: &str, item: &Value| {
        let table = item["TableName"].as_str().unwrap_or_default();
        let resource = match item["IndexName"].as_str() {
            Some(index) => format!("{}/index/{index}", table_arn(table)),
            None => table_arn(table),
        };
        RequestContext::new(format!("dynamodb:{action}"), resource)
    };
    match operation {
        "TransactWriteItems" | "TransactGetItems" => input["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let kinds = [
                    ("Put", "PutItem"),
                    ("Update", "UpdateItem"),
                    ("Delete", "DeleteItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                    ("Get", "GetItem"),
                ];
                kinds
                    .iter()
                    .find(|(kind, _)| item.get(kind).is_some())
                    .map(|(kind, action)| on_table(action, &item[kind]))
            })
            .collect(),
        "BatchGetItem" | "BatchWriteItem" => input["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.keys())
            .map(|table| RequestContext::new(format!("dynamodb:{operation}"), table_arn(table)))
            .collect(),
        "ListTables" => vec![RequestContext::new("dynamodb:ListTables", "*")],
        // An operation of no table (or an unknown target) is authorized on "*": only the
        // administrator has it.
        other if input["TableName"].is_string() => vec![on_table(other, input)],
        other => vec![RequestContext::new(format!("dynamodb:{other}"), "*")],
    }
}

fn refusal(code: &str, message: &str) -> Response<HttpBody> {
    let body = serde_json::json!({
        "__type": format!("com.amazon.coral.service#{code}"),
        "message": message,
    });
    crate::json_response(StatusCode::BAD_REQUEST, "application/x-amz-json-1.0", &body)
}

impl Service<Request<Incoming>> for DynamoDbFront {
    type Response = Response<HttpBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let front = self.clone();
        Box::pin(async move { Ok(front.handle(request).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(table: &str) -> String {
        format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}")
    }

    fn actions(operation: &str, input: Value) -> Vec<(String, String)> {
        requests(operation, &input, arn)
            .into_iter()
            .map(|r| (r.action, r.resource))
            .collect()
    }

    #[test]
    fn transactions_are_authorized_item_by_item() {
        let input = serde_json::json!({"TransactItems": [
            {"Put": {"TableName": "t"}},
            {"Update": {"TableName": "t"}},
            {"ConditionCheck": {"TableName": "u"}},
        ]});
        assert_eq!(
            actions("TransactWriteItems", input),
            [
                ("dynamodb:PutItem".into(), arn("t")),
                ("dynamodb:UpdateItem".into(), arn("t")),
                ("dynamodb:ConditionCheckItem".into(), arn("u")),
            ]
        );
    }

    #[test]
    fn batches_queries_and_others() {
        assert_eq!(
            actions(
                "BatchGetItem",
                serde_json::json!({"RequestItems": {"t": {}}})
            ),
            [("dynamodb:BatchGetItem".into(), arn("t"))]
        );
        assert_eq!(
            actions(
                "Query",
                serde_json::json!({"TableName": "t", "IndexName": "i"})
            ),
            [("dynamodb:Query".into(), format!("{}/index/i", arn("t")))]
        );
        assert_eq!(
            actions("GetItem", serde_json::json!({"TableName": "t"})),
            [("dynamodb:GetItem".into(), arn("t"))]
        );
        assert_eq!(
            actions("ListTables", serde_json::json!({})),
            [("dynamodb:ListTables".into(), "*".into())]
        );
    }
}
