//! EventBridge's PutEvents, locally: the publisher's events reach the sink (see `sink`).
//!
//! AWS JSON 1.1 (`X-Amz-Target: AWSEvents.PutEvents`), signed with SigV4 as the DynamoDB front
//! verifies it (see `sigv4`). Each entry is authorized as IAM `events:PutEvents` on its bus's ARN
//! with the condition keys `events:source` and `events:detail-type` (EventBridge User Guide,
//! "Using identity-based policies for Amazon EventBridge" and "Using IAM policy conditions in
//! Amazon EventBridge"); an entry refused fails alone with `AccessDeniedException` (API
//! Reference, "PutEventsResultEntry"), and a call none of whose entries may be put fails whole
//! with `AccessDeniedException`, as AWS answers a caller without the permission. Requests that
//! EventBridge refuses whole (more than 10 entries, more than 256 KB) and entries it refuses
//! (a missing field, a Detail that is not a JSON object) are refused the same way (see
//! `entries`).
//!
//! Differs from AWS: an entry for a bus that does not exist is accepted with an EventId and
//! dropped, as AWS does (aws/aws-sdk#186), but logged as a warning here; no rules, archives,
//! schema discovery or cross-account buses; the stack's buses are `default`, the template's
//! `AWS::Events::EventBus`es and the publisher's `EVENT_BUS_NAME` (an existing bus it names).

pub mod entries;
pub mod faults;
pub mod sink;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use self::entries::{Entry, EntryError, read_entries};
use self::faults::PutEventsFault;
pub use self::sink::Sink;
use crate::HttpBody;
use crate::cfn::{ACCOUNT_ID, Template};
use crate::error::Error;
use crate::faults::Faults;
use crate::iam::{Authorizer, Principal, RequestContext};
use crate::sigv4::authenticate;

const TARGET: &str = "AWSEvents.PutEvents";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// A PutEvents body: 256 KB of entries and their JSON.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct EventBridgeFront {
    region: String,
    authorizer: Arc<Authorizer>,
    /// Access key -> secret key, every principal's.
    secrets: Arc<HashMap<String, String>>,
    /// The buses that exist: their events are kept.
    buses: Arc<BTreeSet<String>>,
    sink: Sink,
    faults: Faults,
}

/// What the front is built from.
pub struct EventBridgeParts {
    pub region: String,
    pub authorizer: Arc<Authorizer>,
    pub key_pairs: Vec<(String, String)>,
    pub buses: BTreeSet<String>,
    pub sink: Sink,
    pub faults: Faults,
}

impl EventBridgeFront {
    pub fn new(parts: EventBridgeParts) -> Self {
        Self {
            region: parts.region,
            authorizer: parts.authorizer,
            secrets: Arc::new(parts.key_pairs.into_iter().collect()),
            buses: Arc::new(parts.buses),
            sink: parts.sink,
            faults: parts.faults,
        }
    }

    fn bus_arn(&self, bus: &str) -> String {
        format!(
            "arn:aws:events:{}:{ACCOUNT_ID}:event-bus/{bus}",
            self.region
        )
    }

