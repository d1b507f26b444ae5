//! Presign Gate: hands out S3 presigned URLs for direct browser uploads and downloads, only to the
//! caller that a DynamoDB ownership record names.
//!
//! Layout, from the inside out: `domain` (rules, no AWS), `store` and `storage` (ports and their
//! AWS adapters), `service` (use cases over the ports), `http` (routing, identity, responses).
//! The binaries in `src/bin` only wire these together at cold start.

pub mod aws;
pub mod config;
pub mod domain;
pub mod entry;
pub mod error;
pub mod events;
pub mod http;
pub mod service;
pub mod storage;
pub mod store;
pub mod telemetry;
