//! What every step is checked against: the model's usage and listing of each user, and the
//! helpers that read keys and answers.

use std::collections::BTreeMap;

use proptest::test_runner::TestCaseError;
use serde_json::json;
use support::*;

use super::{Harness, LIMITS, Status};
use crate::support;

/// The expected key prefix of a subject, written out independently of the product's encoder:
/// every byte but ASCII letters, digits, `-` and `_` as `%XX`.
pub fn prefix_of(sub: &str) -> String {
    let mut segment = String::new();
    for byte in sub.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            segment.push(byte as char);
        } else {
            segment.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("users/{segment}/")
}

/// The object key a presigned path-style URL points at, still percent-encoded as S3 reads it.
pub fn key_of(url: &str) -> String {
    let path = url.split_once('?').map_or(url, |(path, _)| path);
    let after_host = path.splitn(4, '/').nth(3).expect("URL has a path");
    let key = after_host
        .strip_prefix(&format!("{BUCKET}/"))
        .unwrap_or_else(|| panic!("path-style URL into {BUCKET}: {url}"));
    // The SDK encodes `%` itself as `%25` in the path; undo exactly one level.
    percent_encoding::percent_decode_str(key)
        .decode_utf8()
        .expect("UTF-8 key")
        .into_owned()
}

impl Harness {
    /// What `user`'s records say: its pending files, and the bytes of its pending and available
    /// files.
    pub fn usage_of(&self, user: usize) -> (u64, u64) {
        let live = self
            .files
            .iter()
            .filter(|f| !f.deleted && f.owner == self.users[user]);
        live.fold((0, 0), |(pending, bytes), f| {
            (
                pending + u64::from(f.status == Status::Pending),
                bytes + bytes_len(&f.bytes),
            )
        })
    }

    /// `GET /usage` of `user` must be exactly what its records say.
    pub async fn check_usage(&self, user: usize) -> Result<(), TestCaseError> {
        let answer = self
            .api
            .call("GET", "/usage", Some(&self.users[user]), None)
            .await;
        let (pending, bytes) = self.usage_of(user);
        let expected = json!({
            "pendingUploads": pending,
            "bytes": bytes,
            "limits": {
                "pendingUploads": LIMITS.max_pending_uploads,
                "bytes": LIMITS.max_bytes,
            },
            "uploads": { "multipartThresholdBytes": presign_gate::domain::DEFAULT_MULTIPART_THRESHOLD_BYTES },
        });
        check!(
            answer.status == 200 && answer.body == expected,
            "usage of {}: {answer:?}, model {expected}",
            self.users[user]
        );
        Ok(())
    }

    /// Walks `user`'s listing page by page and compares it with the model.
    pub async fn check_listing(&self, user: usize, limit: u32) -> Result<(), TestCaseError> {
        let mut listed = BTreeMap::new();
        let mut token: Option<String> = None;
        for _ in 0..=self.files.len() + 1 {
            let mut path = format!("/files?limit={limit}");
            if let Some(token) = &token {
                path.push_str(&format!("&nextToken={token}"));
            }
            let answer = self
                .api
                .call("GET", &path, Some(&self.users[user]), None)
                .await;
            check!(answer.status == 200, "list: {answer:?}");
            check!(
                answer.body["files"].is_array(),
                "list without files: {answer:?}"
            );
            let files = answer.body["files"].as_array().cloned().unwrap_or_default();
            check!(files.len() <= limit as usize, "page over limit: {answer:?}");
            for file in files {
                let (Some(id), Some(status)) = (file["id"].as_str(), file["status"].as_str())
                else {
                    return Err(TestCaseError::fail(format!(
                        "list: {file} has no id or status"
                    )));
                };
                let (id, status) = (id.to_owned(), status.to_owned());
                check!(
                    listed.insert(id.clone(), status).is_none(),
                    "{id} listed twice"
                );
            }
            match answer.body["nextToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => {
                    let expected: BTreeMap<String, String> = self
                        .files
                        .iter()
                        .filter(|f| !f.deleted && f.owner == self.users[user])
                        .map(|f| (f.id.clone(), status_text(f.status).to_owned()))
                        .collect();
                    check!(
                        listed == expected,
                        "listing of {}: {listed:?}, model {expected:?}",
                        self.users[user]
                    );
                    return Ok(());
                }
            }
        }
        Err(TestCaseError::fail("the listing never ended"))
    }
}

pub fn bytes_len(bytes: &[u8]) -> u64 {
    bytes.len() as u64
}

pub fn status_text(status: Status) -> &'static str {
    match status {
        Status::Pending => "pending",
        Status::Available => "available",
    }
}

pub fn code_or_empty(answer: &Answer) -> &str {
    if answer.status.is_success() {
        ""
    } else {
        answer.error_code()
    }
}

pub fn uuid_text(n: u128) -> String {
    // A well-formed v4 id (version and variant bits set), almost surely reserved by no one.
    let n = (n & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
