//! The items of file records: every attribute's name, and a record's mapping to and from its
//! item, refusing on the way back anything this code could not have written.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use crate::domain::{
    FileId, FileRecord, FileStatus, IdempotencyKey, MultipartUpload, ObjectKey, OwnerId, PartPlan,
    RejectReason, format_timestamp, parse_timestamp,
};
use crate::error::AppError;

/// Table layout: partition key `owner` (the caller's `sub`), sort key `fileId`. Keying by owner
/// makes "someone else's file" and "no such file" the same miss, and a listing one partition.
///
/// Each owner's partition also holds one ledger item (sort key `USAGE_SORT_KEY`) with the owner's
/// quota usage: `availableBytes`, a `version` that every change increments, and one
/// `pendingUntil:<purge time>` map (`count`, `bytes`) per purge time of unconfirmed reservations
/// (`domain::Ledger`). It is no file record:
/// reads by file id can never name it (it is no UUID), and listings start after it.
pub mod attr {
    pub const OWNER: &str = "owner";
    pub const FILE_ID: &str = "fileId";
    pub const OBJECT_KEY: &str = "objectKey";
    pub const FILENAME: &str = "filename";
    pub const CONTENT_TYPE: &str = "contentType";
    pub const SIZE: &str = "size";
    pub const SHA256: &str = "sha256";
    pub const STATUS: &str = "status";
    pub const CREATED_AT: &str = "createdAt";
    /// The table's TTL attribute (epoch seconds), set only while a reservation is unconfirmed.
    pub const PURGE_AT: &str = "purgeAt";
    pub const ETAG: &str = "etag";
    pub const UPLOADED_AT: &str = "uploadedAt";
    /// Why a rejected upload was refused (`RejectReason`).
    pub const REJECTED_FOR: &str = "rejectedFor";
    /// A multipart reservation's S3 upload id, part plan and lapse time: all four or none.
    pub const MULTIPART_UPLOAD_ID: &str = "multipartUploadId";
    pub const PART_SIZE: &str = "partSize";
    pub const PART_COUNT: &str = "partCount";
    pub const MULTIPART_EXPIRES_AT: &str = "multipartExpiresAt";
    /// `SHA256` when every part carries its SHA-256; absent when none does.
    pub const PART_CHECKSUM: &str = "partChecksumAlgorithm";
    /// The `Idempotency-Key` a reservation was made with; its file id derives from it.
    pub const IDEMPOTENCY_KEY: &str = "idempotencyKey";

    /// The ledger item's sort key. `#` sorts before every digit and letter, so in an owner's
    /// partition the ledger comes before every file id, and a listing starts after it.
    pub const USAGE_SORT_KEY: &str = "#usage";
    pub const AVAILABLE_BYTES: &str = "availableBytes";
    pub const VERSION: &str = "version";
    /// Prefix of a tally's attribute in the ledger item, followed by its purge time in epoch
    /// seconds. One top-level attribute per tally (not a map of them), so a condition can ask
    /// whether one tally is still there.
    pub const TALLY_PREFIX: &str = "pendingUntil:";
    /// Prefix of a pending reservation's own attribute in a ledger written before tallies,
    /// followed by its file id (a map of `size` and `purgeAt`). Read as part of its purge time's
    /// tally, removed by every change of its reservation, and gone at the owner's next
    /// reservation, which writes the whole ledger anew.
    pub const LEGACY_PENDING_PREFIX: &str = "pending:";

