//! What the four Lambda functions (api, events, reconcile, publish) run, whatever tokio runtime their `main` chooses (the bench
//! harness runs the API on both): configuration read and checked, and the application assembled
//! over the AWS adapters, once at cold start; then the runtime loop handing every invocation to
//! the library. This is the only module that knows both the client builders and the adapters.

use std::convert::Infallible;

use lambda_http::http::HeaderName;
use lambda_http::{Adapter, Request};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::bucket::S3Bucket;
use crate::config::{Config, ConfigError, PublishConfig, ReconcileConfig};
use crate::deadline::Deadline;
use crate::event_bus::EventBridgeBus;
use crate::http::{Api, RejectUnparseable};
use crate::inbound_events::{InboundEvent, handle_inbound_event};
use crate::service::{FileService, ReconcileLimits, ReconcileReport};
use crate::store::DynamoDbOwnershipStore;
use crate::stream_events::{StreamBatch, publish_batch};
use crate::{aws, telemetry};

/// The application over DynamoDB and S3, as every function runs it.
pub async fn file_service(config: &Config) -> FileService<DynamoDbOwnershipStore, S3Bucket> {
    let sdk = aws::lambda_sdk_config(config).await;
    FileService::new(
        DynamoDbOwnershipStore::new(aws::dynamodb_client(&sdk), &config.table),
        S3Bucket::new(
            aws::s3_client(&sdk, config.force_path_style),
            &config.bucket,
        )
        .signing_with(sdk.credentials_provider()),
        config.uploads.clone(),
        config.expiry,
    )
    .with_quotas(config.quotas)
    .with_multipart_expiry(config.multipart_expiry)
    .with_links(config.links)
    .with_scanning(config.scan_uploads)
}

/// Logging and configuration, the same for every function. A configuration error is logged (every
/// problem at once) and fails the cold start.
fn start() -> Result<Config, Error> {
    start_with(|| Ok(())).map(|(config, ())| config)
}

/// `start`, with the settings only one function has (`own`) read beside the common ones, so that
/// the problems of both are reported together.
fn start_with<T>(own: impl FnOnce() -> Result<T, ConfigError>) -> Result<(Config, T), Error> {
    telemetry::init();
    let (config, own) =
        ConfigError::both(Config::from_env(), own()).inspect_err(|e| tracing::error!("{e}"))?;
    tracing::debug!(
        bucket = config.bucket.as_str(),
        table = config.table.as_str(),
        region = config.region.as_str(),
        force_path_style = config.force_path_style,
        trust_roots = ?config.trust_roots,
        "configuration read"
    );
    Ok((config, own))
}

/// The header that names the caller when no authorizer ran: only in a local build (feature
/// `dev-identity`) with `DEV_USER_HEADER` set.
#[cfg(feature = "dev-identity")]
fn dev_user_header(config: &Config) -> Option<HeaderName> {
    if let Some(header) = &config.dev_user_header {
        tracing::warn!(
            header = header.as_str(),
            "DEV_USER_HEADER is set: any caller can claim any identity with this header. \
             This is for local development only and must never be deployed."
        );
    }
    config.dev_user_header.clone()
}

/// Never in a build without the feature: `Config` refuses `DEV_USER_HEADER` there.
#[cfg(not(feature = "dev-identity"))]
fn dev_user_header(_: &Config) -> Option<HeaderName> {
    None
}

/// The API function behind API Gateway.
pub async fn run_api() -> Result<(), Error> {
    let config = start()?;
    let api = Api::new(file_service(&config).await, dev_user_header(&config));
    // The API lives as long as the process; a 'static borrow lets every request future own it.
    let api: &'static Api<_, _> = Box::leak(Box::new(api));
    let handler = lambda_http::service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(api.handle(request).await)
    });
    lambda_runtime::run(RejectUnparseable(Adapter::from(handler))).await
}

/// The events function: confirms uploads that S3 reports, removes records of objects that S3
/// reports removed, deletes whatever lands in the bucket without a reservation, and applies the
/// malware scanner's verdicts. A failed event is reported with a stable `errorType`
/// (`s3_events::FailedRecords`, `scan_events::FailedScanResult`).
pub async fn run_events() -> Result<(), Error> {
    let config = start()?;
    let files: &'static FileService<_, _> = Box::leak(Box::new(file_service(&config).await));
    let bucket: &'static str = Box::leak(config.bucket.into_boxed_str());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<InboundEvent>| {
        handle_inbound_event(files, bucket, event.payload)
    }))
    .await
}

/// The publisher, on the table's stream: each committed change of a file's record becomes an
/// event on the bus (`stream_events`). Answers Lambda's partial batch response.
pub async fn run_publish() -> Result<(), Error> {
    let (config, publish) = start_with(PublishConfig::from_env)?;
    let sdk = aws::lambda_sdk_config(&config).await;
    let bus: &'static EventBridgeBus = Box::leak(Box::new(EventBridgeBus::new(
        aws::eventbridge_client(&sdk),
        publish.event_bus,
    )));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamBatch>| async move {
            Ok::<_, Error>(publish_batch(bus, event.payload).await)
        },
    ))
    .await
}

/// The run's budget is its invocation's deadline less this: room for writing the cursor after a
/// cut (one call, bounded at 6 s by the SDK) and for the answer.
const RECONCILE_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The reconciliation function, invoked by its schedule (or by hand, with any payload): one
/// bounded run over `users/` that repairs what the events function missed (see
/// `service::reconcile`). Returns the run's report; a backend failure fails the invocation.
pub async fn run_reconcile() -> Result<(), Error> {
    let (config, reconcile) = start_with(ReconcileConfig::from_env)?;
    let limits = ReconcileLimits {
        max_objects: reconcile.max_objects,
        stray_age: std::time::Duration::from_secs(config.expiry.max_secs()),
    };
    let files: &'static FileService<_, _> = Box::leak(Box::new(file_service(&config).await));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = Deadline::of_invocation(event.context.deadline, RECONCILE_MARGIN);
            let now = time::OffsetDateTime::now_utc();
            let report: ReconcileReport = files
                .reconcile(now, limits, deadline)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "reconcile run failed"))?;
            tracing::info!(
                examined = report.examined,
                confirmed = report.confirmed,
                rejected = report.rejected,
                strays_deleted = report.strays_deleted,
                failed = report.failed,
                finished = report.finished,
                "reconcile run done"
            );
            Ok::<_, Error>(report)
        },
    ))
    .await
}
