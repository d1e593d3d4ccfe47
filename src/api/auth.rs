//! Human accounts: sign-up, sign-in and out, profile, password, and the keys that verify
//! keyward's tokens.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::authz::Principal;
use domain::change::{Change, DomainError};
use domain::email::Email;
use domain::events::{AuthMethod, AuthenticationFailed, OrgRole, SignInKind, UserAuthenticated};
use domain::user::{self, User};
use domain::{ActorType, ExpectedVersion, Metadata, OrgId, StreamId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::extract::{Body, RequestContext};
use super::problem::ApiError;
use super::session::{HumanCredential, HumanSession};
use crate::app::AppState;
use crate::app::account::delete_account;
use crate::auth::{self, ApiKeyHash, PrincipalType, TokenRequest, TokenUse, VerificationToken};
use crate::mail;

/// How long a human's access token lives (the web pages' too).
const SESSION_TTL: chrono::Duration = chrono::Duration::hours(1);
/// How long a refresh token may wait to be exchanged; each exchange starts a new one.
const REFRESH_TTL: chrono::Duration = chrono::Duration::days(30);

#[derive(Deserialize)]
pub struct SignupRequest {
    email: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Serialize)]
pub struct SignupResponse {
    message: &'static str,
    email: String,
    access_token: String,
    token_type: &'static str,
}

