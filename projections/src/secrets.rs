//! Every live secret: its metadata, and every version it has had, each with its read count,
//! whether it is disabled and its ciphertext, so any version can be opened. Values stay
//! encrypted here; only a read that was authorized and audited opens one.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use domain::events::Event;
use domain::secret::{Sealed, Secret, SecretVersion};
use domain::{RecordedEvent, SecretPath, VaultId};

use crate::DomainModel;

type Key = (VaultId, SecretPath);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    live: HashMap<Key, Secret>,
    /// The versions of every live secret, oldest first.
    versions: HashMap<Key, Vec<StoredVersion>>,
    /// The version of every path's stream, deleted paths included: a new secret at a
    /// deleted path continues its stream.
    stream_versions: HashMap<Key, u64>,
    /// Where each live secret is, by its id.
    by_id: HashMap<domain::SecretId, Key>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredVersion {
    info: SecretVersion,
    sealed: Sealed,
}

impl Secrets {
    pub fn secret(&self, vault: VaultId, path: &SecretPath) -> Option<&Secret> {
        self.live.get(&(vault, path.clone()))
    }

    /// The live secret with this id: none once deleted, also if its path was reused.
    pub fn secret_by_id(&self, id: domain::SecretId) -> Option<&Secret> {
        self.live.get(self.by_id.get(&id)?).filter(|secret| secret.id == id)
    }

    /// Every version of the live secret at the path, oldest first; none if there is none.
    pub fn versions(&self, vault: VaultId, path: &SecretPath) -> impl Iterator<Item = &SecretVersion> {
        self.versions
            .get(&(vault, path.clone()))
            .into_iter()
            .flatten()
            .map(|stored| &stored.info)
    }

    /// One version of the live secret at the path.
    pub fn version(&self, vault: VaultId, path: &SecretPath, version: u64) -> Option<&SecretVersion> {
        self.stored(vault, path, version).map(|stored| &stored.info)
    }

    /// The ciphertext of one version of the live secret at the path.
    pub fn value(&self, vault: VaultId, path: &SecretPath, version: u64) -> Option<&Sealed> {
        self.stored(vault, path, version).map(|stored| &stored.sealed)
    }

    pub fn stream_version(&self, vault: VaultId, path: &SecretPath) -> u64 {
        self.stream_versions.get(&(vault, path.clone())).copied().unwrap_or(0)
    }

    /// The vault's live secrets whose path starts with `prefix`, by path.
    pub fn list(&self, vault: VaultId, prefix: &str) -> Vec<&Secret> {
        let mut secrets: Vec<_> = self
            .live
            .values()
            .filter(|secret| secret.vault_id == vault && secret.path.starts_with_prefix(prefix))
            .collect();
        secrets.sort_by(|a, b| a.path.cmp(&b.path));
        secrets
    }

    pub fn secret_count(&self) -> usize {
        self.live.len()
    }

    fn stored(&self, vault: VaultId, path: &SecretPath, version: u64) -> Option<&StoredVersion> {
        // Newest first: reads of the current version are the common case.
        self.versions
            .get(&(vault, path.clone()))?
            .iter()
            .rev()
            .find(|stored| stored.info.version == version)
    }

    /// Records that the path's stream moved on to `stream_version`, and returns the version
    /// `version` of the live secret at `key` if that secret is the one an event names: an
    /// event about a deleted secret never counts against a newer one at its path.
    fn moved_on(
        &mut self,
        key: &Key,
        stream_version: u64,
        secret_id: domain::SecretId,
        version: u64,
    ) -> Option<(&mut Secret, &mut SecretVersion)> {
        self.stream_versions.insert(key.clone(), stream_version);
        let secret = self.live.get_mut(key)?;
        secret.stream_version = stream_version;
        if secret.id != secret_id {
            return None;
        }
        let stored = self
            .versions
            .get_mut(key)?
            .iter_mut()
            .rev()
            .find(|stored| stored.info.version == version)?;
        Some((secret, &mut stored.info))
    }
}

