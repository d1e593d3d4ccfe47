//! Sharing secrets over HTTP: create a share of a secret the caller may read, open it as
//! its recipient (or, for a link share, as anyone), list, revoke, accept and decline.
//! A share lends its sharer's read: each opening is judged again as the sharer's own read
//! would be, and counted as one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::authz::{Permission, Principal};
use domain::change::{Change, DomainError};
use domain::email::Email;
use domain::secret::SecretType;
use domain::share::{self, Accessor, CreateShare, Recipient, RecipientType, Share};
use domain::{AgentId, SecretId, ShareId, UserId};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::extract::{Body, PathParams, QueryParams};
use super::policies::manages;
use super::problem::ApiError;
use super::secrets::require;
use super::session::{Caller, MaybeCaller};
use crate::app::AppState;
use crate::app::shares::{OpenShare, OpenedShare, claim_hash, notify_address, open_share};
use crate::auth::PasswordRejected;
use crate::auth::password::PASSPHRASE_POLICY;
use crate::config::parse_net;
use crate::mail::{self, Mail};

#[derive(Deserialize)]
pub struct CreateShareRequest {
    recipient_type: RecipientType,
    recipient_id: Option<uuid::Uuid>,
    email: Option<String>,
    permissions: Option<Vec<String>>,
    max_access_count: Option<u64>,
    expires_at: DateTime<Utc>,
    passphrase: Option<Zeroizing<String>>,
    #[serde(default)]
    ip_allowlist: Vec<String>,
}

#[derive(Serialize)]
pub struct ShareResponse {
    id: ShareId,
    share_url: String,
    recipient_type: RecipientType,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_email: Option<String>,
    expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_access_count: Option<u64>,
}

fn share_url(state: &AppState, id: ShareId) -> String {
    let mut url = state.config.public_url.clone();
    url.set_path(&format!("/v1/share/{id}"));
    url.to_string()
}

/// The invitation's link: opening it signed in as the invited address claims the share.
fn claim_url(state: &AppState, id: ShareId, token: &str) -> String {
    let mut url = state.config.public_url.clone();
    url.set_path(&format!("/v1/share/{id}"));
    url.query_pairs_mut().append_pair("claim", token);
    url.to_string()
}

/// A claim token: 32 random bytes, base64url, and its hash, the only thing stored.
fn new_claim_token() -> Result<(Zeroizing<String>, String), ApiError> {
    let mut random = Zeroizing::new([0u8; 32]);
    getrandom::fill(random.as_mut_slice()).map_err(ApiError::internal)?;
    let token = Zeroizing::new(format!("sc_{}", URL_SAFE_NO_PAD.encode(random.as_slice())));
    let hash = claim_hash(&token);
    Ok((token, hash))
}

fn recipient_email(share: &Share, models: &ReadModels) -> Option<String> {
    match &share.recipient {
        Recipient::ExternalEmail { email } => Some(email.as_str().to_owned()),
        Recipient::User { user_id } => models.directory.user(*user_id).map(|u| u.email.as_str().to_owned()),
        Recipient::Agent { .. } | Recipient::AnyoneWithLink => None,
    }
}

