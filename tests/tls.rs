//! The HTTPS client of the SDK clients verifies certificates against the configured roots only.
//!
//! A DynamoDB endpoint on loopback whose certificate is issued by a private test authority, put in
//! the "system" store through `SSL_CERT_FILE` (which the SDK's native-root loader honours):
//! with `TLS_TRUST_ROOTS=system` the read goes through; with the default (the built-in Amazon
//! Trust Services roots) the handshake is refused, the read fails closed as `Unavailable`, and
//! the server never sees a request. The test runs the product's configuration path
//! (`Config::from_lookup` -> `aws::lambda_sdk_config`), as the Lambda entry points do.
//!
//! Alone in its test binary: it sets process environment variables, which the SDK reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use presign_gate::aws;
use presign_gate::config::Config;
use presign_gate::domain::{FileId, OwnerId};
use presign_gate::error::AppError;
use presign_gate::store::{DynamoDbOwnershipStore, OwnershipStore};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private authority and a `localhost` certificate it issued.
struct TestAuthority {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn test_authority() -> TestAuthority {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Presign Gate test authority");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    TestAuthority {
        ca_pem: ca_cert.pem(),
        leaf: leaf.der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
    }
}

/// Serves HTTPS on loopback, answering every request with an empty `GetItem` result (no item).
/// Returns the port and the number of requests that got through a handshake.
fn serve_tls(authority: &TestAuthority) -> (u16, Arc<AtomicUsize>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![authority.leaf.clone()], authority.leaf_key.clone_key())
            .unwrap(),
    );
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                let Ok(connection) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = BufReader::new(rustls::StreamOwned::new(connection, stream));
                // A refused handshake surfaces here as a read error: nothing to answer.
                let mut content_length = 0;
                loop {
                    let mut line = String::new();
                    if tls.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        content_length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; content_length];
                if tls.read_exact(&mut body).is_err() {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = tls.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
                      content-length: 2\r\nconnection: close\r\n\r\n{}",
                );
                let _ = tls.get_mut().flush();
            });
        }
    });
    (port, requests)
}

async fn read_through(trust_roots: Option<&str>, port: u16) -> Result<(), AppError> {
    let config = Config::from_lookup(|name| match name {
        "FILES_BUCKET" => Some("files".into()),
        "FILES_TABLE" => Some("records".into()),
        "AWS_REGION" => Some("us-east-1".into()),
        "TLS_TRUST_ROOTS" => trust_roots.map(str::to_owned),
        _ => None,
    })
    .unwrap();
    let sdk = aws::lambda_sdk_config(&config).await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(format!("https://localhost:{port}"))
            .build(),
    );
    let store = DynamoDbOwnershipStore::new(client, config.table);
    let owner = OwnerId::parse("alice").unwrap();
    let found = store.get(&owner, FileId::new_random()).await?;
    assert!(found.is_none(), "the endpoint has no record");
    Ok(())
}

#[tokio::test]
async fn only_the_configured_roots_are_trusted() {
    let authority = test_authority();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("test-authority.pem");
    std::fs::write(&ca_file, &authority.ca_pem).unwrap();
    // SAFETY: the only test in this binary, and no other thread has started yet that reads the
    // environment (the server starts below; the SDK reads these when the clients are built).
    unsafe {
        std::env::set_var("SSL_CERT_FILE", &ca_file);
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test-secret");
    }
    let (port, requests) = serve_tls(&authority);

    // The default: Amazon Trust Services only. The private authority is refused at the
    // handshake, so the read fails closed and the server never sees a request.
    let refused = read_through(None, port).await.unwrap_err();
    assert!(matches!(refused, AppError::Unavailable(_)), "{refused:?}");
    let cause = std::error::Error::source(&refused)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(cause.contains("UnknownIssuer"), "{cause}");
    assert_eq!(requests.load(Ordering::SeqCst), 0);

    // The system store, which here holds the private authority: the same read goes through.
    read_through(Some("system"), port).await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}
