//! A write that fails stores nothing: the file a PutObject or UploadPart would replace is kept as
//! a hard link, and put back if the write fails (s3s-fs writes the bytes into place before it
//! compares the checksums; on S3 a refused PUT leaves the key as it was).

use std::io;
use std::path::{Path, PathBuf};

use s3s::S3Result;

/// The state of one file before a write, to put back if the write fails.
pub(super) struct Snapshot {
    path: PathBuf,
    /// A hard link to the previous file, if there was one.
    backup: Option<PathBuf>,
    /// Directories the write may create (deepest first), to remove again.
    missing_dirs: Vec<PathBuf>,
}

impl Snapshot {
    pub(super) async fn take(path: PathBuf, backup: PathBuf, root: &Path) -> io::Result<Self> {
        let backup = match tokio::fs::hard_link(&path, &backup).await {
            Ok(()) => Some(backup),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        let mut missing_dirs = Vec::new();
        for dir in path.ancestors().skip(1) {
            if dir == root || tokio::fs::try_exists(dir).await? {
                break;
            }
            missing_dirs.push(dir.to_owned());
        }
        Ok(Self {
            path,
            backup,
            missing_dirs,
        })
    }

    async fn restore(self) {
        match &self.backup {
            Some(backup) => {
                if let Err(error) = tokio::fs::rename(backup, &self.path).await {
                    tracing::error!(%error, "could not restore an object after a failed write");
                }
            }
            None => {
                let _ = tokio::fs::remove_file(&self.path).await;
                for dir in &self.missing_dirs {
                    // Only empty directories go: another write may have put something there.
                    let _ = tokio::fs::remove_dir(dir).await;
                }
            }
        }
        self.discard().await;
    }

    async fn discard(self) {
        // After a rename onto a link of the same file (nothing was written) the backup stays.
        if let Some(backup) = self.backup {
            let _ = tokio::fs::remove_file(backup).await;
        }
    }
}

pub(super) async fn settle<T>(snapshot: Option<Snapshot>, result: &S3Result<T>) {
    match (snapshot, result) {
        (Some(snapshot), Err(_)) => snapshot.restore().await,
        (Some(snapshot), Ok(_)) => snapshot.discard().await,
        (None, _) => {}
    }
}
