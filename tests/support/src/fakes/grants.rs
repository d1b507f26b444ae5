//! The fake store's grants: kept beside each record, as the DynamoDB adapter keeps them in the
//! record's item, with the same version check; `GET /shared` is computed from them, newest
//! first, with the adapter's entry keys as page tokens.

use presign_gate::domain::{
    FileId, FileRecord, FileSharing, FileStatus, Grant, OwnerId, SharedFile,
};
use presign_gate::error::AppError;
use presign_gate::store::{GrantStore, SHARED_PREFIX, Transition};

use super::{FakeStore, lock};

/// The key the adapter gives a grantee's entry: newest first is this key backwards.
fn entry_key(shared: &SharedFile) -> String {
    format!(
        "{SHARED_PREFIX}{:012}#{}#{}",
        shared.granted_at.unix_timestamp(),
        shared.id,
        shared.owner.as_str()
    )
}

impl FakeStore {
    /// A record's grants as stored, read without going through the port.
    pub fn grants_of(&self, owner: &OwnerId, id: FileId) -> FileSharing {
        lock(&self.table)
            .grants
            .get(&Self::key(owner, id))
            .cloned()
            .unwrap_or_default()
    }
}

impl GrantStore for FakeStore {
    async fn get_with_grants(
        &self,
        owner: &OwnerId,
        id: FileId,
    ) -> Result<Option<(FileRecord, FileSharing)>, AppError> {
        self.call("store.get_with_grants").await?;
        let table = lock(&self.table);
        let key = Self::key(owner, id);
        Ok(table.records.get(&key).map(|record| {
            let grants = table.grants.get(&key).cloned().unwrap_or_default();
            (record.clone(), grants)
        }))
    }

    async fn write_grants(
        &self,
        record: &FileRecord,
        read: &FileSharing,
        grants: &[Grant],
    ) -> Result<Transition, AppError> {
        self.call("store.write_grants").await?;
        let mut table = lock(&self.table);
        let key = Self::key(&record.owner, record.id);
        let available = table
            .records
            .get(&key)
            .is_some_and(|stored| stored.status == FileStatus::Available);
        let stored = table.grants.get(&key).cloned().unwrap_or_default();
        if !available || stored.version != read.version {
            return Ok(Transition::Stale);
        }
        table.grants.insert(
            key,
            FileSharing {
                version: Some(stored.version.map_or(1, |v| v + 1)),
                grants: grants.to_vec(),
                links: stored.links,
            },
        );
        Ok(Transition::Applied)
    }

    async fn shared_with(
        &self,
        grantee: &OwnerId,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<SharedFile>, Option<String>), AppError> {
        self.call("store.shared_with").await?;
        if after.is_some_and(|after| !after.starts_with(SHARED_PREFIX)) {
            return Err(AppError::invalid("nextToken is not valid"));
        }
        let table = lock(&self.table);
        let mut entries: Vec<(String, SharedFile)> = table
            .grants
            .iter()
            .filter_map(|(key, grants)| {
                let record = table.records.get(key)?;
                let grant = grants.find(grantee)?;
                let shared = SharedFile {
                    owner: record.owner.clone(),
                    id: record.id,
                    filename: record.filename.clone(),
                    content_type: record.content_type.clone(),
                    size: record.size,
                    granted_at: grant.granted_at,
                    expires_at: grant.expires_at,
                };
                Some((entry_key(&shared), shared))
            })
            .filter(|(key, _)| after.is_none_or(|after| key.as_str() < after))
            .collect();
        entries.sort_by(|a, b| b.0.cmp(&a.0));
        let limit = limit as usize;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let next = more
            .then(|| entries.last().map(|(key, _)| key.clone()))
            .flatten();
        Ok((
            entries.into_iter().map(|(_, shared)| shared).collect(),
            next,
        ))
    }
}
