//! Humans: signing up (which founds an organization), their profile, password and sessions,
//! and deleting the account (which ends the organization's vaults and agents).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::agent::{self, Agent};
use crate::authz::PathPattern;
use crate::change::{Change, DomainError, stream};
use crate::email::Email;
use crate::email_verification;
use crate::enrollment::{self, Enrollment};
use crate::event::ExpectedVersion;
use crate::events::{
    AccountDeleted, ApiKeyCreated, ApiKeyRevoked, EmailClaimed, EmailReleased, Event, OrgCreated, OrgRole,
    PasswordChanged, ProfileUpdated, RefreshFamilyRevoked, RefreshTokenIssued, RefreshTokenRedeemed, SignInKind,
    SignedIn, SignedOut, TokenRevoked, UserSignedUp,
};
use crate::ids::{ApiKeyId, OrgId, UserId};
use crate::stream::StreamId;
use crate::vault::{self, Vault};

const MAX_DISPLAY_NAME: usize = 100;

pub fn user_stream(user: UserId) -> StreamId {
    stream("user", user)
}

pub fn org_stream(org: OrgId) -> StreamId {
    stream("org", org)
}

/// The stream that can hold one claim of `email`.
pub fn email_stream(email: &Email) -> StreamId {
    stream("email", email.claim_key())
}

/// A human as the decisions about them need to see it, folded from their stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: UserId,
    pub org_id: OrgId,
    pub email: Email,
    pub display_name: String,
    pub role: OrgRole,
    pub password_hash: String,
    pub marketing_emails: bool,
    pub created_at: DateTime<Utc>,
    /// Whether its holder showed they read the address's mail (docs/security.md).
    pub email_verified: bool,
    /// The verification mailed last and not yet used, if any.
    pub pending_verification: Option<PendingVerification>,
    /// Made a platform administrator by an operator on the server.
    pub admin_granted: bool,
    /// The version of the user's stream this state reflects.
    pub version: u64,
}

/// A verification token's hash and when it stops counting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingVerification {
    pub token_hash: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl User {
    /// Starts the state from the stream's first event.
    pub fn signed_up(event: &UserSignedUp, at: DateTime<Utc>, version: u64) -> Self {
        Self {
            id: event.user_id,
            org_id: event.org_id,
            email: event.email.clone(),
            display_name: event.display_name.clone(),
            role: event.role,
            password_hash: event.password_hash.clone(),
            marketing_emails: false,
            created_at: at,
            email_verified: false,
            pending_verification: None,
            admin_granted: false,
            version,
        }
    }

    /// Whether the account administers the platform: granted by an operator on the server,
    /// or holding a `configured` administrator address it has shown it reads. An address
    /// alone proves nothing: anyone can sign up with one nobody holds yet.
    pub fn is_platform_admin(&self, configured: &[String]) -> bool {
        self.admin_granted
            || (self.email_verified
                && configured
                    .iter()
                    .any(|admin| admin.eq_ignore_ascii_case(self.email.as_str())))
    }

    /// Folds a later event of the user's stream, recorded at `at`.
    pub fn apply(&mut self, event: &Event, at: DateTime<Utc>, version: u64) {
        match event {
            Event::PasswordChanged(changed) => self.password_hash.clone_from(&changed.password_hash),
            Event::ProfileUpdated(updated) => {
                self.display_name.clone_from(&updated.display_name);
                self.marketing_emails = updated.marketing_emails;
            }
            Event::EmailVerificationIssued(issued) => {
                self.pending_verification = Some(PendingVerification {
                    token_hash: issued.token_hash.clone(),
                    issued_at: at,
                    expires_at: issued.expires_at,
                });
            }
            Event::EmailVerified(_) => {
                self.email_verified = true;
                self.pending_verification = None;
            }
            Event::PlatformAdminGranted(_) => self.admin_granted = true,
            Event::PlatformAdminRevoked(_) => self.admin_granted = false,
            _ => {}
        }
        self.version = version;
    }
}

