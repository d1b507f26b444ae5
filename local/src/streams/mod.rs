//! Lambda's event source mapping for the table's DynamoDB stream, locally: with
//! `--publisher-url`, the stream is read from moto (see `client`) and each batch is given to the
//! publisher function's Invoke URL, as Lambda Developer Guide, "Using AWS Lambda with Amazon
//! DynamoDB" (polling and batching, error handling) and "Configuring partial batch response
//! with DynamoDB and Lambda" describe, configured from the template (see `mapping`):
//!
//! - records are read in order from TRIM_HORIZON, as the mapping's role (its stream-read rights
//!   are checked by the local IAM: DescribeStream, GetShardIterator, GetRecords on the stream);
//! - up to BatchSize records a batch; records no filter of FilterCriteria matches are never sent
//!   (and count as processed);
//! - a batch that fails whole (function error, no answer, invalid report) is retried, halved first
//!   when BisectBatchOnFunctionError is set; a reported batch item failure is retried from the
//!   lowest reported sequence number on; each retry waits `--events-retry-ms`; after
//!   MaximumRetryAttempts retries the rest of the batch is discarded and logged as the on-failure
//!   destination would receive it ("Capturing discarded batches for a DynamoDB event source"),
//!   and reading goes on after it. Records passed are never sent again except by such a retry.
//!
//! Differs from Lambda: one shard (moto keeps one); reads follow every write through the
//! DynamoDB front (and every [`IDLE_POLL`] otherwise) rather than four times a second; retries
//! wait `--events-retry-ms` rather than Lambda's backoff; a retry counts against the whole batch
//! read, halves included; MaximumRecordAgeInSeconds and ParallelizationFactor are not read; a
//! mapping starts afresh (TRIM_HORIZON) whenever local-aws starts or the table's stream changes.

pub mod client;
pub mod mapping;
pub mod records;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use self::client::{Shard, StreamsClient};
pub use self::mapping::StreamMapping;
use self::records::{Outcome, lambda_record, outcome, sequence_number};
use crate::iam::{Authorizer, RequestContext, role_credentials};
use crate::notifications::{ATTEMPT_TIMEOUT, invoke};

/// How often the stream is read when no write through the front prompts it.
pub const IDLE_POLL: Duration = Duration::from_secs(2);
/// What Lambda's role must be allowed on the stream to read it.
const READ_ACTIONS: [&str; 3] = ["DescribeStream", "GetShardIterator", "GetRecords"];

/// Writes to moto passed on one at a time by the DynamoDB front, and a signal after each: the
/// poller reads only between writes (moto's transactions are not atomic to readers) and right
/// after one.
#[derive(Debug, Clone, Default)]
pub struct Writes {
    lock: Arc<tokio::sync::Mutex<()>>,
    written: Arc<tokio::sync::Notify>,
}

impl Writes {
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    pub fn done(&self) {
        self.written.notify_one();
    }
}

/// Where the publisher is invoked.
#[derive(Debug, Clone)]
pub struct PublisherTarget {
    /// Its Lambda Invoke URL (…/2015-03-31/functions/publish/invocations).
    pub invoke_url: Uri,
    /// The wait before each retry of a failed batch.
    pub retry_delay: Duration,
}

pub struct Poller {
    pub mapping: StreamMapping,
    pub streams: StreamsClient,
    pub target: PublisherTarget,
    pub writes: Writes,
    pub authorizer: Arc<Authorizer>,
    pub region: String,
}

/// How far the stream has been read.
struct Position {
    shard: Shard,
    /// The last record read (and passed or discarded); None: from the start.
    after: Option<String>,
}

