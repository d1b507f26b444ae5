//! The function's settings, read from the environment once at cold start and validated there, so
//! a misconfigured deployment fails its first invocation with a clear message instead of
//! misbehaving later.

#[cfg(feature = "dev-identity")]
use lambda_http::http::HeaderName;

use std::time::Duration;

use crate::domain::{
    DEFAULT_MULTIPART_THRESHOLD_BYTES, ExpiryPolicy, LinkPolicy, MAX_OBJECT_SIZE,
    MAX_SINGLE_PUT_SIZE, QuotaLimits, UploadPolicy,
};
use crate::service::DEFAULT_MULTIPART_EXPIRY;

/// The longest `MULTIPART_EXPIRY_SECONDS`: the bucket's lifecycle rule aborts incomplete
/// multipart uploads one day after they start (S3 counts whole days, rounded up to the next
/// midnight UTC), and a reservation must lapse before S3 can abort its upload.
pub const MAX_MULTIPART_EXPIRY_SECS: u64 = 24 * 3600;

const DEFAULT_ALLOWED_CONTENT_TYPES: &str =
    "image/jpeg,image/png,image/gif,image/webp,application/pdf,text/plain";

#[derive(Clone, Debug)]
pub struct Config {
    pub bucket: String,
    pub table: String,
    pub region: String,
    pub expiry: ExpiryPolicy,
    pub uploads: UploadPolicy,
    /// Per-owner limits (`QUOTA_MAX_PENDING_UPLOADS`, `QUOTA_MAX_BYTES`).
    pub quotas: QuotaLimits,
    /// How long a multipart reservation takes part URLs (`MULTIPART_EXPIRY_SECONDS`).
    pub multipart_expiry: Duration,
    /// `LINK_MAX_SECONDS` and `QUOTA_MAX_LIVE_LINKS`.
    pub links: LinkPolicy,
    /// Path-style S3 URLs, for stand-ins on a bare host:port.
    pub force_path_style: bool,
    /// `SCAN_UPLOADS`: a confirmed upload waits in `scanning` for the malware scanner's verdict
    /// (the template sets it from `ScanUploads`; absent means no scanning, as outside AWS).
    pub scan_uploads: bool,
    /// Local development only (cargo feature `dev-identity`, which `make local` enables): a
    /// request header that names the caller when no authorizer ran. A build without the feature
    /// has no such setting, and refuses to start when `DEV_USER_HEADER` is set.
    #[cfg(feature = "dev-identity")]
    pub dev_user_header: Option<HeaderName>,
    /// Which certificate authorities the SDK clients trust.
    pub trust_roots: TrustRoots,
}

/// The roots of trust of the HTTPS connections to AWS (`TLS_TRUST_ROOTS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrustRoots {
    /// `amazon`: only Amazon Trust Services, the authority of every AWS endpoint the function
    /// calls. Nothing to load from disk at cold start.
    #[default]
    AmazonTrustServices,
    /// `system`: the operating system's certificate store, for endpoints whose certificates chain
    /// elsewhere (an HTTPS proxy or stand-in with its own authority).
    System,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(Vec<String>);

