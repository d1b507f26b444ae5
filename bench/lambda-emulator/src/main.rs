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
//! Besides the Rust functions, the same route written as a team would otherwise write it: the
//! seed's Python handler (boto3, under awslambdaric) and a Node.js one (AWS SDK for JavaScript v3,
//! bundled with esbuild, under bench/node/runtime.mjs).
//!
//! Every function gets the same event (a download-url request for a seeded, available record in
//! the DynamoDB stand-in) and the same environment, cold runs interleaved so that a noisy
//! neighbour hits all of them alike. Usage: see `make bench`.

mod dynamodb_standin;
mod lambda_environment;
mod proc_readings;
mod report;
mod runs;

use std::collections::HashMap;
use std::path::PathBuf;

use dynamodb_standin::{OWNER, sdk_get_cpu, seed, start_dynamodb};
use presign_gate_test_support::HttpApiEvent;
use runs::{Cold, Function, Warm, cold_run, init_peers, warm_run};

type Result<T> = std::result::Result<T, String>;

fn main() {
    if let Err(e) = run() {
        eprintln!("lambda-emulator: {e}");
        std::process::exit(1);
    }
}

/// Starts and seeds the stand-in, measures every function, then prints the report.
fn run() -> Result<()> {
    let options = options()?;
    let dynamodb = start_dynamodb(&options.python, &options.python_dir)?;
    let id = seed(&dynamodb.endpoint)?;
    // The event every function is handed: the same builder as the tests'.
    let event = HttpApiEvent::new("GET", &format!("/files/{id}/download-url"))
        .caller(OWNER)
        .to_json()
        .to_string();
    let base_env = lambda_environment::base_env(&dynamodb.endpoint);
    let functions = functions(&options);

    println!(
        "lambda-emulator: {} cold runs each (interleaved), then {} warm rounds of 100 + {} invocations",
        options.cold_runs, options.warm_rounds, options.warm_invocations
    );

    // No network at init: the TCP peers of each function while it waits in its first `/next`.
    let mut peers = HashMap::new();
    for function in &functions {
        peers.insert(function.name, init_peers(function, &base_env)?);
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
    report::print(&functions, &peers, &colds, &warms, sdk_get);
    drop(dynamodb);
    Ok(())
}

/// The functions measured, in the order they run and are reported.
fn functions(options: &Options) -> Vec<Function> {
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
    functions.push(Function {
        name: "node-sdk-v3",
        program: options.node.clone(),
        args: vec![
            options.node_dir.join("runtime.mjs").display().to_string(),
            options.node_bundle.display().to_string(),
        ],
        dir: Some(options.node_dir.clone()),
        env: Vec::new(),
    });
    functions
}

/// The command line: `--name value` pairs (see `make bench-lambda`).
struct Options {
    api: PathBuf,
    api_mt: Option<PathBuf>,
    hello: PathBuf,
    hello_mt: Option<PathBuf>,
    python: PathBuf,
    python_dir: PathBuf,
    node: PathBuf,
    node_dir: PathBuf,
    node_bundle: PathBuf,
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
        node: path("node")?,
        node_dir: path("node-dir")?,
        node_bundle: path("node-bundle")?,
        cold_runs: number("cold-runs", 10)?,
        warm_invocations: number("warm-invocations", 1000)?,
        warm_rounds: number("warm-rounds", 3)?,
    })
}
