//! Who is calling: the bearer token verified, and its principal checked live against the
//! directory, so a revoked session, a deleted account, a deactivated agent or a rotated
//! key is refused on the very next request, whatever the token's expiry says. An agent's
//! token is also held to the agent's binding and scopes as they stand now
//! ([`Caller::reach`]), so narrowing them takes effect on the next request too.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use domain::agent::Agent;
use domain::authz::Principal;
use domain::user::{User, UserApiKey};
use domain::{ActorType, AgentId, Metadata, OrgId, UserId, VaultId};
use projections::ReadModels;

use super::extract::RequestContext;
use super::problem::ApiError;
use crate::app::AppState;
use crate::app::reach::{AgentReach, TokenReach, parse_scopes};
use crate::auth::{ApiKey, ApiKeyKind, Claims, PrincipalType, TokenUse};

/// A signed-in human.
pub struct HumanSession {
    pub user: User,
    pub credential: HumanCredential,
    pub context: RequestContext,
}

/// What a human presented: a token, or one of their `1ck_` API keys used directly.
pub enum HumanCredential {
    Token(Claims),
    ApiKey(UserApiKey),
}

impl HumanCredential {
    /// Whether the API key behind the credential set scopes. A token's are judged as
    /// issued, not as they parse today: a ceiling whose patterns no longer parse reaches
    /// nothing, it does not vanish.
    pub fn has_scope_ceiling(&self) -> bool {
        match self {
            HumanCredential::Token(claims) => !claims.scopes.is_empty(),
            HumanCredential::ApiKey(key) => !key.scopes.is_empty(),
        }
    }
}

/// An agent holding a token issued with its current API key.
pub struct AgentSession {
    pub agent: Agent,
    pub claims: Claims,
    pub context: RequestContext,
}

/// Either, for endpoints both serve (secrets).
#[allow(clippy::large_enum_variant)] // one per request, moved once: boxing buys nothing
pub enum Caller {
    Human(HumanSession),
    Agent(AgentSession),
}

/// The token of an `Authorization: Bearer` header.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let context = RequestContext::from_request_parts(parts, state).await?;
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        Caller::from_token(state, token, context).await
    }
}

/// A caller of the secret endpoints. Besides every [`Caller`], these admit a human's scoped
/// credential, since they bound its reach by its scopes (the second layer of authorization).
pub struct SecretCaller(pub Caller);

impl FromRequestParts<AppState> for SecretCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let context = RequestContext::from_request_parts(parts, state).await?;
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        Caller::scoped_or_not_from_token(state, token, context)
            .await
            .map(SecretCaller)
    }
}

/// What every endpoint but the secret ones answers a scoped credential.
const SCOPED_CANNOT_MANAGE: &str = "a scoped credential cannot manage: an API key with scopes, and a token \
     issued for one, reach only the secret endpoints within those scopes";

impl Caller {
    /// Who presents `token` (a session token or a `1ck_` key), checked live. A human's
    /// credential with a scope ceiling is refused (403): every other way to a caller (human
    /// and agent sessions, link shares, web pages) comes through here, so an endpoint
    /// admits one only by asking for a [`SecretCaller`], as the secret endpoints do, which
    /// bound it by its scopes. Otherwise a key scoped to `deploy/**` could mint an unscoped
    /// key, grant policies or create vaults as its human.
    pub async fn from_token(state: &AppState, token: &str, context: RequestContext) -> Result<Self, ApiError> {
        let caller = Self::scoped_or_not_from_token(state, token, context).await?;
        match &caller {
            Caller::Human(session) if session.credential.has_scope_ceiling() => {
                Err(ApiError::Forbidden(SCOPED_CANNOT_MANAGE.into()))
            }
            _ => Ok(caller),
        }
    }

    /// Who presents `token`, scope ceiling or not: for the secret endpoints only.
    async fn scoped_or_not_from_token(
        state: &AppState,
        token: &str,
        context: RequestContext,
    ) -> Result<Self, ApiError> {
        // Judge the principal on everything committed so far, by any replica.
        state.projector.catch_up().await.map_err(ApiError::internal)?;
        if let Some(key) = ApiKey::parse(token).filter(|key| key.kind() == ApiKeyKind::User) {
            return human_by_api_key(state, &key, context);
        }
        let claims = state
            .tokens
            .verify(token, context.now)
            .map_err(|_| ApiError::Unauthorized)?;
        match claims.principal_type {
            PrincipalType::User => human_by_token(state, claims, TokenUse::Api, context).map(Caller::Human),
            PrincipalType::Agent => {
                let agent_id = AgentId(claims.principal_id);
                let agent = state.projector.read(|models| {
                    models
                        .directory
                        .agent(agent_id)
                        .filter(|agent| agent.can_authenticate(context.now) && claims.sid == Some(agent.key.key_id))
                        .cloned()
                });
                let agent = agent.ok_or(ApiError::Unauthorized)?;
                Ok(Caller::Agent(AgentSession { agent, claims, context }))
            }
        }
    }
}

impl HumanSession {
    /// The human whose web pages' session token (the cookie) this is, checked live. Only
    /// a token issued for the pages, in a sign-in through their form that still stands.
    pub async fn from_page_token(state: &AppState, token: &str, context: RequestContext) -> Result<Self, ApiError> {
        state.projector.catch_up().await.map_err(ApiError::internal)?;
        let claims = state
            .tokens
            .verify_for(token, TokenUse::Page, context.now)
            .map_err(|_| ApiError::Unauthorized)?;
        if claims.principal_type != PrincipalType::User {
            return Err(ApiError::Unauthorized);
        }
        human_by_token(state, claims, TokenUse::Page, context)
    }
}

