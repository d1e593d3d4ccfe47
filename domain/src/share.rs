//! Shares: a secret handed to one recipient (a human, an agent, an email address, or
//! whoever holds the link), for a while, a number of times, optionally behind a
//! passphrase and an address allowlist. A share follows its secret: every access gets the
//! latest version. Accesses are counted through the share's stream, so N concurrent
//! accesses of a share allowed K give exactly K values; wrong passphrases are counted
//! there too, so a share locks after exactly [`MAX_WRONG_PASSPHRASES`] of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::authz::Principal;
use crate::change::{Change, DomainError, stream};
use crate::constant_time;
use crate::email::Email;
use crate::event::ExpectedVersion;
use crate::events::{
    ShareAccepted, ShareAccessDenied, ShareAccessed, ShareClaimed, ShareCreated, ShareDeclined, ShareLocked,
    ShareRevoked,
};
use crate::ids::{AgentId, OrgId, SecretId, ShareId, UserId, VaultId};
use crate::secret_path::SecretPath;
use crate::stream::StreamId;

pub fn share_stream(share: ShareId) -> StreamId {
    stream("share", share)
}

/// Wrong passphrases a share is presented, over its whole life, before it locks for good.
/// Each one is a guess at the passphrase: the lock bounds what whoever holds the link can
/// try, however many clients and replicas they spread the guesses over.
pub const MAX_WRONG_PASSPHRASES: u32 = 10;

/// Who may open a share, once resolved (`creator` becomes the human behind the agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Recipient {
    User {
        user_id: UserId,
    },
    Agent {
        agent_id: AgentId,
    },
    /// The account of this address that claims the share with the token emailed to it
    /// (see [`Share::claim_token_hash`]).
    ExternalEmail {
        email: Email,
    },
    AnyoneWithLink,
}

/// How the sharer named the recipient, as the wire's `recipient_type` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientType {
    Creator,
    User,
    Agent,
    ExternalEmail,
    AnyoneWithLink,
}

/// Who is asking to open a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accessor {
    Anonymous,
    User { id: UserId, email: Email },
    Agent { id: AgentId },
}

impl Accessor {
    pub fn principal(&self) -> Option<Principal> {
        match self {
            Accessor::Anonymous => None,
            Accessor::User { id, .. } => Some(Principal::user(*id)),
            Accessor::Agent { id } => Some(Principal::agent(*id)),
        }
    }
}

