//! Model-based property test: random sequences of operations by several users, against the real
//! handler and the stand-ins, with the presigned URLs used over plain HTTP. After every step:
//! no URL names a record the caller does not own, every issued key is under the caller's own
//! prefix, every user's listing equals the model, and every user's usage (`GET /usage`) equals
//! what the model's records say. The quotas are small, so that sequences run into them: a
//! reservation over a limit must be refused exactly when the model says so.
//!
//! `PROPTEST_CASES` sets the number of sequences (default 12, so `make test` stays quick);
//! `make proptest` runs many more. Failing sequences are kept in
//! `tests/properties.proptest-regressions` (commit it): each runs before any new one.

use presign_gate_test_support as support;

use std::collections::BTreeMap;

use lambda_http::http::StatusCode;
use presign_gate::domain::QuotaLimits;
use presign_gate::http::Api;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{Value, json};
use support::*;

const USERS: [&str; 3] = ["alice", "bob", "auth0|carol x/.."];
const TYPES: [&str; 3] = ["text/plain", "image/png", "application/pdf"];
const NAMES: [&str; 4] = ["a.txt", "résumé.pdf", "😀 photo.png", "x\u{301}.bin"];
/// Small enough that sequences of a few reservations by one user meet both limits.
const LIMITS: QuotaLimits = QuotaLimits {
    max_pending_uploads: 2,
    max_bytes: 64,
};

/// A reference to a file in a request: one some user reserved (possibly someone else's), a
/// well-formed id nobody reserved, or something that is not an id at all.
#[derive(Clone, Debug)]
enum FileRef {
    Reserved(prop::sample::Index),
    Random(u128),
    Garbage(String),
}

#[derive(Clone, Debug)]
enum Op {
    Reserve {
        user: usize,
        size: usize,
        content_type: usize,
        name: usize,
    },
    Upload(prop::sample::Index),
    Complete(usize, FileRef),
    Get(usize, FileRef),
    DownloadUrl(usize, FileRef, bool),
    Batch(usize, Vec<FileRef>),
    List(usize, u32),
    Delete(usize, FileRef),
}

