//! Presign Gate: hands out S3 presigned URLs for direct browser uploads and downloads, only to the
//! caller that a DynamoDB ownership record names.
//!
//! Layout, from the inside out:
//! - `domain`: the rules, in plain Rust (no AWS, no HTTP); `error`: the one error type.
//! - `store` (ownership records) and `bucket` (presigning and object calls): the ports, each with
//!   its one AWS adapter; `backend_error` classifies the SDK's failures for both.
//! - `service`: the use cases over the ports; `deadline`: the one time limit of an invocation.
//! - `http` (routing, identity, responses) and `s3_events` (S3 notifications): the two faces.
//! - `config`, `aws` (building the SDK clients) and `telemetry`: what starts a function.
//! - `entry`: assembles all of it at cold start and runs a function's runtime loop; the binaries
//!   in `src/bin` only choose a tokio runtime and call it.
//!
//! Imports point inwards: nothing in `domain`, `store` or `bucket` imports `aws` or `entry`.

// The dev identity lets a request header name the caller: `make local` builds it in (debug
// profile, `cargo lambda watch`); a release build, which is what `make build`, `sam build` and
// deploys produce, must never carry it.
#[cfg(all(feature = "dev-identity", not(debug_assertions)))]
compile_error!("the `dev-identity` feature is for local debug builds only, never a release build");

pub mod aws;
mod backend_error;
pub mod bucket;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod entry;
pub mod error;
pub mod event_bus;
pub mod http;
pub mod inbound_events;
pub mod s3_events;
pub mod scan_events;
pub mod service;
pub mod store;
pub mod stream_events;
pub mod telemetry;
