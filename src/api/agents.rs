//! Agents over HTTP: registered and managed by humans of their org, signing in with their
//! API key for short-lived tokens.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use domain::agent::{self, Agent, AgentKey, AgentSettings, RawSigningConsent};
use domain::authz::PathPattern;
use domain::change::{Change, DomainError};
use domain::events::AgentAuthenticated;
use domain::evm_chain::EvmChain;
use domain::message_signing::{Eip712DomainEntry, Eip712Policy};
use domain::transaction::Ledger;
use domain::wei::Wei;
use domain::{ActorType, AgentId, ExpectedVersion, OrgId, VaultId};
use projections::ReadModels;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::auth::confirm_password;
use super::extract::{Body, PathParams, RequestContext};
use super::problem::ApiError;
use super::session::{AgentSession, Caller, HumanSession};
use crate::app::AppState;
use crate::auth::{ApiKey, ApiKeyKind, PrincipalType, TokenRequest, TokenUse};

/// The body of POST /v1/agents and of PATCH/PUT /v1/agents/{id}: on create, absent
/// fields take their defaults; on update, absent fields keep their value. The fields the
/// spec makes nullable are cleared by `null`; a `null` elsewhere counts as absent.
#[derive(Deserialize, Default)]
pub struct AgentRequest {
    name: Option<String>,
    description: Option<String>,
    scopes: Option<Vec<String>>,
    vault_ids: Option<Vec<VaultId>>,
    #[serde(default, deserialize_with = "absent_or_null")]
    token_ttl_seconds: Option<Option<u32>>,
    intents_api_enabled: Option<bool>,
    expires_at: Option<DateTime<Utc>>,
    tx_to_allowlist: Option<Vec<String>>,
    tx_max_value: Option<String>,
    tx_daily_limit: Option<String>,
    /// Deprecated aliases the 1claw SDKs still send.
    tx_max_value_eth: Option<String>,
    tx_daily_limit_eth: Option<String>,
    tx_allowed_chains: Option<Vec<String>>,
    tx_token_allowlist: Option<Vec<String>>,
    /// Per chain name or id, a decimal amount of the chain's native currency.
    #[serde(default, deserialize_with = "absent_or_null")]
    tx_overhead_budget: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "absent_or_null")]
    tx_max_per_day: Option<Option<u32>>,
    message_signing_enabled: Option<bool>,
    raw_signing_enabled: Option<bool>,
    /// [`RAW_SIGNING_ACKNOWLEDGEMENT`], word for word, with `raw_signing_enabled: true`.
    raw_signing_acknowledgement: Option<String>,
    eip712_default_policy: Option<Eip712Policy>,
    eip712_domain_allowlist: Option<Vec<Eip712DomainEntry>>,
    is_active: Option<bool>,
}

