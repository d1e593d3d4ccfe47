//! Agent self-enrollment: an agent with no credentials asks to join an organization, and
//! a human of that organization allows or denies it. Approval registers the agent with no
//! access at all; its API key goes to the approving human, never to the agent's request.
//!
//! An enrollment that names a human's email lives in that email's enrollment stream, so
//! the per-email cooldown and cap hold under concurrent requests (the stream's expected
//! version refuses the second of two racing requests). A link-only enrollment has a stream
//! of its own; whoever holds its approval link, signed in, may decide it.
//!
//! Anyone may ask, so what waits is capped per network the requests come from and per
//! address they name (docs/security.md, "Enrollment floods"): a flood fills its own
//! network's share, never everyone's.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::agent::{self, AgentKey, AgentSettings, RegisterAgent};
use crate::change::{Change, DomainError, stream};
use crate::constant_time;
use crate::email::Email;
use crate::event::ExpectedVersion;
use crate::events::{EnrollmentApproved, EnrollmentDenied, EnrollmentRequested};
use crate::ids::{AgentId, EnrollmentId, OrgId, UserId};
use crate::stream::StreamId;

/// An enrollment naming an address waits a day for a decision: its holder is mailed, and
/// may read the mail late.
pub const NAMED_PENDING_TTL: Duration = Duration::hours(24);
/// A link-only enrollment waits an hour: nobody is mailed it and no list shows it, so it
/// is decided when whoever runs the agent passes the link on, at once or not at all.
pub const LINK_PENDING_TTL: Duration = Duration::hours(1);
/// One enrollment naming an address per network per ten minutes, whether or not the
/// address has an account (the answer must not tell which): its holder is mailed for each.
/// Per network, so that one network's requests cannot keep another's waiting.
pub const EMAIL_COOLDOWN: Duration = Duration::minutes(10);
/// At most this many enrollments requested from one network (an IPv4 /24, an IPv6 /64)
/// wait at once.
pub const MAX_PENDING_PER_NETWORK: usize = 10;
/// At most this many enrollments naming one address wait at once: more than one network
/// may fill (with [`EMAIL_COOLDOWN`], one network fills at most
/// [`MAX_PENDING_PER_NETWORK`]), so a flood from one network never shuts an address.
pub const MAX_PENDING_PER_EMAIL: usize = 25;
/// At most this many enrollments naming the addresses of one organization wait at once.
pub const MAX_PENDING_PER_ORG: usize = 50;

/// How long an enrollment waits for a decision.
pub fn pending_ttl(names_email: bool) -> Duration {
    if names_email {
        NAMED_PENDING_TTL
    } else {
        LINK_PENDING_TTL
    }
}

/// The stream of every enrollment that names `email`.
pub fn email_enrollments_stream(email: &Email) -> StreamId {
    stream("enrollments", email.claim_key())
}

/// The stream of a link-only enrollment.
pub fn link_enrollment_stream(enrollment: EnrollmentId) -> StreamId {
    stream("enrollment", enrollment)
}

/// The SHA-256 of an approval code, as kept in the log: the code itself is only in the
/// approval link.
pub fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    Pending,
    Approved,
    Denied,
    Expired,
}

/// What was decided, by whom.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    Approved {
        by: UserId,
        org: OrgId,
        agent: AgentId,
        at: DateTime<Utc>,
    },
    Denied {
        by: UserId,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Enrollment {
    pub id: EnrollmentId,
    /// The validated name and description the agent will be registered with.
    pub settings: AgentSettings,
    pub human_email: Option<Email>,
    pub code_hash: String,
    pub requested_from: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decision: Option<Decision>,
    pub stream: StreamId,
}

impl Enrollment {
    pub fn requested(event: &EnrollmentRequested, at: DateTime<Utc>) -> Self {
        Self {
            id: event.enrollment_id,
            settings: event.settings.clone(),
            human_email: event.human_email.clone(),
            code_hash: event.code_hash.clone(),
            requested_from: event.requested_from.clone(),
            requested_at: at,
            expires_at: event.expires_at,
            decision: None,
            stream: match &event.human_email {
                Some(email) => email_enrollments_stream(email),
                None => link_enrollment_stream(event.enrollment_id),
            },
        }
    }

    pub fn status(&self, now: DateTime<Utc>) -> EnrollmentStatus {
        match &self.decision {
            Some(Decision::Approved { .. }) => EnrollmentStatus::Approved,
            Some(Decision::Denied { .. }) => EnrollmentStatus::Denied,
            None if now >= self.expires_at => EnrollmentStatus::Expired,
            None => EnrollmentStatus::Pending,
        }
    }

    /// The organization the agent joined, once approved.
    pub fn org(&self) -> Option<OrgId> {
        match self.decision {
            Some(Decision::Approved { org, .. }) => Some(org),
            _ => None,
        }
    }
}

pub struct RequestEnrollment {
    pub enrollment_id: EnrollmentId,
    pub name: String,
    pub description: Option<String>,
    pub human_email: Option<Email>,
    pub code_hash: String,
    pub requested_from: String,
}

/// Enrollments awaiting a decision at some moment: how many, and when the first of them
/// stops waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pending {
    pub count: usize,
    pub next_expiry: Option<DateTime<Utc>>,
}

