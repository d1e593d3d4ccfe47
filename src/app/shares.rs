//! Opening a share: as its recipient or, for a link share, as anyone; an invitation's
//! claim token claims it first. A share lends its sharer's read: each opening is judged
//! again as the sharer's own read would be, and counted as one.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use domain::authz::{AccessRequest, Permission, Principal};
use domain::change::{Change, DomainError};
use domain::email::Email;
use domain::secret::{self, Sealed, Secret, SecretVersion};
use domain::share::{self, AccessRefused, Accessor, Checks, PassphraseCheck, Share};
use domain::{AgentId, Metadata, ShareId, UserId};
use projections::ReadModels;
use zeroize::Zeroizing;

use super::reach::{TokenReach, authorize_in};
use super::values::open;
use super::{AppError, Services};
use crate::auth::ApiKeyHash;
use crate::config::parse_net;
use crate::mail::{self, Mail};

/// An opening of a share, as its accessor presents it.
pub struct OpenShare {
    pub share_id: ShareId,
    pub accessor: Accessor,
    pub passphrase: Option<Zeroizing<String>>,
    /// The token of an `external_email` share's invitation, which claims it.
    pub claim: Option<Zeroizing<String>>,
    pub client_ip: IpAddr,
    pub now: DateTime<Utc>,
    /// What the opening's events are recorded with; without an organization (someone
    /// with a link only), they are recorded in the share's.
    pub metadata: Metadata,
}

/// The shared secret's latest value, and how often the share has been opened.
pub struct OpenedShare {
    pub secret: Secret,
    pub value: Zeroizing<String>,
    pub access_count: u64,
    pub max_access_count: Option<u64>,
}

/// Opens a share: the passphrase checked within its allowances, the claim and the opening
/// decided together, the sharer's read recorded with them, the sharer told by mail, and
/// only then the value opened.
pub async fn open_share(services: &Services, command: OpenShare) -> Result<OpenedShare, AppError> {
    let OpenShare {
        share_id,
        accessor,
        passphrase,
        claim,
        client_ip,
        now,
        mut metadata,
    } = command;
    let claim = claim.map(|token| claim_hash(&token));
    let share = services
        .projector
        .read(|models| models.shares.get(share_id).cloned())
        .filter(|share| {
            share::visible_to(share, &accessor)
                || claim
                    .as_deref()
                    .is_some_and(|claim| share::claim(share, &accessor, claim).is_ok())
        })
        .ok_or(AppError::ShareRefused(AccessRefused::NotFound))?;
    let address_ok = share.ip_allowlist.is_empty()
        || share
            .ip_allowlist
            .iter()
            .filter_map(|entry| parse_net(entry))
            .any(|net| net.contains(&client_ip));
    let passphrase = match &share.passphrase_hash {
        None => PassphraseCheck::Passed,
        // Refused for its address whatever the passphrase: nothing to check, nothing learnt.
        Some(_) if !address_ok => PassphraseCheck::NotPresented,
        Some(hash) => check_passphrase_of(services, &share, hash, passphrase, client_ip).await?,
    };
    // Someone with a link only is recorded in the share's organization.
    metadata.org_id = metadata.org_id.or(Some(share.org_id.0));
    let outcome = services
        .commands
        .decide_with(&metadata, |models| {
            let share = models.shares.get(share_id).ok_or(DomainError::NotFound("share"))?;
            // A claim is decided with the opening, and recorded with it, on the share as
            // claimed; a wrong token changes nothing.
            let claimed = match claim.as_deref() {
                Some(claim) if !share::visible_to(share, &accessor) => share::claim(share, &accessor, claim)?,
                _ => None,
            };
            let mut as_claimed = share.clone();
            if claimed.is_some() {
                as_claimed.claimed_by = accessor.principal().map(|p| UserId(p.id));
            }
            let share = &as_claimed;
            let secret = models
                .secrets
                .secret_by_id(share.secret_id)
                .ok_or_else(|| DomainError::Gone("the shared secret was deleted".into()))?;
            let current = models
                .secrets
                .version(secret.vault_id, &secret.path, secret.version)
                .ok_or(DomainError::NotFound("secret version"))?;
            let sealed = models
                .secrets
                .value(secret.vault_id, &secret.path, secret.version)
                .ok_or(DomainError::NotFound("secret version"))?;
            let checks = Checks {
                passphrase,
                address_ok,
                sharer_stands: sharer_stands(models, share, secret, current, now, client_ip),
            };
            let access = match share::access(share, &accessor, checks, secret.version, now) {
                Ok(access) => with_claim(access, claimed),
                Err(refusal @ (AccessRefused::Passphrase | AccessRefused::Address)) => {
                    // Audited, counted as no access; a wrong passphrase counts toward the lock.
                    let denied = share::access_denied(share, &accessor, &refusal, checks);
                    return Ok((vec![with_claim(denied, claimed)], Err(refusal)));
                }
                Err(refusal) => return Ok((claimed.into_iter().collect(), Err(refusal))),
            };
            // The share lends its sharer's read: it is recorded, limited and counted as the
            // sharer's own read of the value would be (disabled, expired or used up is 410).
            let read = secret::read(secret, current, share.created_by, now)
                .map_err(|refusal| DomainError::Gone(format!("the shared secret: {refusal}")))?;
            let mut changes = vec![access, read];
            let notice = notify_address(models, share.created_by).map(|to| {
                let count = match share.max_access_count {
                    Some(limit) => format!("{} of {limit}", share.access_count + 1),
                    None => (share.access_count + 1).to_string(),
                };
                let by = match &accessor {
                    Accessor::Anonymous => format!("someone with the link from {client_ip}"),
                    Accessor::User { email, .. } => email.as_str().to_owned(),
                    Accessor::Agent { id } => format!("agent {id}"),
                };
                mail::share_accessed(to, share.org_id, share.id, share.path.as_str(), &by, &count)
            });
            changes.extend(notice.as_ref().map(Mail::queued));
            let opening = Opening {
                secret: secret.clone(),
                sealed: sealed.clone(),
                access_count: share.access_count + 1,
                max_access_count: share.max_access_count,
                notice,
            };
            Ok((changes, Ok(opening)))
        })
        .await;
    let (_, decided) = outcome?;
    let opening = decided.map_err(AppError::ShareRefused)?;
    if let Some(notice) = opening.notice {
        services.mailer.send(notice);
    }
    let plaintext = open(services, &opening.secret, opening.secret.version, &opening.sealed).await?;
    let value = String::from_utf8(plaintext.to_vec()).map_err(|_| AppError::internal("a stored value is not UTF-8"))?;
    Ok(OpenedShare {
        secret: opening.secret,
        value: Zeroizing::new(value),
        access_count: opening.access_count,
        max_access_count: opening.max_access_count,
    })
}

