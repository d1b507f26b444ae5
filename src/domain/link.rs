//! Share links (README, "Share links"): an owner hands out a URL that lets anyone holding it
//! download one file a bounded number of times until it expires. The link's secret is drawn
//! here, shown once, and kept only as a hash; a redemption presents the secret, and the store
//! counts the download only where the hash matches.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{FileId, FileSharing, ObjectKey, OwnerId, purge_time};
use crate::error::AppError;

/// Most links one file may have at once. With `MAX_GRANTS_PER_FILE`, it keeps a file delete,
/// which removes every grant and link in its own transaction, under TransactWriteItems' 100
/// items: the record, the ledger, the links' tally item, 25 grantees' entries and 25 links.
pub const MAX_LINKS_PER_FILE: usize = 25;

/// How long a redeemed link's download URL lives: long enough to start the download, short
/// enough that a revocation or a file delete is final within it (an issued URL cannot be
/// recalled).
pub const LINK_URL_LIFETIME: Duration = Duration::from_secs(60);

/// Bytes of randomness in a link's secret: 256 bits, twice the 128 the issue asks at least.
const SECRET_BYTES: usize = 32;

/// How long links may live and how many an owner may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkPolicy {
    /// Longest `expiresIn` (`LINK_MAX_SECONDS`); also the default.
    pub max_lifetime: Duration,
    /// Most live (unexpired, unrevoked) links an owner may have at once (`QUOTA_MAX_LIVE_LINKS`).
    pub max_live_links: u32,
}

impl LinkPolicy {
    /// The most `LINK_MAX_SECONDS` may say: 30 days. It bounds the owner's link tallies (one per
    /// `PURGE_GRID` step of it).
    pub const MAX_LIFETIME_SETTING: Duration = Duration::from_secs(30 * 86_400);
    /// The most `QUOTA_MAX_LIVE_LINKS` may say.
    pub const MAX_LIVE_LINKS_SETTING: u32 = 10_000;

    /// The lifetime of a new link asked to live `expires_in` seconds: the maximum by default.
    pub fn lifetime(&self, expires_in: Option<u64>) -> Result<Duration, AppError> {
        let Some(secs) = expires_in else {
            return Ok(self.max_lifetime);
        };
        let max = self.max_lifetime.as_secs();
        if (1..=max).contains(&secs) {
            Ok(Duration::from_secs(secs))
        } else {
            Err(AppError::invalid(format!(
                "expiresIn must be from 1 to {max} seconds"
            )))
        }
    }
}

impl Default for LinkPolicy {
    fn default() -> Self {
        Self {
            max_lifetime: Duration::from_secs(7 * 86_400),
            max_live_links: 100,
        }
    }
}

/// A link's public id: what its owner lists and revokes, and what audit lines name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(Uuid);

impl LinkId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Only the canonical lowercase hyphenated form handed out (as `FileId`).
    pub fn parse(text: &str) -> Option<Self> {
        let id = Uuid::try_parse(text).ok()?;
        (id.hyphenated().to_string() == text).then_some(Self(id))
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkId({self})")
    }
}

/// A link's secret, in URL-safe base64. No `Display`, and a `Debug` that hides it, so that it
/// cannot reach a log line or an error by formatting; `expose` is for the one answer that
/// carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkSecret(String);

impl LinkSecret {
    pub fn generate() -> Result<Self, AppError> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| AppError::Internal(e.to_string().into()))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// `None` for anything `generate` could not have made.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        (bytes.len() == SECRET_BYTES).then(|| Self(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps and compares: the SHA-256 of the secret, in base64. The secret is
    /// 256 random bits, so a plain hash is as hard to invert as the secret is to guess (no salt
    /// or slow hash needed, unlike passwords), and comparing hashes tells a timing observer
    /// nothing it could use to build a secret.
    pub fn hash(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

/// A share link as its file's record keeps it (the secret's hash and the download count live on
/// the link's own item, see the store).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ShareLink {
    pub id: LinkId,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// `None`: as many downloads as asked for until it expires.
    pub max_downloads: Option<u32>,
}

