//! Idempotent reservations: the `Idempotency-Key` a client sends once per upload, and what makes
//! a repeat of it the same reservation.
//!
//! The file id of a reservation made with a key is derived from the owner and the key, so a
//! repeat names the same record: the record's conditional write (it never overwrites) refuses a
//! second reservation, and the service reads the first one instead, never charging the quota
//! twice. The same key with another request is refused (IETF draft "The Idempotency-Key HTTP
//! Header Field", draft-ietf-httpapi-idempotency-key-header: a key reused with a different
//! payload is 422).

use std::fmt;

use sha2::{Digest, Sha256};

use super::{FileId, FileRecord, NewUpload, OwnerId};
use crate::error::AppError;

/// The longest key accepted: room for any UUID, ULID or the like, with a prefix.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// A checked `Idempotency-Key`: 1 to 128 of ASCII letters, digits, `-`, `_`, `.` and `:`. Its
/// `Debug` leaves the value out, as logs need not carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, AppError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY_LEN || !text.chars().all(allowed) {
            return Err(AppError::invalid(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters of letters, \
                 digits, '-', '_', '.' and ':'"
            )));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdempotencyKey(..)")
    }
}

impl FileId {
    /// The id of `owner`'s reservation made with `key`: the first 16 bytes of a SHA-256 of both
    /// (with a label, and each part length-delimited by a NUL no key or owner holds), as a UUID
    /// of version 8, the version RFC 9562 gives to ids built by custom means. It never equals a
    /// random (version 4) id, and differs for every owner, so no key of one caller names another
    /// caller's file (which a read by the caller could not reach anyway).
    pub fn for_idempotency_key(owner: &OwnerId, key: &IdempotencyKey) -> Self {
        let digest = Sha256::new()
            .chain_update(b"presign-gate idempotency-key v1\0")
            .chain_update(owner.as_str().as_bytes())
            .chain_update(b"\0")
            .chain_update(key.as_str().as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
}

impl FileRecord {
    /// Whether `upload` asks for exactly what this record was reserved for: the same name, type,
    /// size and checksum, and the same way of uploading (single PUT, or parts with or without
    /// their checksums). The URL lifetime asked is no part of it: a repeat may ask for another.
    pub fn reserved_as(&self, upload: &NewUpload) -> bool {
        let plan = self.multipart.as_ref().map(|multipart| multipart.plan);
        self.filename == upload.filename
            && self.content_type == upload.content_type
            && self.size == upload.size
            && self.sha256 == upload.sha256
            && plan == upload.parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_128_safe_characters() {
        for good in [
            "a",
            "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
            "up:1.2_3",
            &"k".repeat(128),
        ] {
            assert!(IdempotencyKey::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            &"k".repeat(129),
            "a b",
            "a/b",
            "ä",
            "a\n",
            "a%20",
            "a,b",
        ] {
            assert!(
                matches!(IdempotencyKey::parse(bad), Err(AppError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_key_names_one_file_per_owner() {
        let alice = OwnerId::parse("alice").unwrap();
        let bob = OwnerId::parse("bob").unwrap();
        let key = IdempotencyKey::parse("k-1").unwrap();
        let id = FileId::for_idempotency_key(&alice, &key);
        assert_eq!(id, FileId::for_idempotency_key(&alice, &key));
        assert_ne!(id, FileId::for_idempotency_key(&bob, &key));
        let other = IdempotencyKey::parse("k-2").unwrap();
        assert_ne!(id, FileId::for_idempotency_key(&alice, &other));
        // A canonical id, of version 8: never one of the random ids.
        assert_eq!(FileId::parse(&id.to_string()), Some(id));
        assert_eq!(id.to_string().as_bytes()[14], b'8');
        // Owner and key cannot trade characters and meet.
        let joined = OwnerId::parse("alicek").unwrap();
        let short = IdempotencyKey::parse("-1").unwrap();
        assert_ne!(id, FileId::for_idempotency_key(&joined, &short));
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let key = IdempotencyKey::parse("secret-ish").unwrap();
        assert!(!format!("{key:?}").contains("secret"));
    }
}
