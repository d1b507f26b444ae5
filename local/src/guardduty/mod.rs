//! GuardDuty Malware Protection for S3, played locally when the template has a malware
//! protection plan (after its conditions: `--parameter ScanUploads=false` leaves none).
//!
//! After every object created in the plan's bucket under one of its `ObjectPrefixes` (any
//! PutObject, CopyObject or CompleteMultipartUpload), in the background and after the scan delay
//! (`--scan-delay-ms`, or a fault plan's `scanDelayMs`), the stand-in, acting as the plan's role
//! (its local credentials, through the same IAM evaluation every S3 request gets, bucket policy
//! included):
//!
//! 1. reads the version that was created (`s3:GetObjectVersion`; refused: `ACCESS_DENIED`) and
//!    scans it: the EICAR test string is `THREATS_FOUND`, anything else `NO_THREATS_FOUND`;
//! 2. when the plan's tagging is `ENABLED`, adds the tag `GuardDutyMalwareScanStatus=<result>` to
//!    that version's tags (`s3:PutObjectVersionTagging`; a refusal, or an object that already has
//!    10 tags, leaves it untagged and is logged, as GuardDuty's "Post Scan Action Failed");
//! 3. publishes the scan-result event to the default bus: the events function (`--events-url`)
//!    receives it if one of the template's `AWS::Events::Rule`s on the default bus matches it
//!    (see `crate::pattern`), with the retries of `notifications`.
//!
//! A version replaced or deleted before its scan is not scanned. Faults (a forced result, a
//! duplicate, held or lost event) are queued through `/__faults` (see `faults`).
//!
//! Differences from AWS (GuardDuty User Guide, "Malware Protection for S3"): the engine knows
//! only the EICAR test file; there are no size, archive or file-type limits (so no
//! `UNSUPPORTED` unless a fault asks for it); no validation object, no managed EventBridge rule,
//! no "Post Scan Action Failed" event; EventBridge's own retry policy and dead-letter queue are
//! Lambda's asynchronous retries here (see `notifications`).

mod event;
pub mod faults;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_norway::Value as Yaml;

pub use self::event::{STATUS_TAG, ScanResult, eicar, scan};
use self::event::{ScannedObject, scan_result_event};
use self::faults::{Delivery, ScanFault};
use crate::bucket::object_path;
use crate::bucket::tags::TagStore;
use crate::cfn::{ACCOUNT_ID, Template};
use crate::error::Error;
use crate::faults::Faults;
use crate::iam::stack::get_att_target;
use crate::notifications::Notifier;
use crate::pattern::Pattern;
use crate::s3_access::S3AccessControl;

const PLAN_TYPE: &str = "AWS::GuardDuty::MalwareProtectionPlan";
/// S3 keeps at most 10 tags on an object.
const MAX_TAGS: usize = 10;

/// The template's malware protection plan and the rules its events meet.
#[derive(Debug, Clone)]
pub struct ScanPlan {
    /// What the template's `!GetAtt <Plan>.Arn` resolves to, and what every event names.
    pub arn: String,
    pub bucket: String,
    /// Empty: the whole bucket.
    pub prefixes: Vec<String>,
    /// The logical id of the role the plan passes to GuardDuty.
    pub role: String,
    pub tagging: bool,
    /// The event patterns of the default bus's rules.
    rules: Vec<Pattern>,
}

impl ScanPlan {
    /// The plan, if the template (conditions applied) has one.
    pub fn from_template(template: &Template) -> Result<Option<Self>, Error> {
        let mut plans = template.resources_of(PLAN_TYPE);
        let Some((id, plan)) = plans.next() else {
            return Ok(None);
        };
        if plans.next().is_some() {
            return Err(Error::Template(format!(
                "the GuardDuty stand-in plays one {PLAN_TYPE}"
            )));
        }
        let resolver = template.resolver();
        let properties = &plan["Properties"];
        let protected = &properties["ProtectedResource"]["S3Bucket"];
        let prefixes = match resolver.resolve(&protected["ObjectPrefixes"])? {
            Yaml::Null => Vec::new(),
            Yaml::Sequence(items) => items
                .iter()
                .map(|item| resolver.resolve_string(item))
                .collect::<Result<_, _>>()?,
            other => {
                return Err(Error::Template(format!(
                    "{id}: ObjectPrefixes {other:?} is not a list"
                )));
            }
        };
        let role = get_att_target(&properties["Role"])
            .ok_or_else(|| Error::Template(format!("{id}: Role is not !GetAtt <Role>.Arn")))?;
        if resolver.kind(&role)? != "AWS::IAM::Role" {
            return Err(Error::Template(format!("{id}: {role} is not a role")));
        }
        let mut rules = Vec::new();
        for (rule_id, rule) in template.resources_of("AWS::Events::Rule") {
            let rule = &rule["Properties"];
            let bus = match &rule["EventBusName"] {
                Yaml::Null => "default".to_owned(),
                name => resolver.resolve_string(name)?,
            };
            if bus != "default" || rule["EventPattern"].is_null() {
                continue;
            }
            let pattern = resolver.resolve(&rule["EventPattern"])?;
            let pattern = serde_json::to_value(&pattern)
                .map_err(|e| Error::Template(format!("{rule_id}: EventPattern {e}")))?;
            rules.push(
                Pattern::parse(&pattern)
                    .map_err(|e| Error::Template(format!("{rule_id}: EventPattern: {e}")))?,
            );
        }
        Ok(Some(Self {
            arn: resolver.attribute(id, "Arn")?,
            bucket: resolver.resolve_string(&protected["BucketName"])?,
            prefixes,
            role,
            tagging: properties["Actions"]["Tagging"]["Status"].as_str() == Some("ENABLED"),
            rules,
        }))
    }

