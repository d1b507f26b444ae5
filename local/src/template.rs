//! What the deployed stack says about CORS and notifications, read from template.yaml at start so
//! that the local stand-ins follow the same rules (one source of truth).
//!
//! Only the parts the stand-ins reproduce are read: the bucket's `CorsRules`, its
//! `NotificationConfiguration` and versioning status, and the HTTP API's `CorsConfiguration`.
//! `!Ref AllowedOrigins` (the deploy-time parameter) resolves to the local origins. The template
//! is read with its conditions applied (see `cfn`).

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use serde_norway::Value;

use crate::cfn::Template;
use crate::error::Error;

/// The stack parameter that names the allowed browser origins.
const ALLOWED_ORIGINS_PARAMETER: &str = "AllowedOrigins";

/// Which browser origins a CORS rule admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    Any,
    List(Vec<HeaderValue>),
}

/// One CORS rule, as the bucket's `CorsRules` or the HTTP API's `CorsConfiguration` states it.
#[derive(Debug, Clone)]
pub struct CorsRule {
    pub origins: Origins,
    pub methods: Vec<Method>,
    pub allowed_headers: Vec<HeaderName>,
    pub exposed_headers: Vec<HeaderName>,
    pub max_age: Option<Duration>,
    pub allow_credentials: bool,
}

/// One `LambdaConfigurations` entry of the bucket's `NotificationConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRule {
    /// The configuration's name in the event's `s3.configurationId`.
    pub id: String,
    /// `ObjectCreated:*`, `ObjectRemoved:Delete`, ... (the `s3:` prefix removed).
    pub event: String,
    pub prefix: String,
    pub suffix: String,
}

impl NotificationRule {
    /// Whether S3 would send `event_name` (e.g. `ObjectCreated:Put`) for `key` under this rule.
    pub fn selects(&self, event_name: &str, key: &str) -> bool {
        let event_matches = match self.event.strip_suffix('*') {
            Some(family) => event_name.starts_with(family),
            None => event_name == self.event,
        };
        event_matches && key.starts_with(&self.prefix) && key.ends_with(&self.suffix)
    }
}

/// The bucket and API behaviour the template declares.
#[derive(Debug, Clone)]
pub struct StackRules {
    pub bucket_cors: CorsRule,
    pub notifications: Vec<NotificationRule>,
    /// `VersioningConfiguration: Status: Enabled`: a plain DeleteObject then makes a delete
    /// marker, and S3 reports `ObjectRemoved:DeleteMarkerCreated` instead of `ObjectRemoved:Delete`.
    pub bucket_versioned: bool,
    pub api_cors: CorsRule,
}

impl StackRules {
    /// The rules of the template deployed with its parameters' defaults.
    pub fn parse(text: &str, local_origins: &[HeaderValue]) -> Result<Self, Error> {
        let template = Template::load(text, "us-east-1", &Default::default())?;
        Self::from_template(&template, local_origins)
    }

