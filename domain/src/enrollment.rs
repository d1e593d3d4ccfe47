//! Agent self-enrollment: an agent with no credentials asks to join an organization, and
//! a human of that organization allows or denies it. Approval registers the agent with no
//! access at all; its API key goes to the approving human, never to the agent's request.
//!
//! An enrollment that names a human's email lives in that email's enrollment stream, so
//! the per-email cooldown holds under concurrent requests (the stream's expected version
//! refuses the second of two racing requests). A link-only enrollment has a stream of its
//! own; whoever holds its approval link, signed in, may decide it.

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

/// A pending enrollment that nobody decided on within a day is void.
pub const PENDING_TTL: Duration = Duration::hours(24);
/// One enrollment per email address per ten minutes, whether or not the address has an
/// account: the answer must not tell which.
pub const EMAIL_COOLDOWN: Duration = Duration::minutes(10);

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

/// What the log says of earlier enrollments naming the same email: the version of their
/// stream and when the last one was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmailHistory {
    pub version: u64,
    pub last_requested_at: Option<DateTime<Utc>>,
}

pub fn request(command: RequestEnrollment, history: EmailHistory, now: DateTime<Utc>) -> Result<Change, DomainError> {
    let settings = AgentSettings::named(command.name, command.description).validated()?;
    if let Some(last) = history.last_requested_at {
        let wait = last + EMAIL_COOLDOWN - now;
        if wait > Duration::zero() {
            let retry_after_seconds = u64::try_from((wait.num_milliseconds() + 999) / 1000).unwrap_or(1);
            return Err(DomainError::TooSoon { retry_after_seconds });
        }
    }
    let (stream, expected) = match &command.human_email {
        Some(email) => (email_enrollments_stream(email), expected_at(history.version)),
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
            expires_at: now + PENDING_TTL,
        },
    ))
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
    /// The organization of the account that holds the enrollment's email, if any.
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
            "this enrollment expired: pending enrollments last 24 hours".into(),
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
        let change = request(command(email), EmailHistory::default(), now()).unwrap();
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
        let history = EmailHistory {
            version: 1,
            last_requested_at: Some(now() - Duration::minutes(4)),
        };
        assert_eq!(
            request(command(Some("ada@example.com")), history, now()),
            Err(DomainError::TooSoon {
                retry_after_seconds: 360
            })
        );
        let later = EmailHistory {
            last_requested_at: Some(now() - Duration::minutes(10)),
            ..history
        };
        let change = request(command(Some("ada@example.com")), later, now()).unwrap();
        assert_eq!(change.expected, ExpectedVersion::Exact(1));
    }

    #[test]
    fn enrollments_naming_an_email_share_its_stream_and_link_only_ones_have_their_own() {
        let first = request(command(Some("Ada@Example.com")), EmailHistory::default(), now()).unwrap();
        let again = request(command(Some("ada@example.com")), EmailHistory::default(), now()).unwrap();
        assert_eq!(first.stream, again.stream);
        assert_eq!(first.expected, ExpectedVersion::NoStream);
        let link_only = request(command(None), EmailHistory::default(), now()).unwrap();
        assert_eq!(link_only.stream.category(), "enrollment");
    }

    #[test]
    fn the_name_is_validated_like_an_agent_name() {
        let mut blank = command(None);
        blank.name = "  ".into();
        assert!(matches!(
            request(blank, EmailHistory::default(), now()),
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
            deny(&enrollment, 1, &decider, now() + PENDING_TTL),
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