fn file_ref() -> impl Strategy<Value = FileRef> {
    prop_oneof![
        6 => any::<prop::sample::Index>().prop_map(FileRef::Reserved),
        1 => any::<u128>().prop_map(FileRef::Random),
        1 => prop_oneof![
            Just("..".to_owned()),
            Just("%2e%2e".to_owned()),
            "[0-9a-f%-]{1,40}",
        ]
        .prop_map(FileRef::Garbage),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    prop_oneof![
        4 => (user.clone(), 1usize..48, 0..TYPES.len(), 0..NAMES.len()).prop_map(
            |(user, size, content_type, name)| Op::Reserve { user, size, content_type, name }
        ),
        3 => any::<prop::sample::Index>().prop_map(Op::Upload),
        3 => (user.clone(), file_ref()).prop_map(|(u, f)| Op::Complete(u, f)),
        1 => (user.clone(), file_ref()).prop_map(|(u, f)| Op::Get(u, f)),
        3 => (user.clone(), file_ref(), any::<bool>()).prop_map(|(u, f, i)| Op::DownloadUrl(u, f, i)),
        2 => (user.clone(), prop::collection::vec(file_ref(), 1..6)).prop_map(|(u, f)| Op::Batch(u, f)),
        1 => (user.clone(), 1u32..4).prop_map(|(u, l)| Op::List(u, l)),
        2 => (user, file_ref()).prop_map(|(u, f)| Op::Delete(u, f)),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Status {
    Pending,
    Available,
}

struct ModelFile {
    owner: String,
    id: String,
    bytes: Vec<u8>,
    reservation: Value,
    status: Status,
    object_stored: bool,
    deleted: bool,
}

/// The expected key prefix of a subject, written out independently of the product's encoder:
/// every byte but ASCII letters, digits, `-` and `_` as `%XX`.
fn prefix_of(sub: &str) -> String {
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
fn key_of(url: &str) -> String {
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

struct Harness {
    api: TestApi,
    /// Users of this case: distinct per case, so each case starts from an empty model.
    users: Vec<String>,
    files: Vec<ModelFile>,
    /// Reservations refused over a quota, as the model predicted: shown at the end of the run.
    refusals: std::rc::Rc<std::cell::Cell<u32>>,
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

impl Harness {
    fn resolve(&self, file: &FileRef) -> (String, Option<usize>) {
        match file {
            FileRef::Reserved(index) if !self.files.is_empty() => {
                let at = index.index(self.files.len());
                (self.files[at].id.clone(), Some(at))
            }
            FileRef::Reserved(_) => ("00000000-0000-4000-8000-000000000000".into(), None),
            FileRef::Random(n) => (uuid_text(*n), None),
            FileRef::Garbage(text) => (text.clone(), None),
        }
    }

    /// The model file `at` if `user` may see it: the owner's, and not deleted.
    fn visible(&self, user: usize, at: Option<usize>) -> Option<&ModelFile> {
        at.map(|at| &self.files[at])
            .filter(|f| !f.deleted && f.owner == self.users[user])
    }

    /// Every URL issued to `user` must be for one of its own live, available files, at exactly
    /// that file's key, under its own prefix.
    fn check_download_url(&self, user: usize, id: &str, url: &str) -> Result<(), TestCaseError> {
        let key = key_of(url);
        let prefix = prefix_of(&self.users[user]);
        check!(key.starts_with(&prefix), "key {key} is not under {prefix}");
        check!(key == format!("{prefix}{id}"), "key {key} is not file {id}");
        let owned = self.files.iter().any(|f| {
            f.id == id && !f.deleted && f.owner == self.users[user] && f.status == Status::Available
        });
        check!(owned, "URL issued to {} for {id}", self.users[user]);
        Ok(())
    }

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Reserve {
                user,
                size,
                content_type,
                name,
            } => {
                let bytes: Vec<u8> = (0..*size)
                    .map(|n| (n * 7 + self.files.len()) as u8)
                    .collect();
                let answer = self
                    .api
                    .call(
                        "POST",
                        "/uploads",
                        Some(&self.users[*user]),
                        Some(json!({
                            "filename": NAMES[*name],
                            "contentType": TYPES[*content_type],
                            "size": bytes.len(),
                        })),
                    )
                    .await;
                let (pending, used) = self.usage_of(*user);
                let refusal = if pending >= u64::from(LIMITS.max_pending_uploads) {
                    Some("pendingUploads limit")
                } else if used + *size as u64 > LIMITS.max_bytes {
                    Some("bytes limit")
                } else {
                    None
                };
                if let Some(limit) = refusal {
                    check!(
                        answer.status == StatusCode::TOO_MANY_REQUESTS
                            && answer.error_code() == "quota_exceeded"
                            && answer.body["error"]["message"]
                                .as_str()
                                .is_some_and(|m| m.contains(limit)),
                        "reserve over the {limit} ({pending} pending, {used} bytes): {answer:?}"
                    );
                    self.refusals.set(self.refusals.get() + 1);
                    return Ok(());
                }
                check!(answer.status == StatusCode::CREATED, "reserve: {answer:?}");
                let (Some(url), Some(id)) = (
                    answer.body["upload"]["url"].as_str(),
                    answer.body["file"]["id"].as_str(),
                ) else {
                    return Err(TestCaseError::fail(format!("reserve: {answer:?}")));
                };
                let prefix = prefix_of(&self.users[*user]);
                check!(
                    key_of(url) == format!("{prefix}{id}"),
                    "upload key {} for {id} under {prefix}",
                    key_of(url)
                );
                self.files.push(ModelFile {
                    owner: self.users[*user].clone(),
                    id: id.to_owned(),
                    bytes,
                    reservation: answer.body,
                    status: Status::Pending,
                    object_stored: false,
                    deleted: false,
                });
            }
            Op::Upload(index) => {
                if self.files.is_empty() {
                    return Ok(());
                }
                let at = index.index(self.files.len());
                let file = &self.files[at];
                let status = upload(&file.reservation, &file.bytes).await.status();
                // The URL cannot overwrite; after a delete it can write again (until it expires),
                // which is the replay that SECURITY.md describes.
                let expected = if file.object_stored { 412 } else { 200 };
                check!(status == expected, "upload of {}: {status}", file.id);
                self.files[at].object_stored = true;
            }
            Op::Complete(user, file) => {
                let (id, at) = self.resolve(file);
                let answer = self
                    .api
                    .call(
                        "POST",
                        &format!("/files/{id}/complete"),
                        Some(&self.users[*user]),
                        None,
                    )
                    .await;
                let expected = match self.visible(*user, at) {
                    None => (404, "not_found"),
                    Some(f) if f.status == Status::Available || f.object_stored => (200, ""),
                    Some(_) => (409, "upload_missing"),
                };
                check!(
                    (answer.status.as_u16(), code_or_empty(&answer)) == expected,
                    "complete {id} by {}: {answer:?}",
                    self.users[*user]
                );
                if expected.0 == 200 {
                    check!(answer.body["file"]["status"] == "available", "{answer:?}");
                    self.files[at.expect("visible")].status = Status::Available;
                }
            }
            Op::Get(user, file) => {
                let (id, at) = self.resolve(file);
                let answer = self
                    .api
                    .call(
                        "GET",
                        &format!("/files/{id}"),
                        Some(&self.users[*user]),
                        None,
                    )
                    .await;
                match self.visible(*user, at) {
                    None => check!(answer.status == 404, "get {id}: {answer:?}"),
                    Some(f) => {
                        check!(answer.status == 200, "get {id}: {answer:?}");
                        check!(
                            answer.body["file"]["status"] == status_text(f.status),
                            "get {id}: {answer:?}"
                        );
                    }
                }
            }
            Op::DownloadUrl(user, file, inline) => {
                let (id, at) = self.resolve(file);
                let query = if *inline { "?disposition=inline" } else { "" };
                let answer = self
                    .api
                    .call(
                        "GET",
                        &format!("/files/{id}/download-url{query}"),
                        Some(&self.users[*user]),
                        None,
                    )
                    .await;
                let expected = match self.visible(*user, at) {
                    None => (404, "not_found"),
                    Some(f) if f.status == Status::Available => (200, ""),
                    Some(_) => (409, "not_ready"),
                };
                check!(
                    (answer.status.as_u16(), code_or_empty(&answer)) == expected,
                    "download-url {id} by {}: {answer:?}",
                    self.users[*user]
                );
                if expected.0 == 200 {
                    let url = answer.body.get("url").and_then(Value::as_str);
                    check!(
                        url.is_some(),
                        "download-url {id}: a 200 without a URL: {answer:?}"
                    );
                    let url = url.unwrap_or_default();
                    self.check_download_url(*user, &id, url)?;
                    let file = &self.files[at.expect("visible")];
                    let response = http_client().get(url).send().await.expect("GET");
                    check!(response.status() == 200, "GET {id}: {}", response.status());
                    let body = response.bytes().await.expect("body");
                    check!(body.as_ref() == file.bytes.as_slice(), "bytes of {id}");
                }
            }
            Op::Batch(user, refs) => {
                let resolved: Vec<(String, Option<usize>)> =
                    refs.iter().map(|r| self.resolve(r)).collect();
                let ids: Vec<&str> = resolved.iter().map(|(id, _)| id.as_str()).collect();
                let answer = self
                    .api
                    .call(
                        "POST",
                        "/files/download-urls",
                        Some(&self.users[*user]),
                        Some(json!({ "ids": ids })),
                    )
                    .await;
                check!(
                    answer.status == 200
                        && answer.body["urls"].is_object()
                        && answer.body["errors"].is_object(),
                    "batch: {answer:?}"
                );
                let urls = answer.body["urls"].as_object().cloned().unwrap_or_default();
                let errors = answer.body["errors"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (id, at) in &resolved {
                    let expected = match self.visible(*user, *at) {
                        None => Some("not_found"),
                        Some(f) if f.status == Status::Available => None,
                        Some(_) => Some("not_ready"),
                    };
                    match expected {
                        None => {
                            let url = urls.get(id).and_then(|u| u["url"].as_str());
                            check!(url.is_some(), "batch: no URL for {id}: {answer:?}");
                            check!(!errors.contains_key(id), "batch: {id} in both");
                        }
                        Some(code) => {
                            check!(!urls.contains_key(id), "batch: URL for {id}: {answer:?}");
                            check!(
                                errors.get(id).map(|e| &e["code"]) == Some(&json!(code)),
                                "batch {id}: expected {code}: {answer:?}"
                            );
                        }
                    }
                }
                check!(
                    urls.len() + errors.len()
                        == ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
                    "batch answers every distinct id once: {answer:?}"
                );
                for (id, url) in &urls {
                    let url = url["url"].as_str();
                    check!(url.is_some(), "batch: {id} without a URL: {answer:?}");
                    self.check_download_url(*user, id, url.unwrap_or_default())?;
                }
            }
            Op::List(user, limit) => {
                self.check_listing(*user, *limit).await?;
            }
            Op::Delete(user, file) => {
                let (id, at) = self.resolve(file);
                let answer = self
                    .api
                    .call(
                        "DELETE",
                        &format!("/files/{id}"),
                        Some(&self.users[*user]),
                        None,
                    )
                    .await;
                let visible = self.visible(*user, at).is_some();
                let expected = if visible { 204 } else { 404 };
                check!(
                    answer.status.as_u16() == expected,
                    "delete {id} by {}: {answer:?}",
                    self.users[*user]
                );
                if visible {
                    let file = &mut self.files[at.expect("visible")];
                    file.deleted = true;
                    file.object_stored = false;
                }
            }
        }
        Ok(())
    }

    /// What `user`'s records say: its pending files, and the bytes of its pending and available
    /// files.
    fn usage_of(&self, user: usize) -> (u64, u64) {
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
    async fn check_usage(&self, user: usize) -> Result<(), TestCaseError> {
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
    async fn check_listing(&self, user: usize, limit: u32) -> Result<(), TestCaseError> {
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

fn bytes_len(bytes: &[u8]) -> u64 {
    bytes.len() as u64
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Pending => "pending",
        Status::Available => "available",
    }
}

fn code_or_empty(answer: &Answer) -> &str {
    if answer.status.is_success() {
        ""
    } else {
        answer.error_code()
    }
}

fn uuid_text(n: u128) -> String {
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

#[test]
fn random_operations_never_leak_and_listings_match_the_model() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let standins = runtime.block_on(StandIns::start());
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .map(|n| n.parse().expect("PROPTEST_CASES is a number"))
        .unwrap_or(12);
    let mut runner = TestRunner::new(Config {
        cases,
        // A sequence that failed once is saved (committed with the fix) and runs first every
        // time after, in `make test` as in `make proptest`.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/properties.proptest-regressions",
        ))),
        max_shrink_iters: 200,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0u32);
    let refusals = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let result = runner.run(&prop::collection::vec(op(), 1..30), |ops| {
        case.set(case.get() + 1);
        let case = case.get();
        let mut harness = Harness {
            api: TestApi(Api::new(
                standins.files_as(Role::Api).with_quotas(LIMITS),
                None,
            )),
            users: USERS.iter().map(|u| format!("{u}#{case}")).collect(),
            files: Vec::new(),
            refusals: refusals.clone(),
        };
        runtime.block_on(async {
            for op in &ops {
                harness.step(op).await?;
                for user in 0..harness.users.len() {
                    harness.check_listing(user, 100).await?;
                    harness.check_usage(user).await?;
                }
            }
            Ok(())
        })
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    assert!(case.get() >= cases, "ran {} of {cases} cases", case.get());
    eprintln!(
        "{} reservations refused over a quota, each when the model said so",
        refusals.get()
    );
}
