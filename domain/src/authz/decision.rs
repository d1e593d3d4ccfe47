//! The authorization decision: a pure function of the token's claims, the vault, the
//! policies and the request, which says which layer allowed or denied and why.
//!
//! The layers, in order (DESIGN.md, "Authorization, in order"):
//!
//! 1. **Vault binding**: a token with `vault_ids` reaches only those vaults.
//! 2. **Scope ceiling**: an agent token reaches only paths matching one of its `scopes`;
//!    empty scopes reach nothing. Human tokens carry no path scopes
//!    ([`ScopeCeiling::Unrestricted`]); an agent token without a ceiling is denied here,
//!    so a mis-built agent token fails closed.
//!
//!    An agent's token carries its binding and ceiling as they were when it was issued;
//!    both layers also hold it to the agent's own as they stand now
//!    ([`TokenScope::current`]), so narrowing an agent reaches the tokens it holds on their
//!    next request, while widening it takes a new token.
//! 3. **Policy engine**: among the policies for this principal on this vault, taken in
//!    policy id order, the first whose pattern matches the path, that grants the permission,
//!    is unexpired (`expires_at > now`) and whose conditions admit the client IP and time
//!    allows, naming that policy.
//! 4. **Owner bypass**: the vault's creator is allowed when no policy allowed. It is reached
//!    only after 1 and 2 passed, so it never lifts a binding or a scope ceiling.
//!
//! Otherwise the request is denied at the policy layer with the closest miss: the policy that
//! got furthest through the checks (path, then permission, then expiry, then conditions;
//! the lowest id among equals), so the owner sees what would have to change.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::authz::conditions::ConditionFailure;
use crate::authz::pattern::PathPattern;
use crate::authz::permission::Permission;
use crate::authz::policy::Policy;
use crate::authz::principal::Principal;
use crate::ids::{PolicyId, VaultId};
use crate::secret_path::SecretPath;

/// What a token's `scopes` claim allows, before any policy is consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeCeiling<'a> {
    /// A human's token: no path ceiling. Only valid for users; agents are denied.
    Unrestricted,
    /// An agent's token: the path must match one of these; empty means no access at all.
    Patterns(&'a [PathPattern]),
}

/// The authorization-relevant claims of the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenScope<'a> {
    /// The vaults the token is bound to; empty means not bound.
    pub vault_ids: &'a [VaultId],
    pub scopes: ScopeCeiling<'a>,
    /// For a token whose claims are copies of its principal's binding and ceiling from when
    /// it was issued (an agent's), the principal's as they stand now: the token reaches
    /// only what both allow. `None` when the claims are the principal's reach itself (a
    /// human's token; a token judged as if issued now).
    pub current: Option<CurrentReach<'a>>,
}

/// A principal's binding and ceiling as they stand now: what a token issued to it now
/// would carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentReach<'a> {
    /// Empty means not bound.
    pub vault_ids: &'a [VaultId],
    /// Empty means no path at all.
    pub scopes: &'a [PathPattern],
}

impl TokenScope<'static> {
    /// A human's token: not bound to vaults, no path ceiling.
    pub const HUMAN: TokenScope<'static> = TokenScope {
        vault_ids: &[],
        scopes: ScopeCeiling::Unrestricted,
        current: None,
    };
}

/// One access to one secret path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRequest<'a> {
    pub principal: Principal,
    pub vault_id: VaultId,
    pub path: &'a SecretPath,
    pub permission: Permission,
    pub client_ip: IpAddr,
    pub now: DateTime<Utc>,
}

/// What the decision needs to know about the vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VaultFacts {
    /// The vault's creator.
    pub owner: Principal,
}

/// The layer that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    VaultBinding,
    ScopeCeiling,
    Policy,
    OwnerBypass,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::VaultBinding => "vault_binding",
            Layer::ScopeCeiling => "scope_ceiling",
            Layer::Policy => "policy",
            Layer::OwnerBypass => "owner_bypass",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome, with the layer that decided, the policy involved (the one that allowed, or
/// for a denial at the policy layer the closest miss, if a policy matched the path) and a
/// reason for the vault owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub layer: Layer,
    pub policy_id: Option<PolicyId>,
    pub reason: String,
}

impl Decision {
    fn allow(layer: Layer, policy_id: Option<PolicyId>, reason: String) -> Self {
        Self {
            allowed: true,
            layer,
            policy_id,
            reason,
        }
    }

    fn deny(layer: Layer, policy_id: Option<PolicyId>, reason: String) -> Self {
        Self {
            allowed: false,
            layer,
            policy_id,
            reason,
        }
    }
}

/// Decides one access. `policies` may hold policies of other principals and vaults; only
/// those for the request's principal on the request's vault are considered, in id order,
/// so the order given does not matter.
pub fn authorize<'p>(
    token: &TokenScope<'_>,
    request: &AccessRequest<'_>,
    vault: &VaultFacts,
    policies: impl IntoIterator<Item = &'p Policy>,
) -> Decision {
    if let Some(denial) = check_vault_binding(token, request) {
        return denial;
    }
    if let Some(denial) = check_scope_ceiling(token, request) {
        return denial;
    }
    let miss = match evaluate_policies(request, policies) {
        Ok(policy) => {
            let reason = format!(
                "policy {} grants {} on \"{}\" to {}",
                policy.id, request.permission, policy.pattern, request.principal
            );
            return Decision::allow(Layer::Policy, Some(policy.id), reason);
        }
        Err(miss) => miss,
    };
    if vault.owner == request.principal {
        let reason = format!("{} owns vault {} (owner bypass)", request.principal, request.vault_id);
        return Decision::allow(Layer::OwnerBypass, None, reason);
    }
    Decision::deny(Layer::Policy, miss.policy_id(), miss.reason(request))
}

