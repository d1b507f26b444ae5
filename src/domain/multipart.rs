//! Multipart uploads: the server plans the parts, so every part URL can sign its exact length and
//! S3 refuses any byte beyond the reservation.
//!
//! S3's limits (Amazon S3 User Guide, "Amazon S3 multipart upload limits"): 1 to 10,000 parts,
//! each 5 MiB to 5 GiB except the last, which may be smaller; an object of at most 5 TiB.

use std::collections::BTreeSet;

use crate::error::AppError;

const MIB: u64 = 1024 * 1024;

/// The smallest part S3 accepts, except for the last one.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// The most parts one upload may have.
pub const MAX_PART_COUNT: u32 = 10_000;
/// The largest object S3 stores, and so the largest upload that can be reserved.
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * MIB;
/// The largest object one presigned PUT can carry: above it, an upload must be multipart.
pub const MAX_SINGLE_PUT_SIZE: u64 = 5 * 1024 * MIB;
/// Most part URLs one `POST /files/{id}/parts` signs.
pub const MAX_PARTS_PER_REQUEST: usize = 100;

/// How a file of a given size is cut into parts: every part but the last is exactly `part_size`,
/// the last holds the remainder. Built only by [`PartPlan::for_size`] (or read back, checked,
/// by [`PartPlan::from_stored`]), so a plan always fits S3's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartPlan {
    size: u64,
    part_size: u64,
    part_count: u32,
    /// Every part carries its SHA-256, or none does. S3 fixes this when the upload is created
    /// (`x-amz-checksum-algorithm` of CreateMultipartUpload) and refuses a part that differs
    /// ("Checksum Type mismatch"), so the caller chooses at reservation, not part by part.
    part_sha256: bool,
}

impl PartPlan {
    /// The plan for `size` bytes (1 to 5 TiB): parts of at least 5 MiB, in whole MiB, as small as
    /// 10,000 parts allow (small parts resume and retry cheaply).
    pub fn for_size(size: u64) -> Result<Self, AppError> {
        if !(1..=MAX_OBJECT_SIZE).contains(&size) {
            return Err(AppError::TooLarge(format!(
                "a multipart upload holds 1 to {MAX_OBJECT_SIZE} bytes"
            )));
        }
        let smallest = size.div_ceil(u64::from(MAX_PART_COUNT));
        let part_size = smallest
            .div_ceil(MIB)
            .saturating_mul(MIB)
            .max(MIN_PART_SIZE);
        // At most 10,000 parts, none above S3's 5 GiB, for every size up to 5 TiB: the tests
        // below prove it over the whole range, so there is nothing left to check at run time.
        let part_count = u32::try_from(size.div_ceil(part_size))
            .map_err(|_| AppError::Internal("a part plan outside S3's limits".into()))?;
        Ok(Self {
            size,
            part_size,
            part_count,
            part_sha256: false,
        })
    }

    /// The same plan, with every part carrying its SHA-256 (`true`) or none (`false`).
    pub fn with_part_sha256(self, part_sha256: bool) -> Self {
        Self {
            part_sha256,
            ..self
        }
    }

    /// A plan as a record stored it; `None` unless it is exactly the plan `for_size` makes, so a
    /// tampered record cannot sign other lengths.
    pub fn from_stored(
        size: u64,
        part_size: u64,
        part_count: u32,
        part_sha256: bool,
    ) -> Option<Self> {
        let plan = Self::for_size(size).ok()?;
        (plan.part_size == part_size && plan.part_count == part_count)
            .then_some(plan.with_part_sha256(part_sha256))
    }

    /// Whether every part carries its SHA-256 (see the field).
    pub fn part_sha256(&self) -> bool {
        self.part_sha256
    }

    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    pub fn part_count(&self) -> u32 {
        self.part_count
    }

    /// The exact length of part `number`, or `None` outside 1..=part_count.
    pub fn part_length(&self, number: u32) -> Option<u64> {
        if !(1..=self.part_count).contains(&number) {
            return None;
        }
        let before = u64::from(number - 1) * self.part_size;
        Some((self.size - before).min(self.part_size))
    }