/// What an opening decided: the secret and its sealed value to open once the opening is
/// in the log, the counts, and the mail that tells the sharer.
struct Opening {
    secret: Secret,
    sealed: Sealed,
    access_count: u64,
    max_access_count: Option<u64>,
    notice: Option<Mail>,
}

/// What the log keeps of an invitation's claim token: its hash.
pub fn claim_hash(token: &str) -> String {
    ApiKeyHash::of(token).as_str().to_owned()
}

/// Whether the share's creator still stands behind it ([`Checks::sharer_stands`]), judged
/// as a token issued to the creator now would be, by the four layers of authorization
/// (as the explain endpoint judges one) at the opening request's address and time: the
/// value leaves to that address, now. A human must still be of the share's org; an agent
/// must still be able to sign in, and with the Intents API it hands out no key material,
/// whatever type the secret has taken since it was shared.
fn sharer_stands(
    models: &ReadModels,
    share: &Share,
    secret: &Secret,
    current: &SecretVersion,
    now: DateTime<Utc>,
    client_ip: IpAddr,
) -> bool {
    let Some(vault) = models.directory.vault_in_org(secret.vault_id, share.org_id) else {
        return false;
    };
    let sharer = share.created_by;
    let reach = if sharer.is_agent() {
        let Some(agent) = models
            .directory
            .agent(AgentId(sharer.id))
            .filter(|agent| agent.org_id == share.org_id && agent.can_authenticate(now))
        else {
            return false;
        };
        let key_material =
            secret.secret_type.is_signing_key_material() || current.secret_type.is_signing_key_material();
        if agent.settings.intents_api_enabled && key_material {
            return false;
        }
        TokenReach::of_new_agent_token(models, agent, now)
    } else {
        let member = models
            .directory
            .user(UserId(sharer.id))
            .is_some_and(|user| user.org_id == share.org_id);
        if !member {
            return false;
        }
        TokenReach::of_human()
    };
    let request = AccessRequest {
        principal: sharer,
        vault_id: vault.id,
        path: &secret.path,
        permission: Permission::Read,
        client_ip,
        now,
    };
    authorize_in(models, &reach, vault, &request).allowed
}

/// The email of a principal, or of the human behind an agent: where share news goes.
pub fn notify_address(models: &ReadModels, principal: Principal) -> Option<Email> {
    let user = if principal.is_agent() {
        models.directory.agent(AgentId(principal.id))?.created_by
    } else {
        UserId(principal.id)
    };
    models.directory.user(user).map(|user| user.email.clone())
}

/// Checks the passphrase presented for a share that has one. Every attempt is taken from
/// the client's allowance and the share's before anything else (429 once either ran out,
/// see src/app/rate_limit.rs), so of concurrent guesses only the allowance's worth is ever
/// checked; a right one is given back. Checks (argon2) run a few at a time.
async fn check_passphrase_of(
    services: &Services,
    share: &Share,
    hash: &str,
    presented: Option<Zeroizing<String>>,
    client: std::net::IpAddr,
) -> Result<PassphraseCheck, AppError> {
    services.limits.share_guess(client, share.id)?;
    let Some(presented) = presented else {
        return Ok(PassphraseCheck::NotPresented);
    };
    let right = {
        let _turn = services.limits.passphrase_check().await?;
        let hash = hash.to_owned();
        tokio::task::spawn_blocking(move || crate::auth::verify_password(&presented, &hash))
            .await
            .map_err(AppError::internal)?
    };
    if right {
        services.limits.share_guess_was_right(client, share.id);
        Ok(PassphraseCheck::Passed)
    } else {
        Ok(PassphraseCheck::Wrong)
    }
}

/// `change` of the share's stream, preceded by the share's claim if there is one, in one
/// append, against the version the claim was decided on.
fn with_claim(change: Change, claimed: Option<Change>) -> Change {
    match claimed {
        Some(mut claim) => {
            claim.events.extend(change.events);
            claim
        }
        None => change,
    }
}
