//! The rules of the product, in plain Rust: who owns what, where it lives in the bucket, and what
//! may be uploaded or downloaded for how long. Nothing here knows about AWS or HTTP, so every rule
//! is unit-tested directly.

mod disposition;
mod file;
mod file_event;
mod grant;
mod idempotency;
mod lifecycle;
mod link;
mod multipart;
mod owner;
mod policy;
mod quota;
mod scan;

pub use disposition::{Disposition, content_disposition};
pub use file::{
    FileId, FileRecord, FileStatus, ObjectKey, RejectReason, format_timestamp, parse_timestamp,
};
pub use file_event::{FileChange, FileEvent, FileEventKind};
pub use grant::{FileSharing, Grant, MAX_GRANTS_PER_FILE, SharedFile};
pub use idempotency::{IdempotencyKey, MAX_IDEMPOTENCY_KEY_LEN};
pub use lifecycle::{LIFECYCLE_ABORT_DAYS, lifecycle_abort_by};
pub use link::{
    LINK_URL_LIFETIME, LinkId, LinkLedger, LinkPolicy, LinkSecret, LinkTarget, MAX_LINKS_PER_FILE,
    ShareLink,
};
pub use multipart::{
    MAX_OBJECT_SIZE, MAX_PARTS_PER_REQUEST, MAX_SINGLE_PUT_SIZE, MultipartUpload, PartPlan,
    PartRequest, PartsRequest, PartsVerdict, UploadedPart,
};
pub use owner::OwnerId;
pub use policy::{
    DEFAULT_MULTIPART_THRESHOLD_BYTES, ExpiryPolicy, NewUpload, UploadPolicy, UploadRequest,
    check_disposition, check_sha256,
};
pub use quota::{Ledger, PURGE_GRID, PendingTally, QuotaLimits, Usage, purge_time};
pub use scan::{ScanOutcome, ScanVerdict, same_etag, scan_outcome};
