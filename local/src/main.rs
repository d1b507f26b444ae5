//! local-aws: the S3 bucket, the API's front and the demo page's server of `make local`.
//! Options come from the command line (and the environment where noted); see `--help`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use http::{HeaderName, Uri};
use local_aws::{
    ApiConfig, Config, DemoConfig, DemoSite, DynamoDbConfig, Error, EventsTarget, LocalAws,
    PublisherTarget,
};

#[derive(Debug, Parser)]
#[command(
    about = "make local's S3 (with the bucket's CORS and event notifications), API front and demo server"
)]
struct Options {
    /// Address every listener binds.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the S3 endpoint (needs --data-dir); without it, no S3.
    #[arg(long, requires = "data_dir")]
    s3_port: Option<u16>,
    /// Port of the DynamoDB endpoint (needs --dynamodb-upstream).
    #[arg(long, requires = "dynamodb_upstream")]
    dynamodb_port: Option<u16>,
    /// moto's DynamoDB, which serves what the DynamoDB endpoint authorizes.
    #[arg(long, requires = "dynamodb_port")]
    dynamodb_upstream: Option<String>,
    /// A template parameter other than its default, as `Name=Value` (repeatable), e.g.
    /// `UrlTtlMaxSeconds=60`, or `ScanUploads=false` (no GuardDuty stand-in, no tag statements):
    /// the conditions, the bucket policy and the roles are read with it.
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,
    /// Append, for every request allowed, the template's statements that allowed it (a JSON
    /// array of sids a line): how tests show that every statement is needed.
    #[arg(long)]
    grants_log: Option<PathBuf>,
    /// Print FILES_BUCKET=... and FILES_TABLE=... (the names the template gives them here), and
    /// EVENT_BUS_NAME=... when the template has a publisher, and exit.
    #[arg(long)]
    print_names: bool,
    /// Directory of the S3 files (one subdirectory per bucket).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The account administrator's key pair; each role of the template has its own.
    #[arg(
        long,
        env = "AWS_ACCESS_KEY_ID",
        required_unless_present = "print_names"
    )]
    access_key: Option<String>,
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        required_unless_present = "print_names"
    )]
    secret_key: Option<String>,
    /// Region named in the S3 events.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// The stack's template: CORS rules and notifications are read from it.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Origins allowed besides the demo page's, comma-separated (the stack's AllowedOrigins).
    #[arg(
        long,
        env = "LOCAL_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    allowed_origins: Vec<String>,
    /// The events function's Lambda Invoke URL; without it, no S3 events are sent.
    #[arg(long)]
    events_url: Option<String>,
    /// Wait before the first retry of a failed S3 event delivery (the second waits twice as
    /// long), and before each retry of a stream batch the publisher failed.
    #[arg(long, default_value_t = 1000)]
    events_retry_ms: u64,
    /// The publisher function's Lambda Invoke URL: the table's stream is read (from moto, behind
    /// --dynamodb-port) and given to it as Lambda's event source mapping would; without it, the
    /// stream is not read.
    #[arg(long, requires = "dynamodb_port")]
    publisher_url: Option<String>,
    /// Port of the EventBridge endpoint (PutEvents into the sink, read at the demo origin's
    /// /__events).
    #[arg(long)]
    eventbridge_port: Option<u16>,
    /// Append every event the sink receives to this file, a JSON object a line.
    #[arg(long)]
    events_log: Option<PathBuf>,
    /// How long GuardDuty's stand-in waits before it scans a new object (when the template has a
    /// malware protection plan): `make local` waits 2 s so that a file is seen scanning; tests
    /// wait for nothing. A fault plan's `scanDelayMs` overrides it.
    #[arg(long, default_value_t = 0)]
    scan_delay_ms: u64,
    /// Port of the API front (needs --lambda-url).
    #[arg(long, requires = "lambda_url")]
    api_port: Option<u16>,
    /// The API function's HTTP address (cargo lambda watch).
    #[arg(long, requires = "api_port")]
    lambda_url: Option<String>,
    /// The local identity header the API's CORS allows besides the template's headers.
    #[arg(long, env = "DEV_USER_HEADER")]
    dev_user_header: Option<String>,
    /// Port of the demo page's server.
    #[arg(long)]
    demo_port: Option<u16>,
    #[arg(long, default_value = "demo")]
    demo_dir: PathBuf,
    #[arg(long, default_value = "client")]
    client_dir: PathBuf,
    /// Served at /vendor/ by the demo server (browser bundles of third-party widgets).
    #[arg(long)]
    vendor_dir: Option<PathBuf>,
}

fn http_url(text: &str, what: &'static str) -> Result<Uri, Error> {
    let uri: Uri = text.parse().map_err(|_| Error::Url(what))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(Error::Url(what));
    }
    Ok(uri)
}