impl ShareLink {
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.expires_at
    }
}

/// What a redeemed link leads to: enough of its file to sign the download, copied onto the link
/// when it was made (an available file's name, type and key never change).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LinkTarget {
    pub link: LinkId,
    pub owner: OwnerId,
    pub file: FileId,
    pub key: ObjectKey,
    pub filename: String,
    pub content_type: String,
    pub expires_at: OffsetDateTime,
}

impl FileSharing {
    pub fn find_link(&self, id: LinkId) -> Option<&ShareLink> {
        self.links.iter().find(|link| link.id == id)
    }

    /// The links after `link` is added at `now`: expired ones are dropped on the way (they count
    /// against no limit), and `Conflict` past `MAX_LINKS_PER_FILE`.
    pub fn with_link(
        &self,
        link: ShareLink,
        now: OffsetDateTime,
    ) -> Result<Vec<ShareLink>, AppError> {
        let mut links: Vec<ShareLink> = self
            .links
            .iter()
            .filter(|kept| kept.is_live(now))
            .cloned()
            .collect();
        if links.len() >= MAX_LINKS_PER_FILE {
            return Err(AppError::Conflict(format!(
                "a file can have at most {MAX_LINKS_PER_FILE} share links"
            )));
        }
        links.push(link);
        Ok(links)
    }

    /// The links without `id`; `NotFound` when the file has no such link.
    pub fn without_link(&self, id: LinkId) -> Result<Vec<ShareLink>, AppError> {
        self.find_link(id).ok_or(AppError::NotFound)?;
        Ok(self
            .links
            .iter()
            .filter(|link| link.id != id)
            .cloned()
            .collect())
    }
}

/// An owner's live links, tallied by expiry rounded up to `PURGE_GRID` (as pending reservations
/// are, `Ledger`): links expire without any write of ours, so a plain counter could never come
/// down for them. A tally past its time counts for nothing, and the next change drops it. The
/// price of the grid: a link counts up to 4 hours past its expiry against the limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkLedger {
    /// `None`: the owner never made a link.
    pub version: Option<u64>,
    pub tallies: BTreeMap<OffsetDateTime, u64>,
}

impl LinkLedger {
    /// Links that count at `now`.
    pub fn live(&self, now: OffsetDateTime) -> u64 {
        self.tallies
            .iter()
            .filter(|(until, _)| **until > now)
            .map(|(_, count)| count)
            .sum()
    }

    /// The tallies with a link expiring at `expires_at` added and lapsed ones dropped, or
    /// `QuotaExceeded` when the owner has `policy.max_live_links` already.
    pub fn admit(
        &self,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        policy: &LinkPolicy,
    ) -> Result<BTreeMap<OffsetDateTime, u64>, AppError> {
        let live = self.live(now);
        if live >= u64::from(policy.max_live_links) {
            return Err(AppError::QuotaExceeded(format!(
                "{live} share links are live, the limit is {}",
                policy.max_live_links
            )));
        }
        let mut tallies: BTreeMap<OffsetDateTime, u64> = self
            .tallies
            .iter()
            .filter(|(until, _)| **until > now)
            .map(|(until, count)| (*until, *count))
            .collect();
        *tallies.entry(purge_time(expires_at)).or_default() += 1;
        Ok(tallies)
    }

