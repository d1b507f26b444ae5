//! Object versions, as the template's versioned bucket reports them (`VersioningConfiguration:
//! Enabled`; Amazon S3 User Guide, "Retaining multiple versions of objects with S3 Versioning").
//! s3s-fs keeps one file per key and knows no versions, so each stored object gets the version id
//! of the file that holds it: the file's identity (device, inode, modification time, length),
//! hashed. A write makes a new file (s3s-fs renames a finished upload into place), so it makes a
//! new version id, and the id stays the same across restarts while the file does.
//!
//! Only the current version exists here: every write under `users/` needs `If-None-Match` (the
//! bucket policy) and the functions delete by version id, so in AWS too a key of theirs holds one
//! version at most. A DeleteObject without a version id still removes the file, where S3 would
//! add a delete marker (README, "The local AWS").

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::hex;

/// The version id of the object stored at `path`; None when there is none.
pub async fn current_version(path: &Path) -> Option<String> {
    let metadata = tokio::fs::metadata(path).await.ok()?;
    if !metadata.is_file() {
        return None;
    }
    let identity = format!(
        "{}:{}:{}.{}:{}",
        metadata.dev(),
        metadata.ino(),
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.len()
    );
    let digest = Sha256::digest(identity.as_bytes());
    Some(hex(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rewritten_file_is_a_new_version_and_a_missing_one_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        assert_eq!(current_version(&path).await, None);
        std::fs::write(&path, b"one").unwrap();
        let first = current_version(&path).await.unwrap();
        assert_eq!(current_version(&path).await.as_ref(), Some(&first));
        // As s3s-fs writes: a new file renamed into place.
        let next = dir.path().join("next");
        std::fs::write(&next, b"two").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_ne!(current_version(&path).await.unwrap(), first);
        assert_eq!(
            current_version(dir.path()).await,
            None,
            "a directory is no object"
        );
    }
}
