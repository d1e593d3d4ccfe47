//! Who and what exists: users, organizations, vaults and revoked sessions. Every request's
//! authentication is checked against this model, so a change here is a change on the
//! very next request.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use domain::agent::Agent;
use domain::authz::PathPattern;
use domain::authz::Policy;
use domain::email::Email;
use domain::events::{
    AccountDeleted, AgentAuthenticated, AgentDeactivated, AgentKeyRotated, AgentRawSigningEnabled, AgentUpdated, Event,
    MemberRemoved, MemberRoleChanged, OrgCreated, PolicyGranted, PolicyRevoked, PolicyUpdated, RefreshFamilyRevoked,
    SignInKind, SignedIn, SignedOut, TransactionSigned,
};
use domain::user::{RefreshToken, User, UserApiKey};
use domain::vault::Vault;
use domain::{AgentId, ApiKeyId, OrgId, RecordedEvent, UserId, VaultId};
use uuid::Uuid;

use crate::DomainModel;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// In the order they joined.
    pub members: Vec<UserId>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    users: HashMap<UserId, User>,
    users_by_email: HashMap<Email, UserId>,
    orgs: HashMap<OrgId, Org>,
    vaults: HashMap<VaultId, Vault>,
    agents: HashMap<AgentId, Agent>,
    /// Current key hashes only: a rotated key stops resolving at once.
    agents_by_key_hash: HashMap<String, AgentId>,
    revoked_tokens: HashMap<Uuid, DateTime<Utc>>,
    /// Live personal API keys, and the index a presented key is looked up by.
    api_keys: HashMap<ApiKeyId, UserApiKey>,
    api_keys_by_hash: HashMap<String, ApiKeyId>,
    /// Refresh tokens by hash; revoked families and password changes remove them.
    refresh_tokens: HashMap<String, RefreshToken>,
    /// Sign-ins that still stand, by id (the `sid` of their tokens; the family of their
    /// refresh tokens, if any): a token issued in one is refused once the sign-in is signed
    /// out of, its family revoked or the password changed.
    sign_ins: HashMap<Uuid, SignIn>,
    /// When `sign_ins`, `refresh_tokens` and `revoked_tokens` together hold this many
    /// entries, those long expired are forgotten (see [`Directory::sweep`]).
    sweep_at: usize,
}

/// A sign-in that still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub user: UserId,
    pub kind: SignInKind,
    /// When the last token issued in it expires: past that it stands for nothing.
    pub expires_at: DateTime<Utc>,
}

/// Credentials expired this long are forgotten: long enough that no replica's clock, a
/// little behind the one that recorded the event, still takes them.
const FORGET_EXPIRED_AFTER: Duration = Duration::hours(1);
/// Sweeps start once this many credentials are kept.
const SWEEP_MIN: usize = 1024;

impl Directory {
    pub fn user(&self, id: UserId) -> Option<&User> {
        self.users.get(&id)
    }

    pub fn user_by_email(&self, email: &Email) -> Option<&User> {
        self.users_by_email.get(email).and_then(|id| self.users.get(id))
    }

    /// The account holding `email`, if its holder verified it: only then is the address
    /// theirs to be mailed at and to decide for (docs/security.md).
    pub fn verified_user_by_email(&self, email: &Email) -> Option<&User> {
        self.user_by_email(email).filter(|user| user.email_verified)
    }

    /// The addresses the members of `org` verified.
    pub fn verified_member_emails(&self, org: OrgId) -> Vec<&Email> {
        self.members(org)
            .filter(|user| user.email_verified)
            .map(|user| &user.email)
            .collect()
    }

    pub fn org(&self, id: OrgId) -> Option<&Org> {
        self.orgs.get(&id)
    }

    pub fn members(&self, org: OrgId) -> impl Iterator<Item = &User> {
        self.orgs
            .get(&org)
            .into_iter()
            .flat_map(|org| &org.members)
            .filter_map(|id| self.users.get(id))
    }

    /// A live (not deleted) vault.
    pub fn vault(&self, id: VaultId) -> Option<&Vault> {
        self.vaults.get(&id)
    }

    /// A live vault of `org`: vaults of other tenants are as good as absent.
    pub fn vault_in_org(&self, id: VaultId, org: OrgId) -> Option<&Vault> {
        self.vaults.get(&id).filter(|vault| vault.org_id == org)
    }