pub async fn signup(
    State(state): State<AppState>,
    context: RequestContext,
    Body(request): Body<SignupRequest>,
) -> Result<Json<SignupResponse>, ApiError> {
    let email = Email::parse(&request.email).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    auth::check_password_policy(&request.password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Counted before any work, whatever the answer: a taken address is what an
    // enumeration asks about (docs/security.md, "Sign-up").
    state.limits.signup_per_ip(context.client_ip)?;
    let email_taken = || DomainError::Conflict("an account with this email already exists".into());
    // A taken address costs no hash; the decision below still settles a race.
    if state
        .projector
        .read(|models| models.directory.user_by_email(&email).is_some())
    {
        return Err(email_taken().into());
    }
    let password_hash = hash_password(request.password).await?;
    let (user_id, org_id) = (UserId::new(), OrgId::new());
    let metadata = context.metadata(ActorType::Anonymous, Some(user_id.to_string()), Some(org_id));
    let verification = VerificationToken::new(user_id).map_err(ApiError::internal)?;
    // The answer's token belongs to a sign-in like any other's, ended the same ways.
    let sign_in = Uuid::now_v7();
    let page = verification.page(&state.config.public_url);
    let verification_mail = mail::email_verification(email.clone(), org_id, &page, &verification.token);
    let mail_queued = verification_mail.queued();
    state
        .commands
        .decide(&metadata, |models| {
            // An address a deleted account released is claimed at the version its stream
            // was left at; of two racing sign-ups, one gets it.
            let email_stream = user::email_stream(&email);
            let changes = user::sign_up(user::SignUp {
                user_id,
                org_id,
                email: email.clone(),
                display_name: request.display_name.clone(),
                password_hash: password_hash.clone(),
                email_stream_version: models.streams.version(&email_stream),
                verification_token_hash: verification.hash.clone(),
                sign_in_id: sign_in,
                sign_in_expires_at: context.now + SESSION_TTL,
                now: context.now,
            })?;
            if models.directory.user_by_email(&email).is_some() {
                return Err(email_taken());
            }
            Ok(changes.into_iter().chain([mail_queued.clone()]).collect())
        })
        // A racing sign-up that got the address first moves its stream: the decision is
        // made again, and finds the address taken.
        .await?;
    state.mailer.send(verification_mail);
    let (access_token, _) = issue_session(&state, user_id, org_id, sign_in, TokenUse::Api, context.now)?;
    Ok(Json(SignupResponse {
        message: "account created",
        email: email.to_string(),
        access_token,
        token_type: "Bearer",
    }))
}

#[derive(Deserialize)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// What sign-in and refresh answer: an access token and the refresh token for the next.
#[derive(Serialize)]
pub struct SessionTokens {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: Zeroizing<String>,
}

/// Email and password for a token.
pub async fn login(
    State(state): State<AppState>,
    context: RequestContext,
    Body(request): Body<LoginRequest>,
) -> Result<Json<SessionTokens>, ApiError> {
    let user = verify_credentials(&state, &context, &request.email, request.password).await?;
    Ok(Json(
        start_sign_in(&state, &context, &user, vec![signed_in(&user)]).await?,
    ))
}

/// Starts a sign-in of `user`, appending `changes` with its first refresh token: its tokens.
pub(super) async fn start_sign_in(
    state: &AppState,
    context: &RequestContext,
    user: &User,
    mut changes: Vec<Change>,
) -> Result<SessionTokens, ApiError> {
    let (refresh_token, refresh_hash) = new_refresh_token()?;
    // The sign-in names the family of refresh tokens it starts; its access tokens carry
    // that name, so signing out can end all of them.
    let sign_in = Uuid::now_v7();
    changes.push(user::sign_in(
        user.id,
        sign_in,
        SignInKind::Api,
        context.now + REFRESH_TTL,
    ));
    changes.push(user::issue_refresh_token(
        user.id,
        sign_in,
        refresh_hash,
        context.now + REFRESH_TTL,
    ));
    state.commands.execute(changes, &user_metadata(context, user)).await?;
    let (access_token, expires_in) = issue_session(state, user.id, user.org_id, sign_in, TokenUse::Api, context.now)?;
    Ok(SessionTokens {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token,
    })
}

/// Signs a human in from a web page: their session token, to be kept in a cookie. It
/// opens the pages only, not the API, and belongs to a sign-in of its own, which the
/// pages' sign-out ends.
pub(crate) async fn page_sign_in(
    state: &AppState,
    context: &RequestContext,
    email: &str,
    password: String,
) -> Result<(String, i64), ApiError> {
    let user = verify_credentials(state, context, email, password).await?;
    let sign_in = Uuid::now_v7();
    let began = user::sign_in(user.id, sign_in, SignInKind::Page, context.now + SESSION_TTL);
    state
        .commands
        .execute(vec![signed_in(&user), began], &user_metadata(context, &user))
        .await?;
    issue_session(state, user.id, user.org_id, sign_in, TokenUse::Page, context.now)
}

fn signed_in(user: &User) -> Change {
    let authenticated = UserAuthenticated {
        user_id: user.id,
        method: AuthMethod::Password,
    };
    Change::new(user::user_stream(user.id), ExpectedVersion::Any, authenticated)
}

fn user_metadata(context: &RequestContext, user: &User) -> Metadata {
    context.metadata(ActorType::User, Some(user.id.to_string()), Some(user.org_id))
}

/// The account these credentials belong to. Every failure is the same 401, audited, after
/// the same amount of hashing work, so neither the answer nor its timing says whether the
/// email exists. The client's leave for the check is taken before it runs
/// ([`RateLimits::password_check`](crate::app::rate_limit::RateLimits::password_check)): guesses sent at
/// once are counted as they start, so a client out of refusals gets a 429 and no answer.
async fn verify_credentials(
    state: &AppState,
    context: &RequestContext,
    email: &str,
    password: String,
) -> Result<User, ApiError> {
    let check = state.limits.password_check(context.client_ip)?;
    let user = Email::parse(email).ok().and_then(|email| {
        state
            .projector
            .read(|models| models.directory.user_by_email(&email).cloned())
    });
    let verified = match &user {
        Some(user) => verify_password(password, user.password_hash.clone()).await?,
        None => {
            tokio::task::spawn_blocking(auth::dummy_verify)
                .await
                .map_err(ApiError::internal)?;
            false
        }
    };
    match user {
        Some(user) if verified => {
            check.accepted();
            Ok(user)
        }
        user => {
            drop(check);
            let reason = if user.is_some() {
                "wrong password"
            } else {
                "unknown email"
            };
            let principal = user.as_ref().map(|user| Principal::user(user.id));
            audit_failure(state, context, principal, user.as_ref().map(|user| user.org_id), reason).await?;
            Err(ApiError::Unauthorized)
        }
    }
}

/// Whether `password` is `user`'s, checked with the client's leave as a sign-in's is; a
/// wrong one is audited (`what` says where, for the auditor) and its refusal spent.
async fn check_password_of(
    state: &AppState,
    context: &RequestContext,
    user: &User,
    password: String,
    what: &str,
) -> Result<bool, ApiError> {
    let check = state.limits.password_check(context.client_ip)?;
    if verify_password(password, user.password_hash.clone()).await? {
        check.accepted();
        return Ok(true);
    }
    drop(check);
    let principal = Some(Principal::user(user.id));
    audit_failure(state, context, principal, Some(user.org_id), what).await?;
    Ok(false)
}

/// Audits refused credentials (`auth.failure`); the caller only ever sees a bare 401.
pub(super) async fn record_failure(
    state: &AppState,
    context: &RequestContext,
    principal: Option<Principal>,
    org: Option<OrgId>,
    reason: &str,
) -> Result<(), ApiError> {
    // Past its client's allowance a refusal is a 429 and not audited: the log must not
    // grow at a stranger's will.
    state.limits.refused_credentials_of(context.client_ip)?;
    audit_failure(state, context, principal, org, reason).await
}

/// Appends `auth.failure` for a refusal whose allowance was already spent.
async fn audit_failure(
    state: &AppState,
    context: &RequestContext,
    principal: Option<Principal>,
    org: Option<OrgId>,
    reason: &str,
) -> Result<(), ApiError> {
    let method = if principal.is_some_and(|p| p.is_agent()) {
        AuthMethod::ApiKey
    } else {
        AuthMethod::Password
    };
    let metadata = context.metadata(ActorType::Anonymous, None, org);
    let failed = AuthenticationFailed {
        principal,
        method,
        reason: reason.to_owned(),
    };
    let change = Change::new(audit_stream(), ExpectedVersion::Any, failed);
    state.commands.execute(vec![change], &metadata).await?;
    Ok(())
}

/// Failed sign-ins name no account that could hold them, so they share one stream.
fn audit_stream() -> StreamId {
    StreamId::parse("audit-authentication").unwrap_or_else(|_| unreachable!("a valid literal stream id"))
}

/// A human's access token for `token_use`, issued in `sign_in` (its `sid`): refused once
/// that sign-in ends.
fn issue_session(
    state: &AppState,
    user: UserId,
    org: OrgId,
    sign_in: Uuid,
    token_use: TokenUse,
    now: DateTime<Utc>,
) -> Result<(String, i64), ApiError> {
    let request = TokenRequest {
        token_use,
        principal_type: PrincipalType::User,
        principal_id: user.0,
        org_id: org.0,
        scopes: Vec::new(),
        vault_ids: Vec::new(),
        intents_api_enabled: false,
        sid: Some(sign_in),
    };
    let ttl = SESSION_TTL;
    let (token, _) = state.tokens.issue(request, now, ttl).map_err(ApiError::internal)?;
    Ok((token, ttl.num_seconds()))
}

async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

pub(super) async fn verify_password(password: String, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)
}

