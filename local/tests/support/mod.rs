//! Test harness: local-aws's listeners started in the test's process on free ports (the OS picks
//! them: port 0), a temporary data directory, and a stand-in events function that records what
//! it is sent.
#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod outbound;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use local_aws::{ApiConfig, Config, DemoConfig, DemoSite, EventsTarget, LocalAws};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub const BUCKET: &str = "files";
const ACCESS_KEY: &str = "local-aws-test-key";
const SECRET_KEY: &str = "local-aws-test-secret";
/// How long a test waits for something that should happen at once; only a guard against a hang.
const PATIENCE: Duration = Duration::from_secs(30);

pub fn template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

pub struct Stack {
    pub aws: LocalAws,
    pub data: tempfile::TempDir,
}

/// What a test wants besides S3 itself.
#[derive(Default)]
pub struct Options {
    pub events: Option<Uri>,
    pub extra_origins: Vec<&'static str>,
    pub api_function: Option<Uri>,
    pub dev_user_header: Option<&'static str>,
    pub demo: Option<DemoSite>,
    /// Template parameters other than their defaults (`--parameter`).
    pub parameters: Vec<(&'static str, &'static str)>,
    /// Another template than the repository's.
    pub template: Option<PathBuf>,
    /// moto's DynamoDB, fronted by local-aws's DynamoDB listener.
    pub dynamodb: Option<Uri>,
    /// The publisher's Invoke URL: the table's stream is read and delivered to it.
    pub publisher: Option<Uri>,
    /// An EventBridge listener.
    pub eventbridge: bool,
    pub events_log: Option<PathBuf>,
}

impl Stack {
    pub async fn start(options: Options) -> Self {
        let data = tempfile::tempdir().expect("temporary directory");
        let config = Config {
            host: Ipv4Addr::LOCALHOST.into(),
            s3_port: Some(0),
            data_dir: data.path().join("s3"),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            region: "us-east-1".into(),
            template: options.template.unwrap_or_else(template),
            parameters: options
                .parameters
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            dynamodb: options
                .dynamodb
                .map(|upstream| local_aws::DynamoDbConfig { port: 0, upstream }),
            grants_log: None,
            extra_origins: options
                .extra_origins
                .iter()
                .map(|o| HeaderValue::from_static(o))
                .collect(),
            events: options.events.map(|invoke_url| EventsTarget {
                invoke_url,
                // Short, so that the retry test takes milliseconds; nothing asserts on time.
                retry_delay: Duration::from_millis(20),
            }),
            publisher: options
                .publisher
                .map(|invoke_url| local_aws::PublisherTarget {
                    invoke_url,
                    retry_delay: Duration::from_millis(20),
                }),
            eventbridge_port: options.eventbridge.then_some(0),
            events_log: options.events_log,
            // Scans at once: a test waits for the tag or the event, never for a clock.
            scan_delay: Duration::ZERO,
            api: options.api_function.map(|function_url| ApiConfig {
                port: 0,
                function_url,
                dev_user_header: options.dev_user_header.map(http::HeaderName::from_static),
            }),
            // The demo server always runs: its origin is the one the CORS rules allow.
            demo: Some(DemoConfig {
                port: 0,
                site: options.demo.unwrap_or_else(|| DemoSite {
                    demo_dir: data.path().join("demo"),
                    client_dir: data.path().join("client"),
                    vendor_dir: None,
                }),
            }),
        };
        let aws = LocalAws::start(config).await.expect("local-aws starts");
        let stack = Self { aws, data };
        stack
            .s3()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("create bucket");
        stack
    }

    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.aws.s3.expect("S3 is started"))
    }

    pub fn demo_origin(&self) -> String {
        format!("http://{}", self.aws.demo.expect("demo server"))
    }

    /// An SDK client as the product builds one (path style, the stand-in's keys), sending no
    /// checksum it was not asked for.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3_signing_with(ACCESS_KEY.into(), SECRET_KEY.into())
    }

    /// The same, signing as one of the template's roles (its local credentials).
    pub fn s3_as(&self, role: &str) -> aws_sdk_s3::Client {
        let (access_key, secret_key) = local_aws::role_credentials(role);
        self.s3_signing_with(access_key, secret_key)
    }

    fn s3_signing_with(&self, access_key: String, secret_key: String) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                access_key, secret_key, None, None, "tests",
            ))
            .endpoint_url(self.s3_endpoint())
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// A presigned upload like the API's: type, length, `If-None-Match: *` and, when given, the
    /// SHA-256 are signed headers. Returns the URL and the headers to send.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        length: usize,
        sha256: Option<&str>,
    ) -> (String, Vec<(String, String)>) {
        let request = self
            .s3()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(length).expect("small body"))
            .if_none_match("*")
            .set_checksum_sha256(sha256.map(str::to_owned))
            .presigned(five_minutes())
            .await
            .expect("presign");
        browser_request(&request)
    }

    /// A presigned UploadPart as the API signs one: the part's length and, when given, its
    /// SHA-256. Returns the URL and the headers to send.
    pub async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        length: usize,
        sha256: Option<&str>,
    ) -> (String, Vec<(String, String)>) {
        let request = self
            .s3()
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .content_length(i64::try_from(length).expect("small part"))
            .set_checksum_sha256(sha256.map(str::to_owned))
            .presigned(five_minutes())
            .await
            .expect("presign");
        browser_request(&request)
    }

    /// A signed PutObject of `body` (no checksum asked for), which must succeed.
    pub async fn put_object(&self, key: &str, body: &'static [u8]) {
        self.s3()
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(body))
            .send()
            .await
            .expect("PutObject");
    }

    /// Starts a multipart upload of `key`; returns its id.
    pub async fn create_upload(&self, key: &str) -> String {
        let upload = self
            .s3()
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .expect("CreateMultipartUpload");
        upload.upload_id().expect("upload id").to_owned()
    }

    /// Completes a multipart upload of one part; returns the object's ETag.
    pub async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        part_e_tag: Option<&str>,
    ) -> String {
        let part = CompletedPart::builder()
            .part_number(1)
            .set_e_tag(part_e_tag.map(str::to_owned))
            .build();
        let completed = self
            .s3()
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
            .send()
            .await
            .expect("CompleteMultipartUpload");
        completed.e_tag().expect("ETag").to_owned()
    }

    /// The bytes stored at `key`, or None when there is no such object.
    pub async fn stored(&self, key: &str) -> Option<Vec<u8>> {
        match self.s3().get_object().bucket(BUCKET).key(key).send().await {
            Ok(object) => Some(object.body.collect().await.expect("body").to_vec()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
            Err(error) => panic!("GetObject failed: {error:?}"),
        }
    }
}

