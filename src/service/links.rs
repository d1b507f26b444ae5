//! Share links (README, "Share links"): an owner hands out a URL with a secret that anyone may
//! redeem for a short-lived download URL, a bounded number of times, until it expires or is
//! revoked. Every URL is signed only after the link's own item, which exists exactly while the
//! link is on an available file, said yes in the same write that counted the download.

use super::{FileService, ending_by, now, validity};
use crate::bucket::{ObjectStorage, PresignedRequest, UrlSigner};
use crate::domain::{
    Disposition, FileId, LINK_URL_LIFETIME, LinkId, LinkSecret, LinkTarget, OwnerId, ShareLink,
};
use crate::error::AppError;
use crate::store::{GrantStore, LinkStore, OwnershipStore, Transition};

/// A link change that keeps meeting another change of the file's sharing or of the owner's
/// links is read again this many times before it counts as unavailable.
const LINK_ATTEMPTS: u32 = 3;

/// A link as its owner lists it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LinkStatus {
    pub link: ShareLink,
    /// Downloads counted so far.
    pub downloads: u64,
}

impl<S, B> FileService<S, B>
where
    S: OwnershipStore + GrantStore + LinkStore,
    B: UrlSigner + ObjectStorage,
{
    /// `POST /files/{id}/links`: a new link to the owner's available file, living `expires_in`
    /// seconds (the policy's maximum by default) for at most `max_downloads` downloads (`None`:
    /// any number). The secret is returned here once and never stored.
    pub async fn create_link(
        &self,
        owner: &OwnerId,
        id: FileId,
        expires_in: Option<u64>,
        max_downloads: Option<u32>,
    ) -> Result<(ShareLink, LinkSecret), AppError> {
        let lifetime = self.links.lifetime(expires_in)?;
        if max_downloads == Some(0) {
            return Err(AppError::invalid("maxDownloads must be at least 1"));
        }
        let secret = LinkSecret::generate()?;
        let hash = secret.hash();
        for _ in 0..LINK_ATTEMPTS {
            let (record, sharing) = self.available_sharing(owner, id).await?;
            let ledger = self.store.link_ledger(owner).await?;
            let now = now();
            let link = ShareLink {
                id: LinkId::new_random(),
                created_at: now,
                expires_at: now + lifetime,
                max_downloads,
            };
            let links = sharing.with_link(link.clone(), now)?;
            let tallies = ledger.admit(link.expires_at, now, &self.links)?;
            let written = self
                .store
                .write_links(
                    &record,
                    &sharing,
                    &links,
                    Some((&link, &hash)),
                    &ledger,
                    &tallies,
                )
                .await?;
            if written == Transition::Applied {
                return Ok((link, secret));
            }
        }
        Err(kept_changing())
    }

    /// `GET /files/{id}/links`: the file's links, expired ones included (they show their
    /// `expiresAt`), with their download counts: one read of the record, one batch read of the
    /// links' items.
    pub async fn links(&self, owner: &OwnerId, id: FileId) -> Result<Vec<LinkStatus>, AppError> {
        let (_, sharing) = self.owned_sharing(owner, id).await?;
        let ids: Vec<LinkId> = sharing.links.iter().map(|link| link.id).collect();
        let downloads = self.store.link_downloads(&ids).await?;
        Ok(sharing
            .links
            .into_iter()
            .map(|link| LinkStatus {
                downloads: downloads.get(&link.id).copied().unwrap_or(0),
                link,
            })
            .collect())
    }

    /// `DELETE /files/{id}/links/{linkId}`: no new URL is signed for the link from the moment
    /// this returns; `NotFound` when the file has no such link.
    pub async fn revoke_link(
        &self,
        owner: &OwnerId,
        id: FileId,
        link: LinkId,
    ) -> Result<(), AppError> {
        for _ in 0..LINK_ATTEMPTS {
            let (record, sharing) = self.available_sharing(owner, id).await?;
            let links = sharing.without_link(link)?;
            let ledger = self.store.link_ledger(owner).await?;
            let revoked = sharing.find_link(link);
            let tallies = ledger.release(revoked);
            let written = self
                .store
                .write_links(&record, &sharing, &links, None, &ledger, &tallies)
                .await?;
            if written == Transition::Applied {
                return Ok(());
            }
        }
        Err(kept_changing())
    }

    /// `GET /links/{linkId}?secret=`: counts one download and signs a URL that lives
    /// `LINK_URL_LIFETIME` (less if the link expires sooner), served as an attachment. Every
    /// refusal is the same `NotFound`.
    pub async fn redeem_link(
        &self,
        id: LinkId,
        secret: &LinkSecret,
    ) -> Result<(LinkTarget, PresignedRequest), AppError> {
        let start = now();
        let target = self
            .store
            .redeem(id, &secret.hash(), start)
            .await?
            .ok_or(AppError::NotFound)?;
        let lifetime = ending_by(LINK_URL_LIFETIME, start, target.expires_at);
        let url = self
            .sign_object(
                &target.key,
                &target.content_type,
                &target.filename,
                Disposition::Attachment,
                validity(start, lifetime),
            )
            .await?;
        Ok((target, url))
    }
}

fn kept_changing() -> AppError {
    AppError::Unavailable("the file's links or the owner's links kept changing".into())
}