impl AgentRequest {
    /// The settings this request asks for, on top of `base`.
    fn settings(self, base: AgentSettings, state: &AppState, org: OrgId) -> Result<AgentSettings, ApiError> {
        let scopes = match self.scopes {
            Some(scopes) => scopes
                .into_iter()
                .map(|scope| PathPattern::parse(scope).map_err(|e| ApiError::BadRequest(format!("scopes: {e}"))))
                .collect::<Result<_, _>>()?,
            None => base.scopes,
        };
        let vault_ids = self.vault_ids.unwrap_or(base.vault_ids);
        let foreign = state.projector.read(|models| {
            vault_ids
                .iter()
                .find(|id| models.directory.vault_in_org(**id, org).is_none())
                .copied()
        });
        if let Some(vault) = foreign {
            return Err(ApiError::BadRequest(format!(
                "vault_ids: no vault {vault} in this organization"
            )));
        }
        let tx_allowed_chains = self.tx_allowed_chains.unwrap_or(base.tx_allowed_chains);
        let tx_overhead_budget = match self.tx_overhead_budget {
            Some(None) => BTreeMap::new(),
            Some(Some(budget)) => budget
                .into_iter()
                .map(|(chain, amount)| {
                    let budget = amount_of(&format!("tx_overhead_budget.{chain}"), &amount)?;
                    Ok((chain, budget))
                })
                .collect::<Result<_, ApiError>>()?,
            None => base.tx_overhead_budget,
        };
        let named_chains = [
            ("tx_allowed_chains", tx_allowed_chains.iter().collect::<Vec<_>>()),
            ("tx_overhead_budget", tx_overhead_budget.keys().collect()),
        ];
        for (field, chains) in named_chains {
            if let Some(unknown) = chains
                .into_iter()
                .find(|chain| crate::app::chains::enabled_chain(state, chain).is_none())
            {
                return Err(ApiError::BadRequest(format!(
                    "{field}: no chain named {unknown:?} is configured"
                )));
            }
        }
        Ok(AgentSettings {
            name: self.name.unwrap_or(base.name),
            description: self.description.or(base.description),
            scopes,
            vault_ids,
            token_ttl_seconds: self.token_ttl_seconds.unwrap_or(base.token_ttl_seconds),
            intents_api_enabled: self.intents_api_enabled.unwrap_or(base.intents_api_enabled),
            expires_at: self.expires_at.or(base.expires_at),
            tx_to_allowlist: self.tx_to_allowlist.unwrap_or(base.tx_to_allowlist),
            tx_max_value: amount("tx_max_value", self.tx_max_value.or(self.tx_max_value_eth))?.or(base.tx_max_value),
            tx_daily_limit: amount("tx_daily_limit", self.tx_daily_limit.or(self.tx_daily_limit_eth))?
                .or(base.tx_daily_limit),
            tx_allowed_chains,
            tx_token_allowlist: self.tx_token_allowlist.unwrap_or(base.tx_token_allowlist),
            tx_overhead_budget,
            tx_max_per_day: self.tx_max_per_day.unwrap_or(base.tx_max_per_day),
            message_signing_enabled: self.message_signing_enabled.unwrap_or(base.message_signing_enabled),
            raw_signing_enabled: self.raw_signing_enabled.unwrap_or(base.raw_signing_enabled),
            eip712_default_policy: self.eip712_default_policy.unwrap_or(base.eip712_default_policy),
            eip712_domain_allowlist: self.eip712_domain_allowlist.unwrap_or(base.eip712_domain_allowlist),
        })
    }
}

/// A field given, possibly as `null` (`Some(None)`), told apart from one left out (`None`,
/// by `#[serde(default)]`).
fn absent_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// What `raw_signing_acknowledgement` must say when a request turns raw digest signing on.
const RAW_SIGNING_ACKNOWLEDGEMENT: &str = "RAW SIGNING HANDS OVER THE KEY";

/// A request's ask to turn raw digest signing (`eip712_digest`) on, taken before the
/// request is spent on the settings.
struct RawSigningAsk {
    turns_on: bool,
    acknowledgement: Option<String>,
}

impl RawSigningAsk {
    fn of(request: &mut AgentRequest) -> Self {
        Self {
            turns_on: request.raw_signing_enabled == Some(true),
            acknowledgement: request.raw_signing_acknowledgement.take(),
        }
    }

    /// The human's consent, if the request turns raw signing on for an agent where it
    /// `was` off. An agent that has any digest signed can sign any transaction with its
    /// keys, outside every guardrail: the human acknowledges that word for word and
    /// re-enters their password (X-Auth-Confirm), as for exporting the keys; a missing
    /// or wrong password is audited as an authentication failure.
    async fn consent(
        self,
        state: &AppState,
        session: &HumanSession,
        headers: &HeaderMap,
        was: bool,
    ) -> Result<Option<RawSigningConsent>, ApiError> {
        if was || !self.turns_on {
            return Ok(None);
        }
        if self.acknowledgement.as_deref() != Some(RAW_SIGNING_ACKNOWLEDGEMENT) {
            return Err(ApiError::BadRequest(format!(
                "raw_signing_acknowledgement must be \"{RAW_SIGNING_ACKNOWLEDGEMENT}\" to turn raw_signing_enabled \
                 on: an agent that has any digest signed can sign any transaction with its keys, outside every \
                 guardrail"
            )));
        }
        confirm_password(state, session, headers, "raw signing").await?;
        Ok(Some(RawSigningConsent { by: session.user.id }))
    }
}

