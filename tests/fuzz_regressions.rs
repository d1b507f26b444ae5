//! Replays every saved fuzz input (`fuzz/regressions/<target>/`: the seed corpus, and every crash
//! `make fuzz` ever found) through the same harness the fuzzer runs, so that a fixed crash
//! stays fixed. The harness asserts more than "no panic": see `tests/support/fuzzing.rs`.
//!
//! Every saved input must reach the function (the handler, or the guard in front of it for an
//! event `lambda_http` cannot parse) and get the answer written down for it here: an input the
//! harness would skip, or one saved without a documented answer, fails.

use presign_gate_test_support::fuzzing::{self, S3Replay};

use std::collections::BTreeMap;
use std::path::Path;

/// The saved inputs of `target`, by file name.
fn saved(target: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let inputs: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    assert!(!inputs.is_empty(), "no saved inputs in {}", dir.display());
    inputs
}

/// Runs `replay` on every saved input of `target` and checks its answer against `documented`,
/// which must name every saved input and nothing else.
fn replay_all<A: std::fmt::Debug + PartialEq>(
    target: &str,
    documented: &[(&str, A)],
    replay: impl Fn(&[u8]) -> Option<A> + std::panic::RefUnwindSafe,
) {
    let inputs = saved(target);
    let names: Vec<&str> = inputs.keys().map(String::as_str).collect();
    let mut listed: Vec<&str> = documented.iter().map(|(name, _)| *name).collect();
    listed.sort_unstable();
    assert_eq!(
        names, listed,
        "fuzz/regressions/{target}: every saved input needs its documented answer here"
    );
    for (name, expected) in documented {
        let data = &inputs[*name];
        let answer = std::panic::catch_unwind(|| replay(data))
            .unwrap_or_else(|_| panic!("{target}/{name} fails again"));
        let answer = answer.unwrap_or_else(|| panic!("{target}/{name} never reached the function"));
        assert_eq!(&answer, expected, "{target}/{name}");
    }
}

/// The seeds reach the handler's success and refusal paths, so the fuzzer starts from there;
/// the crashes found stay answered as documented.
#[test]
fn saved_api_request_inputs_get_their_documented_answer() {
    replay_all(
        "api_request",
        &[
            ("seed-upload", 201),
            ("seed-download", 200),
            ("seed-download-html-inline", 400),
            ("seed-download-foreign", 404),
            ("seed-batch", 200),
            ("seed-list", 200),
            ("seed-delete", 204),
            ("seed-complete-dev-header", 200),
            ("seed-anonymous", 401),
            ("seed-wrong-method", 405),
            // A `sub` that looks like another user's object key: its files still go under its
            // own key segment (the harness checks every URL's prefix).
            ("caller-sub-naming-another-key", 201),
            // A raw query string that is no valid URI: lambda_http panics, the guard answers.
            ("lambda-http-invalid-uri-query", 400),
        ],
        fuzzing::api_replay,
    );
}

#[test]
fn saved_s3_event_inputs_get_their_documented_answer() {
    let handled = |deleted: &[&str]| S3Replay::Event {
        failed_records: 0,
        deleted: deleted.iter().map(|key| (*key).to_owned()).collect(),
    };
    replay_all(
        "s3_event",
        &[
            ("seed-event-created", handled(&[])),
            ("seed-event-removed", handled(&[])),
            // `other/../users/x`: outside users/ as S3 names keys (no path resolution), so it
            // is not the events function's to delete.
            ("seed-event-stray", handled(&[])),
            ("seed-key", S3Replay::Key),
        ],
        fuzzing::s3_replay,
    );
}