/// The recipient a request names, checked against the directory.
fn resolve_recipient(
    models: &ReadModels,
    caller: &Caller,
    request: &CreateShareRequest,
) -> Result<Recipient, ApiError> {
    let named = || {
        request
            .recipient_id
            .ok_or_else(|| ApiError::BadRequest("recipient_id is required for this recipient_type".into()))
    };
    match request.recipient_type {
        RecipientType::Creator => match caller {
            Caller::Agent(session) => Ok(Recipient::User {
                user_id: session.agent.created_by,
            }),
            Caller::Human(_) => Err(ApiError::BadRequest(
                "recipient_type creator is for agents: it names the human who created the agent".into(),
            )),
        },
        // Named by id, a recipient is one of the sharer's org: ids of other tenants are as
        // good as absent, as vaults are. A human reaches anyone else by email.
        RecipientType::User => {
            let user_id = UserId(named()?);
            models
                .directory
                .user(user_id)
                .filter(|user| user.org_id == caller.org_id())
                .map(|_| Recipient::User { user_id })
                .ok_or_else(|| ApiError::NotFound("recipient user not found".into()))
        }
        RecipientType::Agent => {
            let agent_id = AgentId(named()?);
            models
                .directory
                .agent(agent_id)
                .filter(|agent| agent.org_id == caller.org_id())
                .map(|_| Recipient::Agent { agent_id })
                .ok_or_else(|| ApiError::NotFound("recipient agent not found".into()))
        }
        RecipientType::ExternalEmail => {
            let email = request
                .email
                .as_deref()
                .ok_or_else(|| ApiError::BadRequest("email is required for recipient_type external_email".into()))?;
            let email = Email::parse(email).map_err(|e| ApiError::BadRequest(format!("email: {e}")))?;
            Ok(Recipient::ExternalEmail { email })
        }
        RecipientType::AnyoneWithLink => Ok(Recipient::AnyoneWithLink),
    }
}

/// A new share's passphrase against [`PASSPHRASE_POLICY`], the refusal naming the rule.
fn check_passphrase(passphrase: &str) -> Result<(), ApiError> {
    PASSPHRASE_POLICY.check(passphrase).map_err(|rejected| {
        ApiError::BadRequest(match rejected {
            PasswordRejected::TooShort { min_chars } => format!("passphrase must be at least {min_chars} characters"),
            PasswordRejected::TooLong { max_bytes } => format!("passphrase must be at most {max_bytes} bytes"),
        })
    })
}

/// POST /v1/secrets/{secret_id}/share
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(secret_id): PathParams<SecretId>,
    Body(request): Body<CreateShareRequest>,
) -> Result<(StatusCode, Json<ShareResponse>), ApiError> {
    state.limits.share_per_org(caller.org_id())?;
    if let Some(permissions) = &request.permissions
        && permissions.iter().any(|p| p != "read")
    {
        return Err(ApiError::BadRequest(
            "a share grants read only: permissions may only be [\"read\"]".into(),
        ));
    }
    if let Some(passphrase) = &request.passphrase {
        check_passphrase(passphrase)?;
    }
    for entry in &request.ip_allowlist {
        if parse_net(entry).is_none() {
            return Err(ApiError::BadRequest(format!(
                "ip_allowlist: {entry:?} is not an IP or CIDR"
            )));
        }
    }
    let secret = state
        .projector
        .read(|models| models.secrets.secret_by_id(secret_id).cloned())
        .ok_or_else(|| ApiError::NotFound("secret not found".into()))?;
    require(&state, &caller, secret.vault_id, &secret.path, Permission::Read)?;
    if let Caller::Agent(session) = &caller
        && session.agent.settings.intents_api_enabled
        && secret.secret_type.is_signing_key_material()
    {
        return Err(ApiError::Forbidden(
            "agents with the Intents API enabled never hand out key material".into(),
        ));
    }
    let recipient = state
        .projector
        .read(|models| resolve_recipient(models, &caller, &request))?;
    let passphrase_hash = match request.passphrase {
        Some(passphrase) => Some(
            tokio::task::spawn_blocking(move || crate::auth::hash_passphrase(&passphrase))
                .await
                .map_err(ApiError::internal)?
                .map_err(|e| ApiError::BadRequest(format!("passphrase: {e}")))?,
        ),
        None => None,
    };
    // Whoever signs up with an address has not shown they read its mail: the share is the
    // account's that presents the token the invitation carries. Only its hash is kept.
    let claim_token = match &recipient {
        Recipient::ExternalEmail { .. } => Some(new_claim_token()?),
        _ => None,
    };
    let share_id = ShareId::new();
    let change = share::create(
        CreateShare {
            share_id,
            org_id: caller.org_id(),
            secret_id,
            vault_id: secret.vault_id,
            path: secret.path.clone(),
            created_by: caller.principal(),
            recipient_type: request.recipient_type,
            recipient: recipient.clone(),
            expires_at: request.expires_at,
            max_access_count: request.max_access_count,
            passphrase_hash,
            ip_allowlist: request.ip_allowlist,
            claim_token_hash: claim_token.as_ref().map(|(_, hash)| hash.clone()),
        },
        caller.context().now,
    )?;
    let invitation = match (&recipient, &claim_token) {
        (Recipient::ExternalEmail { email }, Some((token, _))) => {
            let sharer = state
                .projector
                .read(|models| notify_address(models, caller.principal()))
                .map_or_else(|| "Someone".to_owned(), |email| email.as_str().to_owned());
            Some(mail::share_invitation(
                email.clone(),
                caller.org_id(),
                &sharer,
                secret.path.as_str(),
                &request.expires_at.to_rfc3339(),
                state.config.public_url.as_str(),
                &claim_url(&state, share_id, token),
            ))
        }
        _ => None,
    };
    let mut changes = vec![change];
    changes.extend(invitation.as_ref().map(Mail::queued));
    state.commands.execute(changes, &caller.metadata()).await?;
    if let Some(invitation) = invitation {
        state.mailer.send(invitation);
    }
    let response = ShareResponse {
        id: share_id,
        share_url: share_url(&state, share_id),
        recipient_type: request.recipient_type,
        recipient_email: match &recipient {
            Recipient::ExternalEmail { email } => Some(email.as_str().to_owned()),
            _ => None,
        },
        expires_at: request.expires_at,
        max_access_count: request.max_access_count,
    };
    Ok((StatusCode::CREATED, Json(response)))
}

