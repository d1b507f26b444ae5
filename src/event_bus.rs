//! Where file events go: an EventBridge bus (`EVENT_BUS_NAME`), behind the one trait the
//! publisher needs.

use std::future::Future;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use time::OffsetDateTime;

use crate::backend_error::backend_error;
use crate::error::AppError;

/// Every event's `source` (EventBridge User Guide, "Amazon EventBridge events": a custom
/// application's source must not start with `aws.`).
pub const EVENT_SOURCE: &str = "presign-gate";

/// PutEvents takes at most 10 entries a call (Amazon EventBridge API Reference, PutEvents).
pub const MAX_ENTRIES_PER_CALL: usize = 10;

/// One event for the bus.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundEvent {
    pub detail_type: &'static str,
    /// The JSON `detail`.
    pub detail: String,
    pub time: OffsetDateTime,
}

pub trait EventBus: Send + Sync {
    /// Puts up to `MAX_ENTRIES_PER_CALL` events, in one call. Per event, in order: `None` when
    /// it was accepted, or the error code EventBridge gave it (a call can accept some entries
    /// and refuse others). An `Err` when the call itself failed: nothing is known to be put.
    fn put(
        &self,
        events: &[OutboundEvent],
    ) -> impl Future<Output = Result<Vec<Option<String>>, AppError>> + Send;
}

pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }
}

impl EventBus for EventBridgeBus {
    async fn put(&self, events: &[OutboundEvent]) -> Result<Vec<Option<String>>, AppError> {
        let entries = events
            .iter()
            .map(|event| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus_name)
                    .source(EVENT_SOURCE)
                    .detail_type(event.detail_type)
                    .detail(&event.detail)
                    .time(aws_smithy_types::DateTime::from_secs(
                        event.time.unix_timestamp(),
                    ))
                    .build()
            })
            .collect();
        let output = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(backend_error)?;
        let results = output.entries();
        // PutEvents answers one result per entry, in order; fewer would mean an entry unknown.
        Ok((0..events.len())
            .map(|index| match results.get(index) {
                Some(result) if result.error_code().is_none() => None,
                Some(result) => Some(result.error_code().unwrap_or_default().to_owned()),
                None => Some("NoResult".to_owned()),
            })
            .collect())
    }
}