impl Options {
    fn into_config(self) -> Result<Config, Error> {
        let extra_origins = self
            .allowed_origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
            .map(local_aws::template::parse_origin)
            .collect::<Result<_, _>>()?;
        let events = self
            .events_url
            .as_deref()
            .map(|url| {
                Ok::<_, Error>(EventsTarget {
                    invoke_url: http_url(url, "--events-url")?,
                    retry_delay: Duration::from_millis(self.events_retry_ms),
                })
            })
            .transpose()?;
        let publisher = self
            .publisher_url
            .as_deref()
            .map(|url| {
                Ok::<_, Error>(PublisherTarget {
                    invoke_url: http_url(url, "--publisher-url")?,
                    retry_delay: Duration::from_millis(self.events_retry_ms),
                })
            })
            .transpose()?;
        let dev_user_header = self
            .dev_user_header
            .as_deref()
            .filter(|name| !name.is_empty())
            .map(|name| {
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    Error::Config(format!("DEV_USER_HEADER {name:?} is not a header name"))
                })
            })
            .transpose()?;
        let api = match (self.api_port, self.lambda_url.as_deref()) {
            (Some(port), Some(url)) => Some(ApiConfig {
                port,
                function_url: http_url(url, "--lambda-url")?,
                dev_user_header,
            }),
            _ => None,
        };
        let dynamodb = match (self.dynamodb_port, self.dynamodb_upstream.as_deref()) {
            (Some(port), Some(url)) => Some(DynamoDbConfig {
                port,
                upstream: http_url(url, "--dynamodb-upstream")?,
            }),
            _ => None,
        };
        let parameters = parameters(&self.parameters)?;
        let demo = self.demo_port.map(|port| DemoConfig {
            port,
            site: DemoSite {
                demo_dir: self.demo_dir.clone(),
                client_dir: self.client_dir.clone(),
                vendor_dir: self.vendor_dir.clone(),
            },
        });
        let missing = |what: &str| Error::Config(format!("{what} is required"));
        Ok(Config {
            host: self.host,
            s3_port: self.s3_port,
            data_dir: self.data_dir.unwrap_or_default(),
            access_key: self.access_key.ok_or_else(|| missing("--access-key"))?,
            secret_key: self.secret_key.ok_or_else(|| missing("--secret-key"))?,
            region: self.region,
            template: self.template,
            parameters,
            dynamodb,
            grants_log: self.grants_log,
            extra_origins,
            events,
            publisher,
            eventbridge_port: self.eventbridge_port,
            events_log: self.events_log,
            scan_delay: Duration::from_millis(self.scan_delay_ms),
            api,
            demo,
        })
    }
}

fn parameters(pairs: &[String]) -> Result<BTreeMap<String, String>, Error> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .ok_or_else(|| Error::Config(format!("--parameter {pair:?} is not NAME=VALUE")))
        })
        .collect()
}

/// `--print-names`: the bucket's, the table's and the publisher's bus's names, for `make
/// local`'s functions.
fn print_names(options: &Options) -> Result<(), Error> {
    let template =
        std::fs::read_to_string(&options.template).map_err(|source| Error::ReadTemplate {
            path: options.template.clone(),
            source,
        })?;
    let template = local_aws::cfn::Template::load(
        &template,
        &options.region,
        &parameters(&options.parameters)?,
    )?;
    let iam = local_aws::iam::StackIam::from_template(&template)?;
    println!("FILES_BUCKET={}", iam.names.bucket);
    println!("FILES_TABLE={}", iam.names.table);
    let mapping = local_aws::streams::StreamMapping::from_template(&template)?;
    if let Some(bus) = mapping.and_then(|mapping| mapping.event_bus) {
        println!("EVENT_BUS_NAME={bus}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // s3s logs whole requests (presigned URLs with their signatures) at debug: it stays at warn
    // whatever RUST_LOG says, so no URL or signature is ever logged.
    let filter = ["s3s=warn", "s3s_fs=warn"].into_iter().fold(
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        |filter, cap| match cap.parse() {
            Ok(directive) => filter.add_directive(directive),
            Err(_) => filter,
        },
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    let options = Options::parse();
    if options.print_names {
        return match print_names(&options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!("{error}");
                ExitCode::FAILURE
            }
        };
    }
    let started = match options.into_config() {
        Ok(config) => LocalAws::start(config).await,
        Err(error) => Err(error),
    };
    let running = match started {
        Ok(running) => running,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(s3 = ?running.s3, dynamodb = ?running.dynamodb, api = ?running.api, eventbridge = ?running.eventbridge, demo = ?running.demo, "listening");
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot watch for SIGTERM");
                return ExitCode::FAILURE;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    drop(running);
    ExitCode::SUCCESS
}
