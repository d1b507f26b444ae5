use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{IdempotencyKey, MultipartUpload, NewUpload, OwnerId};
use crate::error::AppError;

/// Timestamps are stored and returned as RFC 3339 in UTC, whole seconds.
pub fn format_timestamp(at: OffsetDateTime) -> Result<String, AppError> {
    at.format(&Rfc3339)
        .map_err(|e| AppError::Internal(e.into()))
}

pub fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// A file's id: a random UUID v4 chosen by the server, so ids are unguessable and never collide
/// with another owner's; or, for a reservation made with an `Idempotency-Key`, a UUID v8 derived
/// from the owner and the key (`FileId::for_idempotency_key`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(Uuid);

impl FileId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// For ids derived rather than drawn (`FileId::for_idempotency_key`).
    pub(super) fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// Accepts only the canonical lowercase hyphenated form that the server hands out. Braced,
    /// URN, uppercase or percent-encoded spellings are not ids, so one file has one spelling.
    pub fn parse(text: &str) -> Option<Self> {
        let id = Uuid::try_parse(text).ok()?;
        (id.hyphenated().to_string() == text).then_some(Self(id))
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({self})")
    }
}

/// Where a file's bytes live: `users/<owner segment>/<file id>`. The server makes every key; the
/// user's filename never enters it, so no input can steer a URL to another object.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ObjectKey(String);

const KEY_PREFIX: &str = "users/";

impl ObjectKey {
    /// Where every file's bytes live, and all that the functions may touch.
    pub const PREFIX: &str = KEY_PREFIX;

    pub fn for_file(owner: &OwnerId, id: FileId) -> Self {
        Self(format!("{KEY_PREFIX}{}/{id}", owner.key_segment()))
    }

    /// The owner and id a key names, for keys this scheme made; `None` for any other key.
    pub fn parse(key: &str) -> Option<(OwnerId, FileId)> {
        let rest = key.strip_prefix(KEY_PREFIX)?;
        let (segment, id) = rest.split_once('/')?;
        Some((OwnerId::from_key_segment(segment)?, FileId::parse(id)?))
    }

    /// A key under the managed prefix that the scheme did not make (an id that is not a UUID, an
    /// extra segment...): it names no file, but it is still ours to clean up. `None` outside
    /// `users/`, where the function has no rights at all.
    pub fn stray(key: &str) -> Option<Self> {
        (key.len() > KEY_PREFIX.len() && key.starts_with(KEY_PREFIX)).then(|| Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileStatus {
    /// Reserved: an upload URL was issued, the object is not confirmed yet.
    Pending,
    /// Uploaded and checked against the reservation, waiting for the malware scan's verdict
    /// (`SCAN_UPLOADS`): it counts against the quota, but no URL is handed out for it.
    Scanning,
    /// Uploaded and checked against the reservation (and scanned clean, when uploads are
    /// scanned); downloads are allowed.
    Available,
    /// The upload was refused and its object deleted; `FileRecord::rejected_for` says why.
    Rejected,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Scanning => "scanning",
            Self::Available => "available",
            Self::Rejected => "rejected",
        }
    }

    /// Whether the object is in the bucket and accepted (scanning or available): it counts as
    /// stored bytes, and its removal from S3 removes the record.
    pub fn is_uploaded(self) -> bool {
        matches!(self, Self::Scanning | Self::Available)
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "scanning" => Some(Self::Scanning),
            "available" => Some(Self::Available),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }
}

/// Why an upload was rejected: stored with the record and shown to its owner.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RejectReason {
    /// The stored object differs from the reservation (size, type, checksum, headers).
    Mismatch,
    /// The reservation lapsed and the bytes no longer fit the owner's quota.
    OverQuota,
    /// The malware scan found a threat.
    Malware,
    /// The malware scanner could not scan the object (for example a password-protected
    /// archive), so it cannot be shown to be clean.
    Unscannable,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mismatch => "mismatch",
            Self::OverQuota => "over_quota",
            Self::Malware => "malware",
            Self::Unscannable => "unscannable",
        }
    }

    /// Why, in a sentence for the uploader.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Mismatch => "the object did not match the reservation",
            Self::OverQuota => "the file no longer fitted the quota",
            Self::Malware => "the malware scan found a threat in it",
            Self::Unscannable => "the malware scan could not scan it",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Mismatch,
            Self::OverQuota,
            Self::Malware,
            Self::Unscannable,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == text)
    }
}

/// The ownership record: the single source of truth for who may have a URL for which object.
#[derive(Clone, PartialEq, Debug)]
pub struct FileRecord {
    pub owner: OwnerId,
    pub id: FileId,
    pub key: ObjectKey,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// Base64 SHA-256 the uploader declared; S3 verifies it when the object is written.
    pub sha256: Option<String>,
    pub status: FileStatus,
    pub created_at: OffsetDateTime,
    /// When an unconfirmed reservation may be purged (the table's TTL attribute).
    pub purge_at: Option<OffsetDateTime>,
    pub etag: Option<String>,
    pub uploaded_at: Option<OffsetDateTime>,
    /// Why the upload was rejected; `None` unless rejected (and for rejections recorded before
    /// reasons were).
    pub rejected_for: Option<RejectReason>,
    /// S3's multipart upload behind a multipart reservation; `None` for a single PUT. Boxed:
    /// most records have none.
    pub multipart: Option<Box<MultipartUpload>>,
    /// The `Idempotency-Key` the reservation was made with, if any (its id derives from it).
    pub idempotency_key: Option<IdempotencyKey>,
}

