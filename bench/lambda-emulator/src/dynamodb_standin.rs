//! The DynamoDB stand-in and its one record: started, seeded and read through the product's own
//! store, so that the functions find what the API would find.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use presign_gate::domain::{FileId, FileRecord, FileStatus, ObjectKey, OwnerId, QuotaLimits};
use presign_gate::store::{DynamoDbOwnershipStore, OwnershipStore};

use crate::Result;
use crate::lambda_environment::{ACCESS_KEY, REGION, SECRET_KEY, TABLE};
use crate::proc_readings::thread_cpu_ns;

/// The user who owns the seeded record, and whom every event's JWT authorizer verified.
pub const OWNER: &str = "bench-user";

/// moto's DynamoDB, served with HTTP/1.1 keep-alive as real DynamoDB is (see
/// `bench/python/dynamodb_standin.py`): `moto_server` closes every connection, which would charge
/// each warm invocation a TCP connect and close that it never pays in Lambda.
pub struct DynamoDbStandIn {
    child: Child,
    pub endpoint: String,
}

impl Drop for DynamoDbStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_dynamodb(python: &Path, python_dir: &Path) -> Result<DynamoDbStandIn> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let script = python_dir.join("dynamodb_standin.py");
    let child = Command::new(python)
        .arg(&script)
        .args(["127.0.0.1", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{} {}: {e}", python.display(), script.display()))?;
    let standin = DynamoDbStandIn {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if Instant::now() > deadline {
            return Err("the DynamoDB stand-in did not listen within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(standin)
}

/// Client side of the stand-in as the function builds it (the product's loader: HTTPS client,
/// timeouts, retries), with the harness's static credentials.
async fn store(endpoint: &str) -> DynamoDbOwnershipStore {
    let sdk = presign_gate::aws::config_loader()
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "bench",
        ))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(endpoint)
            .build(),
    );
    DynamoDbOwnershipStore::new(client, TABLE)
}

/// Runs `work` with that store, on a current-thread runtime of its own.
fn with_store<T>(
    endpoint: &str,
    work: impl AsyncFnOnce(DynamoDbOwnershipStore) -> Result<T>,
) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(async { work(store(endpoint).await).await })
}

/// The CPU time of one `GetItem` through the product's store and the SDK, alone: no Lambda
/// runtime, no routing, no presigning. Measured on this (harness) thread, over a kept-alive
/// connection to the same stand-in, after 100 warm-up calls.
pub fn sdk_get_cpu(endpoint: &str, id: FileId, calls: usize) -> Result<Duration> {
    with_store(endpoint, async |store| {
        let owner = OwnerId::parse(OWNER).ok_or("owner")?;
        let mut started = 0;
        for call in 0..100 + calls {
            if call == 100 {
                started = thread_cpu_ns()?;
            }
            store
                .get(&owner, id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the seeded record is gone")?;
        }
        Ok(Duration::from_nanos(
            (thread_cpu_ns()? - started) / calls.max(1) as u64,
        ))
    })
}

/// Creates the table and one available record owned by `OWNER`, through the product's own store.
pub fn seed(endpoint: &str) -> Result<FileId> {
    with_store(endpoint, async |store| {
        store.create_table().await.map_err(|e| e.to_string())?;
        let owner = OwnerId::parse(OWNER).ok_or("owner")?;
        let id = FileId::new_random();
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .map_err(|e| e.to_string())?;
        let record = FileRecord {
            key: ObjectKey::for_file(&owner, id),
            owner: owner.clone(),
            id,
            filename: "holiday photo.png".into(),
            content_type: "image/png".into(),
            size: 52_133,
            sha256: None,
            status: FileStatus::Pending,
            created_at: now,
            purge_at: Some(now + time::Duration::days(1)),
            etag: None,
            uploaded_at: None,
            rejected_for: None,
            multipart: None,
            idempotency_key: None,
        };
        store
            .reserve(&record, &QuotaLimits::default(), now)
            .await
            .map_err(|e| e.to_string())?;
        store
            .mark_uploaded(
                &record,
                FileStatus::Available,
                "\"bench-etag\"",
                now,
                &QuotaLimits::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(id)
    })
}
