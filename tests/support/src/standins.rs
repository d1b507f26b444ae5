//! The stand-ins: s3s-fs and moto's DynamoDB on free loopback ports for each test, the real
//! handler built against them, and a plain HTTP client for the presigned URLs.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_s3::config::Credentials;
use lambda_http::http::StatusCode;
use presign_gate::aws;
use presign_gate::bucket::S3Bucket;
use presign_gate::domain::{ExpiryPolicy, UploadPolicy};
use presign_gate::http::Api;
use presign_gate::service::FileService;
use presign_gate::store::DynamoDbOwnershipStore;
use serde_json::Value;

use crate::api::{TestApi, file_id};
use crate::{BUCKET, TABLE};

const ACCESS_KEY: &str = "presign-gate-test-key";
const SECRET_KEY: &str = "presign-gate-test-secret";

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
    pub s3: ChildGuard,
    /// When started with `start_without_list_bucket`: the front `s3_endpoint` points at.
    pub no_list_bucket: Option<crate::no_list_bucket::NoListBucketFront>,
    pub dynamodb: ChildGuard,
    pub s3_endpoint: String,
    pub dynamodb_endpoint: String,
    sdk: SdkConfig,
    _root: tempfile::TempDir,
}

impl StandIns {
    /// s3s-fs (which verifies SigV4, expiry, signed headers and checksums like S3 does) and
    /// moto's DynamoDB, each on a free port, with the bucket and table created.
    pub async fn start() -> Self {
        Self::start_with(|port, root| {
            let mut command = Command::new(tool("S3S_FS_BIN"));
            command
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(root);
            (command, "s3s-fs")
        })
        .await
    }

    /// The stand-ins with `make local`'s S3 (local-aws, from `LOCAL_AWS_BIN`) in place of bare
    /// s3s-fs: the same s3s-fs underneath, plus what S3 does that s3s-fs 0.14.1 does not, such
    /// as verifying the checksum an UploadPart declares (see `local/src/bucket.rs`). No events
    /// are sent.
    pub async fn start_on_local_aws() -> Self {
        Self::start_with(|port, root| {
            let template =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
            let mut command = Command::new(tool("LOCAL_AWS_BIN"));
            command
                .args(["--host", "127.0.0.1", "--s3-port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg("--data-dir")
                .arg(root)
                .arg("--template")
                .arg(template);
            (command, "local-aws")
        })
        .await
    }

    async fn start_with(
        s3_command: impl FnOnce(u16, &std::path::Path) -> (Command, &'static str),
    ) -> Self {
        let root = tempfile::tempdir().expect("temporary directory");
        let s3_port = free_port();
        let (mut command, s3_name) = s3_command(s3_port, root.path());
        let mut s3 = ChildGuard(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {s3_name}: {e}")),
        );
        let dynamodb_port = free_port();
        let mut dynamodb = ChildGuard(
            Command::new(tool("MOTO_SERVER_BIN"))
                .args(["-H", "127.0.0.1", "-p", &dynamodb_port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server"),
        );
        wait_until_listening(&mut s3, s3_port, s3_name);
        wait_until_listening(&mut dynamodb, dynamodb_port, "moto_server");
        // The production loader (same timeouts and retries), with the stand-ins' credentials.
        let sdk = aws::config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "tests",
            ))
            .load()
            .await;
        let standins = Self {
            sdk,
            s3,
            no_list_bucket: None,
            dynamodb,
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
        if let Err(error) = standins.store().create_table().await {
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
        standins
    }

    /// The stand-ins, with every S3 request (the SDK's and the presigned URLs') going through a
    /// front that answers HeadObject on a missing key with 403, as S3 answers the deployed roles,
    /// which have no s3:ListBucket (see `no_list_bucket`).
    pub async fn start_without_list_bucket() -> Self {
        let mut standins = Self::start().await;
        let upstream = standins
            .s3_endpoint
            .trim_start_matches("http://")
            .to_owned();
        let front = crate::no_list_bucket::NoListBucketFront::start(upstream).await;
        standins.s3_endpoint = front.endpoint.clone();
        standins.no_list_bucket = Some(front);
        standins
    }

    pub fn access_key(&self) -> &'static str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// The settings of a deployed function, pointed at these stand-ins (credentials, endpoints,
    /// the bucket and table, path-style addressing, `text/plain` allowed).
    pub fn deployed_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", self.access_key().into()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key().into()),
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
        ]
    }

    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk)
            .endpoint_url(&self.s3_endpoint)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk)
            .endpoint_url(&self.dynamodb_endpoint)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    pub fn store(&self) -> DynamoDbOwnershipStore {
        DynamoDbOwnershipStore::new(self.dynamodb_client(), TABLE)
    }

    pub fn bucket(&self) -> S3Bucket {
        S3Bucket::new(self.s3_client(), BUCKET)
    }

    /// The real handler over the stand-ins, with the default policies.
    pub fn api(&self) -> TestApi {
        self.api_with(
            UploadPolicy::new(["image/png", "text/plain", "application/pdf"], 1024 * 1024).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        )
    }

    /// The application over the stand-ins, as the events function runs it.
    pub fn files(&self) -> FileService<DynamoDbOwnershipStore, S3Bucket> {
        FileService::new(
            self.store(),
            self.bucket(),
            UploadPolicy::new(["image/png", "text/plain", "application/pdf"], 1024 * 1024).unwrap(),
            ExpiryPolicy::new(300, 900).unwrap(),
        )
    }

    pub fn api_with(&self, uploads: UploadPolicy, expiry: ExpiryPolicy) -> TestApi {
        let files = FileService::new(self.store(), self.bucket(), uploads, expiry);
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
