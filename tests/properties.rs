//! Model-based property test: random sequences of operations by several users, against the real
//! handler and the stand-ins, with the presigned URLs used over plain HTTP. After every step:
//! no URL names a record the caller does not own, every issued key is under the caller's own
//! prefix, every user's listing equals the model, and every user's usage (`GET /usage`) equals
//! what the model's records say. The quotas are small, so that sequences run into them: a
//! reservation over a limit must be refused exactly when the model says so. Users also share:
//! grants to each other and share links redeemed with no identity (`sharing`), and no URL ever
//! reaches a caller that neither owns the file nor holds a live grant or link to it.
//!
//! `PROPTEST_CASES` sets the number of sequences (default 12, so `make test` stays quick);
//! `make proptest` runs many more. Failing sequences are kept in
//! `tests/properties.proptest-regressions` (commit it): each runs before any new one.

use presign_gate_test_support as support;

use std::collections::BTreeSet;

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
    /// Users holding a grant to it (without expiry).
    grants: BTreeSet<usize>,
}

struct Harness {
    api: TestApi,
    /// Users of this case: distinct per case, so each case starts from an empty model.
    users: Vec<String>,
    files: Vec<ModelFile>,
    links: Vec<ModelLink>,
    /// What the run reached, shown at the end: that sequences meet the quotas and get as far
    /// as shared files and links.
    seen: std::rc::Rc<Seen>,
}

/// Counts of outcomes across the run's cases.
#[derive(Default)]
struct Seen {
    /// Reservations refused over a quota, as the model predicted.
    quota_refusals: std::cell::Cell<u32>,
    /// URLs through a grant and through a link, and refusals of dead or tampered links.
    shared_urls: std::cell::Cell<u32>,
    link_urls: std::cell::Cell<u32>,
    dead_links: std::cell::Cell<u32>,
}

impl Seen {
    fn count(counter: &std::cell::Cell<u32>) {
        counter.set(counter.get() + 1);
    }
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

#[path = "properties/checks.rs"]
mod checks;
#[path = "properties/ops.rs"]
mod ops;
#[path = "properties/sharing.rs"]
mod sharing;

use checks::{code_or_empty, key_of, prefix_of, status_text, uuid_text};
use ops::{FileRef, Op, Who, op};
use sharing::ModelLink;

impl Harness {
    fn resolve(&self, file: &FileRef) -> (String, Option<usize>) {
        match file {
            FileRef::Reserved(index) if !self.files.is_empty() => {
                let at = index.index(self.files.len());
                (self.files[at].id.clone(), Some(at))
            }
            FileRef::Available(index) => {
                let available: Vec<usize> = (0..self.files.len())
                    .filter(|at| {
                        let file = &self.files[*at];
                        file.status == Status::Available && !file.deleted
                    })
                    .collect();
                match available.is_empty() {
                    true => ("00000000-0000-4000-8000-000000000000".into(), None),
                    false => {
                        let at = available[index.index(available.len())];
                        (self.files[at].id.clone(), Some(at))
                    }
                }
            }
            FileRef::Reserved(_) => ("00000000-0000-4000-8000-000000000000".into(), None),
            FileRef::Random(n) => (uuid_text(*n), None),
            FileRef::Garbage(text) => (text.clone(), None),
        }
    }

