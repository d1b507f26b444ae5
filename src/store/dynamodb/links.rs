//! The DynamoDB adapter of `LinkStore`.
//!
//! Items (README, "Share links"):
//! - A file's links are an attribute of its record's item, `links`, a map from link id to
//!   `{createdAt, expiresAt, maxDownloads?}`, under the same `grantVersion` as its grants: one
//!   version for everything shared of a file, so a delete removes exactly what it read.
//! - Each link has its own item, partition `#link#<link id>` (no caller's partition: a redemption
//!   knows no owner), sort key `#link`, with the secret's hash, the download count, its limit,
//!   its expiry (also the table's TTL attribute) and what it leads to. It is written, and
//!   deleted, in the same transactions as the record's map, so it exists exactly while the link
//!   is on an available file: a redemption reads nothing else.
//! - The owner's live links are tallied by expiry in an item of the owner's partition, sort key
//!   `#links` (`domain::LinkLedger`), written over the version read by every change of links.
//!   Always by UpdateItem: a file delete from the events function changes it too, and that role
//!   may update and delete items, never put them (template.yaml).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};
use time::OffsetDateTime;

use super::DynamoDbOwnershipStore;
use super::grants::{EXPIRES_AT, corrupt, epoch, read_epoch};
use super::item::{Item, attr, build_error, n, s};
use super::transaction::Outcome;
use crate::backend_error::backend_error;
use crate::domain::{
    FileId, FileRecord, FileSharing, LinkId, LinkLedger, LinkTarget, ObjectKey, OwnerId, ShareLink,
};
use crate::error::AppError;
use crate::store::{LinkStore, Transition};

/// Partition key prefix of a link's own item.
const LINK_PREFIX: &str = "#link#";
const LINK_SORT_KEY: &str = "#link";
/// Sort key of the owner's link tallies. `#links` sorts before `#usage`, where listings start.
const LINK_LEDGER_SORT_KEY: &str = "#links";
/// Prefix of a tally's attribute, followed by its time in epoch seconds.
const LINK_TALLY_PREFIX: &str = "linksUntil:";

pub(super) const LINKS: &str = "links";
const CREATED_AT: &str = "createdAt";
const MAX_DOWNLOADS: &str = "maxDownloads";
const DOWNLOADS: &str = "downloads";
const SECRET_HASH: &str = "secretHash";
const LINK_OWNER: &str = "linkOwner";
const LINK_FILE: &str = "linkFile";

fn link_key(id: LinkId) -> Item {
    HashMap::from([
        (attr::OWNER.to_owned(), s(format!("{LINK_PREFIX}{id}"))),
        (attr::FILE_ID.to_owned(), s(LINK_SORT_KEY)),
    ])
}

fn link_ledger_key(owner: &OwnerId) -> Item {
    HashMap::from([
        (attr::OWNER.to_owned(), s(owner.as_str())),
        (attr::FILE_ID.to_owned(), s(LINK_LEDGER_SORT_KEY)),
    ])
}

fn number<T: std::str::FromStr>(value: Option<&AttributeValue>) -> Option<T> {
    value?.as_n().ok()?.parse().ok()
}

/// The link's own item, as a new link writes it.
fn link_item(record: &FileRecord, link: &ShareLink, secret_hash: &str) -> Item {
    let mut item = link_key(link.id);
    item.extend([
        (LINK_OWNER.to_owned(), s(record.owner.as_str())),
        (LINK_FILE.to_owned(), s(record.id.to_string())),
        (attr::FILENAME.to_owned(), s(&record.filename)),
        (attr::CONTENT_TYPE.to_owned(), s(&record.content_type)),
        (SECRET_HASH.to_owned(), s(secret_hash)),
        (DOWNLOADS.to_owned(), n(0)),
        (EXPIRES_AT.to_owned(), epoch(link.expires_at)),
        (attr::PURGE_AT.to_owned(), epoch(link.expires_at)),
    ]);
    if let Some(max) = link.max_downloads {
        item.insert(MAX_DOWNLOADS.to_owned(), n(max));
    }
    item
}