fn amount(field: &str, text: Option<String>) -> Result<Option<Wei>, ApiError> {
    text.map(|text| amount_of(field, &text)).transpose()
}

fn amount_of(field: &str, text: &str) -> Result<Wei, ApiError> {
    Wei::from_eth_str(text).map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))
}

#[derive(Serialize)]
pub struct AgentResponse {
    id: AgentId,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    auth_method: &'static str,
    scopes: Vec<String>,
    is_active: bool,
    intents_api_enabled: bool,
    shroud_enabled: bool,
    tx_to_allowlist: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_max_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_daily_limit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_max_value_eth: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_daily_limit_eth: Option<String>,
    tx_allowed_chains: Vec<String>,
    tx_token_allowlist: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_overhead_budget: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_max_per_day: Option<u32>,
    message_signing_enabled: bool,
    raw_signing_enabled: bool,
    eip712_default_policy: Eip712Policy,
    eip712_domain_allowlist: Vec<Eip712DomainEntry>,
    token_ttl_seconds: Option<u32>,
    vault_ids: Vec<VaultId>,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_active_at: Option<DateTime<Utc>>,
    /// The chains it has provisioned signing keys for.
    signing_chains: Vec<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

/// What an agent with the Intents API has used of its daily limits, as each limit counts
/// it: value and fees over the rolling 24 hours, transactions in the UTC day.
#[derive(Serialize)]
struct Usage {
    tx_spent_today: String,
    /// The deprecated alias, as for the limits.
    tx_spent_today_eth: String,
    tx_count_today: u64,
    /// Per chain name, where its fees are not zero.
    tx_overhead_today_by_chain: BTreeMap<String, String>,
}

impl Usage {
    fn of(models: &ReadModels, agent: &Agent, chains: &[EvmChain], now: DateTime<Utc>) -> Option<Self> {
        if !agent.settings.intents_api_enabled {
            return None;
        }
        let transactions = &models.transactions;
        let ledger = Ledger::new(transactions.history(agent.id), transactions.nonces(), &[]);
        let spent = ledger.spent_before(now).to_eth_string();
        let tx_overhead_today_by_chain = chains
            .iter()
            .map(|chain| (chain, ledger.fees_before(now, chain.settings.chain_id)))
            .filter(|(_, fees)| !fees.is_zero())
            .map(|(chain, fees)| (chain.settings.name.clone(), fees.to_eth_string()))
            .collect();
        Some(Self {
            tx_spent_today: spent.clone(),
            tx_spent_today_eth: spent,
            tx_count_today: ledger.signed_today(now),
            tx_overhead_today_by_chain,
        })
    }
}

impl From<&Agent> for AgentResponse {
    fn from(agent: &Agent) -> Self {
        let settings = &agent.settings;
        let eth = |wei: Option<Wei>| wei.map(Wei::to_eth_string);
        Self {
            id: agent.id,
            name: settings.name.clone(),
            description: settings.description.clone(),
            auth_method: "api_key",
            scopes: settings.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            is_active: agent.is_active,
            intents_api_enabled: settings.intents_api_enabled,
            shroud_enabled: false,
            tx_to_allowlist: settings.tx_to_allowlist.clone(),
            tx_max_value: eth(settings.tx_max_value),
            tx_daily_limit: eth(settings.tx_daily_limit),
            tx_max_value_eth: eth(settings.tx_max_value),
            tx_daily_limit_eth: eth(settings.tx_daily_limit),
            tx_allowed_chains: settings.tx_allowed_chains.clone(),
            tx_token_allowlist: settings.tx_token_allowlist.clone(),
            tx_overhead_budget: (!settings.tx_overhead_budget.is_empty()).then(|| {
                settings
                    .tx_overhead_budget
                    .iter()
                    .map(|(chain, budget)| (chain.clone(), budget.to_eth_string()))
                    .collect()
            }),
            tx_max_per_day: settings.tx_max_per_day,
            message_signing_enabled: settings.message_signing_enabled,
            raw_signing_enabled: settings.raw_signing_enabled,
            eip712_default_policy: settings.eip712_default_policy,
            eip712_domain_allowlist: settings.eip712_domain_allowlist.clone(),
            token_ttl_seconds: settings.token_ttl_seconds,
            vault_ids: settings.vault_ids.clone(),
            created_at: agent.created_at,
            expires_at: settings.expires_at,
            last_active_at: agent.last_active_at,
            signing_chains: Vec::new(),
            usage: None,
        }
    }
}

impl AgentResponse {
    /// The agent as its humans see it at `now`: with its provisioned keys' chains and
    /// what it used of its limits.
    fn read(models: &ReadModels, agent: &Agent, chains: &[EvmChain], now: DateTime<Utc>) -> Self {
        Self {
            signing_chains: models.signing_keys.of(agent.id).active_chains(),
            usage: Usage::of(models, agent, chains, now),
            ..Self::from(agent)
        }
    }
}

/// [`AgentResponse::read`] for one agent of the session's org.
fn shown(state: &AppState, session: &HumanSession, agent_id: AgentId) -> Result<AgentResponse, ApiError> {
    let chains = crate::app::chains::registry(state);
    let agent = visible_agent(state, session, agent_id)?;
    let now = session.context.now;
    Ok(state
        .projector
        .read(|models| AgentResponse::read(models, &agent, &chains, now)))
}

#[derive(Serialize)]
pub struct AgentCreatedResponse {
    pub(super) agent: AgentResponse,
    pub(super) api_key: String,
}

#[derive(Serialize)]
pub struct AgentListResponse {
    agents: Vec<AgentResponse>,
}

/// A fresh agent key: the plaintext for the one response that shows it, the rest to keep.
pub(super) fn new_key() -> Result<(ApiKey, AgentKey), ApiError> {
    let key = ApiKey::generate(ApiKeyKind::Agent).map_err(ApiError::internal)?;
    let kept = AgentKey {
        key_id: Uuid::now_v7(),
        key_hash: key.hash().as_str().to_owned(),
        key_prefix: key.prefix().to_owned(),
    };
    Ok((key, kept))
}

pub async fn create(
    State(state): State<AppState>,
    session: HumanSession,
    headers: HeaderMap,
    Body(mut request): Body<AgentRequest>,
) -> Result<(StatusCode, Json<AgentCreatedResponse>), ApiError> {
    let name = request
        .name
        .clone()
        .ok_or_else(|| ApiError::BadRequest("name is required".into()))?;
    let raw_signing = RawSigningAsk::of(&mut request);
    let settings = request.settings(AgentSettings::named(name, None), &state, session.user.org_id)?;
    let consent = raw_signing.consent(&state, &session, &headers, false).await?;
    let (key, kept) = new_key()?;
    let agent_id = AgentId::new();
    let command = agent::RegisterAgent {
        agent_id,
        org_id: session.user.org_id,
        created_by: session.user.id,
        settings,
        key: kept,
    };
    let change = agent::register_with(command, consent)?;
    state.commands.execute(vec![change], &session.metadata()).await?;
    let response = AgentCreatedResponse {
        agent: shown(&state, &session, agent_id)?,
        api_key: key.expose_secret().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(response)))
}

