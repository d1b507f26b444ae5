//! The Lambda Runtime API on loopback (`/2018-06-01/runtime/invocation/next`, `…/response`,
//! `…/error`, `/runtime/init/error`), for running a function's real binary as Lambda runs it: the
//! bench harness measures it there, the tests read what it logs. HTTP/1.1 with keep-alive, std
//! only, so that its own work never shows up in the function's figures.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A reading taken once, when the function first asks for work (the bench's init CPU time).
pub type FirstNextProbe = Box<dyn FnOnce() -> Option<u64> + Send>;

/// What the Runtime API has seen of one function process, and the events it has yet to hand out.
#[derive(Default)]
pub struct State {
    /// Events waiting for a `/next`: (request id, body).
    pub queue: VecDeque<(String, String)>,
    /// Answers by request id: `Ok(response body)` or `Err(error body)`.
    pub answers: HashMap<String, Result<String, String>>,
    pub first_next: Option<Instant>,
    /// Taken at the first `/next` into `first_next_reading`.
    pub first_next_probe: Option<FirstNextProbe>,
    pub first_next_reading: Option<u64>,
    pub init_error: Option<String>,
    /// Set when the run is over, so that connection threads still waiting on `/next` go away.
    pub closed: bool,
}

/// The state shared by the connection threads and the harness, and a signal on every change.
#[derive(Default)]
pub struct Shared {
    state: Mutex<State>,
    pub changed: Condvar,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What Lambda sets in every function's process besides its region, credentials and the address
/// of the Runtime API (`AWS_LAMBDA_RUNTIME_API`), as `lambda_runtime` reads it at start.
pub fn lambda_environment(function_name: &str) -> Vec<(String, String)> {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("LANG", "C.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", function_name.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// A Runtime API on a free loopback port, served until dropped. Invocation ids are
/// `invocation-0`, `invocation-1`, … in the order the events are queued.
pub struct RuntimeApi {
    pub shared: Arc<Shared>,
    port: u16,
    next_id: AtomicUsize,
}

impl RuntimeApi {
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared::default());
        spawn_accept_loop(listener, Arc::clone(&shared));
        Ok(Self {
            shared,
            port,
            next_id: AtomicUsize::new(0),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Queues `event` for the next `/next` and returns its invocation id.
    pub fn queue(&self, event: &str) -> String {
        let id = format!(
            "invocation-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        self.shared
            .lock()
            .queue
            .push_back((id.clone(), event.to_owned()));
        self.shared.changed.notify_all();
        id
    }

    /// Waits up to `timeout` for the answer to `id`: the response body, or why there is none (an
    /// invocation or init error, or whatever `exited` reports, polled every 200 ms, when the
    /// function's process is gone).
    pub fn answer(
        &self,
        id: &str,
        timeout: Duration,
        mut exited: impl FnMut() -> Option<String>,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
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
                return Err(format!("no answer to {id} within {timeout:?}"));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, (deadline - now).min(Duration::from_millis(200)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if state.answers.contains_key(id) || state.init_error.is_some() {
                continue;
            }
            drop(state);
            if let Some(exit) = exited() {
                return Err(format!("function exited: {exit}"));
            }
            state = self.shared.lock();
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        // Wakes the accept loop so that it sees `closed` and ends.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// Serves the Runtime API on `listener` from a thread of its own, one thread per connection,
/// until `shared` is closed and a last connection wakes the accept loop to see it.
fn spawn_accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
                    state.first_next_reading =
                        state.first_next_probe.take().and_then(|probe| probe());
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
