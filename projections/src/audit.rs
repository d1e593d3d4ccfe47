//! The audit trail: every domain event as an auditor reads it, with an action name, the
//! actor, the client address and the resource, per organization. Values and keys are
//! never in it: events do not carry them.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use domain::events::Event;
use domain::{ActorType, Metadata, OrgId, RecordedEvent};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::DomainModel;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: Uuid,
    pub position: u64,
    pub action: &'static str,
    pub actor_type: ActorType,
    pub actor_id: Option<String>,
    pub org_id: Option<OrgId>,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub details: Value,
    pub ip_address: Option<IpAddr>,
    pub created_at: DateTime<Utc>,
}

/// Which records a query wants; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub resource_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl AuditQuery {
    fn matches(&self, record: &AuditRecord) -> bool {
        self.action.as_deref().is_none_or(|action| record.action == action)
            && self
                .actor_id
                .as_deref()
                .is_none_or(|actor| record.actor_id.as_deref() == Some(actor))
            && self
                .resource_id
                .as_deref()
                .is_none_or(|resource| record.resource_id == resource)
            && self.from.is_none_or(|from| record.created_at >= from)
            && self.to.is_none_or(|to| record.created_at <= to)
    }
}

/// The whole trail in memory. The service answers from the audit index in the store
/// instead (src/store/audit_index.rs), whose answers are tested to be this model's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTrail {
    /// In log order, per organization; events no org owns (a sign-in attempt for an
    /// unknown email) are kept under `None`.
    by_org: HashMap<Option<OrgId>, Vec<AuditRecord>>,
}

impl AuditTrail {
    /// The org's records matching `query`, newest first, after skipping `offset`; and how
    /// many match in all.
    pub fn query(&self, org: OrgId, query: &AuditQuery, offset: usize, limit: usize) -> (Vec<&AuditRecord>, usize) {
        let Some(records) = self.by_org.get(&Some(org)) else {
            return (Vec::new(), 0);
        };
        let matching = || records.iter().rev().filter(|record| query.matches(record));
        (matching().skip(offset).take(limit).collect(), matching().count())
    }

    pub fn record_count(&self) -> usize {
        self.by_org.values().map(Vec::len).sum()
    }
}

impl DomainModel for AuditTrail {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        if let Some(record) = AuditRecord::of(recorded, event) {
            self.by_org.entry(record.org_id).or_default().push(record);
        }
    }
}

impl AuditRecord {
    /// The record of one stored event, as an auditor reads it; none if its metadata does
    /// not parse (a tampered row, which `verify` names).
    pub fn of(recorded: &RecordedEvent, event: &Event) -> Option<Self> {
        Self::described(recorded, event, true)
    }

    /// [`Self::of`] with null details: for what keeps only who did what to what (the audit
    /// index), which then does not build them for every event.
    pub fn without_details(recorded: &RecordedEvent, event: &Event) -> Option<Self> {
        Self::described(recorded, event, false)
    }

    fn described(recorded: &RecordedEvent, event: &Event, detailed: bool) -> Option<Self> {
        let metadata = recorded.metadata().ok()?;
        let (action, resource_type, resource_id, details) = describe(event, detailed);
        let Metadata {
            actor_type,
            actor_id,
            client_ip,
            org_id,
            ..
        } = metadata;
        Some(AuditRecord {
            id: recorded.event_id,
            position: recorded.position,
            action,
            actor_type,
            actor_id,
            org_id: org_id.map(OrgId),
            resource_type,
            resource_id,
            details,
            ip_address: client_ip,
            created_at: recorded.recorded_at,
        })
    }
}