impl Pending {
    /// The pending enrollments whose expiries are `expiries`.
    pub fn of(expiries: impl IntoIterator<Item = DateTime<Utc>>) -> Self {
        expiries.into_iter().fold(Self::default(), |pending, expiry| Self {
            count: pending.count + 1,
            next_expiry: Some(pending.next_expiry.map_or(expiry, |next| next.min(expiry))),
        })
    }

    /// Both together.
    pub fn and(self, other: Self) -> Self {
        let next_expiry = match (self.next_expiry, other.next_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            count: self.count + other.count,
            next_expiry,
        }
    }
}

/// What the log says waits where a new request would join, at the moment it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// The version of the named email's enrollment stream (0 if none is named, or it never
    /// was before).
    pub email_stream_version: u64,
    /// When the named email was last named by a request from the requester's network.
    pub last_from_network: Option<DateTime<Utc>>,
    /// Requested from the requester's network.
    pub from_network: Pending,
    /// Naming the named email.
    pub naming_email: Pending,
    /// Naming any address of the organization whose verified account holds the named one.
    pub for_org: Pending,
}

pub fn request(command: RequestEnrollment, backlog: Backlog, now: DateTime<Utc>) -> Result<Change, DomainError> {
    let settings = AgentSettings::named(command.name, command.description).validated()?;
    if command.human_email.is_some()
        && let Some(last) = backlog.last_from_network
    {
        let wait = last + EMAIL_COOLDOWN - now;
        if wait > Duration::zero() {
            return Err(DomainError::TooSoon {
                retry_after_seconds: whole_seconds(wait),
            });
        }
    }
    // Full until the first of those waiting stops waiting. The answer reads the same
    // whichever is full, so it tells nothing of whether an address has an account.
    let caps = [
        (backlog.from_network, MAX_PENDING_PER_NETWORK),
        (backlog.naming_email, MAX_PENDING_PER_EMAIL),
        (backlog.for_org, MAX_PENDING_PER_ORG),
    ];
    if let Some((full, _)) = caps.into_iter().find(|(pending, cap)| pending.count >= *cap) {
        let wait = full.next_expiry.map_or(Duration::zero(), |expiry| expiry - now);
        return Err(DomainError::TooSoon {
            retry_after_seconds: whole_seconds(wait),
        });
    }
    let ttl = pending_ttl(command.human_email.is_some());
    let (stream, expected) = match &command.human_email {
        Some(email) => (
            email_enrollments_stream(email),
            expected_at(backlog.email_stream_version),
        ),
        None => (link_enrollment_stream(command.enrollment_id), ExpectedVersion::NoStream),
    };
    Ok(Change::new(
        stream,
        expected,
        EnrollmentRequested {
            enrollment_id: command.enrollment_id,
            settings,
            human_email: command.human_email,
            code_hash: command.code_hash,
            requested_from: command.requested_from,
            expires_at: now + ttl,
        },
    ))
}

/// A wait in whole seconds, rounded up, at least one: what Retry-After says.
fn whole_seconds(wait: Duration) -> u64 {
    u64::try_from((wait.num_milliseconds() + 999) / 1000)
        .unwrap_or(1)
        .max(1)
}

fn expected_at(version: u64) -> ExpectedVersion {
    if version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(version)
    }
}