    /// The user `who` names for the file `at` (its owner's place in `users`).
    fn user_of(&self, who: &Who, at: Option<usize>) -> usize {
        let owner = || {
            at.and_then(|at| self.users.iter().position(|u| *u == self.files[at].owner))
                .unwrap_or(0)
        };
        match who {
            Who::User(user) => *user,
            Who::Owner => owner(),
            Who::Grantee => at
                .and_then(|at| self.files[at].grants.first().copied())
                .unwrap_or_else(owner),
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

    /// PUTs file `at`'s bytes through its reservation's URL.
    async fn upload(&mut self, at: usize) -> Result<(), TestCaseError> {
        let file = &self.files[at];
        let status = upload(&file.reservation, &file.bytes).await.status();
        // The URL cannot overwrite; after a delete it can write again (until it expires),
        // which is the replay that SECURITY.md describes.
        let expected = if file.object_stored { 412 } else { 200 };
        check!(status == expected, "upload of {}: {status}", file.id);
        self.files[at].object_stored = true;
        Ok(())
    }

    /// File `at` uploaded and completed by its owner.
    async fn upload_and_complete(&mut self, at: usize) -> Result<(), TestCaseError> {
        self.upload(at).await?;
        let id = self.files[at].id.clone();
        self.complete(&Who::Owner, id, Some(at)).await
    }

    /// `who` completes the file `id` (the model's file `at`, if any).
    async fn complete(
        &mut self,
        who: &Who,
        id: String,
        at: Option<usize>,
    ) -> Result<(), TestCaseError> {
        let user = self.user_of(who, at);
        let answer = self
            .api
            .call(
                "POST",
                &format!("/files/{id}/complete"),
                Some(&self.users[user]),
                None,
            )
            .await;
        let expected = match self.visible(user, at) {
            None => (404, "not_found"),
            Some(f) if f.status == Status::Available || f.object_stored => (200, ""),
            Some(_) => (409, "upload_missing"),
        };
        check!(
            (answer.status.as_u16(), code_or_empty(&answer)) == expected,
            "complete {id} by {}: {answer:?}",
            self.users[user]
        );
        if expected.0 == 200 {
            check!(answer.body["file"]["status"] == "available", "{answer:?}");
            self.files[at.expect("visible")].status = Status::Available;
        }
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
                    Seen::count(&self.seen.quota_refusals);
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
                    grants: BTreeSet::new(),
                });
            }
            Op::Upload(index) if !self.files.is_empty() => {
                self.upload(index.index(self.files.len())).await?;
            }
            Op::Upload(_) => {}
            Op::Finish(index) if !self.files.is_empty() => {
                self.upload_and_complete(index.index(self.files.len()))
                    .await?;
            }
            Op::Finish(_) => {}
            Op::Complete(who, file) => {
                let (id, at) = self.resolve(file);
                self.complete(who, id, at).await?;
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
                    file.grants.clear();
                }
            }
            Op::Grant(who, file, grantee) => self.grant(who, file, *grantee).await?,
            Op::Revoke(who, file, grantee) => self.revoke(who, file, *grantee).await?,
            Op::SharedDownload(caller, file, owner) => {
                self.shared_download(caller, file, owner).await?;
            }
            Op::ListShared(user) => self.check_shared(*user).await?,
            Op::CreateLink(who, file, max) => self.create_link(who, file, *max).await?,
            Op::Redeem(link, tampered) if !self.links.is_empty() => {
                self.redeem(link.index(self.links.len()), *tampered).await?;
            }
            Op::RevokeLink(who, link) if !self.links.is_empty() => {
                self.revoke_link(who, link.index(self.links.len())).await?;
            }
            Op::Redeem(..) | Op::RevokeLink(..) => {}
        }
        Ok(())
    }
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
    let seen = std::rc::Rc::new(Seen::default());
    let result = runner.run(&prop::collection::vec(op(), 1..40), |ops| {
        case.set(case.get() + 1);
        let case = case.get();
        let mut harness = Harness {
            api: TestApi(Api::new(
                standins.files_as(Role::Api).with_quotas(LIMITS),
                None,
            )),
            users: USERS.iter().map(|u| format!("{u}#{case}")).collect(),
            files: Vec::new(),
            links: Vec::new(),
            seen: seen.clone(),
        };
        runtime.block_on(async {
            // Each user starts with one small available file, so that sequences share from
            // their first step (reaching one by chance takes most of a sequence).
            for user in 0..USERS.len() {
                let reserve = Op::Reserve {
                    user,
                    size: 8,
                    content_type: 0,
                    name: 0,
                };
                // Boxed, as each step below: the handler's future is large in a debug build, and
                // several of them inline overflowed the test thread's stack.
                Box::pin(harness.step(&reserve)).await?;
                let last = harness.files.len() - 1;
                Box::pin(harness.upload_and_complete(last)).await?;
            }
            for op in &ops {
                Box::pin(harness.step(op)).await?;
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
        "{} reservations refused over a quota, each when the model said so; {} URLs through \
         grants, {} through links; {} dead or tampered links refused",
        seen.quota_refusals.get(),
        seen.shared_urls.get(),
        seen.link_urls.get(),
        seen.dead_links.get(),
    );
}
