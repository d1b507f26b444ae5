//! The one error type of the product. Every failure a request can meet is a variant here, and
//! `http::response` maps each to a status, a code and a message in one place.

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed or out-of-range input; the message says what to fix.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("content type {0:?} is not allowed")]
    ContentTypeNotAllowed(String),
    /// A declared upload or a request body over its limit.
    #[error("{0}")]
    TooLarge(String),
    #[error("a valid identity is required")]
    Unauthenticated,
    /// No such file for this caller. Deliberately the same whether the id exists for someone
    /// else or not at all, so that ids cannot be probed.
    #[error("file not found")]
    NotFound,
    #[error("no such route")]
    RouteNotFound,
    /// Carries the methods the path does accept, for the `Allow` header.
    #[error("method not allowed; this route accepts {0}")]
    MethodNotAllowed(String),
    /// The file is not available (yet): pending, scanning or rejected, as it carries.
    #[error("the file is not available for download: it is {}", .0.as_str())]
    NotReady(crate::domain::FileStatus),
    #[error("no object has been uploaded for this file yet")]
    UploadMissing,
    /// A multipart upload that cannot be completed yet; the message says how many parts are
    /// missing (or that the upload is gone). The same code as `UploadMissing`.
    #[error("{0}")]
    PartsMissing(String),
    /// A part request for a file that is not a pending multipart upload.
    #[error("{0}")]
    NotPending(String),
    /// A single-PUT request (a fresh upload URL) for a multipart reservation.
    #[error("{0}")]
    NotSinglePut(String),
    /// `complete` of a multipart reservation past its `expiresAt`: its upload has been aborted.
    #[error("{0}")]
    ReservationLapsed(String),
    /// A request that cannot be done to the file as it is (a grant to oneself, or past the
    /// limit of grants); the message says why.
    #[error("{0}")]
    Conflict(String),
    /// The upload was refused and its object deleted: why in words, and as the file's
    /// `rejectedFor` when it is known.
    #[error("upload rejected: {0}")]
    UploadRejected(String, Option<crate::domain::RejectReason>),
    /// An `Idempotency-Key` the caller already reserved a file with, sent with another request
    /// (another name, type, size, checksum or upload mode); the message says so.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// A reservation would break one of the caller's quotas; the message names the limit.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A backend was throttled, timed out or could not be reached: worth retrying.
    #[error("a backend is unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else that went wrong on our side. The source is logged, never returned.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl AppError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }
}