impl ConfigError {
    /// Both settings read, or every problem of either: a function with settings of its own still
    /// reports all of its problems in one cold start.
    pub fn both<A, B>(first: Result<A, Self>, second: Result<B, Self>) -> Result<(A, B), Self> {
        match (first, second) {
            (Ok(first), Ok(second)) => Ok((first, second)),
            (first, second) => Err(Self(
                first
                    .err()
                    .into_iter()
                    .chain(second.err())
                    .flat_map(|e| e.0)
                    .collect(),
            )),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads every setting through `lookup` and reports all problems at once.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut required = |name: &str, what: &str| {
            get(name).unwrap_or_else(|| {
                problems.push(format!("{name} must be set to {what}"));
                String::new()
            })
        };
        let bucket = required("FILES_BUCKET", "the S3 bucket that holds the files");
        let table = required("FILES_TABLE", "the DynamoDB table of ownership records");
        let region = get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION"));
        if region.is_none() {
            problems.push("AWS_REGION must be set (Lambda sets it)".into());
        }

        let mut number = |name: &str, default: u64| match get(name) {
            None => default,
            Some(text) => text.trim().parse().unwrap_or_else(|_| {
                problems.push(format!("{name} must be a whole number, got {text:?}"));
                default
            }),
        };
        let ttl = number("URL_TTL_SECONDS", 300);
        let ttl_max = number("URL_TTL_MAX_SECONDS", 900);
        let max_upload_bytes = number("MAX_UPLOAD_BYTES", 100 * 1024 * 1024);
        let defaults = QuotaLimits::default();
        let max_pending_uploads = number(
            "QUOTA_MAX_PENDING_UPLOADS",
            defaults.max_pending_uploads.into(),
        );
        let max_bytes = number("QUOTA_MAX_BYTES", defaults.max_bytes);
        let multipart_threshold = number(
            "MULTIPART_THRESHOLD_BYTES",
            DEFAULT_MULTIPART_THRESHOLD_BYTES,
        );
        let multipart_expiry_secs = number(
            "MULTIPART_EXPIRY_SECONDS",
            DEFAULT_MULTIPART_EXPIRY.as_secs(),
        );
        let link_defaults = LinkPolicy::default();
        let link_max_secs = number("LINK_MAX_SECONDS", link_defaults.max_lifetime.as_secs());
        let max_live_links = number("QUOTA_MAX_LIVE_LINKS", link_defaults.max_live_links.into());

        let expiry = ExpiryPolicy::new(ttl, ttl_max)
            .map_err(|e| problems.push(format!("URL_TTL_SECONDS / URL_TTL_MAX_SECONDS: {e}")))
            .ok();
        if !(1..=MAX_OBJECT_SIZE).contains(&max_upload_bytes) {
            problems.push(format!(
                "MAX_UPLOAD_BYTES must be from 1 to {MAX_OBJECT_SIZE} (5 TiB, S3's largest object), \
                 got {max_upload_bytes}"
            ));
        }
        if multipart_threshold > MAX_SINGLE_PUT_SIZE {
            problems.push(format!(
                "MULTIPART_THRESHOLD_BYTES must not exceed {MAX_SINGLE_PUT_SIZE} (5 GiB, the largest \
                 single PUT), got {multipart_threshold}"
            ));
        }
        if !(60..=MAX_MULTIPART_EXPIRY_SECS).contains(&multipart_expiry_secs) {
            problems.push(format!(
                "MULTIPART_EXPIRY_SECONDS must be from 60 to {MAX_MULTIPART_EXPIRY_SECS} (the \
                 bucket's lifecycle rule aborts incomplete uploads after a day), got \
                 {multipart_expiry_secs}"
            ));
        }
        let multipart_expiry = Duration::from_secs(multipart_expiry_secs);
        let ceiling = QuotaLimits::MAX_PENDING_UPLOADS_SETTING;
        let max_pending_uploads = u32::try_from(max_pending_uploads)
            .ok()
            .filter(|n| (1..=ceiling).contains(n))
            .unwrap_or_else(|| {
                problems.push(format!(
                    "QUOTA_MAX_PENDING_UPLOADS must be from 1 to {ceiling}, got {max_pending_uploads}"
                ));
                defaults.max_pending_uploads
            });
        if max_bytes < max_upload_bytes {
            problems.push(format!(
                "QUOTA_MAX_BYTES ({max_bytes}) must be at least MAX_UPLOAD_BYTES \
                 ({max_upload_bytes}), or no upload of the largest size could ever be reserved"
            ));
        }
        let quotas = QuotaLimits {
            max_pending_uploads,
            max_bytes,
        };
        let longest_link = LinkPolicy::MAX_LIFETIME_SETTING.as_secs();
        if !(60..=longest_link).contains(&link_max_secs) {
            problems.push(format!(
                "LINK_MAX_SECONDS must be from 60 to {longest_link} (30 days), got {link_max_secs}"
            ));
        }
        let most_links = LinkPolicy::MAX_LIVE_LINKS_SETTING;
        let max_live_links = u32::try_from(max_live_links)
            .ok()
            .filter(|n| (1..=most_links).contains(n))
            .unwrap_or_else(|| {
                problems.push(format!(
                    "QUOTA_MAX_LIVE_LINKS must be from 1 to {most_links}, got {max_live_links}"
                ));
                link_defaults.max_live_links
            });
        let links = LinkPolicy {
            max_lifetime: Duration::from_secs(link_max_secs),
            max_live_links,
        };
        let allowed = get("ALLOWED_CONTENT_TYPES")
            .unwrap_or_else(|| DEFAULT_ALLOWED_CONTENT_TYPES.to_owned());
        let uploads = UploadPolicy::new(
            allowed.split(',').map(str::trim).filter(|t| !t.is_empty()),
            max_upload_bytes,
        )
        .map_err(|e| problems.push(format!("ALLOWED_CONTENT_TYPES: {e}")))
        .ok()
        .and_then(|policy| {
            // Checked above with its own message.
            policy
                .with_multipart_threshold(multipart_threshold.min(MAX_SINGLE_PUT_SIZE))
                .ok()
        });

        let mut flag = |name: &str| match get(name).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                problems.push(format!("{name} must be true or false, got {other:?}"));
                false
            }
        };
        let force_path_style = flag("S3_FORCE_PATH_STYLE");
        let scan_uploads = flag("SCAN_UPLOADS");
        #[cfg(feature = "dev-identity")]
        let dev_user_header = get("DEV_USER_HEADER").and_then(|name| {
            HeaderName::try_from(name.trim())
                .map_err(|_| {
                    problems.push(format!("DEV_USER_HEADER {name:?} is not a header name"))
                })
                .ok()
        });
        // One console edit of the deployed function's environment must not hand every caller
        // every identity: the setting is read only by the builds that `make local` runs.
        #[cfg(not(feature = "dev-identity"))]
        if get("DEV_USER_HEADER").is_some() {
            problems.push(
                "DEV_USER_HEADER must not be set: it lets any caller claim any identity, and this \
                 build has no dev identity (only local builds with the cargo feature \
                 `dev-identity`, as `make local` runs them, read it); remove it from the \
                 function's environment"
                    .into(),
            );
        }

