//! The stand-ins: local-aws (`make local`'s S3, and its authorizing front for DynamoDB) on free
//! loopback ports, moto's DynamoDB behind it, the real handler built against them,
//! and a plain HTTP client for the presigned URLs.
//!
//! Every request is authorized from template.yaml as AWS would authorize it (local/src/iam): each
//! function's clients sign with the credentials of that function's role ([`Role`]), so a call or
//! a presigned URL outside the role's rights is refused here as it would be in AWS. The tests'
//! own setup and inspection use the account administrator's.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::HashMap;

use crate::events_function::{EventsFunction, serve_publisher};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::config::Credentials;
use lambda_http::http::StatusCode;
pub use local_aws;
use local_aws::role_credentials;
use presign_gate::aws;
use presign_gate::bucket::S3Bucket;
use presign_gate::domain::{ExpiryPolicy, UploadPolicy};
use presign_gate::event_bus::EventBridgeBus;
use presign_gate::http::Api;
use presign_gate::service::FileService;
use presign_gate::store::{DynamoDbOwnershipStore, attr};
use serde_json::Value;

use crate::api::{TestApi, file_id};
use crate::{BUCKET, EVENT_BUS, TABLE};

/// The account administrator's key pair: the tests' own setup and inspection.
const ACCESS_KEY: &str = "presign-gate-test-key";
const SECRET_KEY: &str = "presign-gate-test-secret";

/// Whose credentials a client signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The account's administrator: every action, but still subject to the bucket policy.
    Administrator,
    /// The API function's role (`ApiFunctionRole`).
    Api,
    /// The events function's role (`EventsFunctionRole`).
    Events,
    /// The reconciliation function's role (`ReconcileFunctionRole`).
    Reconcile,
    /// The publisher's role (`PublisherFunctionRole`).
    Publisher,
}

impl Role {
    /// The role's logical id in template.yaml.
    pub fn logical_id(self) -> Option<&'static str> {
        match self {
            Self::Administrator => None,
            Self::Api => Some("ApiFunctionRole"),
            Self::Events => Some("EventsFunctionRole"),
            Self::Reconcile => Some("ReconcileFunctionRole"),
            Self::Publisher => Some("PublisherFunctionRole"),
        }
    }

    /// The local key pair that stands for the role's credentials.
    pub fn key_pair(self) -> (String, String) {
        match self.logical_id() {
            Some(role) => role_credentials(role),
            None => (ACCESS_KEY.to_owned(), SECRET_KEY.to_owned()),
        }
    }

    fn credentials(self) -> Credentials {
        let (access_key, secret_key) = self.key_pair();
        Credentials::new(access_key, secret_key, None, None, "tests")
    }
}

/// A child process that is killed when the test ends, however it ends.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The path of a pinned tool, from the variable `make test` sets. A missing tool fails the test
/// with instructions instead of skipping it.
fn tool(variable: &str) -> PathBuf {
    let path = std::env::var_os(variable).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{variable} is not set: run the tests with `make test`, which installs the pinned stand-ins and sets it")
    });
    assert!(
        path.is_file(),
        "{variable}={} does not exist: run `make test`, which installs it",
        path.display()
    );
    path
}

/// A free loopback port, never one already handed to another stand-in of this test binary: the
/// OS can give a just-released port out again, and two stand-ins of parallel tests then race
/// for it, the loser's test talking to the winner's server.
fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("no free loopback port");
        let mut handed_out = HANDED_OUT.lock().unwrap();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

fn wait_until_listening(child: &mut ChildGuard, port: u16, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{name} exited with {status} before listening on port {port}");
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{name} did not listen on port {port} within 30 s");
}

pub struct StandIns {
    /// local-aws's S3.
    pub s3: ChildGuard,
    /// moto's DynamoDB, behind `dynamodb_front`.
    pub dynamodb: ChildGuard,
    /// local-aws's front for DynamoDB, which authorizes each request, when it is a process of
    /// its own (`start`).
    _dynamodb_front: Option<ChildGuard>,
    pub s3_endpoint: String,
    pub dynamodb_endpoint: String,
    /// The stack's `ScanUploads`, and so every function's `SCAN_UPLOADS`.
    pub scan_uploads: bool,
    /// The events function local-aws delivers to (`start_scanning` only).
    pub events: Option<EventsFunction>,
    /// local-aws's EventBridge (`start_scanning` only).
    pub eventbridge_endpoint: Option<String>,
    /// local-aws's demo origin, where a test sets faults (`POST /__faults`, local/src/faults.rs;
    /// `start_scanning` only).
    pub demo_origin: Option<String>,
    sdk: SdkConfig,
    _root: tempfile::TempDir,
}

