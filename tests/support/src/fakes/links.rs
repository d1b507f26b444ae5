//! The fake store's share links, kept as the DynamoDB adapter keeps them: the file's links in
//! its sharing (same version as its grants), each link's own item by id with its secret's hash
//! and download count, and each owner's tallies with their version; a redemption checks and
//! counts under the table's one lock, as the adapter's conditional write does.

use std::collections::{BTreeMap, HashMap};

use presign_gate::domain::{
    FileRecord, FileSharing, FileStatus, LinkId, LinkLedger, LinkTarget, ObjectKey, OwnerId,
    ShareLink,
};
use presign_gate::error::AppError;
use presign_gate::store::{LinkStore, Transition};
use time::OffsetDateTime;

use super::{FakeStore, lock};

#[derive(Debug)]
struct LinkItem {
    target: LinkTarget,
    secret_hash: String,
    max_downloads: Option<u32>,
    downloads: u64,
}

#[derive(Debug, Default)]
pub(super) struct LinkTable {
    items: BTreeMap<LinkId, LinkItem>,
    ledgers: BTreeMap<String, LinkLedger>,
}

impl LinkTable {
    /// What a file delete does to its links: their items go, their places come back.
    pub(super) fn remove_all(&mut self, owner: &OwnerId, links: &[ShareLink]) {
        if links.is_empty() {
            return;
        }
        let ledger = self.ledgers.entry(owner.as_str().to_owned()).or_default();
        ledger.tallies = ledger.release(links);
        ledger.version = Some(ledger.version.map_or(1, |v| v + 1));
        for link in links {
            self.items.remove(&link.id);
        }
    }
}

impl FakeStore {
    /// Downloads counted of link `id`, read without going through the port; `None` when it has
    /// no item.
    pub fn link_item_downloads(&self, id: LinkId) -> Option<u64> {
        lock(&self.table)
            .links
            .items
            .get(&id)
            .map(|item| item.downloads)
    }
}

impl LinkStore for FakeStore {
    async fn link_ledger(&self, owner: &OwnerId) -> Result<LinkLedger, AppError> {
        self.call("store.link_ledger").await?;
        Ok(lock(&self.table)
            .links
            .ledgers
            .get(owner.as_str())
            .cloned()
            .unwrap_or_default())
    }

    async fn write_links(
        &self,
        record: &FileRecord,
        read: &FileSharing,
        links: &[ShareLink],
        new: Option<(&ShareLink, &str)>,
        ledger: &LinkLedger,
        tallies: &BTreeMap<OffsetDateTime, u64>,
    ) -> Result<Transition, AppError> {
        self.call("store.write_links").await?;
        let mut table = lock(&self.table);
        let key = Self::key(&record.owner, record.id);
        let available = table
            .records
            .get(&key)
            .is_some_and(|stored| stored.status == FileStatus::Available);
        let stored = table.grants.get(&key).cloned().unwrap_or_default();
        let stored_ledger = table
            .links
            .ledgers
            .get(record.owner.as_str())
            .cloned()
            .unwrap_or_default();
        if !available || stored.version != read.version || stored_ledger.version != ledger.version {
            return Ok(Transition::Stale);
        }
        table.grants.insert(
            key,
            FileSharing {
                version: Some(stored.version.map_or(1, |v| v + 1)),
                grants: stored.grants,
                links: links.to_vec(),
            },
        );
        table.links.ledgers.insert(
            record.owner.as_str().to_owned(),
            LinkLedger {
                version: Some(ledger.version.map_or(1, |v| v + 1)),
                tallies: tallies.clone(),
            },
        );
        for gone in &read.links {
            if !links.iter().any(|link| link.id == gone.id) {
                table.links.items.remove(&gone.id);
            }
        }
        if let Some((link, secret_hash)) = new {
            let target = LinkTarget {
                link: link.id,
                owner: record.owner.clone(),
                file: record.id,
                key: ObjectKey::for_file(&record.owner, record.id),
                filename: record.filename.clone(),
                content_type: record.content_type.clone(),
                expires_at: link.expires_at,
            };
            table.links.items.insert(
                link.id,
                LinkItem {
                    target,
                    secret_hash: secret_hash.to_owned(),
                    max_downloads: link.max_downloads,
                    downloads: 0,
                },
            );
        }
        Ok(Transition::Applied)
    }

    async fn redeem(
        &self,
        id: LinkId,
        secret_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LinkTarget>, AppError> {
        self.call("store.redeem").await?;
        let mut table = lock(&self.table);
        let Some(item) = table.links.items.get_mut(&id) else {
            return Ok(None);
        };
        let admitted = item.secret_hash == secret_hash
            && now < item.target.expires_at
            && item
                .max_downloads
                .is_none_or(|max| item.downloads < u64::from(max));
        if !admitted {
            return Ok(None);
        }
        item.downloads += 1;
        Ok(Some(item.target.clone()))
    }

    async fn link_downloads(&self, ids: &[LinkId]) -> Result<HashMap<LinkId, u64>, AppError> {
        self.call("store.link_downloads").await?;
        let table = lock(&self.table);
        Ok(ids
            .iter()
            .filter_map(|id| Some((*id, table.links.items.get(id)?.downloads)))
            .collect())
    }
}
