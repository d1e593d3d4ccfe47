//! Signing keys keyward holds for an agent (`/v1/agents/{id}/signing-keys`): made here
//! or imported, sealed into the log, shown only to a human who re-enters their password
//! to export one. A submission without `signing_key_path` signs with the agent's active
//! key. Humans of the agent's organization provision, rotate, deactivate, import and
//! export; they and the agent itself list keys and read balances.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use domain::AgentId;
use domain::change::{Change, DomainError};
use domain::signing_key::{self, AgentSigningKeys, NewKey, SigningKey};
use domain::wei::Wei;
use intents::PrivateKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::agents::{agent_or_its_humans, visible_agent};
use super::auth::confirm_password;
use super::extract::{Body, PathParams, QueryParams};
use super::problem::ApiError;
use super::session::{Caller, HumanSession};
use crate::app::AppState;
use crate::app::chains::{enabled_chain, enabled_chains};
use crate::app::values::{from_event_form, to_event_form};

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

/// POST /v1/agents/{agent_id}/signing-keys
pub async fn create(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(agent_id): PathParams<AgentId>,
    Body(request): Body<CreateSigningKeyRequest>,
) -> Result<(StatusCode, Json<SigningKeyResponse>), ApiError> {
    visible_agent(&state, &session, agent_id)?;
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
    visible_agent(&state, &session, agent_id)?;
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
    visible_agent(&state, &session, agent_id)?;
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
    agent_or_its_humans(&state, &caller, agent_id)?;
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

/// Checks that a private key of the agent's `chain` family may cross the API for this
/// human, in either direction; the family.
async fn confirmed_for(
    state: &AppState,
    session: &HumanSession,
    agent_id: AgentId,
    chain: &str,
    headers: &HeaderMap,
) -> Result<&'static str, ApiError> {
    visible_agent(state, session, agent_id)?;
    let family = signing_key::family(chain)?;
    // The password a human re-enters before a private key crosses the API.
    confirm_password(state, session, headers, "signing key").await?;
    Ok(family)
}

#[derive(Serialize)]
pub struct ExportedSigningKey {
    agent_id: AgentId,
    chain: String,
    curve: String,
    public_key: String,
    address: String,
    key_version: u64,
    private_key: Zeroizing<String>,
}

/// POST /v1/agents/{agent_id}/signing-keys/{chain}/export: the active key's private key,
/// for a human who re-entered their password; recorded.
pub async fn export(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams((agent_id, chain)): PathParams<(AgentId, String)>,
    headers: HeaderMap,
) -> Result<Json<ExportedSigningKey>, ApiError> {
    let chain = confirmed_for(&state, &session, agent_id, &chain, &headers).await?;
    let by = session.user.id;
    let (_, key) = state
        .commands
        .decide_with(&session.metadata(), |models| {
            signing_key::export(models.signing_keys.of(agent_id), agent_id, chain, by)
                .map(|(change, key)| (vec![change], key))
        })
        .await?;
    let opened = open(&state, &key).await?;
    Ok(Json(ExportedSigningKey {
        agent_id,
        chain: key.chain,
        curve: key.curve,
        public_key: key.public_key,
        address: key.address,
        key_version: key.key_version,
        private_key: prefixed_hex(&opened.secret_bytes()),
    }))
}

/// `0x` and the key's hex digits, in one allocation of the final size: no copy of the key
/// is left behind unzeroized.
fn prefixed_hex(secret: &[u8]) -> Zeroizing<String> {
    let digits = Zeroizing::new(intents::hex::encode(secret));
    let mut text = Zeroizing::new(String::with_capacity(2 + digits.len()));
    text.push_str("0x");
    text.push_str(&digits);
    text
}

#[derive(Deserialize)]
pub struct ImportKeyRequest {
    private_key: Zeroizing<String>,
    format: Option<String>,
}

