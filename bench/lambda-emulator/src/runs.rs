//! Running a function on its own Runtime API: a cold start, the TCP peers it has at init, and a
//! round of warm invocations.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use presign_gate_test_support::runtime_api::RuntimeApi;

use crate::Result;
use crate::proc_readings::{cpu_ns, status_kib, tcp_peers, thread_count};

const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// A function to measure: its program, and what it needs beyond the environment all share.
#[derive(Clone)]
pub struct Function {
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

/// A function's process and the Runtime API it polls, both ended on drop.
struct Process {
    child: Child,
    runtime: RuntimeApi,
    spawned: Instant,
}

impl Process {
    /// Starts `function` on a fresh Runtime API, with `first` queued (if any) before the spawn.
    fn start(
        function: &Function,
        base_env: &[(String, String)],
        first: Option<&str>,
    ) -> Result<Self> {
        let runtime = RuntimeApi::start().map_err(|e| e.to_string())?;
        // The first event is queued before the spawn (as `invocation-0`): the first `/next`
        // answers at once, as on a cold start that an invocation triggered.
        if let Some(event) = first {
            runtime.queue(event);
        }
        let mut command = Command::new(&function.program);
        command
            .args(&function.args)
            .env_clear()
            .envs(base_env.iter().cloned())
            .envs(function.env.iter().cloned())
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
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
        let pid = child.id();
        runtime.shared.lock().first_next_probe = Some(Box::new(move || cpu_ns(pid).ok()));
        Ok(Self {
            child,
            runtime,
            spawned,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the answer to `id`.
    fn answer(&mut self, id: &str) -> Result<String> {
        let child = &mut self.child;
        self.runtime.answer(id, INVOKE_TIMEOUT, || {
            child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| status.to_string())
        })
    }

    fn invoke(&mut self, event: &str) -> Result<String> {
        let id = self.runtime.queue(event);
        self.answer(&id)
    }
}

/// The process ends first, then the Runtime API (dropped with `runtime`).
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// One cold start.
pub struct Cold {
    pub init: Duration,
    pub init_cpu: Duration,
    pub first_response: Duration,
}

/// Starts the function with the event already queued, as an invocation that triggers a cold start
/// would, and times its init and its first response.
pub fn cold_run(function: &Function, base_env: &[(String, String)], event: &str) -> Result<Cold> {
    let mut process = Process::start(function, base_env, Some(event))?;
    let answer = process.answer("invocation-0")?;
    let first_response = process.spawned.elapsed();
    check_answer(function, &answer)?;
    let state = process.runtime.shared.lock();
    let first_next = state
        .first_next
        .ok_or("no /next before the first response")?;
    let cold = Cold {
        init: first_next - process.spawned,
        init_cpu: Duration::from_nanos(state.first_next_reading.unwrap_or(0)),
        first_response,
    };
    drop(state);
    Ok(cold)
}

/// Starts the function, waits for its first `/next`, and lists its TCP peers at that moment,
/// before it has been handed any event.
pub fn init_peers(function: &Function, base_env: &[(String, String)]) -> Result<Vec<String>> {
    let process = Process::start(function, base_env, None)?;
    let deadline = Instant::now() + INVOKE_TIMEOUT;
    while process.runtime.shared.lock().first_next.is_none() {
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
    let runtime = format!("port {}", process.runtime.port());
    Ok(tcp_peers(process.pid())
        .into_iter()
        .filter(|peer| *peer != runtime)
        .collect())
}

/// One round of warm invocations on one process.
pub struct Warm {
    pub cpu_per_invocation: Duration,
    pub wall_median: Duration,
    pub wall_p99: Duration,
    pub peak_rss_kib: u64,
    pub invocations: usize,
    pub threads: usize,
}

/// Starts the function, invokes it `warmup` times, then measures `measured` invocations.
pub fn warm_run(
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
    let threads_before = thread_count(pid);
    let cpu_before = cpu_ns(pid).map_err(|e| e.to_string())?;
    let mut walls = Vec::with_capacity(measured);
    for _ in 0..measured {
        let started = Instant::now();
        let answer = process.invoke(event)?;
        walls.push(started.elapsed());
        check_answer(function, &answer)?;
    }
    let cpu_after = cpu_ns(pid).map_err(|e| e.to_string())?;
    let threads_after = thread_count(pid);
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
