//! Structured JSON logs, with every other crate's logging held to an allow-list of levels so that
//! no token, claim, URL, signature or credential can reach them whatever `RUST_LOG` says.

use tracing::Metadata;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterFn, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// This crate: its logs are written for CloudWatch and carry no secret at any level (tests/logs.rs
/// and tests/runtime_logs.rs check it), so `RUST_LOG` alone decides how much of it is shown.
const THIS_CRATE: &str = "presign_gate";

/// The most any other crate may log, unless [`VERIFIED_LEVELS`] names it. At debug and trace the
/// AWS SDK crates log canonical requests, credential scopes and request URIs, the HTTP and TLS
/// crates log connection details, and a crate added tomorrow is unread: warnings and errors only.
const DEFAULT_CAP: LevelFilter = LevelFilter::WARN;

/// Crates read (at the version in Cargo.lock) and found to log nothing sensitive down to the level
/// given, and no further.
const VERIFIED_LEVELS: &[(&str, LevelFilter)] = &[
    // lambda_runtime 1.5: at trace, the whole raw event ("raw JSON event received from Lambda":
    // the Authorization header, the JWT claims, the request body) and a streamed response's
    // headers. At debug and above: its polling mode, the invocation span (request id and X-Ray
    // trace id), and the handler's errors and panics.
    ("lambda_runtime", LevelFilter::DEBUG),
];

/// The most verbose level at which events and spans of `target` may ever be logged. Targets are
/// matched by their crate (the first `::` segment), exactly: `presign_gate_x` is another crate.
pub fn level_cap(target: &str) -> LevelFilter {
    let krate = target.split("::").next().unwrap_or(target);
    if krate == THIS_CRATE {
        return LevelFilter::TRACE;
    }
    VERIFIED_LEVELS
        .iter()
        .find(|(name, _)| *name == krate)
        .map_or(DEFAULT_CAP, |(_, cap)| *cap)
}

/// The allow-list as a filter of its own, ANDed with `RUST_LOG`'s: it looks at the callsite only
/// (target and level), so neither a crate or module directive (`aws_sigv4::sign=trace`) nor a
/// span-scoped one (`[request{caller}]=trace`) of `RUST_LOG` can lift a cap.
pub fn level_caps() -> FilterFn<impl Fn(&Metadata<'_>) -> bool> {
    filter_fn(|metadata| *metadata.level() <= level_cap(metadata.target()))
}

/// `RUST_LOG` (default `info`), parsed leniently: a directive that does not parse is ignored
/// rather than failing the cold start.
pub fn rust_log_filter(rust_log: Option<&str>) -> EnvFilter {
    EnvFilter::builder()
        .with_default_directive(tracing::Level::INFO.into())
        .parse_lossy(rust_log.unwrap_or("info"))
}

/// The JSON subscriber of the Lambda entry points: one object per line, with the request span's
/// fields (request id, caller, action, file id) on every event. What it writes is what both
/// `RUST_LOG` and [`level_caps`] allow.
pub fn subscriber<W>(writer: W, rust_log: Option<&str>) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(rust_log_filter(rust_log))
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
        .with(level_caps())
}

/// Installs [`subscriber`] on stdout, which Lambda sends to CloudWatch Logs, with `RUST_LOG`.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    // Fails only if a subscriber is already installed, in which case that one keeps working.
    let _ =
        tracing::subscriber::set_global_default(subscriber(std::io::stdout, rust_log.as_deref()));
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Emits events from several targets, at the top level and inside this crate's request span,
    /// under `rust_log`, and returns what the subscriber of the entry points wrote.
    fn logged_under(rust_log: &str) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = subscriber(move || writer.clone(), Some(rust_log));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "aws_sigv4", "from-sigv4");
            tracing::debug!(target: "aws_sigv4::http_request::sign", "from-sigv4-module");
            tracing::info!(target: "aws_smithy_runtime::client::orchestrator", "from-runtime");
            tracing::trace!(target: "lambda_runtime::layers::api_response", "from-raw-event");
            tracing::debug!(target: "presign_gate_lookalike", "from-lookalike");
            tracing::trace!(target: "some_new_crate", "unread-crate-trace");
            tracing::warn!(target: "some_new_crate", "unread-crate-warning");
            tracing::debug!(target: "lambda_runtime::runtime", "debug-from-lambda-runtime");
            tracing::debug!(target: "presign_gate::http", "from-us");
            let span = tracing::info_span!(target: "presign_gate::http", "request", caller = "c");
            span.in_scope(|| {
                tracing::trace!(target: "lambda_runtime::layers::api_response", "raw-in-span");
                tracing::trace!(target: "aws_sigv4", "sigv4-in-span");
                tracing::trace!(target: "presign_gate::http", "us-in-span");
            });
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn other_crates_stay_within_their_caps_whatever_rust_log_says() {
        // (RUST_LOG, whether it turns on this crate's trace events in the request span)
        for (rust_log, our_trace_in_span) in [
            ("trace", true),
            ("debug,aws_sigv4=trace", false),
            ("trace,aws_sigv4::http_request=trace", true),
            ("aws_smithy_runtime::client=debug,debug", false),
            (
                "lambda_runtime=trace,some_new_crate=trace,presign_gate_lookalike=trace,debug",
                false,
            ),
            // Span-scoped directives enable every target inside the span in an EnvFilter.
            ("[request]=trace,debug", true),
            ("[request{caller}]=trace,debug", true),
            ("[{caller=c}]=trace,debug", true),
        ] {
            let logged = logged_under(rust_log);
            for secret in [
                "from-sigv4",
                "from-runtime",
                "from-raw-event",
                "from-lookalike",
                "unread-crate-trace",
                "raw-in-span",
                "sigv4-in-span",
            ] {
                assert!(!logged.contains(secret), "{rust_log}: {secret} in {logged}");
            }
            for allowed in [
                "unread-crate-warning",
                "debug-from-lambda-runtime",
                "from-us",
            ] {
                assert!(
                    logged.contains(allowed),
                    "{rust_log}: {allowed} not in {logged}"
                );
            }
            assert_eq!(
                logged.contains("us-in-span"),
                our_trace_in_span,
                "{rust_log}: {logged}"
            );
        }
    }

    #[test]
    fn rust_log_still_quietens_everything() {
        let logged = logged_under("error");
        assert!(!logged.contains("unread-crate-warning"), "{logged}");
        assert!(!logged.contains("from-us"), "{logged}");
    }

    #[test]
    fn caps_go_by_the_whole_crate_name() {
        assert_eq!(level_cap("presign_gate"), LevelFilter::TRACE);
        assert_eq!(
            level_cap("presign_gate::http::identity"),
            LevelFilter::TRACE
        );
        assert_eq!(level_cap("presign_gate_test_support"), DEFAULT_CAP);
        assert_eq!(level_cap("lambda_runtime::runtime"), LevelFilter::DEBUG);
        assert_eq!(level_cap("lambda_runtimes"), DEFAULT_CAP);
        assert_eq!(level_cap("aws_sdk_s3::presigning"), LevelFilter::WARN);
        assert_eq!(level_cap(""), DEFAULT_CAP);
    }
}
