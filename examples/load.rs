//! `make load`: a bounded load test against the API that `make local` runs. Test tooling, not
//! product code.
//!
//! Sends `LOAD_REQUESTS` (2,000) mixed API requests from several users at `LOAD_CONCURRENCY`
//! (32): reservations, uploads over the presigned URLs, confirmations, single and batch download
//! URLs, gets and listings. Then it walks every user's listing and checks that every reservation
//! answered 201 is there. Prints throughput and p50/p99 latency; exits non-zero on any 5xx, any
//! transport error or any lost record. Loopback only, and bounded in count and in time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

const USERS: usize = 8;
const DEADLINE: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    statuses: BTreeMap<String, usize>,
    transport_errors: Vec<String>,
    server_errors: Vec<String>,
    /// Every reservation answered 201, by user: (id, reservation body).
    reserved: BTreeMap<String, Vec<(String, Value)>>,
    /// Per user: reservations not uploaded yet, uploaded but not confirmed, and confirmed.
    to_upload: BTreeMap<String, Vec<(String, Value)>>,
    uploaded: BTreeMap<String, Vec<String>>,
    available: BTreeMap<String, Vec<String>>,
    s3_puts: usize,
}

struct Load {
    base: String,
    client: reqwest::Client,
    users: Vec<String>,
    stats: Mutex<Stats>,
}