/// The human deciding, and what entitles them to.
pub struct Decider {
    pub user: UserId,
    pub org: OrgId,
    /// The organization of the account that holds the enrollment's email, if that account
    /// verified it (docs/security.md, "What an unverified account may do").
    pub email_holder_org: Option<OrgId>,
    /// The approval code presented with the decision, if any.
    pub code: Option<String>,
}

impl Decider {
    /// A member of the organization of the named human may decide; so may anyone signed
    /// in who holds the approval link (the only way to decide a link-only enrollment).
    pub fn may_decide(&self, enrollment: &Enrollment) -> bool {
        let named_org = enrollment.human_email.is_some() && self.email_holder_org == Some(self.org);
        let holds_link = self
            .code
            .as_deref()
            .is_some_and(|code| constant_time::eq(code_hash(code).as_bytes(), enrollment.code_hash.as_bytes()));
        named_org || holds_link
    }
}

/// Checks that `decider` may decide `enrollment` now. Someone who may not decide it learns
/// nothing of it: not found.
fn check_decidable(enrollment: &Enrollment, decider: &Decider, now: DateTime<Utc>) -> Result<(), DomainError> {
    if !decider.may_decide(enrollment) {
        return Err(DomainError::NotFound("enrollment"));
    }
    match enrollment.status(now) {
        EnrollmentStatus::Pending => Ok(()),
        EnrollmentStatus::Approved => Err(DomainError::Conflict("this enrollment was approved already".into())),
        EnrollmentStatus::Denied => Err(DomainError::Conflict("this enrollment was denied already".into())),
        EnrollmentStatus::Expired => Err(DomainError::Gone(
            "this enrollment expired: one naming an address waits 24 hours for a decision, one with a link \
             only an hour"
                .into(),
        )),
    }
}

/// Approves the enrollment into the decider's organization and registers the agent with
/// no access; `key` is the hash of the API key the decider will receive.
pub fn approve(
    enrollment: &Enrollment,
    stream_version: u64,
    decider: &Decider,
    agent_id: AgentId,
    key: AgentKey,
    now: DateTime<Utc>,
) -> Result<Vec<Change>, DomainError> {
    check_decidable(enrollment, decider, now)?;
    let approved = Change::new(
        enrollment.stream.clone(),
        ExpectedVersion::Exact(stream_version),
        EnrollmentApproved {
            enrollment_id: enrollment.id,
            org_id: decider.org,
            approved_by: decider.user,
            agent_id,
        },
    );
    let registered = agent::register(RegisterAgent {
        agent_id,
        org_id: decider.org,
        created_by: decider.user,
        settings: enrollment.settings.clone(),
        key,
    })?;
    Ok(vec![approved, registered])
}

pub fn deny(
    enrollment: &Enrollment,
    stream_version: u64,
    decider: &Decider,
    now: DateTime<Utc>,
) -> Result<Change, DomainError> {
    check_decidable(enrollment, decider, now)?;
    Ok(Change::new(
        enrollment.stream.clone(),
        ExpectedVersion::Exact(stream_version),
        EnrollmentDenied {
            enrollment_id: enrollment.id,
            denied_by: decider.user,
        },
    ))
}

