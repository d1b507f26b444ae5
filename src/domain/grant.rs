//! Read grants: an owner lets another caller download one of its files. The rules here decide
//! what a file's grants become on a grant or a revocation, and whether a grant lets a caller in;
//! where they are stored is the store's business (README, "Sharing").

use time::OffsetDateTime;

use super::{FileId, OwnerId, ShareLink};
use crate::error::AppError;

/// Most grants one file may have at once (issue 23: a setting). Also what keeps a file delete,
/// which removes every grant in its own transaction, under TransactWriteItems' 100 items: the
/// record, the ledger and one item per grant.
pub const MAX_GRANTS_PER_FILE: usize = 25;

/// One caller's read access to one file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Grant {
    pub grantee: OwnerId,
    /// When the grant was first made; a renewed grant keeps it, so the grantee's listing keeps
    /// its place (and its key, see the store).
    pub granted_at: OffsetDateTime,
    /// `None`: until revoked.
    pub expires_at: Option<OffsetDateTime>,
}

impl Grant {
    /// Whether the grant still lets its grantee in at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|expires_at| now < expires_at)
    }
}

/// A file's grants and share links as read together with its record, and the version they were
/// read at: every change of either increments it, and is written only over the version read
/// (optimistic concurrency, as the ledger), so no two changes ever interleave and a delete
/// removes exactly the grants and links it read.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FileSharing {
    /// `None`: the file was never shared.
    pub version: Option<u64>,
    /// In grantee order, one per grantee.
    pub grants: Vec<Grant>,
    /// In creation order.
    pub links: Vec<ShareLink>,
}

impl FileSharing {
    pub fn find(&self, grantee: &OwnerId) -> Option<&Grant> {
        self.grants.iter().find(|grant| &grant.grantee == grantee)
    }

    /// Whether `caller` may download the file at `now` by a grant.
    pub fn admits(&self, caller: &OwnerId, now: OffsetDateTime) -> bool {
        self.find(caller).is_some_and(|grant| grant.is_live(now))
    }

    /// The grants after `owner` grants `grantee` read access until `expires_at`, at `now`.
    /// Grants that have expired are dropped on the way (they count against no limit); a grant
    /// to a grantee who has one already renews it with the new expiry, keeping when it was made.
    pub fn with_grant(
        &self,
        owner: &OwnerId,
        grantee: OwnerId,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Vec<Grant>, AppError> {
        if &grantee == owner {
            return Err(AppError::Conflict("an owner cannot grant itself".into()));
        }
        if expires_at.is_some_and(|at| at <= now) {
            return Err(AppError::invalid("expiresAt must be in the future"));
        }
        let granted_at = self.find(&grantee).map_or(now, |grant| grant.granted_at);
        let mut grants: Vec<Grant> = self
            .grants
            .iter()
            .filter(|grant| grant.grantee != grantee && grant.is_live(now))
            .cloned()
            .collect();
        if grants.len() >= MAX_GRANTS_PER_FILE {
            return Err(AppError::Conflict(format!(
                "a file can have at most {MAX_GRANTS_PER_FILE} grants"
            )));
        }
        grants.push(Grant {
            grantee,
            granted_at,
            expires_at,
        });
        grants.sort_by(|a, b| a.grantee.as_str().cmp(b.grantee.as_str()));
        Ok(grants)
    }

    /// The grants without `grantee`'s; `NotFound` when it has none.
    pub fn without(&self, grantee: &OwnerId) -> Result<Vec<Grant>, AppError> {
        self.find(grantee).ok_or(AppError::NotFound)?;
        Ok(self
            .grants
            .iter()
            .filter(|grant| &grant.grantee != grantee)
            .cloned()
            .collect())
    }
}

/// A file someone else shared with the caller, as its `GET /shared` entry: everything the entry
/// shows is copied when the grant is made (an available file's name, type and size never
/// change), so a listing needs no read of the owner's records.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SharedFile {
    pub owner: OwnerId,
    pub id: FileId,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub granted_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000 + secs).unwrap()
    }

    fn who(name: &str) -> OwnerId {
        OwnerId::parse(name).unwrap()
    }

    #[test]
    fn a_grant_admits_its_grantee_until_it_expires_and_no_one_else() {
        let grants = FileSharing {
            version: Some(1),
            links: Vec::new(),
            grants: FileSharing::default()
                .with_grant(&who("alice"), who("bob"), Some(at(10)), at(0))
                .unwrap(),
        };
        assert!(grants.admits(&who("bob"), at(9)));
        assert!(!grants.admits(&who("bob"), at(10)));
        assert!(!grants.admits(&who("alice"), at(0)));
        assert!(!grants.admits(&who("carol"), at(0)));
    }

    #[test]
    fn granting_refuses_self_the_past_and_the_26th_but_drops_expired_ones() {
        let alice = who("alice");
        let none = FileSharing::default();
        assert!(matches!(
            none.with_grant(&alice, who("alice"), None, at(0)),
            Err(AppError::Conflict(_))
        ));
        assert!(matches!(
            none.with_grant(&alice, who("bob"), Some(at(0)), at(0)),
            Err(AppError::InvalidRequest(_))
        ));
        let mut grants = FileSharing::default();
        for n in 0..MAX_GRANTS_PER_FILE {
            let expires = (n == 0).then(|| at(5));
            grants.grants = grants
                .with_grant(&alice, who(&format!("g{n:02}")), expires, at(0))
                .unwrap();
        }
        assert!(matches!(
            grants.with_grant(&alice, who("late"), None, at(1)),
            Err(AppError::Conflict(_))
        ));
        // A renewal is no new grant, and keeps when the grant was made.
        let renewed = grants
            .with_grant(&alice, who("g03"), Some(at(50)), at(2))
            .unwrap();
        assert_eq!(renewed.len(), MAX_GRANTS_PER_FILE);
        let g03 = renewed.iter().find(|g| g.grantee == who("g03")).unwrap();
        assert_eq!((g03.granted_at, g03.expires_at), (at(0), Some(at(50))));
        // Once g00's grant has expired, it makes room.
        let later = grants.with_grant(&alice, who("late"), None, at(5)).unwrap();
        assert_eq!(later.len(), MAX_GRANTS_PER_FILE);
        assert!(later.iter().all(|g| g.grantee != who("g00")));
    }

    #[test]
    fn revoking_a_grant_that_is_not_there_is_not_found() {
        let grants = FileSharing {
            version: Some(1),
            links: Vec::new(),
            grants: FileSharing::default()
                .with_grant(&who("alice"), who("bob"), None, at(0))
                .unwrap(),
        };
        assert!(grants.without(&who("bob")).unwrap().is_empty());
        assert!(matches!(
            grants.without(&who("carol")),
            Err(AppError::NotFound)
        ));
    }
}
