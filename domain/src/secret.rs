//! Secrets: versioned, encrypted values at a path of a vault. Each (vault, path) has a
//! stream of its own, so creating a path twice, and counting reads against a limit,
//! are decided by the stream's version, exactly, under any concurrency.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::authz::Principal;
use crate::change::{Change, DomainError, stream};
use crate::event::ExpectedVersion;
use crate::events::{SecretDeleted, SecretRead, SecretWritten};
use crate::ids::{SecretId, VaultId};
use crate::secret_path::SecretPath;
use crate::stream::StreamId;

/// The most metadata a secret may carry, as JSON text.
const MAX_METADATA_BYTES: usize = 16 * 1024;

/// The stream of one path of one vault, named by a digest so paths stay out of stream ids.
pub fn secret_stream(vault: VaultId, path: &SecretPath) -> StreamId {
    let digest = Sha256::new()
        .chain_update(vault.0.as_bytes())
        .chain_update(path.as_str().as_bytes())
        .finalize();
    stream("secret", hex::encode(digest))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretType {
    Password,
    ApiKey,
    PrivateKey,
    Certificate,
    File,
    Note,
    SshKey,
    /// `env` on the wire in some SDKs; both names are accepted.
    #[serde(alias = "env")]
    EnvBundle,
    Generic,
}

impl SecretType {
    /// Key material an agent that signs through the Intents API must never read directly.
    pub fn is_signing_key_material(self) -> bool {
        matches!(self, SecretType::PrivateKey | SecretType::SshKey)
    }
}

/// An encrypted value as events carry it: base64 of the nonce and of the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: String,
    pub ciphertext: String,
}

/// One path of one vault, as the decisions about it need to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub id: SecretId,
    pub vault_id: VaultId,
    pub path: SecretPath,
    pub secret_type: SecretType,
    pub version: u64,
    pub metadata: serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_access_count: Option<u64>,
    /// Reads of the current value so far.
    pub access_count: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub written_by: Principal,
    /// The version of the path's stream this state reflects.
    pub stream_version: u64,
}

pub struct WriteSecret {
    pub vault_id: VaultId,
    pub path: SecretPath,
    pub secret_type: SecretType,
    pub sealed: Sealed,
    pub metadata: serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_access_count: Option<u64>,
    pub written_by: Principal,
}

/// Writes the first or the next version of the path. `current` is the live secret at the
/// path, if any; `stream_version` the path stream's version (a deleted secret leaves its
/// stream behind, and a new secret continues it). The caller sealed the value for
/// `next_version(current)`.
pub fn write(
    current: Option<&Secret>,
    stream_version: u64,
    command: WriteSecret,
    new_id: SecretId,
    now: DateTime<Utc>,
) -> Result<Change, DomainError> {
    if !command.metadata.is_object() && !command.metadata.is_null() {
        return Err(DomainError::Invalid("metadata must be a JSON object".into()));
    }
    if command.metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(DomainError::Invalid(format!(
            "metadata must be at most {MAX_METADATA_BYTES} bytes of JSON"
        )));
    }
    if command.expires_at.is_some_and(|at| at <= now) {
        return Err(DomainError::Invalid("expires_at must be in the future".into()));
    }
    if command.max_access_count == Some(0) {
        return Err(DomainError::Invalid("max_access_count must be at least 1".into()));
    }
    let expected = if stream_version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(stream_version)
    };
    Ok(Change::new(
        secret_stream(command.vault_id, &command.path),
        expected,
        SecretWritten {
            secret_id: current.map_or(new_id, |secret| secret.id),
            vault_id: command.vault_id,
            path: command.path,
            version: next_version(current),
            secret_type: command.secret_type,
            sealed: command.sealed,
            metadata: command.metadata,
            expires_at: command.expires_at,
            max_access_count: command.max_access_count,
            written_by: command.written_by,
        },
    ))
}

/// The version a write to the path creates.
pub fn next_version(current: Option<&Secret>) -> u64 {
    current.map_or(1, |secret| secret.version + 1)
}

/// Why a read of an existing secret is refused whatever the caller's rights.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadRefused {
    #[error("the secret expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("the secret has been read its maximum of {0} times")]
    AccessLimitReached(u64),
}

/// Records one read of the current version. With a `max_access_count` the read claims
/// the next count through the stream's version, so N concurrent readers of a secret
/// allowed K reads get exactly K values.
pub fn read(secret: &Secret, by: Principal, now: DateTime<Utc>) -> Result<Change, ReadRefused> {
    if let Some(expiry) = secret.expires_at
        && expiry <= now
    {
        return Err(ReadRefused::Expired(expiry));
    }
    if let Some(limit) = secret.max_access_count
        && secret.access_count >= limit
    {
        return Err(ReadRefused::AccessLimitReached(limit));
    }
    let expected = match secret.max_access_count {
        Some(_) => ExpectedVersion::Exact(secret.stream_version),
        // Unlimited reads need not serialize behind each other.
        None => ExpectedVersion::Any,
    };
    Ok(Change::new(
        secret_stream(secret.vault_id, &secret.path),
        expected,
        SecretRead {
            secret_id: secret.id,
            vault_id: secret.vault_id,
            path: secret.path.clone(),
            version: secret.version,
            by,
        },
    ))
}

pub fn delete(secret: &Secret, by: Principal) -> Change {
    Change::new(
        secret_stream(secret.vault_id, &secret.path),
        ExpectedVersion::Exact(secret.stream_version),
        SecretDeleted {
            secret_id: secret.id,
            vault_id: secret.vault_id,
            path: secret.path.clone(),
            by,
        },
    )
}