        let trust_roots = match get("TLS_TRUST_ROOTS").as_deref() {
            None | Some("amazon") => TrustRoots::AmazonTrustServices,
            Some("system") => TrustRoots::System,
            Some(other) => {
                problems.push(format!(
                    "TLS_TRUST_ROOTS must be amazon or system, got {other:?}"
                ));
                TrustRoots::default()
            }
        };

        match (region, expiry, uploads) {
            (Some(region), Some(expiry), Some(uploads)) if problems.is_empty() => Ok(Self {
                bucket,
                table,
                region,
                expiry,
                uploads,
                quotas,
                multipart_expiry,
                links,
                force_path_style,
                scan_uploads,
                #[cfg(feature = "dev-identity")]
                dev_user_header,
                trust_roots,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

/// The reconciliation run's settings (its function only), read and checked at its cold start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// `RECONCILE_MAX_OBJECTS`: most objects one run examines (default 10 000).
    pub max_objects: u32,
}

impl ReconcileConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match lookup("RECONCILE_MAX_OBJECTS").filter(|v| !v.trim().is_empty()) {
            None => Ok(Self {
                max_objects: 10_000,
            }),
            Some(text) => match text.trim().parse::<u32>() {
                Ok(max_objects) if max_objects > 0 => Ok(Self { max_objects }),
                _ => Err(ConfigError(vec![format!(
                    "RECONCILE_MAX_OBJECTS must be a whole number from 1 to {}, got {text:?}",
                    u32::MAX
                )])),
            },
        }
    }
}

/// The publisher's own setting.
#[derive(Clone, Debug)]
pub struct PublishConfig {
    /// `EVENT_BUS_NAME`: the EventBridge bus file events go to (the template's `FileEventsBus`,
    /// or the bus its `EventBusName` names).
    pub event_bus: String,
}

impl PublishConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match lookup("EVENT_BUS_NAME").filter(|v| !v.trim().is_empty()) {
            Some(event_bus) => Ok(Self {
                event_bus: event_bus.trim().to_owned(),
            }),
            None => Err(ConfigError(vec![
                "EVENT_BUS_NAME must be set to the EventBridge bus file events go to".into(),
            ])),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("FILES_BUCKET", "files"),
        ("FILES_TABLE", "records"),
        ("AWS_REGION", "eu-west-1"),
    ];

