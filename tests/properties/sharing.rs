//! The sharing operations of the model: grants to other users, the grantee's listing and
//! downloads, and share links redeemed with no identity. Every URL they yield must be for a
//! live, available file that the caller owns or holds a live grant to, or reached through a link
//! that is neither revoked nor exhausted (nor its file deleted), at exactly that file's key.

use std::collections::BTreeSet;

use lambda_http::http::StatusCode;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};
use support::*;

use super::checks::{code_or_empty, key_of, prefix_of};
use super::{FileRef, Harness, ModelFile, Seen, Status, Who};
use crate::support;

/// A share link the model made.
pub struct ModelLink {
    /// Index of its file in `Harness::files`.
    pub file: usize,
    pub id: String,
    /// `/links/<id>?secret=<secret>`, as the handler sees a redemption.
    pub path: String,
    pub max_downloads: Option<u32>,
    pub downloads: u32,
    pub revoked: bool,
}

/// A sub as one path segment.
fn segment(sub: &str) -> String {
    utf8_percent_encode(sub, NON_ALPHANUMERIC).to_string()
}

impl Harness {
    /// The model file `at` if it is live and available to its owner `user`, or why not: the
    /// status and code a change of its sharing by `user` must get.
    fn shareable(&self, user: usize, at: Option<usize>) -> Result<usize, (u16, &'static str)> {
        match self.visible(user, at) {
            None => Err((404, "not_found")),
            Some(file) if file.status != Status::Available => Err((409, "not_ready")),
            Some(_) => Ok(at.expect("visible")),
        }
    }

    /// A URL handed out for file `at` must be for exactly its key, and serve its bytes.
    async fn check_served(&self, at: usize, url: &str, what: &str) -> Result<(), TestCaseError> {
        let file: &ModelFile = &self.files[at];
        let expected = format!("{}{}", prefix_of(&file.owner), file.id);
        check!(
            key_of(url) == expected,
            "{what}: key {} is not {expected}",
            key_of(url)
        );
        let response = http_client().get(url).send().await.expect("GET");
        check!(
            response.status() == 200,
            "{what}: GET {}",
            response.status()
        );
        let body = response.bytes().await.expect("body");
        check!(
            body.as_ref() == file.bytes.as_slice(),
            "{what}: other bytes"
        );
        Ok(())
    }

    pub async fn grant(
        &mut self,
        who: &Who,
        file: &FileRef,
        grantee: usize,
    ) -> Result<(), TestCaseError> {
        let (id, at) = self.resolve(file);
        let owner = self.user_of(who, at);
        let answer = self
            .api
            .call(
                "POST",
                &format!("/files/{id}/grants"),
                Some(&self.users[owner]),
                Some(json!({ "grantee": self.users[grantee] })),
            )
            .await;
        let expected = match self.shareable(owner, at) {
            Err(refusal) => refusal,
            Ok(_) if grantee == owner => (409, "conflict"),
            Ok(_) => (201, ""),
        };
        check!(
            (answer.status.as_u16(), code_or_empty(&answer)) == expected,
            "grant {id} by {} to {}: {answer:?}",
            self.users[owner],
            self.users[grantee]
        );
        if let (201, Some(at)) = (expected.0, at) {
            self.files[at].grants.insert(grantee);
        }
        Ok(())
    }

    pub async fn revoke(
        &mut self,
        who: &Who,
        file: &FileRef,
        grantee: usize,
    ) -> Result<(), TestCaseError> {
        let (id, at) = self.resolve(file);
        let owner = self.user_of(who, at);
        let path = format!("/files/{id}/grants/{}", segment(&self.users[grantee]));
        let answer = self
            .api
            .call("DELETE", &path, Some(&self.users[owner]), None)
            .await;
        let expected = match self.shareable(owner, at) {
            Err(refusal) => refusal,
            Ok(at) if self.files[at].grants.contains(&grantee) => (204, ""),
            Ok(_) => (404, "not_found"),
        };
        check!(
            (answer.status.as_u16(), code_or_empty(&answer)) == expected,
            "revoke {path} by {}: {answer:?}",
            self.users[owner]
        );
        if let (204, Some(at)) = (expected.0, at) {
            self.files[at].grants.remove(&grantee);
        }
        Ok(())
    }

    /// `caller` asks for a download URL of `file` as shared by `owner`.
    pub async fn shared_download(
        &self,
        caller: &Who,
        file: &FileRef,
        owner: &Who,
    ) -> Result<(), TestCaseError> {
        let (id, at) = self.resolve(file);
        let (caller, owner) = (self.user_of(caller, at), self.user_of(owner, at));
        let path = format!("/shared/{}/{id}/download-url", segment(&self.users[owner]));
        let answer = self
            .api
            .call("GET", &path, Some(&self.users[caller]), None)
            .await;
        let granted = at.filter(|at| {
            let file = &self.files[*at];
            !file.deleted
                && file.owner == self.users[owner]
                && file.status == Status::Available
                && file.grants.contains(&caller)
        });
        let what = format!("{path} by {}", self.users[caller]);
        match granted {
            None => check!(
                answer.status == StatusCode::NOT_FOUND,
                "{what}: a URL without a live grant: {answer:?}"
            ),
            Some(at) => {
                check!(answer.status == StatusCode::OK, "{what}: {answer:?}");
                let url = answer.body["url"].as_str().unwrap_or_default();
                self.check_served(at, url, &what).await?;
                Seen::count(&self.seen.shared_urls);
            }
        }
        Ok(())
    }