fn target_from_item(id: LinkId, item: &Item) -> Result<LinkTarget, AppError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
    let owner = text(LINK_OWNER)
        .and_then(|t| OwnerId::parse(t))
        .ok_or_else(|| corrupt(LINK_OWNER))?;
    let file = text(LINK_FILE)
        .and_then(|t| FileId::parse(t))
        .ok_or_else(|| corrupt(LINK_FILE))?;
    Ok(LinkTarget {
        link: id,
        key: ObjectKey::for_file(&owner, file),
        owner,
        file,
        filename: text(attr::FILENAME)
            .ok_or_else(|| corrupt(attr::FILENAME))?
            .clone(),
        content_type: text(attr::CONTENT_TYPE)
            .ok_or_else(|| corrupt(attr::CONTENT_TYPE))?
            .clone(),
        expires_at: read_epoch(item.get(EXPIRES_AT)).ok_or_else(|| corrupt(EXPIRES_AT))?,
    })
}

pub(super) fn links_to_value(links: &[ShareLink]) -> AttributeValue {
    let map = links
        .iter()
        .map(|link| {
            let mut fields = HashMap::from([
                (CREATED_AT.to_owned(), epoch(link.created_at)),
                (EXPIRES_AT.to_owned(), epoch(link.expires_at)),
            ]);
            if let Some(max) = link.max_downloads {
                fields.insert(MAX_DOWNLOADS.to_owned(), n(max));
            }
            (link.id.to_string(), AttributeValue::M(fields))
        })
        .collect();
    AttributeValue::M(map)
}

/// The links held in a record's item, oldest first; none for a file never linked.
pub(super) fn links_from_item(item: &Item) -> Result<Vec<ShareLink>, AppError> {
    let Some(map) = item.get(LINKS) else {
        return Ok(Vec::new());
    };
    let mut links = Vec::new();
    for (id, fields) in map.as_m().map_err(|_| corrupt(LINKS))? {
        let fields = fields.as_m().map_err(|_| corrupt(LINKS))?;
        let max_downloads = match fields.get(MAX_DOWNLOADS) {
            None => None,
            Some(value) => Some(number(Some(value)).ok_or_else(|| corrupt(MAX_DOWNLOADS))?),
        };
        links.push(ShareLink {
            id: LinkId::parse(id).ok_or_else(|| corrupt("link id"))?,
            created_at: read_epoch(fields.get(CREATED_AT)).ok_or_else(|| corrupt(CREATED_AT))?,
            expires_at: read_epoch(fields.get(EXPIRES_AT)).ok_or_else(|| corrupt(EXPIRES_AT))?,
            max_downloads,
        });
    }
    links.sort_by_key(|link| (link.created_at, link.id));
    Ok(links)
}

fn link_ledger_from_item(item: &Item) -> Result<LinkLedger, AppError> {
    let version = number(item.get(attr::VERSION)).ok_or_else(|| corrupt(attr::VERSION))?;
    let mut tallies = BTreeMap::new();
    for (name, value) in item {
        let Some(until) = name.strip_prefix(LINK_TALLY_PREFIX) else {
            continue;
        };
        let until = until
            .parse()
            .ok()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or_else(|| corrupt(name))?;
        let count = number(Some(value)).ok_or_else(|| corrupt(name))?;
        tallies.insert(until, count);
    }
    Ok(LinkLedger {
        version: Some(version),
        tallies,
    })
}

impl DynamoDbOwnershipStore {
    pub(super) fn delete_link_item(&self, id: LinkId) -> Result<TransactWriteItem, AppError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(link_key(id)))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// The owner's link tallies `read` replaced by `tallies`, only over `read.version`.
    pub(super) fn link_ledger_update(
        &self,
        owner: &OwnerId,
        read: &LinkLedger,
        tallies: &BTreeMap<OffsetDateTime, u64>,
    ) -> Result<TransactWriteItem, AppError> {
        let mut sets = vec!["#version = :next".to_owned()];
        let mut removes = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(link_ledger_key(owner)))
            .expression_attribute_names("#version", attr::VERSION)
            .expression_attribute_values(":next", n(read.version.map_or(1, |v| v + 1)));
        for (index, (until, count)) in tallies.iter().enumerate() {
            sets.push(format!("#t{index} = :t{index}"));
            update = update
                .expression_attribute_names(
                    format!("#t{index}"),
                    format!("{LINK_TALLY_PREFIX}{}", until.unix_timestamp()),
                )
                .expression_attribute_values(format!(":t{index}"), n(count));
        }
        for (index, until) in read.tallies.keys().enumerate() {
            if !tallies.contains_key(until) {
                removes.push(format!("#r{index}"));
                update = update.expression_attribute_names(
                    format!("#r{index}"),
                    format!("{LINK_TALLY_PREFIX}{}", until.unix_timestamp()),
                );
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        update = match read.version {
            None => update
                .condition_expression("attribute_not_exists(#owner)")
                .expression_attribute_names("#owner", attr::OWNER),
            Some(version) => update
                .condition_expression("#version = :version")
                .expression_attribute_values(":version", n(version)),
        };
        Ok(TransactWriteItem::builder()
            .update(
                update
                    .update_expression(expression)
                    .build()
                    .map_err(build_error)?,
            )
            .build())
    }

    /// What deleting a shared file adds to its transaction for its links: their own items, and
    /// their places in the owner's tallies given back (over the tallies' version as read now).
    pub(super) async fn links_removed(
        &self,
        record: &FileRecord,
        sharing: &FileSharing,
    ) -> Result<Vec<TransactWriteItem>, AppError> {
        if sharing.links.is_empty() {
            return Ok(Vec::new());
        }
        let ledger = self.link_ledger(&record.owner).await?;
        let mut items = vec![self.link_ledger_update(
            &record.owner,
            &ledger,
            &ledger.release(&sharing.links),
        )?];
        for link in &sharing.links {
            items.push(self.delete_link_item(link.id)?);
        }
        Ok(items)
    }
}