    /// Answers one request (the listener's service: see `crate::LocalAws::start`).
    pub async fn handle(self, request: Request<Incoming>) -> Response<HttpBody> {
        let (parts, body) = request.into_parts();
        let Ok(body) = http_body_util::Limited::new(body, MAX_BODY).collect().await else {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ValidationException",
                "the request body could not be read",
            );
        };
        let body = body.to_bytes();
        let principal = match authenticate(&self.authorizer, &self.secrets, &parts, &body) {
            Ok(principal) => principal,
            Err(refused) => return error(StatusCode::BAD_REQUEST, refused.code, &refused.message),
        };
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        if target != Some(TARGET) {
            return error(
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                "local-aws serves PutEvents only",
            );
        }
        let Ok(input) = serde_json::from_slice::<Value>(&body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                "the request body is not JSON",
            );
        };
        let entries = match read_entries(&input, &self.region, ACCOUNT_ID) {
            Ok(entries) => entries,
            Err(message) => return error(StatusCode::BAD_REQUEST, "ValidationException", &message),
        };
        let fault = self.faults.take_put_events();
        if let Some(status) = fault.as_ref().and_then(|fault| fault.status) {
            tracing::info!(status, "injected a PutEvents fault");
            let (code, message) = PutEventsFault::error(status);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(status, code, message);
        }
        let failing = fault.and_then(|fault| fault.fail_entries).unwrap_or(0);

        let results: Vec<Result<Entry, EntryError>> = entries
            .into_iter()
            .map(|entry| entry.and_then(|entry| self.authorize(principal, entry)))
            .collect();
        let refused = |result: &Result<Entry, EntryError>| matches!(result, Err(e) if e.code == "AccessDeniedException");
        if results.iter().all(refused) {
            let message = results
                .iter()
                .find_map(|result| result.as_ref().err())
                .map(|e| e.message.clone())
                .unwrap_or_default();
            return error(StatusCode::BAD_REQUEST, "AccessDeniedException", &message);
        }
        let answers: Vec<Value> = results
            .into_iter()
            .enumerate()
            .map(|(index, result)| match result {
                _ if index < failing => {
                    json!({"ErrorCode": "InternalFailure", "ErrorMessage": "Internal Failure"})
                }
                Ok(entry) => json!({ "EventId": self.accept(entry) }),
                Err(e) => json!({"ErrorCode": e.code, "ErrorMessage": e.message}),
            })
            .collect();
        let failed = answers
            .iter()
            .filter(|a| a.get("ErrorCode").is_some())
            .count();
        crate::json_response(
            StatusCode::OK,
            CONTENT_TYPE,
            &json!({ "FailedEntryCount": failed, "Entries": answers }),
        )
    }

    fn authorize(&self, principal: &Principal, entry: Entry) -> Result<Entry, EntryError> {
        let request = RequestContext::new("events:PutEvents", self.bus_arn(&entry.bus))
            .with("events:source", entry.source.clone())
            .with("events:detail-type", entry.detail_type.clone())
            .with("aws:PrincipalArn", principal.arn.clone());
        let decision = self.authorizer.authorize_events(principal, &request);
        if decision.allowed() {
            return Ok(entry);
        }
        let message = Authorizer::refusal(principal, &request, &decision);
        tracing::info!("EventBridge refused: {message}");
        Err(EntryError::new("AccessDeniedException", message))
    }

    /// The event as a rule's target receives it, kept if its bus exists; its id.
    fn accept(&self, entry: Entry) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        if !self.buses.contains(&entry.bus) {
            tracing::warn!(
                bus = entry.bus,
                "PutEvents to a bus that does not exist: accepted and dropped, as AWS does"
            );
            return id;
        }
        let time = entry
            .time
            .unwrap_or_else(OffsetDateTime::now_utc)
            .replace_nanosecond(0)
            .ok()
            .and_then(|time| time.format(&Rfc3339).ok())
            .unwrap_or_default();
        self.sink.put(json!({
            "version": "0",
            "id": id,
            "detail-type": entry.detail_type,
            "source": entry.source,
            "account": ACCOUNT_ID,
            "time": time,
            "region": self.region,
            "resources": entry.resources,
            "detail": entry.detail,
        }));
        id
    }
}

/// The buses that exist for the stack: `default`, the template's, and the one the publisher is
/// told to use (an existing bus when the stack creates none).
pub fn stack_buses(
    template: &Template,
    publisher_bus: Option<&str>,
) -> Result<BTreeSet<String>, Error> {
    let resolver = template.resolver();
    let mut buses = BTreeSet::from(["default".to_owned()]);
    for (id, _) in template.resources_of("AWS::Events::EventBus") {
        buses.insert(resolver.reference(id)?);
    }
    buses.extend(publisher_bus.map(str::to_owned));
    Ok(buses)
}

/// An error of the whole call, as EventBridge words it.
fn error(status: StatusCode, code: &str, message: &str) -> Response<HttpBody> {
    crate::json_response(
        status,
        CONTENT_TYPE,
        &json!({ "__type": code, "message": message }),
    )
}
