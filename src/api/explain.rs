//! POST /v1/authz/explain: for the humans who manage a vault, how an access would be
//! decided right now and by which layer, the same function that decides real requests.

use std::net::IpAddr;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::authz::{AccessRequest, Decision, Permission, Principal, PrincipalType};
use domain::{AgentId, SecretPath, UserId, VaultId};
use serde::Deserialize;
use uuid::Uuid;

use super::extract::Body;
use super::policies::managed_vault;
use super::problem::ApiError;
use super::session::HumanSession;
use crate::app::AppState;
use crate::app::reach::TokenReach;
use crate::app::reach::authorize_in;

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
    let access = AccessRequest {
        principal,
        vault_id: vault.id,
        path: &path,
        permission: request.permission,
        client_ip: request.client_ip.unwrap_or(session.context.client_ip),
        now,
    };
    let decision = state.projector.read(|models| {
        // The reach a token issued to the principal now would carry.
        let reach = match principal.kind {
            PrincipalType::User => models
                .directory
                .user(UserId(principal.id))
                .filter(|user| user.org_id == vault.org_id)
                .map(|_| TokenReach::of_human()),
            PrincipalType::Agent => models
                .directory
                .agent(AgentId(principal.id))
                .filter(|agent| agent.org_id == vault.org_id)
                .map(|agent| TokenReach::of_new_agent_token(models, agent, now)),
        }
        .ok_or_else(|| ApiError::NotFound(format!("no {principal} in this organization")))?;
        Ok::<_, ApiError>(authorize_in(models, &reach, &vault, &access))
    })?;
    Ok(Json(decision))
}