/// Presigned URLs live five minutes in these tests, as the API's do by default.
fn five_minutes() -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(300)).expect("lifetime")
}

/// The URL of a presigned request and the headers a browser sends with it (it sets
/// `Content-Length` itself).
pub fn browser_request(request: &PresignedRequest) -> (String, Vec<(String, String)>) {
    let headers = request
        .headers()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect();
    (request.uri().to_owned(), headers)
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("HTTP client")
}

/// PUTs `body` to a presigned URL with its headers (and `extra` ones), as a browser would.
pub async fn put(
    url: &str,
    headers: &[(String, String)],
    extra: &[(&str, &str)],
    body: &[u8],
) -> reqwest::Response {
    let mut request = http().put(url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request
        .body(body.to_vec())
        .send()
        .await
        .expect("PUT reaches local-aws")
}

pub fn sha256_base64(body: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body))
}

/// A loopback HTTP server answering every request with `answer(request number)`; what it was
/// sent arrives on `received` (method, path, headers, body).
pub struct Recorder {
    pub address: SocketAddr,
    pub received: mpsc::UnboundedReceiver<Recorded>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

impl Recorder {
    pub async fn start<F>(answer: F) -> Self
    where
        F: Fn(usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        Self::start_dropping(0, answer).await
    }

    /// Like `start`, but the first `dropped` connections are closed without an answer, as a
    /// function that cannot be reached (or crashes) leaves its caller.
    pub async fn start_dropping<F>(dropped: usize, answer: F) -> Self
    where
        F: Fn(usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        Self::start_reading(dropped, move |n, _| answer(n)).await
    }

    /// Like `start_dropping`, with an answer that depends on the request's body too.
    pub async fn start_reading<F>(dropped: usize, answer: F) -> Self
    where
        F: Fn(usize, &Bytes) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("listener");
        let address = listener.local_addr().expect("address");
        let (sender, received) = mpsc::unbounded_channel();
        let answer = Arc::new(answer);
        let count = Arc::new(AtomicUsize::new(0));
        let server = tokio::spawn(async move {
            let mut to_drop = dropped;
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                if to_drop > 0 {
                    to_drop -= 1;
                    drop(socket);
                    continue;
                }
                let (sender, answer, count) = (sender.clone(), answer.clone(), count.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (sender, answer, count) = (sender.clone(), answer.clone(), count.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let path = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let response = answer(count.fetch_add(1, Ordering::SeqCst), &body);
                        let _ = sender.send(Recorded {
                            path,
                            headers: parts.headers,
                            body,
                        });
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Self {
            address,
            received,
            _server: server,
        }
    }

    /// A stand-in for the events function's Invoke endpoint that fails `failures` times, then
    /// handles everything.
    pub async fn function(failures: usize) -> Self {
        Self::start(move |n| {
            let status = if n < failures {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            let mut response = Response::new(Full::new(Bytes::from_static(b"null")));
            *response.status_mut() = status;
            response
        })
        .await
    }

    /// A stand-in events function whose first `dropped` invocations find no function at all.
    pub async fn unreachable_function(dropped: usize) -> Self {
        Self::start_dropping(dropped, |_| {
            Response::new(Full::new(Bytes::from_static(b"null")))
        })
        .await
    }

    pub fn invoke_url(&self) -> Uri {
        format!(
            "http://{}/2015-03-31/functions/events/invocations",
            self.address
        )
        .parse()
        .expect("invoke URL")
    }

    pub async fn next(&mut self) -> Recorded {
        tokio::time::timeout(PATIENCE, self.received.recv())
            .await
            .expect("something arrives")
            .expect("the recorder is running")
    }

    /// The next S3 event's only record.
    pub async fn next_record(&mut self) -> Value {
        let event = self.next().await.json();
        let records = event["Records"].as_array().expect("Records");
        assert_eq!(records.len(), 1, "{event}");
        records[0].clone()
    }
}