    /// The rules of the template deployed with its parameters (conditions applied).
    pub fn from_template(
        template: &Template,
        local_origins: &[HeaderValue],
    ) -> Result<Self, Error> {
        let template = &template.value;
        let bucket = only_resource(template, "AWS::S3::Bucket")?;
        let api = only_resource(template, "AWS::Serverless::HttpApi")?;

        let rules: BucketCors = typed(
            &bucket["Properties"]["CorsConfiguration"],
            "the bucket's CorsConfiguration",
        )?;
        let [rule] = <[BucketCorsRule; 1]>::try_from(rules.cors_rules).map_err(|rules| {
            Error::Template(format!(
                "the bucket has {} CorsRules; the local S3 reproduces exactly one",
                rules.len()
            ))
        })?;
        let bucket_origins = origins(&rule.allowed_origins, local_origins)?;
        let bucket_cors = CorsRule {
            // S3 answers a listed (not wildcard) origin with Access-Control-Allow-Credentials.
            allow_credentials: matches!(bucket_origins, Origins::List(_)),
            origins: bucket_origins,
            methods: methods(&rule.allowed_methods)?,
            allowed_headers: header_names(&rule.allowed_headers)?,
            exposed_headers: header_names(&rule.exposed_headers)?,
            max_age: rule.max_age.map(Duration::from_secs),
        };

        let notifications: BucketNotifications = typed(
            &bucket["Properties"]["NotificationConfiguration"],
            "the bucket's NotificationConfiguration",
        )?;
        let notifications = notifications
            .lambda_configurations
            .into_iter()
            .enumerate()
            .map(|(index, config)| notification_rule(index, config))
            .collect::<Result<_, _>>()?;

        let bucket_versioned = bucket["Properties"]["VersioningConfiguration"]["Status"]
            .as_str()
            .is_some_and(|status| status == "Enabled");

        let api: ApiCors = typed(
            &api["Properties"]["CorsConfiguration"],
            "the HTTP API's CorsConfiguration",
        )?;
        let api_cors = CorsRule {
            origins: origins(&api.allow_origins, local_origins)?,
            methods: methods(&api.allow_methods)?,
            allowed_headers: header_names(&api.allow_headers)?,
            exposed_headers: header_names(&api.expose_headers)?,
            max_age: api.max_age.map(Duration::from_secs),
            allow_credentials: api.allow_credentials,
        };

        if api_cors.allow_credentials && api_cors.origins == Origins::Any {
            // Browsers refuse credentials with a wildcard origin; so does tower-http's CorsLayer.
            return Err(Error::Template(
                "the HTTP API allows credentials for any origin".into(),
            ));
        }

        Ok(Self {
            bucket_cors,
            notifications,
            bucket_versioned,
            api_cors,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BucketCors {
    cors_rules: Vec<BucketCorsRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BucketCorsRule {
    allowed_methods: Vec<String>,
    allowed_origins: Value,
    #[serde(default)]
    allowed_headers: Vec<String>,
    #[serde(default)]
    exposed_headers: Vec<String>,
    max_age: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BucketNotifications {
    #[serde(default)]
    lambda_configurations: Vec<LambdaConfiguration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LambdaConfiguration {
    event: String,
    #[serde(default)]
    filter: Option<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Filter {
    #[serde(rename = "S3Key")]
    s3_key: KeyFilter,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyFilter {
    rules: Vec<KeyRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyRule {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApiCors {
    allow_origins: Value,
    allow_methods: Vec<String>,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    max_age: Option<u64>,
    #[serde(default)]
    allow_credentials: bool,
}

fn only_resource<'t>(template: &'t Value, kind: &str) -> Result<&'t Value, Error> {
    let resources = template["Resources"]
        .as_mapping()
        .ok_or_else(|| Error::Template("no Resources".into()))?;
    let mut found = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some(kind));
    match (found.next(), found.next()) {
        (Some(resource), None) => Ok(resource),
        _ => Err(Error::Template(format!(
            "expected exactly one {kind} resource"
        ))),
    }
}

fn typed<T: for<'de> Deserialize<'de>>(value: &Value, what: &str) -> Result<T, Error> {
    serde_norway::from_value(value.clone())
        .map_err(|error| Error::Template(format!("{what}: {error}")))
}

/// `!Ref AllowedOrigins` is the local origins; a literal list is taken as it is (`*` for any).
fn origins(value: &Value, local_origins: &[HeaderValue]) -> Result<Origins, Error> {
    if let Value::Tagged(tagged) = value
        && tagged.tag == "Ref"
        && tagged.value.as_str() == Some(ALLOWED_ORIGINS_PARAMETER)
    {
        return Ok(Origins::List(local_origins.to_vec()));
    }
    let literal: Vec<String> = typed(value, "AllowedOrigins")?;
    if literal.iter().any(|origin| origin == "*") {
        return Ok(Origins::Any);
    }
    literal
        .iter()
        .map(|origin| parse_origin(origin))
        .collect::<Result<_, _>>()
        .map(Origins::List)
}

/// A browser origin as it appears in the `Origin` header: `scheme://host[:port]`.
pub fn parse_origin(text: &str) -> Result<HeaderValue, Error> {
    let invalid = || Error::Origin(text.to_owned());
    let uri: http::Uri = text.parse().map_err(|_| invalid())?;
    let is_origin = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.authority().is_some()
        && !text.ends_with('/')
        && uri.path_and_query().is_none_or(|p| p.as_str() == "/");
    if !is_origin || text.contains('*') {
        return Err(invalid());
    }
    HeaderValue::from_str(text).map_err(|_| invalid())
}

fn methods(names: &[String]) -> Result<Vec<Method>, Error> {
    names
        .iter()
        .map(|name| {
            Method::from_bytes(name.as_bytes())
                .map_err(|_| Error::Template(format!("{name:?} is not an HTTP method")))
        })
        .collect()
}

fn header_names(names: &[String]) -> Result<Vec<HeaderName>, Error> {
    names
        .iter()
        .map(|name| {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Template(format!("{name:?} is not a header name")))
        })
        .collect()
}

fn notification_rule(index: usize, config: LambdaConfiguration) -> Result<NotificationRule, Error> {
    let event = config
        .event
        .strip_prefix("s3:")
        .ok_or_else(|| Error::Template(format!("{:?} is not an s3: event", config.event)))?
        .to_owned();
    let (mut prefix, mut suffix) = (String::new(), String::new());
    for rule in config.filter.map(|f| f.s3_key.rules).unwrap_or_default() {
        match rule.name.to_ascii_lowercase().as_str() {
            "prefix" => prefix = rule.value,
            "suffix" => suffix = rule.value,
            other => {
                return Err(Error::Template(format!(
                    "{other:?} is not an S3 key filter"
                )));
            }
        }
    }
    Ok(NotificationRule {
        id: format!("local-notification-{index}"),
        event,
        prefix,
        suffix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> StackRules {
        let text = include_str!("../../template.yaml");
        let local = [HeaderValue::from_static("http://127.0.0.1:9102")];
        StackRules::parse(text, &local).expect("template.yaml has the rules the local S3 reads")
    }

    #[test]
    fn the_bucket_rule_is_read_with_the_local_origins() {
        let rule = template().bucket_cors;
        assert_eq!(
            rule.origins,
            Origins::List(vec![HeaderValue::from_static("http://127.0.0.1:9102")])
        );
        assert_eq!(rule.methods, [Method::PUT, Method::GET]);
        let headers: Vec<_> = rule
            .allowed_headers
            .iter()
            .map(HeaderName::as_str)
            .collect();
        assert_eq!(
            headers,
            [
                "cache-control",
                "content-type",
                "if-none-match",
                "x-amz-checksum-sha256"
            ]
        );
        assert_eq!(rule.exposed_headers, [http::header::ETAG]);
        assert_eq!(rule.max_age, Some(Duration::from_secs(600)));
    }

    #[test]
    fn notifications_select_events_and_prefixes_as_the_template_says() {
        let rules = template();
        assert!(rules.bucket_versioned);
        let selects =
            |event: &str, key: &str| rules.notifications.iter().any(|r| r.selects(event, key));
        assert!(selects("ObjectCreated:Put", "users/a/b"));
        assert!(selects(
            "ObjectCreated:CompleteMultipartUpload",
            "users/a/b"
        ));
        assert!(selects("ObjectRemoved:DeleteMarkerCreated", "users/a/b"));
        assert!(!selects("ObjectCreated:Put", "other/a"));
        assert!(!selects("ObjectRestore:Completed", "users/a/b"));
    }

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert!(parse_origin("http://localhost:3000").is_ok());
        assert!(parse_origin("https://app.example.com").is_ok());
        for bad in [
            "localhost:3000",
            "http://a.example/path",
            "http://a.example/",
            "ftp://a",
            "http://*.a",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
