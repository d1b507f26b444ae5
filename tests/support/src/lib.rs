//! The test harness of Presign Gate: one crate, taken the same way by every integration test,
//! benchmark, fuzz target and the bench harness.
//!
//! - `api`: the real handler driven with API Gateway events, over any store and bucket.
//! - `events`: API Gateway and S3 events, built one way.
//! - `events_function` (feature `standins`): the events function's real handler in process,
//!   behind the Invoke URL local-aws delivers S3's and GuardDuty's events to.
//! - `fakes`: in-memory `OwnershipStore` and a versioned bucket, for fast tests of the
//!   application's logic.
//! - `function_process` (feature `standins`): a function's real binary started as Lambda starts
//!   it, on the Runtime API, pointed at the stand-ins.
//! - `fuzzing`: the fuzz harnesses over the fakes.
//! - `runtime_api`: the Lambda Runtime API on loopback, to run a function's real binary as Lambda
//!   does (the bench harness and tests/runtime_logs.rs).
//! - `standins` (feature `standins`, re-exported at the root): local-aws and moto on free ports,
//!   every request authorized as IAM would from template.yaml, the real handler over them, and
//!   an HTTP client for the presigned URLs.
//! - `mocked` (feature `mocked`): the real handler over SDK clients answered by mock rules.

pub mod api;
pub mod events;
#[cfg(feature = "standins")]
pub mod events_function;
pub mod fakes;
#[cfg(feature = "standins")]
pub mod function_process;
pub mod fuzzing;
#[cfg(feature = "mocked")]
pub mod mocked;
pub mod runtime_api;
#[cfg(feature = "standins")]
mod standins;

pub use api::{Answer, TestApi, file_id, http_api_event};
pub use events::{HttpApiEvent, rest_api_get, s3_event};
#[cfg(feature = "standins")]
pub use standins::*;

/// The bucket and table names every harness uses: the names template.yaml gives them on the
/// local stack (local/src/iam/stack.rs, whose test checks these), so that the roles' statements
/// name them.
pub const BUCKET: &str = "presign-gate-123456789012-us-east-1-00000000loc0";
pub const TABLE: &str = "presign-gate-local-FilesTable";
/// The bus the template creates for file events, on the local stack (`local-aws --print-names`).
pub const EVENT_BUS: &str = "presign-gate-local-files";

/// The EICAR anti-malware test file (eicar.org), which GuardDuty's stand-in finds as a threat,
/// assembled here so that no file of the repository is one.
pub fn eicar() -> Vec<u8> {
    [
        r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD",
        "-ANTIVIRUS-TEST-FILE!$H+H*",
    ]
    .concat()
    .into_bytes()
}
