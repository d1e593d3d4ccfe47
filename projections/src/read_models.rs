//! The set of all read models, folded together so they always stand at one position.

use chrono::{DateTime, Utc};
use domain::change::DomainError;
use domain::email::Email;
use domain::enrollment::{Backlog, Pending};
use domain::events::{Event, OrgRole};
use domain::membership::Membership;
use domain::network::NetworkPrefix;
use domain::user::{AccountDeletion, org_stream};
use domain::{RecordedEvent, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    Access, Directory, DomainModel, Enrollments, Outbox, ReadModel, Secrets, Shares, SigningKeys, StreamCatalog,
    Transactions,
};

/// How far into the log a build goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Every event.
    End,
    /// Events up to and including this global position.
    Position(u64),
    /// Events recorded at or before this moment.
    Time(DateTime<Utc>),
}

impl Until {
    /// Whether `event` belongs to the log as it stood at this bound. The log's
    /// `recorded_at` never decreases, so the first event outside marks the end.
    pub fn includes(&self, event: &RecordedEvent) -> bool {
        match self {
            Until::End => true,
            Until::Position(position) => event.position <= *position,
            Until::Time(moment) => event.recorded_at <= *moment,
        }
    }
}

/// Models a replay can build: folded in position order, skipping what they hold already.
pub trait Fold: Default + Send + 'static {
    /// The only event types that change these models, if not every type: a build may
    /// read just these from the log, and fold the same models as from every event.
    const EVENT_TYPES: Option<&'static [&'static str]> = None;

    /// Folds one event in; false if it was at or before the current position.
    fn apply(&mut self, event: &RecordedEvent) -> bool;
    fn position(&self) -> u64;
}

/// Just what a point-in-time access review reads ([`crate::access_review::review`]): the
/// vaults, the agents and the policies. Only the events that change those are folded, so
/// that a review reads the few events that change who may reach what, however many reads
/// and sign-ins the log holds around them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessModels {
    position: u64,
    pub directory: Directory,
    pub access: Access,
}

impl AccessModels {
    /// The events that create, change or end a vault, an agent or a policy. Whatever else
    /// the directory folds (people, sign-ins, an agent's last use) no review reads.
    /// Migrations index exactly these, in this order (`events_shaping_access`).
    pub const SHAPING_EVENTS: &'static [&'static str] = &[
        "vault.created",
        "vault.deleted",
        "policy.created",
        "policy.updated",
        "policy.deleted",
        "agent.registered",
        "agent.updated",
        "agent.raw_signing_enabled",
        "agent.key_rotated",
        "agent.deactivated",
    ];
}

impl Fold for AccessModels {
    const EVENT_TYPES: Option<&'static [&'static str]> = Some(Self::SHAPING_EVENTS);

    fn apply(&mut self, event: &RecordedEvent) -> bool {
        if event.position <= self.position {
            return false;
        }
        let shaping = Self::SHAPING_EVENTS.contains(&event.event_type.as_str());
        if shaping && let Some(Ok(decoded)) = Event::decode(event) {
            self.directory.apply(event, &decoded);
            self.access.apply(event, &decoded);
        }
        self.position = event.position;
        true
    }

    fn position(&self) -> u64 {
        self.position
    }
}

impl Fold for ReadModels {
    fn apply(&mut self, event: &RecordedEvent) -> bool {
        ReadModels::apply(self, event)
    }