impl StandIns {
    /// local-aws's S3 (s3s-fs underneath: SigV4, expiry, signed headers, checksums and
    /// conditional writes as S3 verifies them, plus what S3 does that s3s-fs 0.14.1 does not,
    /// see `local/src/bucket.rs`) and moto's DynamoDB behind local-aws's front, every request
    /// authorized as IAM would, with the bucket and table created. No S3 events are sent.
    ///
    /// Uploads are not scanned (`ScanUploads=false`): the tests of everything else confirm and
    /// download at once. `start_scanning` runs the stack as deployed by default.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// The stack as the template deploys it by default, in one local-aws process: malware
    /// scanning on, local-aws playing GuardDuty (local/src/guardduty, waiting `scan_delay_ms`
    /// before each scan) and delivering S3's notifications and the scan results to the events
    /// function's real handler in process (`events`); and the table's stream read by local-aws
    /// and handed to the publisher's real handler in process, which puts file events on
    /// local-aws's EventBridge, whose sink the demo origin serves (`GET /__events`).
    pub async fn start_scanning(scan_delay_ms: u64) -> Self {
        Self::start_with(Some(scan_delay_ms)).await
    }

    async fn start_with(scan_delay_ms: Option<u64>) -> Self {
        let as_deployed = scan_delay_ms.is_some();
        let listener = || async {
            tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("a function's listener")
        };
        let functions = match scan_delay_ms {
            Some(delay) => Some((listener().await, listener().await, delay)),
            None => None,
        };
        let root = tempfile::tempdir().expect("temporary directory");
        let moto_port = free_port();
        let mut dynamodb = ChildGuard(
            Command::new(tool("MOTO_SERVER_BIN"))
                .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server"),
        );
        let (s3_port, dynamodb_port) = (free_port(), free_port());
        let grants = root.path().join("grants.jsonl");
        let local_aws = |listen: &[String]| {
            let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
            let mut command = Command::new(tool("LOCAL_AWS_BIN"));
            command
                .args(["--host", "127.0.0.1"])
                .args(listen)
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg("--grants-log")
                .arg(&grants)
                .arg("--template")
                .arg(template)
                .args(["--parameter", &format!("ScanUploads={as_deployed}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            ChildGuard(command.spawn().expect("start local-aws"))
        };
        let data_dir = root.path().join("s3");
        let s3_options = [
            "--s3-port".to_owned(),
            s3_port.to_string(),
            "--data-dir".to_owned(),
            data_dir
                .to_str()
                .expect("a UTF-8 temporary path")
                .to_owned(),
        ];
        let dynamodb_options = [
            "--dynamodb-port".to_owned(),
            dynamodb_port.to_string(),
            "--dynamodb-upstream".to_owned(),
            format!("http://127.0.0.1:{moto_port}"),
        ];
        let (mut s3, mut dynamodb_front, demo_origin, eventbridge_endpoint) = match &functions {
            // Two processes, S3 and DynamoDB's front, so that a test can stop either alone;
            // both authorize from the same template and append to the same grants log.
            None => (
                local_aws(&s3_options),
                Some(local_aws(&dynamodb_options)),
                None,
                None,
            ),
            // One, as the stream reader shares the DynamoDB front's writes.
            Some((events, publisher, delay)) => {
                let (demo_port, eventbridge_port) = (free_port(), free_port());
                let invoke = |listener: &tokio::net::TcpListener, name: &str| {
                    let address = listener.local_addr().expect("a function's address");
                    format!("http://{address}/2015-03-31/functions/{name}/invocations")
                };
                let repository = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
                let mut options: Vec<String> = s3_options
                    .iter()
                    .chain(&dynamodb_options)
                    .cloned()
                    .collect();
                options.extend([
                    "--events-url".to_owned(),
                    invoke(events, "events"),
                    "--publisher-url".to_owned(),
                    invoke(publisher, "publish"),
                    "--eventbridge-port".to_owned(),
                    eventbridge_port.to_string(),
                    "--events-retry-ms".to_owned(),
                    "100".to_owned(),
                    "--scan-delay-ms".to_owned(),
                    delay.to_string(),
                    "--demo-port".to_owned(),
                    demo_port.to_string(),
                    "--demo-dir".to_owned(),
                    repository.join("demo").display().to_string(),
                    "--client-dir".to_owned(),
                    repository.join("client").display().to_string(),
                ]);
                (
                    local_aws(&options),
                    None,
                    Some(format!("http://127.0.0.1:{demo_port}")),
                    Some(format!("http://127.0.0.1:{eventbridge_port}")),
                )
            }
        };
        wait_until_listening(&mut s3, s3_port, "local-aws (S3)");
        let front = dynamodb_front.as_mut().unwrap_or(&mut s3);
        wait_until_listening(front, dynamodb_port, "local-aws (DynamoDB)");
        wait_until_listening(&mut dynamodb, moto_port, "moto_server");
        // The production loader (same timeouts and retries); each client then signs as a role.
        let sdk = aws::config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Role::Administrator.credentials())
            .load()
            .await;
        let mut standins = Self {
            scan_uploads: as_deployed,
            events: None,
            demo_origin,
            eventbridge_endpoint,
            sdk,
            s3,
            dynamodb,
            _dynamodb_front: dynamodb_front,
            s3_endpoint: format!("http://127.0.0.1:{s3_port}"),
            dynamodb_endpoint: format!("http://127.0.0.1:{dynamodb_port}"),
            _root: root,
        };
        standins
            .s3_client()
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("create bucket");
        let admin_store = DynamoDbOwnershipStore::new(standins.dynamodb_client(), TABLE);
        let created = match as_deployed {
            true => admin_store.create_table_with_stream().await,
            false => admin_store.create_table().await,
        };
        if let Err(error) = created {
            // On a loaded machine the SDK can time out the first CreateTable while moto, loading
            // its DynamoDB backend on first use, still creates the table; the SDK's retry then
            // finds it there. The table existing is all that matters.
            standins
                .dynamodb_client()
                .describe_table()
                .table_name(TABLE)
                .send()
                .await
                .unwrap_or_else(|_| panic!("create table: {error:?}"));
        }
        if let Some((events, publisher, _)) = functions {
            let files = standins.files_as(Role::Events);
            standins.events = Some(EventsFunction::serve(events, files));
            serve_publisher(publisher, standins.event_bus());
        }
        standins
    }

    /// For each request allowed so far, the template's statements that allowed it (by sid:
    /// `ApiFunctionRole/files/UserObjects`, ...).
    pub fn grants(&self) -> Vec<Vec<String>> {
        let log = std::fs::read_to_string(self._root.path().join("grants.jsonl"))
            .expect("local-aws's grants log");
        log.lines()
            .map(|line| serde_json::from_str(line).expect("a grant"))
            .collect()
    }

    /// The settings of a deployed function running as `role`, pointed at these stand-ins
    /// (credentials, endpoints, the bucket and table, path-style addressing, `text/plain`
    /// allowed).
    pub fn deployed_settings(&self, role: Role) -> Vec<(&'static str, String)> {
        let (access_key, secret_key) = role.key_pair();
        vec![
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", access_key),
            ("AWS_SECRET_ACCESS_KEY", secret_key),
            ("AWS_ENDPOINT_URL_S3", self.s3_endpoint.clone()),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_endpoint.clone()),
            // An unused port: an instance-metadata probe would fail here rather than go anywhere.
            (
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                "http://127.0.0.1:9".into(),
            ),
            ("FILES_BUCKET", BUCKET.into()),
            ("FILES_TABLE", TABLE.into()),
            ("S3_FORCE_PATH_STYLE", "true".into()),
            ("ALLOWED_CONTENT_TYPES", "text/plain".into()),
            ("SCAN_UPLOADS", self.scan_uploads.to_string()),
        ]
    }

    /// An S3 client of the administrator's: the test's own setup and inspection.
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        self.s3_client_as(Role::Administrator)
    }

