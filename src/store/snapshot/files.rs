//! Snapshots of a SQLite log, as files in a directory beside it (`<log file>.snapshots/`):
//! kept out of the log's database so that writing one never holds the log's write lock.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::{KEEP, SnapshotStore};
use crate::store::StoreError;

const SUFFIX: &str = ".snapshot";

pub struct SnapshotFiles {
    directory: PathBuf,
}

impl SnapshotFiles {
    /// Opens (creating) the directory, and deletes what a write cut short left behind.
    pub async fn open(directory: PathBuf) -> Result<Self, StoreError> {
        blocking(move || {
            std::fs::create_dir_all(&directory)?;
            for entry in std::fs::read_dir(&directory)? {
                let path = entry?.path();
                if is_unfinished(&path) {
                    std::fs::remove_file(&path)?;
                }
            }
            Ok(Self { directory })
        })
        .await
    }

    fn path_of(&self, position: u64) -> PathBuf {
        // Zero-padded, so that names sort as positions do.
        self.directory.join(format!("{position:020}{SUFFIX}"))
    }
}

fn position_of(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_suffix(SUFFIX)?.parse().ok()
}

/// A temporary file: a snapshot is written under such a name and renamed once whole.
fn is_unfinished(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.') && name.ends_with(".partial"))
}

fn positions_in(directory: &Path) -> std::io::Result<Vec<u64>> {
    let mut positions = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        if let Some(position) = position_of(&entry?.path()) {
            positions.push(position);
        }
    }
    positions.sort_unstable_by(|a, b| b.cmp(a));
    Ok(positions)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|error| StoreError::Io(Arc::new(error))),
        Err(_) => Err(StoreError::Closed),
    }
}

#[async_trait]
impl SnapshotStore for SnapshotFiles {
    async fn positions(&self) -> Result<Vec<u64>, StoreError> {
        let directory = self.directory.clone();
        blocking(move || positions_in(&directory)).await
    }

    async fn read(&self, position: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(position);
        blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        })
        .await
    }

    async fn write(&self, position: u64, bytes: Vec<u8>) -> Result<(), StoreError> {
        let directory = self.directory.clone();
        let path = self.path_of(position);
        blocking(move || {
            let partial = directory.join(format!(".{position:020}-{}.partial", uuid::Uuid::new_v4().simple()));
            let mut file = std::fs::File::create(&partial)?;
            file.write_all(&bytes)?;
            // On disk before it gets its name: a crash leaves a whole snapshot or a
            // partial file that the next start deletes, never a short one by that name.
            file.sync_all()?;
            drop(file);
            std::fs::rename(&partial, &path)?;
            std::fs::File::open(&directory)?.sync_all()?;
            for old in positions_in(&directory)?.into_iter().skip(KEEP) {
                let old = directory.join(format!("{old:020}{SUFFIX}"));
                match std::fs::remove_file(old) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                    _ => {}
                }
            }
            Ok(())
        })
        .await
    }
}