impl LinkStore for DynamoDbOwnershipStore {
    async fn link_ledger(&self, owner: &OwnerId) -> Result<LinkLedger, AppError> {
        self.consistent_item(link_ledger_key(owner))
            .await?
            .as_ref()
            .map_or(Ok(LinkLedger::default()), link_ledger_from_item)
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
        let mut items = vec![
            self.sharing_update(record, read, LINKS, links_to_value(links))?,
            self.link_ledger_update(&record.owner, ledger, tallies)?,
        ];
        if let Some((link, secret_hash)) = new {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(link_item(record, link, secret_hash)))
                .condition_expression("attribute_not_exists(#owner)")
                .expression_attribute_names("#owner", attr::OWNER)
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        // Links revoked, and expired ones dropped on the way, go with their items.
        for gone in &read.links {
            if !links.iter().any(|link| link.id == gone.id) {
                items.push(self.delete_link_item(gone.id)?);
            }
        }
        Ok(match self.transact(items).await? {
            Outcome::Committed => Transition::Applied,
            Outcome::ConditionFailed(_) => Transition::Stale,
        })
    }

    /// One conditional UpdateItem: the secret's hash must match, the link be unexpired at `now`
    /// and have downloads left, and the count goes up by one in the same atomic write, so no two
    /// concurrent redemptions ever take the last download both. A condition reads the item as it
    /// is at that moment (the write is strongly consistent by nature), so no separate read is
    /// needed first. Every way of failing is the same failed condition, whatever the secret.
    async fn redeem(
        &self,
        id: LinkId,
        secret_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LinkTarget>, AppError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(link_key(id)))
            .update_expression("SET #downloads = #downloads + :one")
            .condition_expression(
                "#hash = :hash AND #expiresAt > :now \
                 AND (attribute_not_exists(#max) OR #downloads < #max)",
            )
            .expression_attribute_names("#downloads", DOWNLOADS)
            .expression_attribute_names("#hash", SECRET_HASH)
            .expression_attribute_names("#expiresAt", EXPIRES_AT)
            .expression_attribute_names("#max", MAX_DOWNLOADS)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":hash", s(secret_hash))
            .expression_attribute_values(":now", epoch(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output
                    .attributes
                    .ok_or_else(|| AppError::Internal("a redemption without its item".into()))?;
                target_from_item(id, &item).map(Some)
            }
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(None)
            }
            Err(err) => Err(backend_error(err)),
        }
    }

    async fn link_downloads(&self, ids: &[LinkId]) -> Result<HashMap<LinkId, u64>, AppError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let keys = KeysAndAttributes::builder()
            .set_keys(Some(ids.iter().map(|id| link_key(*id)).collect()))
            .consistent_read(true)
            .build()
            .map_err(|e| AppError::Internal(e.into()))?;
        let items = self.batch_get(keys).await?;
        let mut downloads = HashMap::new();
        for item in items {
            let id = item
                .get(attr::OWNER)
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| pk.strip_prefix(LINK_PREFIX))
                .and_then(LinkId::parse)
                .ok_or_else(|| corrupt("link item key"))?;
            downloads.insert(
                id,
                number(item.get(DOWNLOADS)).ok_or_else(|| corrupt(DOWNLOADS))?,
            );
        }
        Ok(downloads)
    }
}