/// POST /v1/agents/{agent_id}/signing-keys/{chain}/import: a human's own key becomes the
/// agent's active one (the one it replaces is retired).
pub async fn import(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams((agent_id, chain)): PathParams<(AgentId, String)>,
    headers: HeaderMap,
    Body(request): Body<ImportKeyRequest>,
) -> Result<(StatusCode, Json<SigningKeyResponse>), ApiError> {
    let chain = confirmed_for(&state, &session, agent_id, &chain, &headers).await?;
    if request.format.as_deref().is_some_and(|format| format != "hex") {
        return Err(ApiError::BadRequest(
            "format: keyward imports EVM keys as hex only".into(),
        ));
    }
    let key = PrivateKey::parse_hex(&request.private_key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let key_id = record(&state, &session, agent_id, chain, key, signing_key::import).await?;
    Ok((StatusCode::CREATED, Json(stored(&state, agent_id, key_id)?)))
}

#[derive(Deserialize)]
pub struct BalanceQuery {
    /// The network to ask; the registry's only enabled chain when omitted.
    network: Option<String>,
}

#[derive(Serialize)]
pub struct SigningKeyBalanceResponse {
    chain: String,
    address: String,
    balance_wei: String,
    balance_display: String,
}

/// GET /v1/agents/{agent_id}/signing-keys/{chain}/balance: the active key's native balance.
/// `{chain}` is a family (`ethereum`, on the one enabled chain or `?network=`) or a
/// registry chain's name or id.
pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((agent_id, chain)): PathParams<(AgentId, String)>,
    QueryParams(query): QueryParams<BalanceQuery>,
) -> Result<Json<SigningKeyBalanceResponse>, ApiError> {
    agent_or_its_humans(&state, &caller, agent_id)?;
    // A registry chain named in the path or by ?network=; for the family, the only one.
    let named = match (signing_key::family(&chain), query.network) {
        (Ok(_), network) => network,
        (Err(_), _) => Some(chain),
    };
    let network = match named {
        Some(name) => enabled_chain(&state, &name)
            .ok_or_else(|| ApiError::NotFound(format!("no enabled chain named {name:?}")))?,
        None => match <[_; 1]>::try_from(enabled_chains(&state)) {
            Ok([only]) => only,
            Err(enabled) => {
                return Err(ApiError::BadRequest(format!(
                    "{} chains are enabled: name one with ?network=",
                    enabled.len()
                )));
            }
        },
    };
    let address = state
        .projector
        .read(|models| {
            models
                .signing_keys
                .of(agent_id)
                .active(signing_key::ETHEREUM)
                .map(|key| key.address.clone())
        })
        .ok_or_else(|| ApiError::NotFound("the agent has no active signing key".into()))?;
    let parsed: intents::Address = address.parse().map_err(ApiError::internal)?;
    let balance = state
        .rpc
        .rpc(&network.settings.rpc_url)
        .balance(parsed)
        .await
        .map_err(|e| ApiError::BadGateway(e.to_string()))?;
    let balance_display = u128::try_from(balance)
        .map(|wei| Wei::from_wei(wei).to_string())
        .unwrap_or_else(|_| balance.to_string());
    Ok(Json(SigningKeyBalanceResponse {
        chain: network.settings.name,
        address,
        balance_wei: balance.to_string(),
        balance_display,
    }))
}

type Decide = fn(&AgentSigningKeys, AgentId, &str, NewKey) -> Result<Change, DomainError>;

/// Makes a key and records it as `decide` allows; the new key's id.
async fn provision(
    state: &AppState,
    session: &HumanSession,
    agent_id: AgentId,
    chain: &'static str,
    decide: Decide,
) -> Result<Uuid, ApiError> {
    let key = PrivateKey::generate().map_err(ApiError::internal)?;
    record(state, session, agent_id, chain, key, decide).await
}

/// Seals `key` for the version it will have and records it as `decide` allows; the
/// key's id. The key is zeroized when this returns.
async fn record(
    state: &AppState,
    session: &HumanSession,
    agent_id: AgentId,
    chain: &'static str,
    key: PrivateKey,
    decide: Decide,
) -> Result<Uuid, ApiError> {
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
    let key = open(state, &active).await?;
    let name = format!("signing-keys/{}/v{}", active.chain, active.key_version);
    Ok(Some((key, name)))
}

/// The private key of `key`, opened for one use, with the address it was recorded with.
async fn open(state: &AppState, key: &SigningKey) -> Result<PrivateKey, ApiError> {
    let plaintext = state
        .envelope
        .open_signing_key(
            key.agent_id,
            &key.chain,
            key.key_version,
            &from_event_form(&key.sealed)?,
        )
        .await
        .map_err(ApiError::internal)?;
    let address = key.address.parse().map_err(ApiError::internal)?;
    let opened = PrivateKey::from_bytes(&plaintext).map_err(ApiError::internal)?;
    Ok(opened.known_to_sign_for(address))
}
