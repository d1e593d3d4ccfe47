//! Agents: AI identities a human registers (or approves), with the settings that bound
//! what their tokens can reach and what they may spend, and the API key they sign in with.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::authz::PathPattern;
use crate::change::{Change, DomainError, stream};
use crate::event::ExpectedVersion;
use crate::events::{AgentDeactivated, AgentKeyRotated, AgentRawSigningEnabled, AgentRegistered, AgentUpdated, Event};
use crate::ids::{AgentId, OrgId, UserId, VaultId};
use crate::message_signing::{Eip712DomainEntry, Eip712Policy};
use crate::stream::StreamId;
use crate::wei::Wei;

const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 1000;
/// Agent tokens live between a minute and a day: long enough to work, short enough that
/// a leaked token expires soon.
pub const TOKEN_TTL_SECONDS: std::ops::RangeInclusive<u32> = 60..=86_400;
pub const DEFAULT_TOKEN_TTL_SECONDS: u32 = 3600;

pub fn agent_stream(agent: AgentId) -> StreamId {
    stream("agent", agent)
}

/// What an agent is allowed, as its creator set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSettings {
    pub name: String,
    pub description: Option<String>,
    /// The ceiling of its tokens' reach; empty means "derive from its policies".
    pub scopes: Vec<PathPattern>,
    /// The vaults its tokens are bound to; empty means every vault of its org.
    pub vault_ids: Vec<VaultId>,
    pub token_ttl_seconds: Option<u32>,
    pub intents_api_enabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    /// Lower-cased 0x addresses.
    pub tx_to_allowlist: Vec<String>,
    pub tx_max_value: Option<Wei>,
    pub tx_daily_limit: Option<Wei>,
    pub tx_allowed_chains: Vec<String>,
    /// Lower-cased 0x addresses of the contracts the agent may call; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tx_token_allowlist: Vec<String>,
    /// Per chain (its name or decimal id): the most the agent's transactions may pay that
    /// chain's network in fees over a rolling 24 hours, in its native units. The value
    /// limits leave fees out, and the agent names its own gas price.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tx_overhead_budget: BTreeMap<String, Wei>,
    /// The most transactions the agent may sign in one UTC calendar day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_max_per_day: Option<u32>,
    /// EIP-191 messages (`personal_sign`) are signed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub message_signing_enabled: bool,
    /// Digests the agent computed itself (`eip712_digest`) are signed: blind signing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_signing_enabled: bool,
    /// Typed data (EIP-712) from a domain off the allowlist: refused unless `allow`.
    #[serde(default, skip_serializing_if = "Eip712Policy::is_deny")]
    pub eip712_default_policy: Eip712Policy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eip712_domain_allowlist: Vec<Eip712DomainEntry>,
}

impl AgentSettings {
    /// An agent with a name and nothing else: no scopes, no vault binding, no intents.
    /// Without policies, such an agent can read nothing.
    pub fn named(name: String, description: Option<String>) -> Self {
        Self {
            name,
            description,
            scopes: Vec::new(),
            vault_ids: Vec::new(),
            token_ttl_seconds: None,
            intents_api_enabled: false,
            expires_at: None,
            tx_to_allowlist: Vec::new(),
            tx_max_value: None,
            tx_daily_limit: None,
            tx_allowed_chains: Vec::new(),
            tx_token_allowlist: Vec::new(),
            tx_overhead_budget: BTreeMap::new(),
            tx_max_per_day: None,
            message_signing_enabled: false,
            raw_signing_enabled: false,
            eip712_default_policy: Eip712Policy::Deny,
            eip712_domain_allowlist: Vec::new(),
        }
    }

