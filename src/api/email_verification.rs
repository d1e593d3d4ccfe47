//! Proving an account's email (docs/security.md): sign-up mails a token to the address;
//! `POST /v1/auth/verify-email` takes it back, marks the address verified and signs its
//! holder in. Until then the address grants nothing meant for whoever reads its mail.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::ActorType;
use domain::change::DomainError;
use domain::email_verification;
use domain::user::User;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::auth::{self, SessionTokens};
use super::extract::{Body, RequestContext};
use super::problem::ApiError;
use super::session::HumanSession;
use crate::app::AppState;
use crate::auth::VerificationToken;
use crate::auth::verification_token;
use crate::mail;

#[derive(Deserialize)]
pub struct VerifyEmailRequest {
    token: Zeroizing<String>,
}

/// Verifies the account's address with the token mailed to it; the answer signs its
/// holder in, as the spec's TokenResponse. Every refusal is the same 400, whether the
/// token named no account, a wrong one or an expired one.
pub async fn verify(
    State(state): State<AppState>,
    context: RequestContext,
    Body(request): Body<VerifyEmailRequest>,
) -> Result<Json<SessionTokens>, ApiError> {
    let user = verified_user(&state, &context, &request.token).await?;
    Ok(Json(auth::start_sign_in(&state, &context, &user, Vec::new()).await?))
}

/// Appends the verification the token proves; the account as it is now.
pub(crate) async fn verified_user(state: &AppState, context: &RequestContext, token: &str) -> Result<User, ApiError> {
    let refused = || DomainError::Invalid(email_verification::INVALID_TOKEN.into());
    let user_id = verification_token::named_user(token).ok_or_else(refused)?;
    let org = state
        .projector
        .read(|models| models.directory.user(user_id).map(|user| user.org_id))
        .ok_or_else(refused)?;
    let presented = verification_token::hash(token);
    // Whoever holds the token acts for the account it names.
    let metadata = context.metadata(ActorType::User, Some(user_id.to_string()), Some(org));
    state
        .commands
        .decide(&metadata, |models| {
            let user = models.directory.user(user_id).ok_or_else(refused)?;
            Ok(vec![email_verification::verify(user, &presented, context.now)?])
        })
        .await?;
    Ok(state
        .projector
        .read(|models| models.directory.user(user_id).cloned())
        .ok_or_else(refused)?)
}

#[derive(Serialize)]
pub struct ResendResponse {
    message: &'static str,
    email: String,
}

/// POST /v1/auth/verify-email/resend (keyward's own): a new token to the signed-in
/// account's address, the earlier one void. One a minute, none once verified (409).
pub async fn resend(
    State(state): State<AppState>,
    session: HumanSession,
) -> Result<(StatusCode, Json<ResendResponse>), ApiError> {
    let user = &session.user;
    let token = VerificationToken::new(user.id).map_err(ApiError::internal)?;
    let change = email_verification::issue(user, token.hash.clone(), session.context.now)?;
    let page = token.page(&state.config.public_url);
    let mail = mail::email_verification(user.email.clone(), user.org_id, &page, &token.token);
    state
        .commands
        .execute(vec![change, mail.queued()], &session.metadata())
        .await?;
    state.mailer.send(mail);
    Ok((
        StatusCode::ACCEPTED,
        Json(ResendResponse {
            message: "a new verification token was mailed; the earlier one no longer works",
            email: user.email.to_string(),
        }),
    ))
}
