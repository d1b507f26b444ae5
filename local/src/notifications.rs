//! S3 event notifications to the events function, as the deployed bucket sends them.
//!
//! The record follows "Event message structure" (Amazon S3 User Guide,
//! notification-content-structure.html): eventVersion 2.1, one record per message, the key
//! URL-encoded with `+` for a space, `size` and `eTag` for ObjectCreated only, and a `sequencer`
//! that grows with each event of a key.
//!
//! Delivery is what Lambda's asynchronous invocation does ("How Lambda handles errors and retries
//! with asynchronous invocation", Lambda Developer Guide, invocation-async-error-handling.html):
//! the S3 request never waits for it, and a function error or an unreachable function is retried
//! twice, the second wait twice the first. Lambda waits one and two minutes; locally the first
//! wait is `retry_delay` (a second by default) so that a stopped or rebuilding function catches
//! up within seconds. Each attempt is a synchronous Invoke: Lambda's Invoke API reports a function
//! error with `X-Amz-Function-Error`, cargo lambda watch (1.9.2) with a 500; both count as failed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::template::NotificationRule;

/// Lambda retries a failed asynchronous invocation twice.
const RETRIES: u32 = 2;
/// The longest one attempt may take; the template gives the function 15 s, and cargo lambda may
/// first have to rebuild it.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// What happened to an object, as S3 names it (`ObjectCreated:Put`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    Put,
    Copy,
    CompleteMultipartUpload,
    Delete,
    DeleteMarkerCreated,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "ObjectCreated:Put",
            Self::Copy => "ObjectCreated:Copy",
            Self::CompleteMultipartUpload => "ObjectCreated:CompleteMultipartUpload",
            Self::Delete => "ObjectRemoved:Delete",
            Self::DeleteMarkerCreated => "ObjectRemoved:DeleteMarkerCreated",
        }
    }
}

/// An object event before it is sent.
#[derive(Debug, Clone)]
pub struct ObjectEvent {
    pub name: EventName,
    pub bucket: String,
    pub key: String,
    /// ObjectCreated only: the stored size and the ETag (without quotes).
    pub created: Option<(u64, String)>,
}

/// Where the events go and how often a failed delivery is tried again.
#[derive(Debug, Clone)]
pub struct EventsTarget {
    /// The events function's Lambda Invoke URL (…/2015-03-31/functions/NAME/invocations).
    pub invoke_url: Uri,
    /// The wait before the first retry; the second waits twice as long.
    pub retry_delay: Duration,
}

#[derive(Clone)]
pub struct Notifier {
    rules: Vec<NotificationRule>,
    target: Option<EventsTarget>,
    region: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Notifier {
    pub fn new(rules: Vec<NotificationRule>, target: Option<EventsTarget>, region: String) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            rules,
            target,
            region,
            client,
        }
    }

    /// Sends the event in the background if a notification rule selects it. Never waits.
    pub fn object_event(&self, event: ObjectEvent) {
        let Some(target) = &self.target else { return };
        let Some(rule) = self
            .rules
            .iter()
            .find(|rule| rule.selects(event.name.as_str(), &event.key))
        else {
            return;
        };
        let message = record(&event, &rule.id, &self.region);
        let (client, target) = (self.client.clone(), target.clone());
        tokio::spawn(deliver(
            client,
            target,
            message,
            event.name.as_str(),
            event.key,
        ));
    }

    /// Another service's event for the events function (an EventBridge rule's target), with the
    /// same asynchronous invocation and retries. Waits for the delivery to end (or be dropped).
    pub async fn deliver_event(&self, name: &'static str, key: String, message: Value) {
        if let Some(target) = &self.target {
            deliver(self.client.clone(), target.clone(), message, name, key).await;
        }
    }
}

async fn deliver(
    client: Client<HttpConnector, Full<Bytes>>,
    target: EventsTarget,
    message: Value,
    name: &'static str,
    key: String,
) {
    let body = Bytes::from(message.to_string());
    let key = key.as_str();
    let mut wait = target.retry_delay;
    for attempt in 0..=RETRIES {
        let outcome = tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            invoke(&client, &target.invoke_url, body.clone()),
        )
        .await
        .unwrap_or_else(|_| Err("no answer in time".into()));
        match outcome {
            Ok(_) => {
                tracing::info!(event = name, key, attempt, "event delivered");
                return;
            }
            Err(cause) if attempt < RETRIES => {
                tracing::warn!(event = name, key, attempt, %cause, "event not handled; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(cause) => {
                // Where the deployed function's on-failure destination (the SQS queue) takes over.
                tracing::error!(event = name, key, %cause, "event dropped after {} attempts", RETRIES + 1);
            }
        }
    }
}

/// One synchronous invocation: the function's answer when it handled the event.
pub(crate) async fn invoke(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &Uri,
    body: Bytes,
) -> Result<Bytes, String> {
    let request = Request::post(url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|error| error.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|error| format!("function unreachable: {error}"))?;
    let status = response.status();
    let function_error = response.headers().contains_key("x-amz-function-error");
    let answer = response.into_body().collect().await;
    if function_error {
        Err("function error".into())
    } else if !status.is_success() {
        Err(format!("invoke answered {status}"))
    } else {
        answer
            .map(|answer| answer.to_bytes())
            .map_err(|error| format!("the answer was cut: {error}"))
    }
}

/// The notification message S3 sends for `event`.
pub fn record(event: &ObjectEvent, configuration_id: &str, region: &str) -> Value {
    let sequencer = next_sequencer();
    let mut object = json!({ "key": s3_event_key(&event.key), "sequencer": sequencer });
    if let Some((size, e_tag)) = &event.created {
        object["size"] = json!(size);
        object["eTag"] = json!(e_tag);
    }
    json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": region,
            "eventTime": event_time(),
            "eventName": event.name.as_str(),
            "userIdentity": { "principalId": "local" },
            "requestParameters": { "sourceIPAddress": "127.0.0.1" },
            "responseElements": { "x-amz-request-id": sequencer, "x-amz-id-2": sequencer },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": configuration_id,
                "bucket": {
                    "name": event.bucket,
                    "ownerIdentity": { "principalId": "local" },
                    "arn": format!("arn:aws:s3:::{}", event.bucket),
                },
                "object": object,
            }
        }]
    })
}

/// Keys in S3 event notifications are URL-encoded, with `+` for a space.
pub fn s3_event_key(key: &str) -> String {
    const KEY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(key, KEY_ENCODE)
        .to_string()
        .replace("%20", "+")
}

/// Hexadecimal, growing with every event of this process and across restarts (it starts from
/// the clock), so later events of a key compare greater, as S3's sequencers do.
fn next_sequencer() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        });
    let previous = NEXT
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(last.max(now).saturating_add(1))
        })
        .unwrap_or(now);
    format!("{:016X}", previous.max(now).saturating_add(1))
}

fn event_time() -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_as_s3_encodes_them_in_events() {
        assert_eq!(s3_event_key("users/a b/c+d"), "users/a+b/c%2Bd");
        assert_eq!(
            s3_event_key("users/auth0%7Cx/é"),
            "users/auth0%257Cx/%C3%A9"
        );
    }

    #[test]
    fn sequencers_grow() {
        let first = next_sequencer();
        let second = next_sequencer();
        assert_eq!(first.len(), second.len());
        assert!(second > first, "{second} > {first}");
    }
}