pub async fn list(State(state): State<AppState>, session: HumanSession) -> Json<AgentListResponse> {
    let chains = crate::app::chains::registry(&state);
    let now = session.context.now;
    let agents = state.projector.read(|models| {
        models
            .directory
            .agents_of(session.user.org_id)
            .into_iter()
            .map(|agent| AgentResponse::read(models, agent, &chains, now))
            .collect()
    });
    Json(AgentListResponse { agents })
}

pub async fn get(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(agent_id): PathParams<AgentId>,
) -> Result<Json<AgentResponse>, ApiError> {
    Ok(Json(shown(&state, &session, agent_id)?))
}

pub async fn update(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(agent_id): PathParams<AgentId>,
    headers: HeaderMap,
    Body(mut request): Body<AgentRequest>,
) -> Result<Json<AgentResponse>, ApiError> {
    let current = visible_agent(&state, &session, agent_id)?;
    let is_active = request.is_active.unwrap_or(current.is_active);
    let raw_signing = RawSigningAsk::of(&mut request);
    let settings = request.settings(current.settings.clone(), &state, session.user.org_id)?;
    // Asked of the agent as it was read; the decision holds it to the agent as it is.
    let was = current.settings.raw_signing_enabled;
    let consent = raw_signing.consent(&state, &session, &headers, was).await?;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let agent = models.directory.agent(agent_id).ok_or(DomainError::NotFound("agent"))?;
            Ok(vec![agent::update(agent, settings.clone(), is_active, consent)?])
        })
        .await?;
    Ok(Json(shown(&state, &session, agent_id)?))
}