pub struct SignUp {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub email: Email,
    pub display_name: Option<String>,
    /// Hashed by the caller: hashing is deliberately slow and salted with randomness.
    pub password_hash: String,
    /// The version of the email's stream, which no account holds: 0 if the address was
    /// never claimed, else the version its last release (a deleted account) left it at.
    pub email_stream_version: u64,
    /// The hash of the token mailed to prove the address.
    pub verification_token_hash: String,
    /// The sign-in the sign-up's answer begins (the spec's auto-login), and when its token
    /// expires.
    pub sign_in_id: Uuid,
    pub sign_in_expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// A sign-up claims the email, creates the user, founds their organization and begins the
/// sign-in its answer's token belongs to, all in one append: if the email is taken,
/// nothing is written.
pub fn sign_up(command: SignUp) -> Result<Vec<Change>, DomainError> {
    let display_name = match command.display_name {
        Some(name) => display_name(&name)?,
        None => command.email.as_str().split('@').next().unwrap_or_default().to_owned(),
    };
    Ok(vec![
        Change::new(
            email_stream(&command.email),
            match command.email_stream_version {
                0 => ExpectedVersion::NoStream,
                version => ExpectedVersion::Exact(version),
            },
            EmailClaimed {
                user_id: command.user_id,
            },
        ),
        Change::new(
            org_stream(command.org_id),
            ExpectedVersion::NoStream,
            OrgCreated {
                org_id: command.org_id,
                name: format!("{display_name}'s organization"),
                created_by: command.user_id,
            },
        ),
        Change {
            stream: user_stream(command.user_id),
            expected: ExpectedVersion::NoStream,
            events: vec![
                UserSignedUp {
                    user_id: command.user_id,
                    org_id: command.org_id,
                    email: command.email,
                    display_name,
                    role: OrgRole::Owner,
                    password_hash: command.password_hash,
                }
                .into(),
                email_verification::issued(command.user_id, command.verification_token_hash, command.now).into(),
                SignedIn {
                    user_id: command.user_id,
                    sign_in_id: command.sign_in_id,
                    kind: SignInKind::SignUp,
                    expires_at: command.sign_in_expires_at,
                }
                .into(),
            ],
        },
    ])
}

/// The new password; every sign-in but `kept_sign_in` (the one the change was made in, if
/// any) ends with the old one.
pub fn change_password(user: &User, new_password_hash: String, kept_sign_in: Option<Uuid>) -> Change {
    Change::new(
        user_stream(user.id),
        ExpectedVersion::Exact(user.version),
        PasswordChanged {
            user_id: user.id,
            password_hash: new_password_hash,
            kept_sign_in,
        },
    )
}

pub fn update_profile(
    user: &User,
    display_name: Option<&str>,
    marketing_emails: Option<bool>,
) -> Result<Change, DomainError> {
    let display_name = match display_name {
        Some(name) => self::display_name(name)?,
        None => user.display_name.clone(),
    };
    Ok(Change::new(
        user_stream(user.id),
        ExpectedVersion::Exact(user.version),
        ProfileUpdated {
            user_id: user.id,
            display_name,
            marketing_emails: marketing_emails.unwrap_or(user.marketing_emails),
        },
    ))
}

/// Begins a sign-in of `user`: the tokens issued in it carry `sign_in_id` (their `sid`),
/// and are refused once it ends. Appended whatever the stream's version: a new sign-in
/// conflicts with nothing else about the user.
pub fn sign_in(user: UserId, sign_in_id: Uuid, kind: SignInKind, expires_at: DateTime<Utc>) -> Change {
    Change::new(
        user_stream(user),
        ExpectedVersion::Any,
        SignedIn {
            user_id: user,
            sign_in_id,
            kind,
            expires_at,
        },
    )
}

/// Revokes one session token; appended whatever the stream's version, since revoking
/// twice or beside another change is harmless.
pub fn revoke_token(user: UserId, token_id: Uuid, expires_at: DateTime<Utc>) -> Change {
    Change::new(
        user_stream(user),
        ExpectedVersion::Any,
        TokenRevoked {
            user_id: user,
            token_id,
            expires_at,
        },
    )
}

/// Signs out with a session token: it is refused from now on and, if it was issued in a
/// sign-in that still stands (`sign_in`), so are that sign-in's refresh tokens and every
/// other token issued in it. Logging out must end the sign-in, not only the one token
/// presented. Appended whatever the stream's version, like [`revoke_token`].
pub fn sign_out(user: UserId, token_id: Uuid, expires_at: DateTime<Utc>, sign_in: Option<Uuid>) -> Change {
    let mut change = revoke_token(user, token_id, expires_at);
    if let Some(family_id) = sign_in {
        change.events.push(
            SignedOut {
                user_id: user,
                family_id,
            }
            .into(),
        );
    }
    change
}

/// Frees `user`'s email for a new account, as their account ends (deleted, or removed
/// from its organization).
pub fn release_email(user: &User) -> Change {
    // Only a sign-up writes to the stream otherwise, and none can while it is claimed.
    Change::new(
        email_stream(&user.email),
        ExpectedVersion::Any,
        EmailReleased { user_id: user.id },
    )
}

/// What deleting an account ends, as the decision finds it.
pub struct AccountDeletion<'a> {
    pub user: &'a User,
    /// Every member of the user's organization, the user among them.
    pub members: Vec<UserId>,
    /// The organization's live vaults. Their keys must be destroyed before the deletion is
    /// appended: once the log says deleted, none of their values may be recoverable.
    pub vaults: Vec<&'a Vault>,
    /// The organization's agents, active or not.
    pub agents: Vec<&'a Agent>,
    /// The enrollments naming the user's email, and the version of their stream.
    pub enrollments: (Vec<&'a Enrollment>, u64),
}

/// Deletes an account, in one append: the user is gone (every token, refresh token and
/// API key of theirs refused), their email free for a new account, every vault of the
/// organization they founded deleted, every active agent of it deactivated, and the
/// enrollments awaiting their decision denied. The events stay in the log, the trail of
/// who did what. An organization with other members keeps its vaults and agents: its
/// account is not deleted.
pub fn delete_account(deletion: AccountDeletion<'_>, now: DateTime<Utc>) -> Result<Vec<Change>, DomainError> {
    let user = deletion.user;
    if deletion.members.iter().any(|member| *member != user.id) {
        return Err(DomainError::Conflict(
            "the organization has other members: its vaults and agents are theirs too, so the account \
             cannot be deleted while they are in it"
                .into(),
        ));
    }
    let mut changes = vec![
        Change::new(
            user_stream(user.id),
            ExpectedVersion::Exact(user.version),
            AccountDeleted {
                user_id: user.id,
                org_id: user.org_id,
            },
        ),
        release_email(user),
    ];
    changes.extend(
        deletion
            .vaults
            .iter()
            .filter(|vault| vault.org_id == user.org_id)
            .map(|vault| vault::delete_vault(vault)),
    );
    changes.extend(
        deletion
            .agents
            .iter()
            .filter(|agent| agent.org_id == user.org_id && agent.is_active)
            .map(|agent| agent::deactivate(agent)),
    );
    let (named, version) = &deletion.enrollments;
    changes.extend(enrollment::deny_pending(named, *version, user.id, now));
    Ok(changes)
}

/// A personal API key as the directory keeps it: never the key, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserApiKey {
    pub id: ApiKeyId,
    pub user_id: UserId,
    pub name: String,
    pub key_hash: String,
    pub key_prefix: String,
    /// A ceiling on what tokens from this key reach; empty means the user's full reach.
    pub scopes: Vec<PathPattern>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl UserApiKey {
    pub fn is_usable_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

pub struct CreateApiKey {
    pub key_id: ApiKeyId,
    pub name: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub scopes: Vec<PathPattern>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Keys are appended whatever the user's stream version: creating one conflicts with
/// nothing else about the user.
pub fn create_api_key(user: UserId, command: CreateApiKey, now: DateTime<Utc>) -> Result<Change, DomainError> {
    let name = command.name.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(DomainError::Invalid(format!(
            "name must be 1 to {MAX_DISPLAY_NAME} characters without control characters"
        )));
    }
    if command.expires_at.is_some_and(|at| at <= now) {
        return Err(DomainError::Invalid("expires_at must be in the future".into()));
    }
    Ok(Change::new(
        user_stream(user),
        ExpectedVersion::Any,
        ApiKeyCreated {
            user_id: user,
            key_id: command.key_id,
            name: name.to_owned(),
            key_hash: command.key_hash,
            key_prefix: command.key_prefix,
            scopes: command.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            expires_at: command.expires_at,
        },
    ))
}

pub fn revoke_api_key(key: &UserApiKey) -> Change {
    Change::new(
        user_stream(key.user_id),
        ExpectedVersion::Any,
        ApiKeyRevoked {
            user_id: key.user_id,
            key_id: key.id,
        },
    )
}

/// A refresh token as the directory keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefreshToken {
    pub user_id: UserId,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub redeemed: bool,
}

/// What presenting a refresh token leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Redemption {
    /// Redeem it and issue its successor, atomically, on the user's stream at the
    /// version the decision saw: of two concurrent redemptions one wins.
    Exchange(Change),
    /// It was redeemed before: someone holds a copy. The family is revoked.
    Reuse(Change),
}