    /// Every attribute a record can have; the round-trip test checks that a complete record
    /// writes each of them.
    pub const ALL: &[&str] = &[
        OWNER,
        FILE_ID,
        OBJECT_KEY,
        FILENAME,
        CONTENT_TYPE,
        SIZE,
        SHA256,
        STATUS,
        CREATED_AT,
        PURGE_AT,
        ETAG,
        UPLOADED_AT,
        MULTIPART_UPLOAD_ID,
        PART_SIZE,
        PART_COUNT,
        MULTIPART_EXPIRES_AT,
        PART_CHECKSUM,
        IDEMPOTENCY_KEY,
    ];
}

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> AppError {
    AppError::Internal(e.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn key(owner: &OwnerId, id: FileId) -> Item {
    HashMap::from([
        (attr::OWNER.to_owned(), s(owner.as_str())),
        (attr::FILE_ID.to_owned(), s(id.to_string())),
    ])
}

/// The item of a record. The record is taken apart field by field, with no `..`: a field added
/// to `FileRecord` does not compile until it is stored here (and read back in `from_item`, which
/// the round-trip test checks).
pub(super) fn to_item(record: &FileRecord) -> Result<Item, AppError> {
    let FileRecord {
        owner,
        id,
        key: object_key,
        filename,
        content_type,
        size,
        sha256,
        status,
        created_at,
        purge_at,
        etag,
        uploaded_at,
        rejected_for,
        multipart,
        idempotency_key,
    } = record;
    let mut item = key(owner, *id);
    let mut optional = Vec::new();
    if let Some(reason) = rejected_for {
        optional.push((attr::REJECTED_FOR, s(reason.as_str())));
    }
    if let Some(idempotency_key) = idempotency_key {
        optional.push((attr::IDEMPOTENCY_KEY, s(idempotency_key.as_str())));
    }
    if let Some(sha256) = sha256 {
        optional.push((attr::SHA256, s(sha256)));
    }
    if let Some(purge_at) = purge_at {
        optional.push((
            attr::PURGE_AT,
            AttributeValue::N(purge_at.unix_timestamp().to_string()),
        ));
    }
    if let Some(etag) = etag {
        optional.push((attr::ETAG, s(etag)));
    }
    if let Some(uploaded_at) = uploaded_at {
        optional.push((attr::UPLOADED_AT, s(format_timestamp(*uploaded_at)?)));
    }
    if let Some(multipart) = multipart {
        let MultipartUpload {
            upload_id,
            plan,
            expires_at,
        } = multipart.as_ref();
        optional.extend([
            (attr::MULTIPART_UPLOAD_ID, s(upload_id)),
            (attr::PART_SIZE, n(plan.part_size())),
            (attr::PART_COUNT, n(plan.part_count())),
            (
                attr::MULTIPART_EXPIRES_AT,
                s(format_timestamp(*expires_at)?),
            ),
        ]);
        if plan.part_sha256() {
            optional.push((attr::PART_CHECKSUM, s(PART_CHECKSUM_SHA256)));
        }
    }
    let required = [
        (attr::OBJECT_KEY, s(object_key.as_str())),
        (attr::FILENAME, s(filename)),
        (attr::CONTENT_TYPE, s(content_type)),
        (attr::SIZE, AttributeValue::N(size.to_string())),
        (attr::STATUS, s(status.as_str())),
        (attr::CREATED_AT, s(format_timestamp(*created_at)?)),
    ];
    for (name, value) in required.into_iter().chain(optional) {
        item.insert(name.to_owned(), value);
    }
    Ok(item)
}

/// Reads an item back, refusing anything this code could not have written. In particular the
/// stored object key must be exactly the one the key scheme gives for this owner and id, so a
/// tampered or corrupted record can never point a URL at another object: fail closed.
pub(super) fn from_item(item: &Item) -> Result<FileRecord, AppError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let corrupt = |what: &str| AppError::Internal(format!("corrupt file record: {what}").into());
    let required = |name: &str| text(name).ok_or_else(|| corrupt(name));

    let owner = OwnerId::parse(required(attr::OWNER)?).ok_or_else(|| corrupt(attr::OWNER))?;
    let id = FileId::parse(required(attr::FILE_ID)?).ok_or_else(|| corrupt(attr::FILE_ID))?;
    let key = ObjectKey::for_file(&owner, id);
    if required(attr::OBJECT_KEY)? != key.as_str() {
        return Err(corrupt(attr::OBJECT_KEY));
    }
    let size = item
        .get(attr::SIZE)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| corrupt(attr::SIZE))?;
    let status = FileStatus::parse(required(attr::STATUS)?).ok_or_else(|| corrupt(attr::STATUS))?;
    let created_at =
        parse_timestamp(required(attr::CREATED_AT)?).ok_or_else(|| corrupt(attr::CREATED_AT))?;
    let purge_at = match item.get(attr::PURGE_AT).map(|v| v.as_n()) {
        None => None,
        Some(n) => Some(
            n.ok()
                .and_then(|n| n.parse().ok())
                .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
                .ok_or_else(|| corrupt(attr::PURGE_AT))?,
        ),
    };
    let uploaded_at = match text(attr::UPLOADED_AT) {
        None => None,
        Some(t) => Some(parse_timestamp(t).ok_or_else(|| corrupt(attr::UPLOADED_AT))?),
    };
    let rejected_for = match text(attr::REJECTED_FOR) {
        None => None,
        Some(t) => Some(RejectReason::parse(t).ok_or_else(|| corrupt(attr::REJECTED_FOR))?),
    };
    let multipart = multipart_from_item(item, size)?;
    // A key is stored only with the id it derives: any other pairing is corrupt.
    let idempotency_key = match text(attr::IDEMPOTENCY_KEY) {
        None => None,
        Some(t) => Some(
            IdempotencyKey::parse(t)
                .ok()
                .filter(|k| FileId::for_idempotency_key(&owner, k) == id)
                .ok_or_else(|| corrupt(attr::IDEMPOTENCY_KEY))?,
        ),
    };
    Ok(FileRecord {
        owner,
        id,
        key,
        filename: required(attr::FILENAME)?.to_owned(),
        content_type: required(attr::CONTENT_TYPE)?.to_owned(),
        size,
        sha256: text(attr::SHA256).cloned(),
        status,
        created_at,
        purge_at,
        etag: text(attr::ETAG).cloned(),
        uploaded_at,
        rejected_for,
        multipart,
        idempotency_key,
    })
}

