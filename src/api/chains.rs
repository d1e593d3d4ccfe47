//! The chain registry over HTTP: everyone signed in lists the enabled chains; platform
//! administrators (the config's `admins`) add, change and remove them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::change::DomainError;
use domain::evm_chain::{self, ChainSettings, EvmChain};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Body, PathParams};
use super::problem::ApiError;
use super::session::{Caller, HumanSession};
use crate::app::AppState;

use crate::app::chains::{configured, enabled_chain, enabled_chains, registry};

#[derive(Serialize)]
pub struct ChainResponse {
    id: Uuid,
    name: String,
    display_name: String,
    chain_id: u64,
    /// RPC URLs often carry a provider's API key: administrators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    rpc_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ws_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explorer_url: Option<String>,
    native_currency: String,
    is_testnet: bool,
    is_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<DateTime<Utc>>,
}

impl ChainResponse {
    fn new(chain: EvmChain, for_admin: bool) -> Self {
        let settings = chain.settings;
        Self {
            id: chain.id,
            name: settings.name,
            display_name: settings.display_name,
            chain_id: settings.chain_id,
            rpc_url: for_admin.then_some(settings.rpc_url),
            ws_url: settings.ws_url.filter(|_| for_admin),
            explorer_url: settings.explorer_url,
            native_currency: settings.native_currency,
            is_testnet: settings.is_testnet,
            is_enabled: settings.is_enabled,
            created_at: chain.created_at,
            updated_at: chain.updated_at,
        }
    }
}

#[derive(Serialize)]
pub struct ChainListResponse {
    chains: Vec<ChainResponse>,
}

/// GET /v1/chains: the enabled chains.
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<ChainListResponse> {
    let chains = enabled_chains(&state)
        .into_iter()
        .map(|chain| ChainResponse::new(chain, false))
        .collect();
    Json(ChainListResponse { chains })
}

/// GET /v1/chains/{identifier}: by name or decimal chain id.
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    PathParams(identifier): PathParams<String>,
) -> Result<Json<ChainResponse>, ApiError> {
    enabled_chain(&state, &identifier)
        .map(|chain| Json(ChainResponse::new(chain, false)))
        .ok_or_else(|| ApiError::NotFound(format!("no chain named {identifier:?}")))
}

fn require_admin(state: &AppState, session: &HumanSession) -> Result<(), ApiError> {
    if session.user.is_platform_admin(&state.config.admins) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "platform administrators only: an address of the config's admins once verified, or an account granted \
             with `keyward admin grant`"
                .into(),
        ))
    }
}

/// GET /v1/admin/chains: every chain, disabled ones and RPC URLs included.
pub async fn admin_list(
    State(state): State<AppState>,
    session: HumanSession,
) -> Result<Json<ChainListResponse>, ApiError> {
    require_admin(&state, &session)?;
    let chains = registry(&state)
        .into_iter()
        .map(|chain| ChainResponse::new(chain, true))
        .collect();
    Ok(Json(ChainListResponse { chains }))
}

#[derive(Deserialize)]
pub struct CreateChainRequest {
    name: String,
    display_name: String,
    chain_id: u64,
    rpc_url: Option<String>,
    ws_url: Option<String>,
    explorer_url: Option<String>,
    native_currency: Option<String>,
    is_testnet: Option<bool>,
    is_enabled: Option<bool>,
}

/// POST /v1/admin/chains
pub async fn create(
    State(state): State<AppState>,
    session: HumanSession,
    Body(request): Body<CreateChainRequest>,
) -> Result<(StatusCode, Json<ChainResponse>), ApiError> {
    require_admin(&state, &session)?;
    let settings = ChainSettings {
        name: request.name,
        display_name: request.display_name,
        chain_id: request.chain_id,
        rpc_url: request
            .rpc_url
            .ok_or_else(|| ApiError::BadRequest("rpc_url is required: keyward signs through it".into()))?,
        ws_url: request.ws_url,
        explorer_url: request.explorer_url,
        native_currency: request.native_currency.unwrap_or_else(|| "ETH".into()),
        is_testnet: request.is_testnet.unwrap_or(false),
        is_enabled: request.is_enabled.unwrap_or(true),
    };
    let configured = configured(&state);
    let id = Uuid::now_v7();
    state
        .commands
        .decide(&session.metadata(), |models| {
            let chains = models.chains.effective(&configured);
            Ok(vec![evm_chain::add(
                &chains,
                models.chains.version,
                id,
                settings.clone(),
            )?])
        })
        .await?;
    let chain = found(&state, id)?;
    Ok((StatusCode::CREATED, Json(ChainResponse::new(chain, true))))
}

fn found(state: &AppState, id: Uuid) -> Result<EvmChain, ApiError> {
    registry(state)
        .into_iter()
        .find(|chain| chain.id == id)
        .ok_or_else(|| ApiError::NotFound("chain not found".into()))
}

#[derive(Deserialize)]
pub struct UpdateChainRequest {
    display_name: Option<String>,
    rpc_url: Option<String>,
    ws_url: Option<String>,
    explorer_url: Option<String>,
    native_currency: Option<String>,
    is_testnet: Option<bool>,
    is_enabled: Option<bool>,
}

/// PUT /v1/admin/chains/{chain_id}: absent fields keep their value.
pub async fn update(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(id): PathParams<Uuid>,
    Body(request): Body<UpdateChainRequest>,
) -> Result<Json<ChainResponse>, ApiError> {
    require_admin(&state, &session)?;
    let configured = configured(&state);
    state
        .commands
        .decide(&session.metadata(), |models| {
            let chains = models.chains.effective(&configured);
            let chain = chains
                .iter()
                .find(|chain| chain.id == id)
                .ok_or(DomainError::NotFound("chain"))?;
            let current = chain.settings.clone();
            let settings = ChainSettings {
                display_name: request.display_name.clone().unwrap_or(current.display_name),
                rpc_url: request.rpc_url.clone().unwrap_or(current.rpc_url),
                ws_url: request.ws_url.clone().or(current.ws_url),
                explorer_url: request.explorer_url.clone().or(current.explorer_url),
                native_currency: request.native_currency.clone().unwrap_or(current.native_currency),
                is_testnet: request.is_testnet.unwrap_or(current.is_testnet),
                is_enabled: request.is_enabled.unwrap_or(current.is_enabled),
                ..current
            };
            Ok(vec![evm_chain::update(
                &chains,
                models.chains.version,
                chain,
                settings,
            )?])
        })
        .await?;
    Ok(Json(ChainResponse::new(found(&state, id)?, true)))
}

/// DELETE /v1/admin/chains/{chain_id}
pub async fn delete(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(id): PathParams<Uuid>,
) -> Result<StatusCode, ApiError> {
    require_admin(&state, &session)?;
    let configured = configured(&state);
    state
        .commands
        .decide(&session.metadata(), |models| {
            let chains = models.chains.effective(&configured);
            let chain = chains
                .iter()
                .find(|chain| chain.id == id)
                .ok_or(DomainError::NotFound("chain"))?;
            Ok(vec![evm_chain::remove(models.chains.version, chain)])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