pub fn issue_refresh_token(user: UserId, family_id: Uuid, token_hash: String, expires_at: DateTime<Utc>) -> Change {
    Change::new(
        user_stream(user),
        ExpectedVersion::Any,
        RefreshTokenIssued {
            user_id: user,
            family_id,
            token_hash,
            expires_at,
        },
    )
}

/// Decides on a presented, known refresh token; the caller refuses unknown, expired and
/// revoked ones before.
pub fn redeem_refresh_token(
    user: &User,
    token: &RefreshToken,
    token_hash: &str,
    successor_hash: String,
    successor_expires_at: DateTime<Utc>,
) -> Redemption {
    if token.redeemed {
        return Redemption::Reuse(Change::new(
            user_stream(user.id),
            ExpectedVersion::Any,
            RefreshFamilyRevoked {
                user_id: user.id,
                family_id: token.family_id,
            },
        ));
    }
    Redemption::Exchange(Change {
        stream: user_stream(user.id),
        expected: ExpectedVersion::Exact(user.version),
        events: vec![
            RefreshTokenRedeemed {
                user_id: user.id,
                token_hash: token_hash.to_owned(),
            }
            .into(),
            RefreshTokenIssued {
                user_id: user.id,
                family_id: token.family_id,
                token_hash: successor_hash,
                expires_at: successor_expires_at,
            }
            .into(),
        ],
    })
}