/// The stored value of `attr::PART_CHECKSUM`.
const PART_CHECKSUM_SHA256: &str = "SHA256";

/// A multipart reservation's upload, when the item has one: all of its attributes, and a plan
/// that is exactly the one the size gives, so no stored value can make a URL sign other lengths.
fn multipart_from_item(item: &Item, size: u64) -> Result<Option<Box<MultipartUpload>>, AppError> {
    let corrupt = |what: &str| AppError::Internal(format!("corrupt file record: {what}").into());
    let names = [
        attr::MULTIPART_UPLOAD_ID,
        attr::PART_SIZE,
        attr::PART_COUNT,
        attr::MULTIPART_EXPIRES_AT,
    ];
    // None of them: a single-PUT reservation. Only some: corrupt, and the first one missing
    // below says which.
    if !names.iter().any(|name| item.contains_key(*name)) {
        return Ok(None);
    }
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let upload_id = text(attr::MULTIPART_UPLOAD_ID)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| corrupt(attr::MULTIPART_UPLOAD_ID))?
        .to_owned();
    let part_size = number(attr::PART_SIZE).ok_or_else(|| corrupt(attr::PART_SIZE))?;
    let part_count = number(attr::PART_COUNT)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| corrupt(attr::PART_COUNT))?;
    let part_sha256 = match text(attr::PART_CHECKSUM).map(String::as_str) {
        None => false,
        Some(PART_CHECKSUM_SHA256) => true,
        Some(_) => return Err(corrupt(attr::PART_CHECKSUM)),
    };
    let plan = PartPlan::from_stored(size, part_size, part_count, part_sha256)
        .ok_or_else(|| corrupt("part plan"))?;
    let expires_at = text(attr::MULTIPART_EXPIRES_AT)
        .and_then(|t| parse_timestamp(t))
        .ok_or_else(|| corrupt(attr::MULTIPART_EXPIRES_AT))?;
    Ok(Some(Box::new(MultipartUpload {
        upload_id,
        plan,
        expires_at,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> FileRecord {
        let owner = OwnerId::parse("alice").unwrap();
        let idempotency_key = IdempotencyKey::parse("upload-7").unwrap();
        let id = FileId::for_idempotency_key(&owner, &idempotency_key);
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        FileRecord {
            key: ObjectKey::for_file(&owner, id),
            owner,
            id,
            filename: "résumé.pdf".into(),
            content_type: "application/pdf".into(),
            size: 42,
            sha256: Some("x".repeat(44)),
            status: FileStatus::Pending,
            created_at: now,
            purge_at: Some(now + time::Duration::hours(1)),
            etag: Some("\"abc\"".into()),
            uploaded_at: Some(now),
            rejected_for: None,
            multipart: Some(Box::new(MultipartUpload {
                upload_id: "upload-1".into(),
                plan: PartPlan::for_size(42).unwrap().with_part_sha256(true),
                expires_at: now + time::Duration::hours(24),
            })),
            idempotency_key: Some(idempotency_key),
        }
    }

    #[test]
    fn records_round_trip_through_items() {
        let record = record();
        let item = to_item(&record).unwrap();
        assert_eq!(from_item(&item).unwrap(), record);
        // Every optional field is set in `record()`, so every attribute is written.
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = attr::ALL.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
    }

    #[test]
    fn absent_optional_fields_round_trip_as_absent() {
        let record = FileRecord {
            sha256: None,
            purge_at: None,
            etag: None,
            uploaded_at: None,
            rejected_for: None,
            multipart: None,
            idempotency_key: None,
            ..record()
        };
        let item = to_item(&record).unwrap();
        for name in [
            attr::IDEMPOTENCY_KEY,
            attr::SHA256,
            attr::PURGE_AT,
            attr::ETAG,
            attr::UPLOADED_AT,
            attr::MULTIPART_UPLOAD_ID,
            attr::PART_SIZE,
            attr::PART_COUNT,
            attr::MULTIPART_EXPIRES_AT,
        ] {
            assert!(!item.contains_key(name), "{name}");
        }
        assert_eq!(from_item(&item).unwrap(), record);
    }

    #[test]
    fn a_record_pointing_at_another_key_is_refused() {
        let record = record();
        let mut item = to_item(&record).unwrap();
        item.insert(
            attr::OBJECT_KEY.into(),
            s(format!("users/mallory/{}", record.id)),
        );
        assert!(matches!(from_item(&item), Err(AppError::Internal(_))));
    }

    /// A stored Idempotency-Key names the id it derives, and no other: a record whose key and
    /// id disagree (or whose key is no valid key) is corrupt.
    #[test]
    fn an_idempotency_key_must_derive_its_records_id() {
        let full = to_item(&record()).unwrap();
        for bad in ["upload-8", "", "a b"] {
            let mut item = full.clone();
            item.insert(attr::IDEMPOTENCY_KEY.into(), s(bad));
            assert!(
                matches!(from_item(&item), Err(AppError::Internal(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn incomplete_items_are_errors_not_panics() {
        let full = to_item(&record()).unwrap();
        for name in [
            attr::OWNER,
            attr::FILE_ID,
            attr::SIZE,
            attr::STATUS,
            attr::CREATED_AT,
        ] {
            let mut item = full.clone();
            item.remove(name);
            assert!(
                matches!(from_item(&item), Err(AppError::Internal(_))),
                "{name}"
            );
        }
        let mut item = full.clone();
        item.insert(attr::SIZE.into(), s("42"));
        assert!(from_item(&item).is_err());
        // A multipart upload is all of its attributes, with the plan its size gives, or none.
        for name in [
            attr::MULTIPART_UPLOAD_ID,
            attr::PART_SIZE,
            attr::PART_COUNT,
            attr::MULTIPART_EXPIRES_AT,
        ] {
            let mut item = full.clone();
            item.remove(name);
            assert!(
                matches!(from_item(&item), Err(AppError::Internal(_))),
                "{name}"
            );
        }
        let mut item = full;
        item.insert(attr::PART_SIZE.into(), n(6 * 1024 * 1024));
        assert!(from_item(&item).is_err());
    }
}