impl Poller {
    /// Reads and delivers until the task is aborted.
    pub async fn run(self) {
        let http = Client::builder(TokioExecutor::new()).build_http();
        let mut position: Option<Position> = None;
        let mut last_problem = String::new();
        loop {
            if let Err(problem) = self.poll(&http, &mut position).await
                && problem != last_problem
            {
                tracing::warn!(
                    function = self.mapping.function,
                    "stream not read: {problem}"
                );
                last_problem = problem;
            }
            tokio::select! {
                () = self.writes.written.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
    }

    /// Delivers every record written since the last poll.
    async fn poll(
        &self,
        http: &Client<HttpConnector, Full<Bytes>>,
        position: &mut Option<Position>,
    ) -> Result<(), String> {
        let Some(shard) = self.streams.shard(&self.mapping.table).await? else {
            return Ok(());
        };
        if position.as_ref().is_none_or(|p| p.shard != shard) {
            tracing::info!(
                function = self.mapping.function,
                "reading the table's stream from its start"
            );
            *position = Some(Position { shard, after: None });
        }
        let Some(position) = position.as_mut() else {
            return Ok(());
        };
        self.may_read(&position.shard.stream_arn)?;
        loop {
            let read = {
                let _between_writes = self.writes.exclusive().await;
                self.streams
                    .records(
                        &position.shard,
                        position.after.as_deref(),
                        self.mapping.batch_size,
                    )
                    .await?
            };
            let Some(last) = read.last().map(|record| sequence_number(record).to_owned()) else {
                return Ok(());
            };
            let batch: Vec<Value> = read
                .iter()
                .map(|raw| lambda_record(raw, &position.shard.stream_arn, &self.region))
                .filter(|record| self.mapping.selects(record))
                .collect();
            self.deliver(http, batch, &position.shard).await;
            position.after = Some(last);
        }
    }

    /// Whether the mapping's role may read the stream (Lambda would report the mapping as
    /// failing otherwise).
    fn may_read(&self, stream_arn: &str) -> Result<(), String> {
        let (access_key, _) = role_credentials(&self.mapping.role);
        let principal = self
            .authorizer
            .principal(&access_key)
            .ok_or_else(|| format!("no role {}", self.mapping.role))?;
        for action in READ_ACTIONS {
            let request = RequestContext::new(format!("dynamodb:{action}"), stream_arn)
                .with("aws:PrincipalArn", principal.arn.clone());
            let decision = self.authorizer.authorize_dynamodb(principal, &request);
            if !decision.allowed() {
                return Err(Authorizer::refusal(principal, &request, &decision));
            }
        }
        Ok(())
    }

    /// Invokes the function with `batch` until it succeeds or the retries are spent.
    async fn deliver(
        &self,
        http: &Client<HttpConnector, Full<Bytes>>,
        mut remaining: Vec<Value>,
        shard: &Shard,
    ) {
        let mut window = remaining.len();
        let mut retries = 0;
        let mut invocations = 0;
        while !remaining.is_empty() {
            let body = Bytes::from(json!({ "Records": &remaining[..window] }).to_string());
            invocations += 1;
            let answer =
                tokio::time::timeout(ATTEMPT_TIMEOUT, invoke(http, &self.target.invoke_url, body))
                    .await
                    .unwrap_or_else(|_| Err("no answer in time".into()));
            let cause = match outcome(
                answer,
                &remaining[..window],
                self.mapping.report_item_failures,
            ) {
                Outcome::Success => {
                    remaining.drain(..window);
                    window = remaining.len();
                    continue;
                }
                Outcome::FailedFrom(index) => {
                    remaining.drain(..index);
                    window -= index;
                    "batch item failure".to_owned()
                }
                Outcome::Failed(cause) => {
                    if self.mapping.bisect_on_error && window > 1 {
                        window = window.div_ceil(2);
                    }
                    cause
                }
            };
            if self.mapping.max_retries.is_some_and(|max| retries >= max) {
                self.discard(&remaining, shard, invocations, &cause);
                return;
            }
            retries += 1;
            tracing::warn!(
                function = self.mapping.function,
                retry = retries,
                from = sequence_number(&remaining[0]),
                %cause,
                "batch not processed; retrying"
            );
            tokio::time::sleep(self.target.retry_delay).await;
        }
    }

    /// Logs what the on-failure destination would receive for the discarded records.
    fn discard(&self, records: &[Value], shard: &Shard, invocations: u32, cause: &str) {
        let arrival = |record: Option<&Value>| {
            record.map(|record| record["dynamodb"]["ApproximateCreationDateTime"].clone())
        };
        let invocation_record = json!({
            "requestContext": {
                "functionArn": self.mapping.function,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": { "functionError": cause },
            "version": "1.0",
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": records.first().map(sequence_number),
                "endSequenceNumber": records.last().map(sequence_number),
                "approximateArrivalOfFirstRecord": arrival(records.first()),
                "approximateArrivalOfLastRecord": arrival(records.last()),
                "batchSize": records.len(),
                "streamArn": shard.stream_arn,
            },
        });
        tracing::error!(
            function = self.mapping.function,
            destination = self.mapping.on_failure.as_deref().unwrap_or("none"),
            "records discarded after the retries: {invocation_record}"
        );
    }
}