#[derive(Deserialize, Default)]
pub struct PassphraseInput {
    passphrase: Option<Zeroizing<String>>,
    /// The token of an `external_email` share's invitation, which claims it.
    claim: Option<Zeroizing<String>>,
}

#[derive(Serialize)]
pub struct SharedSecretResponse {
    id: ShareId,
    secret_id: SecretId,
    path: String,
    #[serde(rename = "type")]
    secret_type: SecretType,
    value: Zeroizing<String>,
    version: u64,
    access_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_access_count: Option<u64>,
}

fn accessor_of(caller: Option<&Caller>) -> Accessor {
    match caller {
        None => Accessor::Anonymous,
        Some(Caller::Human(session)) => Accessor::User {
            id: session.user.id,
            email: session.user.email.clone(),
        },
        Some(Caller::Agent(session)) => Accessor::Agent { id: session.agent.id },
    }
}

/// GET /v1/share/{share_id}: the secret's latest value, counted. The passphrase comes in a
/// JSON body (as the 1claw SDK sends it) or as `?passphrase=`; an invitation's claim token
/// as `?claim=` (the emailed link) or in the body, and claims the share first.
pub async fn access(
    State(state): State<AppState>,
    MaybeCaller { caller, context }: MaybeCaller,
    PathParams(share_id): PathParams<ShareId>,
    QueryParams(query): QueryParams<PassphraseInput>,
    body: Bytes,
) -> Result<Json<SharedSecretResponse>, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        PassphraseInput::default()
    } else {
        serde_json::from_slice::<PassphraseInput>(&body).map_err(|_| {
            ApiError::BadRequest("the body must be a JSON object such as {\"passphrase\": \"...\"}".into())
        })?
    };
    let metadata = match &caller {
        Some(caller) => caller.metadata(),
        None => context.metadata(domain::ActorType::Anonymous, None, None),
    };
    let opened = open_share(
        &state,
        OpenShare {
            share_id,
            accessor: accessor_of(caller.as_ref()),
            passphrase: from_body.passphrase.or(query.passphrase),
            claim: from_body.claim.or(query.claim),
            client_ip: context.client_ip,
            now: context.now,
            metadata,
        },
    )
    .await?;
    let OpenedShare {
        secret,
        value,
        access_count,
        max_access_count,
    } = opened;
    Ok(Json(SharedSecretResponse {
        id: share_id,
        secret_id: secret.id,
        path: secret.path.to_string(),
        secret_type: secret.secret_type,
        value,
        version: secret.version,
        access_count,
        max_access_count,
    }))
}

