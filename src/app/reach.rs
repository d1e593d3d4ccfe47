//! What a token reaches, and the four layers of authorization within it: pure questions
//! on the read models, asked for a caller, for a token a principal would be issued now
//! (explain, a share's sharer), and by every use case that reads or writes a secret.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use chrono::{DateTime, Utc};
use domain::VaultId;
use domain::agent::Agent;
use domain::authz::{
    AccessRequest, CurrentReach, Decision, PathPattern, ScopeCeiling, TokenScope, VaultFacts, authorize,
};
use domain::vault::Vault;
use projections::ReadModels;

/// A token's reach, owned: what the first two layers of authorization check.
pub struct TokenReach {
    pub vault_ids: Vec<VaultId>,
    pub scopes: Option<Vec<PathPattern>>,
    /// For an agent's token, the agent's binding and ceiling as they stand now: the token
    /// reaches only what both allow ([`TokenScope::current`]).
    pub current: Option<AgentReach>,
}

/// An agent's binding (empty: every vault of its org) and scope ceiling, owned.
pub struct AgentReach {
    pub vault_ids: Vec<VaultId>,
    pub scopes: Vec<PathPattern>,
}

impl AgentReach {
    /// What a token issued to `agent` at `now` would carry: its binding, and its scope
    /// ceiling as the token endpoint derives it.
    pub fn now(models: &ReadModels, agent: &Agent, now: DateTime<Utc>) -> Self {
        Self {
            vault_ids: agent.settings.vault_ids.clone(),
            scopes: parse_scopes(&models.access.token_scopes(agent, now)),
        }
    }
}

impl TokenReach {
    /// A human's token: every vault of the org, bounded by policies and ownership alone.
    pub fn of_human() -> Self {
        Self {
            vault_ids: Vec::new(),
            scopes: None,
            current: None,
        }
    }

    /// What a token issued to `agent` at `now` would carry: its binding, and its scope
    /// ceiling as the token endpoint derives it.
    pub fn of_new_agent_token(models: &ReadModels, agent: &Agent, now: DateTime<Utc>) -> Self {
        let AgentReach { vault_ids, scopes } = AgentReach::now(models, agent, now);
        Self {
            vault_ids,
            scopes: Some(scopes),
            current: None,
        }
    }

    pub fn scope(&self) -> TokenScope<'_> {
        TokenScope {
            vault_ids: &self.vault_ids,
            scopes: match &self.scopes {
                None => ScopeCeiling::Unrestricted,
                Some(patterns) => ScopeCeiling::Patterns(patterns),
            },
            current: self.current.as_ref().map(|current| CurrentReach {
                vault_ids: &current.vault_ids,
                scopes: &current.scopes,
            }),
        }
    }

    /// Whether the token's binding and, for an agent's, the agent's binding now admit
    /// `vault` (the first layer of authorization alone).
    pub fn binds_to(&self, vault: VaultId) -> bool {
        let admits = |bound: &[VaultId]| bound.is_empty() || bound.contains(&vault);
        admits(&self.vault_ids) && self.current.as_ref().is_none_or(|current| admits(&current.vault_ids))
    }
}

/// A scope that no longer parses reaches nothing.
pub fn parse_scopes(scopes: &[String]) -> Vec<PathPattern> {
    scopes.iter().filter_map(|scope| compiled_scope(scope)).collect()
}

/// Scopes compiled to globs, by their text: every request of a token carries the same
/// few scopes, and compiling a glob costs more than the rest of an authorization.
/// Bounded: when full it starts over, so a stream of unusual tokens cannot grow it.
fn compiled_scope(scope: &str) -> Option<PathPattern> {
    const CAPACITY: usize = 4096;
    static COMPILED: LazyLock<Mutex<HashMap<String, Option<PathPattern>>>> = LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(pattern) = compiled.get(scope) {
        return pattern.clone();
    }
    if compiled.len() >= CAPACITY {
        compiled.clear();
    }
    let pattern = PathPattern::parse(scope).ok();
    compiled.insert(scope.to_owned(), pattern.clone());
    pattern
}

/// The four layers for `request`, in `vault`, by a token of `reach`: for a caller, or for
/// a token a principal would be issued now (explain, a share's sharer).
pub fn authorize_in(models: &ReadModels, reach: &TokenReach, vault: &Vault, request: &AccessRequest) -> Decision {
    let policies = models.access.policies_of(vault.id).map(|granted| &granted.policy);
    authorize(
        &reach.scope(),
        request,
        &VaultFacts {
            owner: vault.created_by,
        },
        policies,
    )
}
