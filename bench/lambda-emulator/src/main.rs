//! Cold-start and warm-invocation harness for Presign Gate (bench tooling, not product).
//!
//! A minimal Lambda Runtime API on loopback (`/2018-06-01/runtime/invocation/next`, `…/response`,
//! `…/error`, `/runtime/init/error`), written with std only so that its own work never shows up in
//! the function's figures. For each function it starts the process, hands it API Gateway HTTP API
//! (v2) events with JWT claims, and records:
//!
//! - init: spawn to the function's first `GET …/invocation/next`, and its own CPU time by then;
//! - first response: spawn to the response of the first invocation;
//! - warm CPU per invocation: the function's own on-CPU time, summed over all its threads from
//!   `/proc/<pid>/task/*/schedstat`, across many warm invocations, divided by their number;
//! - peak RSS: `VmHWM` from `/proc/<pid>/status` after at least 1,000 invocations.
//!
//! Every function gets the same event (a download-url request for a seeded, available record in
//! the DynamoDB stand-in) and the same environment, cold runs interleaved so that a noisy
//! neighbour hits all of them alike. Usage: see `make bench`.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use presign_gate::domain::{FileId, FileRecord, FileStatus, ObjectKey, OwnerId};
use presign_gate::store::{DynamoDbOwnershipStore, OwnershipStore};

const REGION: &str = "us-east-1";
const ACCESS_KEY: &str = "presign-gate-bench-key";
const SECRET_KEY: &str = "presign-gate-bench-secret";
const BUCKET: &str = "files";
const TABLE: &str = "file-records";
const OWNER: &str = "bench-user";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

type Result<T> = std::result::Result<T, String>;

// ---------------------------------------------------------------------------------------------
// The Runtime API.

#[derive(Default)]
struct State {
    /// Events waiting for a `/next`: (request id, body).
    queue: VecDeque<(String, String)>,
    /// Answers by request id: `Ok(response body)` or `Err(error body)`.
    answers: HashMap<String, Result<String>>,
    first_next: Option<Instant>,
    init_cpu_ns: Option<u64>,
    pid: Option<u32>,
    init_error: Option<String>,
    /// Set when the run is over, so that connection threads still waiting on `/next` go away.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct HttpRequest {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// One HTTP/1.1 request (keep-alive), with a `Content-Length` or chunked body. `None` at EOF.
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<HttpRequest>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(HttpRequest { method, path, body }))
}

fn write_response(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    stream.write_all(&message)
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn serve_connection(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    const PREFIX: &str = "/2018-06-01/runtime/";
    while let Some(request) = read_request(&mut reader)? {
        let route = request.path.strip_prefix(PREFIX).unwrap_or(&request.path);
        let accepted = br#"{"status":"OK"}"#;
        match (request.method.as_str(), route) {
            ("GET", "invocation/next") => {
                let mut state = shared.lock();
                if state.first_next.is_none() {
                    state.first_next = Some(Instant::now());
                    state.init_cpu_ns = state.pid.and_then(|pid| cpu_ns(pid).ok());
                }
                let (id, event) = loop {
                    if state.closed {
                        return Ok(());
                    }
                    if let Some(next) = state.queue.pop_front() {
                        break next;
                    }
                    state = shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                };
                drop(state);
                let deadline = (epoch_ms() + 300_000).to_string();
                let headers = [
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
                            .to_owned(),
                    ),
                ];
                write_response(&mut writer, "200 OK", &headers, event.as_bytes())?;
            }
            ("POST", "init/error") => {
                shared.lock().init_error = Some(String::from_utf8_lossy(&request.body).into());
                shared.changed.notify_all();
                write_response(&mut writer, "202 Accepted", &[], accepted)?;
            }
            ("POST", route) if route.starts_with("invocation/") => {
                let rest = &route["invocation/".len()..];
                let (id, outcome) = rest.split_once('/').unwrap_or((rest, ""));
                let body = String::from_utf8_lossy(&request.body).into_owned();
                let answer = if outcome == "response" {
                    Ok(body)
                } else {
                    Err(body)
                };
                shared.lock().answers.insert(id.to_owned(), answer);
                shared.changed.notify_all();
                write_response(&mut writer, "202 Accepted", &[], accepted)?;
            }
            _ => write_response(&mut writer, "404 Not Found", &[], b"{}")?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// /proc readings.

/// The process's own on-CPU time so far, in nanoseconds, summed over its live threads.
fn cpu_ns(pid: u32) -> std::io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| tasks.count())
}

/// A `kB` field of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// The remote ends of the process's TCP sockets: at the first `/next`, anything but the Runtime
/// API would be a network call made during init.
fn tcp_peers(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    Some(
                        target
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut peers = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && inodes.iter().any(|inode| inode == fields[9]) {
                // rem_address is HEX_IP:HEX_PORT; the port is what tells the peers apart here.
                let port = fields[2]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    .unwrap_or(0);
                if port != 0 {
                    peers.push(format!("port {port}"));
                }
            }
        }
    }
    peers
}

