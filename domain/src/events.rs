//! The event vocabulary: every change of keyward's state is one of these, stored in the
//! log as JSON whose `type` is also the envelope's event type.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::agent::{AgentKey, AgentSettings};
use crate::authz::{Policy, Principal};
use crate::email::Email;
use crate::event::{Metadata, NewEvent, RecordedEvent};
use crate::evm_chain::ChainSettings;
use crate::ids::{AgentId, ApiKeyId, EnrollmentId, MailId, OrgId, PolicyId, SecretId, ShareId, UserId, VaultId};
use crate::mail::MailKind;
use crate::secret::{Sealed, SecretType};
use crate::secret_path::SecretPath;
use crate::share::{Recipient, RecipientType};
use crate::transaction::RequestDigest;
use crate::wei::Wei;

/// Bumped for an event type when its payload changes shape; upcasting reads old versions.
pub const SCHEMA_VERSION: u32 = 1;

macro_rules! event_vocabulary {
    ($($(#[$doc:meta])* $variant:ident = $name:literal),* $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Event {
            $($(#[$doc])* #[serde(rename = $name)] $variant($variant),)*
        }

        impl Event {
            /// Every event type keyward writes.
            pub const TYPES: &'static [&'static str] = &[$($name),*];

            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => $name,)*
                }
            }

            /// Decodes a payload straight into the variant its type names: faster than
            /// letting serde find the tag, which buffers the whole payload first.
            fn from_payload(event_type: &str, payload: &str) -> Option<Result<Event, serde_json::Error>> {
                match event_type {
                    $($name => Some(serde_json::from_str::<$variant>(payload).map(Event::$variant)),)*
                    _ => None,
                }
            }
        }

        $(impl From<$variant> for Event {
            fn from(event: $variant) -> Self {
                Event::$variant(event)
            }
        })*
    };
}

