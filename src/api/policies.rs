//! Access policies of a vault, managed by the humans who manage the vault.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::authz::{Conditions, PathPattern, Permissions, Policy, Principal, PrincipalType};
use domain::change::DomainError;
use domain::events::OrgRole;
use domain::vault::Vault;
use domain::{AgentId, PolicyId, UserId, VaultId, policy};
use projections::access::GrantedPolicy;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Body, PathParams};
use super::problem::ApiError;
use super::session::HumanSession;
use crate::app::AppState;

#[derive(Deserialize)]
pub struct CreatePolicyRequest {
    secret_path_pattern: String,
    principal_type: PrincipalType,
    principal_id: Uuid,
    permissions: Permissions,
    #[serde(default)]
    conditions: Conditions,
    expires_at: Option<DateTime<Utc>>,
    effect: Option<String>,
}

#[derive(Deserialize)]
pub struct UpdatePolicyRequest {
    permissions: Option<Permissions>,
    conditions: Option<Conditions>,
    expires_at: Option<DateTime<Utc>>,
    effect: Option<String>,
}

#[derive(Serialize)]
pub struct PolicyResponse {
    id: PolicyId,
    vault_id: VaultId,
    secret_path_pattern: String,
    principal_type: PrincipalType,
    principal_id: Uuid,
    permissions: Permissions,
    conditions: Conditions,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    created_by: Uuid,
    created_by_type: PrincipalType,
    created_at: DateTime<Utc>,
    effect: &'static str,
    priority: u32,
}

impl From<&GrantedPolicy> for PolicyResponse {
    fn from(granted: &GrantedPolicy) -> Self {
        let policy = &granted.policy;
        Self {
            id: policy.id,
            vault_id: policy.vault_id,
            secret_path_pattern: policy.pattern.as_str().to_owned(),
            principal_type: policy.principal.kind,
            principal_id: policy.principal.id,
            permissions: policy.permissions,
            conditions: policy.conditions.clone(),
            expires_at: policy.expires_at,
            created_by: granted.granted_by.id,
            created_by_type: granted.granted_by.kind,
            created_at: granted.created_at,
            effect: "allow",
            priority: 0,
        }
    }
}

#[derive(Serialize)]
pub struct PolicyListResponse {
    policies: Vec<PolicyResponse>,
}

/// keyward's policies only ever allow; a deny is expressed by not granting.
fn allow_only(effect: Option<&str>) -> Result<(), ApiError> {
    match effect {
        None | Some("allow") => Ok(()),
        Some(_) => Err(ApiError::BadRequest(
            "effect: only \"allow\" policies are supported".into(),
        )),
    }
}

pub async fn create(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(vault_id): PathParams<VaultId>,
    Body(request): Body<CreatePolicyRequest>,
) -> Result<(StatusCode, Json<PolicyResponse>), ApiError> {
    allow_only(request.effect.as_deref())?;
    let vault = managed_vault(&state, &session, vault_id)?;
    let pattern = PathPattern::parse(request.secret_path_pattern)
        .map_err(|e| ApiError::BadRequest(format!("secret_path_pattern: {e}")))?;
    let principal = Principal {
        kind: request.principal_type,
        id: request.principal_id,
    };
    let known = state.projector.read(|models| match principal.kind {
        PrincipalType::User => models
            .directory
            .user(UserId(principal.id))
            .is_some_and(|u| u.org_id == vault.org_id),
        PrincipalType::Agent => models
            .directory
            .agent(AgentId(principal.id))
            .is_some_and(|a| a.org_id == vault.org_id),
    });
    if !known {
        return Err(ApiError::BadRequest(format!(
            "principal_id: no {principal} in this organization"
        )));
    }
    let policy = Policy {
        id: PolicyId::new(),
        vault_id,
        principal,
        pattern,
        permissions: request.permissions,
        conditions: request.conditions,
        expires_at: request.expires_at,
    };
    let policy_id = policy.id;
    let granted_by = Principal::user(session.user.id);
    state
        .commands
        .decide(&session.metadata(), |models| {
            let vault = models.directory.vault(vault_id).ok_or(DomainError::NotFound("vault"))?;
            Ok(vec![policy::grant(vault, policy.clone(), granted_by)?])
        })
        .await?;
    let response = state
        .projector
        .read(|models| models.access.policy(vault_id, policy_id).map(PolicyResponse::from))
        .ok_or_else(|| ApiError::internal("a granted policy is missing from the read model"))?;
    Ok((StatusCode::CREATED, Json(response)))
}

pub async fn list(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(vault_id): PathParams<VaultId>,
) -> Result<Json<PolicyListResponse>, ApiError> {
    managed_vault(&state, &session, vault_id)?;
    let policies = state
        .projector
        .read(|models| models.access.policies_of(vault_id).map(PolicyResponse::from).collect());
    Ok(Json(PolicyListResponse { policies }))
}

pub async fn update(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams((vault_id, policy_id)): PathParams<(VaultId, PolicyId)>,
    Body(request): Body<UpdatePolicyRequest>,
) -> Result<Json<PolicyResponse>, ApiError> {
    allow_only(request.effect.as_deref())?;
    managed_vault(&state, &session, vault_id)?;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let vault = models.directory.vault(vault_id).ok_or(DomainError::NotFound("vault"))?;
            let current = &models
                .access
                .policy(vault_id, policy_id)
                .ok_or(DomainError::NotFound("policy"))?
                .policy;
            let changed = Policy {
                permissions: request.permissions.unwrap_or(current.permissions),
                conditions: request.conditions.clone().unwrap_or_else(|| current.conditions.clone()),
                expires_at: request.expires_at.or(current.expires_at),
                ..current.clone()
            };
            Ok(vec![policy::update(vault, current, changed)?])
        })
        .await?;
    let response = state
        .projector
        .read(|models| models.access.policy(vault_id, policy_id).map(PolicyResponse::from))
        .ok_or_else(|| ApiError::NotFound("policy not found".into()))?;
    Ok(Json(response))
}

/// DELETE: the policy stops granting on the very next request, also for tokens issued
/// while it stood.
pub async fn delete(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams((vault_id, policy_id)): PathParams<(VaultId, PolicyId)>,
) -> Result<StatusCode, ApiError> {
    managed_vault(&state, &session, vault_id)?;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let vault = models.directory.vault(vault_id).ok_or(DomainError::NotFound("vault"))?;
            let granted = models
                .access
                .policy(vault_id, policy_id)
                .ok_or(DomainError::NotFound("policy"))?;
            Ok(vec![policy::revoke(vault, &granted.policy)])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A vault the caller may manage: in their org (else 404), and theirs, or they are an
/// owner or admin of the org.
/// Whether `principal`, of the vault's org, manages it (its policies, any share of its
/// secrets): the vault's creator, or a human owner or admin of the org (`role`).
pub(super) fn manages(vault: &Vault, principal: Principal, role: Option<&OrgRole>) -> bool {
    vault.created_by == principal || matches!(role, Some(OrgRole::Owner | OrgRole::Admin))
}

pub(super) fn managed_vault(state: &AppState, session: &HumanSession, vault_id: VaultId) -> Result<Vault, ApiError> {
    let vault = super::vaults::visible_vault(state, session, vault_id)?;
    if !manages(&vault, Principal::user(session.user.id), Some(&session.user.role)) {
        return Err(ApiError::Forbidden(
            "only the vault's owner or an org admin manages its policies".into(),
        ));
    }
    Ok(vault)
}