/// DELETE /v1/agents/{id}: the agent is deactivated; its tokens stop working at once.
pub async fn deactivate(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(agent_id): PathParams<AgentId>,
) -> Result<StatusCode, ApiError> {
    visible_agent(&state, &session, agent_id)?;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let agent = models.directory.agent(agent_id).ok_or(DomainError::NotFound("agent"))?;
            Ok(vec![agent::deactivate(agent)])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct AgentKeyRotatedResponse {
    api_key: String,
}

pub async fn rotate_key(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(agent_id): PathParams<AgentId>,
) -> Result<Json<AgentKeyRotatedResponse>, ApiError> {
    visible_agent(&state, &session, agent_id)?;
    let (key, kept) = new_key()?;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let agent = models.directory.agent(agent_id).ok_or(DomainError::NotFound("agent"))?;
            Ok(vec![agent::rotate_key(agent, kept.clone())])
        })
        .await?;
    Ok(Json(AgentKeyRotatedResponse {
        api_key: key.expose_secret().to_owned(),
    }))
}

/// The scope ceiling of a new token (`Access::token_scopes`), on the read models as they stand.
pub(super) fn token_scopes(state: &AppState, agent: &Agent, now: DateTime<Utc>) -> Vec<String> {
    state.projector.read(|models| models.access.token_scopes(agent, now))
}

/// An agent of the caller's org; any other is a 404.
pub(super) fn visible_agent(state: &AppState, session: &HumanSession, agent_id: AgentId) -> Result<Agent, ApiError> {
    state
        .projector
        .read(|models| {
            models
                .directory
                .agent(agent_id)
                .filter(|a| a.org_id == session.user.org_id)
                .cloned()
        })
        .ok_or_else(|| ApiError::NotFound("agent not found".into()))
}

/// The agent itself, or a human of its org; anyone else is a 404.
pub(super) fn agent_or_its_humans(state: &AppState, caller: &Caller, agent_id: AgentId) -> Result<(), ApiError> {
    match caller {
        Caller::Human(session) => visible_agent(state, session, agent_id).map(drop),
        Caller::Agent(session) if session.agent.id == agent_id => Ok(()),
        Caller::Agent(_) => Err(ApiError::NotFound("agent not found".into())),
    }
}

#[derive(Serialize)]
pub struct AgentSelfResponse {
    id: AgentId,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    org_id: OrgId,
    scopes: Vec<String>,
    is_active: bool,
    intents_api_enabled: bool,
    shroud_enabled: bool,
    created_by: Uuid,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_active_at: Option<DateTime<Utc>>,
}

