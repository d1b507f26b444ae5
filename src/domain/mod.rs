//! The rules of the product, in plain Rust: who owns what, where it lives in the bucket, and what
//! may be uploaded or downloaded for how long. Nothing here knows about AWS or HTTP, so every rule
//! is unit-tested directly.

mod disposition;
mod file;
mod owner;
mod policy;
mod quota;

pub use disposition::{Disposition, content_disposition};
pub use file::{FileId, FileRecord, FileStatus, ObjectKey, format_timestamp, parse_timestamp};
pub use owner::OwnerId;
pub use policy::{ExpiryPolicy, NewUpload, UploadPolicy, UploadRequest, check_disposition};
pub use quota::{Ledger, PendingEntry, QuotaLimits, Usage};
