//! Signing keys keyward holds for an agent: at most one active per chain family, made by
//! keyward (the private key exists only sealed in the log and, for one signature at a
//! time, in memory). Rotating provisions a new key and retires the old in one event;
//! retired keys stay sealed in the log, since funds may still sit on their addresses.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::change::{Change, DomainError, stream};
use crate::event::ExpectedVersion;
use crate::events::{SigningKeyDeactivated, SigningKeyExported, SigningKeyProvisioned};
use crate::ids::{AgentId, UserId};
use crate::secret::Sealed;
use crate::stream::StreamId;

/// Every EVM chain shares one family: the same key and address sign on all of them.
pub const ETHEREUM: &str = "ethereum";
/// Families the 1claw API names; keyward signs for EVM chains only.
pub const KNOWN_FAMILIES: [&str; 6] = ["ethereum", "bitcoin", "solana", "xrp", "cardano", "tron"];
pub const SECP256K1: &str = "secp256k1";

pub fn signing_keys_stream(agent: AgentId) -> StreamId {
    stream("signing_keys", agent)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SigningKey {
    pub id: Uuid,
    pub agent_id: AgentId,
    pub chain: String,
    pub curve: String,
    pub public_key: String,
    pub address: String,
    pub key_version: u64,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub sealed: Sealed,
}

/// An agent's signing keys, oldest first, with the version of their stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentSigningKeys {
    pub keys: Vec<SigningKey>,
    pub version: u64,
}

impl AgentSigningKeys {
    pub fn active(&self, chain: &str) -> Option<&SigningKey> {
        self.keys.iter().rev().find(|key| key.is_active && key.chain == chain)
    }

    /// The chains (families) it has an active key for, sorted.
    pub fn active_chains(&self) -> Vec<String> {
        let mut chains: Vec<String> = self
            .keys
            .iter()
            .filter(|key| key.is_active)
            .map(|key| key.chain.clone())
            .collect();
        chains.sort_unstable();
        chains.dedup();
        chains
    }

    fn next_version(&self, chain: &str) -> u64 {
        self.keys
            .iter()
            .filter(|key| key.chain == chain)
            .map(|key| key.key_version)
            .max()
            .unwrap_or(0)
            + 1
    }
}

/// A key keyward just made, sealed, with what may be shown of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub key_id: Uuid,
    pub public_key: String,
    pub address: String,
    pub sealed: Sealed,
}

/// The family a request names, if keyward can sign for it.
pub fn family(chain: &str) -> Result<&'static str, DomainError> {
    match chain {
        ETHEREUM => Ok(ETHEREUM),
        other if KNOWN_FAMILIES.contains(&other) => Err(DomainError::Invalid(format!(
            "chain: keyward signs for EVM chains only; provision an \"{ETHEREUM}\" key"
        ))),
        other => Err(DomainError::Invalid(format!(
            "chain: {other:?} is not one of {}",
            KNOWN_FAMILIES.join(", ")
        ))),
    }
}

/// The version the key sealed for `chain` now will have: sealing binds it.
pub fn version_for(keys: &AgentSigningKeys, chain: &str) -> u64 {
    keys.next_version(chain)
}

/// A first key for `chain`; 409 while one is active.
pub fn provision(keys: &AgentSigningKeys, agent: AgentId, chain: &str, key: NewKey) -> Result<Change, DomainError> {
    if keys.active(chain).is_some() {
        return Err(DomainError::Conflict(format!(
            "the agent already has an active {chain} signing key; rotate it instead"
        )));
    }
    Ok(provisioned(keys, agent, chain, key, None, false))
}

/// A human's own key for `chain`: it replaces the active one, if any.
pub fn import(keys: &AgentSigningKeys, agent: AgentId, chain: &str, key: NewKey) -> Result<Change, DomainError> {
    let replaces = keys.active(chain).map(|active| active.id);
    Ok(provisioned(keys, agent, chain, key, replaces, true))
}

/// Records who took a copy of the active key for `chain`; the key it is.
pub fn export(
    keys: &AgentSigningKeys,
    agent: AgentId,
    chain: &str,
    by: UserId,
) -> Result<(Change, SigningKey), DomainError> {
    let active = keys.active(chain).ok_or(DomainError::NotFound("active signing key"))?;
    let change = Change::new(
        signing_keys_stream(agent),
        ExpectedVersion::Any,
        SigningKeyExported {
            key_id: active.id,
            agent_id: agent,
            chain: chain.to_owned(),
            key_version: active.key_version,
            by,
        },
    );
    Ok((change, active.clone()))
}

/// A new key for `chain` in place of the active one.
pub fn rotate(keys: &AgentSigningKeys, agent: AgentId, chain: &str, key: NewKey) -> Result<Change, DomainError> {
    let active = keys.active(chain).ok_or(DomainError::NotFound("active signing key"))?;
    let replaces = Some(active.id);
    Ok(provisioned(keys, agent, chain, key, replaces, false))
}

/// The active key for `chain` stops signing.
pub fn deactivate(keys: &AgentSigningKeys, agent: AgentId, chain: &str) -> Result<Change, DomainError> {
    let active = keys.active(chain).ok_or(DomainError::NotFound("active signing key"))?;
    Ok(Change::new(
        signing_keys_stream(agent),
        ExpectedVersion::Exact(keys.version),
        SigningKeyDeactivated {
            key_id: active.id,
            agent_id: agent,
            chain: chain.to_owned(),
        },
    ))
}