fn display_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(DomainError::Invalid("display_name must not be empty".into()));
    }
    if name.chars().count() > MAX_DISPLAY_NAME {
        return Err(DomainError::Invalid(format!(
            "display_name must be at most {MAX_DISPLAY_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::Invalid(
            "display_name must not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signup(display_name: Option<&str>) -> Result<Vec<Change>, DomainError> {
        sign_up(SignUp {
            user_id: UserId(Uuid::from_u128(1)),
            org_id: OrgId(Uuid::from_u128(2)),
            email: Email::parse("ada@example.com").unwrap(),
            display_name: display_name.map(str::to_owned),
            password_hash: "$argon2id$...".into(),
            email_stream_version: 0,
            verification_token_hash: "token-hash".into(),
            sign_in_id: Uuid::from_u128(0x5165),
            sign_in_expires_at: DateTime::UNIX_EPOCH,
            now: Utc::now(),
        })
    }

    #[test]
    fn sign_up_claims_the_email_and_founds_an_org_in_one_decision() {
        let changes = signup(Some("  Ada Lovelace ")).unwrap();
        let streams: Vec<_> = changes.iter().map(|c| c.stream.category()).collect();
        assert_eq!(streams, vec!["email", "org", "user"]);
        assert!(changes.iter().all(|c| c.expected == ExpectedVersion::NoStream));
        match &changes[2].events[0] {
            Event::UserSignedUp(user) => {
                assert_eq!(user.display_name, "Ada Lovelace");
                assert_eq!(user.role, OrgRole::Owner);
            }
            other => panic!("{other:?}"),
        }
        match &changes[1].events[0] {
            Event::OrgCreated(org) => assert_eq!(org.name, "Ada Lovelace's organization"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn display_name_defaults_to_the_mailbox_name() {
        match &signup(None).unwrap()[2].events[0] {
            Event::UserSignedUp(user) => assert_eq!(user.display_name, "ada"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_display_names_are_refused() {
        assert_eq!(
            signup(Some("   ")),
            Err(DomainError::Invalid("display_name must not be empty".into()))
        );
        assert!(matches!(signup(Some(&"x".repeat(101))), Err(DomainError::Invalid(_))));
        assert!(matches!(signup(Some("a\u{0}b")), Err(DomainError::Invalid(_))));
    }

    #[test]
    fn an_email_released_by_a_deleted_account_is_claimed_at_the_version_the_release_left() {
        let changes = sign_up(SignUp {
            user_id: UserId(Uuid::from_u128(5)),
            org_id: OrgId(Uuid::from_u128(6)),
            email: Email::parse("ada@example.com").unwrap(),
            display_name: None,
            password_hash: "$argon2id$...".into(),
            email_stream_version: 2,
            verification_token_hash: "token-hash".into(),
            sign_in_id: Uuid::from_u128(0x5165),
            sign_in_expires_at: DateTime::UNIX_EPOCH,
            now: Utc::now(),
        })
        .unwrap();
        assert_eq!(
            (&changes[0].stream, changes[0].expected),
            (
                &email_stream(&Email::parse("ada@example.com").unwrap()),
                ExpectedVersion::Exact(2)
            )
        );
        // A new account: new ids, the claim and the org as on a first sign-up.
        assert_eq!(
            changes[0].events,
            vec![Event::from(EmailClaimed {
                user_id: UserId(Uuid::from_u128(5))
            })]
        );
        assert_eq!(changes[1].expected, ExpectedVersion::NoStream);
        assert_eq!(changes[2].stream, user_stream(UserId(Uuid::from_u128(5))));
    }

    fn ada(version: u64) -> User {
        User::signed_up(
            &UserSignedUp {
                user_id: UserId(Uuid::from_u128(1)),
                org_id: OrgId(Uuid::from_u128(2)),
                email: Email::parse("ada@example.com").unwrap(),
                display_name: "Ada".into(),
                role: OrgRole::Owner,
                password_hash: "hash".into(),
            },
            DateTime::UNIX_EPOCH,
            version,
        )
    }

    fn vault_of(org: OrgId, id: u128, version: u64) -> Vault {
        Vault {
            id: crate::VaultId(Uuid::from_u128(id)),
            org_id: org,
            name: "prod".into(),
            description: None,
            created_by: crate::authz::Principal::user(UserId(Uuid::from_u128(1))),
            created_at: DateTime::UNIX_EPOCH,
            version,
        }
    }

    fn agent_of(org: OrgId, id: u128, version: u64) -> Agent {
        let registered = crate::events::AgentRegistered {
            agent_id: crate::AgentId(Uuid::from_u128(id)),
            org_id: org,
            created_by: UserId(Uuid::from_u128(1)),
            settings: agent::AgentSettings::named("bot".into(), None),
            key: agent::AgentKey {
                key_id: Uuid::from_u128(id),
                key_hash: format!("hash-{id}"),
                key_prefix: "ocv_".into(),
            },
        };
        Agent::registered(&registered, DateTime::UNIX_EPOCH, version)
    }

    fn enrollment_naming(email: &str, now: DateTime<Utc>) -> Enrollment {
        let command = enrollment::RequestEnrollment {
            enrollment_id: crate::EnrollmentId::new(),
            name: "deploy-bot".into(),
            description: None,
            human_email: Some(Email::parse(email).unwrap()),
            code_hash: enrollment::code_hash("code"),
            requested_from: "203.0.113.7".into(),
        };
        let change = enrollment::request(command, enrollment::Backlog::default(), now).unwrap();
        let Event::EnrollmentRequested(requested) = &change.events[0] else {
            panic!("{change:?}")
        };
        Enrollment::requested(requested, now)
    }

    #[test]
    fn deleting_an_account_ends_its_orgs_vaults_agents_and_pending_enrollments_in_one_decision() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let user = ada(7);
        let org = user.org_id;
        let vaults = [vault_of(org, 10, 3), vault_of(org, 11, 1)];
        let mut retired = agent_of(org, 21, 2);
        retired.is_active = false;
        let agents = [agent_of(org, 20, 4), retired];
        let pending = enrollment_naming("ada@example.com", now);
        let changes = delete_account(
            AccountDeletion {
                user: &user,
                members: vec![user.id],
                vaults: vaults.iter().collect(),
                agents: agents.iter().collect(),
                enrollments: (vec![&pending], 1),
            },
            now,
        )
        .unwrap();
        assert_eq!(
            changes,
            vec![
                Change::new(
                    user_stream(user.id),
                    ExpectedVersion::Exact(7),
                    AccountDeleted {
                        user_id: user.id,
                        org_id: org
                    }
                ),
                Change::new(
                    email_stream(&user.email),
                    ExpectedVersion::Any,
                    EmailReleased { user_id: user.id }
                ),
                Change::new(
                    crate::vault::vault_stream(vaults[0].id),
                    ExpectedVersion::Exact(3),
                    crate::events::VaultDeleted { vault_id: vaults[0].id }
                ),
                Change::new(
                    crate::vault::vault_stream(vaults[1].id),
                    ExpectedVersion::Exact(1),
                    crate::events::VaultDeleted { vault_id: vaults[1].id }
                ),
                // The active agent only: the other one is deactivated already.
                Change::new(
                    agent::agent_stream(agents[0].id),
                    ExpectedVersion::Exact(4),
                    crate::events::AgentDeactivated { agent_id: agents[0].id }
                ),
                Change::new(
                    pending.stream.clone(),
                    ExpectedVersion::Exact(1),
                    crate::events::EnrollmentDenied {
                        enrollment_id: pending.id,
                        denied_by: user.id
                    }
                ),
            ]
        );
    }

    #[test]
    fn an_account_whose_organization_has_other_members_is_not_deleted() {
        let user = ada(1);
        let vault = vault_of(user.org_id, 10, 1);
        let refused = delete_account(
            AccountDeletion {
                user: &user,
                members: vec![user.id, UserId(Uuid::from_u128(99))],
                vaults: vec![&vault],
                agents: Vec::new(),
                enrollments: (Vec::new(), 0),
            },
            DateTime::UNIX_EPOCH,
        );
        assert!(
            matches!(&refused, Err(DomainError::Conflict(detail)) if detail.starts_with("the organization has other members")),
            "{refused:?}"
        );
    }

    #[test]
    fn profile_changes_expect_the_version_they_were_decided_on() {
        let mut user = ada(1);
        let change = update_profile(&user, None, Some(true)).unwrap();
        assert_eq!(change.expected, ExpectedVersion::Exact(1));
        user.apply(&change.events[0], Utc::now(), 2);
        assert_eq!(
            (user.display_name.as_str(), user.marketing_emails, user.version),
            ("Ada", true, 2)
        );
        let change = change_password(&user, "new".into(), None);
        assert_eq!(change.expected, ExpectedVersion::Exact(2));
        user.apply(&change.events[0], Utc::now(), 3);
        assert_eq!(user.password_hash, "new");
    }

    #[test]
    fn signing_out_of_a_sign_in_ends_it_along_with_the_token() {
        let (user, token, family) = (UserId(Uuid::from_u128(1)), Uuid::from_u128(3), Uuid::from_u128(4));
        let revoked = TokenRevoked {
            user_id: user,
            token_id: token,
            expires_at: DateTime::UNIX_EPOCH,
        };
        let change = sign_out(user, token, DateTime::UNIX_EPOCH, Some(family));
        assert_eq!(
            (change.stream, change.expected, change.events),
            (
                user_stream(user),
                ExpectedVersion::Any,
                vec![
                    revoked.clone().into(),
                    SignedOut {
                        user_id: user,
                        family_id: family
                    }
                    .into()
                ]
            )
        );
        // A token of no sign-in (one from sign-up, or for an API key): only the token.
        let change = sign_out(user, token, DateTime::UNIX_EPOCH, None);
        assert_eq!(change.events, vec![Event::from(revoked)]);
    }
}
