//! Agent enrollments and the emails keyward owes: what the approval pages, the
//! enrollment endpoints and the mail worker read.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::email::Email;
use domain::enrollment::{Decision, EmailHistory, Enrollment, EnrollmentStatus};
use domain::events::{EnrollmentApproved, EnrollmentDenied, Event};
use domain::mail::MailKind;
use domain::{EnrollmentId, MailId, OrgId, RecordedEvent};

use crate::DomainModel;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollments {
    enrollments: HashMap<EnrollmentId, Enrollment>,
    /// The version of every enrollment stream, for decisions' expected versions.
    stream_versions: HashMap<String, u64>,
    /// Per email named, when its last enrollment was requested.
    last_request_by_email: HashMap<Email, DateTime<Utc>>,
}

impl Enrollments {
    pub fn get(&self, id: EnrollmentId) -> Option<&Enrollment> {
        self.enrollments.get(&id)
    }

    /// The enrollment and the version of the stream it lives in.
    pub fn with_version(&self, id: EnrollmentId) -> Option<(&Enrollment, u64)> {
        let enrollment = self.enrollments.get(&id)?;
        let version = self
            .stream_versions
            .get(enrollment.stream.as_str())
            .copied()
            .unwrap_or(0);
        Some((enrollment, version))
    }

    /// What a new enrollment naming `email` must be decided against.
    pub fn email_history(&self, email: &Email) -> EmailHistory {
        let stream = domain::enrollment::email_enrollments_stream(email);
        EmailHistory {
            version: self.stream_versions.get(stream.as_str()).copied().unwrap_or(0),
            last_requested_at: self.last_request_by_email.get(email).copied(),
        }
    }

    /// The enrollments naming `email`, oldest first, and the version of their stream.
    pub fn naming(&self, email: &Email) -> (Vec<&Enrollment>, u64) {
        let mut named: Vec<&Enrollment> = self
            .enrollments
            .values()
            .filter(|e| e.human_email.as_ref() == Some(email))
            .collect();
        named.sort_by_key(|e| (e.requested_at, e.id));
        (named, self.email_history(email).version)
    }

    /// How many enrollments await a decision at `now`.
    pub fn pending_count(&self, now: DateTime<Utc>) -> usize {
        self.enrollments
            .values()
            .filter(|e| e.status(now) == EnrollmentStatus::Pending)
            .count()
    }

    /// The enrollments an organization sees: those naming one of `member_emails`, and
    /// those approved into it. Newest first.
    pub fn of_org(&self, org: OrgId, member_emails: &[&Email]) -> Vec<&Enrollment> {
        let mut found: Vec<&Enrollment> = self
            .enrollments
            .values()
            .filter(|e| {
                e.org() == Some(org)
                    || e.human_email
                        .as_ref()
                        .is_some_and(|email| member_emails.contains(&email))
            })
            .collect();
        found.sort_by(|a, b| b.requested_at.cmp(&a.requested_at).then(b.id.cmp(&a.id)));
        found
    }

    fn decide(&mut self, id: EnrollmentId, decision: Decision) {
        if let Some(enrollment) = self.enrollments.get_mut(&id) {
            enrollment.decision = Some(decision);
        }
    }
}

impl DomainModel for Enrollments {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let at = recorded.recorded_at;
        match event {
            Event::EnrollmentRequested(requested) => {
                if let Some(email) = &requested.human_email {
                    self.last_request_by_email.insert(email.clone(), at);
                }
                self.enrollments
                    .insert(requested.enrollment_id, Enrollment::requested(requested, at));
            }
            Event::EnrollmentApproved(EnrollmentApproved {
                enrollment_id,
                org_id,
                approved_by,
                agent_id,
            }) => self.decide(
                *enrollment_id,
                Decision::Approved {
                    by: *approved_by,
                    org: *org_id,
                    agent: *agent_id,
                    at,
                },
            ),
            Event::EnrollmentDenied(EnrollmentDenied {
                enrollment_id,
                denied_by,
            }) => self.decide(*enrollment_id, Decision::Denied { by: *denied_by, at }),
            _ => return,
        }
        self.stream_versions
            .insert(recorded.stream_id.as_str().to_owned(), recorded.stream_version);
    }
}

/// An email that was queued and has no outcome yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndeliveredMail {
    pub id: MailId,
    pub kind: MailKind,
    pub org: Option<OrgId>,
    pub queued_at: DateTime<Utc>,
}

/// Queued emails without an outcome: in flight, or lost when keyward stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    undelivered: HashMap<MailId, UndeliveredMail>,
}

impl Outbox {
    /// Emails queued before `cutoff` that still have no outcome.
    pub fn undelivered_before(&self, cutoff: DateTime<Utc>) -> Vec<&UndeliveredMail> {
        let mut found: Vec<_> = self
            .undelivered
            .values()
            .filter(|mail| mail.queued_at < cutoff)
            .collect();
        found.sort_by_key(|mail| mail.queued_at);
        found
    }

    /// Emails queued and not yet sent or failed.
    pub fn undelivered_count(&self) -> usize {
        self.undelivered.len()
    }
}

impl DomainModel for Outbox {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        match event {
            Event::MailQueued(queued) => {
                let org = recorded.metadata().ok().and_then(|m| m.org_id).map(OrgId);
                self.undelivered.insert(
                    queued.mail_id,
                    UndeliveredMail {
                        id: queued.mail_id,
                        kind: queued.kind,
                        org,
                        queued_at: recorded.recorded_at,
                    },
                );
            }
            Event::MailSent(sent) => {
                self.undelivered.remove(&sent.mail_id);
            }
            Event::MailFailed(failed) => {
                self.undelivered.remove(&failed.mail_id);
            }
            _ => {}
        }
    }
}
