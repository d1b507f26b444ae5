//! local-aws: `make local`'s stand-in for the deployed AWS parts around the functions, in one
//! process with three listeners:
//!
//! - **S3**: s3s's protocol (SigV4 with the given key pair, presigned URLs, expiry, signed
//!   headers) over s3s-fs's files, with the bucket's CORS rules, event notifications to the events
//!   function, object tags, nothing stored by a failed write (see `bucket`), and GuardDuty's
//!   malware scanning of new objects when the template has a plan (see `guardduty`).
//! - **API**: the function behind the HTTP API's CORS (see `api_front`).
//! - **DynamoDB**: moto's, behind a front that authorizes each request (see `dynamodb`); with a
//!   publisher, its stream is read and delivered as Lambda's event source mapping would (see
//!   `streams`).
//! - **EventBridge**: PutEvents into the sink of outbound events (see `eventbridge`).
//! - **Demo**: the demo page and the browser client, on an origin of their own (see `demo`),
//!   the control of the faults tests inject (see `faults`) and the sink (`/__events`).
//!
//! Every rule comes from template.yaml (see `template`). Never deployed.

pub mod api_front;
pub mod bucket;
pub mod cfn;
pub mod cors;
pub mod demo;
pub mod dynamodb;
pub mod error;
pub mod eventbridge;
pub mod faults;
pub mod guardduty;
pub mod iam;
pub mod notifications;
pub mod pattern;
pub mod s3_access;
pub mod sigv4;
pub mod streams;
pub mod template;
pub mod uploads;
pub mod versions;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::service::TowerToHyperService;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::cfn::Template;
pub use crate::demo::DemoSite;
pub use crate::error::Error;
pub use crate::faults::Faults;
use crate::iam::{Authorizer, StackIam};
pub use crate::iam::{StackNames, role_credentials};
pub use crate::notifications::EventsTarget;
use crate::s3_access::S3AccessControl;
pub use crate::streams::PublisherTarget;
use crate::template::StackRules;

/// Lower-case hexadecimal, as S3 spells ETags and SigV4 spells digests.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A JSON answer of the local fronts (API Gateway's own messages, DynamoDB's refusals).
pub(crate) fn json_response(
    status: http::StatusCode,
    content_type: &'static str,
    body: &serde_json::Value,
) -> Response<HttpBody> {
    let mut response = Response::new(
        http_body_util::Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    response
}

/// An answer without a body.
pub(crate) fn empty_response(status: http::StatusCode) -> Response<HttpBody> {
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

/// The body every listener answers with.
pub type HttpBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Everything local-aws needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    /// 0 for any free port (tests); None for no S3 (a process that fronts DynamoDB alone, so
    /// that a test can stop one without the other).
    pub s3_port: Option<u16>,
    /// The S3 files (s3s-fs's root: one directory per bucket).
    pub data_dir: PathBuf,
    /// The account administrator's key pair (what tests and `make local`'s setup use); each
    /// role of the template has its own (see [`role_credentials`]).
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub template: PathBuf,
    /// Template parameters that differ from their defaults (`--parameter-overrides`).
    pub parameters: BTreeMap<String, String>,
    /// DynamoDB, authorized here, served by moto behind.
    pub dynamodb: Option<DynamoDbConfig>,
    /// Where to append each grant (the statements that allowed a request), for tests.
    pub grants_log: Option<PathBuf>,
    /// Origins allowed besides the demo page's (LOCAL_ALLOWED_ORIGINS).
    pub extra_origins: Vec<HeaderValue>,
    pub events: Option<EventsTarget>,
    /// The publisher function, invoked with the table's stream (needs `dynamodb`).
    pub publisher: Option<PublisherTarget>,
    /// 0 for any free port; None for no EventBridge.
    pub eventbridge_port: Option<u16>,
    /// Where every event the sink receives is appended as a JSON line.
    pub events_log: Option<PathBuf>,
    /// How long the GuardDuty stand-in waits before it scans a new object (`make local` shows
    /// `scanning` for a while; tests wait for nothing), unless a fault plan says otherwise.
    pub scan_delay: std::time::Duration,
    pub api: Option<ApiConfig>,
    pub demo: Option<DemoConfig>,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub port: u16,
    /// The function's HTTP address (cargo lambda watch).
    pub function_url: Uri,
    /// The local identity header (DEV_USER_HEADER), allowed by the API's CORS in local mode only.
    pub dev_user_header: Option<HeaderName>,
}

#[derive(Debug, Clone)]
pub struct DynamoDbConfig {
    pub port: u16,
    /// moto's DynamoDB.
    pub upstream: Uri,
}

#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub port: u16,
    pub site: DemoSite,
}