fn check_vault_binding(token: &TokenScope<'_>, request: &AccessRequest<'_>) -> Option<Decision> {
    let excluded = |bound: &[VaultId]| !bound.is_empty() && !bound.contains(&request.vault_id);
    let listed = |bound: &[VaultId]| bound.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let reason = if excluded(token.vault_ids) {
        format!("token is bound to vault(s) {}", listed(token.vault_ids))
    } else {
        match token.current {
            Some(current) if excluded(current.vault_ids) => {
                format!(
                    "{} is now bound to vault(s) {}",
                    request.principal,
                    listed(current.vault_ids)
                )
            }
            _ => return None,
        }
    };
    let reason = format!("{reason}; vault {} is not one of them", request.vault_id);
    Some(Decision::deny(Layer::VaultBinding, None, reason))
}

fn check_scope_ceiling(token: &TokenScope<'_>, request: &AccessRequest<'_>) -> Option<Decision> {
    if let Some(denial) = check_token_ceiling(token, request) {
        return Some(denial);
    }
    let reason = match token.current?.scopes {
        [] => format!("{} has no scopes now, so it reaches no path", request.principal),
        scopes if scopes.iter().any(|scope| scope.matches(request.path)) => return None,
        scopes => format!(
            "path \"{}\" is outside the current scopes of {} [{}]",
            request.path,
            request.principal,
            quoted(scopes.iter())
        ),
    };
    Some(Decision::deny(Layer::ScopeCeiling, None, reason))
}

fn check_token_ceiling(token: &TokenScope<'_>, request: &AccessRequest<'_>) -> Option<Decision> {
    let reason = match token.scopes {
        ScopeCeiling::Unrestricted if request.principal.is_user() => return None,
        ScopeCeiling::Unrestricted => {
            format!(
                "{} presented a token without scopes; agent tokens must carry scopes",
                request.principal
            )
        }
        ScopeCeiling::Patterns([]) => "token has no scopes, so it grants access to no path".to_owned(),
        ScopeCeiling::Patterns(scopes) if scopes.iter().any(|scope| scope.matches(request.path)) => return None,
        ScopeCeiling::Patterns(scopes) => {
            format!(
                "path \"{}\" is outside the token's scopes [{}]",
                request.path,
                quoted(scopes.iter())
            )
        }
    };
    Some(Decision::deny(Layer::ScopeCeiling, None, reason))
}