fn provisioned(
    keys: &AgentSigningKeys,
    agent: AgentId,
    chain: &str,
    key: NewKey,
    replaces: Option<Uuid>,
    imported: bool,
) -> Change {
    Change::new(
        signing_keys_stream(agent),
        ExpectedVersion::Exact(keys.version),
        SigningKeyProvisioned {
            key_id: key.key_id,
            agent_id: agent,
            chain: chain.to_owned(),
            curve: SECP256K1.to_owned(),
            public_key: key.public_key,
            address: key.address,
            key_version: keys.next_version(chain),
            sealed: key.sealed,
            replaces,
            imported,
        },
    )
}

/// Folds one of the stream's events in; `version` is its stream version.
pub fn apply(keys: &mut AgentSigningKeys, event: &crate::events::Event, version: u64, at: DateTime<Utc>) {
    use crate::events::Event;
    match event {
        Event::SigningKeyProvisioned(provisioned) => {
            if let Some(replaced) = provisioned
                .replaces
                .and_then(|id| keys.keys.iter_mut().find(|key| key.id == id))
            {
                replaced.is_active = false;
                replaced.rotated_at = Some(at);
            }
            keys.keys.push(SigningKey {
                id: provisioned.key_id,
                agent_id: provisioned.agent_id,
                chain: provisioned.chain.clone(),
                curve: provisioned.curve.clone(),
                public_key: provisioned.public_key.clone(),
                address: provisioned.address.clone(),
                key_version: provisioned.key_version,
                is_active: true,
                created_at: at,
                rotated_at: None,
                sealed: provisioned.sealed.clone(),
            });
        }
        Event::SigningKeyDeactivated(deactivated) => {
            if let Some(key) = keys.keys.iter_mut().find(|key| key.id == deactivated.key_id) {
                key.is_active = false;
            }
        }
        // An audit record: the key is unchanged.
        Event::SigningKeyExported(_) => {}
        _ => return,
    }
    keys.version = version;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    fn new_key(n: u128) -> NewKey {
        NewKey {
            key_id: Uuid::from_u128(n),
            public_key: format!("0x04{n}"),
            address: format!("0x{n:040x}"),
            sealed: Sealed {
                nonce: "n".into(),
                ciphertext: "c".into(),
            },
        }
    }

    fn applied(keys: &mut AgentSigningKeys, change: Change) {
        let version = keys.version + 1;
        for event in &change.events {
            apply(keys, event, version, DateTime::UNIX_EPOCH);
        }
    }

    #[test]
    fn one_active_key_per_family_rotation_retires_the_old_one() {
        let agent = AgentId::new();
        let mut keys = AgentSigningKeys::default();
        let change = provision(&keys, agent, ETHEREUM, new_key(1)).unwrap();
        applied(&mut keys, change);
        assert!(matches!(
            provision(&keys, agent, ETHEREUM, new_key(2)),
            Err(DomainError::Conflict(_))
        ));
        let change = rotate(&keys, agent, ETHEREUM, new_key(3)).unwrap();
        applied(&mut keys, change);
        let summary: Vec<_> = keys
            .keys
            .iter()
            .map(|k| (k.key_version, k.is_active, k.rotated_at.is_some()))
            .collect();
        assert_eq!(summary, vec![(1, false, true), (2, true, false)]);
        assert_eq!(keys.active(ETHEREUM).map(|k| k.id), Some(Uuid::from_u128(3)));
        let change = deactivate(&keys, agent, ETHEREUM).unwrap();
        applied(&mut keys, change);
        assert_eq!(keys.active(ETHEREUM), None);
        assert!(matches!(
            rotate(&keys, agent, ETHEREUM, new_key(4)),
            Err(DomainError::NotFound(_))
        ));
        assert_eq!(version_for(&keys, ETHEREUM), 3, "versions keep counting");
        assert!(matches!(
            Event::from(SigningKeyDeactivated {
                key_id: Uuid::nil(),
                agent_id: agent,
                chain: ETHEREUM.into()
            }),
            Event::SigningKeyDeactivated(_)
        ));
    }

    #[test]
    fn an_import_replaces_the_active_key_and_an_export_names_the_one_it_copies() {
        let agent = AgentId::new();
        let by = UserId::new();
        let mut keys = AgentSigningKeys::default();
        assert!(matches!(
            export(&keys, agent, ETHEREUM, by),
            Err(DomainError::NotFound(_))
        ));
        let change = import(&keys, agent, ETHEREUM, new_key(1)).unwrap();
        applied(&mut keys, change);
        let change = import(&keys, agent, ETHEREUM, new_key(2)).unwrap();
        match &change.events[..] {
            [Event::SigningKeyProvisioned(imported)] => {
                assert!(imported.imported);
                assert_eq!((imported.key_version, imported.replaces), (2, Some(Uuid::from_u128(1))));
            }
            other => panic!("{other:?}"),
        }
        applied(&mut keys, change);
        let (change, copied) = export(&keys, agent, ETHEREUM, by).unwrap();
        assert_eq!((copied.id, copied.key_version), (Uuid::from_u128(2), 2));
        applied(&mut keys, change);
        let summary: Vec<_> = keys.keys.iter().map(|k| (k.key_version, k.is_active)).collect();
        assert_eq!(summary, vec![(1, false), (2, true)], "an export changes no key");
        assert_eq!(keys.version, 3, "but it is on the stream");
    }

    #[test]
    fn only_the_ethereum_family_is_signed_for() {
        assert_eq!(family("ethereum").unwrap(), ETHEREUM);
        assert!(matches!(family("solana"), Err(DomainError::Invalid(m)) if m.contains("EVM")));
        assert!(matches!(family("dogecoin"), Err(DomainError::Invalid(_))));
    }
}
