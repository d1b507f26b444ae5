//! The events function, in process, behind a Lambda Invoke URL on loopback: local-aws delivers
//! S3's notifications and GuardDuty's scan results to it (its `--events-url`) as Lambda's
//! asynchronous invocation would, and it runs the real handler (`handle_inbound_event`) over the
//! stand-ins with the events role. A failed event answers 500, so local-aws retries it as Lambda
//! retries an asynchronous invocation. HTTP/1.1 with keep-alive, just enough for local-aws's
//! client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use presign_gate::bucket::S3Bucket;
use presign_gate::inbound_events::{InboundEvent, handle_inbound_event};
use presign_gate::service::FileService;
use presign_gate::store::DynamoDbOwnershipStore;
use serde_json::Value;
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
        let serving = function.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (files, function) = (files.clone(), serving.clone());
                tokio::spawn(async move {
                    let _ = function.connection(stream, &files).await;
                });
            }
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

    async fn connection(&self, stream: TcpStream, files: &Files) -> std::io::Result<()> {
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
            let ok = self.handle(&body, files).await;
            let status = if ok {
                "200 OK"
            } else {
                "500 Internal Server Error"
            };
            reader
                .get_mut()
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\n{{}}").as_bytes())
                .await?;
        }
    }

    async fn handle(&self, body: &[u8], files: &Files) -> bool {
        let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let handled = match serde_json::from_value::<InboundEvent>(event.clone()) {
            Err(error) => Err(format!("not an event: {error}")),
            Ok(InboundEvent::S3(_)) if self.hold_s3_notifications.load(Ordering::SeqCst) => Ok(()),
            Ok(inbound) => handle_inbound_event(files, BUCKET, inbound)
                .await
                .map_err(|error| error.to_string()),
        };
        let ok = handled.is_ok();
        self.deliveries
            .lock()
            .unwrap()
            .push(Delivery { event, handled });
        ok
    }
}
