//! Signing keys keyward provisions for an agent (`/v1/agents/{id}/signing-keys`): made
//! here, sealed into the log, never shown. A submission without `signing_key_path` signs
//! with the agent's active key. Humans of the agent's organization provision, rotate and
//! deactivate; they and the agent itself list.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::AgentId;
use domain::change::{Change, DomainError};
use domain::signing_key::{self, AgentSigningKeys, NewKey, SigningKey};
use intents::PrivateKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::extract::{Body, PathParams};
use super::problem::ApiError;
use super::secrets::{from_event_form, to_event_form};
use super::session::{Caller, HumanSession};

#[derive(Deserialize)]
pub struct CreateSigningKeyRequest {
    chain: String,
}

#[derive(Serialize)]
pub struct SigningKeyResponse {
    id: Uuid,
    agent_id: AgentId,
    chain: String,
    curve: String,
    public_key: String,
    address: String,
    key_version: u64,
    is_active: bool,
    created_at: DateTime<Utc>,
    rotated_at: Option<DateTime<Utc>>,
}

impl From<&SigningKey> for SigningKeyResponse {
    fn from(key: &SigningKey) -> Self {
        Self {
            id: key.id,
            agent_id: key.agent_id,
            chain: key.chain.clone(),
            curve: key.curve.clone(),
            public_key: key.public_key.clone(),
            address: key.address.clone(),
            key_version: key.key_version,
            is_active: key.is_active,
            created_at: key.created_at,
            rotated_at: key.rotated_at,
        }
    }
}

#[derive(Serialize)]
pub struct SigningKeyListResponse {
    keys: Vec<SigningKeyResponse>,
}

/// The agent, if it is in the human's organization; anything else is not found.
fn agent_of_org(state: &AppState, session: &HumanSession, agent_id: AgentId) -> Result<(), ApiError> {
    let ours = state.projector.read(|models| {
        models
            .directory
            .agent(agent_id)
            .is_some_and(|agent| agent.org_id == session.user.org_id)
    });
    ours.then_some(())
        .ok_or_else(|| ApiError::NotFound("agent not found".into()))
}

/// POST /v1/agents/{agent_id}/signing-keys
pub async fn create(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(agent_id): PathParams<AgentId>,
    Body(request): Body<CreateSigningKeyRequest>,
) -> Result<(StatusCode, Json<SigningKeyResponse>), ApiError> {
    agent_of_org(&state, &session, agent_id)?;
    let chain = signing_key::family(&request.chain)?;
    let key_id = provision(&state, &session, agent_id, chain, signing_key::provision).await?;
    Ok((StatusCode::CREATED, Json(stored(&state, agent_id, key_id)?)))
}

/// POST /v1/agents/{agent_id}/signing-keys/{chain}/rotate: a new key; the old one stops
/// signing and stays sealed.
pub async fn rotate(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams((agent_id, chain)): PathParams<(AgentId, String)>,
) -> Result<Json<SigningKeyResponse>, ApiError> {
    agent_of_org(&state, &session, agent_id)?;
    let chain = signing_key::family(&chain)?;
    let key_id = provision(&state, &session, agent_id, chain, signing_key::rotate).await?;
    Ok(Json(stored(&state, agent_id, key_id)?))
}

/// DELETE /v1/agents/{agent_id}/signing-keys/{chain}
pub async fn deactivate(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams((agent_id, chain)): PathParams<(AgentId, String)>,
) -> Result<StatusCode, ApiError> {
    agent_of_org(&state, &session, agent_id)?;
    let chain = signing_key::family(&chain)?;
    state
        .commands
        .decide(&session.metadata(), |models| {
            signing_key::deactivate(models.signing_keys.of(agent_id), agent_id, chain).map(|change| vec![change])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /v1/agents/{agent_id}/signing-keys: oldest first; never a private key.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(agent_id): PathParams<AgentId>,
) -> Result<Json<SigningKeyListResponse>, ApiError> {
    match &caller {
        Caller::Human(session) => agent_of_org(&state, session, agent_id)?,
        Caller::Agent(session) if session.agent.id == agent_id => {}
        Caller::Agent(_) => return Err(ApiError::NotFound("agent not found".into())),
    }
    let keys = state.projector.read(|models| {
        models
            .signing_keys
            .of(agent_id)
            .keys
            .iter()
            .map(SigningKeyResponse::from)
            .collect()
    });
    Ok(Json(SigningKeyListResponse { keys }))
}

type Decide = fn(&AgentSigningKeys, AgentId, &str, NewKey) -> Result<Change, DomainError>;

/// Makes a key, seals it for the version it will have, and records it as `decide`
/// allows; the new key's id.
async fn provision(
    state: &AppState,
    session: &HumanSession,
    agent_id: AgentId,
    chain: &'static str,
    decide: Decide,
) -> Result<Uuid, ApiError> {
    let key = PrivateKey::generate().map_err(ApiError::internal)?;
    let version = state
        .projector
        .read(|models| signing_key::version_for(models.signing_keys.of(agent_id), chain));
    let sealed = state
        .envelope
        .seal_signing_key(agent_id, chain, version, &key.secret_bytes())
        .await
        .map_err(ApiError::internal)?;
    let new_key = NewKey {
        key_id: Uuid::now_v7(),
        public_key: key.public_key_hex(),
        address: format!("{:#x}", key.address()),
        sealed: to_event_form(&sealed)?,
    };
    drop(key);
    let key_id = new_key.key_id;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let keys = models.signing_keys.of(agent_id);
            // Sealing bound the version; a key recorded meanwhile took it.
            if signing_key::version_for(keys, chain) != version {
                return Err(DomainError::Conflict(
                    "the agent's signing keys changed concurrently; retry".into(),
                ));
            }
            decide(keys, agent_id, chain, new_key.clone()).map(|change| vec![change])
        })
        .await?;
    Ok(key_id)
}

fn stored(state: &AppState, agent_id: AgentId, key_id: Uuid) -> Result<SigningKeyResponse, ApiError> {
    state
        .projector
        .read(|models| {
            models
                .signing_keys
                .of(agent_id)
                .keys
                .iter()
                .find(|key| key.id == key_id)
                .map(SigningKeyResponse::from)
        })
        .ok_or_else(|| ApiError::internal("a provisioned signing key is missing from the read model"))
}

/// The agent's active key for EVM chains, opened for one signature, and its name in the
/// log; none if the agent has no active key.
pub(super) async fn active_key(state: &AppState, agent_id: AgentId) -> Result<Option<(PrivateKey, String)>, ApiError> {
    let active = state
        .projector
        .read(|models| models.signing_keys.of(agent_id).active(signing_key::ETHEREUM).cloned());
    let Some(active) = active else {
        return Ok(None);
    };
    let plaintext = state
        .envelope
        .open_signing_key(
            agent_id,
            &active.chain,
            active.key_version,
            &from_event_form(&active.sealed)?,
        )
        .await
        .map_err(ApiError::internal)?;
    let key = PrivateKey::from_bytes(&plaintext).map_err(ApiError::internal)?;
    let name = format!("signing-keys/{}/v{}", active.chain, active.key_version);
    Ok(Some((key, name)))
}