event_vocabulary!(
    /// An organization came into being with its first member.
    OrgCreated = "org.created",
    /// An email address was claimed by an account: the stream of the address can hold one
    /// claim only, which is what keeps addresses unique under concurrent sign-ups.
    EmailClaimed = "email.claimed",
    /// The account that claimed an address was deleted: the address can be claimed again,
    /// by a new account.
    EmailReleased = "email.released",
    UserSignedUp = "user.signed_up",
    /// A link to prove the account's email was mailed to it; only its hash is kept.
    EmailVerificationIssued = "user.email_verification_issued",
    /// The account's holder presented the token mailed to its address: they read its mail.
    EmailVerified = "user.email_verified",
    /// An operator made the account a platform administrator from the server's command line
    /// (`keyward admin grant`), whatever its email.
    PlatformAdminGranted = "platform.admin_granted",
    /// An operator took platform administration back (`keyward admin revoke`).
    PlatformAdminRevoked = "platform.admin_revoked",
    UserAuthenticated = "user.authenticated",
    /// A sign-in began: every token it issues names it (`sid`) and is refused once it
    /// ends (signed out, the password changed, the account gone).
    SignedIn = "user.signed_in",
    /// Credentials were presented and refused (audit `auth.failure`).
    AuthenticationFailed = "auth.failed",
    PasswordChanged = "user.password_changed",
    ProfileUpdated = "user.profile_updated",
    /// A session token was revoked before its expiry (DELETE /v1/auth/token).
    TokenRevoked = "user.token_revoked",
    VaultCreated = "vault.created",
    VaultDeleted = "vault.deleted",
    PolicyGranted = "policy.created",
    PolicyUpdated = "policy.updated",
    PolicyRevoked = "policy.deleted",
    /// A new version of a secret: ciphertext only, the key stays in the key table.
    SecretWritten = "secret.write",
    /// A value was handed out (audit `secret.read`); appended before the value leaves.
    SecretRead = "secret.read",
    /// A read was refused, with the layer that refused it (audit `secret.read_denied`).
    SecretReadDenied = "secret.read_denied",
    /// The secret and, by destroying its keys, every value it had, are gone.
    SecretDeleted = "secret.delete",
    /// One version is kept for audit but can no longer be read.
    SecretVersionDisabled = "secret.version_disabled",
    /// A personal API key (`1ck_`) of a human.
    ApiKeyCreated = "api_key.created",
    ApiKeyRevoked = "api_key.revoked",
    /// A refresh token was handed out (at sign-in, or in exchange for the previous one).
    RefreshTokenIssued = "user.refresh_token_issued",
    /// A refresh token was exchanged; it can never be used again.
    RefreshTokenRedeemed = "user.refresh_token_redeemed",
    /// A redeemed refresh token came back: it leaked, so its whole family is refused, and
    /// with it every access token issued in that sign-in.
    RefreshFamilyRevoked = "user.refresh_family_revoked",
    /// A human signed out (DELETE /v1/auth/token, or the web pages' sign-out): the
    /// sign-in's refresh tokens, and every access token issued in it, are refused.
    SignedOut = "user.signed_out",
    /// A human deleted their account (DELETE /v1/auth/me): every credential of theirs is
    /// refused from now on. Their organization's vaults and agents end in the same append.
    AccountDeleted = "user.deleted",
    /// An owner or admin changed a member's role; on the org's stream, so that two changes
    /// decided at once cannot both take its last owner.
    MemberRoleChanged = "org.member_role_changed",
    /// An owner or admin removed a member: every credential of theirs is refused from now
    /// on, as a deleted account's, and their email is released in the same append.
    MemberRemoved = "org.member_removed",
    AgentRegistered = "agent.registered",
    AgentUpdated = "agent.updated",
    /// A human turned raw digest signing on for an agent, having re-entered their password
    /// and acknowledged that it hands the agent its keys; in the append of the agent's
    /// registration or update that does it.
    AgentRawSigningEnabled = "agent.raw_signing_enabled",
    /// The agent's API key was replaced; tokens issued with the old one are refused.
    AgentKeyRotated = "agent.key_rotated",
    AgentDeactivated = "agent.deactivated",
    /// An agent exchanged its API key for a token (audit `auth.success`).
    AgentAuthenticated = "agent.authenticated",
    /// An agent with no credentials asked to join the organization of a human.
    EnrollmentRequested = "enrollment.requested",
    /// A human allowed the enrollment; the agent is registered in the same append.
    EnrollmentApproved = "enrollment.approved",
    EnrollmentDenied = "enrollment.denied",
    /// A secret was shared with one recipient, or with whoever holds the link.
    ShareCreated = "share.created",
    /// A share was opened and the secret's then-latest version handed out.
    ShareAccessed = "share.accessed",
    /// A share was asked for and refused (wrong passphrase, another address): counts no
    /// access. A wrong passphrase counts toward the share's lock.
    ShareAccessDenied = "share.access_denied",
    /// Too many wrong passphrases were presented for a share: it opens for no one again
    /// (its sharer revokes it and shares anew).
    ShareLocked = "share.locked",
    ShareRevoked = "share.revoked",
    ShareAccepted = "share.accepted",
    /// The account of an `external_email` share's address presented the token emailed to
    /// it: the share is that account's alone from then on.
    ShareClaimed = "share.claimed",
    ShareDeclined = "share.declined",
    /// An administrator added an EVM chain to the registry.
    ChainAdded = "chain.added",
    /// An administrator changed a chain (a configured one included).
    ChainUpdated = "chain.updated",
    ChainRemoved = "chain.removed",
    /// The proxy signed a transaction for an agent: its nonce and value are reserved.
    TransactionSigned = "transaction.signed",
    /// A signed transaction holds its nonce, on its sender's stream: whichever agent signs
    /// with a key, its nonces are reserved in one place.
    NonceReserved = "transaction.nonce_reserved",
    /// The chain's node accepted a signed transaction.
    TransactionBroadcast = "transaction.broadcast",
    /// The node refused it: nonce and value are released.
    TransactionFailed = "transaction.failed",
    /// A guardrail refused a transaction before anything was signed.
    TransactionRejected = "transaction.rejected",
    /// A transaction was run against the chain's state without being sent.
    TransactionSimulated = "transaction.simulated",
    /// The proxy signed a message, typed data or a digest for an agent (POST
    /// /v1/agents/{id}/sign); durable before the signature is handed out.
    MessageSigned = "message.signed",
    /// A signature was refused: the agent may not sign that kind, or that domain.
    MessageRefused = "message.refused",
    /// keyward made (or took in) a signing key for an agent; the event holds it sealed.
    SigningKeyProvisioned = "signing_key.provisioned",
    /// A signing key no longer signs; it stays sealed in the log.
    SigningKeyDeactivated = "signing_key.deactivated",
    /// A human took a copy of a signing key's private key (after re-entering a password).
    SigningKeyExported = "signing_key.exported",
    /// An email is due; its body is not kept (it can carry an API key).
    MailQueued = "mail.queued",
    MailSent = "mail.sent",
    /// An email could not be sent, after every retry or because keyward stopped first.
    MailFailed = "mail.failed",
);

