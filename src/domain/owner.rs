use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// The caller, as named by the `sub` claim of a verified token. Only the HTTP layer's identity
/// extraction constructs one from a request, so no body, query or path can name an owner.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OwnerId(String);

/// Longest `sub` accepted. OIDC caps nothing, but Cognito's are 36 bytes and every issuer we know
/// stays far below this; a bound keeps object keys well inside S3's 1,024-byte limit.
const MAX_OWNER_BYTES: usize = 256;

/// Everything but ASCII letters, digits, `-` and `_` is percent-encoded in the key segment. `.` is
/// encoded too, so that a `sub` of `.` or `..` can never become a path segment that an HTTP
/// client would normalise away.
const KEY_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

impl OwnerId {
    /// `None` for a subject that cannot name anyone: empty, oversized or with control characters.
    pub fn parse(sub: &str) -> Option<Self> {
        let valid =
            !sub.is_empty() && sub.len() <= MAX_OWNER_BYTES && !sub.chars().any(char::is_control);
        valid.then(|| Self(sub.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owner's segment of an object key: safe for any `sub`, and reversible.
    pub fn key_segment(&self) -> String {
        utf8_percent_encode(&self.0, KEY_SEGMENT).to_string()
    }

    /// Inverse of [`OwnerId::key_segment`]; `None` for anything `key_segment` could not have made.
    pub fn from_key_segment(segment: &str) -> Option<Self> {
        let decoded = percent_decode_str(segment).decode_utf8().ok()?;
        let owner = Self::parse(&decoded)?;
        (owner.key_segment() == segment).then_some(owner)
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerId({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_shows_as_its_subject_and_in_debug_output_quoted() {
        let owner = OwnerId::parse("auth0|abc").unwrap();
        assert_eq!(owner.to_string(), "auth0|abc");
        assert_eq!(format!("{owner:?}"), "OwnerId(\"auth0|abc\")");
    }

    #[test]
    fn cognito_subjects_stay_readable_in_keys() {
        let owner = OwnerId::parse("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
        assert_eq!(owner.key_segment(), "0f8fad5b-d9cb-469f-a165-70867728950e");
    }

    #[test]
    fn any_subject_round_trips_through_its_key_segment() {
        for sub in [
            "alice",
            "..",
            ".",
            "a/b/../c",
            "user@example.com",
            "100%",
            "名前 with space",
            "auth0|5f7c8ec7c33c6c004bbafe82",
            "+plus+",
        ] {
            let owner = OwnerId::parse(sub).unwrap();
            let segment = owner.key_segment();
            assert!(
                segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_%".contains(&b)),
                "{segment}"
            );
            assert_eq!(OwnerId::from_key_segment(&segment), Some(owner), "{sub}");
        }
    }

    #[test]
    fn distinct_subjects_never_share_a_segment() {
        let a = OwnerId::parse("a.b").unwrap().key_segment();
        let b = OwnerId::parse("a%2Eb").unwrap().key_segment();
        assert_ne!(a, b);
    }

    #[test]
    fn segments_that_encoding_could_not_produce_are_refused() {
        assert_eq!(OwnerId::from_key_segment("a.b"), None);
        assert_eq!(OwnerId::from_key_segment("a%2eb"), None);
        assert_eq!(OwnerId::from_key_segment(""), None);
        assert_eq!(OwnerId::from_key_segment("%FF"), None);
    }

    #[test]
    fn unusable_subjects_are_refused() {
        assert_eq!(OwnerId::parse(""), None);
        assert_eq!(OwnerId::parse("a\nb"), None);
        assert_eq!(OwnerId::parse(&"x".repeat(MAX_OWNER_BYTES + 1)), None);
        assert!(OwnerId::parse(&"x".repeat(MAX_OWNER_BYTES)).is_some());
    }
}