/// The human a verified token of theirs (for `token_use`) names, checked live. Every such
/// token belongs to a session, its `sid`: a sign-in of theirs (for the API, or for the web
/// pages) or the API key it was exchanged for, and lives only as long as that session.
/// A token without one, as sign-up and the web pages issued before sign-ins were recorded
/// for them, is refused.
fn human_by_token(
    state: &AppState,
    claims: Claims,
    token_use: TokenUse,
    context: RequestContext,
) -> Result<HumanSession, ApiError> {
    let user_id = UserId(claims.principal_id);
    let user = state.projector.read(|models| {
        let directory = &models.directory;
        let sid = claims.sid?;
        let session_live = match token_use {
            TokenUse::Api => directory.is_api_session_live(user_id, sid, context.now),
            TokenUse::Page => directory.is_page_session_live(user_id, sid, context.now),
        };
        let live = session_live && !directory.is_token_revoked(claims.jti);
        directory.user(user_id).filter(|_| live).cloned()
    });
    let user = user.ok_or(ApiError::Unauthorized)?;
    Ok(HumanSession {
        user,
        credential: HumanCredential::Token(claims),
        context,
    })
}

/// A caller who may be anonymous (link shares): no credentials is `None`, but credentials
/// that do not verify are still a 401, never quietly anonymous.
pub struct MaybeCaller {
    pub caller: Option<Caller>,
    pub context: RequestContext,
}

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let context = RequestContext::from_request_parts(parts, state).await?;
        if !parts.headers.contains_key(AUTHORIZATION) {
            state.projector.catch_up().await.map_err(ApiError::internal)?;
            return Ok(Self { caller: None, context });
        }
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let caller = Caller::from_token(state, token, context.clone()).await?;
        Ok(Self {
            caller: Some(caller),
            context,
        })
    }
}

fn human_by_api_key(state: &AppState, key: &ApiKey, context: RequestContext) -> Result<Caller, ApiError> {
    let found = state.projector.read(|models| {
        let key = models
            .directory
            .api_key_by_hash(key.hash().as_str())
            .filter(|k| k.is_usable_at(context.now))?;
        Some((models.directory.user(key.user_id)?.clone(), key.clone()))
    });
    let (user, key) = found.ok_or(ApiError::Unauthorized)?;
    Ok(Caller::Human(HumanSession {
        user,
        credential: HumanCredential::ApiKey(key),
        context,
    }))
}

impl FromRequestParts<AppState> for HumanSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Human(session) => Ok(session),
            Caller::Agent(_) => Err(ApiError::Forbidden("this endpoint is for human accounts".into())),
        }
    }
}

impl FromRequestParts<AppState> for AgentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Agent(session) => Ok(session),
            Caller::Human(_) => Err(ApiError::Forbidden("this endpoint is for agents".into())),
        }
    }
}

impl HumanSession {
    /// Audit metadata for an event this human causes.
    pub fn metadata(&self) -> Metadata {
        self.context
            .metadata(ActorType::User, Some(self.user.id.to_string()), Some(self.user.org_id))
    }
}

impl Caller {
    pub fn principal(&self) -> Principal {
        match self {
            Caller::Human(session) => Principal::user(session.user.id),
            Caller::Agent(session) => Principal::agent(session.agent.id),
        }
    }

    pub fn org_id(&self) -> OrgId {
        match self {
            Caller::Human(session) => session.user.org_id,
            Caller::Agent(session) => session.agent.org_id,
        }
    }

    pub fn context(&self) -> &RequestContext {
        match self {
            Caller::Human(session) => &session.context,
            Caller::Agent(session) => &session.context,
        }
    }

    /// Humans' tokens reach every vault of their org, bounded by policies and ownership;
    /// an agent's token carries the binding and scope ceiling it was issued with, and is
    /// held to the agent's as they stand in `models` (what a token issued now would carry):
    /// a narrowing reaches it on its next request, on any replica, while a widening takes
    /// a new token. A scope that no longer parses reaches nothing.
    pub fn reach(&self, models: &ReadModels) -> TokenReach {
        match self {
            Caller::Human(session) => {
                // A human's reach is unbounded unless the API key behind it set a ceiling.
                let scopes = session
                    .credential
                    .has_scope_ceiling()
                    .then(|| match &session.credential {
                        HumanCredential::Token(claims) => parse_scopes(&claims.scopes),
                        HumanCredential::ApiKey(key) => key.scopes.clone(),
                    });
                // The key's scopes cannot change; revoking it ends the tokens issued for
                // it (their session), see `scoped_or_not_from_token`.
                TokenReach {
                    vault_ids: Vec::new(),
                    scopes,
                    current: None,
                }
            }
            Caller::Agent(session) => {
                // The agent as `models` hold it: the same snapshot the decision is made on.
                let agent = models.directory.agent(session.agent.id).unwrap_or(&session.agent);
                TokenReach {
                    vault_ids: session.claims.vault_ids.iter().copied().map(VaultId).collect(),
                    scopes: Some(parse_scopes(&session.claims.scopes)),
                    current: Some(AgentReach::now(models, agent, session.context.now)),
                }
            }
        }
    }

    pub fn metadata(&self) -> Metadata {
        match self {
            Caller::Human(session) => session.metadata(),
            Caller::Agent(session) => session.context.metadata(
                ActorType::Agent,
                Some(session.agent.id.to_string()),
                Some(session.agent.org_id),
            ),
        }
    }
}