/// The running listeners; they stop when this is dropped.
pub struct LocalAws {
    pub s3: Option<SocketAddr>,
    pub dynamodb: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
    pub eventbridge: Option<SocketAddr>,
    pub demo: Option<SocketAddr>,
    /// The bucket's and the table's names, as the template makes them.
    pub names: StackNames,
    /// The publisher's `EVENT_BUS_NAME`, when the template has a publisher.
    pub event_bus: Option<String>,
    /// The events PutEvents accepted (read at the demo origin's `/__events`).
    pub sink: eventbridge::Sink,
    /// Every authorization decision goes through it (and is recorded: see `Authorizer::grants`).
    pub authorizer: Arc<Authorizer>,
    /// The faults S3 and the API inject (set through the demo origin's `/__faults`).
    pub faults: Faults,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl LocalAws {
    /// Binds every listener, then reads the template (the demo's origin is known only once
    /// its port is) and serves until dropped.
    pub async fn start(config: Config) -> Result<Self, Error> {
        let s3_listener = match config.s3_port {
            Some(port) => Some(listen(config.host, port).await?),
            None => None,
        };
        let dynamodb_listener = match &config.dynamodb {
            Some(dynamodb) => Some(listen(config.host, dynamodb.port).await?),
            None => None,
        };
        let api_listener = match &config.api {
            Some(api) => Some(listen(config.host, api.port).await?),
            None => None,
        };
        let eventbridge_listener = match config.eventbridge_port {
            Some(port) => Some(listen(config.host, port).await?),
            None => None,
        };
        let demo_listener = match &config.demo {
            Some(demo) => Some(listen(config.host, demo.port).await?),
            None => None,
        };
        let demo_address = demo_listener.as_ref().map(local_address).transpose()?;

        // The stack's AllowedOrigins, locally.
        let mut allowed_origins = Vec::new();
        if let Some(address) = demo_address {
            let origin = format!("http://{address}");
            allowed_origins.push(template::parse_origin(&origin)?);
        }
        allowed_origins.extend(config.extra_origins.iter().cloned());
        let template =
            std::fs::read_to_string(&config.template).map_err(|source| Error::ReadTemplate {
                path: config.template.clone(),
                source,
            })?;
        let template = Template::load(&template, &config.region, &config.parameters)?;
        let rules = StackRules::from_template(&template, &allowed_origins)?;
        let iam = StackIam::from_template(&template)?;
        let scan_plan = guardduty::ScanPlan::from_template(&template)?;
        let mapping = streams::StreamMapping::from_template(&template)?;
        let event_bus = mapping.as_ref().and_then(|m| m.event_bus.clone());
        let buses = eventbridge::stack_buses(&template, event_bus.as_deref())?;
        let mut authorizer = Authorizer::new(&iam, &config.access_key);
        if let Some(path) = &config.grants_log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| Error::Config(format!("--grants-log {}: {e}", path.display())))?;
            authorizer = authorizer.with_grants_log(file);
        }
        let authorizer = Arc::new(authorizer);
        let mut key_pairs = Authorizer::key_pairs(&iam);
        key_pairs.push((config.access_key.clone(), config.secret_key.clone()));

        let faults = Faults::default();
        let sink = match &config.events_log {
            Some(path) => eventbridge::Sink::with_log(path)?,
            None => eventbridge::Sink::default(),
        };
        let writes = streams::Writes::default();
        let mut tasks = Vec::new();
        let mut s3 = None;
        if let Some(listener) = s3_listener {
            s3 = Some(local_address(&listener)?);
            let access = S3AccessControl::new(authorizer.clone());
            let stack = S3Stack {
                rules: &rules,
                scan_plan: scan_plan.clone(),
                key_pairs: &key_pairs,
                faults: &faults,
            };
            tasks.push(tokio::spawn(serve(
                listener,
                s3_service(&config, stack, access)?,
            )));
        }

        let mut dynamodb = None;
        if let (Some(listener), Some(dynamodb_config)) = (dynamodb_listener, &config.dynamodb) {
            dynamodb = Some(local_address(&listener)?);
            let front = dynamodb::DynamoDbFront::new(
                dynamodb_config.upstream.clone(),
                config.region.clone(),
                authorizer.clone(),
                key_pairs.clone(),
                writes.clone(),
            );
            tasks.push(tokio::spawn(serve(listener, front)));
        }

        if let Some(target) = &config.publisher {
            let (Some(mapping), Some(dynamodb_config)) = (mapping, &config.dynamodb) else {
                return Err(Error::Config(
                    "--publisher-url needs --dynamodb-port and a template function with a DynamoDB event".into(),
                ));
            };
            let poller = streams::Poller {
                mapping,
                streams: streams::client::StreamsClient::new(
                    dynamodb_config.upstream.clone(),
                    config.region.clone(),
                ),
                target: target.clone(),
                writes,
                authorizer: authorizer.clone(),
                region: config.region.clone(),
            };
            tasks.push(tokio::spawn(poller.run()));
        }

