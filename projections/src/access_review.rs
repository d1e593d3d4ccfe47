//! Who could reach a secret: the principals that a set of read models, built up to some
//! moment, lets read or write one path of one vault, and the policy that lets each.

use chrono::{DateTime, Utc};
use domain::authz::{Conditions, Permission, Permissions, Principal};
use domain::{AgentId, PolicyId, SecretPath, VaultId};

use crate::{Access, Directory};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewedAccess {
    pub principal: Principal,
    pub permissions: Permissions,
    /// `None` for the vault's owner, who passes the policy layer by ownership.
    pub policy_id: Option<PolicyId>,
    /// Conditions the access still depends on at request time (client IP, time of day).
    pub conditions: Conditions,
}

/// Every principal that could read or write `path` in `vault` as of the models' position,
/// judged at `at`: the owner, and each principal named by a live policy matching the path,
/// unless it is an agent that is inactive, expired, bound to other vaults, or whose own
/// scopes exclude the path. `None` if the vault did not exist.
pub fn review(
    directory: &Directory,
    access: &Access,
    vault: VaultId,
    path: &SecretPath,
    at: DateTime<Utc>,
) -> Option<Vec<ReviewedAccess>> {
    let vault = directory.vault(vault)?;
    let mut reviewed = vec![ReviewedAccess {
        principal: vault.created_by,
        permissions: Permissions::READ_WRITE,
        policy_id: None,
        conditions: Conditions::default(),
    }];
    for granted in access.policies_of(vault.id) {
        let policy = &granted.policy;
        let reachable = policy.pattern.matches(path)
            && !policy.is_expired_at(at)
            && (policy.grants(Permission::Read) || policy.grants(Permission::Write))
            && could_present_a_token(directory, &policy.principal, vault.id, path, at);
        if reachable {
            reviewed.push(ReviewedAccess {
                principal: policy.principal,
                permissions: policy.permissions,
                policy_id: Some(policy.id),
                conditions: policy.conditions.clone(),
            });
        }
    }
    Some(reviewed)
}

/// Whether the principal could hold a token that passes the binding and scope layers.
fn could_present_a_token(
    directory: &Directory,
    principal: &Principal,
    vault: VaultId,
    path: &SecretPath,
    at: DateTime<Utc>,
) -> bool {
    if principal.is_user() {
        return true;
    }
    let Some(agent) = directory.agent(AgentId(principal.id)) else {
        return false;
    };
    let settings = &agent.settings;
    agent.can_authenticate(at)
        && (settings.vault_ids.is_empty() || settings.vault_ids.contains(&vault))
        && (settings.scopes.is_empty() || settings.scopes.iter().any(|scope| scope.matches(path)))
}
