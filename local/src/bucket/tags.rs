//! Object tags, which s3s-fs 0.14.1 does not implement (Amazon S3 User Guide, "Categorizing
//! your objects using tags"; Amazon S3 API Reference, PutObjectTagging, GetObjectTagging,
//! DeleteObjectTagging, and PutObject's and CreateMultipartUpload's `x-amz-tagging`).
//!
//! Tags belong to one version of an object. Each object's are kept in one file at the data
//! directory's root, beside s3s-fs's own `.bucket-*.metadata.json` (so that ListBuckets does not
//! see them): `.local-aws-tags.<hash of bucket and key>.json`, holding the version they belong to
//! and the tag set. A write of the key makes a new version (see `versions`), whose tags start
//! empty however the old file reads; a delete removes the file. Persisted, as the objects are:
//! a restarted `make local` still serves a scanned file. The tags a CreateMultipartUpload asks for
//! are kept in memory until the upload completes (an upload that outlives a restart loses them).
//!
//! The limits are S3's: at most 10 tags, keys unique, a key of 1 to 128 characters, a value of
//! at most 256 (`InvalidTag` otherwise).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use s3s::{S3Error, S3ErrorCode, S3Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::object_path;
use crate::hex;
use crate::versions::current_version;

/// A tag set, in the order it was given.
pub type TagSet = Vec<(String, String)>;

const MAX_TAGS: usize = 10;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

#[derive(Serialize, Deserialize)]
struct Stored {
    version: String,
    tags: TagSet,
}

fn internal(error: impl std::fmt::Display) -> S3Error {
    S3Error::with_message(S3ErrorCode::InternalError, error.to_string())
}

fn invalid_tag(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidTag, message.into())
}