    #[test]
    fn defaults_apply() {
        let config = config(MINIMAL).unwrap();
        assert_eq!(config.bucket, "files");
        assert_eq!(config.expiry.max_secs(), 900);
        assert_eq!(config.uploads.max_upload_bytes(), 104_857_600);
        assert!(!config.force_path_style);
        assert!(!config.scan_uploads);
        #[cfg(feature = "dev-identity")]
        assert!(config.dev_user_header.is_none());
        assert_eq!(config.trust_roots, TrustRoots::AmazonTrustServices);
        assert_eq!(config.quotas.max_pending_uploads, 20);
        assert_eq!(config.quotas.max_bytes, 10_737_418_240);
        assert_eq!(config.uploads.multipart_threshold_bytes(), 104_857_600);
        assert_eq!(config.multipart_expiry, Duration::from_secs(86_400));
    }

    #[test]
    fn multipart_settings_are_read_and_bounded() {
        let mut vars = MINIMAL.to_vec();
        vars.extend([
            ("MULTIPART_THRESHOLD_BYTES", "20971520"),
            ("MULTIPART_EXPIRY_SECONDS", "3600"),
            // 1 TiB: above a single PUT's 5 GiB, as multipart allows.
            ("MAX_UPLOAD_BYTES", "1099511627776"),
            ("QUOTA_MAX_BYTES", "1099511627776"),
        ]);
        let config = config(&vars).unwrap();
        assert_eq!(config.uploads.multipart_threshold_bytes(), 20_971_520);
        assert_eq!(config.multipart_expiry, Duration::from_secs(3600));
        assert_eq!(config.uploads.max_upload_bytes(), 1 << 40);
        let err = config_with(&[
            ("MULTIPART_THRESHOLD_BYTES", "5368709121"),
            ("MULTIPART_EXPIRY_SECONDS", "86401"),
            ("MAX_UPLOAD_BYTES", "5497558138881"),
        ]);
        for expected in [
            "MULTIPART_THRESHOLD_BYTES must not exceed 5368709120",
            "MULTIPART_EXPIRY_SECONDS must be from 60 to 86400",
            "MAX_UPLOAD_BYTES must be from 1 to 5497558138880",
        ] {
            assert!(err.contains(expected), "{expected} missing from {err}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = config(&[
            ("URL_TTL_SECONDS", "ten"),
            ("ALLOWED_CONTENT_TYPES", "image/png,nonsense"),
            ("S3_FORCE_PATH_STYLE", "yes"),
            ("SCAN_UPLOADS", "on"),
            ("TLS_TRUST_ROOTS", "everyone"),
            ("QUOTA_MAX_PENDING_UPLOADS", "0"),
            ("QUOTA_MAX_BYTES", "1000"),
        ])
        .unwrap_err()
        .to_string();
        for expected in [
            "FILES_BUCKET",
            "FILES_TABLE",
            "AWS_REGION",
            "URL_TTL_SECONDS must be a whole number",
            "\"nonsense\" is not a valid content type",
            "S3_FORCE_PATH_STYLE",
            "SCAN_UPLOADS must be true or false, got \"on\"",
            "TLS_TRUST_ROOTS must be amazon or system, got \"everyone\"",
            "QUOTA_MAX_PENDING_UPLOADS must be from 1 to 1000, got 0",
            "QUOTA_MAX_BYTES (1000) must be at least MAX_UPLOAD_BYTES (104857600)",
        ] {
            assert!(err.contains(expected), "{expected} missing from {err}");
        }
    }