    /// Checks what a request cannot express in types alone.
    pub fn validated(mut self) -> Result<Self, DomainError> {
        let invalid = |message: String| Err(DomainError::Invalid(message));
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() || self.name.chars().count() > MAX_NAME || self.name.chars().any(char::is_control) {
            return invalid(format!(
                "name must be 1 to {MAX_NAME} characters without control characters"
            ));
        }
        self.description = self.description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
        {
            return invalid(format!("description must be at most {MAX_DESCRIPTION} characters"));
        }
        if let Some(ttl) = self.token_ttl_seconds
            && !TOKEN_TTL_SECONDS.contains(&ttl)
        {
            return invalid(format!(
                "token_ttl_seconds must be between {} and {}",
                TOKEN_TTL_SECONDS.start(),
                TOKEN_TTL_SECONDS.end()
            ));
        }
        normalize_addresses("tx_to_allowlist", &mut self.tx_to_allowlist)?;
        normalize_addresses("tx_token_allowlist", &mut self.tx_token_allowlist)?;
        if let Some(chain) = self.tx_allowed_chains.iter().find(|chain| !names_a_chain(chain)) {
            return invalid(format!("tx_allowed_chains entry {chain:?} is not a chain name or id"));
        }
        if let Some(chain) = self.tx_overhead_budget.keys().find(|chain| !names_a_chain(chain)) {
            return invalid(format!("tx_overhead_budget key {chain:?} is not a chain name or id"));
        }
        self.eip712_domain_allowlist = std::mem::take(&mut self.eip712_domain_allowlist)
            .into_iter()
            .map(Eip712DomainEntry::validated)
            .collect::<Result<_, _>>()?;
        self.scopes.sort();
        self.scopes.dedup();
        self.vault_ids.sort();
        self.vault_ids.dedup();
        Ok(self)
    }

    pub fn token_ttl(&self) -> u32 {
        self.token_ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL_SECONDS)
    }
}