/// The password a human re-enters (`X-Auth-Confirm`) before an act that cannot be undone
/// or lets a secret out (`what`, for the auditor); missing or wrong, it is a 403, audited
/// as an authentication failure.
pub(super) async fn confirm_password(
    state: &AppState,
    session: &HumanSession,
    headers: &HeaderMap,
    what: &str,
) -> Result<(), ApiError> {
    let given = headers.get("x-auth-confirm").and_then(|value| value.to_str().ok());
    let reason = format!("{what}: X-Auth-Confirm missing or wrong");
    let confirmed = match given {
        Some(password) => {
            check_password_of(state, &session.context, &session.user, password.to_owned(), &reason).await?
        }
        None => {
            let principal = Some(Principal::user(session.user.id));
            record_failure(state, &session.context, principal, Some(session.user.org_id), &reason).await?;
            false
        }
    };
    if !confirmed {
        return Err(ApiError::Forbidden(
            "re-enter your account password in the X-Auth-Confirm header".into(),
        ));
    }
    Ok(())
}

/// DELETE /v1/auth/token: this token is refused from the next request on, and so is its
/// sign-in: the refresh token it came with, and every access token issued in it. A token
/// exchanged for an API key ends alone; the key is revoked at its own endpoint.
pub async fn logout(State(state): State<AppState>, session: HumanSession) -> Result<StatusCode, ApiError> {
    if !sign_out(&state, &session).await? {
        return Err(ApiError::BadRequest(
            "an API key is revoked with DELETE /v1/auth/api-keys/{key_id}".into(),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the session's token and the sign-in it was issued in (the API's logout, and the
/// web pages' sign-out); false, changing nothing, if the session is an API key's.
pub(crate) async fn sign_out(state: &AppState, session: &HumanSession) -> Result<bool, ApiError> {
    let HumanCredential::Token(claims) = &session.credential else {
        return Ok(false);
    };
    let sign_in = session_sign_in(state, session).map(|(sign_in, _)| sign_in);
    let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(session.context.now);
    let change = user::sign_out(session.user.id, claims.jti, expires_at, sign_in);
    state.commands.execute(vec![change], &session.metadata()).await?;
    Ok(true)
}

/// The sign-in the session's token was issued in, if it was (not exchanged for an API key)
/// and that sign-in still stands, and how it began.
fn session_sign_in(state: &AppState, session: &HumanSession) -> Option<(Uuid, SignInKind)> {
    let HumanCredential::Token(claims) = &session.credential else {
        return None;
    };
    let sid = claims.sid?;
    state.projector.read(|models| {
        models
            .directory
            .sign_in_of(session.user.id, sid)
            .map(|sign_in| (sid, sign_in.kind))
    })
}

#[derive(Deserialize)]
pub struct DeleteAccountRequest {
    confirmation: String,
}

/// What the body of DELETE /v1/auth/me must confirm, word for word.
const DELETE_CONFIRMATION: &str = "DELETE MY ACCOUNT";

/// DELETE /v1/auth/me: the account is deleted, and with it what its organization (which
/// the sign-up founded, and which has no other member) holds, in one append: every vault
/// (its keys destroyed first), every agent deactivated, the enrollments awaiting the
/// human's decision denied, and every token, refresh token and API key of theirs refused
/// from the next request on; the email can found a new account. The log keeps every event.
///
/// Only a human signed in with their password (or the token mailed to their address), who
/// re-enters it (`X-Auth-Confirm`), may: not with an API key nor a token exchanged for one
/// (a leaked automation key must not destroy everything), nor with the sign-up's token
/// (the web pages' does not open the API at all).
pub async fn delete_me(
    State(state): State<AppState>,
    session: HumanSession,
    headers: HeaderMap,
    body: Result<Body<DeleteAccountRequest>, ApiError>,
) -> Result<StatusCode, ApiError> {
    if !matches!(session_sign_in(&state, &session), Some((_, SignInKind::Api))) {
        return Err(ApiError::Forbidden(
            "deleting an account takes the token of a sign-in with its password (POST /v1/auth/token), \
             not the sign-up's token, an API key nor a token exchanged for one"
                .into(),
        ));
    }
    let Body(request) = body?;
    if request.confirmation != DELETE_CONFIRMATION {
        return Err(ApiError::BadRequest(format!(
            "confirmation must be \"{DELETE_CONFIRMATION}\""
        )));
    }
    confirm_password(&state, &session, &headers, "account deletion").await?;
    delete_account(&state, session.user.id, session.context.now, &session.metadata()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct UserProfileResponse {
    id: UserId,
    email: String,
    display_name: String,
    auth_method: &'static str,
    role: OrgRole,
    email_verified: bool,
    marketing_emails: bool,
    totp_enabled: bool,
    created_at: DateTime<Utc>,
}

impl From<&User> for UserProfileResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.to_string(),
            display_name: user.display_name.clone(),
            auth_method: "password",
            role: user.role,
            email_verified: user.email_verified,
            marketing_emails: user.marketing_emails,
            totp_enabled: false,
            created_at: user.created_at,
        }
    }
}

pub async fn me(session: HumanSession) -> Json<UserProfileResponse> {
    Json(UserProfileResponse::from(&session.user))
}

#[derive(Deserialize)]
pub struct UpdateProfileRequest {
    display_name: Option<String>,
    marketing_emails: Option<bool>,
}

pub async fn update_me(
    State(state): State<AppState>,
    session: HumanSession,
    Body(request): Body<UpdateProfileRequest>,
) -> Result<Json<UserProfileResponse>, ApiError> {
    let user_id = session.user.id;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let user = models
                .directory
                .user(user_id)
                .ok_or(domain::change::DomainError::NotFound("user"))?;
            Ok(vec![user::update_profile(
                user,
                request.display_name.as_deref(),
                request.marketing_emails,
            )?])
        })
        .await?;
    let user = state
        .projector
        .read(|models| models.directory.user(user_id).cloned())
        .ok_or(ApiError::Unauthorized)?;
    Ok(Json(UserProfileResponse::from(&user)))
}

#[derive(Deserialize)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    session: HumanSession,
    Body(request): Body<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let reason = "wrong current password on change";
    if !check_password_of(
        &state,
        &session.context,
        &session.user,
        request.current_password,
        reason,
    )
    .await?
    {
        return Err(ApiError::BadRequest("current_password is not correct".into()));
    }
    auth::check_password_policy(&request.new_password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let new_hash = hash_password(request.new_password).await?;
    let user_id = session.user.id;
    // The sign-in the change is made in carries on: its holder just showed the password.
    let kept_sign_in = session_sign_in(&state, &session).map(|(sign_in, _)| sign_in);
    state
        .commands
        .decide(&session.metadata(), |models| {
            let user = models
                .directory
                .user(user_id)
                .ok_or(domain::change::DomainError::NotFound("user"))?;
            Ok(vec![user::change_password(user, new_hash.clone(), kept_sign_in)])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        Json(state.tokens.jwks()),
    )
}

pub async fn jwt_public_key(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.tokens.public_key_response())
}

/// A refresh token: 32 random bytes, base64url; only its hash is stored.
fn new_refresh_token() -> Result<(Zeroizing<String>, String), ApiError> {
    let mut random = Zeroizing::new([0u8; 32]);
    getrandom::fill(random.as_mut_slice()).map_err(ApiError::internal)?;
    let token = Zeroizing::new(format!("rt_{}", URL_SAFE_NO_PAD.encode(random.as_slice())));
    let hash = ApiKeyHash::of(&token).as_str().to_owned();
    Ok((token, hash))
}

#[derive(Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// POST /v1/auth/refresh: a refresh token for a new access token and the next refresh
/// token. Each refresh token works once; presenting a used one again revokes every token
/// of its sign-in, since one of the two holders is not the user.
pub async fn refresh(
    State(state): State<AppState>,
    context: RequestContext,
    Body(request): Body<RefreshRequest>,
) -> Result<Json<SessionTokens>, ApiError> {
    let presented = ApiKeyHash::of(&request.refresh_token).as_str().to_owned();
    let (successor, successor_hash) = new_refresh_token()?;
    let outcome = state
        .commands
        .decide_with(&context.metadata(ActorType::Anonymous, None, None), |models| {
            let directory = &models.directory;
            let token = directory
                .refresh_token(&presented)
                .filter(|token| token.expires_at > context.now);
            let Some((token, user)) = token.and_then(|token| Some((token, directory.user(token.user_id)?))) else {
                return Err(DomainError::NotFound("refresh token"));
            };
            let redemption = user::redeem_refresh_token(
                user,
                token,
                &presented,
                successor_hash.clone(),
                context.now + REFRESH_TTL,
            );
            Ok(match redemption {
                user::Redemption::Exchange(change) => (vec![change], Some((user.id, user.org_id, token.family_id))),
                user::Redemption::Reuse(change) => (vec![change], None),
            })
        })
        .await;
    let reason = match outcome {
        Ok((_, Some((user_id, org_id, sign_in)))) => {
            let (access_token, expires_in) =
                issue_session(&state, user_id, org_id, sign_in, TokenUse::Api, context.now)?;
            return Ok(Json(SessionTokens {
                access_token,
                token_type: "Bearer",
                expires_in,
                refresh_token: successor,
            }));
        }
        Ok((_, None)) => "a used refresh token was presented again; its sign-in is revoked",
        Err(crate::app::commands::CommandError::Domain(DomainError::NotFound(_))) => {
            "unknown, expired or revoked refresh token"
        }
        Err(other) => return Err(other.into()),
    };
    record_failure(&state, &context, None, None, reason).await?;
    Err(ApiError::Unauthorized)
}
