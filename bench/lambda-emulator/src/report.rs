//! The report: a table of medians per function, the per-run figures behind them, and the budgets
//! as ratios between functions measured in the same run.

use std::collections::HashMap;
use std::time::Duration;

use crate::runs::{Cold, Function, Warm};

/// A function's figures over all its runs.
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

impl Summary {
    fn of(cold: &[Cold], warm: &[Warm]) -> Self {
        Self {
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
        }
    }
}

/// Prints the whole report for `functions` to stdout.
pub fn print(
    functions: &[Function],
    peers: &HashMap<&str, Vec<String>>,
    colds: &HashMap<&str, Vec<Cold>>,
    warms: &HashMap<&str, Vec<Warm>>,
    sdk_get: Duration,
) {
    let summaries = print_table(functions, peers, colds, warms);
    print_per_run(functions, colds, warms);
    print_budgets(&summaries, peers, sdk_get);
}

/// One row per function, and their summaries for the budgets.
fn print_table<'a>(
    functions: &'a [Function],
    peers: &HashMap<&str, Vec<String>>,
    colds: &HashMap<&str, Vec<Cold>>,
    warms: &HashMap<&str, Vec<Warm>>,
) -> HashMap<&'a str, Summary> {
    let mut summaries = HashMap::new();
    println!();
    println!(
        "| function | init (median) | init (min) | init CPU | first response | warm CPU/invocation | warm round trip (median / p99) | peak RSS (VmHWM) | threads | TCP peers at init |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for function in functions {
        let summary = Summary::of(&colds[function.name], &warms[function.name]);
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
    summaries
}

/// Per-run figures, so that noise can be judged.
fn print_per_run(
    functions: &[Function],
    colds: &HashMap<&str, Vec<Cold>>,
    warms: &HashMap<&str, Vec<Warm>>,
) {
    println!();
    for function in functions {
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
}

/// The budgets, as ratios of medians from this run.
fn print_budgets(
    summaries: &HashMap<&str, Summary>,
    peers: &HashMap<&str, Vec<String>>,
    sdk_get: Duration,
) {
    let api = &summaries["api"];
    let hello = &summaries["hello"];
    let python = &summaries["python-seed"];
    let node = &summaries["node-sdk-v3"];
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
        "- first response: api {} vs hello {} vs python {} ({:.1}x faster than python) vs node {} \
         ({:.1}x faster than node)",
        ms(api.first_response),
        ms(hello.first_response),
        ms(python.first_response),
        ratio(python.first_response, api.first_response),
        ms(node.first_response),
        ratio(node.first_response, api.first_response)
    );
    println!(
        "- Node.js (SDK v3, esbuild bundle): init {:.1}x api, warm CPU {:.1}x api per invocation, \
         peak RSS {:.1} MiB",
        ratio(node.init, api.init),
        ratio(node.cpu, api.cpu),
        node.rss_kib as f64 / 1024.0
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