impl DomainModel for Secrets {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let (at, stream_version) = (recorded.recorded_at, recorded.stream_version);
        match event {
            Event::SecretWritten(written) => {
                let key = (written.vault_id, written.path.clone());
                self.stream_versions.insert(key.clone(), stream_version);
                let previous = self.live.get(&key).filter(|previous| previous.id == written.secret_id);
                let created_at = previous.map_or(at, |previous| previous.created_at);
                let continues = previous.is_some();
                let versions = self.versions.entry(key.clone()).or_default();
                if !continues {
                    versions.clear();
                }
                versions.push(StoredVersion {
                    info: SecretVersion {
                        version: written.version,
                        secret_type: written.secret_type,
                        metadata: written.metadata.clone(),
                        expires_at: written.expires_at,
                        max_access_count: written.max_access_count,
                        access_count: 0,
                        created_at: at,
                        written_by: written.written_by,
                        disabled: false,
                    },
                    sealed: written.sealed.clone(),
                });
                self.by_id.insert(written.secret_id, key.clone());
                self.live.insert(
                    key,
                    Secret {
                        id: written.secret_id,
                        vault_id: written.vault_id,
                        path: written.path.clone(),
                        secret_type: written.secret_type,
                        version: written.version,
                        metadata: written.metadata.clone(),
                        expires_at: written.expires_at,
                        max_access_count: written.max_access_count,
                        access_count: 0,
                        created_at,
                        updated_at: at,
                        written_by: written.written_by,
                        stream_version,
                    },
                );
            }
            Event::SecretRead(read) => {
                let key = (read.vault_id, read.path.clone());
                if let Some((secret, version)) = self.moved_on(&key, stream_version, read.secret_id, read.version) {
                    version.access_count += 1;
                    if secret.version == read.version {
                        secret.access_count += 1;
                    }
                }
            }
            Event::SecretVersionDisabled(disabled) => {
                let key = (disabled.vault_id, disabled.path.clone());
                if let Some((_, version)) = self.moved_on(&key, stream_version, disabled.secret_id, disabled.version) {
                    version.disabled = true;
                }
            }
            Event::SecretDeleted(deleted) => {
                let key = (deleted.vault_id, deleted.path.clone());
                self.stream_versions.insert(key.clone(), stream_version);
                self.by_id.remove(&deleted.secret_id);
                self.live.remove(&key);
                self.versions.remove(&key);
            }
            Event::VaultDeleted(deleted) => {
                self.live.retain(|(vault, _), _| *vault != deleted.vault_id);
                self.by_id.retain(|_, (vault, _)| *vault != deleted.vault_id);
                self.versions.retain(|(vault, _), _| *vault != deleted.vault_id);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use domain::authz::Principal;
    use domain::events::{SecretDeleted, SecretRead, SecretVersionDisabled, SecretWritten, VaultDeleted};
    use domain::secret::{SecretType, secret_stream};
    use domain::{ChainHash, SecretId, UserId};
    use uuid::Uuid;

    use super::*;

    const VAULT: VaultId = VaultId(Uuid::from_u128(1));

    fn path() -> SecretPath {
        SecretPath::parse("db/password").unwrap()
    }

    fn owner() -> Principal {
        Principal::user(UserId(Uuid::from_u128(9)))
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::minutes(minutes)
    }

    /// Folds `events` as the log would hold them: one stream, one event a minute.
    fn fold(events: Vec<Event>) -> Secrets {
        let mut secrets = Secrets::default();
        for (index, event) in events.into_iter().enumerate() {
            let n = index as u64 + 1;
            let recorded = RecordedEvent {
                position: n,
                event_id: Uuid::from_u128(n.into()),
                stream_id: secret_stream(VAULT, &path()),
                stream_version: n,
                event_type: event.event_type().into(),
                schema_version: 1,
                payload: String::new(),
                metadata: String::new(),
                recorded_at: at(n as i64),
                prev_hash: ChainHash::GENESIS,
                hash: ChainHash::GENESIS,
            };
            secrets.apply(&recorded, &event);
        }
        secrets
    }

    fn written(secret: u128, version: u64, secret_type: SecretType, max_access_count: Option<u64>) -> Event {
        Event::from(SecretWritten {
            secret_id: SecretId(Uuid::from_u128(secret)),
            vault_id: VAULT,
            path: path(),
            version,
            secret_type,
            sealed: Sealed {
                nonce: format!("nonce-{secret}-{version}"),
                ciphertext: format!("ciphertext-{secret}-{version}"),
            },
            metadata: serde_json::json!({"v": version}),
            expires_at: None,
            max_access_count,
            written_by: owner(),
        })
    }

    fn read(secret: u128, version: u64) -> Event {
        Event::from(SecretRead {
            secret_id: SecretId(Uuid::from_u128(secret)),
            vault_id: VAULT,
            path: path(),
            version,
            by: owner(),
        })
    }

    fn disabled(secret: u128, version: u64) -> Event {
        Event::from(SecretVersionDisabled {
            secret_id: SecretId(Uuid::from_u128(secret)),
            vault_id: VAULT,
            path: path(),
            version,
            by: owner(),
        })
    }

    fn deleted(secret: u128) -> Event {
        Event::from(SecretDeleted {
            secret_id: SecretId(Uuid::from_u128(secret)),
            vault_id: VAULT,
            path: path(),
            by: owner(),
        })
    }

    fn summary(secrets: &Secrets) -> Vec<(u64, SecretType, u64, bool, DateTime<Utc>)> {
        secrets
            .versions(VAULT, &path())
            .map(|v| (v.version, v.secret_type, v.access_count, v.disabled, v.created_at))
            .collect()
    }

    #[test]
    fn every_write_keeps_its_version_with_its_own_type_metadata_time_and_value() {
        let secrets = fold(vec![
            written(1, 1, SecretType::Password, None),
            written(1, 2, SecretType::ApiKey, None),
            written(1, 3, SecretType::Note, None),
        ]);
        assert_eq!(
            summary(&secrets),
            vec![
                (1, SecretType::Password, 0, false, at(1)),
                (2, SecretType::ApiKey, 0, false, at(2)),
                (3, SecretType::Note, 0, false, at(3)),
            ]
        );
        let first = secrets.version(VAULT, &path(), 1).unwrap();
        assert_eq!(
            (&first.metadata, first.written_by),
            (&serde_json::json!({"v": 1}), owner())
        );
        assert_eq!(
            secrets
                .value(VAULT, &path(), 1)
                .map(|sealed| sealed.ciphertext.as_str()),
            Some("ciphertext-1-1")
        );
        assert_eq!(
            secrets
                .value(VAULT, &path(), 3)
                .map(|sealed| sealed.ciphertext.as_str()),
            Some("ciphertext-1-3")
        );
        assert_eq!(secrets.version(VAULT, &path(), 4), None);
        let secret = secrets.secret(VAULT, &path()).unwrap();
        assert_eq!(
            (secret.version, secret.created_at, secret.updated_at),
            (3, at(1), at(3))
        );
    }

    #[test]
    fn reads_count_for_the_version_read_and_the_current_count_only_for_the_current_one() {
        let secrets = fold(vec![
            written(1, 1, SecretType::Generic, Some(3)),
            read(1, 1),
            written(1, 2, SecretType::Generic, None),
            read(1, 1),
            read(1, 2),
            read(1, 2),
        ]);
        let counts: Vec<u64> = secrets.versions(VAULT, &path()).map(|v| v.access_count).collect();
        assert_eq!(counts, vec![2, 2]);
        let secret = secrets.secret(VAULT, &path()).unwrap();
        assert_eq!((secret.access_count, secret.stream_version), (2, 6));
    }

    #[test]
    fn disabling_marks_one_version_and_moves_the_secrets_stream_version() {
        let secrets = fold(vec![
            written(1, 1, SecretType::Generic, None),
            written(1, 2, SecretType::Generic, None),
            disabled(1, 1),
            disabled(1, 2),
            disabled(1, 2),
        ]);
        let flags: Vec<bool> = secrets.versions(VAULT, &path()).map(|v| v.disabled).collect();
        assert_eq!(flags, vec![true, true]);
        assert_eq!(secrets.secret(VAULT, &path()).unwrap().stream_version, 5);
        assert_eq!(secrets.stream_version(VAULT, &path()), 5);
    }

    #[test]
    fn deleting_drops_every_version_and_a_new_secret_at_the_path_starts_afresh() {
        let secrets = fold(vec![
            written(1, 1, SecretType::Generic, None),
            written(1, 2, SecretType::Generic, None),
            deleted(1),
        ]);
        assert_eq!(secrets.versions(VAULT, &path()).count(), 0);
        assert_eq!(secrets.value(VAULT, &path(), 1), None);

        let secrets = fold(vec![
            written(1, 1, SecretType::Generic, None),
            written(1, 2, SecretType::Generic, None),
            deleted(1),
            written(2, 1, SecretType::Note, None),
            // Late events about the deleted secret touch nothing of the new one.
            read(1, 1),
            disabled(1, 1),
        ]);
        assert_eq!(summary(&secrets), vec![(1, SecretType::Note, 0, false, at(4))]);
        assert_eq!(
            secrets
                .value(VAULT, &path(), 1)
                .map(|sealed| sealed.ciphertext.as_str()),
            Some("ciphertext-2-1")
        );
        let secret = secrets.secret(VAULT, &path()).unwrap();
        assert_eq!(
            (secret.created_at, secret.access_count, secret.stream_version),
            (at(4), 0, 6)
        );
        assert_eq!(secrets.stream_version(VAULT, &path()), 6);
    }

    #[test]
    fn deleting_the_vault_drops_its_versions() {
        let mut events = vec![written(1, 1, SecretType::Generic, None)];
        events.push(Event::from(VaultDeleted { vault_id: VAULT }));
        let secrets = fold(events);
        assert_eq!(secrets.secret(VAULT, &path()), None);
        assert_eq!(secrets.versions(VAULT, &path()).count(), 0);
    }
}