    pub fn s3_client_as(&self, role: Role) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk)
            .endpoint_url(&self.s3_endpoint)
            .force_path_style(true)
            .credentials_provider(role.credentials())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Queues a fault plan on local-aws (`POST /__faults` on the demo origin, local/src/faults.rs;
    /// `start_scanning` only).
    pub async fn set_faults(&self, plan: serde_json::Value) {
        let origin = self
            .demo_origin
            .as_deref()
            .expect("a stack started with start_scanning");
        let answer = http_client()
            .post(format!("{origin}/__faults"))
            .header("content-type", "application/json")
            .body(plan.to_string())
            .send()
            .await
            .expect("the fault endpoint answers");
        assert_eq!(answer.status(), 204, "{:?}", answer.text().await);
    }

    /// The bus the publisher puts file events on, signing as its role (`start_scanning` only).
    pub fn event_bus(&self) -> EventBridgeBus {
        let endpoint = self
            .eventbridge_endpoint
            .as_deref()
            .expect("a stack started with start_scanning");
        let config = aws_sdk_eventbridge::config::Builder::from(&self.sdk)
            .endpoint_url(endpoint)
            .credentials_provider(Role::Publisher.credentials())
            .build();
        EventBridgeBus::new(aws_sdk_eventbridge::Client::from_conf(config), EVENT_BUS)
    }

    /// A DynamoDB client of the administrator's: the test's own setup and inspection.
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb_client_as(Role::Administrator)
    }

    pub fn dynamodb_client_as(&self, role: Role) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk)
            .endpoint_url(&self.dynamodb_endpoint)
            .credentials_provider(role.credentials())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// The store as the API function uses it.
    pub fn store(&self) -> DynamoDbOwnershipStore {
        self.store_as(Role::Api)
    }

    pub fn store_as(&self, role: Role) -> DynamoDbOwnershipStore {
        DynamoDbOwnershipStore::new(self.dynamodb_client_as(role), TABLE)
    }

    /// The table's item of `owner` under sort key `sort_key` as stored, attribute by attribute;
    /// `None` if there is none. Read as the administrator.
    pub async fn raw_item(
        &self,
        owner: &str,
        sort_key: &str,
    ) -> Option<HashMap<String, AttributeValue>> {
        self.dynamodb_client()
            .get_item()
            .table_name(TABLE)
            .key(attr::OWNER, AttributeValue::S(owner.into()))
            .key(attr::FILE_ID, AttributeValue::S(sort_key.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem as the administrator")
            .item
    }

    /// The bucket as the API function uses it.
    pub fn bucket(&self) -> S3Bucket {
        self.bucket_as(Role::Api)
    }

    /// Signing with the role's credentials read from their provider, as `entry.rs` builds it
    /// (`signing_with`): part URLs are then signed in batches (`presign_parts`), as deployed.
    pub fn bucket_as(&self, role: Role) -> S3Bucket {
        S3Bucket::new(self.s3_client_as(role), BUCKET).signing_with(Some(
            aws_sdk_s3::config::SharedCredentialsProvider::new(role.credentials()),
        ))
    }

    /// The real handler over the stand-ins, as the API function, with the default policies.
    pub fn api(&self) -> TestApi {
        self.api_with(
            UploadPolicy::new(["image/png", "text/plain", "application/pdf"], 1024 * 1024).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        )
    }

    /// The application over the stand-ins, as the events function runs it.
    pub fn files(&self) -> FileService<DynamoDbOwnershipStore, S3Bucket> {
        self.files_as(Role::Events)
    }

    /// The application over the stand-ins, with the rights of `role`.
    pub fn files_as(&self, role: Role) -> FileService<DynamoDbOwnershipStore, S3Bucket> {
        FileService::new(
            self.store_as(role),
            self.bucket_as(role),
            UploadPolicy::new(["image/png", "text/plain", "application/pdf"], 1024 * 1024).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        )
        .with_scanning(self.scan_uploads)
    }

    pub fn api_with(&self, uploads: UploadPolicy, expiry: ExpiryPolicy) -> TestApi {
        let files = FileService::new(self.store(), self.bucket(), uploads, expiry)
            .with_scanning(self.scan_uploads);
        TestApi(Api::new(files, None))
    }
}

impl TestApi<DynamoDbOwnershipStore, S3Bucket> {
    /// Reserves, uploads through the presigned URL and confirms a file; returns its id.
    pub async fn stored_file(
        &self,
        caller: &str,
        filename: &str,
        content_type: &str,
        body: &[u8],
    ) -> String {
        let reservation = self.reserve(caller, filename, content_type, body).await;
        let put = upload(&reservation, body).await;
        assert_eq!(put.status(), 200, "{:?}", put.text().await);
        let id = file_id(&reservation);
        let complete = self.complete(caller, &id).await;
        assert_eq!(complete.status, StatusCode::OK, "{complete:?}");
        id
    }
}

/// A plain HTTP client for the presigned URLs, as a browser would use them.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// PUTs `body` to the upload URL of a reservation with exactly the headers the API listed.
pub async fn upload(reservation: &Value, body: &[u8]) -> reqwest::Response {
    upload_with(reservation, body, &[]).await
}

/// PUTs `body` to the upload URL of a reservation with the headers the API listed and `extra`
/// ones, which the URL does not sign, as a client holding the URL may add.
pub async fn upload_with(
    reservation: &Value,
    body: &[u8],
    extra: &[(&str, &str)],
) -> reqwest::Response {
    put_presigned(&reservation["upload"], body, extra).await
}

/// PUTs `body` to a presigned PUT as the API answers it (`url` and `headers`: an upload or a
/// part), with exactly the listed headers but `Content-Length`, which the client sets from the
/// body, and `extra` ones.
pub async fn put_presigned(
    presigned: &Value,
    body: &[u8],
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = http_client().put(presigned["url"].as_str().expect("a presigned url"));
    for (name, value) in presigned["headers"].as_object().expect("presigned headers") {
        if name != "content-length" {
            request = request.header(name, value.as_str().expect("header value"));
        }
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request
        .body(body.to_vec())
        .send()
        .await
        .expect("PUT reaches the S3 stand-in")
}
