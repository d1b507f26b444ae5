//! Read grants (README, "Sharing"): an owner lets other callers download one of its available
//! files. A grant lets its grantee have download URLs and see the file in `GET /shared`, and
//! nothing else: every other route still reads the caller's own partition only, so a grantee can
//! never write, delete, list the owner's files or grant the file on.

use time::OffsetDateTime;

use super::{FileService, ending_by, now, validity};
use crate::bucket::{ObjectStorage, PresignedRequest, UrlSigner};
use crate::domain::{
    Disposition, FileId, FileRecord, FileSharing, FileStatus, Grant, OwnerId, SharedFile,
};
use crate::error::AppError;
use crate::store::{GrantStore, OwnershipStore, Transition};

/// A grant change that keeps meeting another one is read again this many times before it counts
/// as unavailable.
const GRANT_ATTEMPTS: u32 = 3;

impl<S, B> FileService<S, B>
where
    S: OwnershipStore + GrantStore,
    B: UrlSigner + ObjectStorage,
{
    /// `POST /files/{id}/grants`: the owner of an available file grants `grantee` read access
    /// until `expires_at` (`None`: until revoked); a second grant to the same grantee renews it.
    pub async fn grant(
        &self,
        owner: &OwnerId,
        id: FileId,
        grantee: OwnerId,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Grant, AppError> {
        let written = self
            .change_grants(owner, id, |grants, now| {
                grants.with_grant(owner, grantee.clone(), expires_at, now)
            })
            .await?;
        written
            .into_iter()
            .find(|grant| grant.grantee == grantee)
            .ok_or_else(|| AppError::Internal("a grant missing from what was written".into()))
    }

    /// `DELETE /files/{id}/grants/{grantee}`: `NotFound` when the grantee holds no grant.
    pub async fn revoke(
        &self,
        owner: &OwnerId,
        id: FileId,
        grantee: &OwnerId,
    ) -> Result<(), AppError> {
        self.change_grants(owner, id, |grants, _| grants.without(grantee))
            .await?;
        Ok(())
    }

    /// `GET /files/{id}/grants`: the owner's file's grants, expired ones included (they show
    /// their `expiresAt`), in one consistent read.
    pub async fn grants(&self, owner: &OwnerId, id: FileId) -> Result<Vec<Grant>, AppError> {
        Ok(self.owned_sharing(owner, id).await?.1.grants)
    }

    /// `GET /shared`: a page of the files shared with `grantee` whose grant is live, newest
    /// first, and the token to continue after. One Query of the grantee's own partition.
    pub async fn shared_with(
        &self,
        grantee: &OwnerId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<SharedFile>, Option<String>), AppError> {
        let (entries, next) = self.store.shared_with(grantee, limit, after).await?;
        let now = now();
        let live = entries
            .into_iter()
            .filter(|entry| entry.expires_at.is_none_or(|at| now < at))
            .collect();
        Ok((live, next))
    }

    /// `GET /shared/{owner}/{id}/download-url`: a download URL for a file `owner` shared with
    /// `caller`, signed only after one consistent read of the record, which holds its grants:
    /// that read is the moment the file must be available and the grant live. A missing file,
    /// no grant and an expired one are the same `NotFound`, so a grantee learns nothing of files
    /// not shared with it.
    pub async fn presign_shared_download(
        &self,
        caller: &OwnerId,
        owner: &OwnerId,
        id: FileId,
        expires_in: Option<u64>,
        disposition: Disposition,
    ) -> Result<PresignedRequest, AppError> {
        let lifetime = self.expiry.resolve(expires_in)?;
        let start = now();
        let (record, grants) = self
            .store
            .get_with_grants(owner, id)
            .await?
            .ok_or(AppError::NotFound)?;
        let grant = grants
            .find(caller)
            .filter(|grant| grant.is_live(start))
            .ok_or(AppError::NotFound)?;
        // A URL outlives no grant: it ends when the grant does, if that is sooner.
        let lifetime = match grant.expires_at {
            None => lifetime,
            Some(expires_at) => ending_by(lifetime, start, expires_at),
        };
        self.sign_download(&record, disposition, validity(start, lifetime))
            .await
    }

    /// The owner's record of `id` and what is shared of it; `NotFound` for someone else's file.
    pub(super) async fn owned_sharing(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> Result<(FileRecord, FileSharing), AppError> {
        self.store
            .get_with_grants(owner, id)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// The same, for a change of what is shared: `NotReady` for a file not uploaded yet.
    pub(super) async fn available_sharing(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> Result<(FileRecord, FileSharing), AppError> {
        let (record, sharing) = self.owned_sharing(owner, id).await?;
        if record.status != FileStatus::Available {
            return Err(AppError::NotReady(record.status));
        }
        Ok((record, sharing))
    }

    /// Reads the owner's file and its grants, decides the new grants with `change`, and writes
    /// them over the version read; read again when another change got there first. The grants
    /// written.
    async fn change_grants(
        &self,
        owner: &OwnerId,
        id: FileId,
        change: impl Fn(&FileSharing, OffsetDateTime) -> Result<Vec<Grant>, AppError>,
    ) -> Result<Vec<Grant>, AppError> {
        for _ in 0..GRANT_ATTEMPTS {
            let (record, read) = self.available_sharing(owner, id).await?;
            let grants = change(&read, now())?;
            if self.store.write_grants(&record, &read, &grants).await? == Transition::Applied {
                return Ok(grants);
            }
        }
        Err(AppError::Unavailable(
            "the file's grants kept changing".into(),
        ))
    }
}
