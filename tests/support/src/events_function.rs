//! The events function and the publisher, in process, behind Lambda Invoke URLs on loopback: local-aws delivers
//! S3's notifications and GuardDuty's scan results to it (its `--events-url`) as Lambda's
//! asynchronous invocation would, and it runs the real handler (`handle_inbound_event`) over the
//! stand-ins with the events role. A failed event answers 500, so local-aws retries it as Lambda
//! retries an asynchronous invocation. HTTP/1.1 with keep-alive, just enough for local-aws's
//! client.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use presign_gate::bucket::S3Bucket;
use presign_gate::event_bus::EventBridgeBus;
use presign_gate::inbound_events::{InboundEvent, handle_inbound_event};
use presign_gate::service::FileService;
use presign_gate::store::DynamoDbOwnershipStore;
use presign_gate::stream_events::{StreamBatch, publish_batch};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::BUCKET;

type Files = FileService<DynamoDbOwnershipStore, S3Bucket>;

/// One event delivered, and whether the handler succeeded.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub event: Value,
    pub handled: Result<(), String>,
}

impl Delivery {
    pub fn is_scan_result(&self) -> bool {
        self.event.get("detail-type").is_some()
    }
}

#[derive(Clone, Default)]
pub struct EventsFunction {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// While set, S3's notifications are acknowledged without being handled, as if their
    /// delivery were still on the way (a scan result can then arrive first).
    hold_s3_notifications: Arc<AtomicBool>,
}

impl EventsFunction {
    /// Serves `files` on `listener` until the test ends.
    pub fn serve(listener: TcpListener, files: Files) -> Self {
        let function = Self::default();
        let files = Arc::new(files);
        let handling = function.clone();
        serve_invocations(listener, move |event| {
            let (function, files) = (handling.clone(), files.clone());
            async move { function.handle(event, &files).await }
        });
        function
    }

    pub fn hold_s3_notifications(&self, hold: bool) {
        self.hold_s3_notifications.store(hold, Ordering::SeqCst);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }

    /// The scan results delivered so far.
    pub fn scan_results(&self) -> Vec<Delivery> {
        self.deliveries()
            .into_iter()
            .filter(Delivery::is_scan_result)
            .collect()
    }

    async fn handle(&self, event: Value, files: &Files) -> Result<Value, String> {
        let handled = match serde_json::from_value::<InboundEvent>(event.clone()) {
            Err(error) => Err(format!("not an event: {error}")),
            Ok(InboundEvent::S3(_)) if self.hold_s3_notifications.load(Ordering::SeqCst) => Ok(()),
            Ok(inbound) => handle_inbound_event(files, BUCKET, inbound)
                .await
                .map_err(|error| error.to_string()),
        };
        self.deliveries.lock().unwrap().push(Delivery {
            event,
            handled: handled.clone(),
        });
        handled.map(|()| Value::Null)
    }
}

/// The publisher's real handler (`publish_batch`) behind `listener`, putting on `bus`: what
/// local-aws hands the table's stream to, as Lambda's event source mapping would.
pub fn serve_publisher(listener: TcpListener, bus: EventBridgeBus) {
    let bus = Arc::new(bus);
    serve_invocations(listener, move |event| {
        let bus = bus.clone();
        async move {
            let batch: StreamBatch =
                serde_json::from_value(event).map_err(|error| format!("not a batch: {error}"))?;
            let response = publish_batch(bus.as_ref(), batch).await;
            serde_json::to_value(response).map_err(|error| error.to_string())
        }
    });
}

/// A Lambda Invoke URL on `listener`: each request's JSON body goes to `handler`, whose answer
/// is the response (200), or whose error is a 500, as a function error is to local-aws's
/// delivery. HTTP/1.1 with keep-alive, just enough for local-aws's client.
pub fn serve_invocations<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(Value) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Value, String>> + Send + 'static,
{
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = connection(stream, handler.as_ref()).await;
            });
        }
    });
}

async fn connection<H, F>(stream: TcpStream, handler: &H) -> std::io::Result<()>
where
    H: Fn(Value) -> F,
    F: Future<Output = Result<Value, String>>,
{
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body).await?;
        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (status, answer) = match handler(event).await {
            Ok(answer) => ("200 OK", answer.to_string()),
            Err(error) => (
                "500 Internal Server Error",
                json!({ "errorMessage": error }).to_string(),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        reader.get_mut().write_all(response.as_bytes()).await?;
    }
}
