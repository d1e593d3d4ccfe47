//! Secrets: versioned, encrypted values at a path of a vault. Each (vault, path) has a
//! stream of its own, so creating a path twice, and counting reads against a limit,
//! are decided by the stream's version, exactly, under any concurrency.
//!
//! Every version keeps the terms it was written with: a version's `max_access_count`
//! limits the reads of that version's value, whichever endpoint reads it (the secret's
//! current value or the version by number), so writing a new version never makes an old
//! value readable again. Expiry is checked twice: a version past its own `expires_at` is
//! gone, and once the secret's current version has expired, every version is. A disabled
//! version is kept for audit and never read again, the current one included (the secret
//! then answers 410 until a new version is written).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::authz::Principal;
use crate::change::{Change, DomainError, stream};
use crate::event::ExpectedVersion;
use crate::events::{SecretDeleted, SecretRead, SecretVersionDisabled, SecretWritten};
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// One version of a secret, as written, with what happened to it since: its reads and
/// whether it was disabled. The ciphertext stays with the read model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecretVersion {
    pub version: u64,
    pub secret_type: SecretType,
    pub metadata: serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_access_count: Option<u64>,
    /// Reads of this version's value so far.
    pub access_count: u64,
    /// When this version was written.
    pub created_at: DateTime<Utc>,
    pub written_by: Principal,
    pub disabled: bool,
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

/// Why a read of an existing version is refused whatever the caller's rights.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadRefused {
    #[error("the secret expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("the secret has been read its maximum of {0} times")]
    AccessLimitReached(u64),
    #[error("version {0} of the secret is disabled")]
    Disabled(u64),
}

/// Records one read of `version` of `secret` (the current one for a plain read). With a
/// `max_access_count` the read claims the version's next count through the stream's
/// version, so N concurrent readers of a value allowed K reads get exactly K values.
pub fn read(
    secret: &Secret,
    version: &SecretVersion,
    by: Principal,
    now: DateTime<Utc>,
) -> Result<Change, ReadRefused> {
    if version.disabled {
        return Err(ReadRefused::Disabled(version.version));
    }
    if let Some(expiry) = [version.expires_at, secret.expires_at]
        .into_iter()
        .flatten()
        .find(|expiry| *expiry <= now)
    {
        return Err(ReadRefused::Expired(expiry));
    }
    if let Some(limit) = version.max_access_count
        && version.access_count >= limit
    {
        return Err(ReadRefused::AccessLimitReached(limit));
    }
    let expected = match version.max_access_count {
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
            version: version.version,
            by,
        },
    ))
}

/// Disables `version` of `secret` for good: kept for audit, never read again. Disabling a
/// disabled version changes nothing (`None`), so a retried request is harmless.
pub fn disable_version(secret: &Secret, version: &SecretVersion, by: Principal) -> Option<Change> {
    if version.disabled {
        return None;
    }
    Some(Change::new(
        secret_stream(secret.vault_id, &secret.path),
        ExpectedVersion::Exact(secret.stream_version),
        SecretVersionDisabled {
            secret_id: secret.id,
            vault_id: secret.vault_id,
            path: secret.path.clone(),
            version: version.version,
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

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use uuid::Uuid;

    use super::*;
    use crate::events::Event;
    use crate::ids::UserId;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::minutes(minutes)
    }

    fn owner() -> Principal {
        Principal::user(UserId(Uuid::from_u128(7)))
    }

    /// A secret at version 2 whose stream is at 5, and its version 1 as written.
    fn secret_and_first_version() -> (Secret, SecretVersion) {
        let secret = Secret {
            id: SecretId(Uuid::from_u128(1)),
            vault_id: VaultId(Uuid::from_u128(2)),
            path: SecretPath::parse("db/password").unwrap(),
            secret_type: SecretType::Password,
            version: 2,
            metadata: serde_json::Value::Null,
            expires_at: None,
            max_access_count: None,
            access_count: 0,
            created_at: at(0),
            updated_at: at(10),
            written_by: owner(),
            stream_version: 5,
        };
        let first = SecretVersion {
            version: 1,
            secret_type: SecretType::Password,
            metadata: serde_json::Value::Null,
            expires_at: None,
            max_access_count: None,
            access_count: 0,
            created_at: at(0),
            written_by: owner(),
            disabled: false,
        };
        (secret, first)
    }

    #[test]
    fn a_read_of_an_old_version_records_that_version() {
        let (secret, first) = secret_and_first_version();
        let change = read(&secret, &first, owner(), at(20)).unwrap();
        assert_eq!(change.expected, ExpectedVersion::Any);
        match &change.events[..] {
            [Event::SecretRead(read)] => assert_eq!((read.secret_id, read.version), (secret.id, 1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_version_is_read_at_most_its_own_max_access_count_times() {
        let (secret, mut first) = secret_and_first_version();
        first.max_access_count = Some(2);
        first.access_count = 1;
        let change = read(&secret, &first, owner(), at(20)).unwrap();
        assert_eq!(change.expected, ExpectedVersion::Exact(5));
        first.access_count = 2;
        assert_eq!(
            read(&secret, &first, owner(), at(20)),
            Err(ReadRefused::AccessLimitReached(2))
        );
    }

    #[test]
    fn a_version_expires_with_its_own_expiry_and_with_the_secrets() {
        let (mut secret, mut first) = secret_and_first_version();
        first.expires_at = Some(at(15));
        assert_eq!(
            read(&secret, &first, owner(), at(15)),
            Err(ReadRefused::Expired(at(15)))
        );
        first.expires_at = None;
        secret.expires_at = Some(at(30));
        assert!(read(&secret, &first, owner(), at(29)).is_ok());
        assert_eq!(
            read(&secret, &first, owner(), at(30)),
            Err(ReadRefused::Expired(at(30)))
        );
    }

    #[test]
    fn a_disabled_version_is_never_read_and_disabling_it_again_changes_nothing() {
        let (secret, mut first) = secret_and_first_version();
        let change = disable_version(&secret, &first, owner()).unwrap();
        assert_eq!(change.expected, ExpectedVersion::Exact(5));
        match &change.events[..] {
            [Event::SecretVersionDisabled(disabled)] => assert_eq!(disabled.version, 1),
            other => panic!("{other:?}"),
        }
        first.disabled = true;
        assert_eq!(read(&secret, &first, owner(), at(20)), Err(ReadRefused::Disabled(1)));
        assert_eq!(disable_version(&secret, &first, owner()), None);
    }
}
