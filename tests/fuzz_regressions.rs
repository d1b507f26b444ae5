//! Replays every saved fuzz input (`fuzz/regressions/<target>/`: the seed corpus, and every crash
//! `make fuzz` ever found) through the same harness the fuzzer runs, so that a fixed crash
//! stays fixed. The harness asserts more than "no panic": see `tests/support/fuzzing.rs`.

use presign_gate_test_support::fuzzing;

use std::path::Path;

fn replay(target: &str, run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no saved inputs in {}", dir.display());
    for input in inputs {
        let data = std::fs::read(&input).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} fails again", input.display());
    }
}

#[test]
fn saved_api_request_inputs_pass() {
    replay("api_request", |data| {
        fuzzing::api_request(data);
    });
}

/// The seeds reach the handler's success and refusal paths, so the fuzzer starts from there.
#[test]
fn seeds_reach_every_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/api_request");
    for (seed, status) in [
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
    ] {
        let data = std::fs::read(dir.join(seed)).unwrap();
        assert_eq!(fuzzing::api_request(&data), Some(status), "{seed}");
    }
}

#[test]
fn saved_s3_event_inputs_pass() {
    replay("s3_event", fuzzing::s3_event);
}