        let mut eventbridge = None;
        if let Some(listener) = eventbridge_listener {
            eventbridge = Some(local_address(&listener)?);
            let front = eventbridge::EventBridgeFront::new(eventbridge::EventBridgeParts {
                region: config.region.clone(),
                authorizer: authorizer.clone(),
                key_pairs: key_pairs.clone(),
                buses,
                sink: sink.clone(),
                faults: faults.clone(),
            });
            let service = tower::service_fn(move |request| {
                let front = front.clone();
                async move { Ok::<_, std::convert::Infallible>(front.handle(request).await) }
            });
            tasks.push(tokio::spawn(serve(listener, service)));
        }

        let mut api = None;
        if let (Some(listener), Some(api_config)) = (api_listener, &config.api) {
            api = Some(local_address(&listener)?);
            let extra: Vec<HeaderName> = api_config.dev_user_header.iter().cloned().collect();
            let service = ServiceBuilder::new()
                .layer(cors::layer(&rules.api_cors, &extra))
                .service(faults.injector(
                    faults::Target::Api,
                    api_front::ApiFront::new(api_config.function_url.clone()),
                ));
            tasks.push(tokio::spawn(serve(listener, service)));
        }

        if let (Some(listener), Some(demo_config)) = (demo_listener, &config.demo) {
            let service = demo::DemoServer::new(&demo_config.site, faults.clone(), sink.clone());
            tasks.push(tokio::spawn(serve(listener, service)));
        }

        Ok(Self {
            s3,
            dynamodb,
            api,
            eventbridge,
            demo: demo_address,
            names: iam.names,
            event_bus,
            sink,
            authorizer,
            faults,
            tasks,
        })
    }
}

/// What the S3 listener is built from, besides its configuration.
struct S3Stack<'a> {
    rules: &'a StackRules,
    scan_plan: Option<guardduty::ScanPlan>,
    key_pairs: &'a [(String, String)],
    faults: &'a Faults,
}

fn s3_service(
    config: &Config,
    stack: S3Stack<'_>,
    access: S3AccessControl,
) -> Result<
    impl Service<Request<Incoming>, Response = Response<HttpBody>, Error = s3s::HttpError, Future: Send>
    + Clone
    + Send
    + 'static,
    Error,
> {
    let data_dir_error = |detail: String| Error::DataDir {
        path: config.data_dir.clone(),
        detail,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| data_dir_error(e.to_string()))?;
    let root = config
        .data_dir
        .canonicalize()
        .map_err(|e| data_dir_error(e.to_string()))?;
    let files = s3s_fs::FileSystem::new(&root).map_err(|e| data_dir_error(format!("{e:?}")))?;
    let S3Stack {
        rules,
        scan_plan,
        key_pairs,
        faults,
    } = stack;
    let notifier = notifications::Notifier::new(
        rules.notifications.clone(),
        config.events.clone(),
        config.region.clone(),
    );
    let tags = bucket::tags::TagStore::new(root.clone());
    let access = access.with_tags(tags.clone());
    let scanner = scan_plan.map(|plan| {
        guardduty::Scanner::new(guardduty::ScannerParts {
            plan,
            access: access.clone(),
            tags: tags.clone(),
            root: root.clone(),
            notifier: notifier.clone(),
            faults: faults.clone(),
            delay: config.scan_delay,
            region: config.region.clone(),
            versioned: rules.bucket_versioned,
        })
    });
    let bucket = bucket::LocalBucket::new(
        files,
        root,
        notifier,
        rules.bucket_versioned,
        access.clone(),
        tags,
        scanner,
    );
    let mut builder = S3ServiceBuilder::new(bucket);
    let mut auth = SimpleAuth::new();
    for (access_key, secret_key) in key_pairs {
        auth.register(access_key.clone(), secret_key.clone().into());
    }
    builder.set_auth(auth);
    builder.set_access(access);
    let s3 = ServiceExt::<Request<Incoming>>::map_response(
        builder.build(),
        |response: Response<s3s::Body>| response.map(|body| body.boxed_unsync()),
    );
    Ok(ServiceBuilder::new()
        .layer_fn(cors::RefuseDisallowedPreflight::new)
        .layer(cors::layer(&rules.bucket_cors, &[]))
        .service(faults.injector(faults::Target::S3, s3)))
}

async fn listen(host: IpAddr, port: u16) -> Result<TcpListener, Error> {
    let address = SocketAddr::new(host, port);
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Listen { address, source })
}

fn local_address(listener: &TcpListener) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(|source| Error::Config(format!("a listener has no address: {source}")))
}

/// Serves HTTP/1.1 on every connection the listener accepts, until the task is aborted.
async fn serve<S, E>(listener: TcpListener, service: S)
where
    S: Service<Request<Incoming>, Response = Response<HttpBody>, Error = E>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(error) => {
                // Out of file descriptors, say: give the open connections a moment to end.
                tracing::warn!(%error, "could not accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let connection = ConnectionBuilder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service)
                .await;
            if let Err(error) = connection {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}
