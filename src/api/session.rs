//! Who is calling: the bearer token verified, and its principal checked live against the
//! directory, so a revoked session or a deleted account is refused on the very next
//! request, whatever the token's expiry says.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use domain::agent::Agent;
use domain::user::User;
use domain::{AgentId, UserId};

use super::AppState;
use super::extract::RequestContext;
use super::problem::ApiError;
use crate::auth::{Claims, PrincipalType};

/// An agent holding a token issued with its current API key.
pub struct AgentSession {
    pub agent: Agent,
}

impl FromRequestParts<AppState> for AgentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let context = RequestContext::from_request_parts(parts, state).await?;
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        let claims = state
            .tokens
            .verify(token, context.now)
            .map_err(|_| ApiError::Unauthorized)?;
        if claims.principal_type != PrincipalType::Agent {
            return Err(ApiError::Forbidden("this endpoint is for agents".into()));
        }
        let agent_id = AgentId(claims.principal_id);
        // A deactivated or expired agent, or a token from before the last key rotation,
        // is refused here, on the first request after the change.
        let agent = state.projector.read(|models| {
            models
                .directory
                .agent(agent_id)
                .filter(|agent| agent.can_authenticate(context.now) && claims.sid == Some(agent.key.key_id))
                .cloned()
        });
        let agent = agent.ok_or(ApiError::Unauthorized)?;
        Ok(AgentSession { agent })
    }
}

/// A signed-in human.
pub struct HumanSession {
    pub user: User,
    pub claims: Claims,
    pub context: RequestContext,
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

impl FromRequestParts<AppState> for HumanSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let context = RequestContext::from_request_parts(parts, state).await?;
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        let claims = state
            .tokens
            .verify(token, context.now)
            .map_err(|_| ApiError::Unauthorized)?;
        if claims.principal_type != PrincipalType::User {
            return Err(ApiError::Forbidden("this endpoint is for human accounts".into()));
        }
        let user_id = UserId(claims.principal_id);
        let user = state.projector.read(|models| {
            let directory = &models.directory;
            let live = !directory.is_token_revoked(claims.jti) && directory.user(user_id).is_some();
            live.then(|| directory.user(user_id).cloned()).flatten()
        });
        let user = user.ok_or(ApiError::Unauthorized)?;
        Ok(HumanSession { user, claims, context })
    }
}