    /// The org's live vaults, oldest first.
    pub fn vaults_of(&self, org: OrgId) -> Vec<&Vault> {
        let mut vaults: Vec<_> = self.vaults.values().filter(|v| v.org_id == org).collect();
        vaults.sort_by_key(|v| (v.created_at, v.id));
        vaults
    }

    pub fn agent(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id)
    }

    /// The agent whose current API key has this hash.
    pub fn agent_by_key_hash(&self, key_hash: &str) -> Option<&Agent> {
        self.agents_by_key_hash.get(key_hash).and_then(|id| self.agents.get(id))
    }

    /// The org's agents, oldest first.
    pub fn agents_of(&self, org: OrgId) -> Vec<&Agent> {
        let mut agents: Vec<_> = self.agents.values().filter(|a| a.org_id == org).collect();
        agents.sort_by_key(|a| (a.created_at, a.id));
        agents
    }

    pub fn api_key(&self, id: ApiKeyId) -> Option<&UserApiKey> {
        self.api_keys.get(&id)
    }

    pub fn api_key_by_hash(&self, key_hash: &str) -> Option<&UserApiKey> {
        self.api_keys_by_hash.get(key_hash).and_then(|id| self.api_keys.get(id))
    }

    /// A user's live keys, oldest first.
    pub fn api_keys_of(&self, user: UserId) -> Vec<&UserApiKey> {
        let mut keys: Vec<_> = self.api_keys.values().filter(|k| k.user_id == user).collect();
        keys.sort_by_key(|k| (k.created_at, k.id));
        keys
    }

    pub fn refresh_token(&self, token_hash: &str) -> Option<&RefreshToken> {
        self.refresh_tokens.get(token_hash)
    }

    pub fn is_token_revoked(&self, token_id: Uuid) -> bool {
        self.revoked_tokens.contains_key(&token_id)
    }

    /// The sign-in of `user` that `sid` names, if it still stands.
    pub fn sign_in_of(&self, user: UserId, sid: Uuid) -> Option<&SignIn> {
        self.sign_ins.get(&sid).filter(|sign_in| sign_in.user == user)
    }

    /// Whether `sid` names a sign-in of `user` that still stands.
    pub fn is_sign_in_of(&self, user: UserId, sid: Uuid) -> bool {
        self.sign_in_of(user, sid).is_some()
    }

    /// Whether a bearer token of `user` issued in session `sid` may still be used: `sid`
    /// names the API key the token was exchanged for, live and unexpired, or a sign-in of
    /// theirs for the API that still stands. Anything else, a revoked key, an ended
    /// sign-in or one of the web pages, is refused.
    pub fn is_api_session_live(&self, user: UserId, sid: Uuid, now: DateTime<Utc>) -> bool {
        let key_live = self
            .api_key(ApiKeyId(sid))
            .is_some_and(|key| key.user_id == user && key.is_usable_at(now));
        key_live || self.sign_in_live(user, sid, now, |kind| kind != SignInKind::Page)
    }

    /// Whether the web pages' session token of `user` issued in sign-in `sid` may still be
    /// used: `sid` names a sign-in of theirs through the pages' form that still stands.
    pub fn is_page_session_live(&self, user: UserId, sid: Uuid, now: DateTime<Utc>) -> bool {
        self.sign_in_live(user, sid, now, |kind| kind == SignInKind::Page)
    }

    /// Asked at `now` rather than left to the sweep, so the answer never depends on when
    /// the last sweep ran.
    fn sign_in_live(&self, user: UserId, sid: Uuid, now: DateTime<Utc>, kind: impl Fn(SignInKind) -> bool) -> bool {
        self.sign_in_of(user, sid)
            .is_some_and(|sign_in| kind(sign_in.kind) && now < sign_in.expires_at)
    }

    /// How many sign-ins, refresh tokens and revoked tokens are kept.
    fn credential_count(&self) -> usize {
        self.sign_ins.len() + self.refresh_tokens.len() + self.revoked_tokens.len()
    }

    /// Forgets, once the credentials kept have doubled since the last sweep, the sign-ins,
    /// refresh tokens and revocations whose tokens expired well before `at`: an expired
    /// token is refused whether or not they are remembered, so forgetting them changes no
    /// answer, and what is kept follows the sign-ins that stand rather than every sign-in
    /// ever made (docs/cost.md). `at` is the recorded time of the event being folded, so a
    /// rebuild sweeps exactly as the first fold did.
    fn sweep(&mut self, at: DateTime<Utc>) {
        if self.credential_count() < self.sweep_at {
            return;
        }
        let cutoff = at - FORGET_EXPIRED_AFTER;
        self.sign_ins.retain(|_, sign_in| sign_in.expires_at > cutoff);
        self.refresh_tokens.retain(|_, token| token.expires_at > cutoff);
        self.revoked_tokens.retain(|_, expires_at| *expires_at > cutoff);
        self.sweep_at = (2 * self.credential_count()).max(SWEEP_MIN);
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    pub fn vault_count(&self) -> usize {
        self.vaults.len()
    }
}