/// Denies, as `denied_by`, every enrollment of `named` still pending at `now`: the
/// enrollments naming one email, whose stream is at `stream_version`. What deleting the
/// account of that email decides for the agents that asked to join it. None if none waits.
pub fn deny_pending(
    named: &[&Enrollment],
    stream_version: u64,
    denied_by: UserId,
    now: DateTime<Utc>,
) -> Option<Change> {
    let pending: Vec<&Enrollment> = named
        .iter()
        .copied()
        .filter(|enrollment| enrollment.status(now) == EnrollmentStatus::Pending)
        .collect();
    let stream = pending.first()?.stream.clone();
    Some(Change {
        stream,
        expected: ExpectedVersion::Exact(stream_version),
        events: pending
            .iter()
            .map(|enrollment| {
                EnrollmentDenied {
                    enrollment_id: enrollment.id,
                    denied_by,
                }
                .into()
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Event;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().to_utc()
    }

    fn command(email: Option<&str>) -> RequestEnrollment {
        RequestEnrollment {
            enrollment_id: EnrollmentId::new(),
            name: " deploy-bot ".into(),
            description: Some("ships releases".into()),
            human_email: email.map(|e| Email::parse(e).unwrap()),
            code_hash: code_hash("the-code"),
            requested_from: "203.0.113.7".into(),
        }
    }

    fn requested(email: Option<&str>) -> Enrollment {
        let change = request(command(email), Backlog::default(), now()).unwrap();
        let Event::EnrollmentRequested(event) = &change.events[0] else {
            panic!("not a request: {change:?}")
        };
        Enrollment::requested(event, now())
    }

    fn member_of(org: OrgId, holder: Option<OrgId>, code: Option<&str>) -> Decider {
        Decider {
            user: UserId::new(),
            org,
            email_holder_org: holder,
            code: code.map(str::to_owned),
        }
    }

    #[test]
    fn a_second_request_for_an_email_within_ten_minutes_waits_for_the_rest() {
        let history = Backlog {
            email_stream_version: 1,
            last_from_network: Some(now() - Duration::minutes(4)),
            ..Backlog::default()
        };
        assert_eq!(
            request(command(Some("ada@example.com")), history, now()),
            Err(DomainError::TooSoon {
                retry_after_seconds: 360
            })
        );
        let later = Backlog {
            last_from_network: Some(now() - Duration::minutes(10)),
            ..history
        };
        let change = request(command(Some("ada@example.com")), later, now()).unwrap();
        assert_eq!(change.expected, ExpectedVersion::Exact(1));
    }

    #[test]
    fn a_link_only_enrollment_waits_an_hour_and_one_naming_an_address_a_day() {
        let link_only = requested(None);
        assert_eq!(link_only.expires_at, now() + Duration::hours(1));
        assert_eq!(
            link_only.status(now() + Duration::minutes(59)),
            EnrollmentStatus::Pending
        );
        assert_eq!(link_only.status(now() + Duration::hours(1)), EnrollmentStatus::Expired);
        let named = requested(Some("ada@example.com"));
        assert_eq!(named.expires_at, now() + Duration::hours(24));
    }

    #[test]
    fn a_full_network_address_or_organization_waits_until_its_first_enrollment_expires() {
        let waiting = |count: usize| Pending {
            count,
            next_expiry: Some(now() + Duration::seconds(1234)),
        };
        let full = [
            Backlog {
                from_network: waiting(MAX_PENDING_PER_NETWORK),
                ..Backlog::default()
            },
            Backlog {
                naming_email: waiting(MAX_PENDING_PER_EMAIL),
                ..Backlog::default()
            },
            Backlog {
                for_org: waiting(MAX_PENDING_PER_ORG),
                ..Backlog::default()
            },
        ];
        for backlog in full {
            assert_eq!(
                request(command(Some("ada@example.com")), backlog, now()),
                Err(DomainError::TooSoon {
                    retry_after_seconds: 1234
                }),
                "{backlog:?}"
            );
        }
        assert!(matches!(
            request(command(None), full[0], now()),
            Err(DomainError::TooSoon { .. })
        ));
        let one_short = Backlog {
            from_network: waiting(MAX_PENDING_PER_NETWORK - 1),
            naming_email: waiting(MAX_PENDING_PER_EMAIL - 1),
            for_org: waiting(MAX_PENDING_PER_ORG - 1),
            ..Backlog::default()
        };
        assert!(request(command(Some("ada@example.com")), one_short, now()).is_ok());
        // One network alone cannot fill an address: the cooldown keeps it to one request a
        // ten minutes per address, and its cap to fewer than an address holds.
        const { assert!(MAX_PENDING_PER_NETWORK < MAX_PENDING_PER_EMAIL) };
        const { assert!(MAX_PENDING_PER_EMAIL <= MAX_PENDING_PER_ORG) };
    }

    #[test]
    fn pending_enrollments_count_and_know_their_first_expiry() {
        let at = |minutes: i64| now() + Duration::minutes(minutes);
        let some = Pending::of([at(30), at(10), at(20)]);
        assert_eq!(
            some,
            Pending {
                count: 3,
                next_expiry: Some(at(10))
            }
        );
        assert_eq!(Pending::of([]), Pending::default());
        assert_eq!(
            some.and(Pending::of([at(5)])),
            Pending {
                count: 4,
                next_expiry: Some(at(5))
            }
        );
        assert_eq!(some.and(Pending::default()), some);
    }

    #[test]
    fn enrollments_naming_an_email_share_its_stream_and_link_only_ones_have_their_own() {
        let first = request(command(Some("Ada@Example.com")), Backlog::default(), now()).unwrap();
        let again = request(command(Some("ada@example.com")), Backlog::default(), now()).unwrap();
        assert_eq!(first.stream, again.stream);
        assert_eq!(first.expected, ExpectedVersion::NoStream);
        let link_only = request(command(None), Backlog::default(), now()).unwrap();
        assert_eq!(link_only.stream.category(), "enrollment");
    }

    #[test]
    fn the_name_is_validated_like_an_agent_name() {
        let mut blank = command(None);
        blank.name = "  ".into();
        assert!(matches!(
            request(blank, Backlog::default(), now()),
            Err(DomainError::Invalid(_))
        ));
        assert_eq!(requested(None).settings.name, "deploy-bot");
    }

    #[test]
    fn approval_registers_an_agent_with_no_access_in_the_deciders_org() {
        let enrollment = requested(Some("ada@example.com"));
        let org = OrgId::new();
        let decider = member_of(org, Some(org), None);
        let key = AgentKey {
            key_id: uuid::Uuid::now_v7(),
            key_hash: "hash".into(),
            key_prefix: "ocv_abcd".into(),
        };
        let changes = approve(&enrollment, 1, &decider, AgentId::new(), key, now()).unwrap();
        assert_eq!(changes[0].expected, ExpectedVersion::Exact(1));
        let Event::AgentRegistered(registered) = &changes[1].events[0] else {
            panic!("no agent registered: {changes:?}")
        };
        assert_eq!(registered.org_id, org);
        assert_eq!(registered.created_by, decider.user);
        assert!(registered.settings.scopes.is_empty() && registered.settings.vault_ids.is_empty());
        assert!(!registered.settings.intents_api_enabled);
    }

    #[test]
    fn only_the_named_humans_org_or_the_link_holder_may_decide() {
        let enrollment = requested(Some("ada@example.com"));
        let (ada_org, other_org) = (OrgId::new(), OrgId::new());
        let outsider = member_of(other_org, Some(ada_org), None);
        assert_eq!(
            deny(&enrollment, 1, &outsider, now()),
            Err(DomainError::NotFound("enrollment"))
        );
        let wrong_code = member_of(other_org, Some(ada_org), Some("guess"));
        assert!(deny(&enrollment, 1, &wrong_code, now()).is_err());
        let link_holder = member_of(other_org, Some(ada_org), Some("the-code"));
        assert!(deny(&enrollment, 1, &link_holder, now()).is_ok());

        let link_only = requested(None);
        let no_code = member_of(other_org, None, None);
        assert_eq!(
            deny(&link_only, 1, &no_code, now()),
            Err(DomainError::NotFound("enrollment"))
        );
        assert!(deny(&link_only, 1, &member_of(other_org, None, Some("the-code")), now()).is_ok());
    }

    #[test]
    fn a_decided_enrollment_cannot_be_decided_again_and_an_old_one_is_gone() {
        let mut enrollment = requested(None);
        let decider = member_of(OrgId::new(), None, Some("the-code"));
        assert!(matches!(
            deny(&enrollment, 1, &decider, now() + LINK_PENDING_TTL),
            Err(DomainError::Gone(_))
        ));
        enrollment.decision = Some(Decision::Denied {
            by: decider.user,
            at: now(),
        });
        assert!(matches!(
            deny(&enrollment, 2, &decider, now()),
            Err(DomainError::Conflict(_))
        ));
        assert_eq!(enrollment.status(now()), EnrollmentStatus::Denied);
    }

    #[test]
    fn denying_the_pending_ones_leaves_decided_and_expired_enrollments_be() {
        let waiting = requested(Some("ada@example.com"));
        let mut decided = requested(Some("ada@example.com"));
        decided.decision = Some(Decision::Denied {
            by: UserId::new(),
            at: now(),
        });
        let mut expired = requested(Some("ada@example.com"));
        expired.expires_at = now();
        let by = UserId::new();
        let change = deny_pending(&[&decided, &waiting, &expired], 3, by, now()).unwrap();
        assert_eq!(
            (change.stream, change.expected, change.events),
            (
                waiting.stream.clone(),
                ExpectedVersion::Exact(3),
                vec![
                    EnrollmentDenied {
                        enrollment_id: waiting.id,
                        denied_by: by
                    }
                    .into()
                ]
            )
        );
        assert_eq!(deny_pending(&[&decided, &expired], 3, by, now()), None);
    }
}
