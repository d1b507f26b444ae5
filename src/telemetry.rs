//! Structured JSON logs, with the SDK's own logging capped so that no signing material can reach
//! them whatever `RUST_LOG` says.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;
use tracing_subscriber::fmt::MakeWriter;

/// At debug level and below, these crates log canonical requests, credential scopes and request
/// URIs. Their caps are applied after `RUST_LOG`, so they always win.
const SENSITIVE_TARGET_CAPS: &[&str] = &[
    "aws_sigv4=warn",
    "aws_runtime=warn",
    "aws_smithy_runtime=warn",
    "aws_smithy_runtime_api=warn",
    "aws_smithy_http_client=warn",
    "aws_config=warn",
    "aws_sdk_s3=warn",
    "aws_sdk_dynamodb=warn",
    "hyper=warn",
    "hyper_util=warn",
    "rustls=warn",
    "h2=warn",
];

/// `RUST_LOG` (default `info`), with the caps above applied on top. Directives of `RUST_LOG` that
/// name a capped crate or one of its modules are dropped first: a more specific directive such as
/// `aws_sigv4::sign=trace` would otherwise win over the cap.
pub fn log_filter(rust_log: Option<&str>) -> EnvFilter {
    let capped_crate = |directive: &str| {
        SENSITIVE_TARGET_CAPS.iter().any(|cap| {
            let name = cap.split('=').next().unwrap_or(cap);
            directive.trim_start().starts_with(name)
        })
    };
    let user: Vec<&str> = rust_log
        .unwrap_or("info")
        .split(',')
        .filter(|directive| !capped_crate(directive))
        .collect();
    let mut filter = EnvFilter::builder()
        .with_default_directive(tracing::Level::INFO.into())
        .parse_lossy(user.join(","));
    for cap in SENSITIVE_TARGET_CAPS {
        if let Ok(directive) = cap.parse::<Directive>() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// The JSON subscriber of the Lambda entry points: one object per line, with the request span's
/// fields (request id, caller, action, file id) on every event.
pub fn subscriber<W>(writer: W, rust_log: Option<&str>) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(log_filter(rust_log))
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
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

    /// Emits one debug event from each target under `rust_log` and returns what was written.
    fn logged_under(rust_log: &str) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(log_filter(Some(rust_log)))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "aws_sigv4", "from-sigv4");
            tracing::debug!(target: "aws_sigv4::http_request::sign", "from-sigv4-module");
            tracing::info!(target: "aws_smithy_runtime::client::orchestrator", "from-runtime");
            tracing::debug!(target: "presign_gate::http", "from-us");
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn signing_crates_stay_quiet_whatever_rust_log_says() {
        for rust_log in [
            "trace",
            "debug,aws_sigv4=trace",
            "trace,aws_sigv4::http_request=trace",
            "aws_smithy_runtime::client=debug,debug",
        ] {
            let logged = logged_under(rust_log);
            assert!(!logged.contains("from-sigv4"), "{rust_log}: {logged}");
            assert!(!logged.contains("from-runtime"), "{rust_log}: {logged}");
            assert!(logged.contains("from-us"), "{rust_log}: {logged}");
        }
    }
}
