//! An access policy: grants one principal permissions on the secrets of one vault whose
//! paths match a pattern, under conditions, until it expires.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::authz::conditions::Conditions;
use crate::authz::pattern::PathPattern;
use crate::authz::permission::{Permission, Permissions};
use crate::authz::principal::Principal;
use crate::ids::{PolicyId, VaultId};

/// A policy as the authorization decision sees it. Serde uses the wire's field names
/// (`secret_path_pattern`, `principal_type`, `principal_id`), but the HTTP layer owns the
/// request and response shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub id: PolicyId,
    pub vault_id: VaultId,
    #[serde(flatten)]
    pub principal: Principal,
    #[serde(rename = "secret_path_pattern")]
    pub pattern: PathPattern,
    pub permissions: Permissions,
    #[serde(default)]
    pub conditions: Conditions,
    /// The policy applies strictly before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl Policy {
    /// Whether the policy is about this principal on this vault.
    pub fn applies_to(&self, principal: &Principal, vault_id: VaultId) -> bool {
        self.principal == *principal && self.vault_id == vault_id
    }

    pub fn grants(&self, permission: Permission) -> bool {
        self.permissions.contains(permission)
    }

    /// Expired once `now` reaches `expires_at`: a policy is live while `expires_at > now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|expires_at| expires_at <= now)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::ids::AgentId;

    fn policy(expires_at: Option<DateTime<Utc>>) -> Policy {
        Policy {
            id: PolicyId(Uuid::from_u128(1)),
            vault_id: VaultId(Uuid::from_u128(2)),
            principal: Principal::agent(AgentId(Uuid::from_u128(3))),
            pattern: PathPattern::parse("db/**").unwrap(),
            permissions: Permissions::READ,
            conditions: Conditions::default(),
            expires_at,
        }
    }

    #[test]
    fn policy_expires_when_now_reaches_expires_at() {
        let at = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        let p = policy(Some(at));
        assert!(!p.is_expired_at(at - chrono::Duration::seconds(1)));
        assert!(p.is_expired_at(at));
        assert!(p.is_expired_at(at + chrono::Duration::seconds(1)));
        assert!(!policy(None).is_expired_at(at));
    }

    #[test]
    fn policy_applies_only_to_its_principal_and_vault() {
        let p = policy(None);
        assert!(p.applies_to(&p.principal, p.vault_id));
        assert!(!p.applies_to(&p.principal, VaultId(Uuid::from_u128(9))));
        assert!(!p.applies_to(&Principal::agent(AgentId(Uuid::from_u128(9))), p.vault_id));
        assert!(!p.applies_to(&Principal::user(crate::ids::UserId(Uuid::from_u128(3))), p.vault_id));
    }

    #[test]
    fn policy_grants_only_its_permissions() {
        assert!(policy(None).grants(Permission::Read));
        assert!(!policy(None).grants(Permission::Write));
    }

    #[test]
    fn policy_serializes_with_wire_field_names_and_round_trips() {
        let p = policy(Some(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap()));
        let value = serde_json::to_value(&p).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "00000000-0000-0000-0000-000000000001",
                "vault_id": "00000000-0000-0000-0000-000000000002",
                "principal_type": "agent",
                "principal_id": "00000000-0000-0000-0000-000000000003",
                "secret_path_pattern": "db/**",
                "permissions": ["read"],
                "conditions": {},
                "expires_at": "2026-06-01T00:00:00Z"
            })
        );
        assert_eq!(serde_json::from_value::<Policy>(value).unwrap(), p);
    }
}
