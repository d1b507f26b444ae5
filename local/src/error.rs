//! Everything that stops local-aws at start. Nothing a request carries ends up here: requests get
//! HTTP answers, never a crash.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    ReadTemplate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template.yaml is not YAML: {0}")]
    TemplateYaml(#[from] serde_norway::Error),
    #[error("template.yaml: {0}")]
    Template(String),
    #[error("{0:?} is not a browser origin (scheme://host[:port])")]
    Origin(String),
    #[error("{0} is not an http:// URL with a host")]
    Url(&'static str),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the S3 data directory {path}: {detail}")]
    DataDir { path: PathBuf, detail: String },
}
