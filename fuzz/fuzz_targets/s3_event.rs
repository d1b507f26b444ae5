//! `make fuzz`: see tests/support/fuzzing.rs for what this target checks.
#![no_main]

#[path = "../../tests/support/fuzzing.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    fuzzing::s3_event(data);
});
