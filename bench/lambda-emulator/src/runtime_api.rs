//! The Lambda Runtime API on loopback (`/2018-06-01/runtime/invocation/next`, `…/response`,
//! `…/error`, `/runtime/init/error`): HTTP/1.1 with keep-alive, std only, so that its own work
//! never shows up in the function's figures.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Instant, SystemTime};

use crate::Result;
use crate::proc_readings::cpu_ns;

/// What the Runtime API has seen of one function process, and the events it has yet to hand out.
#[derive(Default)]
pub struct State {
    /// Events waiting for a `/next`: (request id, body).
    pub queue: VecDeque<(String, String)>,
    /// Answers by request id: `Ok(response body)` or `Err(error body)`.
    pub answers: HashMap<String, Result<String>>,
    pub first_next: Option<Instant>,
    pub init_cpu_ns: Option<u64>,
    pub pid: Option<u32>,
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

/// Serves the Runtime API on `listener` from a thread of its own, one thread per connection,
/// until `shared` is closed and a last connection wakes the accept loop to see it.
pub fn spawn_accept_loop(listener: TcpListener, shared: Arc<Shared>) {
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
