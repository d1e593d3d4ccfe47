//! Personal API keys (`1ck_…`): for scripts acting as their human, usable directly as a
//! bearer token or exchanged for a short-lived one. Only hashes are kept.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::authz::PathPattern;
use domain::change::{Change, DomainError};
use domain::events::{AuthMethod, UserAuthenticated};
use domain::user::{self, UserApiKey};
use domain::{ActorType, ApiKeyId, ExpectedVersion};
use serde::{Deserialize, Serialize};

use super::extract::{Body, PathParams, RequestContext};
use super::problem::ApiError;
use super::session::HumanSession;
use crate::app::AppState;
use crate::auth::{ApiKey, ApiKeyKind, PrincipalType, TokenRequest, TokenUse};

/// How long a token exchanged for an API key lives.
const TOKEN_TTL: chrono::Duration = chrono::Duration::hours(1);

#[derive(Deserialize)]
pub struct CreateApiKeyRequest {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
pub struct ApiKeyResponse {
    id: ApiKeyId,
    name: String,
    key_prefix: String,
    scopes: Vec<String>,
    is_active: bool,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

impl From<&UserApiKey> for ApiKeyResponse {
    fn from(key: &UserApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name.clone(),
            key_prefix: key.key_prefix.clone(),
            scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            is_active: true,
            created_at: key.created_at,
            expires_at: key.expires_at,
        }
    }
}

#[derive(Serialize)]
pub struct ApiKeyCreatedResponse {
    key: ApiKeyResponse,
    api_key: String,
}

#[derive(Serialize)]
pub struct ApiKeyListResponse {
    keys: Vec<ApiKeyResponse>,
}

pub async fn create(
    State(state): State<AppState>,
    session: HumanSession,
    Body(request): Body<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyCreatedResponse>), ApiError> {
    let scopes = request
        .scopes
        .into_iter()
        .map(|scope| PathPattern::parse(scope).map_err(|e| ApiError::BadRequest(format!("scopes: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let key = ApiKey::generate(ApiKeyKind::User).map_err(ApiError::internal)?;
    let key_id = ApiKeyId::new();
    let command = user::CreateApiKey {
        key_id,
        name: request.name,
        key_hash: key.hash().as_str().to_owned(),
        key_prefix: key.prefix().to_owned(),
        scopes,
        expires_at: request.expires_at,
    };
    let change = user::create_api_key(session.user.id, command, session.context.now)?;
    state.commands.execute(vec![change], &session.metadata()).await?;
    let created = state
        .projector
        .read(|models| models.directory.api_key(key_id).map(ApiKeyResponse::from))
        .ok_or_else(|| ApiError::internal("a created API key is missing from the read model"))?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreatedResponse {
            key: created,
            api_key: key.expose_secret().to_owned(),
        }),
    ))
}

pub async fn list(State(state): State<AppState>, session: HumanSession) -> Json<ApiKeyListResponse> {
    let keys = state.projector.read(|models| {
        models
            .directory
            .api_keys_of(session.user.id)
            .into_iter()
            .map(ApiKeyResponse::from)
            .collect()
    });
    Json(ApiKeyListResponse { keys })
}

/// DELETE: the key, and every token exchanged for it, are refused from the next request.
pub async fn revoke(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(key_id): PathParams<ApiKeyId>,
) -> Result<StatusCode, ApiError> {
    let user_id = session.user.id;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let key = models.directory.api_key(key_id).filter(|k| k.user_id == user_id);
            Ok(vec![user::revoke_api_key(key.ok_or(DomainError::NotFound("API key"))?)])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct ApiKeyTokenRequest {
    api_key: String,
}

#[derive(Serialize)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
}

/// POST /v1/auth/api-key-token: a `1ck_` key for a token carrying the key's scopes; the
/// token dies with the key.
pub async fn token(
    State(state): State<AppState>,
    context: RequestContext,
    Body(request): Body<ApiKeyTokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    // A key rotated or revoked through another replica must already be refused here.
    state.projector.catch_up().await.map_err(ApiError::internal)?;
    let presented = ApiKey::parse(&request.api_key).filter(|key| key.kind() == ApiKeyKind::User);
    let found = presented.and_then(|presented| {
        state.projector.read(|models| {
            let key = models.directory.api_key_by_hash(presented.hash().as_str())?.clone();
            let user = models.directory.user(key.user_id)?.clone();
            Some((key, user))
        })
    });
    let Some((key, user)) = found.filter(|(key, _)| key.is_usable_at(context.now)) else {
        super::auth::record_failure(&state, &context, None, None, "unknown, revoked or expired API key").await?;
        return Err(ApiError::Unauthorized);
    };
    let metadata = context.metadata(ActorType::User, Some(user.id.to_string()), Some(user.org_id));
    let authenticated = UserAuthenticated {
        user_id: user.id,
        method: AuthMethod::ApiKey,
    };
    state
        .commands
        .execute(
            vec![Change::new(
                user::user_stream(user.id),
                ExpectedVersion::Any,
                authenticated,
            )],
            &metadata,
        )
        .await?;
    let request = TokenRequest {
        token_use: TokenUse::Api,
        principal_type: PrincipalType::User,
        principal_id: user.id.0,
        org_id: user.org_id.0,
        scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        vault_ids: Vec::new(),
        intents_api_enabled: false,
        sid: Some(key.id.0),
    };
    let (access_token, _) = state
        .tokens
        .issue(request, context.now, TOKEN_TTL)
        .map_err(ApiError::internal)?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: TOKEN_TTL.num_seconds(),
    }))
}