pub async fn me(session: AgentSession) -> Json<AgentSelfResponse> {
    let agent = &session.agent;
    Json(AgentSelfResponse {
        id: agent.id,
        name: agent.settings.name.clone(),
        description: agent.settings.description.clone(),
        org_id: agent.org_id,
        scopes: agent.settings.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        is_active: agent.is_active,
        intents_api_enabled: agent.settings.intents_api_enabled,
        shroud_enabled: false,
        created_by: agent.created_by.0,
        created_at: agent.created_at,
        expires_at: agent.settings.expires_at,
        last_active_at: agent.last_active_at,
    })
}

#[derive(Deserialize)]
pub struct AgentTokenRequest {
    api_key: String,
    agent_id: Option<AgentId>,
}

/// The spec's `TokenResponse`, with the agent and the vaults its token is bound to (the
/// token's `vault_ids` claim, empty for every vault of the org): what 1claw's integrations
/// signing in with the key alone take as their agent and default vault (tests/langchain_http.rs).
#[derive(Serialize)]
pub struct AgentTokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    agent_id: AgentId,
    vault_ids: Vec<VaultId>,
}

/// POST /v1/auth/agent-token: an agent's API key for a short-lived token carrying its
/// scopes and vault binding. Every refusal is the same 401 and is audited.
pub async fn token(
    State(state): State<AppState>,
    context: RequestContext,
    Body(request): Body<AgentTokenRequest>,
) -> Result<Json<AgentTokenResponse>, ApiError> {
    // A key rotated or revoked through another replica must already be refused here.
    state.projector.catch_up().await.map_err(ApiError::internal)?;
    let presented = ApiKey::parse(&request.api_key).filter(|key| key.kind() == ApiKeyKind::Agent);
    let agent = presented.as_ref().and_then(|key| {
        state
            .projector
            .read(|models| models.directory.agent_by_key_hash(key.hash().as_str()).cloned())
    });
    let refusal = match &agent {
        None => Some("unknown API key"),
        Some(agent) if request.agent_id.is_some_and(|id| id != agent.id) => Some("API key of another agent"),
        Some(agent) if !agent.can_authenticate(context.now) => Some("agent deactivated or expired"),
        Some(_) => None,
    };
    let agent = match (agent, refusal) {
        (Some(agent), None) => agent,
        (agent, reason) => {
            let principal = agent.as_ref().map(|a| domain::authz::Principal::agent(a.id));
            let org = agent.as_ref().map(|a| a.org_id);
            super::auth::record_failure(&state, &context, principal, org, reason.unwrap_or_default()).await?;
            return Err(ApiError::Unauthorized);
        }
    };

    let metadata = context.metadata(ActorType::Agent, Some(agent.id.to_string()), Some(agent.org_id));
    let authenticated = AgentAuthenticated {
        agent_id: agent.id,
        key_id: agent.key.key_id,
    };
    let change = Change::new(agent::agent_stream(agent.id), ExpectedVersion::Any, authenticated);
    state.commands.execute(vec![change], &metadata).await?;

    let settings = &agent.settings;
    let request = TokenRequest {
        token_use: TokenUse::Api,
        principal_type: PrincipalType::Agent,
        principal_id: agent.id.0,
        org_id: agent.org_id.0,
        scopes: token_scopes(&state, &agent, context.now),
        vault_ids: settings.vault_ids.iter().map(|v| v.0).collect(),
        intents_api_enabled: settings.intents_api_enabled,
        sid: Some(agent.key.key_id),
    };
    let ttl = chrono::Duration::seconds(i64::from(settings.token_ttl()));
    let (access_token, _) = state
        .tokens
        .issue(request, context.now, ttl)
        .map_err(ApiError::internal)?;
    Ok(Json(AgentTokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl.num_seconds(),
        agent_id: agent.id,
        vault_ids: settings.vault_ids.clone(),
    }))
}