/// Refuses a tag set S3 would refuse.
pub fn validate(tags: &TagSet) -> S3Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(invalid_tag("Object tags cannot be greater than 10"));
    }
    for (index, (key, value)) in tags.iter().enumerate() {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_KEY_CHARS {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if tags[..index].iter().any(|(other, _)| other == key) {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

/// The tags of an `x-amz-tagging` header: URL query parameters (`k1=v1&k2=v2`).
pub fn parse_header(header: &str) -> S3Result<TagSet> {
    let tags = crate::s3_access::query_pairs(Some(header));
    validate(&tags)?;
    Ok(tags)
}

/// Every object's tags, and the tags of the multipart uploads in progress.
#[derive(Clone)]
pub struct TagStore {
    root: PathBuf,
    writes: Arc<AtomicU64>,
    /// Upload id -> the tags its CreateMultipartUpload asked for.
    pending: Arc<Mutex<HashMap<String, TagSet>>>,
}

impl TagStore {
    /// `root` is s3s-fs's data directory, canonicalized.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            writes: Arc::default(),
            pending: Arc::default(),
        }
    }

    fn tags_path(&self, bucket: &str, key: &str) -> PathBuf {
        let digest = Sha256::digest(format!("{bucket}\0{key}").as_bytes());
        self.root
            .join(format!(".local-aws-tags.{}.json", hex(&digest[..20])))
    }

    /// The object's current version; `NoSuchKey` when there is no object, `NoSuchVersion` when
    /// `named` is not the current version (only the current one exists here: see `versions`).
    pub async fn version(&self, bucket: &str, key: &str, named: Option<&str>) -> S3Result<String> {
        let current = match object_path(&self.root, bucket, key) {
            Some(path) => current_version(&path).await,
            None => None,
        };
        let current = current.ok_or_else(|| S3Error::new(S3ErrorCode::NoSuchKey))?;
        match named {
            Some(named) if named != current => Err(S3Error::with_message(
                S3ErrorCode::NoSuchVersion,
                "The specified version does not exist.",
            )),
            _ => Ok(current),
        }
    }

    /// The tags of `version` of the object (none when the stored ones belong to another).
    pub async fn get(&self, bucket: &str, key: &str, version: &str) -> S3Result<TagSet> {
        let text = match tokio::fs::read(self.tags_path(bucket, key)).await {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(internal(error)),
        };
        let stored: Stored = serde_json::from_slice(&text).map_err(internal)?;
        Ok(if stored.version == version {
            stored.tags
        } else {
            Vec::new()
        })
    }

    /// The tags of the object's current version, or of `named`; with that version.
    pub async fn current(
        &self,
        bucket: &str,
        key: &str,
        named: Option<&str>,
    ) -> S3Result<(String, TagSet)> {
        let version = self.version(bucket, key, named).await?;
        let tags = self.get(bucket, key, &version).await?;
        Ok((version, tags))
    }

    /// Replaces the tag set of the object's current version (or of `named`); returns the version.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        named: Option<&str>,
        tags: TagSet,
    ) -> S3Result<String> {
        validate(&tags)?;
        let version = self.version(bucket, key, named).await?;
        let stored = serde_json::to_vec(&Stored {
            version: version.clone(),
            tags,
        })
        .map_err(internal)?;
        // Written beside and renamed into place, so a reader never sees half a file. The name is
        // one s3s-fs removes at start if it is left over.
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        let temporary = self
            .root
            .join(format!(".tmp.local-aws-tags-{n}.internal.part"));
        tokio::fs::write(&temporary, stored)
            .await
            .map_err(internal)?;
        tokio::fs::rename(&temporary, self.tags_path(bucket, key))
            .await
            .map_err(internal)?;
        Ok(version)
    }

    /// Forgets the object's tags (the object is gone, or was written without tags).
    pub async fn remove(&self, bucket: &str, key: &str) {
        match tokio::fs::remove_file(self.tags_path(bucket, key)).await {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(%error, "cannot remove an object's tags"),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, TagSet>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tags a CreateMultipartUpload asked for, applied when the upload completes.
    pub fn upload_created(&self, upload_id: &str, tags: TagSet) {
        if !tags.is_empty() {
            self.pending().insert(upload_id.to_owned(), tags);
        }
    }

    /// The tags of an upload that ended (completed or aborted).
    pub fn upload_ended(&self, upload_id: &str) -> TagSet {
        self.pending().remove(upload_id).unwrap_or_default()
    }

    /// After a write of the key: the new version gets `tags` (PutObject's `x-amz-tagging`, or an
    /// upload's), or none.
    pub async fn written(&self, bucket: &str, key: &str, tags: TagSet) -> S3Result<()> {
        if tags.is_empty() {
            self.remove(bucket, key).await;
            return Ok(());
        }
        self.put(bucket, key, None, tags).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[tokio::test]
    async fn tags_belong_to_one_version_and_go_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("b/users")).unwrap();
        let store = TagStore::new(root.clone());
        assert_eq!(
            *store
                .current("b", "users/x", None)
                .await
                .unwrap_err()
                .code(),
            S3ErrorCode::NoSuchKey
        );
        std::fs::write(root.join("b/users/x"), b"one").unwrap();
        let (version, tags) = store.current("b", "users/x", None).await.unwrap();
        assert!(tags.is_empty());
        let set = vec![tag("GuardDutyMalwareScanStatus", "NO_THREATS_FOUND")];
        assert_eq!(
            store
                .put("b", "users/x", Some(&version), set.clone())
                .await
                .unwrap(),
            version
        );
        assert_eq!(store.current("b", "users/x", None).await.unwrap().1, set);
        assert_eq!(
            *store
                .put("b", "users/x", Some("other"), set.clone())
                .await
                .unwrap_err()
                .code(),
            S3ErrorCode::NoSuchVersion
        );

        // A new version (s3s-fs renames a finished write into place) starts untagged.
        std::fs::write(root.join("next"), b"two").unwrap();
        std::fs::rename(root.join("next"), root.join("b/users/x")).unwrap();
        let untagged = async || {
            store
                .current("b", "users/x", None)
                .await
                .unwrap()
                .1
                .is_empty()
        };
        assert!(untagged().await);

        store.put("b", "users/x", None, set).await.unwrap();
        assert!(!untagged().await);
        store.remove("b", "users/x").await;
        assert!(untagged().await);
    }

    #[test]
    fn tag_sets_s3_refuses_are_refused() {
        assert_eq!(
            parse_header("a=1&b=two%20words").unwrap(),
            [tag("a", "1"), tag("b", "two words")]
        );
        let eleven: TagSet = (0..11).map(|i| tag(&format!("k{i}"), "v")).collect();
        for bad in [
            eleven,
            vec![tag("a", "1"), tag("a", "2")],
            vec![tag("", "v")],
            vec![tag("k", &"v".repeat(257))],
        ] {
            assert_eq!(*validate(&bad).unwrap_err().code(), S3ErrorCode::InvalidTag);
        }
    }
}