impl FileRecord {
    /// The record of a new reservation: the one place a checked upload becomes a record, so a
    /// field of the upload cannot be dropped on the way. A multipart upload's plan goes into the
    /// record through [`FileRecord::pending_multipart`], with S3's upload id.
    pub fn pending(
        owner: OwnerId,
        id: FileId,
        upload: NewUpload,
        created_at: OffsetDateTime,
        purge_at: OffsetDateTime,
    ) -> Self {
        Self::new_pending(owner, id, upload, created_at, purge_at, None)
    }

    /// The record of a new multipart reservation, once S3 has created the upload `upload_id`;
    /// `expires_at` is when the reservation lapses. An upload without a plan is a fault.
    pub fn pending_multipart(
        owner: OwnerId,
        id: FileId,
        upload: NewUpload,
        created_at: OffsetDateTime,
        purge_at: OffsetDateTime,
        upload_id: String,
        expires_at: OffsetDateTime,
    ) -> Result<Self, AppError> {
        let plan = upload
            .parts
            .ok_or_else(|| AppError::Internal("a multipart record without a part plan".into()))?;
        let multipart = MultipartUpload {
            upload_id,
            plan,
            expires_at,
        };
        Ok(Self::new_pending(
            owner,
            id,
            upload,
            created_at,
            purge_at,
            Some(Box::new(multipart)),
        ))
    }

    fn new_pending(
        owner: OwnerId,
        id: FileId,
        upload: NewUpload,
        created_at: OffsetDateTime,
        purge_at: OffsetDateTime,
        multipart: Option<Box<MultipartUpload>>,
    ) -> Self {
        let NewUpload {
            filename,
            content_type,
            size,
            sha256,
            // In `multipart`, when there is one.
            parts: _,
        } = upload;
        Self {
            key: ObjectKey::for_file(&owner, id),
            owner,
            id,
            filename,
            content_type,
            size,
            sha256,
            status: FileStatus::Pending,
            created_at,
            purge_at: Some(purge_at),
            etag: None,
            uploaded_at: None,
            rejected_for: None,
            multipart,
            idempotency_key: None,
        }
    }
}

#[cfg(test)]
impl FileRecord {
    /// A 3-byte text file of alice's in `status`, for the domain's unit tests.
    pub(crate) fn example(status: FileStatus) -> Self {
        let upload = NewUpload {
            filename: "a.txt".into(),
            content_type: "text/plain".into(),
            size: 3,
            sha256: None,
            parts: None,
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        let owner = OwnerId::parse("alice").unwrap();
        let id = FileId::parse("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0").unwrap();
        Self {
            status,
            ..Self::pending(owner, id, upload, now, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_id_shows_as_its_uuid_in_debug_output_too() {
        let id = FileId::parse("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0").unwrap();
        assert_eq!(id.to_string(), "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0");
        assert_eq!(
            format!("{id:?}"),
            "FileId(0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0)"
        );
    }

    #[test]
    fn keys_name_their_owner_and_file() {
        let owner = OwnerId::parse("auth0|abc.def").unwrap();
        let id = FileId::new_random();
        let key = ObjectKey::for_file(&owner, id);
        assert_eq!(key.as_str(), format!("users/auth0%7Cabc%2Edef/{id}"));
        assert_eq!(ObjectKey::parse(key.as_str()), Some((owner, id)));
    }

    #[test]
    fn foreign_keys_are_not_parsed() {
        let id = FileId::new_random();
        for key in [
            format!("uploads/alice/{id}"),
            format!("users/alice/{id}/extra"),
            format!("users/alice/{}", id.to_string().to_uppercase()),
            "users/alice".to_owned(),
            format!("users//{id}"),
        ] {
            assert_eq!(ObjectKey::parse(&key), None, "{key}");
        }
    }

    #[test]
    fn stray_keys_are_only_those_under_the_prefix() {
        assert!(ObjectKey::stray("users/alice/not-a-uuid").is_some());
        assert!(ObjectKey::stray("users/").is_none());
        assert!(ObjectKey::stray("uploads/alice/x").is_none());
        assert!(ObjectKey::stray("Users/alice/x").is_none());
    }

    #[test]
    fn only_canonical_ids_parse() {
        let id = FileId::new_random();
        let text = id.to_string();
        assert_eq!(FileId::parse(&text), Some(id));
        for other in [
            text.to_uppercase(),
            text.replace('-', ""),
            format!("{{{text}}}"),
            format!("urn:uuid:{text}"),
            text.replacen('-', "%2D", 1),
            String::new(),
            "..".to_owned(),
        ] {
            assert_eq!(FileId::parse(&other), None, "{other}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for status in [
            FileStatus::Pending,
            FileStatus::Scanning,
            FileStatus::Available,
            FileStatus::Rejected,
        ] {
            assert_eq!(FileStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(FileStatus::parse("Available"), None);
        for reason in [
            RejectReason::Mismatch,
            RejectReason::OverQuota,
            RejectReason::Malware,
            RejectReason::Unscannable,
        ] {
            assert_eq!(RejectReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(RejectReason::parse("Malware"), None);
    }
}
