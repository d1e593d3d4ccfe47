//! Who and what exists: users, organizations, vaults and revoked sessions. Every request's
//! authentication is checked against this model, so a change here is a change on the
//! very next request.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::agent::Agent;
use domain::authz::PathPattern;
use domain::authz::Policy;
use domain::email::Email;
use domain::events::{
    AccountDeleted, AgentAuthenticated, AgentDeactivated, AgentKeyRotated, AgentRawSigningEnabled, AgentUpdated, Event,
    MemberRemoved, MemberRoleChanged, OrgCreated, PolicyGranted, PolicyRevoked, PolicyUpdated, RefreshFamilyRevoked,
    SignedOut, TransactionSigned,
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
    /// Sign-ins that still stand, by the family of refresh tokens each started: an access
    /// token issued in one (its `sid`) is refused once the sign-in is signed out of or its
    /// family revoked.
    sign_ins: HashMap<Uuid, UserId>,
}

impl Directory {
    pub fn user(&self, id: UserId) -> Option<&User> {
        self.users.get(&id)
    }

    pub fn user_by_email(&self, email: &Email) -> Option<&User> {
        self.users_by_email.get(email).and_then(|id| self.users.get(id))
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

    /// Whether `sid` names a sign-in of `user` that still stands.
    pub fn is_sign_in_of(&self, user: UserId, sid: Uuid) -> bool {
        self.sign_ins.get(&sid) == Some(&user)
    }

    /// Whether a token of `user` issued in session `sid` may still be used: `sid` names
    /// the API key the token was exchanged for, live and unexpired, or a sign-in of theirs
    /// that still stands. Anything else, a revoked key or an ended sign-in, is refused.
    pub fn is_session_live(&self, user: UserId, sid: Uuid, now: DateTime<Utc>) -> bool {
        let key_live = self
            .api_key(ApiKeyId(sid))
            .is_some_and(|key| key.user_id == user && key.is_usable_at(now));
        key_live || self.is_sign_in_of(user, sid)
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
        self.sign_ins.retain(|_, user| *user != user_id);
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
                self.sign_ins.retain(|sign_in, user| !ends(*user, *sign_in));
                if let Some(user) = self.users.get_mut(user_id) {
                    user.apply(event, at, version);
                }
            }
            Event::RefreshTokenIssued(issued) => {
                self.sign_ins.insert(issued.family_id, issued.user_id);
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
    use chrono::Duration;
    use domain::change::Change;
    use domain::email::Email;
    use domain::user::{self, CreateApiKey, SignUp};
    use domain::{ChainHash, ExpectedVersion, Metadata};

    use super::*;
    use crate::ReadModels;

    /// The log in memory: each change appended only if its stream is where it expects,
    /// one event a minute, folded into every read model.
    #[derive(Default)]
    struct Log {
        models: ReadModels,
    }

    impl Log {
        fn now(&self) -> DateTime<Utc> {
            DateTime::UNIX_EPOCH + Duration::minutes(self.models.position() as i64)
        }

        fn append(&mut self, changes: Vec<Change>) {
            for change in changes {
                let version = self.models.streams.stream(change.stream.as_str()).map(|s| s.version);
                match change.expected {
                    ExpectedVersion::NoStream => assert_eq!(version, None, "{}", change.stream.as_str()),
                    ExpectedVersion::Exact(expected) => {
                        assert_eq!(version, Some(expected), "{}", change.stream.as_str())
                    }
                    _ => {}
                }
                for (offset, event) in (1..).zip(change.events) {
                    let position = self.models.position() + 1;
                    let new = event.to_new_event(&Metadata::system(self.now())).unwrap();
                    self.models.apply(&RecordedEvent {
                        position,
                        event_id: new.event_id,
                        stream_id: change.stream.clone(),
                        stream_version: version.unwrap_or(0) + offset,
                        event_type: new.event_type,
                        schema_version: new.schema_version,
                        payload: new.payload,
                        metadata: new.metadata,
                        recorded_at: DateTime::UNIX_EPOCH + Duration::minutes(position as i64),
                        prev_hash: ChainHash::GENESIS,
                        hash: ChainHash::GENESIS,
                    });
                }
            }
        }

        /// Signs `email` up as a sign-up request decides it now.
        fn sign_up(&mut self, email: &str, id: u128) -> UserId {
            let email = Email::parse(email).unwrap();
            let stream = user::email_stream(&email);
            let changes = user::sign_up(SignUp {
                user_id: UserId(Uuid::from_u128(id)),
                org_id: OrgId(Uuid::from_u128(id + 1)),
                email,
                display_name: None,
                password_hash: "hash".into(),
                email_stream_version: self.models.streams.version(&stream),
                verification_token_hash: "token-hash".into(),
                now: chrono::Utc::now(),
            })
            .unwrap();
            self.append(changes);
            UserId(Uuid::from_u128(id))
        }
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
        assert!(!directory.is_session_live(ada, key.0, log.now()));
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
        assert!(!directory.is_session_live(bob, Uuid::from_u128(11), log.now()));
        assert!(directory.user(ada).is_some());
        // The address can found a new account.
        let again = log.sign_up("bob@example.com", 20);
        assert_eq!(
            log.models.directory.user_by_email(&bob_email).map(|user| user.id),
            Some(again)
        );
    }
}