impl Recipient {
    pub fn admits(&self, accessor: &Accessor) -> bool {
        match (self, accessor) {
            (Recipient::AnyoneWithLink, _) => true,
            (Recipient::User { user_id }, Accessor::User { id, .. }) => user_id == id,
            (Recipient::ExternalEmail { email }, Accessor::User { email: theirs, .. }) => email == theirs,
            (Recipient::Agent { agent_id }, Accessor::Agent { id }) => agent_id == id,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Share {
    pub id: ShareId,
    pub org_id: OrgId,
    pub secret_id: SecretId,
    pub vault_id: VaultId,
    pub path: SecretPath,
    pub created_by: Principal,
    pub recipient_type: RecipientType,
    pub recipient: Recipient,
    pub expires_at: DateTime<Utc>,
    pub max_access_count: Option<u64>,
    pub access_count: u64,
    pub passphrase_hash: Option<String>,
    pub ip_allowlist: Vec<String>,
    /// SHA-256 (hex) of the token emailed to an `external_email` recipient; `None` for
    /// shares made before claims existed, which open for whoever signs in with the address.
    pub claim_token_hash: Option<String>,
    /// The account that claimed an `external_email` share: the only one it admits since.
    pub claimed_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub accepted: bool,
    pub declined: bool,
    pub revoked: bool,
    /// Wrong passphrases presented so far (`share.access_denied` events that say so).
    pub wrong_passphrases: u32,
    /// Locked after [`MAX_WRONG_PASSPHRASES`] wrong passphrases: as good as revoked to
    /// everyone but its sharer, who sees it locked.
    pub locked: bool,
    pub stream_version: u64,
}

impl Share {
    pub fn created(event: &ShareCreated, at: DateTime<Utc>, stream_version: u64) -> Self {
        Self {
            id: event.share_id,
            org_id: event.org_id,
            secret_id: event.secret_id,
            vault_id: event.vault_id,
            path: event.path.clone(),
            created_by: event.created_by,
            recipient_type: event.recipient_type,
            recipient: event.recipient.clone(),
            expires_at: event.expires_at,
            max_access_count: event.max_access_count,
            access_count: 0,
            passphrase_hash: event.passphrase_hash.clone(),
            ip_allowlist: event.ip_allowlist.clone(),
            claim_token_hash: event.claim_token_hash.clone(),
            claimed_by: None,
            created_at: at,
            accepted: false,
            declined: false,
            revoked: false,
            wrong_passphrases: 0,
            locked: false,
            stream_version,
        }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

pub struct CreateShare {
    pub share_id: ShareId,
    pub org_id: OrgId,
    pub secret_id: SecretId,
    pub vault_id: VaultId,
    pub path: SecretPath,
    pub created_by: Principal,
    pub recipient_type: RecipientType,
    pub recipient: Recipient,
    pub expires_at: DateTime<Utc>,
    pub max_access_count: Option<u64>,
    pub passphrase_hash: Option<String>,
    pub ip_allowlist: Vec<String>,
    /// Required for `external_email` recipients, and only for them.
    pub claim_token_hash: Option<String>,
}

pub fn create(command: CreateShare, now: DateTime<Utc>) -> Result<Change, DomainError> {
    if command.expires_at <= now {
        return Err(DomainError::Invalid("expires_at must be in the future".into()));
    }
    if command.max_access_count == Some(0) {
        return Err(DomainError::Invalid("max_access_count must be at least 1".into()));
    }
    let sharer_is_agent = command.created_by.is_agent();
    match command.recipient_type {
        RecipientType::Creator if !sharer_is_agent => {
            return Err(DomainError::Invalid(
                "recipient_type creator is for agents: it names the human who created the agent".into(),
            ));
        }
        // An agent's share stays inside its organization, where a human can see and end
        // it: an address or a link would carry the value to whoever holds it.
        RecipientType::ExternalEmail | RecipientType::AnyoneWithLink if sharer_is_agent => {
            return Err(DomainError::Forbidden(
                "agents share only with their creator or with users and agents of their organization".into(),
            ));
        }
        _ => {}
    }
    let by_email = matches!(command.recipient, Recipient::ExternalEmail { .. });
    if by_email != command.claim_token_hash.is_some() {
        return Err(DomainError::Invalid(
            "a claim token is what an external_email share, and only it, is opened with".into(),
        ));
    }
    Ok(Change::new(
        share_stream(command.share_id),
        ExpectedVersion::NoStream,
        ShareCreated {
            share_id: command.share_id,
            org_id: command.org_id,
            secret_id: command.secret_id,
            vault_id: command.vault_id,
            path: command.path,
            created_by: command.created_by,
            recipient_type: command.recipient_type,
            recipient: command.recipient,
            expires_at: command.expires_at,
            max_access_count: command.max_access_count,
            passphrase_hash: command.passphrase_hash,
            ip_allowlist: command.ip_allowlist,
            claim_token_hash: command.claim_token_hash,
        },
    ))
}

/// Why an access is refused. Each maps to its own status: a share that is not the
/// accessor's to open does not exist for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefused {
    #[error("share not found")]
    NotFound,
    /// The sharer no longer stands behind the share (see [`Checks::sharer_stands`]): it is
    /// over, as if revoked.
    #[error("the share's creator can no longer read the shared secret")]
    SharerWithdrawn,
    #[error("the share expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("the share has been opened its maximum of {0} times")]
    UsedUp(u64),
    #[error("a valid passphrase is required to open this share")]
    Passphrase,
    #[error("this share cannot be opened from this address")]
    Address,
}

/// The passphrase check (argon2), made outside the pure decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassphraseCheck {
    /// The share has no passphrase, or the one presented is right.
    Passed,
    /// The share has one and none was presented, or it was not checked (the address was
    /// refused first): refused, but not a guess.
    NotPresented,
    /// The one presented is wrong: refused, and a guess counted toward the share's lock.
    Wrong,
}

/// What the caller established outside the pure decision: the passphrase check (argon2),
/// the address allowlist, and whether the sharer still stands behind the share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    pub passphrase: PassphraseCheck,
    pub address_ok: bool,
    /// A share lends its creator's read, so it lasts only while the creator could read the
    /// secret themselves: still there (an agent still active), and still authorized.
    pub sharer_stands: bool,
}

/// Who may know the share exists: its recipient, unless they declined it, or it was revoked
/// or locked.
/// An `external_email` share with a claim token is its claimant's only: an account that
/// merely signed up with the address has proved nothing about the mailbox.
pub fn visible_to(share: &Share, accessor: &Accessor) -> bool {
    let admitted = match (&share.claim_token_hash, accessor) {
        (Some(_), Accessor::User { id, .. }) => share.claimed_by == Some(*id),
        (Some(_), _) => false,
        (None, _) => share.recipient.admits(accessor),
    };
    !share.revoked && !share.locked && !share.declined && admitted
}

/// The claim of an `external_email` share by the account of its address that presents
/// the emailed token (`presented_hash` is the token's hash): `Ok(None)` if it is that
/// account's already. Anything else (another address, a wrong token, a share claimed by
/// someone else, a share without a claim token) is as if the share did not exist, and
/// changes nothing.
pub fn claim(share: &Share, accessor: &Accessor, presented_hash: &str) -> Result<Option<Change>, DomainError> {
    let not_found = DomainError::NotFound("share");
    let (Accessor::User { id, .. }, Some(expected)) = (accessor, &share.claim_token_hash) else {
        return Err(not_found);
    };
    if share.revoked
        || share.declined
        || !share.recipient.admits(accessor)
        || !constant_time::eq(expected.as_bytes(), presented_hash.as_bytes())
    {
        return Err(not_found);
    }
    match share.claimed_by {
        Some(claimant) if claimant == *id => Ok(None),
        Some(_) => Err(not_found),
        // Against the version seen, so two claims cannot both land.
        None => Ok(Some(Change::new(
            share_stream(share.id),
            ExpectedVersion::Exact(share.stream_version),
            ShareClaimed {
                share_id: share.id,
                user_id: *id,
            },
        ))),
    }
}

/// Records one access of `share`, serving `version` of its secret.
pub fn access(
    share: &Share,
    accessor: &Accessor,
    checks: Checks,
    version: u64,
    now: DateTime<Utc>,
) -> Result<Change, AccessRefused> {
    if !visible_to(share, accessor) {
        return Err(AccessRefused::NotFound);
    }
    if !checks.sharer_stands {
        return Err(AccessRefused::SharerWithdrawn);
    }
    if share.is_expired(now) {
        return Err(AccessRefused::Expired(share.expires_at));
    }
    if let Some(limit) = share.max_access_count
        && share.access_count >= limit
    {
        return Err(AccessRefused::UsedUp(limit));
    }
    if !checks.address_ok {
        return Err(AccessRefused::Address);
    }
    if checks.passphrase != PassphraseCheck::Passed {
        return Err(AccessRefused::Passphrase);
    }
    let expected = match share.max_access_count {
        Some(_) => ExpectedVersion::Exact(share.stream_version),
        None => ExpectedVersion::Any,
    };
    Ok(Change::new(
        share_stream(share.id),
        expected,
        ShareAccessed {
            share_id: share.id,
            secret_id: share.secret_id,
            version,
            by: accessor.principal(),
        },
    ))
}

/// Records a refused access for the audit trail; it counts no access and claims nothing.
/// A wrong passphrase is a guess: it is counted on the share's stream against the version
/// it was decided on, so concurrent guesses are counted one after another, and the one
/// that makes [`MAX_WRONG_PASSPHRASES`] locks the share in the same append. A guess decided
/// after that finds the share locked, and is refused as if it did not exist.
pub fn access_denied(share: &Share, accessor: &Accessor, refusal: &AccessRefused, checks: Checks) -> Change {
    let guess = *refusal == AccessRefused::Passphrase && checks.passphrase == PassphraseCheck::Wrong;
    let denied = ShareAccessDenied {
        share_id: share.id,
        by: accessor.principal(),
        reason: refusal.to_string(),
        wrong_passphrase: guess,
    };
    if !guess {
        return Change::new(share_stream(share.id), ExpectedVersion::Any, denied);
    }
    let mut change = Change::new(
        share_stream(share.id),
        ExpectedVersion::Exact(share.stream_version),
        denied,
    );
    let wrong_passphrases = share.wrong_passphrases.saturating_add(1);
    if wrong_passphrases >= MAX_WRONG_PASSPHRASES {
        change.events.push(
            ShareLocked {
                share_id: share.id,
                wrong_passphrases,
            }
            .into(),
        );
    }
    change
}

/// The sharer may revoke, and so may whoever manages the shared secret's vault (its owner,
/// an org owner or admin: `manages_vault`), so a share outlives no one's say, not even
/// that of a deactivated agent that made it. To anyone else the share does not exist.
pub fn revoke(share: &Share, by: Principal, manages_vault: bool) -> Result<Change, DomainError> {
    if (share.created_by != by && !manages_vault) || share.revoked {
        return Err(DomainError::NotFound("share"));
    }
    Ok(Change::new(
        share_stream(share.id),
        ExpectedVersion::Any,
        ShareRevoked { share_id: share.id, by },
    ))
}

/// The recipient takes the share (`accept`) or turns it down for good (`decline`).
pub fn respond(share: &Share, accessor: &Accessor, accept: bool) -> Result<Change, DomainError> {
    let by = accessor.principal();
    let (Some(by), true) = (
        by,
        share.recipient != Recipient::AnyoneWithLink && visible_to(share, accessor),
    ) else {
        return Err(DomainError::NotFound("share"));
    };
    let stream = share_stream(share.id);
    Ok(if accept {
        Change::new(stream, ExpectedVersion::Any, ShareAccepted { share_id: share.id, by })
    } else {
        Change::new(stream, ExpectedVersion::Any, ShareDeclined { share_id: share.id, by })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().to_utc()
    }

    fn ada() -> (UserId, Email) {
        (UserId::new(), Email::parse("ada@example.com").unwrap())
    }

    fn command(by: Principal, recipient_type: RecipientType, recipient: Recipient) -> CreateShare {
        let by_email = matches!(recipient, Recipient::ExternalEmail { .. });
        CreateShare {
            share_id: ShareId::new(),
            org_id: OrgId::new(),
            secret_id: SecretId::new(),
            vault_id: VaultId::new(),
            path: SecretPath::parse("api-keys/stripe").unwrap(),
            created_by: by,
            recipient_type,
            recipient,
            expires_at: now() + Duration::hours(1),
            max_access_count: Some(2),
            passphrase_hash: None,
            ip_allowlist: Vec::new(),
            claim_token_hash: by_email.then(|| "ab".repeat(32)),
        }
    }

    fn share(recipient: Recipient) -> Share {
        let change = create(
            command(Principal::agent(AgentId::new()), RecipientType::User, recipient),
            now(),
        )
        .unwrap();
        let Event::ShareCreated(created) = &change.events[0] else {
            panic!()
        };
        Share::created(created, now(), 1)
    }

    const PASS: Checks = Checks {
        passphrase: PassphraseCheck::Passed,
        address_ok: true,
        sharer_stands: true,
    };

    #[test]
    fn creator_is_for_agents_and_external_email_for_humans() {
        let human = Principal::user(UserId::new());
        let agent = Principal::agent(AgentId::new());
        let email = Recipient::ExternalEmail { email: ada().1 };
        assert!(matches!(
            create(command(human, RecipientType::Creator, Recipient::AnyoneWithLink), now()),
            Err(DomainError::Invalid(_))
        ));
        assert!(matches!(
            create(command(agent, RecipientType::ExternalEmail, email.clone()), now()),
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            create(
                command(agent, RecipientType::AnyoneWithLink, Recipient::AnyoneWithLink),
                now()
            ),
            Err(DomainError::Forbidden(_))
        ));
        assert!(create(command(human, RecipientType::ExternalEmail, email), now()).is_ok());
    }

    #[test]
    fn only_the_recipient_opens_a_targeted_share_and_the_limit_holds() {
        let (id, email) = ada();
        let mut share = share(Recipient::User { user_id: id });
        let ada = Accessor::User { id, email };
        let eve = Accessor::User {
            id: UserId::new(),
            email: Email::parse("eve@example.com").unwrap(),
        };
        assert_eq!(access(&share, &eve, PASS, 1, now()), Err(AccessRefused::NotFound));
        assert_eq!(
            access(&share, &Accessor::Anonymous, PASS, 1, now()),
            Err(AccessRefused::NotFound)
        );
        let change = access(&share, &ada, PASS, 1, now()).unwrap();
        assert_eq!(change.expected, ExpectedVersion::Exact(1));
        share.access_count = 2;
        assert_eq!(access(&share, &ada, PASS, 1, now()), Err(AccessRefused::UsedUp(2)));
    }

    #[test]
    fn a_share_whose_sharer_no_longer_stands_is_over_for_its_recipient() {
        let (id, email) = ada();
        let share = share(Recipient::User { user_id: id });
        let withdrawn = Checks {
            sharer_stands: false,
            ..PASS
        };
        assert_eq!(
            access(&share, &Accessor::User { id, email }, withdrawn, 1, now()),
            Err(AccessRefused::SharerWithdrawn)
        );
        assert_eq!(
            access(&share, &Accessor::Anonymous, withdrawn, 1, now()),
            Err(AccessRefused::NotFound)
        );
    }

    #[test]
    fn expiry_passphrase_and_address_refuse_without_counting() {
        let share = share(Recipient::AnyoneWithLink);
        let anyone = Accessor::Anonymous;
        assert!(matches!(
            access(&share, &anyone, PASS, 1, now() + Duration::hours(1)),
            Err(AccessRefused::Expired(_))
        ));
        let wrong = Checks {
            passphrase: PassphraseCheck::Wrong,
            ..PASS
        };
        assert_eq!(access(&share, &anyone, wrong, 1, now()), Err(AccessRefused::Passphrase));
        let none = Checks {
            passphrase: PassphraseCheck::NotPresented,
            ..PASS
        };
        assert_eq!(access(&share, &anyone, none, 1, now()), Err(AccessRefused::Passphrase));
        let elsewhere = Checks {
            address_ok: false,
            ..PASS
        };
        assert_eq!(
            access(&share, &anyone, elsewhere, 1, now()),
            Err(AccessRefused::Address)
        );
        // Refusals that are no guess are audited against no version, and count nothing.
        for (refusal, checks) in [(AccessRefused::Passphrase, none), (AccessRefused::Address, elsewhere)] {
            let denied = access_denied(&share, &anyone, &refusal, checks);
            assert_eq!(denied.expected, ExpectedVersion::Any);
            assert!(matches!(
                &denied.events[..],
                [Event::ShareAccessDenied(ShareAccessDenied {
                    wrong_passphrase: false,
                    ..
                })]
            ));
        }
    }

    /// The log's fold of a share's refusals, as projections/src/shares.rs folds them.
    fn fold(share: &mut Share, change: &Change) {
        assert_eq!(change.expected, ExpectedVersion::Exact(share.stream_version));
        for event in &change.events {
            share.stream_version += 1;
            match event {
                Event::ShareAccessDenied(denied) if denied.wrong_passphrase => share.wrong_passphrases += 1,
                Event::ShareLocked(_) => share.locked = true,
                _ => {}
            }
        }
    }

    #[test]
    fn the_tenth_wrong_passphrase_locks_the_share_and_then_even_the_right_one_finds_nothing() {
        let share_before = share(Recipient::AnyoneWithLink);
        let mut share = share_before.clone();
        let anyone = Accessor::Anonymous;
        let wrong = Checks {
            passphrase: PassphraseCheck::Wrong,
            ..PASS
        };
        for guess in 1..=MAX_WRONG_PASSPHRASES {
            assert_eq!(access(&share, &anyone, wrong, 1, now()), Err(AccessRefused::Passphrase));
            let denied = access_denied(&share, &anyone, &AccessRefused::Passphrase, wrong);
            let locks = guess == MAX_WRONG_PASSPHRASES;
            assert_eq!(denied.events.len(), if locks { 2 } else { 1 }, "guess {guess}");
            if locks {
                assert_eq!(
                    denied.events[1],
                    Event::ShareLocked(ShareLocked {
                        share_id: share.id,
                        wrong_passphrases: MAX_WRONG_PASSPHRASES,
                    })
                );
            }
            fold(&mut share, &denied);
        }
        assert!(share.locked);
        assert_eq!(access(&share, &anyone, PASS, 1, now()), Err(AccessRefused::NotFound));
        assert!(!visible_to(&share, &anyone));
        // Its sharer can still revoke it.
        assert!(revoke(&share, share.created_by, false).is_ok());
        // A guess decided on the state before the last one cannot be appended after it.
        let stale = access_denied(&share_before, &anyone, &AccessRefused::Passphrase, wrong);
        assert_ne!(stale.expected, ExpectedVersion::Exact(share.stream_version));
    }

    #[test]
    fn an_external_email_share_opens_only_for_the_account_that_claimed_it_with_the_token() {
        let (id, email) = ada();
        let mut share = share(Recipient::ExternalEmail { email: email.clone() });
        let ada = Accessor::User {
            id,
            email: email.clone(),
        };
        // Signed up with the address, but without the token: nothing.
        assert_eq!(access(&share, &ada, PASS, 1, now()), Err(AccessRefused::NotFound));
        assert_eq!(
            claim(&share, &ada, &"cd".repeat(32)),
            Err(DomainError::NotFound("share"))
        );
        let eve = Accessor::User {
            id: UserId::new(),
            email: Email::parse("eve@example.com").unwrap(),
        };
        assert_eq!(
            claim(&share, &eve, &"ab".repeat(32)),
            Err(DomainError::NotFound("share"))
        );
        let claimed = claim(&share, &ada, &"ab".repeat(32)).unwrap().unwrap();
        assert_eq!(claimed.expected, ExpectedVersion::Exact(share.stream_version));
        share.claimed_by = Some(id);
        assert!(access(&share, &ada, PASS, 1, now()).is_ok());
        assert_eq!(claim(&share, &ada, &"ab".repeat(32)), Ok(None));
        // Another account of the address later (after an email change) gets nothing.
        let successor = Accessor::User {
            id: UserId::new(),
            email: email.clone(),
        };
        assert_eq!(access(&share, &successor, PASS, 1, now()), Err(AccessRefused::NotFound));
        assert_eq!(
            claim(&share, &successor, &"ab".repeat(32)),
            Err(DomainError::NotFound("share"))
        );
        // Shares made before claims existed open for whoever holds the address.
        share.claim_token_hash = None;
        share.claimed_by = None;
        assert!(access(&share, &successor, PASS, 1, now()).is_ok());
    }

    #[test]
    fn revoked_and_declined_shares_are_gone_for_everyone_but_in_the_log() {
        let (id, email) = ada();
        let mut share = share(Recipient::User { user_id: id });
        let ada = Accessor::User { id, email };
        assert_eq!(
            revoke(&share, Principal::user(id), false),
            Err(DomainError::NotFound("share"))
        );
        assert!(revoke(&share, share.created_by, false).is_ok());
        assert!(revoke(&share, Principal::user(UserId::new()), true).is_ok());
        share.declined = true;
        assert_eq!(access(&share, &ada, PASS, 1, now()), Err(AccessRefused::NotFound));
        assert!(respond(&share, &ada, true).is_err());
    }
}
