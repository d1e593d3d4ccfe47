//! Every live secret: its metadata, its read count and the ciphertext of its current
//! version. Values stay encrypted here; only a read that was authorized and audited
//! opens one.

use std::collections::HashMap;

use domain::events::Event;
use domain::secret::{Sealed, Secret};
use domain::{RecordedEvent, SecretPath, VaultId};

use crate::DomainModel;

type Key = (VaultId, SecretPath);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    live: HashMap<Key, Secret>,
    current_values: HashMap<Key, Sealed>,
    /// The version of every path's stream, deleted paths included: a new secret at a
    /// deleted path continues its stream.
    stream_versions: HashMap<Key, u64>,
}

impl Secrets {
    pub fn secret(&self, vault: VaultId, path: &SecretPath) -> Option<&Secret> {
        self.live.get(&(vault, path.clone()))
    }

    /// The ciphertext of the secret's current version.
    pub fn current_value(&self, vault: VaultId, path: &SecretPath) -> Option<&Sealed> {
        self.current_values.get(&(vault, path.clone()))
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
}

impl DomainModel for Secrets {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let (at, stream_version) = (recorded.recorded_at, recorded.stream_version);
        match event {
            Event::SecretWritten(written) => {
                let key = (written.vault_id, written.path.clone());
                self.stream_versions.insert(key.clone(), stream_version);
                self.current_values.insert(key.clone(), written.sealed.clone());
                let created_at = self.live.get(&key).map_or(at, |previous| previous.created_at);
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
                self.stream_versions.insert(key.clone(), stream_version);
                if let Some(secret) = self.live.get_mut(&key) {
                    if secret.version == read.version {
                        secret.access_count += 1;
                    }
                    secret.stream_version = stream_version;
                }
            }
            Event::SecretDeleted(deleted) => {
                let key = (deleted.vault_id, deleted.path.clone());
                self.stream_versions.insert(key.clone(), stream_version);
                self.live.remove(&key);
                self.current_values.remove(&key);
            }
            Event::VaultDeleted(deleted) => {
                self.live.retain(|(vault, _), _| *vault != deleted.vault_id);
                self.current_values.retain(|(vault, _), _| *vault != deleted.vault_id);
            }
            _ => {}
        }
    }
}