/// The auditor's name for an event, the resource it is about, and its details.
fn describe(event: &Event, detailed: bool) -> (&'static str, &'static str, String, Value) {
    // Built only when asked for: what keeps who did what to what alone needs none.
    macro_rules! details {
        ($($json:tt)+) => {
            if detailed { json!($($json)+) } else { Value::Null }
        };
    }
    match event {
        Event::OrgCreated(e) => ("org.create", "org", e.org_id.to_string(), details!({"name": e.name})),
        Event::EmailClaimed(e) => ("user.email_claim", "user", e.user_id.to_string(), details!({})),
        Event::EmailReleased(e) => ("user.email_release", "user", e.user_id.to_string(), details!({})),
        Event::UserSignedUp(e) => (
            "user.signup",
            "user",
            e.user_id.to_string(),
            details!({"email": e.email}),
        ),
        Event::EmailVerificationIssued(e) => (
            "user.email_verification_sent",
            "user",
            e.user_id.to_string(),
            details!({"expires_at": e.expires_at}),
        ),
        Event::EmailVerified(e) => (
            "user.email_verified",
            "user",
            e.user_id.to_string(),
            details!({"email": e.email}),
        ),
        Event::PlatformAdminGranted(e) => (
            "platform.admin_grant",
            "user",
            e.user_id.to_string(),
            details!({"email": e.email}),
        ),
        Event::PlatformAdminRevoked(e) => (
            "platform.admin_revoke",
            "user",
            e.user_id.to_string(),
            details!({"email": e.email}),
        ),
        Event::UserAuthenticated(e) => (
            "auth.success",
            "user",
            e.user_id.to_string(),
            details!({"method": e.method}),
        ),
        Event::SignedIn(e) => (
            "auth.sign_in",
            "user",
            e.user_id.to_string(),
            details!({"sign_in_id": e.sign_in_id, "kind": e.kind, "expires_at": e.expires_at}),
        ),
        Event::AgentAuthenticated(e) => (
            "auth.success",
            "agent",
            e.agent_id.to_string(),
            details!({"method": "api_key", "key_id": e.key_id}),
        ),
        Event::AuthenticationFailed(e) => (
            "auth.failure",
            e.principal.map_or("unknown", |p| p.kind.as_str()),
            e.principal.map(|p| p.id.to_string()).unwrap_or_default(),
            details!({"method": e.method, "reason": e.reason}),
        ),
        Event::PasswordChanged(e) => ("user.change_password", "user", e.user_id.to_string(), details!({})),
        Event::ProfileUpdated(e) => (
            "user.update",
            "user",
            e.user_id.to_string(),
            details!({"display_name": e.display_name}),
        ),
        Event::TokenRevoked(e) => (
            "auth.token_revoke",
            "user",
            e.user_id.to_string(),
            details!({"token_id": e.token_id}),
        ),
        Event::RefreshTokenIssued(e) => (
            "auth.refresh_issue",
            "user",
            e.user_id.to_string(),
            details!({"family_id": e.family_id}),
        ),
        Event::RefreshTokenRedeemed(e) => ("auth.refresh", "user", e.user_id.to_string(), details!({})),
        Event::RefreshFamilyRevoked(e) => (
            "auth.refresh_reuse",
            "user",
            e.user_id.to_string(),
            details!({"family_id": e.family_id}),
        ),
        Event::SignedOut(e) => (
            "auth.logout",
            "user",
            e.user_id.to_string(),
            details!({"family_id": e.family_id}),
        ),
        Event::AccountDeleted(e) => (
            "user.delete",
            "user",
            e.user_id.to_string(),
            details!({"org_id": e.org_id}),
        ),
        Event::MemberRoleChanged(e) => (
            "org.member_role_change",
            "user",
            e.user_id.to_string(),
            details!({"org_id": e.org_id, "role": e.role, "by": e.by}),
        ),
        Event::MemberRemoved(e) => (
            "org.member_remove",
            "user",
            e.user_id.to_string(),
            details!({"org_id": e.org_id, "by": e.by}),
        ),
        Event::ApiKeyCreated(e) => (
            "api_key.create",
            "api_key",
            e.key_id.to_string(),
            details!({"name": e.name, "key_prefix": e.key_prefix}),
        ),
        Event::ApiKeyRevoked(e) => ("api_key.revoke", "api_key", e.key_id.to_string(), details!({})),
        Event::VaultCreated(e) => (
            "vault.create",
            "vault",
            e.vault_id.to_string(),
            details!({"name": e.name}),
        ),
        Event::VaultDeleted(e) => ("vault.delete", "vault", e.vault_id.to_string(), details!({})),
        Event::PolicyGranted(e) => (
            "policy.create",
            "policy",
            e.policy.id.to_string(),
            policy_details(&e.policy),
        ),
        Event::PolicyUpdated(e) => (
            "policy.update",
            "policy",
            e.policy.id.to_string(),
            policy_details(&e.policy),
        ),
        Event::PolicyRevoked(e) => (
            "policy.delete",
            "policy",
            e.policy_id.to_string(),
            details!({"vault_id": e.vault_id}),
        ),
        Event::SecretWritten(e) => (
            "secret.write",
            "secret",
            e.secret_id.to_string(),
            details!({"vault_id": e.vault_id, "path": e.path, "version": e.version, "type": e.secret_type}),
        ),
        Event::SecretRead(e) => (
            "secret.read",
            "secret",
            e.secret_id.to_string(),
            details!({"vault_id": e.vault_id, "path": e.path, "version": e.version}),
        ),
        Event::SecretReadDenied(e) => (
            "secret.read_denied",
            "secret",
            format!("{}/{}", e.vault_id, e.path),
            details!({"vault_id": e.vault_id, "path": e.path, "layer": e.layer, "reason": e.reason}),
        ),
        Event::SecretDeleted(e) => (
            "secret.delete",
            "secret",
            e.secret_id.to_string(),
            details!({"vault_id": e.vault_id, "path": e.path}),
        ),
        Event::SecretVersionDisabled(e) => (
            "secret.version_disable",
            "secret",
            e.secret_id.to_string(),
            details!({"vault_id": e.vault_id, "path": e.path, "version": e.version}),
        ),
        Event::AgentRegistered(e) => (
            "agent.register",
            "agent",
            e.agent_id.to_string(),
            details!({"name": e.settings.name}),
        ),
        Event::AgentUpdated(e) => (
            "agent.update",
            "agent",
            e.agent_id.to_string(),
            details!({"is_active": e.is_active}),
        ),
        Event::AgentRawSigningEnabled(e) => (
            "agent.enable_raw_signing",
            "agent",
            e.agent_id.to_string(),
            details!({"by": e.by}),
        ),
        Event::AgentKeyRotated(e) => (
            "agent.rotate_key",
            "agent",
            e.agent_id.to_string(),
            details!({"key_prefix": e.key.key_prefix}),
        ),
        Event::AgentDeactivated(e) => ("agent.deactivate", "agent", e.agent_id.to_string(), details!({})),
        Event::TransactionSigned(e) => (
            "transaction.sign",
            "transaction",
            e.tx_id.to_string(),
            details!({
                "agent_id": e.agent_id, "chain": e.chain, "chain_id": e.chain_id, "from": e.from, "to": e.to,
                "value_wei": e.value_wei.as_u128().to_string(), "nonce": e.nonce, "tx_hash": e.tx_hash,
                "signing_key_path": e.signing_key_path,
            }),
        ),
        Event::NonceReserved(e) => (
            "transaction.nonce_reserve",
            "transaction",
            e.tx_id.to_string(),
            details!({"agent_id": e.agent_id, "chain_id": e.chain_id, "from": e.from, "nonce": e.nonce}),
        ),
        Event::TransactionBroadcast(e) => (
            "transaction.broadcast",
            "transaction",
            e.tx_id.to_string(),
            details!({"agent_id": e.agent_id}),
        ),
        Event::TransactionFailed(e) => (
            "transaction.fail",
            "transaction",
            e.tx_id.to_string(),
            details!({"agent_id": e.agent_id, "error": e.error}),
        ),
        Event::TransactionRejected(e) => (
            "transaction.reject",
            "agent",
            e.agent_id.to_string(),
            details!({
                "rule": e.rule, "detail": e.detail, "chain": e.chain, "to": e.to,
                "value_wei": e.value_wei.as_u128().to_string(),
            }),
        ),
        Event::TransactionSimulated(e) => (
            "transaction.simulate",
            "agent",
            e.agent_id.to_string(),
            details!({
                "chain": e.chain, "to": e.to, "value_wei": e.value_wei.as_u128().to_string(),
                "succeeded": e.succeeded, "gas_used": e.gas_used, "revert_reason": e.revert_reason,
            }),
        ),
        Event::MessageSigned(e) => (
            "message.sign",
            "agent",
            e.agent_id.to_string(),
            details!({
                "chain": e.chain, "chain_id": e.chain_id, "intent_type": e.intent_type, "from": e.from,
                "hash": e.hash, "signing_key_path": e.signing_key_path,
            }),
        ),
        Event::MessageRefused(e) => (
            "message.refuse",
            "agent",
            e.agent_id.to_string(),
            details!({"chain": e.chain, "intent_type": e.intent_type, "rule": e.rule, "detail": e.detail}),
        ),
        Event::SigningKeyProvisioned(e) => (
            match (e.imported, e.replaces.is_some()) {
                (true, _) => "signing_key.import",
                (false, true) => "signing_key.rotate",
                (false, false) => "signing_key.create",
            },
            "agent",
            e.agent_id.to_string(),
            details!({
                "key_id": e.key_id, "chain": e.chain, "address": e.address,
                "key_version": e.key_version, "replaces": e.replaces,
            }),
        ),
        Event::SigningKeyDeactivated(e) => (
            "signing_key.deactivate",
            "agent",
            e.agent_id.to_string(),
            details!({"key_id": e.key_id, "chain": e.chain}),
        ),
        Event::SigningKeyExported(e) => (
            "signing_key.export",
            "agent",
            e.agent_id.to_string(),
            details!({"key_id": e.key_id, "chain": e.chain, "key_version": e.key_version, "by": e.by}),
        ),
        Event::ChainAdded(e) => (
            "chain.create",
            "chain",
            e.id.to_string(),
            details!({"settings": e.settings}),
        ),
        Event::ChainUpdated(e) => (
            "chain.update",
            "chain",
            e.id.to_string(),
            details!({"settings": e.settings}),
        ),
        Event::ChainRemoved(e) => ("chain.delete", "chain", e.id.to_string(), details!({})),
        Event::ShareCreated(e) => (
            "share.create",
            "share",
            e.share_id.to_string(),
            details!({
                "secret_id": e.secret_id, "vault_id": e.vault_id, "path": e.path,
                "recipient_type": e.recipient_type, "recipient": e.recipient,
                "expires_at": e.expires_at, "max_access_count": e.max_access_count,
                "passphrase": e.passphrase_hash.is_some(),
            }),
        ),
        Event::ShareAccessed(e) => (
            "share.access",
            "share",
            e.share_id.to_string(),
            details!({"secret_id": e.secret_id, "version": e.version, "by": e.by}),
        ),
        Event::ShareAccessDenied(e) => (
            "share.access_denied",
            "share",
            e.share_id.to_string(),
            details!({"by": e.by, "reason": e.reason, "wrong_passphrase": e.wrong_passphrase}),
        ),
        // The actor is whoever presented the guess that locked it.
        Event::ShareLocked(e) => (
            "share.locked",
            "share",
            e.share_id.to_string(),
            details!({"wrong_passphrases": e.wrong_passphrases}),
        ),
        Event::ShareRevoked(e) => ("share.revoke", "share", e.share_id.to_string(), details!({"by": e.by})),
        Event::ShareAccepted(e) => ("share.accept", "share", e.share_id.to_string(), details!({"by": e.by})),
        Event::ShareClaimed(e) => (
            "share.claim",
            "share",
            e.share_id.to_string(),
            details!({"user_id": e.user_id}),
        ),
        Event::ShareDeclined(e) => ("share.decline", "share", e.share_id.to_string(), details!({"by": e.by})),
        Event::EnrollmentRequested(e) => (
            "agent.enroll",
            "enrollment",
            e.enrollment_id.to_string(),
            details!({"name": e.settings.name, "human_email": e.human_email, "requested_from": e.requested_from}),
        ),
        Event::EnrollmentApproved(e) => (
            "agent.enroll_approve",
            "enrollment",
            e.enrollment_id.to_string(),
            details!({"agent_id": e.agent_id, "approved_by": e.approved_by}),
        ),
        Event::EnrollmentDenied(e) => (
            "agent.enroll_deny",
            "enrollment",
            e.enrollment_id.to_string(),
            details!({"denied_by": e.denied_by}),
        ),
        Event::MailQueued(e) => (
            "mail.queue",
            "mail",
            e.mail_id.to_string(),
            details!({"to": e.to, "kind": e.kind, "subject": e.subject}),
        ),
        Event::MailSent(e) => (
            "mail.send",
            "mail",
            e.mail_id.to_string(),
            details!({"attempts": e.attempts}),
        ),
        Event::MailFailed(e) => (
            "mail.failure",
            "mail",
            e.mail_id.to_string(),
            details!({"attempts": e.attempts, "error": e.error}),
        ),
    }
}

fn policy_details(policy: &domain::authz::Policy) -> Value {
    json!({
        "vault_id": policy.vault_id,
        "principal_type": policy.principal.kind,
        "principal_id": policy.principal.id,
        "secret_path_pattern": policy.pattern.as_str(),
        "permissions": policy.permissions,
    })
}