/// DELETE /v1/share/{share_id}: by its sharer, or by whoever manages the shared secret's
/// vault; then it is 404 for everyone.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(share_id): PathParams<ShareId>,
) -> Result<StatusCode, ApiError> {
    let by = caller.principal();
    state
        .commands
        .decide(&caller.metadata(), |models| {
            let share = models.shares.get(share_id).ok_or(DomainError::NotFound("share"))?;
            Ok(vec![share::revoke(
                share,
                by,
                manages_vault_of(models, &caller, share),
            )?])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `caller` manages the vault of the shared secret, as for its policies.
fn manages_vault_of(models: &ReadModels, caller: &Caller, share: &Share) -> bool {
    let Some(vault) = models.directory.vault_in_org(share.vault_id, share.org_id) else {
        return false;
    };
    let role = match caller {
        Caller::Human(session) => Some(&session.user.role),
        Caller::Agent(_) => None,
    };
    caller.org_id() == vault.org_id && manages(vault, caller.principal(), role)
}

#[derive(Serialize)]
pub struct ShareListItem {
    pub id: ShareId,
    secret_id: SecretId,
    pub secret_path: String,
    recipient_type: RecipientType,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_email: Option<String>,
    pub access_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_access_count: Option<u64>,
    pub expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    pub is_expired: bool,
    pub is_accepted: bool,
    /// Locked after too many wrong passphrases: it opens for no one; revoke it and share
    /// anew. Not in the 1claw spec's `ShareListItem`, which has no such state.
    pub is_locked: bool,
    pub shared_by: Principal,
}

impl ShareListItem {
    pub fn new(share: &Share, models: &ReadModels, now: DateTime<Utc>) -> Self {
        Self {
            id: share.id,
            secret_id: share.secret_id,
            secret_path: share.path.to_string(),
            recipient_type: share.recipient_type,
            recipient_email: recipient_email(share, models),
            access_count: share.access_count,
            max_access_count: share.max_access_count,
            expires_at: share.expires_at,
            created_at: share.created_at,
            is_expired: share.is_expired(now),
            is_accepted: share.accepted,
            is_locked: share.locked,
            shared_by: share.created_by,
        }
    }
}

#[derive(Serialize)]
pub struct ShareListResponse {
    shares: Vec<ShareListItem>,
}

/// GET /v1/shares/outbound
pub async fn outbound(State(state): State<AppState>, caller: Caller) -> Json<ShareListResponse> {
    let now = caller.context().now;
    let shares = state.projector.read(|models| {
        models
            .shares
            .outbound(caller.principal())
            .into_iter()
            .map(|share| ShareListItem::new(share, models, now))
            .collect()
    });
    Json(ShareListResponse { shares })
}

/// What was shared with `accessor` by name, newest first.
pub fn inbound_of(state: &AppState, accessor: &Accessor, now: DateTime<Utc>) -> Vec<ShareListItem> {
    state.projector.read(|models| {
        models
            .shares
            .inbound(accessor)
            .into_iter()
            .map(|share| ShareListItem::new(share, models, now))
            .collect()
    })
}

/// GET /v1/shares/inbound
pub async fn inbound(State(state): State<AppState>, caller: Caller) -> Json<ShareListResponse> {
    Json(ShareListResponse {
        shares: inbound_of(&state, &accessor_of(Some(&caller)), caller.context().now),
    })
}

async fn respond(state: &AppState, caller: Caller, share_id: ShareId, accept: bool) -> Result<StatusCode, ApiError> {
    let accessor = accessor_of(Some(&caller));
    state
        .commands
        .decide(&caller.metadata(), |models| {
            let share = models.shares.get(share_id).ok_or(DomainError::NotFound("share"))?;
            let change: Change = share::respond(share, &accessor, accept)?;
            Ok(vec![change])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/shares/{share_id}/accept
pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(share_id): PathParams<ShareId>,
) -> Result<StatusCode, ApiError> {
    respond(&state, caller, share_id, true).await
}

/// POST /v1/shares/{share_id}/decline
pub async fn decline(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(share_id): PathParams<ShareId>,
) -> Result<StatusCode, ApiError> {
    respond(&state, caller, share_id, false).await
}