impl Event {
    /// The envelope for appending this event.
    pub fn to_new_event(&self, metadata: &Metadata) -> Result<NewEvent, serde_json::Error> {
        NewEvent::new(self.event_type(), SCHEMA_VERSION, self, metadata)
    }

    /// The domain event a stored event holds: `None` for event types that are not part of
    /// the vocabulary (benchmark and test events share the log format).
    pub fn decode(recorded: &RecordedEvent) -> Option<Result<Event, serde_json::Error>> {
        Event::from_payload(&recorded.event_type, &recorded.payload)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Owner,
    Admin,
    Member,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgCreated {
    pub org_id: OrgId,
    pub name: String,
    pub created_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailClaimed {
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailReleased {
    /// The deleted account that held the address.
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSignedUp {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub email: Email,
    pub display_name: String,
    pub role: OrgRole,
    /// argon2id, PHC format: never the password.
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailVerificationIssued {
    pub user_id: UserId,
    /// SHA-256 hex of the token; the token itself is only in the email.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailVerified {
    pub user_id: UserId,
    /// The address verified, as the account held it then.
    pub email: Email,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAdminGranted {
    pub user_id: UserId,
    /// The address the operator named, for the auditor.
    pub email: Email,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAdminRevoked {
    pub user_id: UserId,
    pub email: Email,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Password,
    ApiKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAuthenticated {
    pub user_id: UserId,
    pub method: AuthMethod,
}

/// How a sign-in began, which says where its tokens work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInKind {
    /// With the password (POST /v1/auth/token) or the token mailed to the address (POST
    /// /v1/auth/verify-email): bearer tokens for the API, and refresh tokens for more.
    Api,
    /// Sign-up's answer (the spec's auto-login): one bearer token for the API, no refresh.
    SignUp,
    /// The web pages' sign-in form: one token, kept in the session cookie, which the API
    /// refuses as a bearer token.
    Page,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub user_id: UserId,
    /// The sign-in's id, the `sid` of its tokens; the family of its refresh tokens, if any.
    pub sign_in_id: Uuid,
    pub kind: SignInKind,
    /// When the last token issued so far expires; each refresh token issued in the sign-in
    /// moves this on to its own expiry.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticationFailed {
    /// The account the credentials named, when they named one that exists.
    pub principal: Option<Principal>,
    pub method: AuthMethod,
    /// Why, for the auditor; the caller only ever sees "invalid credentials".
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChanged {
    pub user_id: UserId,
    pub password_hash: String,
    /// The sign-in the change was made in, which carries on; every other sign-in of the
    /// user ends with the old password. None: every sign-in ends (also in events written
    /// before sign-ins were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_sign_in: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    pub user_id: UserId,
    pub display_name: String,
    pub marketing_emails: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoked {
    pub user_id: UserId,
    pub token_id: Uuid,
    /// Once the token would have expired anyway, the revocation can be forgotten.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultCreated {
    pub vault_id: VaultId,
    pub org_id: OrgId,
    pub name: String,
    pub description: Option<String>,
    pub created_by: Principal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultDeleted {
    pub vault_id: VaultId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyGranted {
    pub policy: Policy,
    pub granted_by: Principal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyUpdated {
    /// The whole policy after the change.
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRevoked {
    pub vault_id: VaultId,
    pub policy_id: PolicyId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretWritten {
    pub secret_id: SecretId,
    pub vault_id: VaultId,
    pub path: SecretPath,
    pub version: u64,
    pub secret_type: SecretType,
    pub sealed: Sealed,
    pub metadata: serde_json::Value,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_access_count: Option<u64>,
    pub written_by: Principal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRead {
    pub secret_id: SecretId,
    pub vault_id: VaultId,
    pub path: SecretPath,
    pub version: u64,
    pub by: Principal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretReadDenied {
    pub vault_id: VaultId,
    pub path: SecretPath,
    pub by: Principal,
    /// Which layer of authorization refused, and why (see domain::authz).
    pub layer: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretDeleted {
    pub secret_id: SecretId,
    pub vault_id: VaultId,
    pub path: SecretPath,
    pub by: Principal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionDisabled {
    pub secret_id: SecretId,
    pub vault_id: VaultId,
    pub path: SecretPath,
    pub version: u64,
    pub by: Principal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    pub user_id: UserId,
    pub key_id: ApiKeyId,
    pub name: String,
    /// SHA-256 hex of the key; the key itself is shown once and kept nowhere.
    pub key_hash: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub user_id: UserId,
    pub key_id: ApiKeyId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenIssued {
    pub user_id: UserId,
    /// Every token exchanged from one sign-in shares a family.
    pub family_id: Uuid,
    /// SHA-256 hex of the token; the token itself is kept nowhere.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenRedeemed {
    pub user_id: UserId,
    pub token_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshFamilyRevoked {
    pub user_id: UserId,
    pub family_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOut {
    pub user_id: UserId,
    /// The sign-in (`SignedIn::sign_in_id`): the family of refresh tokens it started, if any.
    pub family_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDeleted {
    pub user_id: UserId,
    /// The organization the account founded, whose vaults and agents went with it.
    pub org_id: OrgId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRoleChanged {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub role: OrgRole,
    pub by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRemoved {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRegistered {
    pub agent_id: AgentId,
    pub org_id: OrgId,
    pub created_by: UserId,
    pub settings: AgentSettings,
    pub key: AgentKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUpdated {
    pub agent_id: AgentId,
    /// The whole settings after the update, so the event reads on its own.
    pub settings: AgentSettings,
    pub is_active: bool,
    /// Set when the update reactivates the agent: the key id its tokens must carry from
    /// now on, so none issued before its deactivation works again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRawSigningEnabled {
    pub agent_id: AgentId,
    /// The human who confirmed it.
    pub by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentKeyRotated {
    pub agent_id: AgentId,
    pub key: AgentKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentDeactivated {
    pub agent_id: AgentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAuthenticated {
    pub agent_id: AgentId,
    /// The key that was presented, by id: its rotation generation.
    pub key_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRequested {
    pub enrollment_id: EnrollmentId,
    /// The name and description the agent asked for, validated; no access at all.
    pub settings: AgentSettings,
    pub human_email: Option<Email>,
    /// SHA-256 of the code in the approval link.
    pub code_hash: String,
    pub requested_from: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentApproved {
    pub enrollment_id: EnrollmentId,
    pub org_id: OrgId,
    pub approved_by: UserId,
    pub agent_id: AgentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentDenied {
    pub enrollment_id: EnrollmentId,
    pub denied_by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareCreated {
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
    /// argon2id PHC string of the passphrase, if the share has one.
    pub passphrase_hash: Option<String>,
    pub ip_allowlist: Vec<String>,
    /// SHA-256 (hex) of the claim token emailed to an `external_email` recipient: only the
    /// account that presents the token opens the share. Absent on shares made before
    /// claims existed, which open for whoever signs in with the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_token_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAccessed {
    pub share_id: ShareId,
    pub secret_id: SecretId,
    /// The version of the secret handed out.
    pub version: u64,
    /// Who opened it; none for a link share opened without signing in.
    pub by: Option<Principal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAccessDenied {
    pub share_id: ShareId,
    pub by: Option<Principal>,
    pub reason: String,
    /// A passphrase was presented and it was wrong: a guess, counted toward the share's
    /// lock. Absent (false) for every other refusal, and in events written before guesses
    /// were counted, which count toward nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wrong_passphrase: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLocked {
    pub share_id: ShareId,
    /// The wrong passphrases the share had been presented, this lock's included.
    pub wrong_passphrases: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRevoked {
    pub share_id: ShareId,
    pub by: Principal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAccepted {
    pub share_id: ShareId,
    pub by: Principal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareClaimed {
    pub share_id: ShareId,
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareDeclined {
    pub share_id: ShareId,
    pub by: Principal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainAdded {
    pub id: Uuid,
    pub settings: ChainSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainUpdated {
    pub id: Uuid,
    /// The whole settings after the change.
    pub settings: ChainSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainRemoved {
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionSigned {
    pub tx_id: Uuid,
    pub agent_id: AgentId,
    pub chain: String,
    pub chain_id: u64,
    pub from: String,
    pub to: String,
    pub value_wei: Wei,
    /// The most it can pay the network: its gas limit times the highest price per gas it
    /// allows. Zero in events written before keyward kept it (and left out when zero, so
    /// those read and write as they were).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_fee_wei: Wei,
    pub nonce: u64,
    pub tx_hash: String,
    /// The raw signed transaction, 0x hex: public once broadcast, never the key.
    pub signed_tx: String,
    pub signing_key_path: String,
    /// The client's Idempotency-Key: a repeat within 24 hours gets this transaction back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// What the request asked, alongside its Idempotency-Key: a repeat of the key that asks
    /// something else is refused. Absent without a key, and in events written before it was
    /// kept (a repeat of those keys is answered as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<RequestDigest>,
    /// Signed for the agent to send itself: keyward never broadcasts it, but its value and
    /// nonce are reserved all the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sign_only: bool,
}

fn is_zero(wei: &Wei) -> bool {
    wei.is_zero()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceReserved {
    pub tx_id: Uuid,
    pub agent_id: AgentId,
    pub chain_id: u64,
    /// The sender's address, lowercase 0x-hex.
    pub from: String,
    pub nonce: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionBroadcast {
    pub tx_id: Uuid,
    pub agent_id: AgentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionFailed {
    pub tx_id: Uuid,
    pub agent_id: AgentId,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRejected {
    pub agent_id: AgentId,
    pub chain: String,
    pub to: String,
    pub value_wei: Wei,
    /// The guardrail's setting, e.g. `tx_daily_limit_eth`.
    pub rule: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSigned {
    pub agent_id: AgentId,
    pub chain: String,
    pub chain_id: u64,
    /// `personal_sign`, `typed_data` or `eip712_digest`.
    pub intent_type: String,
    /// The signer's address, lowercase 0x hex.
    pub from: String,
    /// What was signed: the 32-byte digest, 0x hex.
    pub hash: String,
    pub signing_key_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRefused {
    pub agent_id: AgentId,
    pub chain: String,
    pub intent_type: String,
    /// The setting that refused it, e.g. `message_signing_enabled`.
    pub rule: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionSimulated {
    pub agent_id: AgentId,
    pub chain: String,
    pub to: String,
    pub value_wei: Wei,
    pub succeeded: bool,
    pub gas_used: Option<u64>,
    pub revert_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyProvisioned {
    pub key_id: Uuid,
    pub agent_id: AgentId,
    /// The chain family, e.g. `ethereum` for every EVM chain.
    pub chain: String,
    pub curve: String,
    /// Uncompressed SEC1, 0x-prefixed hex.
    pub public_key: String,
    pub address: String,
    pub key_version: u64,
    /// The private key, encrypted under the agent's own data key.
    pub sealed: Sealed,
    /// The key this one rotates out, which stops signing in the same event.
    pub replaces: Option<Uuid>,
    /// Brought in by a human rather than made by keyward.
    pub imported: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyExported {
    pub key_id: Uuid,
    pub agent_id: AgentId,
    pub chain: String,
    pub key_version: u64,
    pub by: UserId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyDeactivated {
    pub key_id: Uuid,
    pub agent_id: AgentId,
    pub chain: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailQueued {
    pub mail_id: MailId,
    pub to: Email,
    pub kind: MailKind,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailSent {
    pub mail_id: MailId,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailFailed {
    pub mail_id: MailId,
    pub attempts: u32,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamId;

    #[test]
    fn an_event_round_trips_through_its_stored_form() {
        let event = Event::from(OrgCreated {
            org_id: OrgId(Uuid::from_u128(1)),
            name: "Acme".into(),
            created_by: UserId(Uuid::from_u128(2)),
        });
        let new = event.to_new_event(&Metadata::system(DateTime::UNIX_EPOCH)).unwrap();
        assert_eq!(new.event_type, "org.created");
        assert_eq!(
            new.payload,
            r#"{"type":"org.created","org_id":"00000000-0000-0000-0000-000000000001","name":"Acme","created_by":"00000000-0000-0000-0000-000000000002"}"#
        );
        let recorded = RecordedEvent {
            position: 1,
            event_id: new.event_id,
            stream_id: StreamId::parse("org-1").unwrap(),
            stream_version: 1,
            event_type: new.event_type,
            schema_version: new.schema_version,
            payload: new.payload,
            metadata: new.metadata,
            recorded_at: DateTime::UNIX_EPOCH,
            prev_hash: Default::default(),
            hash: Default::default(),
        };
        assert_eq!(Event::decode(&recorded).unwrap().unwrap(), event);
    }

    #[test]
    fn foreign_event_types_are_not_domain_events() {
        let recorded = RecordedEvent {
            position: 1,
            event_id: Uuid::nil(),
            stream_id: StreamId::parse("bench-1").unwrap(),
            stream_version: 1,
            event_type: "bench.appended".into(),
            schema_version: 1,
            payload: "{}".into(),
            metadata: "{}".into(),
            recorded_at: DateTime::UNIX_EPOCH,
            prev_hash: Default::default(),
            hash: Default::default(),
        };
        assert!(Event::decode(&recorded).is_none());
    }

    #[test]
    fn every_type_name_is_distinct() {
        let mut names = Event::TYPES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Event::TYPES.len());
    }
}
