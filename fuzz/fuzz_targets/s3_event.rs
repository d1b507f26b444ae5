//! `make fuzz`: see tests/support/fuzzing.rs for what this target checks.
#![no_main]

use presign_gate_test_support::fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::s3_event(data);
});