    /// The tallies without `links` (revoked, or gone with their file); a link whose tally was
    /// dropped as lapsed has nothing left to release.
    pub fn release<'l>(
        &self,
        links: impl IntoIterator<Item = &'l ShareLink>,
    ) -> BTreeMap<OffsetDateTime, u64> {
        let mut tallies = self.tallies.clone();
        for link in links {
            let until = purge_time(link.expires_at);
            if let Some(count) = tallies.get_mut(&until) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    tallies.remove(&until);
                }
            }
        }
        tallies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
    }

    fn link(expires: i64) -> ShareLink {
        ShareLink {
            id: LinkId::new_random(),
            created_at: at(0),
            expires_at: at(expires),
            max_downloads: None,
        }
    }

    #[test]
    fn secrets_are_256_random_bits_that_hide_from_debug_and_hash_stably() {
        let secret = LinkSecret::generate().unwrap();
        assert_eq!(secret.expose().len(), 43);
        assert_ne!(secret, LinkSecret::generate().unwrap());
        assert_eq!(LinkSecret::parse(secret.expose()), Some(secret.clone()));
        assert_eq!(format!("{secret:?}"), "LinkSecret(..)");
        assert_eq!(secret.hash(), secret.clone().hash());
        assert_ne!(secret.hash(), LinkSecret::generate().unwrap().hash());
        assert_eq!(LinkSecret::parse("c2hvcnQ"), None);
        assert_eq!(LinkSecret::parse(&"!".repeat(43)), None);
    }

    #[test]
    fn link_lifetimes_default_to_the_maximum_and_stay_within_it() {
        let policy = LinkPolicy::default();
        assert_eq!(policy.lifetime(None).unwrap(), policy.max_lifetime);
        assert_eq!(policy.lifetime(Some(60)).unwrap().as_secs(), 60);
        assert!(policy.lifetime(Some(0)).is_err());
        assert!(policy.lifetime(Some(7 * 86_400 + 1)).is_err());
    }

    #[test]
    fn a_file_holds_25_live_links_and_expired_ones_make_room() {
        let mut sharing = FileSharing::default();
        for n in 0..MAX_LINKS_PER_FILE {
            let expires = if n == 0 { 5 } else { 100 };
            sharing.links = sharing.with_link(link(expires), at(0)).unwrap();
        }
        assert!(matches!(
            sharing.with_link(link(100), at(1)),
            Err(AppError::Conflict(_))
        ));
        let later = sharing.with_link(link(100), at(5)).unwrap();
        assert_eq!(later.len(), MAX_LINKS_PER_FILE);
        let gone = sharing.links[3].id;
        assert_eq!(sharing.without_link(gone).unwrap().len(), 24);
        assert!(matches!(
            sharing.without_link(LinkId::new_random()),
            Err(AppError::NotFound)
        ));
    }

    #[test]
    fn the_owner_limit_counts_live_links_only_and_releases_give_places_back() {
        let policy = LinkPolicy {
            max_lifetime: Duration::from_secs(86_400),
            max_live_links: 2,
        };
        let (first, second) = (link(60), link(5 * 3600));
        let mut ledger = LinkLedger::default();
        ledger.tallies = ledger.admit(first.expires_at, at(0), &policy).unwrap();
        ledger.tallies = ledger.admit(second.expires_at, at(0), &policy).unwrap();
        assert_eq!(ledger.live(at(0)), 2);
        assert!(matches!(
            ledger.admit(at(60), at(1), &policy),
            Err(AppError::QuotaExceeded(_))
        ));
        // Revoking one frees its place.
        let released = LinkLedger {
            version: Some(2),
            tallies: ledger.release([&first]),
        };
        assert_eq!(released.live(at(0)), 1);
        // Past its tally's time a link counts for nothing, and the next admission drops it.
        let late = purge_time(first.expires_at) + time::Duration::seconds(1);
        assert_eq!(ledger.live(late), 1);
        let admitted = ledger.admit(at(9 * 3600), late, &policy).unwrap();
        assert!(!admitted.contains_key(&purge_time(first.expires_at)));
        // Releasing a link whose tally was dropped changes nothing.
        let dropped = LinkLedger {
            version: Some(3),
            tallies: admitted.clone(),
        };
        assert_eq!(dropped.release([&first]), admitted);
    }
}
