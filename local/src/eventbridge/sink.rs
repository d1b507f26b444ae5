//! The sink: every event the local EventBridge accepted on a bus of the stack, as a rule's target
//! would receive it (EventBridge User Guide, "Amazon EventBridge events": version, id,
//! detail-type, source, account, time, region, resources, detail). Kept in memory (the newest
//! [`CAPACITY`]) and, with `--events-log`, appended to a JSON-lines file.
//!
//! Read on the demo origin, which serves no CORS (see `faults`):
//!
//! - `GET /__events?owner=<sub>`: `{"events": [...]}`, the events whose `detail.owner` is that
//!   sub (every event without `owner`), newest first, at most [`PAGE`];
//! - `DELETE /__events`: forgets them all (the log file keeps its lines).

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use http::header::CACHE_CONTROL;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::HttpBody;
use crate::error::Error;

/// The path of the sink on the demo origin.
pub const EVENTS_PATH: &str = "/__events";
/// Events kept in memory; older ones are forgotten.
pub const CAPACITY: usize = 1000;
/// Events one read answers.
pub const PAGE: usize = 50;

#[derive(Debug, Default)]
struct Kept {
    events: VecDeque<Value>,
    log: Option<std::fs::File>,
}

/// The events received, shared by the EventBridge listener (which adds) and the demo server
/// (which reads and clears).
#[derive(Debug, Clone, Default)]
pub struct Sink(Arc<Mutex<Kept>>);

impl Sink {
    /// A sink that also appends each event to `path` as a JSON line.
    pub fn with_log(path: &Path) -> Result<Self, Error> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::Config(format!("--events-log {}: {e}", path.display())))?;
        Ok(Self(Arc::new(Mutex::new(Kept {
            events: VecDeque::new(),
            log: Some(file),
        }))))
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn put(&self, event: Value) {
        let mut kept = self.kept();
        if let Some(log) = kept.log.as_mut()
            && let Err(error) = writeln!(log, "{event}")
        {
            tracing::warn!(%error, "cannot write the events log");
        }
        if kept.events.len() == CAPACITY {
            kept.events.pop_front();
        }
        kept.events.push_back(event);
    }

    /// The newest events (of `owner`, when given), newest first, at most [`PAGE`].
    pub fn events(&self, owner: Option<&str>) -> Vec<Value> {
        self.kept()
            .events
            .iter()
            .rev()
            .filter(|event| owner.is_none_or(|owner| event["detail"]["owner"] == owner))
            .take(PAGE)
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.kept().events.clear();
    }

    /// Answers the demo origin's `/__events`.
    pub fn control<B>(&self, request: &Request<B>) -> Response<HttpBody> {
        let mut response = match *request.method() {
            Method::GET => {
                let owner = request
                    .uri()
                    .query()
                    .and_then(|query| query_value(query, "owner"));
                let body = json!({ "events": self.events(owner.as_deref()) });
                crate::json_response(StatusCode::OK, "application/json", &body)
            }
            Method::DELETE => {
                self.clear();
                crate::empty_response(StatusCode::NO_CONTENT)
            }
            _ => crate::empty_response(StatusCode::METHOD_NOT_ALLOWED),
        };
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A query parameter's value, form-decoded (`+` is a space).
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| {
            percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: usize, owner: &str) -> Value {
        json!({"id": id.to_string(), "detail": {"owner": owner}})
    }

    fn ids(events: &[Value]) -> Vec<&str> {
        events.iter().filter_map(|e| e["id"].as_str()).collect()
    }

    #[test]
    fn reads_are_newest_first_per_owner_and_bounded() {
        let sink = Sink::default();
        for id in 0..4 {
            sink.put(event(id, if id % 2 == 0 { "alice" } else { "bob" }));
        }
        assert_eq!(ids(&sink.events(Some("alice"))), ["2", "0"]);
        assert_eq!(ids(&sink.events(Some("bob"))), ["3", "1"]);
        assert_eq!(ids(&sink.events(None)), ["3", "2", "1", "0"]);
        assert!(sink.events(Some("carol")).is_empty());
        for id in 4..CAPACITY + 10 {
            sink.put(event(id, "alice"));
        }
        let page = sink.events(Some("alice"));
        assert_eq!(page.len(), PAGE);
        assert_eq!(page[0]["id"], (CAPACITY + 9).to_string());
        assert_eq!(
            sink.kept().events.len(),
            CAPACITY,
            "the oldest are forgotten"
        );
        sink.clear();
        assert!(sink.events(None).is_empty());
    }

    #[test]
    fn events_are_appended_to_the_log() {
        let log = tempfile::NamedTempFile::new().unwrap();
        let sink = Sink::with_log(log.path()).unwrap();
        sink.put(event(1, "a"));
        sink.put(event(2, "b"));
        sink.clear();
        let lines: Vec<Value> = std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines, [event(1, "a"), event(2, "b")]);
    }

    #[test]
    fn owners_are_form_decoded() {
        assert_eq!(
            query_value("owner=auth0%7Cx+y&n=1", "owner").as_deref(),
            Some("auth0|x y")
        );
        assert_eq!(query_value("n=1", "owner"), None);
    }
}