    #[test]
    fn a_default_above_the_maximum_is_refused() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("URL_TTL_SECONDS", "1000"));
        let err = config(&vars).unwrap_err().to_string();
        assert!(err.contains("default URL lifetime"), "{err}");
    }

    #[test]
    fn settings_are_read() {
        let mut vars = MINIMAL.to_vec();
        vars.extend([
            ("URL_TTL_SECONDS", "60"),
            ("URL_TTL_MAX_SECONDS", "120"),
            ("MAX_UPLOAD_BYTES", "10"),
            ("S3_FORCE_PATH_STYLE", "true"),
            ("TLS_TRUST_ROOTS", "system"),
            ("QUOTA_MAX_PENDING_UPLOADS", "5"),
            ("QUOTA_MAX_BYTES", "10"),
        ]);
        let config = config(&vars).unwrap();
        assert_eq!(config.expiry.max_secs(), 120);
        assert_eq!(config.uploads.max_upload_bytes(), 10);
        assert!(config.force_path_style);
        assert_eq!(config.trust_roots, TrustRoots::System);
        assert_eq!(
            config.quotas,
            QuotaLimits {
                max_pending_uploads: 5,
                max_bytes: 10
            }
        );
    }

    #[cfg(feature = "dev-identity")]
    #[test]
    fn a_local_build_reads_the_dev_user_header() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("DEV_USER_HEADER", "x-dev-user"));
        let config = config(&vars).unwrap();
        assert_eq!(config.dev_user_header.unwrap().as_str(), "x-dev-user");

        let err = config_with(&[("DEV_USER_HEADER", "not a header")]);
        assert!(
            err.contains("DEV_USER_HEADER \"not a header\" is not a header name"),
            "{err}"
        );
    }

    #[cfg(not(feature = "dev-identity"))]
    #[test]
    fn a_build_without_the_dev_identity_refuses_dev_user_header() {
        let err = config_with(&[("DEV_USER_HEADER", "x-dev-user")]);
        assert!(err.contains("DEV_USER_HEADER must not be set"), "{err}");
        assert!(err.contains("any caller claim any identity"), "{err}");
        assert!(err.contains("`dev-identity`"), "{err}");
        // Still one report with every problem: the others are there too.
        let err = config(&[
            ("DEV_USER_HEADER", "x-dev-user"),
            ("URL_TTL_SECONDS", "ten"),
        ])
        .unwrap_err()
        .to_string();
        for expected in [
            "FILES_BUCKET",
            "URL_TTL_SECONDS",
            "DEV_USER_HEADER must not be set",
        ] {
            assert!(err.contains(expected), "{expected} missing from {err}");
        }
    }

    /// The error of MINIMAL plus `vars`, which must be refused.
    fn config_with(vars: &[(&str, &str)]) -> String {
        let mut all = MINIMAL.to_vec();
        all.extend_from_slice(vars);
        config(&all).unwrap_err().to_string()
    }

    #[test]
    fn reconcile_settings_default_and_refuse_nonsense() {
        let lookup = |value: &'static str| move |_: &str| Some(value.to_owned());
        assert_eq!(
            ReconcileConfig::from_lookup(|_| None).unwrap().max_objects,
            10_000
        );
        assert_eq!(
            ReconcileConfig::from_lookup(lookup("250"))
                .unwrap()
                .max_objects,
            250
        );
        for bad in ["0", "-1", "many"] {
            let err = ReconcileConfig::from_lookup(lookup(bad)).unwrap_err();
            assert!(
                err.to_string().contains("RECONCILE_MAX_OBJECTS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_reconcile_functions_problems_come_in_one_report_with_the_common_ones() {
        let common = Config::from_lookup(|_| None).map(|_| ());
        let own = ReconcileConfig::from_lookup(|_| Some("0".into()));
        let err = ConfigError::both(common, own).unwrap_err().to_string();
        for expected in ["FILES_BUCKET", "RECONCILE_MAX_OBJECTS"] {
            assert!(err.contains(expected), "{expected} missing from {err}");
        }
        let both = ConfigError::both(Ok::<_, ConfigError>(1), Ok::<_, ConfigError>(2));
        assert_eq!(both.unwrap(), (1, 2));
    }
}
