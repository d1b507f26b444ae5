//! Building the SDK clients once at cold start, with the bounds every call must respect. The
//! adapters never import this module: the entry layer builds the clients and hands them over.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{Config, TrustRoots};

/// A stalled backend must turn into a 503 well inside 10 seconds, not hang until the Lambda
/// timeout: each attempt is cut at 2 s (1 s to connect), and the whole call, retries and backoff
/// included, at 6 s.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(6))
        .build()
}

fn retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(500))
}

/// The roots of Amazon Trust Services, which issues the certificates of every AWS endpoint this
/// function calls.
const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("amazon-trust-services.pem");

/// The HTTPS client of every SDK client, trusting `roots`.
///
/// With the SDK's default, building the first client reads the system's whole certificate store
/// (every file in the certificate directories, ~150 certificates), which was most of this
/// function's cold start beyond a bare handler's. The five Amazon Trust Services roots are all an
/// AWS endpoint needs, are parsed in microseconds, and trust no other authority.
fn https_client(roots: TrustRoots) -> SharedHttpClient {
    let trust_store = match roots {
        TrustRoots::AmazonTrustServices => {
            TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS)
        }
        TrustRoots::System => TrustStore::default(),
    };
    // `build` only stores what it is given and cannot fail; were that to change, the SDK's default
    // context (the system's roots) is still a safe one.
    let tls_context = TlsContext::builder()
        .with_trust_store(trust_store)
        .build()
        .unwrap_or_default();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls_context)
        .build_https()
}

/// The loader every client starts from, with timeouts and retries already bounded and the
/// Amazon Trust Services roots. Callers add region and credentials: the Lambda entry points from
/// the environment, tests explicitly.
pub fn config_loader() -> ConfigLoader {
    config_loader_trusting(TrustRoots::AmazonTrustServices)
}

fn config_loader_trusting(roots: TrustRoots) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(roots))
        .timeout_config(timeouts())
        .retry_config(retries())
}

/// The SDK configuration for a Lambda function: region and credentials from the environment that
/// Lambda sets, so start-up makes no network call and never probes the instance metadata service.
/// Endpoint overrides (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_DYNAMODB`) are honoured by the
/// loader itself.
pub async fn lambda_sdk_config(config: &Config) -> SdkConfig {
    config_loader_trusting(config.trust_roots)
        .region(aws_config::Region::new(config.region.clone()))
        .credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
        .load()
        .await
}

pub fn s3_client(sdk: &SdkConfig, force_path_style: bool) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(sdk)
}

pub fn eventbridge_client(sdk: &SdkConfig) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(sdk)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use sha2::{Digest, Sha256};

    use super::*;

    /// README and SECURITY.md ("Backend faults"): every AWS call is cut at 1 s to connect, 2 s per attempt, 3
    /// attempts and 6 s in all. Read back from the clients that the Lambda entry points build, so
    /// a bound lost anywhere between `timeouts()` and the client (a loader that drops it, a client
    /// builder that overrides it) fails here.
    #[tokio::test]
    async fn the_lambda_clients_carry_the_documented_bounds() {
        let settings = [
            ("FILES_BUCKET", "files"),
            ("FILES_TABLE", "file-records"),
            ("AWS_REGION", "us-east-1"),
        ];
        let config = Config::from_lookup(|name| {
            settings
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .unwrap();
        let sdk = lambda_sdk_config(&config).await;
        let s3 = s3_client(&sdk, false);
        let dynamodb = dynamodb_client(&sdk);
        let clients = [
            (
                "S3",
                s3.config().timeout_config(),
                s3.config().retry_config(),
            ),
            (
                "DynamoDB",
                dynamodb.config().timeout_config(),
                dynamodb.config().retry_config(),
            ),
        ];
        for (name, timeouts, retries) in clients {
            let timeouts = timeouts.unwrap_or_else(|| panic!("{name}: no timeout config"));
            let retries = retries.unwrap_or_else(|| panic!("{name}: no retry config"));
            assert_eq!(
                timeouts.connect_timeout(),
                Some(Duration::from_secs(1)),
                "{name}"
            );
            assert_eq!(
                timeouts.read_timeout(),
                Some(Duration::from_secs(2)),
                "{name}"
            );
            assert_eq!(
                timeouts.operation_attempt_timeout(),
                Some(Duration::from_secs(2)),
                "{name}"
            );
            assert_eq!(
                timeouts.operation_timeout(),
                Some(Duration::from_secs(6)),
                "{name}"
            );
            assert_eq!(retries.max_attempts(), 3, "{name}");
            assert_eq!(
                retries.initial_backoff(),
                Duration::from_millis(50),
                "{name}"
            );
            assert_eq!(retries.max_backoff(), Duration::from_millis(500), "{name}");
        }
    }

    /// The embedded roots are exactly the five published ones: each certificate's SHA-256 equals
    /// the fingerprint written above it, which is the one amazontrust.com publishes.
    #[test]
    fn the_trust_store_holds_the_five_amazon_trust_services_roots() {
        let pem = std::str::from_utf8(AMAZON_TRUST_SERVICES_ROOTS).unwrap();
        let mut fingerprints = Vec::new();
        for block in pem
            .split("-----END CERTIFICATE-----")
            .filter(|b| b.contains("BEGIN"))
        {
            let (head, body) = block.split_once("-----BEGIN CERTIFICATE-----").unwrap();
            let stated = head
                .lines()
                .filter_map(|line| line.strip_prefix("# SHA-256 "))
                .next_back()
                .unwrap()
                .replace(':', "")
                .to_lowercase();
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .unwrap();
            let actual: String = Sha256::digest(&der)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(actual, stated);
            fingerprints.push(actual);
        }
        assert_eq!(
            fingerprints,
            [
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
            ]
        );
    }
}
