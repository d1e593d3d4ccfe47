//! Granting, changing and revoking access policies. Policies live in their vault's
//! stream, so every change to a vault's access is ordered with the vault's own life.

use crate::authz::{Policy, Principal};
use crate::change::{Change, DomainError};
use crate::event::ExpectedVersion;
use crate::events::{PolicyGranted, PolicyRevoked, PolicyUpdated};
use crate::vault::{Vault, vault_stream};

pub fn grant(vault: &Vault, policy: Policy, granted_by: Principal) -> Result<Change, DomainError> {
    if policy.vault_id != vault.id {
        return Err(DomainError::Invalid("the policy names another vault".into()));
    }
    Ok(Change::new(
        vault_stream(vault.id),
        ExpectedVersion::Exact(vault.version),
        PolicyGranted { policy, granted_by },
    ))
}

/// Replaces a policy's permissions, conditions and expiry; its principal, vault and path
/// pattern are its identity and stay.
pub fn update(vault: &Vault, current: &Policy, changed: Policy) -> Result<Change, DomainError> {
    let same_identity = current.id == changed.id
        && current.vault_id == changed.vault_id
        && current.principal == changed.principal
        && current.pattern == changed.pattern;
    if !same_identity {
        return Err(DomainError::Invalid(
            "a policy's principal and secret_path_pattern cannot change; revoke it and grant a new one".into(),
        ));
    }
    Ok(Change::new(
        vault_stream(vault.id),
        ExpectedVersion::Exact(vault.version),
        PolicyUpdated { policy: changed },
    ))
}

pub fn revoke(vault: &Vault, policy: &Policy) -> Change {
    Change::new(
        vault_stream(vault.id),
        ExpectedVersion::Exact(vault.version),
        PolicyRevoked {
            vault_id: vault.id,
            policy_id: policy.id,
        },
    )
}