    /// Checks a batch of part numbers to sign: 1 to 100 of them, each within the plan, none
    /// repeated.
    pub fn check_batch(&self, numbers: &[u32]) -> Result<(), AppError> {
        if numbers.is_empty() || numbers.len() > MAX_PARTS_PER_REQUEST {
            return Err(AppError::invalid(format!(
                "parts must hold 1 to {MAX_PARTS_PER_REQUEST} entries"
            )));
        }
        let mut seen = BTreeSet::new();
        for &number in numbers {
            if self.part_length(number).is_none() {
                return Err(AppError::invalid(format!(
                    "partNumber {number} is outside 1..={}",
                    self.part_count
                )));
            }
            if !seen.insert(number) {
                return Err(AppError::invalid(format!(
                    "partNumber {number} is given more than once"
                )));
            }
        }
        Ok(())
    }

    /// Checks that each part to sign declares a SHA-256 exactly when the plan says parts carry
    /// one: S3 would refuse the other parts' uploads.
    pub fn check_part_checksums(&self, parts: &[PartRequest]) -> Result<(), AppError> {
        for part in parts {
            match (self.part_sha256, &part.sha256) {
                (true, None) => {
                    return Err(AppError::invalid(format!(
                        "partNumber {} needs its sha256: this upload was reserved with \
                         partSha256, so S3 takes no part without one",
                        part.part_number
                    )));
                }
                (false, Some(_)) => {
                    return Err(AppError::invalid(format!(
                        "partNumber {} carries a sha256, but this upload was reserved without \
                         partSha256, so S3 would refuse it; reserve with \"partSha256\": true \
                         to send part checksums",
                        part.part_number
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks what S3 holds (ListParts, in any order) against the plan: the parts to complete
    /// with, in order, when every planned part is there with its planned length. Parts beyond the
    /// plan are left out (S3 frees the parts a completion does not list); no URL this service
    /// signs can make one.
    pub fn check_uploaded(
        &self,
        uploaded: &[UploadedPart],
    ) -> Result<Vec<UploadedPart>, PartsVerdict> {
        let mut complete = Vec::with_capacity(self.part_count as usize);
        let mut missing = 0u32;
        for number in 1..=self.part_count {
            let expected = self.part_length(number).unwrap_or_default();
            match uploaded.iter().find(|part| part.part_number == number) {
                None => missing += 1,
                Some(part) if part.size != expected => {
                    return Err(PartsVerdict::WrongSize {
                        part_number: number,
                        size: part.size,
                        expected,
                    });
                }
                Some(part) => complete.push(part.clone()),
            }
        }
        if missing > 0 {
            return Err(PartsVerdict::Missing {
                missing,
                of: self.part_count,
            });
        }
        Ok(complete)
    }
}

/// Why the uploaded parts cannot be completed yet, or ever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartsVerdict {
    /// Some planned parts are not uploaded yet: the client may still send them.
    Missing { missing: u32, of: u32 },
    /// A part has another length than planned: S3 would never have taken it through a URL of
    /// ours, so it came some other way, and the upload is rejected.
    WrongSize {
        part_number: u32,
        size: u64,
        expected: u64,
    },
}

impl PartsVerdict {
    pub fn into_error(self) -> AppError {
        match self {
            Self::Missing { missing, of } => AppError::PartsMissing(format!(
                "{missing} of {of} parts have not been uploaded yet"
            )),
            Self::WrongSize {
                part_number,
                size,
                expected,
            } => AppError::UploadRejected(
                format!("part {part_number} has {size} bytes, {expected} were planned"),
                Some(super::RejectReason::Mismatch),
            ),
        }
    }
}

/// A part S3 holds, as ListParts reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedPart {
    pub part_number: u32,
    pub size: u64,
    /// S3 always reports one; a stand-in may not.
    pub etag: Option<String>,
    /// The SHA-256 S3 verified for the part, when its URL declared one: the completion names it
    /// again, as S3 asks of parts uploaded with a checksum.
    pub sha256: Option<String>,
}

/// A file's multipart upload: S3's upload id, the plan, and when the reservation lapses.
#[derive(Clone, PartialEq)]
pub struct MultipartUpload {
    /// S3's id of the upload. Never in a response body or a log line: `Debug` leaves it out. (It
    /// is in each part URL's query, as S3 requires, and nowhere else.)
    pub upload_id: String,
    pub plan: PartPlan,
    /// From then on no part URL is signed; the bucket's lifecycle rule aborts the upload later.
    pub expires_at: time::OffsetDateTime,
}

impl std::fmt::Debug for MultipartUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultipartUpload")
            .field("upload_id", &"<redacted>")
            .field("plan", &self.plan)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One entry of `POST /files/{id}/parts`, as sent.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartRequest {
    pub part_number: u32,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// The body of `POST /files/{id}/parts`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartsRequest {
    pub parts: Vec<PartRequest>,
    /// The part URLs' lifetime in seconds; the expiry policy's default when absent.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The largest part S3 accepts.
    const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;

    #[test]
    fn an_uploads_debug_form_shows_its_plan_and_never_its_upload_id() {
        let upload = MultipartUpload {
            upload_id: "secret-upload-id".into(),
            plan: PartPlan::for_size(12 * MIB).unwrap(),
            expires_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let debug = format!("{upload:?}");
        assert!(!debug.contains("secret-upload-id"), "{debug}");
        assert!(debug.contains("upload_id: \"<redacted>\""), "{debug}");
        assert!(debug.contains("part_count: 3"), "{debug}");
        assert!(debug.contains("expires_at: 1970-01-01"), "{debug}");
    }

    #[test]
    fn small_files_take_five_mib_parts() {
        let plan = PartPlan::for_size(6 * MIB).unwrap();
        assert_eq!((plan.part_size(), plan.part_count()), (5 * MIB, 2));
        assert_eq!(plan.part_length(1), Some(5 * MIB));
        assert_eq!(plan.part_length(2), Some(MIB));
        assert_eq!(plan.part_length(0), None);
        assert_eq!(plan.part_length(3), None);
        let one = PartPlan::for_size(1).unwrap();
        assert_eq!((one.part_count(), one.part_length(1)), (1, Some(1)));
        let exact = PartPlan::for_size(10 * MIB).unwrap();
        assert_eq!(
            (exact.part_count(), exact.part_length(2)),
            (2, Some(5 * MIB))
        );
    }

    #[test]
    fn the_largest_object_fits_ten_thousand_parts() {
        let plan = PartPlan::for_size(MAX_OBJECT_SIZE).unwrap();
        assert!(plan.part_count() <= MAX_PART_COUNT);
        assert!(plan.part_size() <= MAX_PART_SIZE);
        assert_eq!(plan.part_size() % MIB, 0);
        assert!(PartPlan::for_size(MAX_OBJECT_SIZE + 1).is_err());
        assert!(PartPlan::for_size(0).is_err());
    }

    #[test]
    fn batches_are_within_the_plan_and_unrepeated() {
        let plan = PartPlan::for_size(20 * MIB + 1).unwrap();
        assert_eq!(plan.part_count(), 5);
        assert!(plan.check_batch(&[1, 5, 3]).is_ok());
        for bad in [&[][..], &[0], &[6], &[2, 2], &[u32::MAX]] {
            assert!(
                matches!(plan.check_batch(bad), Err(AppError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
        let big = PartPlan::for_size(MAX_OBJECT_SIZE).unwrap();
        let hundred: Vec<u32> = (1..=100).collect();
        assert!(big.check_batch(&hundred).is_ok());
        let over: Vec<u32> = (1..=101).collect();
        assert!(big.check_batch(&over).is_err());
    }

    fn part(part_number: u32, size: u64) -> UploadedPart {
        UploadedPart {
            part_number,
            size,
            etag: Some(format!("\"{part_number}\"")),
            sha256: None,
        }
    }

    #[test]
    fn uploaded_parts_are_checked_against_the_plan() {
        let plan = PartPlan::for_size(11 * MIB).unwrap();
        assert_eq!(plan.part_count(), 3);
        let all = [part(3, MIB), part(1, 5 * MIB), part(2, 5 * MIB), part(4, 1)];
        let complete = plan.check_uploaded(&all).unwrap();
        let numbers: Vec<u32> = complete.iter().map(|p| p.part_number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(
            plan.check_uploaded(&all[..1]),
            Err(PartsVerdict::Missing { missing: 2, of: 3 })
        );
        assert_eq!(
            plan.check_uploaded(&[part(1, 5 * MIB), part(2, 5 * MIB - 1), part(3, MIB)]),
            Err(PartsVerdict::WrongSize {
                part_number: 2,
                size: 5 * MIB - 1,
                expected: 5 * MIB
            })
        );
        match (PartsVerdict::Missing { missing: 2, of: 3 }).into_error() {
            AppError::PartsMissing(message) => assert!(message.starts_with("2 of 3 parts")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parts_declare_a_sha256_exactly_when_the_plan_says_so() {
        let part = |part_number, sha256: Option<&str>| PartRequest {
            part_number,
            sha256: sha256.map(str::to_owned),
        };
        let digest = Some("x");
        let without = PartPlan::for_size(6 * MIB).unwrap();
        let with = without.with_part_sha256(true);
        assert!(
            with.check_part_checksums(&[part(1, digest), part(2, digest)])
                .is_ok()
        );
        assert!(
            without
                .check_part_checksums(&[part(1, None), part(2, None)])
                .is_ok()
        );
        for (plan, parts) in [
            (with, [part(1, digest), part(2, None)]),
            (without, [part(1, None), part(2, digest)]),
        ] {
            let err = plan.check_part_checksums(&parts).unwrap_err();
            assert!(
                matches!(&err, AppError::InvalidRequest(message) if message.contains("partNumber 2")),
                "{err:?}"
            );
        }
        assert_eq!(
            PartPlan::from_stored(6 * MIB, 5 * MIB, 2, true),
            Some(with),
            "the choice is read back with the plan"
        );
    }

    #[test]
    fn stored_plans_must_be_the_planned_ones() {
        let plan = PartPlan::for_size(6 * MIB).unwrap();
        assert_eq!(
            PartPlan::from_stored(6 * MIB, 5 * MIB, 2, false),
            Some(plan)
        );
        assert_eq!(PartPlan::from_stored(6 * MIB, 6 * MIB, 1, false), None);
        assert_eq!(PartPlan::from_stored(6 * MIB, 5 * MIB, 3, false), None);
    }

    proptest! {
        #[test]
        fn every_plan_fits_s3s_limits_and_covers_the_file(size in 1..=MAX_OBJECT_SIZE) {
            let plan = PartPlan::for_size(size).unwrap();
            prop_assert!(plan.part_size() >= MIN_PART_SIZE);
            prop_assert!(plan.part_size() <= MAX_PART_SIZE);
            prop_assert!((1..=MAX_PART_COUNT).contains(&plan.part_count()));
            // Every part but the last is exactly part_size; the last is the non-empty remainder.
            let count = u64::from(plan.part_count());
            prop_assert!((count - 1) * plan.part_size() < size);
            prop_assert!(size <= count * plan.part_size());
            let last = plan.part_length(plan.part_count()).unwrap();
            prop_assert!(last >= 1 && last <= plan.part_size());
            prop_assert_eq!((count - 1) * plan.part_size() + last, size);
            if plan.part_count() > 1 {
                prop_assert_eq!(plan.part_length(plan.part_count() - 1), Some(plan.part_size()));
            }
            prop_assert_eq!(plan.part_length(plan.part_count() + 1), None);
            prop_assert_eq!(
                PartPlan::from_stored(size, plan.part_size(), plan.part_count(), false),
                Some(plan)
            );
        }

        #[test]
        fn sizes_near_the_part_boundaries_plan_the_remainder(parts in 1u64..=200, delta in 0u64..3) {
            let size = parts * MIN_PART_SIZE + delta;
            let plan = PartPlan::for_size(size).unwrap();
            let total: u64 = (1..=plan.part_count()).map(|n| plan.part_length(n).unwrap()).sum();
            prop_assert_eq!(total, size);
        }
    }
}