// ---------------------------------------------------------------------------------------------
// Running a function.

#[derive(Clone)]
struct Function {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
}

struct Process {
    child: Child,
    shared: Arc<Shared>,
    spawned: Instant,
    runtime_port: u16,
    next_id: AtomicUsize,
}

impl Process {
    /// Starts `function` on a fresh Runtime API, with `first` queued (if any) before the spawn.
    fn start(
        function: &Function,
        base_env: &[(String, String)],
        first: Option<&str>,
    ) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        let runtime_port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let shared = Arc::new(Shared::default());
        {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { break };
                    if shared.lock().closed {
                        break;
                    }
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || {
                        let _ = serve_connection(stream, shared);
                    });
                }
            });
        }
        // The first event is queued before the spawn: the first `/next` answers at once, as on
        // a cold start that an invocation triggered.
        if let Some(event) = first {
            shared
                .lock()
                .queue
                .push_back(("invocation-0".to_owned(), event.to_owned()));
        }
        let mut command = Command::new(&function.program);
        command
            .args(&function.args)
            .env_clear()
            .envs(base_env.iter().cloned())
            .envs(function.env.iter().cloned())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("127.0.0.1:{runtime_port}"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(dir) = &function.dir {
            command.current_dir(dir);
        }
        let spawned = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("{}: {e}", function.program.display()))?;
        shared.lock().pid = Some(child.id());
        Ok(Self {
            child,
            shared,
            spawned,
            runtime_port,
            next_id: AtomicUsize::new(1),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the answer to `id`.
    fn answer(&mut self, id: &str) -> Result<String> {
        let deadline = Instant::now() + INVOKE_TIMEOUT;
        let mut state = self.shared.lock();
        loop {
            if let Some(answer) = state.answers.remove(id) {
                return answer.map_err(|e| format!("invocation error: {e}"));
            }
            if let Some(error) = &state.init_error {
                return Err(format!("init error: {error}"));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("no answer to {id} within {INVOKE_TIMEOUT:?}"));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, (deadline - now).min(Duration::from_millis(200)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if state.answers.contains_key(id) {
                continue;
            }
            drop(state);
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("function exited with {status}"));
            }
            state = self.shared.lock();
        }
    }

    fn invoke(&mut self, event: &str) -> Result<String> {
        let id = format!(
            "invocation-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        self.shared
            .lock()
            .queue
            .push_back((id.clone(), event.to_owned()));
        self.shared.changed.notify_all();
        self.answer(&id)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        // Wakes the accept loop so that it sees `closed` and ends.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.runtime_port));
    }
}

/// The function answered the download-url request as the API would (or, for the floor, at all).
fn check_answer(function: &Function, answer: &str) -> Result<()> {
    let value: serde_json::Value =
        serde_json::from_str(answer).map_err(|e| format!("{}: not JSON: {e}", function.name))?;
    if value["statusCode"] != 200 {
        return Err(format!("{}: unexpected answer {answer}", function.name));
    }
    if !function.name.starts_with("hello")
        && !value["body"]
            .as_str()
            .is_some_and(|body| body.contains("X-Amz-Signature"))
    {
        return Err(format!("{}: no presigned URL in {answer}", function.name));
    }
    Ok(())
}

struct Cold {
    init: Duration,
    init_cpu: Duration,
    first_response: Duration,
    peers_at_init: Vec<String>,
}

fn cold_run(function: &Function, base_env: &[(String, String)], event: &str) -> Result<Cold> {
    let mut process = Process::start(function, base_env, Some(event))?;
    let answer = process.answer("invocation-0")?;
    let first_response = process.spawned.elapsed();
    check_answer(function, &answer)?;
    let state = process.shared.lock();
    let first_next = state
        .first_next
        .ok_or("no /next before the first response")?;
    let cold = Cold {
        init: first_next - process.spawned,
        init_cpu: Duration::from_nanos(state.init_cpu_ns.unwrap_or(0)),
        first_response,
        peers_at_init: Vec::new(),
    };
    drop(state);
    Ok(cold)
}

/// Starts the function, waits for its first `/next`, and lists its TCP peers at that moment,
/// before it has been handed any event.
fn init_peers(function: &Function, base_env: &[(String, String)]) -> Result<Cold> {
    let process = Process::start(function, base_env, None)?;
    let deadline = Instant::now() + INVOKE_TIMEOUT;
    while process.shared.lock().first_next.is_none() {
        if Instant::now() > deadline {
            return Err(format!(
                "{}: no /next within {INVOKE_TIMEOUT:?}",
                function.name
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let it settle in the long poll, then look.
    std::thread::sleep(Duration::from_millis(100));
    let runtime = format!("port {}", process.runtime_port);
    let peers = tcp_peers(process.pid())
        .into_iter()
        .filter(|peer| *peer != runtime)
        .collect();
    Ok(Cold {
        init: Duration::ZERO,
        init_cpu: Duration::ZERO,
        first_response: Duration::ZERO,
        peers_at_init: peers,
    })
}

struct Warm {
    cpu_per_invocation: Duration,
    wall_median: Duration,
    wall_p99: Duration,
    peak_rss_kib: u64,
    invocations: usize,
    threads: usize,
}

fn warm_run(
    function: &Function,
    base_env: &[(String, String)],
    event: &str,
    warmup: usize,
    measured: usize,
) -> Result<Warm> {
    let mut process = Process::start(function, base_env, Some(event))?;
    check_answer(function, &process.answer("invocation-0")?)?;
    for _ in 0..warmup {
        process.invoke(event)?;
    }
    let pid = process.pid();
    let threads_before = threads(pid);
    let cpu_before = cpu_ns(pid).map_err(|e| e.to_string())?;
    let mut walls = Vec::with_capacity(measured);
    for _ in 0..measured {
        let started = Instant::now();
        let answer = process.invoke(event)?;
        walls.push(started.elapsed());
        check_answer(function, &answer)?;
    }
    let cpu_after = cpu_ns(pid).map_err(|e| e.to_string())?;
    let threads_after = threads(pid);
    if threads_after < threads_before {
        // A thread that ended took its CPU time with it: the figure would be too low.
        return Err(format!(
            "{}: threads went from {threads_before} to {threads_after} during the measurement",
            function.name
        ));
    }
    walls.sort();
    Ok(Warm {
        cpu_per_invocation: Duration::from_nanos((cpu_after - cpu_before) / measured as u64),
        wall_median: walls[walls.len() / 2],
        wall_p99: walls[walls.len() * 99 / 100],
        peak_rss_kib: status_kib(pid, "VmHWM")?,
        invocations: 1 + warmup + measured,
        threads: threads_after,
    })
}

// ---------------------------------------------------------------------------------------------
// The DynamoDB stand-in and its record.

/// moto's DynamoDB, served with HTTP/1.1 keep-alive as real DynamoDB is (see
/// `bench/python/dynamodb_standin.py`): `moto_server` closes every connection, which would charge
/// each warm invocation a TCP connect and close that it never pays in Lambda.
struct DynamoDbStandIn {
    child: Child,
    endpoint: String,
}

impl Drop for DynamoDbStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dynamodb(python: &Path, python_dir: &Path) -> Result<DynamoDbStandIn> {
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
fn sdk_get_cpu(endpoint: &str, id: FileId, calls: usize) -> Result<Duration> {
    let thread_cpu_ns = || -> Result<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .map_err(|e| e.to_string())?
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse().ok())
            .ok_or_else(|| "unreadable /proc/thread-self/schedstat".to_owned())
    };
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
fn seed(endpoint: &str) -> Result<FileId> {
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
            purge_at: None,
            etag: None,
            uploaded_at: None,
        };
        store.reserve(&record).await.map_err(|e| e.to_string())?;
        store
            .mark_available(&owner, id, "\"bench-etag\"", now)
            .await
            .map_err(|e| e.to_string())?;
        Ok(id)
    })
}

/// API Gateway HTTP API (payload 2.0) event for `GET /files/{id}/download-url`, whose JWT
/// authorizer verified `OWNER`.
fn download_url_event(id: FileId) -> String {
    let path = format!("/files/{id}/download-url");
    serde_json::json!({
        "version": "2.0",
        "routeKey": "GET /files/{id}/download-url",
        "rawPath": path,
        "rawQueryString": "",
        "headers": { "host": "api.example.com", "user-agent": "bench" },
        "pathParameters": { "id": id.to_string() },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "authorizer": { "jwt": { "claims": { "sub": OWNER }, "scopes": null } },
            "domainName": "api.example.com",
            "http": { "method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "bench" },
            "requestId": "bench-request",
            "routeKey": "GET /files/{id}/download-url",
            "stage": "$default",
            "time": "29/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_000_000_000u64,
        },
        "isBase64Encoded": false,
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------

struct Options {
    api: PathBuf,
    api_mt: Option<PathBuf>,
    hello: PathBuf,
    hello_mt: Option<PathBuf>,
    python: PathBuf,
    python_dir: PathBuf,
    cold_runs: usize,
    warm_invocations: usize,
    warm_rounds: usize,
}

fn options() -> Result<Options> {
    let mut values: HashMap<String, String> = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let name = name
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {name}"))?
            .to_owned();
        let value = args
            .next()
            .ok_or_else(|| format!("--{name} needs a value"))?;
        values.insert(name, value);
    }
    let path = |name: &str| -> Result<PathBuf> {
        values
            .get(name)
            .map(PathBuf::from)
            .ok_or_else(|| format!("--{name} is required"))
    };
    let number = |name: &str, default: usize| -> Result<usize> {
        values.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("--{name} {v}"))
        })
    };
    Ok(Options {
        api: path("api")?,
        api_mt: path("api-mt").ok(),
        hello: path("hello")?,
        hello_mt: path("hello-mt").ok(),
        python: path("python")?,
        python_dir: path("python-dir")?,
        cold_runs: number("cold-runs", 10)?,
        warm_invocations: number("warm-invocations", 1000)?,
        warm_rounds: number("warm-rounds", 3)?,
    })
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("lambda-emulator: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let options = options()?;
    let dynamodb = start_dynamodb(&options.python, &options.python_dir)?;
    let id = seed(&dynamodb.endpoint)?;
    let event = download_url_event(id);

    // What Lambda gives every function, plus the function's own settings: identical for all.
    let base_env: Vec<(String, String)> = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LANG", "C.UTF-8"),
        ("TZ", ":UTC"),
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", "bench-session-token"),
        ("FILES_BUCKET", BUCKET),
        ("FILES_TABLE", TABLE),
        ("RUST_LOG", "info"),
        // An unused port: an instance-metadata probe would fail here rather than go anywhere.
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([(
        "AWS_ENDPOINT_URL_DYNAMODB".to_owned(),
        dynamodb.endpoint.clone(),
    )])
    .collect();

    let rust = |name: &'static str, program: &PathBuf| Function {
        name,
        program: program.clone(),
        args: Vec::new(),
        dir: None,
        env: Vec::new(),
    };
    let mut functions = vec![rust("api", &options.api), rust("hello", &options.hello)];
    if let Some(path) = &options.api_mt {
        functions.push(rust("api-mt", path));
    }
    if let Some(path) = &options.hello_mt {
        functions.push(rust("hello-mt", path));
    }
    functions.push(Function {
        name: "python-seed",
        program: options.python.clone(),
        args: vec![
            "-m".into(),
            "awslambdaric".into(),
            "seed_handler.handler".into(),
        ],
        dir: Some(options.python_dir.clone()),
        env: vec![(
            "PYTHONPATH".into(),
            options.python_dir.display().to_string(),
        )],
    });

    println!(
        "lambda-emulator: {} cold runs each (interleaved), then {} warm rounds of 100 + {} invocations",
        options.cold_runs, options.warm_rounds, options.warm_invocations
    );

    // No network at init: the TCP peers of each function while it waits in its first `/next`.
    let mut peers = HashMap::new();
    for function in &functions {
        peers.insert(
            function.name,
            init_peers(function, &base_env)?.peers_at_init,
        );
    }

    let mut colds: HashMap<&str, Vec<Cold>> = HashMap::new();
    for _ in 0..options.cold_runs {
        for function in &functions {
            let cold = cold_run(function, &base_env, &event)?;
            colds.entry(function.name).or_default().push(cold);
        }
    }
    let mut warms: HashMap<&str, Vec<Warm>> = HashMap::new();
    for _ in 0..options.warm_rounds {
        for function in &functions {
            let warm = warm_run(function, &base_env, &event, 100, options.warm_invocations)?;
            warms.entry(function.name).or_default().push(warm);
        }
    }

    let sdk_get = sdk_get_cpu(&dynamodb.endpoint, id, options.warm_invocations)?;

    struct Summary {
        init: Duration,
        init_min: Duration,
        init_cpu: Duration,
        first_response: Duration,
        cpu: Duration,
        wall: Duration,
        wall_p99: Duration,
        rss_kib: u64,
        threads: usize,
        invocations: usize,
    }
    let mut summaries = HashMap::new();
    println!();
    println!(
        "| function | init (median) | init (min) | init CPU | first response | warm CPU/invocation | warm round trip (median / p99) | peak RSS (VmHWM) | threads | TCP peers at init |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for function in &functions {
        let cold = &colds[function.name];
        let warm = &warms[function.name];
        let summary = Summary {
            init: median(cold.iter().map(|c| c.init).collect()),
            init_min: cold.iter().map(|c| c.init).min().unwrap_or_default(),
            init_cpu: median(cold.iter().map(|c| c.init_cpu).collect()),
            first_response: median(cold.iter().map(|c| c.first_response).collect()),
            cpu: median(warm.iter().map(|w| w.cpu_per_invocation).collect()),
            wall: median(warm.iter().map(|w| w.wall_median).collect()),
            wall_p99: median(warm.iter().map(|w| w.wall_p99).collect()),
            rss_kib: warm.iter().map(|w| w.peak_rss_kib).max().unwrap_or(0),
            threads: warm.iter().map(|w| w.threads).max().unwrap_or(0),
            invocations: warm.iter().map(|w| w.invocations).min().unwrap_or(0),
        };
        let peers = &peers[function.name];
        println!(
            "| {} | {} | {} | {} | {} | {} | {} / {} | {:.1} MiB after {} | {} | {} |",
            function.name,
            ms(summary.init),
            ms(summary.init_min),
            ms(summary.init_cpu),
            ms(summary.first_response),
            us(summary.cpu),
            us(summary.wall),
            us(summary.wall_p99),
            summary.rss_kib as f64 / 1024.0,
            summary.invocations,
            summary.threads,
            if peers.is_empty() {
                "none".to_owned()
            } else {
                peers.join(", ")
            },
        );
        summaries.insert(function.name, summary);
    }
    // Per-run figures, so that noise can be judged.
    println!();
    for function in &functions {
        let inits: Vec<String> = colds[function.name].iter().map(|c| ms(c.init)).collect();
        let cpus: Vec<String> = warms[function.name]
            .iter()
            .map(|w| us(w.cpu_per_invocation))
            .collect();
        println!(
            "{}: init per run [{}]; warm CPU per round [{}]",
            function.name,
            inits.join(", "),
            cpus.join(", ")
        );
    }

    let api = &summaries["api"];
    let hello = &summaries["hello"];
    let python = &summaries["python-seed"];
    let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
    println!();
    println!("Budgets (ratios of medians from this run):");
    let cold_vs_hello = ratio(api.init, hello.init);
    let cold_vs_python = ratio(python.init, api.init);
    let cpu_vs_hello = ratio(api.cpu, hello.cpu);
    let cpu_vs_python = ratio(python.cpu, api.cpu);
    let rss_mib = api.rss_kib as f64 / 1024.0;
    println!(
        "- cold start: api init = {cold_vs_hello:.2}x hello (budget <= 2x): {}",
        verdict(cold_vs_hello <= 2.0)
    );
    println!(
        "- cold start: python init = {cold_vs_python:.1}x api (budget >= 40x): {}",
        verdict(cold_vs_python >= 40.0)
    );
    println!(
        "- first response: api {} vs hello {} vs python {} ({:.1}x faster than python)",
        ms(api.first_response),
        ms(hello.first_response),
        ms(python.first_response),
        ratio(python.first_response, api.first_response)
    );
    println!(
        "- warm CPU: api = {cpu_vs_hello:.2}x hello per invocation (budget <= 2.5x): {}",
        verdict(cpu_vs_hello <= 2.5)
    );
    println!(
        "- warm CPU: python = {cpu_vs_python:.1}x api per invocation (budget >= 5x): {}",
        verdict(cpu_vs_python >= 5.0)
    );
    println!(
        "- the SDK alone: one GetItem through the product's store costs {} CPU here ({:.2}x hello's \
         whole invocation); hello + that call = {:.2}x hello, python / (hello + that call) = {:.1}x",
        us(sdk_get),
        ratio(sdk_get, hello.cpu),
        ratio(hello.cpu + sdk_get, hello.cpu),
        ratio(python.cpu, hello.cpu + sdk_get)
    );
    println!(
        "- peak RSS: api {rss_mib:.1} MiB after {} invocations (budget <= 24 MiB; python {:.1} MiB): {}",
        api.invocations,
        python.rss_kib as f64 / 1024.0,
        verdict(rss_mib <= 24.0)
    );
    println!(
        "- no network at init: api's TCP peers while waiting for its first event: {}",
        if peers["api"].is_empty() {
            "none but the Runtime API: MET".to_owned()
        } else {
            format!("{}: MISSED", peers["api"].join(", "))
        }
    );
    for (mt_name, ct_name) in [("api-mt", "api"), ("hello-mt", "hello")] {
        if let (Some(mt), Some(ct)) = (summaries.get(mt_name), summaries.get(ct_name)) {
            println!(
                "- tokio flavour: {ct_name} multi_thread / current_thread: init {:.2}x, warm CPU {:.2}x, peak RSS {:.2}x",
                ratio(mt.init, ct.init),
                ratio(mt.cpu, ct.cpu),
                mt.rss_kib as f64 / ct.rss_kib.max(1) as f64
            );
        }
    }
    drop(dynamodb);
    Ok(())
}