impl Directory {
    /// A deleted account or a removed member: every credential of the user goes with them.
    /// A token of theirs names no user any more, their refresh tokens, sign-ins and API
    /// keys no longer resolve, and the email is free for a new account.
    fn forget_user(&mut self, user_id: UserId, org_id: OrgId) {
        if let Some(user) = self.users.remove(&user_id)
            && self.users_by_email.get(&user.email) == Some(&user_id)
        {
            self.users_by_email.remove(&user.email);
        }
        if let Some(org) = self.orgs.get_mut(&org_id) {
            org.members.retain(|member| *member != user_id);
        }
        self.refresh_tokens.retain(|_, token| token.user_id != user_id);
        self.sign_ins.retain(|_, sign_in| sign_in.user != user_id);
        let api_keys_by_hash = &mut self.api_keys_by_hash;
        self.api_keys.retain(|_, key| {
            let keep = key.user_id != user_id;
            if !keep {
                api_keys_by_hash.remove(&key.key_hash);
            }
            keep
        });
    }
}

impl DomainModel for Directory {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let (at, version) = (recorded.recorded_at, recorded.stream_version);
        match event {
            Event::OrgCreated(OrgCreated { org_id, name, .. }) => {
                self.orgs.insert(
                    *org_id,
                    Org {
                        id: *org_id,
                        name: name.clone(),
                        created_at: at,
                        members: Vec::new(),
                    },
                );
            }
            Event::UserSignedUp(signed_up) => {
                if let Some(org) = self.orgs.get_mut(&signed_up.org_id) {
                    org.members.push(signed_up.user_id);
                }
                self.users_by_email.insert(signed_up.email.clone(), signed_up.user_id);
                self.users
                    .insert(signed_up.user_id, User::signed_up(signed_up, at, version));
            }
            Event::PasswordChanged(domain::events::PasswordChanged {
                user_id, kept_sign_in, ..
            }) => {
                // A new password ends every sign-in made with the old one, access and
                // refresh tokens alike, but the one the change was made in.
                let ends = |user: UserId, sign_in: Uuid| user == *user_id && Some(sign_in) != *kept_sign_in;
                self.refresh_tokens
                    .retain(|_, token| !ends(token.user_id, token.family_id));
                self.sign_ins.retain(|id, sign_in| !ends(sign_in.user, *id));
                if let Some(user) = self.users.get_mut(user_id) {
                    user.apply(event, at, version);
                }
            }
            Event::SignedIn(SignedIn {
                user_id,
                sign_in_id,
                kind,
                expires_at,
            }) => {
                self.sign_ins.insert(
                    *sign_in_id,
                    SignIn {
                        user: *user_id,
                        kind: *kind,
                        expires_at: *expires_at,
                    },
                );
                if let Some(user) = self.users.get_mut(user_id) {
                    user.apply(event, at, version);
                }
                self.sweep(at);
            }
            Event::RefreshTokenIssued(issued) => {
                // A sign-in lasts as long as its last refresh token. One recorded before
                // sign-ins had events of their own begins with its first refresh token.
                let sign_in = self.sign_ins.entry(issued.family_id).or_insert(SignIn {
                    user: issued.user_id,
                    kind: SignInKind::Api,
                    expires_at: issued.expires_at,
                });
                sign_in.expires_at = sign_in.expires_at.max(issued.expires_at);
                let token = RefreshToken {
                    user_id: issued.user_id,
                    family_id: issued.family_id,
                    expires_at: issued.expires_at,
                    redeemed: false,
                };
                self.refresh_tokens.insert(issued.token_hash.clone(), token);
                if let Some(user) = self.users.get_mut(&issued.user_id) {
                    user.apply(event, at, version);
                }
                self.sweep(at);
            }
            Event::RefreshTokenRedeemed(redeemed) => {
                if let Some(token) = self.refresh_tokens.get_mut(&redeemed.token_hash) {
                    token.redeemed = true;
                }
                if let Some(user) = self.users.get_mut(&redeemed.user_id) {
                    user.apply(event, at, version);
                }
            }
            Event::RefreshFamilyRevoked(RefreshFamilyRevoked { user_id, family_id })
            | Event::SignedOut(SignedOut { user_id, family_id }) => {
                self.refresh_tokens.retain(|_, token| token.family_id != *family_id);
                self.sign_ins.remove(family_id);
                if let Some(user) = self.users.get_mut(user_id) {
                    user.apply(event, at, version);
                }
            }
            Event::AccountDeleted(AccountDeleted { user_id, org_id })
            | Event::MemberRemoved(MemberRemoved { user_id, org_id, .. }) => self.forget_user(*user_id, *org_id),
            Event::MemberRoleChanged(MemberRoleChanged { user_id, role, .. }) => {
                // The role lives on the user; the event is on the org's stream, so the
                // user's stream version stays where it is.
                if let Some(user) = self.users.get_mut(user_id) {
                    user.role = *role;
                }
            }
            Event::ProfileUpdated(domain::events::ProfileUpdated { user_id, .. })
            | Event::UserAuthenticated(domain::events::UserAuthenticated { user_id, .. })
            | Event::EmailVerificationIssued(domain::events::EmailVerificationIssued { user_id, .. })
            | Event::EmailVerified(domain::events::EmailVerified { user_id, .. })
            | Event::PlatformAdminGranted(domain::events::PlatformAdminGranted { user_id, .. })
            | Event::PlatformAdminRevoked(domain::events::PlatformAdminRevoked { user_id, .. }) => {
                if let Some(user) = self.users.get_mut(user_id) {
                    user.apply(event, at, version);
                }
            }
            Event::TokenRevoked(revoked) => {
                if let Some(user) = self.users.get_mut(&revoked.user_id) {
                    user.apply(event, at, version);
                }
                self.revoked_tokens.insert(revoked.token_id, revoked.expires_at);
                self.sweep(at);
            }
            Event::VaultCreated(created) => {
                self.vaults
                    .insert(created.vault_id, Vault::created(created, at, version));
            }
            Event::VaultDeleted(deleted) => {
                self.vaults.remove(&deleted.vault_id);
            }
            Event::AgentRegistered(registered) => {
                self.agents_by_key_hash
                    .insert(registered.key.key_hash.clone(), registered.agent_id);
                self.agents
                    .insert(registered.agent_id, Agent::registered(registered, at, version));
            }
            Event::AgentKeyRotated(AgentKeyRotated { agent_id, key }) => {
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    self.agents_by_key_hash.remove(&agent.key.key_hash);
                    self.agents_by_key_hash.insert(key.key_hash.clone(), *agent_id);
                    agent.apply(event, at, version);
                }
            }
            Event::AgentUpdated(AgentUpdated { agent_id, .. })
            | Event::AgentRawSigningEnabled(AgentRawSigningEnabled { agent_id, .. })
            | Event::AgentDeactivated(AgentDeactivated { agent_id })
            // Reservations are on the agent's stream: its version moves with them.
            | Event::TransactionSigned(TransactionSigned { agent_id, .. })
            | Event::AgentAuthenticated(AgentAuthenticated { agent_id, .. }) => {
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.apply(event, at, version);
                }
            }
            // Policies live in their vault's stream: the vault's version moves with them.
            Event::PolicyGranted(PolicyGranted {
                policy: Policy { vault_id, .. },
                ..
            })
            | Event::PolicyUpdated(PolicyUpdated {
                policy: Policy { vault_id, .. },
            })
            | Event::PolicyRevoked(PolicyRevoked { vault_id, .. }) => {
                if let Some(vault) = self.vaults.get_mut(vault_id) {
                    vault.version = version;
                }
            }
            // Not about who exists: the access and secrets models hold these.
            Event::ApiKeyCreated(created) => {
                if let Some(user) = self.users.get_mut(&created.user_id) {
                    user.apply(event, at, version);
                }
                let key = UserApiKey {
                    id: created.key_id,
                    user_id: created.user_id,
                    name: created.name.clone(),
                    key_hash: created.key_hash.clone(),
                    key_prefix: created.key_prefix.clone(),
                    // Validated when created; a pattern that no longer parses reaches nothing.
                    scopes: created
                        .scopes
                        .iter()
                        .filter_map(|s| PathPattern::parse(s.as_str()).ok())
                        .collect(),
                    created_at: at,
                    expires_at: created.expires_at,
                };
                self.api_keys_by_hash.insert(key.key_hash.clone(), key.id);
                self.api_keys.insert(key.id, key);
            }
            Event::ApiKeyRevoked(revoked) => {
                if let Some(user) = self.users.get_mut(&revoked.user_id) {
                    user.apply(event, at, version);
                }
                if let Some(key) = self.api_keys.remove(&revoked.key_id) {
                    self.api_keys_by_hash.remove(&key.key_hash);
                }
            }
            // The stream catalog holds the version a sign-up claims a released email at.
            Event::EmailClaimed(_)
            | Event::EmailReleased(_)
            | Event::AuthenticationFailed(_)
            | Event::SecretWritten(_)
            | Event::SecretRead(_)
            | Event::SecretReadDenied(_)
            | Event::SecretDeleted(_)
            | Event::SecretVersionDisabled(_)
            | Event::NonceReserved(_)
            | Event::TransactionBroadcast(_)
            | Event::TransactionFailed(_)
            | Event::TransactionRejected(_)
            | Event::TransactionSimulated(_)
            | Event::MessageSigned(_)
            | Event::MessageRefused(_)
            | Event::SigningKeyProvisioned(_)
            | Event::SigningKeyDeactivated(_)
            | Event::SigningKeyExported(_)
            | Event::ChainAdded(_)
            | Event::ChainUpdated(_)
            | Event::ChainRemoved(_)
            | Event::ShareCreated(_)
            | Event::ShareAccessed(_)
            | Event::ShareAccessDenied(_)
            | Event::ShareLocked(_)
            | Event::ShareRevoked(_)
            | Event::ShareAccepted(_)
            | Event::ShareClaimed(_)
            | Event::ShareDeclined(_)
            | Event::EnrollmentRequested(_)
            | Event::EnrollmentApproved(_)
            | Event::EnrollmentDenied(_)
            | Event::MailQueued(_)
            | Event::MailSent(_)
            | Event::MailFailed(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::ExpectedVersion;
    use domain::change::Change;
    use domain::email::Email;
    use domain::user::{self, CreateApiKey};

    use super::*;
    use crate::test_log::Log;

    #[test]
    fn a_pages_sign_in_opens_the_pages_only_and_an_api_or_sign_up_one_the_api_only() {
        let mut log = Log::default();
        let ada = log.sign_up("ada@example.com", 1);
        let (sign_up, page, api) = (Uuid::from_u128(1 + 4096), Uuid::from_u128(50), Uuid::from_u128(51));
        let hour = log.now() + Duration::hours(1);
        log.append(vec![
            user::sign_in(ada, page, SignInKind::Page, hour),
            user::sign_in(ada, api, SignInKind::Api, hour),
        ]);
        let now = log.now();
        let directory = &log.models.directory;
        for sid in [sign_up, api] {
            assert!(directory.is_api_session_live(ada, sid, now), "{sid}");
            assert!(!directory.is_page_session_live(ada, sid, now), "{sid}");
        }
        assert!(directory.is_page_session_live(ada, page, now));
        assert!(!directory.is_api_session_live(ada, page, now));
        // Another user's sign-in is not theirs; an unknown one is nobody's.
        let bob = UserId(Uuid::from_u128(10));
        assert!(!directory.is_page_session_live(bob, page, now));
        assert!(!directory.is_api_session_live(ada, Uuid::from_u128(99), now));
        // A sign-in whose tokens all expired stands for nothing, swept or not.
        assert!(!directory.is_page_session_live(ada, page, hour));
        assert!(!directory.is_api_session_live(ada, api, hour));
    }

    #[test]
    fn a_sign_in_recorded_before_sign_ins_had_events_begins_with_its_first_refresh_token() {
        let mut log = Log::default();
        let ada = log.sign_up("ada@example.com", 1);
        let (family, month) = (Uuid::from_u128(60), log.now() + Duration::days(30));
        log.append(vec![user::issue_refresh_token(ada, family, "refresh".into(), month)]);
        let directory = &log.models.directory;
        assert_eq!(
            directory.sign_in_of(ada, family),
            Some(&SignIn {
                user: ada,
                kind: SignInKind::Api,
                expires_at: month
            })
        );
        assert!(directory.is_api_session_live(ada, family, log.now()));
        assert!(!directory.is_page_session_live(ada, family, log.now()));
    }

    #[test]
    fn a_new_password_ends_the_sign_up_and_the_pages_sign_ins_and_signing_out_ends_one() {
        let mut log = Log::default();
        let ada = log.sign_up("ada@example.com", 1);
        let (sign_up, page, api, kept) = (
            Uuid::from_u128(1 + 4096),
            Uuid::from_u128(50),
            Uuid::from_u128(51),
            Uuid::from_u128(52),
        );
        let hour = log.now() + Duration::hours(1);
        log.append(vec![
            user::sign_in(ada, page, SignInKind::Page, hour),
            user::sign_in(ada, api, SignInKind::Api, hour),
            user::sign_in(ada, kept, SignInKind::Api, hour),
        ]);
        log.append(vec![user::sign_out(ada, Uuid::from_u128(7), hour, Some(api))]);
        assert!(!log.models.directory.is_sign_in_of(ada, api), "signed out");
        assert!(log.models.directory.is_sign_in_of(ada, page));

        let changed = user::change_password(log.models.directory.user(ada).unwrap(), "new".into(), Some(kept));
        log.append(vec![changed]);
        let directory = &log.models.directory;
        for ended in [sign_up, page, api] {
            assert!(!directory.is_sign_in_of(ada, ended), "{ended}");
        }
        assert!(directory.is_api_session_live(ada, kept, log.now()));
    }

    #[test]
    fn expired_sign_ins_refresh_tokens_and_revocations_are_forgotten_and_live_ones_kept() {
        let mut log = Log::default();
        let ada = log.sign_up("ada@example.com", 1);
        let lasting = Uuid::from_u128(0x1a57);
        let year = log.now() + Duration::days(365);
        log.append(vec![
            user::sign_in(ada, lasting, SignInKind::Api, year),
            user::issue_refresh_token(ada, lasting, "lasting refresh".into(), year),
        ]);
        // Ten thousand page sign-ins, each over within the hour, and as many revocations.
        for n in 0..5_000u128 {
            let soon = log.now() + Duration::minutes(30);
            log.append(vec![
                user::sign_in(ada, Uuid::from_u128(0x10_000 + n), SignInKind::Page, soon),
                user::revoke_token(ada, Uuid::from_u128(0x20_000 + n), soon),
            ]);
        }
        let directory = &log.models.directory;
        // One sign-in a minute, each lasting half an hour, forgotten an hour after: fewer
        // than two sweeps' worth are ever kept.
        assert!(
            directory.credential_count() < 2 * SWEEP_MIN,
            "{} kept",
            directory.credential_count()
        );
        assert!(directory.is_api_session_live(ada, lasting, log.now()));
        assert!(directory.refresh_token("lasting refresh").is_some());
        let last = Uuid::from_u128(0x10_000 + 4_999);
        assert!(directory.is_page_session_live(ada, last, log.now()));
        assert!(!directory.is_page_session_live(ada, Uuid::from_u128(0x10_000), log.now()));
    }

    #[test]
    fn a_deleted_account_leaves_no_credential_and_frees_its_email() {
        let mut log = Log::default();
        let ada = log.sign_up("ada@example.com", 1);
        let bob = log.sign_up("bob@example.com", 10);
        let key = ApiKeyId(Uuid::from_u128(3));
        for user in [ada, bob] {
            let create = CreateApiKey {
                key_id: ApiKeyId(Uuid::from_u128(user.0.as_u128() + 2)),
                name: "ci".into(),
                key_hash: format!("key of {user}"),
                key_prefix: "1ck_".into(),
                scopes: Vec::new(),
                expires_at: None,
            };
            let created = user::create_api_key(user, create, log.now()).unwrap();
            let sign_in = Uuid::from_u128(user.0.as_u128() + 4);
            let issued = user::issue_refresh_token(user, sign_in, format!("refresh of {user}"), log.now());
            log.append(vec![created, issued]);
        }
        let (ada_sign_in, ada_org) = (Uuid::from_u128(5), OrgId(Uuid::from_u128(2)));
        assert!(log.models.directory.is_sign_in_of(ada, ada_sign_in));

        let deletion = log.models.account_deletion(ada).unwrap();
        let changes = user::delete_account(deletion, log.now()).unwrap();
        log.append(changes);

        let directory = &log.models.directory;
        let email = Email::parse("ada@example.com").unwrap();
        assert_eq!(directory.user(ada), None);
        assert_eq!(directory.user_by_email(&email), None);
        assert_eq!(directory.members(ada_org).count(), 0);
        assert_eq!(directory.api_key(key), None);
        assert_eq!(directory.api_key_by_hash(&format!("key of {ada}")), None);
        assert_eq!(directory.refresh_token(&format!("refresh of {ada}")), None);
        assert!(!directory.is_sign_in_of(ada, ada_sign_in));
        assert!(!directory.is_api_session_live(ada, key.0, log.now()));
        // Bob is untouched.
        assert!(directory.user(bob).is_some());
        assert!(directory.api_key_by_hash(&format!("key of {bob}")).is_some());
        assert!(directory.refresh_token(&format!("refresh of {bob}")).is_some());
        assert!(directory.is_sign_in_of(bob, Uuid::from_u128(14)));

        // The address is claimed again by a new account, at the version its release left.
        let again = log.sign_up("ada@example.com", 20);
        let directory = &log.models.directory;
        assert_eq!(directory.user_by_email(&email).map(|user| user.id), Some(again));
        assert_eq!(directory.user(ada), None);
        assert_eq!(
            log.models.streams.version(&user::email_stream(&email)),
            3,
            "claimed, released, claimed"
        );
    }

    /// A role changed is on the user at once; a removed member's credentials are refused
    /// as a deleted account's, and their email is free. No endpoint adds a second member to
    /// an org yet, so the second one's sign-up names the first one's org here.
    #[test]
    fn a_members_role_changes_on_the_user_and_a_removed_member_leaves_no_credential() {
        use domain::events::{OrgRole, UserSignedUp};
        use domain::membership;

        let mut log = Log::default();
        let ada = log.sign_up("ada@example.com", 1);
        let org = OrgId(Uuid::from_u128(2));
        let bob = UserId(Uuid::from_u128(10));
        let bob_email = Email::parse("bob@example.com").unwrap();
        let joined = UserSignedUp {
            user_id: bob,
            org_id: org,
            email: bob_email.clone(),
            display_name: "bob".into(),
            role: OrgRole::Member,
            password_hash: "hash".into(),
        };
        let key = CreateApiKey {
            key_id: ApiKeyId(Uuid::from_u128(11)),
            name: "ci".into(),
            key_hash: "key of bob".into(),
            key_prefix: "1ck_".into(),
            scopes: Vec::new(),
            expires_at: None,
        };
        let key = user::create_api_key(bob, key, log.now()).unwrap();
        let issued = user::issue_refresh_token(bob, Uuid::from_u128(12), "refresh of bob".into(), log.now());
        log.append(vec![
            Change::new(user::user_stream(bob), ExpectedVersion::NoStream, joined),
            key,
            issued,
        ]);
        let change = membership::change_role(log.models.membership(ada, bob).unwrap(), OrgRole::Admin)
            .unwrap()
            .unwrap();
        log.append(vec![change]);
        let directory = &log.models.directory;
        assert_eq!(
            directory.user(bob).map(|user| (user.role, user.version)),
            Some((OrgRole::Admin, 3))
        );
        assert_eq!(
            directory
                .members(org)
                .map(|user| (user.id, user.role))
                .collect::<Vec<_>>(),
            vec![(ada, OrgRole::Owner), (bob, OrgRole::Admin)]
        );

        let changes = membership::remove_member(log.models.membership(ada, bob).unwrap()).unwrap();
        log.append(changes);
        let directory = &log.models.directory;
        assert_eq!(
            directory.members(org).map(|user| user.id).collect::<Vec<_>>(),
            vec![ada]
        );
        assert_eq!(directory.user(bob), None);
        assert_eq!(directory.user_by_email(&bob_email), None);
        assert_eq!(directory.api_key_by_hash("key of bob"), None);
        assert_eq!(directory.refresh_token("refresh of bob"), None);
        assert!(!directory.is_sign_in_of(bob, Uuid::from_u128(12)));
        assert!(!directory.is_api_session_live(bob, Uuid::from_u128(11), log.now()));
        assert!(directory.user(ada).is_some());
        // The address can found a new account.
        let again = log.sign_up("bob@example.com", 20);
        assert_eq!(
            log.models.directory.user_by_email(&bob_email).map(|user| user.id),
            Some(again)
        );
    }
}
