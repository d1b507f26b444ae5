//! What the outbound-events tests need besides the stack: moto's DynamoDB (the pinned
//! `MOTO_SERVER_BIN` that `make test` sets; a missing one fails the test), SDK clients for
//! DynamoDB and EventBridge signing as the administrator or a role, and the sink's reader.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_eventbridge::config::retry::RetryConfig;
use http::Uri;
use serde_json::Value;

use super::{ACCESS_KEY, SECRET_KEY, Stack, http};

/// moto's server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: Uri,
}

impl Moto {
    pub fn start() -> Self {
        let binary = std::env::var_os("MOTO_SERVER_BIN").map(PathBuf::from).unwrap_or_else(|| {
            panic!("MOTO_SERVER_BIN is not set: run the tests with `make test`, which installs moto and sets it")
        });
        assert!(
            binary.is_file(),
            "MOTO_SERVER_BIN={} does not exist",
            binary.display()
        );
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}")
                .parse()
                .expect("moto's URL"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn credentials(role: Option<&str>) -> Credentials {
    let (access_key, secret_key) = match role {
        Some(role) => local_aws::role_credentials(role),
        None => (ACCESS_KEY.to_owned(), SECRET_KEY.to_owned()),
    };
    Credentials::new(access_key, secret_key, None, None, "tests")
}

impl Stack {
    /// DynamoDB through local-aws's front, as the administrator.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let endpoint = format!("http://{}", self.aws.dynamodb.expect("DynamoDB is started"));
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(credentials(None))
            .endpoint_url(endpoint)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// EventBridge as `role` (the administrator for None), without retries: a test sees each
    /// answer.
    pub fn eventbridge_as(&self, role: Option<&str>) -> aws_sdk_eventbridge::Client {
        let endpoint = format!(
            "http://{}",
            self.aws.eventbridge.expect("EventBridge is started")
        );
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
            .credentials_provider(credentials(role))
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_eventbridge::Client::from_conf(config)
    }

    /// `GET /__events` (of `owner`, when given): the events, newest first.
    pub async fn sink(&self, owner: Option<&str>) -> Vec<Value> {
        let mut request = http().get(format!("{}/__events", self.demo_origin()));
        if let Some(owner) = owner {
            request = request.query(&[("owner", owner)]);
        }
        let response = request.send().await.expect("the demo server answers");
        assert_eq!(response.status(), http::StatusCode::OK);
        let body: Value =
            serde_json::from_str(&response.text().await.expect("a body")).expect("JSON");
        body["events"].as_array().expect("events").clone()
    }
}