impl Load {
    async fn api(
        &self,
        op: &str,
        user: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-dev-user", user);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let started = Instant::now();
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.map(|bytes| (status, bytes))
            }
            Err(error) => Err(error),
        };
        let elapsed = started.elapsed();
        let mut stats = self.stats.lock().unwrap();
        stats.latencies.push(elapsed);
        match result {
            Err(error) => {
                stats.transport_errors.push(format!("{op}: {error}"));
                None
            }
            Ok((status, bytes)) => {
                *stats.statuses.entry(format!("{op} {status}")).or_default() += 1;
                let body = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
                if status >= 500 {
                    stats
                        .server_errors
                        .push(format!("{op} {path}: {status} {body}"));
                }
                Some((status, body))
            }
        }
    }

    /// A reservation made earlier by `user`, if any, picked by `n`.
    fn reserved(&self, user: &str, n: usize) -> Option<(String, Value)> {
        let stats = self.stats.lock().unwrap();
        let list = stats.reserved.get(user)?;
        (!list.is_empty()).then(|| list[n % list.len()].clone())
    }

    async fn one(&self, n: usize) {
        // Each run of ten operations is one user's, so a confirmation finds that user's uploads.
        let user = &self.users[(n / 10) % USERS];
        match n % 10 {
            0..=3 => {
                let body = json!({"filename": format!("load-{n}.txt"), "contentType": "text/plain", "size": 16});
                if let Some((201, body)) = self
                    .api(
                        "reserve",
                        user,
                        reqwest::Method::POST,
                        "/uploads",
                        Some(body),
                    )
                    .await
                {
                    let id = body["file"]["id"].as_str().unwrap_or_default().to_owned();
                    let mut stats = self.stats.lock().unwrap();
                    let entry = (id, body);
                    stats
                        .to_upload
                        .entry(user.clone())
                        .or_default()
                        .push(entry.clone());
                    stats.reserved.entry(user.clone()).or_default().push(entry);
                }
            }
            4 => {
                let next = self
                    .stats
                    .lock()
                    .unwrap()
                    .to_upload
                    .get_mut(user)
                    .and_then(Vec::pop);
                let Some((id, reservation)) = next else {
                    return;
                };
                let upload = &reservation["upload"];
                let mut request = self.client.put(upload["url"].as_str().unwrap_or_default());
                for (name, value) in upload["headers"].as_object().into_iter().flatten() {
                    if name != "content-length" {
                        request = request.header(name, value.as_str().unwrap_or_default());
                    }
                }
                let result = request.body(vec![b'x'; 16]).send().await;
                let mut stats = self.stats.lock().unwrap();
                stats.s3_puts += 1;
                match result {
                    Ok(response) if response.status() == 200 => {
                        stats.uploaded.entry(user.clone()).or_default().push(id);
                    }
                    Ok(response) => stats
                        .server_errors
                        .push(format!("S3 PUT: {}", response.status())),
                    Err(error) => stats.transport_errors.push(format!("S3 PUT: {error}")),
                }
            }
            5 => {
                let next = self
                    .stats
                    .lock()
                    .unwrap()
                    .uploaded
                    .get_mut(user)
                    .and_then(Vec::pop);
                let Some(id) = next else {
                    return;
                };
                let path = format!("/files/{id}/complete");
                if let Some((200, _)) = self
                    .api("complete", user, reqwest::Method::POST, &path, None)
                    .await
                {
                    self.stats
                        .lock()
                        .unwrap()
                        .available
                        .entry(user.clone())
                        .or_default()
                        .push(id);
                }
            }
            6 => {
                // A confirmed file when there is one (200), else a pending one (409).
                let confirmed = {
                    let stats = self.stats.lock().unwrap();
                    stats
                        .available
                        .get(user)
                        .filter(|ids| !ids.is_empty())
                        .map(|ids| ids[n % ids.len()].clone())
                };
                let Some(id) = confirmed.or_else(|| self.reserved(user, n).map(|(id, _)| id))
                else {
                    return;
                };
                let path = format!("/files/{id}/download-url");
                self.api("download-url", user, reqwest::Method::GET, &path, None)
                    .await;
            }
            7 => {
                self.api("list", user, reqwest::Method::GET, "/files?limit=20", None)
                    .await;
            }
            8 => {
                // Someone else's file: must be a 404, never the file.
                let other = &self.users[(n / 10 + 1) % USERS];
                let Some((id, _)) = self.reserved(other, n) else {
                    return;
                };
                if let Some((status, _)) = self
                    .api(
                        "foreign-get",
                        user,
                        reqwest::Method::GET,
                        &format!("/files/{id}"),
                        None,
                    )
                    .await
                    && status != 404
                {
                    self.stats
                        .lock()
                        .unwrap()
                        .server_errors
                        .push(format!("foreign get answered {status}"));
                }
            }
            _ => {
                let ids: Vec<String> = (0..5)
                    .filter_map(|k| self.reserved(user, n + k))
                    .map(|(id, _)| id)
                    .collect();
                if ids.is_empty() {
                    return;
                }
                self.api(
                    "batch",
                    user,
                    reqwest::Method::POST,
                    "/files/download-urls",
                    Some(json!({"ids": ids})),
                )
                .await;
            }
        }
    }

    /// Every record each user has, walking the listing to its end.
    async fn listed(&self, user: &str) -> Result<BTreeSet<String>, String> {
        let mut ids = BTreeSet::new();
        let mut token: Option<String> = None;
        for _ in 0..1000 {
            let path = match &token {
                Some(token) => format!("/files?limit=100&nextToken={token}"),
                None => "/files?limit=100".to_owned(),
            };
            let Some((200, body)) = self
                .api("final-list", user, reqwest::Method::GET, &path, None)
                .await
            else {
                return Err(format!("listing {user} failed"));
            };
            for file in body["files"].as_array().into_iter().flatten() {
                ids.insert(file["id"].as_str().unwrap_or_default().to_owned());
            }
            match body["nextToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(ids),
            }
        }
        Err(format!("listing {user} never ended"))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

#[tokio::main]
async fn main() {
    let base = std::env::var("LOAD_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    let host = base
        .trim_start_matches("http://")
        .split([':', '/'])
        .next()
        .unwrap_or_default();
    assert!(
        base.starts_with("http://") && ["127.0.0.1", "localhost", "[::1]"].contains(&host),
        "the load test only ever targets loopback, not {base}"
    );
    let requests = env_number("LOAD_REQUESTS", 2000).min(100_000);
    let concurrency = env_number("LOAD_CONCURRENCY", 32).clamp(1, 256);
    // Users unique to this run, so that the listing check sees only this run's records.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let load = Arc::new(Load {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        users: (0..USERS).map(|u| format!("load-{run}-{u}")).collect(),
        stats: Mutex::default(),
    });

    let semaphore = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..requests {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let load = load.clone();
        tasks.spawn(async move {
            load.one(n).await;
            drop(permit);
        });
    }
    let finished = tokio::time::timeout(DEADLINE, async {
        while let Some(result) = tasks.join_next().await {
            result.expect("a load task panicked");
        }
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        finished.is_ok(),
        "the load did not finish within {DEADLINE:?}"
    );

    let mut lost = Vec::new();
    let reserved = load.stats.lock().unwrap().reserved.clone();
    for (user, files) in &reserved {
        let listed = load.listed(user).await.unwrap_or_else(|e| panic!("{e}"));
        lost.extend(
            files
                .iter()
                .filter(|(id, _)| !listed.contains(id))
                .map(|(id, _)| format!("{user}/{id}")),
        );
    }

    let stats = load.stats.lock().unwrap();
    let mut sorted = stats.latencies.clone();
    sorted.sort();
    let api_requests = sorted.len();
    println!(
        "requests: {api_requests} to the API and {} S3 uploads, concurrency {concurrency}, in {:.2} s",
        stats.s3_puts,
        elapsed.as_secs_f64()
    );
    println!(
        "throughput: {:.1} requests/s",
        (api_requests + stats.s3_puts) as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&sorted, 50.0).as_secs_f64() * 1e3,
        percentile(&sorted, 99.0).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    for (what, count) in &stats.statuses {
        println!("  {what}: {count}");
    }
    let reservations: usize = reserved.values().map(Vec::len).sum();
    println!(
        "reservations answered 201: {reservations}; missing from their owner's listing: {}",
        lost.len()
    );
    println!(
        "5xx or wrong answers: {}; transport errors: {}",
        stats.server_errors.len(),
        stats.transport_errors.len()
    );
    for line in stats
        .server_errors
        .iter()
        .chain(&stats.transport_errors)
        .chain(&lost)
        .take(20)
    {
        println!("  {line}");
    }
    let ok = stats.server_errors.is_empty()
        && stats.transport_errors.is_empty()
        && lost.is_empty()
        && reservations > 0;
    if !ok {
        println!("LOAD TEST FAILED");
        std::process::exit(1);
    }
    println!("load test passed");
}
