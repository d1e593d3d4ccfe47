//! Read-model snapshots (docs/cost.md): the models as they stood at one position of the
//! log, so that start-up folds only the events written since, not the whole history.
//!
//! A snapshot is bytes that check themselves:
//!
//! ```text
//! magic            b"KEYWARD-SNAPSHOT"       16 bytes
//! fingerprint      projections::MODEL_FINGERPRINT of the build that wrote it, 32 bytes
//! position         u64, big-endian: the last event folded in
//! chain hash       the log's hash at that position, 32 bytes
//! body length      u64, big-endian
//! body SHA-256     32 bytes
//! body             the read models, CBOR
//! ```
//!
//! One is used only if every part checks and the log's hash at its position is the one it
//! names; otherwise it is ignored, the reason logged, and the next older one or the whole
//! log is folded instead. Snapshots hold what the log holds (hashes, ciphertext), nothing
//! more: values stay sealed.

mod difference;
mod files;
mod postgres;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use domain::ChainHash;
use projections::{MODEL_FINGERPRINT, ReadModels};
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnectOptions;

use super::{EventStore, StoreError};

pub use difference::differences;
pub use files::SnapshotFiles;
pub use postgres::PostgresSnapshots;

const MAGIC: &[u8; 16] = b"KEYWARD-SNAPSHOT";
const HEADER_LEN: usize = 16 + 32 + 8 + 32 + 8 + 32;
/// Snapshots kept: the newest, and one to fall back on if it turns out unusable.
pub const KEEP: usize = 2;

/// Read models at a position of the log, with the log's hash there.
#[derive(Debug)]
pub struct Snapshot {
    pub position: u64,
    pub chain_hash: ChainHash,
    pub models: ReadModels,
}

/// Why a stored snapshot was not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unusable {
    #[error("it is not a keyward snapshot")]
    NotASnapshot,
    #[error("it is truncated ({found} of {expected} bytes)")]
    Truncated { found: usize, expected: usize },
    #[error("its contents do not match their checksum")]
    Corrupted,
    #[error("another build of the read models wrote it (fingerprint {found}, this build's is {expected})")]
    OtherSchema { found: String, expected: String },
    #[error("its models do not parse: {0}")]
    Unparsable(String),
    #[error("its header says position {header} but its models stand at {models}")]
    PositionMismatch { header: u64, models: u64 },
    #[error("the log has no event at its position {0}")]
    BeyondLog(u64),
    #[error("the log's hash at its position {0} is not the one it names")]
    ForeignChain(u64),
}

/// The bytes of a snapshot of `models`, whose last event has the hash `chain_hash`.
pub fn encode(models: &ReadModels, chain_hash: ChainHash) -> Vec<u8> {
    let mut body = Vec::new();
    // Writing into a Vec cannot fail, and every model serializes: maps and sequences of
    // plain data (a failure here is a bug that the snapshot tests catch).
    if let Err(error) = ciborium::into_writer(models, &mut body) {
        unreachable!("read models always serialize: {error}");
    }
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&MODEL_FINGERPRINT);
    bytes.extend_from_slice(&models.position().to_be_bytes());
    bytes.extend_from_slice(&chain_hash.0);
    bytes.extend_from_slice(&(body.len() as u64).to_be_bytes());
    bytes.extend_from_slice(&Sha256::digest(&body));
    bytes.extend_from_slice(&body);
    bytes
}

/// The header of a snapshot's bytes, checked: its body is whole and unaltered, and this
/// build's folds wrote it.
struct Header<'a> {
    position: u64,
    chain_hash: ChainHash,
    body: &'a [u8],
}

