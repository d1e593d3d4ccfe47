//! Who may do what in which vault: every live policy, indexed by vault. Authorization
//! decisions read it in memory, without a query, and see a revoked policy on the very
//! next request.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use domain::agent::Agent;
use domain::authz::{Policy, Principal};
use domain::events::Event;
use domain::{PolicyId, RecordedEvent, VaultId};

use crate::DomainModel;

/// A live policy and who granted it, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedPolicy {
    pub policy: Policy,
    pub granted_by: Principal,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Ordered by policy id, which is time-ordered: the order listings show.
    by_vault: HashMap<VaultId, BTreeMap<PolicyId, GrantedPolicy>>,
}

impl Access {
    pub fn policies_of(&self, vault: VaultId) -> impl Iterator<Item = &GrantedPolicy> {
        self.by_vault.get(&vault).into_iter().flat_map(BTreeMap::values)
    }

    pub fn policy(&self, vault: VaultId, policy: PolicyId) -> Option<&GrantedPolicy> {
        self.by_vault.get(&vault).and_then(|policies| policies.get(&policy))
    }

    /// Every live policy naming `principal`, in any vault.
    pub fn policies_for<'a>(&'a self, principal: &'a Principal) -> impl Iterator<Item = &'a Policy> {
        self.by_vault
            .values()
            .flat_map(BTreeMap::values)
            .map(|g| &g.policy)
            .filter(move |p| p.principal == *principal)
    }

    /// The scope ceiling of a token issued to `agent` at `now`: the agent's own scopes if
    /// it has any, else the path patterns of the unexpired policies naming it, each once,
    /// sorted. Neither → no scopes → no access.
    pub fn token_scopes(&self, agent: &Agent, now: DateTime<Utc>) -> Vec<String> {
        if !agent.settings.scopes.is_empty() {
            return agent.settings.scopes.iter().map(|s| s.as_str().to_owned()).collect();
        }
        let principal = Principal::agent(agent.id);
        let mut patterns: Vec<String> = self
            .policies_for(&principal)
            .filter(|policy| !policy.is_expired_at(now))
            .map(|policy| policy.pattern.as_str().to_owned())
            .collect();
        patterns.sort();
        patterns.dedup();
        patterns
    }

    pub fn policy_count(&self) -> usize {
        self.by_vault.values().map(BTreeMap::len).sum()
    }
}

impl DomainModel for Access {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        match event {
            Event::PolicyGranted(granted) => {
                let policy = granted.policy.clone();
                let entry = GrantedPolicy {
                    granted_by: granted.granted_by,
                    created_at: recorded.recorded_at,
                    policy,
                };
                self.by_vault
                    .entry(entry.policy.vault_id)
                    .or_default()
                    .insert(entry.policy.id, entry);
            }
            Event::PolicyUpdated(updated) => {
                let policy = updated.policy.clone();
                if let Some(entry) = self
                    .by_vault
                    .get_mut(&policy.vault_id)
                    .and_then(|p| p.get_mut(&policy.id))
                {
                    entry.policy = policy;
                }
            }
            Event::PolicyRevoked(revoked) => {
                if let Some(policies) = self.by_vault.get_mut(&revoked.vault_id) {
                    policies.remove(&revoked.policy_id);
                }
            }
            Event::VaultDeleted(deleted) => {
                self.by_vault.remove(&deleted.vault_id);
            }
            _ => {}
        }
    }
}