    /// `GET /shared` of `user` lists exactly the live files granted to it.
    pub async fn check_shared(&self, user: usize) -> Result<(), TestCaseError> {
        let answer = self
            .api
            .call("GET", "/shared?limit=100", Some(&self.users[user]), None)
            .await;
        check!(answer.status == StatusCode::OK, "shared: {answer:?}");
        let listed: BTreeSet<(String, String)> = answer.body["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|file| (text(&file["owner"]), text(&file["id"])))
            .collect();
        let expected: BTreeSet<(String, String)> = self
            .files
            .iter()
            .filter(|file| !file.deleted && file.grants.contains(&user))
            .map(|file| (file.owner.clone(), file.id.clone()))
            .collect();
        check!(
            listed == expected,
            "shared with {}: {listed:?}, model {expected:?}",
            self.users[user]
        );
        Ok(())
    }

    pub async fn create_link(
        &mut self,
        who: &Who,
        file: &FileRef,
        max_downloads: Option<u32>,
    ) -> Result<(), TestCaseError> {
        let (id, at) = self.resolve(file);
        let owner = self.user_of(who, at);
        let body = match max_downloads {
            Some(max) => json!({ "maxDownloads": max }),
            None => json!({}),
        };
        let answer = self
            .api
            .call(
                "POST",
                &format!("/files/{id}/links"),
                Some(&self.users[owner]),
                Some(body),
            )
            .await;
        let expected = match self.shareable(owner, at) {
            Err(refusal) => refusal,
            Ok(_) => (201, ""),
        };
        check!(
            (answer.status.as_u16(), code_or_empty(&answer)) == expected,
            "link to {id} by {}: {answer:?}",
            self.users[owner]
        );
        if let (201, Some(at)) = (expected.0, at) {
            let url = text(&answer.body["link"]["url"]);
            let path = url
                .strip_prefix("https://api.example.com")
                .map(str::to_owned);
            check!(path.is_some(), "link URL {url}");
            self.links.push(ModelLink {
                file: at,
                id: text(&answer.body["link"]["id"]),
                path: path.unwrap_or_default(),
                max_downloads,
                downloads: 0,
                revoked: false,
            });
        }
        Ok(())
    }

    /// Someone with no identity redeems link `at`, with its secret or, `tampered`, another one.
    pub async fn redeem(&mut self, at: usize, tampered: bool) -> Result<(), TestCaseError> {
        let link = &self.links[at];
        let path = if tampered {
            let (base, _) = link.path.split_once("?secret=").unwrap_or_default();
            format!("{base}?secret={}", "A".repeat(43))
        } else {
            link.path.clone()
        };
        let event = HttpApiEvent::new("GET", &path)
            .header("accept", "application/json")
            .to_json();
        let answer = self.api.send_event(&event).await;
        let admitted = !tampered
            && !link.revoked
            && !self.files[link.file].deleted
            && link.max_downloads.is_none_or(|max| link.downloads < max);
        let what = format!("redeem link {} (tampered: {tampered})", link.id);
        if !admitted {
            check!(
                answer.status == StatusCode::NOT_FOUND,
                "{what}: a URL through a dead link: {answer:?}"
            );
            Seen::count(&self.seen.dead_links);
            return Ok(());
        }
        check!(answer.status == StatusCode::OK, "{what}: {answer:?}");
        let file = link.file;
        self.links[at].downloads += 1;
        Seen::count(&self.seen.link_urls);
        self.check_served(file, answer.body["url"].as_str().unwrap_or_default(), &what)
            .await
    }

    /// `who` revokes link `at` (someone else's link is not found, as a missing one).
    pub async fn revoke_link(&mut self, who: &Who, at: usize) -> Result<(), TestCaseError> {
        let user = self.user_of(who, Some(self.links[at].file));
        let link = &self.links[at];
        let file = &self.files[link.file];
        let path = format!("/files/{}/links/{}", file.id, link.id);
        let answer = self
            .api
            .call("DELETE", &path, Some(&self.users[user]), None)
            .await;
        let owns = !file.deleted && file.owner == self.users[user];
        let expected = if owns && !link.revoked { 204 } else { 404 };
        check!(
            answer.status.as_u16() == expected,
            "revoke {path} by {}: {answer:?}",
            self.users[user]
        );
        if expected == 204 {
            self.links[at].revoked = true;
        }
        Ok(())
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}
