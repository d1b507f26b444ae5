//! A function's real binary started as Lambda starts it: an empty environment but Lambda's own
//! variables, its own Runtime API on loopback, stdout and stderr kept in files for the test to read
//! (tests/lambda_binary.rs: the debug build; tests/deployed_bootstrap.rs: the `bootstrap` that
//! deploys, under qemu where it is arm64).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::runtime_api::{RuntimeApi, lambda_environment};
use crate::standins::ChildGuard;

/// Generous: under qemu a cold start and the first SDK calls take seconds, not minutes.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

/// One function process and the Runtime API it polls.
pub struct FunctionProcess {
    child: ChildGuard,
    runtime: RuntimeApi,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl FunctionProcess {
    /// Starts `command` (the program and its arguments) with the environment Lambda gives the
    /// function `function_name`, then `settings`, and nothing of this process's environment.
    pub fn start<K, V>(
        mut command: Command,
        function_name: &str,
        settings: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let dir = tempfile::tempdir().expect("temporary directory");
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let runtime = RuntimeApi::start().expect("Runtime API on loopback");
        let child = command
            .env_clear()
            .envs(lambda_environment(function_name))
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .envs(settings)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start the {function_name} binary: {e}"));
        Self {
            child: ChildGuard(child),
            runtime,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// Hands `event` to the function and returns its answer (the response document) as sent.
    pub fn invoke(&mut self, event: &Value) -> Value {
        let id = self.runtime.queue(&event.to_string());
        let child = &mut self.child.0;
        let answer = self
            .runtime
            .answer(&id, INVOKE_TIMEOUT, || {
                child.try_wait().ok().flatten().map(|s| s.to_string())
            })
            .unwrap_or_else(|e| {
                panic!(
                    "{e}\nstdout: {}\nstderr: {}",
                    read(&self.stdout),
                    read(&self.stderr)
                )
            });
        serde_json::from_str(&answer).expect("JSON answer")
    }

    /// Hands an API Gateway event to an API function: the response's status and parsed body.
    pub fn request(&mut self, event: &Value) -> (u64, Value) {
        let response = self.invoke(event);
        let body = response["body"]
            .as_str()
            .map_or(Value::Null, |b| serde_json::from_str(b).expect("JSON body"));
        (response["statusCode"].as_u64().expect("statusCode"), body)
    }

    /// Waits for the process to end by itself (a failed cold start), at most the invocation
    /// timeout: its exit status, or a panic if it is still running.
    pub fn exit_status(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + INVOKE_TIMEOUT;
        loop {
            if let Some(status) = self.child.0.try_wait().expect("process status") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the function did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the function ever asked the Runtime API for an event.
    pub fn asked_for_work(&self) -> bool {
        self.runtime.shared.lock().first_next.is_some()
    }

    /// Ends the process and returns what it wrote to stdout and to stderr.
    pub fn stop(self) -> (String, String) {
        let FunctionProcess {
            child,
            stdout,
            stderr,
            ..
        } = self;
        drop(child);
        (read(&stdout), read(&stderr))
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