/// Lower-cases the 0x addresses of `list` (the setting `field`), sorted and deduplicated;
/// anything else is refused.
fn normalize_addresses(field: &str, list: &mut Vec<String>) -> Result<(), DomainError> {
    for address in list.iter_mut() {
        let is_address =
            address.len() == 42 && address.starts_with("0x") && address[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if !is_address {
            return Err(DomainError::Invalid(format!(
                "{field} entry {address:?} is not a 0x-prefixed 20-byte address"
            )));
        }
        address.make_ascii_lowercase();
    }
    list.sort();
    list.dedup();
    Ok(())
}

/// Whether `chain` can be a chain's name or decimal id, as guardrails refer to chains.
fn names_a_chain(chain: &str) -> bool {
    !chain.is_empty()
        && chain.len() <= 64
        && chain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The one API key an agent signs in with. Only its hash is kept; `key_id` changes with
/// every rotation and is carried in the agent's tokens, so a rotation refuses every token
/// issued before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentKey {
    pub key_id: Uuid,
    /// SHA-256 hex of the key.
    pub key_hash: String,
    /// The first characters of the key, to recognize it in lists.
    pub key_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Agent {
    pub id: AgentId,
    pub org_id: OrgId,
    /// The human who registered or approved the agent: its `creator` for shares.
    pub created_by: UserId,
    pub settings: AgentSettings,
    pub key: AgentKey,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub version: u64,
}

impl Agent {
    pub fn registered(event: &AgentRegistered, at: DateTime<Utc>, version: u64) -> Self {
        Self {
            id: event.agent_id,
            org_id: event.org_id,
            created_by: event.created_by,
            settings: event.settings.clone(),
            key: event.key.clone(),
            is_active: true,
            created_at: at,
            last_active_at: None,
            version,
        }
    }

    pub fn apply(&mut self, event: &Event, at: DateTime<Utc>, version: u64) {
        match event {
            Event::AgentUpdated(updated) => {
                self.settings = updated.settings.clone();
                self.is_active = updated.is_active;
                if let Some(key_id) = updated.key_id {
                    self.key.key_id = key_id;
                }
            }
            Event::AgentKeyRotated(rotated) => self.key = rotated.key.clone(),
            Event::AgentDeactivated(_) => self.is_active = false,
            Event::AgentAuthenticated(_) => self.last_active_at = Some(at),
            _ => {}
        }
        self.version = version;
    }

    /// Whether the agent may sign in at `now`.
    pub fn can_authenticate(&self, now: DateTime<Utc>) -> bool {
        self.is_active && self.settings.expires_at.is_none_or(|expiry| now < expiry)
    }
}

pub struct RegisterAgent {
    pub agent_id: AgentId,
    pub org_id: OrgId,
    pub created_by: UserId,
    pub settings: AgentSettings,
    pub key: AgentKey,
}

/// A human's word that an agent may have any digest signed (`raw_signing_enabled`): they
/// re-entered their password and acknowledged that an agent signing any digest can sign
/// any transaction with its keys, outside every guardrail. The adapter takes both; a
/// decision that turns raw signing on needs this, or is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSigningConsent {
    pub by: UserId,
}

/// [`register_with`] without consent to raw signing: the agent's settings must leave it off.
pub fn register(command: RegisterAgent) -> Result<Change, DomainError> {
    register_with(command, None)
}

pub fn register_with(command: RegisterAgent, raw_signing: Option<RawSigningConsent>) -> Result<Change, DomainError> {
    let settings = command.settings.validated()?;
    let enabled = raw_signing_enabled(command.agent_id, false, &settings, raw_signing)?;
    let mut change = Change::new(
        agent_stream(command.agent_id),
        ExpectedVersion::NoStream,
        AgentRegistered {
            agent_id: command.agent_id,
            org_id: command.org_id,
            created_by: command.created_by,
            settings,
            key: command.key,
        },
    );
    change.events.extend(enabled.map(Event::from));
    Ok(change)
}

pub fn update(
    agent: &Agent,
    settings: AgentSettings,
    is_active: bool,
    raw_signing: Option<RawSigningConsent>,
) -> Result<Change, DomainError> {
    let reactivated = !agent.is_active && is_active;
    let settings = settings.validated()?;
    let enabled = raw_signing_enabled(agent.id, agent.settings.raw_signing_enabled, &settings, raw_signing)?;
    let mut change = Change::new(
        agent_stream(agent.id),
        ExpectedVersion::Exact(agent.version),
        AgentUpdated {
            agent_id: agent.id,
            settings,
            is_active,
            key_id: reactivated.then(|| next_key_id(agent)),
        },
    );
    change.events.extend(enabled.map(Event::from));
    Ok(change)
}

/// The record of raw signing turned on, if `settings` turn it on (it `was` off); refused
/// without a human's consent. Turning it off, or keeping it on, takes none.
fn raw_signing_enabled(
    agent_id: AgentId,
    was: bool,
    settings: &AgentSettings,
    consent: Option<RawSigningConsent>,
) -> Result<Option<AgentRawSigningEnabled>, DomainError> {
    if was || !settings.raw_signing_enabled {
        return Ok(None);
    }
    let consent = consent.ok_or_else(|| {
        DomainError::Forbidden(
            "turning raw_signing_enabled on takes a human's re-entered password and acknowledgement that it \
             hands the agent its keys"
                .into(),
        )
    })?;
    Ok(Some(AgentRawSigningEnabled {
        agent_id,
        by: consent.by,
    }))
}

/// The key id an agent's tokens must carry from its reactivation on: the tokens issued
/// before its deactivation carry the old one and stay refused. Its API key stays the same.
/// Derived from the agent's key id and version, so it differs from every one before it.
fn next_key_id(agent: &Agent) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"keyward agent key id after reactivation")
        .chain_update(agent.key.key_id.as_bytes())
        .chain_update(agent.version.to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

pub fn rotate_key(agent: &Agent, key: AgentKey) -> Change {
    Change::new(
        agent_stream(agent.id),
        ExpectedVersion::Exact(agent.version),
        AgentKeyRotated {
            agent_id: agent.id,
            key,
        },
    )
}

pub fn deactivate(agent: &Agent) -> Change {
    Change::new(
        agent_stream(agent.id),
        ExpectedVersion::Exact(agent.version),
        AgentDeactivated { agent_id: agent.id },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AgentSettings {
        AgentSettings {
            name: " deployer ".into(),
            description: None,
            scopes: vec![
                PathPattern::parse("api-keys/*").unwrap(),
                PathPattern::parse("api-keys/*").unwrap(),
            ],
            vault_ids: Vec::new(),
            token_ttl_seconds: None,
            intents_api_enabled: false,
            expires_at: None,
            tx_to_allowlist: vec!["0xAbCdEf0123456789aBcDeF0123456789AbCdEf01".into()],
            tx_max_value: None,
            tx_daily_limit: None,
            tx_allowed_chains: vec!["anvil".into()],
            tx_token_allowlist: vec!["0x5FbDB2315678afecb367f032d93F642f64180aa3".into()],
            tx_overhead_budget: BTreeMap::from([("anvil".into(), Wei::from_eth_str("0.01").unwrap())]),
            tx_max_per_day: Some(100),
            message_signing_enabled: true,
            raw_signing_enabled: false,
            eip712_default_policy: Eip712Policy::Deny,
            eip712_domain_allowlist: vec![Eip712DomainEntry {
                chain_id: Some(31337),
                ..Eip712DomainEntry::default()
            }],
        }
    }

    #[test]
    fn settings_are_normalized() {
        let settings = settings().validated().unwrap();
        assert_eq!(settings.name, "deployer");
        assert_eq!(settings.scopes.len(), 1);
        assert_eq!(
            settings.tx_to_allowlist,
            vec!["0xabcdef0123456789abcdef0123456789abcdef01"]
        );
        assert_eq!(
            settings.tx_token_allowlist,
            vec!["0x5fbdb2315678afecb367f032d93f642f64180aa3"]
        );
        assert_eq!(settings.token_ttl(), 3600);
    }

    #[test]
    fn settings_logged_before_later_limits_read_as_unlimited_and_off() {
        let mut logged = serde_json::to_value(AgentSettings::named("trader".into(), None)).unwrap();
        for added in [
            "tx_token_allowlist",
            "tx_overhead_budget",
            "tx_max_per_day",
            "message_signing_enabled",
            "raw_signing_enabled",
            "eip712_default_policy",
            "eip712_domain_allowlist",
        ] {
            assert!(logged.get(added).is_none(), "{added} is left out while unset");
        }
        logged["tx_daily_limit"] = serde_json::json!("1");
        let read: AgentSettings = serde_json::from_value(logged).unwrap();
        assert!(read.tx_overhead_budget.is_empty());
        assert_eq!(read.tx_max_per_day, None);
        assert!(!read.message_signing_enabled && !read.raw_signing_enabled);
        assert_eq!(
            (read.eip712_default_policy, read.eip712_domain_allowlist.len()),
            (Eip712Policy::Deny, 0)
        );
        let budgeted = settings();
        let again: AgentSettings = serde_json::from_value(serde_json::to_value(&budgeted).unwrap()).unwrap();
        assert_eq!(again, budgeted);
    }

    #[test]
    fn invalid_settings_are_refused() {
        let cases: Vec<fn(&mut AgentSettings)> = vec![
            |s| s.name = "  ".into(),
            |s| s.token_ttl_seconds = Some(59),
            |s| s.token_ttl_seconds = Some(86_401),
            |s| s.tx_to_allowlist = vec!["0x1234".into()],
            |s| s.tx_to_allowlist = vec!["abcdef0123456789abcdef0123456789abcdef0123".into()],
            |s| s.tx_allowed_chains = vec!["bad chain".into()],
            |s| s.tx_token_allowlist = vec!["0x5fbdb2315678afecb367f032d93f642f64180aa".into()],
            |s| {
                s.tx_overhead_budget.insert(String::new(), Wei::ZERO);
            },
            |s| s.eip712_domain_allowlist = vec![Eip712DomainEntry::default()],
        ];
        for tamper in cases {
            let mut settings = settings();
            tamper(&mut settings);
            assert!(matches!(settings.validated(), Err(DomainError::Invalid(_))));
        }
    }

    #[test]
    fn an_expired_or_deactivated_agent_cannot_sign_in() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let key = AgentKey {
            key_id: Uuid::nil(),
            key_hash: "h".into(),
            key_prefix: "ocv_".into(),
        };
        let registered = AgentRegistered {
            agent_id: AgentId(Uuid::from_u128(1)),
            org_id: OrgId(Uuid::from_u128(2)),
            created_by: UserId(Uuid::from_u128(3)),
            settings: AgentSettings {
                expires_at: Some(now),
                ..settings()
            },
            key,
        };
        let mut agent = Agent::registered(&registered, DateTime::UNIX_EPOCH, 1);
        assert!(agent.can_authenticate(now - chrono::Duration::seconds(1)));
        assert!(!agent.can_authenticate(now));
        agent.settings.expires_at = None;
        assert!(agent.can_authenticate(now));
        let change = deactivate(&agent);
        assert_eq!(change.expected, ExpectedVersion::Exact(1));
        agent.apply(&change.events[0], now, 2);
        assert!(!agent.can_authenticate(now));
    }

    fn registered() -> AgentRegistered {
        AgentRegistered {
            agent_id: AgentId(Uuid::from_u128(1)),
            org_id: OrgId(Uuid::from_u128(2)),
            created_by: UserId(Uuid::from_u128(3)),
            settings: settings(),
            key: AgentKey {
                key_id: Uuid::from_u128(4),
                key_hash: "h".into(),
                key_prefix: "ocv_".into(),
            },
        }
    }

    #[test]
    fn reactivation_changes_the_key_id_tokens_must_carry_and_nothing_else_does() {
        let registered = registered();
        let mut agent = Agent::registered(&registered, DateTime::UNIX_EPOCH, 1);
        let mut key_ids = vec![agent.key.key_id];
        for (version, is_active) in (2..).zip([true, false, true, false, true]) {
            let change = update(&agent, settings(), is_active, None).unwrap();
            agent.apply(&change.events[0], DateTime::UNIX_EPOCH, version);
            if !key_ids.contains(&agent.key.key_id) {
                key_ids.push(agent.key.key_id);
            }
        }
        assert_eq!(key_ids.len(), 3, "the first and two reactivations: {key_ids:?}");
        assert_eq!(agent.key.key_hash, "h", "the API key stays");
    }

    #[test]
    fn raw_signing_is_turned_on_only_with_a_humans_consent_and_recorded_as_such() {
        let registered = registered();
        let mut agent = Agent::registered(&registered, DateTime::UNIX_EPOCH, 1);
        let raw = AgentSettings {
            raw_signing_enabled: true,
            ..settings()
        };
        let human = RawSigningConsent {
            by: UserId(Uuid::from_u128(5)),
        };
        assert!(matches!(
            update(&agent, raw.clone(), true, None),
            Err(DomainError::Forbidden(_))
        ));
        let change = update(&agent, raw.clone(), true, Some(human)).unwrap();
        let types: Vec<_> = change.events.iter().map(Event::event_type).collect();
        assert_eq!(types, ["agent.updated", "agent.raw_signing_enabled"]);
        assert_eq!(
            change.events[1],
            Event::AgentRawSigningEnabled(AgentRawSigningEnabled {
                agent_id: agent.id,
                by: human.by
            })
        );
        for (version, event) in (2..).zip(&change.events) {
            agent.apply(event, DateTime::UNIX_EPOCH, version);
        }
        assert_eq!(agent.version, 3, "both events are on the agent's stream");
        let kept_on = update(&agent, raw.clone(), true, None).unwrap();
        assert_eq!(
            kept_on.events.len(),
            1,
            "keeping it on takes no consent and records none"
        );
        agent.apply(&kept_on.events[0], DateTime::UNIX_EPOCH, 4);
        assert_eq!(
            update(&agent, settings(), true, None).unwrap().events.len(),
            1,
            "nor turning it off"
        );

        let command = |settings: AgentSettings| RegisterAgent {
            agent_id: registered.agent_id,
            org_id: registered.org_id,
            created_by: registered.created_by,
            settings,
            key: registered.key.clone(),
        };
        assert!(matches!(register(command(raw.clone())), Err(DomainError::Forbidden(_))));
        assert_eq!(register_with(command(raw), Some(human)).unwrap().events.len(), 2);
        assert_eq!(register(command(settings())).unwrap().events.len(), 1);
    }
}
