//! Proving an account's email (docs/security.md): sign-up mails a token to the address;
//! `POST /v1/auth/verify-email` takes it back, marks the address verified and signs its
//! holder in. Until then the address grants nothing meant for whoever reads its mail.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::change::DomainError;
use domain::email_verification;
use domain::user::User;
use domain::{ActorType, OrgId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::AppState;
use super::auth::{self, SessionTokens};
use super::extract::{Body, RequestContext};
use super::problem::ApiError;
use super::session::HumanSession;
use crate::auth::ApiKeyHash;
use crate::mail::{self, Mail};

/// A verification token: it names its account, so that it is checked against that
/// account's last token only, and carries 32 random bytes. Only its hash is kept.
pub struct VerificationToken {
    pub token: Zeroizing<String>,
    pub hash: String,
}

const PREFIX: &str = "ev_";

impl VerificationToken {
    pub fn new(user: UserId) -> Result<Self, ApiError> {
        let mut random = Zeroizing::new([0u8; 32]);
        getrandom::fill(random.as_mut_slice()).map_err(ApiError::internal)?;
        let token = Zeroizing::new(format!(
            "{PREFIX}{}.{}",
            user.0,
            URL_SAFE_NO_PAD.encode(random.as_slice())
        ));
        let hash = hash(&token);
        Ok(Self { token, hash })
    }

    /// The mail that carries the token to the account's address.
    pub fn mail(&self, state: &AppState, to: domain::email::Email, org: OrgId) -> Mail {
        let page = state
            .config
            .public_url
            .join("verify-email")
            .map(|mut url| {
                url.query_pairs_mut().append_pair("token", &self.token);
                url.to_string()
            })
            .unwrap_or_default();
        mail::email_verification(to, org, &page, &self.token)
    }
}

fn hash(token: &str) -> String {
    ApiKeyHash::of(token).as_str().to_owned()
}

/// The account a presented token names, if it names one at all.
fn named_user(token: &str) -> Option<UserId> {
    let (user, _) = token.strip_prefix(PREFIX)?.split_once('.')?;
    Uuid::parse_str(user).ok().map(UserId)
}

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
    let user_id = named_user(token).ok_or_else(refused)?;
    let org = state
        .projector
        .read(|models| models.directory.user(user_id).map(|user| user.org_id))
        .ok_or_else(refused)?;
    let presented = hash(token);
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
    let token = VerificationToken::new(user.id)?;
    let change = email_verification::issue(user, token.hash.clone(), session.context.now)?;
    let mail = token.mail(&state, user.email.clone(), user.org_id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_account_and_nothing_else_does() {
        let user = UserId::new();
        let token = VerificationToken::new(user).unwrap();
        assert_eq!(named_user(&token.token), Some(user));
        assert_eq!(token.hash, hash(&token.token));
        assert_ne!(VerificationToken::new(user).unwrap().hash, token.hash, "random");
        for garbage in ["", "ev_", "ev_x.y", "sc_abc", &format!("ev_{}", user.0)] {
            assert_eq!(named_user(garbage), None, "{garbage:?}");
        }
    }
}
