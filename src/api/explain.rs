//! POST /v1/authz/explain: for the humans who manage a vault, how an access would be
//! decided right now and by which layer, the same function that decides real requests.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::authz::{
    AccessRequest, Decision, PathPattern, Permission, Principal, PrincipalType, ScopeCeiling, TokenScope, VaultFacts,
    authorize,
};
use domain::{AgentId, SecretPath, UserId, VaultId};
use serde::Deserialize;
use uuid::Uuid;

use super::AppState;
use super::extract::Body;
use super::policies::managed_vault;
use super::problem::ApiError;
use super::session::HumanSession;

#[derive(Deserialize)]
pub struct ExplainRequest {
    vault_id: VaultId,
    path: String,
    principal_type: PrincipalType,
    principal_id: Uuid,
    permission: Permission,
    /// The client address to judge ip_allowlists by; the caller's own if absent.
    client_ip: Option<IpAddr>,
    /// The moment to judge expiry and time windows at; now if absent.
    at: Option<DateTime<Utc>>,
}

pub async fn explain(
    State(state): State<AppState>,
    session: HumanSession,
    Body(request): Body<ExplainRequest>,
) -> Result<Json<Decision>, ApiError> {
    let vault = managed_vault(&state, &session, request.vault_id)?;
    let path = SecretPath::parse(request.path).map_err(|e| ApiError::BadRequest(format!("path: {e}")))?;
    let principal = Principal {
        kind: request.principal_type,
        id: request.principal_id,
    };
    let now = request.at.unwrap_or(session.context.now);
    // The reach a token issued to the principal now would carry.
    let (vault_ids, scopes) = match principal.kind {
        PrincipalType::User => {
            let known = state.projector.read(|m| {
                m.directory
                    .user(UserId(principal.id))
                    .is_some_and(|u| u.org_id == vault.org_id)
            });
            if !known {
                return Err(ApiError::NotFound(format!("no {principal} in this organization")));
            }
            (Vec::new(), None)
        }
        PrincipalType::Agent => {
            let agent = state
                .projector
                .read(|m| {
                    m.directory
                        .agent(AgentId(principal.id))
                        .filter(|a| a.org_id == vault.org_id)
                        .cloned()
                })
                .ok_or_else(|| ApiError::NotFound(format!("no {principal} in this organization")))?;
            let scopes: Vec<PathPattern> = super::agents::token_scopes(&state, &agent, now)
                .into_iter()
                .filter_map(|scope| PathPattern::parse(scope).ok())
                .collect();
            (agent.settings.vault_ids.clone(), Some(scopes))
        }
    };
    let token = TokenScope {
        vault_ids: &vault_ids,
        scopes: scopes
            .as_deref()
            .map_or(ScopeCeiling::Unrestricted, ScopeCeiling::Patterns),
    };
    let access = AccessRequest {
        principal,
        vault_id: vault.id,
        path: &path,
        permission: request.permission,
        client_ip: request.client_ip.unwrap_or(session.context.client_ip),
        now,
    };
    let decision = state.projector.read(|models| {
        let policies = models.access.policies_of(vault.id).map(|granted| &granted.policy);
        authorize(
            &token,
            &access,
            &VaultFacts {
                owner: vault.created_by,
            },
            policies,
        )
    });
    Ok(Json(decision))
}