fn header(bytes: &[u8]) -> Result<Header<'_>, Unusable> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Unusable::NotASnapshot);
    }
    if bytes.len() < HEADER_LEN {
        return Err(Unusable::Truncated {
            found: bytes.len(),
            expected: HEADER_LEN,
        });
    }
    let (fingerprint, rest) = bytes[MAGIC.len()..].split_at(32);
    let (position, rest) = rest.split_at(8);
    let (chain_hash, rest) = rest.split_at(32);
    let (body_len, rest) = rest.split_at(8);
    let (checksum, body) = rest.split_at(32);
    if fingerprint != MODEL_FINGERPRINT {
        return Err(Unusable::OtherSchema {
            found: hex::encode(&fingerprint[..8]),
            expected: hex::encode(&MODEL_FINGERPRINT[..8]),
        });
    }
    let body_len = usize::try_from(u64::from_be_bytes(array(body_len))).unwrap_or(usize::MAX);
    if body.len() != body_len {
        return Err(Unusable::Truncated {
            found: bytes.len(),
            expected: HEADER_LEN.saturating_add(body_len),
        });
    }
    if Sha256::digest(body).as_slice() != checksum {
        return Err(Unusable::Corrupted);
    }
    Ok(Header {
        position: u64::from_be_bytes(array(position)),
        chain_hash: ChainHash(array(chain_hash)),
        body,
    })
}

fn array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut array = [0; N];
    array.copy_from_slice(slice);
    array
}

/// The snapshot in `bytes`, if they are one this build can use. Whether it belongs to a
/// given log is [`verified`]'s question.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, Unusable> {
    let header = header(bytes)?;
    let models: ReadModels =
        ciborium::from_reader(header.body).map_err(|error| Unusable::Unparsable(error.to_string()))?;
    if models.position() != header.position {
        return Err(Unusable::PositionMismatch {
            header: header.position,
            models: models.position(),
        });
    }
    Ok(Snapshot {
        position: header.position,
        chain_hash: header.chain_hash,
        models,
    })
}

/// The snapshot in `bytes`, if it is usable and reflects `log`: the event at its position
/// has the hash it names. Snapshots of position 0 (an empty log) are never written.
pub async fn verified(bytes: Vec<u8>, log: &dyn EventStore) -> Result<Result<Snapshot, Unusable>, StoreError> {
    // Decoding is CPU work in proportion to the state: off the async workers.
    let decoded = tokio::task::spawn_blocking(move || decode(&bytes))
        .await
        .map_err(|_| StoreError::Closed)?;
    let snapshot = match decoded {
        Ok(snapshot) => snapshot,
        Err(unusable) => return Ok(Err(unusable)),
    };
    let at = log.read_all(snapshot.position.saturating_sub(1), 1).await?;
    Ok(match at.first() {
        Some(event) if event.position == snapshot.position && event.hash == snapshot.chain_hash => Ok(snapshot),
        Some(event) if event.position == snapshot.position => Err(Unusable::ForeignChain(snapshot.position)),
        _ => Err(Unusable::BeyondLog(snapshot.position)),
    })
}

/// Where a log's snapshots are kept: beside its SQLite file, or in its Postgres database.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// The positions of the snapshots stored, newest first.
    async fn positions(&self) -> Result<Vec<u64>, StoreError>;
    /// The bytes of the snapshot at `position`, if it is still there.
    async fn read(&self, position: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a snapshot whole or not at all (a crash midway leaves the older ones), then
    /// keeps only the newest [`KEEP`].
    async fn write(&self, position: u64, bytes: Vec<u8>) -> Result<(), StoreError>;
}

/// The snapshot store of the log at `database_url`; none for an in-memory SQLite log,
/// which has nothing to restart from.
pub async fn open(database_url: &str) -> Result<Option<Arc<dyn SnapshotStore>>, StoreError> {
    if database_url.starts_with("sqlite:") {
        let log = SqliteConnectOptions::from_str(database_url)?;
        let file = log.get_filename();
        if database_url.contains(":memory:") || file.as_os_str().is_empty() {
            return Ok(None);
        }
        let directory = format!("{}.snapshots", file.display());
        Ok(Some(Arc::new(SnapshotFiles::open(directory.into()).await?)))
    } else {
        Ok(Some(Arc::new(PostgresSnapshots::open(database_url).await?)))
    }
}

/// The newest stored snapshot that is usable and reflects `log`, checked newest first;
/// each one passed over is logged with the reason.
pub async fn newest_usable(
    snapshots: &dyn SnapshotStore,
    log: &dyn EventStore,
) -> Result<Option<Snapshot>, StoreError> {
    for position in snapshots.positions().await? {
        let Some(bytes) = snapshots.read(position).await? else {
            continue;
        };
        match verified(bytes, log).await? {
            Ok(snapshot) => return Ok(Some(snapshot)),
            Err(unusable) => {
                tracing::warn!(position, reason = %unusable, "ignoring a read-model snapshot");
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