    fn position(&self) -> u64 {
        ReadModels::position(self)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadModels {
    /// The position of the last event folded in.
    position: u64,
    last_recorded_at: Option<DateTime<Utc>>,
    /// Events of a known type whose payload did not decode: zero unless the log was
    /// written by an incompatible version. Shown by `keyward replay`.
    undecodable: u64,
    pub streams: StreamCatalog,
    pub directory: Directory,
    pub access: Access,
    pub secrets: Secrets,
    pub shares: Shares,
    pub transactions: Transactions,
    pub signing_keys: SigningKeys,
    /// Administrators' changes to the chain registry.
    pub chains: domain::evm_chain::RegistryChanges,
    pub enrollments: Enrollments,
    pub outbox: Outbox,
}

impl ReadModels {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn last_recorded_at(&self) -> Option<DateTime<Utc>> {
        self.last_recorded_at
    }

    /// Folds one event into every model. An event at or before the current position was
    /// applied already and is skipped, so a tail that overlaps a catch-up read is harmless.
    pub fn apply(&mut self, event: &RecordedEvent) -> bool {
        if event.position <= self.position {
            return false;
        }
        self.streams.apply(event);
        match Event::decode(event) {
            Some(Ok(decoded)) => {
                self.directory.apply(event, &decoded);
                self.access.apply(event, &decoded);
                self.secrets.apply(event, &decoded);
                self.shares.apply(event, &decoded);
                self.transactions.apply(event, &decoded);
                self.signing_keys.apply(event, &decoded);
                self.chains.apply(event, &decoded);
                self.enrollments.apply(event, &decoded);
                self.outbox.apply(event, &decoded);
            }
            Some(Err(_)) => self.undecodable += 1,
            None => {}
        }
        self.position = event.position;
        self.last_recorded_at = Some(event.recorded_at);
        true
    }

    /// Named counts that describe the models, for `keyward replay` and health.
    pub fn summary(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("events", self.streams.event_count()),
            ("streams", self.streams.stream_count()),
            ("event types", self.streams.event_type_count() as u64),
            ("users", self.directory.user_count() as u64),
            ("agents", self.directory.agent_count() as u64),
            ("vaults", self.directory.vault_count() as u64),
            ("policies", self.access.policy_count() as u64),
            ("secrets", self.secrets.secret_count() as u64),
            ("undecodable events", self.undecodable),
        ]
    }
}

/// What the decisions that span several read models find in them.
impl ReadModels {
    /// What deleting `user`'s account ends; `None` if there is no such user.
    pub fn account_deletion(&self, user: UserId) -> Option<AccountDeletion<'_>> {
        let directory = &self.directory;
        let user = directory.user(user)?;
        Some(AccountDeletion {
            user,
            members: directory.members(user.org_id).map(|member| member.id).collect(),
            vaults: directory.vaults_of(user.org_id),
            agents: directory.agents_of(user.org_id),
            // Only an address its holder verified is theirs to decide for.
            enrollments: if user.email_verified {
                self.enrollments.naming(&user.email, &self.streams)
            } else {
                (Vec::new(), 0)
            },
        })
    }

    /// What waits where a new enrollment requested from `network`, naming `email` if
    /// any, would join at `now`.
    pub fn enrollment_backlog(&self, email: Option<&Email>, network: NetworkPrefix, now: DateTime<Utc>) -> Backlog {
        let enrollments = &self.enrollments;
        let from_network = enrollments.pending_from(network, now);
        let Some(email) = email else {
            return Backlog {
                from_network,
                ..Backlog::default()
            };
        };
        let for_org = self
            .directory
            .verified_user_by_email(email)
            .map(|holder| {
                self.directory
                    .verified_member_emails(holder.org_id)
                    .into_iter()
                    .fold(Pending::default(), |pending, member| {
                        pending.and(enrollments.pending_naming(member, now))
                    })
            })
            .unwrap_or_default();
        Backlog {
            email_stream_version: self
                .streams
                .version(&domain::enrollment::email_enrollments_stream(email)),
            last_from_network: enrollments.last_named_from(email, network),
            from_network,
            naming_email: enrollments.pending_naming(email, now),
            for_org,
        }
    }

    /// `actor` changing `target`'s membership of `actor`'s organization.
    pub fn membership(&self, actor: UserId, target: UserId) -> Result<Membership<'_>, DomainError> {
        let directory = &self.directory;
        let actor = directory.user(actor).ok_or(DomainError::NotFound("user"))?;
        let target = directory.user(target).ok_or(DomainError::NotFound("member"))?;
        Ok(Membership {
            actor,
            target,
            owners: directory
                .members(actor.org_id)
                .filter(|member| member.role == OrgRole::Owner)
                .count(),
            org_version: self.streams.version(&org_stream(actor.org_id)),
        })
    }
}

#[cfg(test)]
mod tests {
    use domain::{ChainHash, StreamId};
    use uuid::Uuid;

    use super::*;

    fn event(position: u64, stream: &str, version: u64) -> RecordedEvent {
        RecordedEvent {
            position,
            event_id: Uuid::from_u128(position as u128),
            stream_id: StreamId::parse(stream).unwrap(),
            stream_version: version,
            event_type: "test.happened".into(),
            schema_version: 1,
            payload: "{}".into(),
            metadata: "{}".into(),
            recorded_at: DateTime::from_timestamp(position as i64 * 60, 0).unwrap(),
            prev_hash: ChainHash::GENESIS,
            hash: ChainHash::GENESIS,
        }
    }

    #[test]
    fn an_event_already_applied_is_skipped() {
        let mut models = ReadModels::new();
        assert!(models.apply(&event(1, "a-1", 1)));
        assert!(models.apply(&event(2, "a-1", 2)));
        let before = models.clone();
        assert!(!models.apply(&event(2, "a-1", 2)));
        assert!(!models.apply(&event(1, "a-1", 1)));
        assert_eq!(models, before);
        assert_eq!(models.position(), 2);
    }

    #[test]
    fn until_bounds_by_position_and_by_time() {
        let third = event(3, "a-1", 3);
        assert!(Until::End.includes(&third));
        assert!(Until::Position(3).includes(&third));
        assert!(!Until::Position(2).includes(&third));
        assert!(Until::Time(third.recorded_at).includes(&third));
        let just_before = third.recorded_at - chrono::Duration::microseconds(1);
        assert!(!Until::Time(just_before).includes(&third));
    }
}