    fn protects(&self, bucket: &str, key: &str) -> bool {
        bucket == self.bucket
            && (self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p)))
    }

    /// Whether a rule of the default bus sends `event` on to the events function.
    pub fn delivers(&self, event: &serde_json::Value) -> bool {
        self.rules.iter().any(|rule| rule.matches(event))
    }
}

/// What the scanner needs of the rest of the stack.
pub struct ScannerParts {
    pub plan: ScanPlan,
    pub access: S3AccessControl,
    pub tags: TagStore,
    /// s3s-fs's data directory, canonicalized.
    pub root: PathBuf,
    pub notifier: Notifier,
    pub faults: Faults,
    /// The wait before a scan unless a fault plan sets one.
    pub delay: Duration,
    pub region: String,
    /// Whether events name the version (a versioned bucket).
    pub versioned: bool,
}

/// GuardDuty's stand-in: scans every object created under the plan.
#[derive(Clone)]
pub struct Scanner(Arc<ScannerParts>);

impl Scanner {
    pub fn new(parts: ScannerParts) -> Self {
        Self(Arc::new(parts))
    }

    /// Schedules the scan of a new object version, if the plan protects it. Never waits.
    pub fn object_created(&self, bucket: &str, key: &str, version: &str, e_tag: &str) {
        if !self.0.plan.protects(bucket, key) {
            return;
        }
        let object = ScannedObject {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            e_tag: e_tag.to_owned(),
            version_id: Some(version.to_owned()),
        };
        tokio::spawn(self.clone().scan_object(object));
    }

    async fn scan_object(self, object: ScannedObject) {
        let parts = &*self.0;
        let delay = parts.faults.scan_delay().unwrap_or(parts.delay);
        tokio::time::sleep(delay).await;
        let fault = parts.faults.take_scan();
        let version = object.version_id.as_deref().unwrap_or_default();
        let Some(found) = self.read_and_scan(&object, version).await else {
            tracing::info!(key = object.key, "scan skipped: the version is gone");
            return;
        };
        let result = fault.as_ref().and_then(|f| f.result).unwrap_or(found);
        if parts.plan.tagging {
            self.tag(&object, version, result).await;
        }
        tracing::info!(key = object.key, result = result.as_str(), "object scanned");
        let event = scan_result_event(
            &ScannedObject {
                version_id: object.version_id.clone().filter(|_| parts.versioned),
                ..object.clone()
            },
            result,
            &parts.plan.arn,
            ACCOUNT_ID,
            &parts.region,
        );
        if !parts.plan.delivers(&event) {
            return;
        }
        let send = || {
            parts
                .notifier
                .deliver_event("GuardDuty scan result", object.key.clone(), event.clone())
        };
        match fault.map(|f: ScanFault| (f.delivery, f.hold_ms)) {
            None | Some((Delivery::Normal, _)) => send().await,
            Some((Delivery::Twice, _)) => {
                send().await;
                send().await;
            }
            Some((Delivery::Drop, _)) => tracing::info!(key = object.key, "scan result dropped"),
            Some((Delivery::Hold, hold)) => {
                tokio::time::sleep(Duration::from_millis(hold.unwrap_or_default())).await;
                send().await;
            }
        }
    }

    /// The scan of `version`, read as the plan's role; None when it is no longer there.
    async fn read_and_scan(&self, object: &ScannedObject, version: &str) -> Option<ScanResult> {
        let parts = &*self.0;
        let (bucket, key) = (object.bucket.as_str(), object.key.as_str());
        let allowed = parts
            .access
            .authorize_role(&parts.plan.role, "GetObject", bucket, key, Some(version))
            .await;
        parts.tags.version(bucket, key, Some(version)).await.ok()?;
        if allowed.is_err() {
            return Some(ScanResult::AccessDenied);
        }
        let bytes = tokio::fs::read(object_path(&parts.root, bucket, key)?)
            .await
            .ok()?;
        // Still the version scanned: not replaced while it was read.
        parts.tags.version(bucket, key, Some(version)).await.ok()?;
        Some(scan(&bytes))
    }

    /// Adds the status tag to the version's tags, as the plan's role.
    async fn tag(&self, object: &ScannedObject, version: &str, result: ScanResult) {
        let parts = &*self.0;
        let (bucket, key) = (object.bucket.as_str(), object.key.as_str());
        let tagged = async {
            parts
                .access
                .authorize_role(
                    &parts.plan.role,
                    "GetObjectTagging",
                    bucket,
                    key,
                    Some(version),
                )
                .await?;
            let mut tags = parts.tags.get(bucket, key, version).await?;
            tags.retain(|(name, _)| name != STATUS_TAG);
            if tags.len() >= MAX_TAGS {
                return Err(s3s::S3Error::with_message(
                    s3s::S3ErrorCode::InvalidTag,
                    "the object already has 10 tags",
                ));
            }
            tags.push((STATUS_TAG.to_owned(), result.as_str().to_owned()));
            parts
                .access
                .authorize_role(
                    &parts.plan.role,
                    "PutObjectTagging",
                    bucket,
                    key,
                    Some(version),
                )
                .await?;
            parts.tags.put(bucket, key, Some(version), tags).await
        };
        if let Err(error) = tagged.await {
            // GuardDuty's "Post Scan Action Failed": the event is still published.
            tracing::warn!(key, %error, "the scan result could not be tagged");
        }
    }
}

#[cfg(test)]
mod tests;
