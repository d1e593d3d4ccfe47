//! Vaults: create, list, read and delete, within the caller's organization.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::VaultId;
use domain::authz::{Principal, PrincipalType};
use domain::change::DomainError;
use domain::vault::{self, Vault};
use serde::{Deserialize, Serialize};

use super::extract::{Body, PathParams};
use super::problem::ApiError;
use super::session::HumanSession;
use crate::app::AppState;
use crate::app::values::shred_vaults;

#[derive(Deserialize)]
pub struct CreateVaultRequest {
    name: String,
    description: Option<String>,
}

#[derive(Serialize)]
pub struct VaultResponse {
    id: VaultId,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    created_by: String,
    created_by_type: PrincipalType,
    created_at: DateTime<Utc>,
}

impl From<&Vault> for VaultResponse {
    fn from(vault: &Vault) -> Self {
        Self {
            id: vault.id,
            name: vault.name.clone(),
            description: vault.description.clone(),
            created_by: vault.created_by.id.to_string(),
            created_by_type: vault.created_by.kind,
            created_at: vault.created_at,
        }
    }
}

#[derive(Serialize)]
pub struct VaultListResponse {
    vaults: Vec<VaultResponse>,
}

pub async fn create(
    State(state): State<AppState>,
    session: HumanSession,
    Body(request): Body<CreateVaultRequest>,
) -> Result<(StatusCode, Json<VaultResponse>), ApiError> {
    let vault_id = VaultId::new();
    let change = vault::create_vault(vault::CreateVault {
        vault_id,
        org_id: session.user.org_id,
        name: request.name,
        description: request.description,
        created_by: Principal {
            kind: PrincipalType::User,
            id: session.user.id.0,
        },
    })?;
    // The key first: a vault in the log always has a key to seal its secrets with.
    state
        .envelope
        .create_vault_key(vault_id)
        .await
        .map_err(ApiError::internal)?;
    state.commands.execute(vec![change], &session.metadata()).await?;
    let vault = visible_vault(&state, &session, vault_id)?;
    Ok((StatusCode::CREATED, Json(VaultResponse::from(&vault))))
}

pub async fn list(State(state): State<AppState>, session: HumanSession) -> Json<VaultListResponse> {
    let vaults = state.projector.read(|models| {
        models
            .directory
            .vaults_of(session.user.org_id)
            .into_iter()
            .map(VaultResponse::from)
            .collect()
    });
    Json(VaultListResponse { vaults })
}

pub async fn get(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(vault_id): PathParams<VaultId>,
) -> Result<Json<VaultResponse>, ApiError> {
    Ok(Json(VaultResponse::from(&visible_vault(&state, &session, vault_id)?)))
}

pub async fn delete(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(vault_id): PathParams<VaultId>,
) -> Result<StatusCode, ApiError> {
    let owner = Principal {
        kind: PrincipalType::User,
        id: session.user.id.0,
    };
    // Asked before the keys go, since shredding cannot be undone; the decision asks again.
    if visible_vault(&state, &session, vault_id)?.created_by != owner {
        return Err(ApiError::Forbidden(ONLY_THE_OWNER_DELETES.into()));
    }
    shred_vaults(&state, [vault_id]).await?;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let vault = models.directory.vault(vault_id).ok_or(DomainError::NotFound("vault"))?;
            if vault.created_by != owner {
                return Err(DomainError::Forbidden(ONLY_THE_OWNER_DELETES.into()));
            }
            Ok(vec![vault::delete_vault(vault)])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

const ONLY_THE_OWNER_DELETES: &str = "only the vault's owner can delete it";

/// A vault of the caller's organization; any other vault is a 404, so vault ids of
/// other tenants cannot be probed.
pub(super) fn visible_vault(state: &AppState, session: &HumanSession, vault_id: VaultId) -> Result<Vault, ApiError> {
    state
        .projector
        .read(|models| models.directory.vault_in_org(vault_id, session.user.org_id).cloned())
        .ok_or_else(|| ApiError::NotFound("vault not found".into()))
}
