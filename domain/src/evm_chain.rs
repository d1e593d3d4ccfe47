//! The EVM chains keyward may sign for: the configured ones, with what administrators
//! added, changed or removed through the API on top. Config chains keep a stable id derived
//! from their chain id, so an administrator's change to one survives restarts.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::change::{Change, DomainError};
use crate::event::ExpectedVersion;
use crate::events::{ChainAdded, ChainRemoved, ChainUpdated};
use crate::stream::StreamId;

/// Every change to the registry is in one stream: its version keeps names and chain ids
/// unique under concurrent administrators.
pub fn registry_stream() -> StreamId {
    StreamId::parse("chains-registry").unwrap_or_else(|_| unreachable!("a valid literal stream id"))
}

/// What an administrator sets about a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSettings {
    pub name: String,
    pub display_name: String,
    pub chain_id: u64,
    pub rpc_url: String,
    pub ws_url: Option<String>,
    pub explorer_url: Option<String>,
    pub native_currency: String,
    pub is_testnet: bool,
    pub is_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EvmChain {
    pub id: Uuid,
    pub settings: ChainSettings,
    /// None for a configured chain no administrator has touched.
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl EvmChain {
    /// A chain from the configuration file: its id is the same on every start.
    pub fn configured(settings: ChainSettings) -> Self {
        Self {
            id: configured_id(settings.chain_id),
            settings,
            created_at: None,
            updated_at: None,
        }
    }

    /// Whether `identifier` names this chain: its name or its decimal chain id.
    pub fn is_named(&self, identifier: &str) -> bool {
        self.settings.name == identifier || self.settings.chain_id.to_string() == identifier
    }
}

fn configured_id(chain_id: u64) -> Uuid {
    let digest = Sha256::digest(format!("keyward-configured-chain:{chain_id}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl ChainSettings {
    pub fn validated(mut self) -> Result<Self, DomainError> {
        let invalid = |message: String| Err(DomainError::Invalid(message));
        self.name = self.name.trim().to_owned();
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !self.name.bytes().all(|b| b.is_ascii_digit());
        if !name_ok {
            return invalid(format!(
                "name {:?} must be 1 to 64 lower-case letters, digits, - or _, and not only digits",
                self.name
            ));
        }
        self.display_name = self.display_name.trim().to_owned();
        if self.display_name.is_empty() || self.display_name.chars().count() > 100 {
            return invalid("display_name must be 1 to 100 characters".into());
        }
        if self.chain_id == 0 {
            return invalid("chain_id must be a positive integer".into());
        }
        let url_ok = |url: &str, schemes: &[&str]| {
            url.split_once("://").is_some_and(|(scheme, rest)| {
                schemes.contains(&scheme) && !rest.is_empty() && !rest.contains(char::is_whitespace)
            })
        };
        if !url_ok(&self.rpc_url, &["http", "https"]) {
            return invalid(format!("rpc_url {:?} is not an http(s) URL", self.rpc_url));
        }
        if let Some(ws) = &self.ws_url
            && !url_ok(ws, &["ws", "wss"])
        {
            return invalid(format!("ws_url {ws:?} is not a ws(s) URL"));
        }
        if let Some(explorer) = &self.explorer_url
            && !url_ok(explorer, &["http", "https"])
        {
            return invalid(format!("explorer_url {explorer:?} is not an http(s) URL"));
        }
        self.native_currency = self.native_currency.trim().to_owned();
        if self.native_currency.is_empty() || self.native_currency.len() > 16 {
            return invalid("native_currency must be 1 to 16 characters".into());
        }
        Ok(self)
    }
}

/// What administrators did to the registry: folded from its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegistryChanges {
    pub version: u64,
    /// Added chains, and configured chains as changed, by id.
    pub changed: HashMap<Uuid, EvmChain>,
    pub removed: HashSet<Uuid>,
}

impl RegistryChanges {
    /// The chains in force: the configured ones with the changes on top, in chain id order.
    pub fn effective(&self, configured: &[ChainSettings]) -> Vec<EvmChain> {
        let mut chains: HashMap<Uuid, EvmChain> = configured
            .iter()
            .cloned()
            .map(EvmChain::configured)
            .map(|chain| (chain.id, chain))
            .collect();
        for (id, chain) in &self.changed {
            chains.insert(*id, chain.clone());
        }
        let mut chains: Vec<EvmChain> = chains.into_values().filter(|c| !self.removed.contains(&c.id)).collect();
        chains.sort_by_key(|chain| (chain.settings.chain_id, chain.settings.name.clone()));
        chains
    }
}

fn clash(chains: &[EvmChain], settings: &ChainSettings, except: Option<Uuid>) -> Result<(), DomainError> {
    let other = chains
        .iter()
        .filter(|chain| Some(chain.id) != except)
        .find(|chain| chain.settings.name == settings.name || chain.settings.chain_id == settings.chain_id);
    match other {
        Some(other) => Err(DomainError::Conflict(format!(
            "a chain named {:?} with chain id {} is registered already",
            other.settings.name, other.settings.chain_id
        ))),
        None => Ok(()),
    }
}

pub fn add(chains: &[EvmChain], version: u64, id: Uuid, settings: ChainSettings) -> Result<Change, DomainError> {
    let settings = settings.validated()?;
    clash(chains, &settings, None)?;
    Ok(Change::new(
        registry_stream(),
        ExpectedVersion::Exact(version),
        ChainAdded { id, settings },
    ))
}

/// Replaces a chain's settings; its name and chain id stay as they are.
pub fn update(
    chains: &[EvmChain],
    version: u64,
    chain: &EvmChain,
    settings: ChainSettings,
) -> Result<Change, DomainError> {
    let settings = ChainSettings {
        name: chain.settings.name.clone(),
        chain_id: chain.settings.chain_id,
        ..settings
    }
    .validated()?;
    clash(chains, &settings, Some(chain.id))?;
    Ok(Change::new(
        registry_stream(),
        ExpectedVersion::Exact(version),
        ChainUpdated { id: chain.id, settings },
    ))
}

pub fn remove(version: u64, chain: &EvmChain) -> Change {
    Change::new(
        registry_stream(),
        ExpectedVersion::Exact(version),
        ChainRemoved { id: chain.id },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anvil() -> ChainSettings {
        ChainSettings {
            name: "anvil".into(),
            display_name: "Anvil".into(),
            chain_id: 31337,
            rpc_url: "http://127.0.0.1:8545".into(),
            ws_url: None,
            explorer_url: None,
            native_currency: "ETH".into(),
            is_testnet: true,
            is_enabled: true,
        }
    }

    fn base() -> ChainSettings {
        ChainSettings {
            name: "base".into(),
            chain_id: 8453,
            rpc_url: "https://mainnet.base.org".into(),
            is_testnet: false,
            ..anvil()
        }
    }

    #[test]
    fn configured_chains_keep_their_id_across_starts() {
        assert_eq!(EvmChain::configured(anvil()).id, EvmChain::configured(anvil()).id);
        assert_ne!(EvmChain::configured(anvil()).id, EvmChain::configured(base()).id);
    }

    #[test]
    fn names_and_chain_ids_are_unique() {
        let chains = RegistryChanges::default().effective(&[anvil()]);
        let same_id = ChainSettings {
            name: "other".into(),
            ..anvil()
        };
        assert!(matches!(
            add(&chains, 0, Uuid::nil(), same_id),
            Err(DomainError::Conflict(_))
        ));
        assert!(add(&chains, 0, Uuid::nil(), base()).is_ok());
    }

    #[test]
    fn changes_overlay_the_configuration() {
        let mut changes = RegistryChanges::default();
        let configured = EvmChain::configured(anvil());
        changes.removed.insert(configured.id);
        assert!(changes.effective(&[anvil()]).is_empty());
        changes.removed.clear();
        let renamed = EvmChain {
            settings: ChainSettings {
                display_name: "Local".into(),
                ..anvil()
            },
            ..configured.clone()
        };
        changes.changed.insert(configured.id, renamed);
        assert_eq!(changes.effective(&[anvil()])[0].settings.display_name, "Local");
    }

    #[test]
    fn bad_settings_are_invalid() {
        for bad in [
            ChainSettings {
                name: "Main Net".into(),
                ..base()
            },
            ChainSettings {
                name: "1".into(),
                ..base()
            },
            ChainSettings { chain_id: 0, ..base() },
            ChainSettings {
                rpc_url: "ftp://x".into(),
                ..base()
            },
            ChainSettings {
                ws_url: Some("http://x".into()),
                ..base()
            },
        ] {
            assert!(matches!(bad.validated(), Err(DomainError::Invalid(_))));
        }
    }
}