/// How far one policy got through the checks before it failed.
enum PolicyMiss<'p> {
    PathMismatch,
    LacksPermission(&'p Policy),
    Expired(&'p Policy),
    Condition(&'p Policy, ConditionFailure),
}

impl PolicyMiss<'_> {
    fn progress(&self) -> u8 {
        match self {
            PolicyMiss::PathMismatch => 0,
            PolicyMiss::LacksPermission(_) => 1,
            PolicyMiss::Expired(_) => 2,
            PolicyMiss::Condition(..) => 3,
        }
    }
}

/// Why the policy engine did not allow.
enum Miss<'p> {
    NoPolicy,
    NoPathMatch(Vec<&'p Policy>),
    Closest(PolicyMiss<'p>),
}

impl Miss<'_> {
    fn policy_id(&self) -> Option<PolicyId> {
        match self {
            Miss::NoPolicy | Miss::NoPathMatch(_) | Miss::Closest(PolicyMiss::PathMismatch) => None,
            Miss::Closest(
                PolicyMiss::LacksPermission(policy) | PolicyMiss::Expired(policy) | PolicyMiss::Condition(policy, _),
            ) => Some(policy.id),
        }
    }

    fn reason(&self, request: &AccessRequest<'_>) -> String {
        let (principal, vault, path, permission) =
            (request.principal, request.vault_id, request.path, request.permission);
        match self {
            Miss::NoPolicy | Miss::Closest(PolicyMiss::PathMismatch) => {
                format!("no policy for {principal} on vault {vault}")
            }
            Miss::NoPathMatch(policies) => format!(
                "no policy for {principal} on vault {vault} matches path \"{path}\" (patterns: {})",
                quoted(policies.iter().map(|policy| &policy.pattern))
            ),
            Miss::Closest(PolicyMiss::LacksPermission(policy)) => format!(
                "policy {} matches path \"{path}\" with \"{}\" but grants {}, not {permission}",
                policy.id, policy.pattern, policy.permissions
            ),
            Miss::Closest(PolicyMiss::Expired(policy)) => format!(
                "policy {} matches path \"{path}\" with \"{}\" and grants {permission} but expired at {}",
                policy.id,
                policy.pattern,
                policy
                    .expires_at
                    .map_or_else(String::new, |at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            ),
            Miss::Closest(PolicyMiss::Condition(policy, failure)) => format!(
                "policy {} matches path \"{path}\" with \"{}\" and grants {permission} but {failure}",
                policy.id, policy.pattern
            ),
        }
    }
}

fn evaluate_policies<'p>(
    request: &AccessRequest<'_>,
    policies: impl IntoIterator<Item = &'p Policy>,
) -> Result<&'p Policy, Miss<'p>> {
    let mut candidates: Vec<&'p Policy> = policies
        .into_iter()
        .filter(|policy| policy.applies_to(&request.principal, request.vault_id))
        .collect();
    if candidates.is_empty() {
        return Err(Miss::NoPolicy);
    }
    candidates.sort_by_key(|policy| policy.id);
    let mut closest: Option<PolicyMiss<'p>> = None;
    for policy in &candidates {
        match evaluate(policy, request) {
            Ok(()) => return Ok(policy),
            Err(miss) => {
                if closest.as_ref().is_none_or(|best| miss.progress() > best.progress()) {
                    closest = Some(miss);
                }
            }
        }
    }
    match closest {
        Some(PolicyMiss::PathMismatch) | None => Err(Miss::NoPathMatch(candidates)),
        Some(miss) => Err(Miss::Closest(miss)),
    }
}

/// The checks of one policy, in order: path, permission, expiry, conditions.
fn evaluate<'p>(policy: &'p Policy, request: &AccessRequest<'_>) -> Result<(), PolicyMiss<'p>> {
    if !policy.pattern.matches(request.path) {
        return Err(PolicyMiss::PathMismatch);
    }
    if !policy.grants(request.permission) {
        return Err(PolicyMiss::LacksPermission(policy));
    }
    if policy.is_expired_at(request.now) {
        return Err(PolicyMiss::Expired(policy));
    }
    policy
        .conditions
        .admits(request.client_ip, request.now)
        .map_err(|failure| PolicyMiss::Condition(policy, failure))
}

/// `"a/*", "b/**"`
fn quoted<'a>(patterns: impl Iterator<Item = &'a PathPattern>) -> String {
    patterns
        .map(|pattern| format!("\"{pattern}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveTime, TimeZone, Weekday};
    use chrono_tz::Tz;
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;
    use crate::authz::conditions::{Conditions, TimeWindow, parse_ip_allowlist_entry};
    use crate::authz::permission::Permissions;
    use crate::ids::{AgentId, UserId};

    const VAULT: VaultId = VaultId(Uuid::from_u128(0x10));
    const OTHER_VAULT: VaultId = VaultId(Uuid::from_u128(0x11));
    const AGENT: Principal = Principal {
        kind: crate::authz::PrincipalType::Agent,
        id: Uuid::from_u128(0xa),
    };
    const OWNER: Principal = Principal {
        kind: crate::authz::PrincipalType::User,
        id: Uuid::from_u128(0xb),
    };
    const COLLEAGUE: Principal = Principal {
        kind: crate::authz::PrincipalType::User,
        id: Uuid::from_u128(0xc),
    };
    const VAULT_FACTS: VaultFacts = VaultFacts { owner: OWNER };

    // Short, readable ids in reasons.
    const V: &str = "00000000-0000-0000-0000-000000000010";
    const W: &str = "00000000-0000-0000-0000-000000000011";
    const A: &str = "agent:00000000-0000-0000-0000-00000000000a";
    const O: &str = "user:00000000-0000-0000-0000-00000000000b";

    fn policy_id(n: u128) -> PolicyId {
        PolicyId(Uuid::from_u128(n))
    }

    fn p(n: u128) -> String {
        policy_id(n).to_string()
    }

    fn noon() -> DateTime<Utc> {
        // Monday 2024-01-15.
        Utc.with_ymd_and_hms(2024, 1, 15, 12, 0, 0).unwrap()
    }

    fn pattern(raw: &str) -> PathPattern {
        PathPattern::parse(raw).unwrap()
    }

    fn path(raw: &str) -> SecretPath {
        SecretPath::parse(raw).unwrap()
    }

    fn grant(n: u128, principal: Principal, pattern_raw: &str, permissions: Permissions) -> Policy {
        Policy {
            id: policy_id(n),
            vault_id: VAULT,
            principal,
            pattern: pattern(pattern_raw),
            permissions,
            conditions: Conditions::default(),
            expires_at: None,
        }
    }

    fn agent_read(n: u128, pattern_raw: &str) -> Policy {
        grant(n, AGENT, pattern_raw, Permissions::READ)
    }

    struct Ask<'a> {
        principal: Principal,
        path: &'a SecretPath,
        permission: Permission,
        ip: IpAddr,
        now: DateTime<Utc>,
        vault_id: VaultId,
    }

    impl<'a> Ask<'a> {
        fn read(principal: Principal, path: &'a SecretPath) -> Self {
            Self {
                principal,
                path,
                permission: Permission::Read,
                ip: "10.1.2.3".parse().unwrap(),
                now: noon(),
                vault_id: VAULT,
            }
        }

        fn request(&self) -> AccessRequest<'a> {
            AccessRequest {
                principal: self.principal,
                vault_id: self.vault_id,
                path: self.path,
                permission: self.permission,
                client_ip: self.ip,
                now: self.now,
            }
        }
    }

    fn agent_token(scopes: &[PathPattern]) -> TokenScope<'_> {
        TokenScope {
            vault_ids: &[],
            scopes: ScopeCeiling::Patterns(scopes),
            current: None,
        }
    }

    fn decide(token: &TokenScope<'_>, ask: &Ask<'_>, policies: &[Policy]) -> Decision {
        authorize(token, &ask.request(), &VAULT_FACTS, policies)
    }

    fn denied(layer: Layer, policy_id: Option<PolicyId>, reason: &str) -> Decision {
        Decision {
            allowed: false,
            layer,
            policy_id,
            reason: reason.to_owned(),
        }
    }

    fn allowed(layer: Layer, policy_id: Option<PolicyId>, reason: &str) -> Decision {
        Decision {
            allowed: true,
            layer,
            policy_id,
            reason: reason.to_owned(),
        }
    }

    fn with_conditions(mut policy: Policy, conditions: Conditions) -> Policy {
        policy.conditions = conditions;
        policy
    }

    fn ip_conditions(list: &[&str]) -> Conditions {
        Conditions {
            ip_allowlist: list.iter().map(|raw| parse_ip_allowlist_entry(raw).unwrap()).collect(),
            time_window: None,
        }
    }

    fn time_conditions(days: &[Weekday], start: (u32, u32), end: (u32, u32), timezone: Tz) -> Conditions {
        Conditions {
            ip_allowlist: vec![],
            time_window: Some(TimeWindow {
                days: days.to_vec(),
                start: NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap(),
                end: NaiveTime::from_hms_opt(end.0, end.1, 0).unwrap(),
                timezone,
            }),
        }
    }

    // --- the happy path every other test departs from ---

    #[test]
    fn granting_policy_allows_and_is_named() {
        let scopes = [pattern("db/**")];
        let secret = path("db/password");
        let decision = decide(
            &agent_token(&scopes),
            &Ask::read(AGENT, &secret),
            &[agent_read(1, "db/**")],
        );
        assert_eq!(
            decision,
            allowed(
                Layer::Policy,
                Some(policy_id(1)),
                &format!("policy {} grants read on \"db/**\" to {A}", p(1))
            )
        );
    }

    // --- layer 1: vault binding ---

    #[test]
    fn vault_outside_binding_is_denied_before_anything_else() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let token = TokenScope {
            vault_ids: &[OTHER_VAULT],
            scopes: ScopeCeiling::Patterns(&scopes),
            current: None,
        };
        let decision = decide(&token, &Ask::read(AGENT, &secret), &[agent_read(1, "**")]);
        assert_eq!(
            decision,
            denied(
                Layer::VaultBinding,
                None,
                &format!("token is bound to vault(s) {W}; vault {V} is not one of them")
            )
        );
    }

    #[test]
    fn vault_inside_binding_passes_on_to_the_next_layers() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let token = TokenScope {
            vault_ids: &[OTHER_VAULT, VAULT],
            scopes: ScopeCeiling::Patterns(&scopes),
            current: None,
        };
        let decision = decide(&token, &Ask::read(AGENT, &secret), &[agent_read(1, "**")]);
        assert!(decision.allowed);
        assert_eq!(decision.layer, Layer::Policy);
    }

    #[test]
    fn owner_bypass_does_not_pass_the_vault_binding() {
        let secret = path("db/password");
        let token = TokenScope {
            vault_ids: &[OTHER_VAULT],
            scopes: ScopeCeiling::Unrestricted,
            current: None,
        };
        let decision = decide(&token, &Ask::read(OWNER, &secret), &[]);
        assert_eq!(
            decision,
            denied(
                Layer::VaultBinding,
                None,
                &format!("token is bound to vault(s) {W}; vault {V} is not one of them")
            )
        );
    }

    // --- layers 1 and 2 for a token issued before its agent changed ---

    #[test]
    fn an_agent_bound_to_another_vault_since_its_token_was_issued_is_denied_at_the_binding() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let token = TokenScope {
            vault_ids: &[VAULT],
            scopes: ScopeCeiling::Patterns(&scopes),
            current: Some(CurrentReach {
                vault_ids: &[OTHER_VAULT],
                scopes: &scopes,
            }),
        };
        let decision = decide(&token, &Ask::read(AGENT, &secret), &[agent_read(1, "**")]);
        assert_eq!(
            decision,
            denied(
                Layer::VaultBinding,
                None,
                &format!("{A} is now bound to vault(s) {W}; vault {V} is not one of them")
            )
        );
    }

    #[test]
    fn an_agent_narrowed_since_its_token_was_issued_is_denied_at_the_ceiling() {
        let issued = [pattern("**")];
        let narrowed = [pattern("api/*")];
        let secret = path("db/password");
        let token = TokenScope {
            vault_ids: &[],
            scopes: ScopeCeiling::Patterns(&issued),
            current: Some(CurrentReach {
                vault_ids: &[],
                scopes: &narrowed,
            }),
        };
        let policies = [agent_read(1, "**")];
        assert_eq!(
            decide(&token, &Ask::read(AGENT, &secret), &policies),
            denied(
                Layer::ScopeCeiling,
                None,
                &format!("path \"db/password\" is outside the current scopes of {A} [\"api/*\"]")
            )
        );
        let api_key = path("api/key");
        assert!(decide(&token, &Ask::read(AGENT, &api_key), &policies).allowed);
        let emptied = TokenScope {
            current: Some(CurrentReach {
                vault_ids: &[],
                scopes: &[],
            }),
            ..token
        };
        assert_eq!(
            decide(&emptied, &Ask::read(AGENT, &api_key), &policies),
            denied(
                Layer::ScopeCeiling,
                None,
                &format!("{A} has no scopes now, so it reaches no path")
            )
        );
    }

    #[test]
    fn an_agent_widened_since_its_token_was_issued_reaches_no_further_with_it() {
        let issued = [pattern("api/*")];
        let widened = [pattern("**")];
        let secret = path("db/password");
        let token = TokenScope {
            vault_ids: &[OTHER_VAULT],
            scopes: ScopeCeiling::Patterns(&issued),
            current: Some(CurrentReach {
                vault_ids: &[],
                scopes: &widened,
            }),
        };
        let decision = decide(&token, &Ask::read(AGENT, &secret), &[agent_read(1, "**")]);
        assert_eq!(decision.layer, Layer::VaultBinding);
        let unbound = TokenScope {
            vault_ids: &[],
            ..token
        };
        let decision = decide(&unbound, &Ask::read(AGENT, &secret), &[agent_read(1, "**")]);
        assert_eq!(
            decision,
            denied(
                Layer::ScopeCeiling,
                None,
                "path \"db/password\" is outside the token's scopes [\"api/*\"]"
            )
        );
    }

    // --- layer 2: scope ceiling ---

    #[test]
    fn path_outside_scopes_is_denied_even_with_a_granting_policy() {
        let scopes = [pattern("api/*"), pattern("logs/**")];
        let secret = path("db/password");
        let decision = decide(
            &agent_token(&scopes),
            &Ask::read(AGENT, &secret),
            &[agent_read(1, "**")],
        );
        assert_eq!(
            decision,
            denied(
                Layer::ScopeCeiling,
                None,
                "path \"db/password\" is outside the token's scopes [\"api/*\", \"logs/**\"]"
            )
        );
    }

    #[test]
    fn empty_scopes_deny_every_path() {
        let secret = path("db/password");
        let decision = decide(&agent_token(&[]), &Ask::read(AGENT, &secret), &[agent_read(1, "**")]);
        assert_eq!(
            decision,
            denied(
                Layer::ScopeCeiling,
                None,
                "token has no scopes, so it grants access to no path"
            )
        );
    }

    #[test]
    fn agent_token_without_a_scope_ceiling_is_denied() {
        let secret = path("db/password");
        let decision = decide(&TokenScope::HUMAN, &Ask::read(AGENT, &secret), &[agent_read(1, "**")]);
        assert_eq!(
            decision,
            denied(
                Layer::ScopeCeiling,
                None,
                &format!("{A} presented a token without scopes; agent tokens must carry scopes")
            )
        );
    }

    #[test]
    fn user_token_without_a_scope_ceiling_reaches_the_policy_engine() {
        let secret = path("db/password");
        let policy = grant(1, COLLEAGUE, "db/*", Permissions::READ);
        let decision = decide(&TokenScope::HUMAN, &Ask::read(COLLEAGUE, &secret), &[policy]);
        assert!(decision.allowed);
        assert_eq!(decision.layer, Layer::Policy);
        assert_eq!(decision.policy_id, Some(policy_id(1)));
    }

    #[test]
    fn owner_bypass_does_not_pass_the_scope_ceiling() {
        let scopes = [pattern("api/*")];
        let secret = path("db/password");
        let decision = decide(&agent_token(&scopes), &Ask::read(OWNER, &secret), &[]);
        assert_eq!(
            decision,
            denied(
                Layer::ScopeCeiling,
                None,
                "path \"db/password\" is outside the token's scopes [\"api/*\"]"
            )
        );
        let empty = decide(&agent_token(&[]), &Ask::read(OWNER, &secret), &[]);
        assert_eq!(empty.layer, Layer::ScopeCeiling);
        assert!(!empty.allowed);
    }

    // --- layer 3: policy engine ---

    #[test]
    fn no_policy_for_the_principal_denies() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let decision = decide(&agent_token(&scopes), &Ask::read(AGENT, &secret), &[]);
        assert_eq!(
            decision,
            denied(Layer::Policy, None, &format!("no policy for {A} on vault {V}"))
        );
    }

    #[test]
    fn policies_of_other_principals_and_vaults_are_ignored() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let mut other_vault = agent_read(1, "**");
        other_vault.vault_id = OTHER_VAULT;
        let colleague = grant(2, COLLEAGUE, "**", Permissions::READ_WRITE);
        // Same UUID as the agent, but a user.
        let user_twin = grant(3, Principal::user(UserId(AGENT.id)), "**", Permissions::READ);
        let decision = decide(
            &agent_token(&scopes),
            &Ask::read(AGENT, &secret),
            &[other_vault, colleague, user_twin],
        );
        assert_eq!(
            decision,
            denied(Layer::Policy, None, &format!("no policy for {A} on vault {V}"))
        );
    }

    #[test]
    fn policy_for_another_path_denies_and_lists_the_patterns() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let decision = decide(
            &agent_token(&scopes),
            &Ask::read(AGENT, &secret),
            &[agent_read(2, "logs/**"), agent_read(1, "api/*")],
        );
        assert_eq!(
            decision,
            denied(
                Layer::Policy,
                None,
                &format!(
                    "no policy for {A} on vault {V} matches path \"db/password\" (patterns: \"api/*\", \"logs/**\")"
                )
            )
        );
    }

    #[test]
    fn policy_without_the_permission_denies() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let mut ask = Ask::read(AGENT, &secret);
        ask.permission = Permission::Write;
        let decision = decide(&agent_token(&scopes), &ask, &[agent_read(1, "db/**")]);
        assert_eq!(
            decision,
            denied(
                Layer::Policy,
                Some(policy_id(1)),
                &format!(
                    "policy {} matches path \"db/password\" with \"db/**\" but grants read, not write",
                    p(1)
                )
            )
        );
    }

    #[test]
    fn expired_policy_denies() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let mut policy = agent_read(1, "db/**");
        policy.expires_at = Some(noon() - chrono::Duration::hours(1));
        let decision = decide(&agent_token(&scopes), &Ask::read(AGENT, &secret), &[policy]);
        assert_eq!(
            decision,
            denied(
                Layer::Policy,
                Some(policy_id(1)),
                &format!(
                    "policy {} matches path \"db/password\" with \"db/**\" and grants read but expired at 2024-01-15T11:00:00Z",
                    p(1)
                )
            )
        );
    }

    #[test]
    fn policy_expiring_exactly_now_denies_and_one_second_later_allows() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let mut policy = agent_read(1, "db/**");
        policy.expires_at = Some(noon());
        let at_expiry = decide(
            &agent_token(&scopes),
            &Ask::read(AGENT, &secret),
            std::slice::from_ref(&policy),
        );
        assert!(!at_expiry.allowed);
        policy.expires_at = Some(noon() + chrono::Duration::seconds(1));
        let before_expiry = decide(&agent_token(&scopes), &Ask::read(AGENT, &secret), &[policy]);
        assert!(before_expiry.allowed);
    }

    #[test]
    fn client_outside_ipv4_allowlist_is_denied() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let policy = with_conditions(agent_read(1, "db/**"), ip_conditions(&["192.168.0.0/16", "10.9.9.9"]));
        let decision = decide(
            &agent_token(&scopes),
            &Ask::read(AGENT, &secret),
            std::slice::from_ref(&policy),
        );
        assert_eq!(
            decision,
            denied(
                Layer::Policy,
                Some(policy_id(1)),
                &format!(
                    "policy {} matches path \"db/password\" with \"db/**\" and grants read but client IP 10.1.2.3 is not in the ip_allowlist [192.168.0.0/16, 10.9.9.9/32]",
                    p(1)
                )
            )
        );
        let mut inside = Ask::read(AGENT, &secret);
        inside.ip = "192.168.44.1".parse().unwrap();
        assert!(decide(&agent_token(&scopes), &inside, &[policy]).allowed);
    }

    #[test]
    fn client_outside_ipv6_allowlist_is_denied() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let policy = with_conditions(agent_read(1, "db/**"), ip_conditions(&["2001:db8:1::/48"]));
        let mut ask = Ask::read(AGENT, &secret);
        ask.ip = "2001:db8:2::7".parse().unwrap();
        let decision = decide(&agent_token(&scopes), &ask, std::slice::from_ref(&policy));
        assert_eq!(
            decision,
            denied(
                Layer::Policy,
                Some(policy_id(1)),
                &format!(
                    "policy {} matches path \"db/password\" with \"db/**\" and grants read but client IP 2001:db8:2::7 is not in the ip_allowlist [2001:db8:1::/48]",
                    p(1)
                )
            )
        );
        ask.ip = "2001:db8:1:ffff::7".parse().unwrap();
        assert!(decide(&agent_token(&scopes), &ask, &[policy]).allowed);
    }

    #[test]
    fn request_outside_a_window_past_midnight_is_denied() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let policy = with_conditions(agent_read(1, "db/**"), time_conditions(&[], (22, 0), (6, 0), Tz::UTC));
        let decision = decide(
            &agent_token(&scopes),
            &Ask::read(AGENT, &secret),
            std::slice::from_ref(&policy),
        );
        assert_eq!(
            decision,
            denied(
                Layer::Policy,
                Some(policy_id(1)),
                &format!(
                    "policy {} matches path \"db/password\" with \"db/**\" and grants read but request time Mon 2024-01-15 12:00:00 UTC is outside the time window every day 22:00-06:00 (ending the next day) UTC",
                    p(1)
                )
            )
        );
        let mut late = Ask::read(AGENT, &secret);
        late.now = Utc.with_ymd_and_hms(2024, 1, 16, 2, 30, 0).unwrap();
        assert!(decide(&agent_token(&scopes), &late, &[policy]).allowed);
    }

    #[test]
    fn request_outside_a_new_york_window_is_denied_although_inside_it_in_utc() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let new_york: Tz = "America/New_York".parse().unwrap();
        let policy = with_conditions(
            agent_read(1, "db/**"),
            time_conditions(&[Weekday::Mon], (9, 0), (17, 0), new_york),
        );
        let mut ask = Ask::read(AGENT, &secret);
        // 13:30Z on Monday 2024-01-15 (EST, no DST) is 08:30 in New York.
        ask.now = Utc.with_ymd_and_hms(2024, 1, 15, 13, 30, 0).unwrap();
        let decision = decide(&agent_token(&scopes), &ask, std::slice::from_ref(&policy));
        assert_eq!(
            decision,
            denied(
                Layer::Policy,
                Some(policy_id(1)),
                &format!(
                    "policy {} matches path \"db/password\" with \"db/**\" and grants read but request time Mon 2024-01-15 08:30:00 America/New_York is outside the time window mon 09:00-17:00 America/New_York",
                    p(1)
                )
            )
        );
        ask.now = Utc.with_ymd_and_hms(2024, 1, 15, 14, 30, 0).unwrap();
        assert!(decide(&agent_token(&scopes), &ask, &[policy]).allowed);
    }

    #[test]
    fn first_granting_policy_by_id_wins_whatever_the_input_order() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let policies = [agent_read(9, "db/*"), agent_read(3, "**"), agent_read(5, "db/**")];
        let decision = decide(&agent_token(&scopes), &Ask::read(AGENT, &secret), &policies);
        assert_eq!(decision.policy_id, Some(policy_id(3)));
        let reversed: Vec<Policy> = policies.iter().rev().cloned().collect();
        assert_eq!(
            decide(&agent_token(&scopes), &Ask::read(AGENT, &secret), &reversed),
            decision
        );
    }

    #[test]
    fn a_failing_policy_does_not_hide_a_later_granting_one() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let blocked = with_conditions(agent_read(1, "**"), ip_conditions(&["192.168.0.0/16"]));
        let decision = decide(
            &agent_token(&scopes),
            &Ask::read(AGENT, &secret),
            &[blocked, agent_read(2, "db/*")],
        );
        assert!(decision.allowed);
        assert_eq!(decision.policy_id, Some(policy_id(2)));
    }

    #[test]
    fn denial_reports_the_policy_that_came_closest() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let mut expired = agent_read(3, "db/*");
        expired.expires_at = Some(noon() - chrono::Duration::days(1));
        let policies = [
            agent_read(1, "api/**"),
            grant(2, AGENT, "db/**", Permissions::WRITE),
            expired,
        ];
        let decision = decide(&agent_token(&scopes), &Ask::read(AGENT, &secret), &policies);
        assert_eq!(
            decision,
            denied(
                Layer::Policy,
                Some(policy_id(3)),
                &format!(
                    "policy {} matches path \"db/password\" with \"db/*\" and grants read but expired at 2024-01-14T12:00:00Z",
                    p(3)
                )
            )
        );
    }

    #[test]
    fn among_equally_close_misses_the_lowest_policy_id_is_reported() {
        let scopes = [pattern("**")];
        let secret = path("db/password");
        let policies = [
            grant(7, AGENT, "db/**", Permissions::WRITE),
            grant(4, AGENT, "**", Permissions::WRITE),
        ];
        let decision = decide(&agent_token(&scopes), &Ask::read(AGENT, &secret), &policies);
        assert_eq!(decision.policy_id, Some(policy_id(4)));
        assert_eq!(
            decision.reason,
            format!(
                "policy {} matches path \"db/password\" with \"**\" but grants write, not read",
                p(4)
            )
        );
    }

    // --- layer 4: owner bypass ---

    #[test]
    fn owner_without_a_policy_is_allowed_by_owner_bypass() {
        let secret = path("db/password");
        let mut ask = Ask::read(OWNER, &secret);
        ask.permission = Permission::Write;
        let decision = decide(&TokenScope::HUMAN, &ask, &[]);
        assert_eq!(
            decision,
            allowed(Layer::OwnerBypass, None, &format!("{O} owns vault {V} (owner bypass)"))
        );
    }

    #[test]
    fn owner_bypass_overrides_a_failing_policy_of_the_owner() {
        let secret = path("db/password");
        let policy = with_conditions(
            grant(1, OWNER, "**", Permissions::READ),
            ip_conditions(&["192.168.0.0/16"]),
        );
        let decision = decide(&TokenScope::HUMAN, &Ask::read(OWNER, &secret), &[policy]);
        assert!(decision.allowed);
        assert_eq!(decision.layer, Layer::OwnerBypass);
    }

    #[test]
    fn owner_with_a_granting_policy_is_allowed_by_the_policy() {
        let secret = path("db/password");
        let decision = decide(
            &TokenScope::HUMAN,
            &Ask::read(OWNER, &secret),
            &[grant(1, OWNER, "**", Permissions::READ)],
        );
        assert_eq!(decision.layer, Layer::Policy);
        assert_eq!(decision.policy_id, Some(policy_id(1)));
    }

    #[test]
    fn owner_of_one_vault_is_not_owner_of_another() {
        let secret = path("db/password");
        let mut ask = Ask::read(OWNER, &secret);
        ask.vault_id = OTHER_VAULT;
        let other_owner = VaultFacts { owner: COLLEAGUE };
        let decision = authorize(&TokenScope::HUMAN, &ask.request(), &other_owner, &[]);
        assert_eq!(
            decision,
            denied(Layer::Policy, None, &format!("no policy for {O} on vault {W}"))
        );
    }

    #[test]
    fn non_owner_user_without_policy_is_denied() {
        let secret = path("db/password");
        let decision = decide(&TokenScope::HUMAN, &Ask::read(COLLEAGUE, &secret), &[]);
        assert!(!decision.allowed);
        assert_eq!(decision.layer, Layer::Policy);
    }

    #[test]
    fn agent_can_be_a_vault_owner() {
        let scopes = [pattern("db/**")];
        let secret = path("db/password");
        let facts = VaultFacts {
            owner: Principal::agent(AgentId(AGENT.id)),
        };
        let decision = authorize(&agent_token(&scopes), &Ask::read(AGENT, &secret).request(), &facts, &[]);
        assert_eq!(
            decision,
            allowed(Layer::OwnerBypass, None, &format!("{A} owns vault {V} (owner bypass)"))
        );
    }

    #[test]
    fn decision_and_layer_serialize_for_the_explain_endpoint() {
        let decision = allowed(Layer::OwnerBypass, None, "x");
        assert_eq!(
            serde_json::to_value(&decision).unwrap(),
            serde_json::json!({"allowed": true, "layer": "owner_bypass", "policy_id": null, "reason": "x"})
        );
        assert_eq!(Layer::ScopeCeiling.to_string(), "scope_ceiling");
        assert_eq!(Layer::VaultBinding.as_str(), "vault_binding");
    }

    // --- properties over random policy sets ---

    const PATTERNS: [&str; 6] = ["**", "db/*", "db/**", "api/*", "*/password", "db/password"];
    const PATHS: [&str; 4] = ["db/password", "db/prod/password", "api/key", "password"];

    fn any_policy() -> impl Strategy<Value = Policy> {
        (
            0u128..8,
            prop::sample::select(vec![AGENT, OWNER, COLLEAGUE]),
            prop::bool::ANY,
            prop::sample::select(PATTERNS.to_vec()),
            prop::sample::select(vec![Permissions::READ, Permissions::WRITE, Permissions::READ_WRITE]),
            prop::option::of(-3i64..3),
            prop::bool::ANY,
        )
            .prop_map(
                |(id, principal, other_vault, pattern_raw, permissions, expiry_hours, ip_limited)| Policy {
                    id: policy_id(id),
                    vault_id: if other_vault { OTHER_VAULT } else { VAULT },
                    principal,
                    pattern: pattern(pattern_raw),
                    permissions,
                    conditions: if ip_limited {
                        ip_conditions(&["10.0.0.0/8"])
                    } else {
                        Conditions::default()
                    },
                    expires_at: expiry_hours.map(|hours| noon() + chrono::Duration::hours(hours)),
                },
            )
    }

    fn any_request() -> impl Strategy<Value = (Principal, &'static str, Permission, bool)> {
        (
            prop::sample::select(vec![AGENT, OWNER, COLLEAGUE]),
            prop::sample::select(PATHS.to_vec()),
            prop::sample::select(Permission::ALL.to_vec()),
            prop::bool::ANY,
        )
    }

    proptest! {
        #[test]
        fn a_binding_that_excludes_the_vault_always_denies_at_the_binding(
            policies in prop::collection::vec(any_policy(), 0..6),
            (principal, raw_path, permission, _) in any_request(),
        ) {
            let secret = path(raw_path);
            let mut ask = Ask::read(principal, &secret);
            ask.permission = permission;
            let scopes = [pattern("**")];
            for scope in [ScopeCeiling::Unrestricted, ScopeCeiling::Patterns(&scopes)] {
                let token = TokenScope { vault_ids: &[OTHER_VAULT], scopes: scope, current: None };
                let decision = decide(&token, &ask, &policies);
                prop_assert!(!decision.allowed);
                prop_assert_eq!(decision.layer, Layer::VaultBinding);
            }
        }

        #[test]
        fn a_token_held_to_its_agents_current_reach_allows_only_what_both_allow(
            policies in prop::collection::vec(any_policy(), 0..6),
            (principal, raw_path, permission, _) in any_request(),
            issued in prop::collection::vec(prop::sample::select(PATTERNS.to_vec()), 0..3),
            now in prop::collection::vec(prop::sample::select(PATTERNS.to_vec()), 0..3),
            bindings in (0usize..4, 0usize..4),
        ) {
            let secret = path(raw_path);
            let mut ask = Ask::read(principal, &secret);
            ask.permission = permission;
            let issued: Vec<PathPattern> = issued.into_iter().map(pattern).collect();
            let now: Vec<PathPattern> = now.into_iter().map(pattern).collect();
            let binding = |choice: usize| -> &'static [VaultId] {
                [&[][..], &[VAULT][..], &[OTHER_VAULT][..], &[OTHER_VAULT, VAULT][..]][choice]
            };
            let token = TokenScope {
                vault_ids: binding(bindings.0),
                scopes: ScopeCeiling::Patterns(&issued),
                current: None,
            };
            let as_issued_now = TokenScope {
                vault_ids: binding(bindings.1),
                scopes: ScopeCeiling::Patterns(&now),
                current: None,
            };
            let held = TokenScope {
                current: Some(CurrentReach { vault_ids: binding(bindings.1), scopes: &now }),
                ..token
            };
            let both = decide(&token, &ask, &policies).allowed && decide(&as_issued_now, &ask, &policies).allowed;
            prop_assert_eq!(decide(&held, &ask, &policies).allowed, both);
        }

        #[test]
        fn a_path_outside_every_scope_always_denies_at_the_ceiling(
            policies in prop::collection::vec(any_policy(), 0..6),
            (principal, raw_path, permission, _) in any_request(),
        ) {
            let secret = path(raw_path);
            let mut ask = Ask::read(principal, &secret);
            ask.permission = permission;
            let scopes = [pattern("elsewhere/**")];
            let decision = decide(&agent_token(&scopes), &ask, &policies);
            prop_assert!(!decision.allowed);
            prop_assert_eq!(decision.layer, Layer::ScopeCeiling);
        }

        #[test]
        fn an_allow_at_the_policy_layer_names_a_policy_that_grants_this_exact_request(
            policies in prop::collection::vec(any_policy(), 0..6),
            (principal, raw_path, permission, inside_network) in any_request(),
        ) {
            let secret = path(raw_path);
            let mut ask = Ask::read(principal, &secret);
            ask.permission = permission;
            ask.ip = if inside_network { "10.1.2.3".parse().unwrap() } else { "192.0.2.1".parse().unwrap() };
            let decision = decide(&TokenScope::HUMAN, &ask, &policies);
            let granting: Vec<&Policy> = policies
                .iter()
                .filter(|policy| {
                    policy.applies_to(&principal, VAULT)
                        && policy.pattern.matches(&secret)
                        && policy.grants(permission)
                        && !policy.is_expired_at(ask.now)
                        && policy.conditions.admits(ask.ip, ask.now).is_ok()
                })
                .collect();
            if principal.is_agent() {
                // Agents never pass an unrestricted ceiling.
                prop_assert_eq!(decision.layer, Layer::ScopeCeiling);
            } else if let Some(first) = granting.iter().min_by_key(|policy| policy.id) {
                prop_assert!(decision.allowed);
                prop_assert_eq!(decision.layer, Layer::Policy);
                prop_assert_eq!(decision.policy_id, Some(first.id));
            } else if principal == OWNER {
                prop_assert_eq!(decision.layer, Layer::OwnerBypass);
                prop_assert!(decision.allowed);
            } else {
                prop_assert!(!decision.allowed);
                prop_assert_eq!(decision.layer, Layer::Policy);
            }
        }

        #[test]
        fn the_order_of_the_policies_does_not_change_the_decision(
            policies in prop::collection::vec(any_policy(), 0..6),
            (principal, raw_path, permission, _) in any_request(),
        ) {
            // Ids are drawn from a small range, so make them unique to fix the order.
            let policies: Vec<Policy> = policies
                .into_iter()
                .enumerate()
                .map(|(index, mut policy)| { policy.id = policy_id(100 + index as u128); policy })
                .collect();
            let secret = path(raw_path);
            let mut ask = Ask::read(principal, &secret);
            ask.permission = permission;
            let scopes = [pattern("**")];
            let forward = decide(&agent_token(&scopes), &ask, &policies);
            let reversed: Vec<Policy> = policies.iter().rev().cloned().collect();
            prop_assert_eq!(decide(&agent_token(&scopes), &ask, &reversed), forward);
        }
    }
}
