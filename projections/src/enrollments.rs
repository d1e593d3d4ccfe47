//! Agent enrollments and the emails keyward owes: what the approval pages, the
//! enrollment endpoints and the mail worker read.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use domain::email::Email;
use domain::enrollment::{Decision, Enrollment, Pending};
use domain::events::{EnrollmentApproved, EnrollmentDenied, Event};
use domain::mail::MailKind;
use domain::network::NetworkPrefix;
use domain::{EnrollmentId, MailId, OrgId, RecordedEvent};

use crate::DomainModel;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollments {
    enrollments: HashMap<EnrollmentId, Enrollment>,
    /// The version of every enrollment stream, for decisions' expected versions.
    stream_versions: HashMap<String, u64>,
    /// What awaits a decision, by what caps it.
    waiting: Waiting,
}

/// Enrollments awaiting a decision, by the network they were requested from and the
/// address they name, with their expiries; and when each network last named each address.
/// A decision removes an enrollment at once; what expired is swept (see [`Waiting::sweep`]),
/// so what is kept follows what waits, not every enrollment ever requested.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Waiting {
    by_network: HashMap<NetworkPrefix, Vec<(EnrollmentId, DateTime<Utc>)>>,
    by_email: HashMap<Email, Vec<(EnrollmentId, DateTime<Utc>)>>,
    last_named: HashMap<Email, HashMap<NetworkPrefix, DateTime<Utc>>>,
    /// How many entries the three hold, and how many they may hold before the next sweep.
    entries: usize,
    sweep_at: usize,
}

/// What expired this long before the event being folded is swept: no replica's clock is
/// that far behind the one that recorded it, so none still counts it.
const FORGET_EXPIRED_AFTER: Duration = Duration::hours(1);
/// Sweeps start once this many entries are kept.
const SWEEP_MIN: usize = 1024;

impl Waiting {
    fn requested(&mut self, enrollment: &Enrollment, at: DateTime<Utc>) {
        let entry = (enrollment.id, enrollment.expires_at);
        // Every enrollment's `requested_from` is the address of the request; one that is
        // not (none is written so) counts against no network.
        if let Some(network) = NetworkPrefix::parse(&enrollment.requested_from) {
            self.by_network.entry(network).or_default().push(entry);
            self.entries += 1;
            if let Some(email) = &enrollment.human_email {
                let named = self.last_named.entry(email.clone()).or_default();
                if named.insert(network, at).is_none() {
                    self.entries += 1;
                }
            }
        }
        if let Some(email) = &enrollment.human_email {
            self.by_email.entry(email.clone()).or_default().push(entry);
            self.entries += 1;
        }
        self.sweep(at);
    }

    fn decided(&mut self, enrollment: &Enrollment) {
        let id = enrollment.id;
        if let Some(network) = NetworkPrefix::parse(&enrollment.requested_from) {
            self.entries = self.entries.saturating_sub(remove(&mut self.by_network, &network, id));
        }
        if let Some(email) = &enrollment.human_email {
            self.entries = self.entries.saturating_sub(remove(&mut self.by_email, email, id));
        }
    }

    /// Once the entries kept have doubled since the last sweep, forgets the enrollments
    /// that expired and the namings whose cooldown ended, well before `at`: neither is
    /// counted any more, so forgetting them changes no answer. `at` is the recorded time
    /// of the event being folded, so a rebuild sweeps exactly as the first fold did.
    fn sweep(&mut self, at: DateTime<Utc>) {
        if self.entries < self.sweep_at {
            return;
        }
        let cutoff = at - FORGET_EXPIRED_AFTER;
        let mut entries = forget_expired(&mut self.by_network, cutoff) + forget_expired(&mut self.by_email, cutoff);
        let cooldown_over = cutoff - domain::enrollment::EMAIL_COOLDOWN;
        self.last_named.retain(|_, networks| {
            networks.retain(|_, named_at| *named_at > cooldown_over);
            entries += networks.len();
            !networks.is_empty()
        });
        self.entries = entries;
        self.sweep_at = (2 * entries).max(SWEEP_MIN);
    }
}

/// Drops from `lists` the entries that expired at `cutoff` or before, and the lists left
/// empty; how many entries remain.
fn forget_expired<K>(lists: &mut HashMap<K, Vec<(EnrollmentId, DateTime<Utc>)>>, cutoff: DateTime<Utc>) -> usize {
    let mut remaining = 0;
    lists.retain(|_, list| {
        list.retain(|(_, expires_at)| *expires_at > cutoff);
        remaining += list.len();
        !list.is_empty()
    });
    remaining
}

/// Removes `id` from the list of `key`, and the list if that empties it: how many went.
fn remove<K: Eq + std::hash::Hash>(
    lists: &mut HashMap<K, Vec<(EnrollmentId, DateTime<Utc>)>>,
    key: &K,
    id: EnrollmentId,
) -> usize {
    let Some(list) = lists.get_mut(key) else {
        return 0;
    };
    let before = list.len();
    list.retain(|(entry, _)| *entry != id);
    let removed = before - list.len();
    if list.is_empty() {
        lists.remove(key);
    }
    removed
}

/// The entries of `list` still waiting at `now`.
fn pending_at(list: Option<&Vec<(EnrollmentId, DateTime<Utc>)>>, now: DateTime<Utc>) -> Pending {
    Pending::of(
        list.into_iter()
            .flatten()
            .map(|(_, expires_at)| *expires_at)
            .filter(|expires_at| now < *expires_at),
    )
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

    /// The version of the stream of the enrollments naming `email` (0 if none ever did).
    pub fn email_stream_version(&self, email: &Email) -> u64 {
        let stream = domain::enrollment::email_enrollments_stream(email);
        self.stream_versions.get(stream.as_str()).copied().unwrap_or(0)
    }

    /// The enrollments requested from `network` that await a decision at `now`.
    pub fn pending_from(&self, network: NetworkPrefix, now: DateTime<Utc>) -> Pending {
        pending_at(self.waiting.by_network.get(&network), now)
    }

    /// The enrollments naming `email` that await a decision at `now`.
    pub fn pending_naming(&self, email: &Email, now: DateTime<Utc>) -> Pending {
        pending_at(self.waiting.by_email.get(email), now)
    }

    /// When a request from `network` last named `email`, if within the cooldown.
    pub fn last_named_from(&self, email: &Email, network: NetworkPrefix) -> Option<DateTime<Utc>> {
        self.waiting.last_named.get(email)?.get(&network).copied()
    }

    /// The enrollments naming `email`, oldest first, and the version of their stream.
    pub fn naming(&self, email: &Email) -> (Vec<&Enrollment>, u64) {
        let mut named: Vec<&Enrollment> = self
            .enrollments
            .values()
            .filter(|e| e.human_email.as_ref() == Some(email))
            .collect();
        named.sort_by_key(|e| (e.requested_at, e.id));
        (named, self.email_stream_version(email))
    }

    /// The enrollments an organization sees: those naming one of `member_emails` (the
    /// addresses its members verified), and those approved into it. Newest first.
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
            self.waiting.decided(enrollment);
        }
    }
}

impl DomainModel for Enrollments {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let at = recorded.recorded_at;
        match event {
            Event::EnrollmentRequested(requested) => {
                let enrollment = Enrollment::requested(requested, at);
                self.waiting.requested(&enrollment, at);
                self.enrollments.insert(requested.enrollment_id, enrollment);
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

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use domain::UserId;
    use domain::email::Email;
    use domain::enrollment::{self, Backlog, Decider, RequestEnrollment};

    use super::*;
    use crate::test_log::Log;

    fn network(address: &str) -> NetworkPrefix {
        NetworkPrefix::parse(address).unwrap()
    }

    /// Requests an enrollment from `from`, naming `email` if any, as the endpoint decides it.
    fn request(log: &mut Log, from: &str, email: Option<&str>) -> EnrollmentId {
        let id = EnrollmentId::new();
        let email = email.map(|email| Email::parse(email).unwrap());
        let backlog = log.models.enrollment_backlog(email.as_ref(), network(from), log.now());
        let command = RequestEnrollment {
            enrollment_id: id,
            name: "bot".into(),
            description: None,
            human_email: email,
            code_hash: enrollment::code_hash("code"),
            requested_from: from.into(),
        };
        let change = enrollment::request(command, backlog, log.now()).unwrap();
        log.append(vec![change]);
        id
    }

    #[test]
    fn what_waits_is_counted_per_network_and_per_address_until_decided_or_expired() {
        let mut log = Log::default();
        let ada = Email::parse("ada@example.com").unwrap();
        let first = request(&mut log, "203.0.113.7", None);
        request(&mut log, "203.0.113.200", Some("ada@example.com"));
        request(&mut log, "198.51.100.1", Some("ada@example.com"));
        let (flooded, other) = (network("203.0.113.1"), network("198.51.100.1"));
        let now = log.now();
        let enrollments = &log.models.enrollments;
        assert_eq!(enrollments.pending_from(flooded, now).count, 2);
        assert_eq!(enrollments.pending_from(other, now).count, 1);
        assert_eq!(enrollments.pending_naming(&ada, now).count, 2);
        assert_eq!(
            enrollments.pending_from(flooded, now).next_expiry,
            Some(enrollments.get(first).unwrap().expires_at),
            "the link-only one, an hour away, goes first"
        );
        // The cooldown is per address and network.
        assert!(enrollments.last_named_from(&ada, flooded).is_some());
        assert!(enrollments.last_named_from(&ada, network("192.0.2.1")).is_none());

        // A decision frees its place at once; expiry frees the rest.
        let (link_only, version) = log.models.enrollments.with_version(first).unwrap();
        let decider = Decider {
            user: UserId::new(),
            org: OrgId::new(),
            email_holder_org: None,
            code: Some("code".into()),
        };
        let denied = enrollment::deny(link_only, version, &decider, log.now()).unwrap();
        log.append(vec![denied]);
        let enrollments = &log.models.enrollments;
        assert_eq!(enrollments.pending_from(flooded, log.now()).count, 1);
        let tomorrow = log.now() + Duration::hours(24);
        assert_eq!(enrollments.pending_from(flooded, tomorrow), Pending::default());
        assert_eq!(enrollments.pending_naming(&ada, tomorrow), Pending::default());
    }

    #[test]
    fn the_backlog_counts_an_organization_only_for_an_address_its_holder_verified() {
        let mut log = Log::default();
        let ada = log.sign_up("ada@example.com", 1);
        request(&mut log, "203.0.113.7", Some("ada@example.com"));
        let email = Email::parse("ada@example.com").unwrap();
        let from = network("198.51.100.7");
        let unverified = log.models.enrollment_backlog(Some(&email), from, log.now());
        assert_eq!((unverified.naming_email.count, unverified.for_org.count), (1, 0));
        log.verify_email(ada);
        let verified = log.models.enrollment_backlog(Some(&email), from, log.now());
        assert_eq!((verified.naming_email.count, verified.for_org.count), (1, 1));
        assert_eq!(verified.email_stream_version, 1);
        assert_eq!(
            log.models.enrollment_backlog(None, from, log.now()),
            Backlog::default(),
            "a link-only request from another network joins nothing"
        );
    }

    #[test]
    fn expired_enrollments_and_cooldowns_are_forgotten_by_the_index() {
        let mut log = Log::default();
        for n in 0..3_000u32 {
            let from = format!("10.{}.{}.1", n / 256, n % 256);
            request(&mut log, &from, Some(&format!("user{n}@example.com")));
            request(&mut log, &from, None);
        }
        let waiting = &log.models.enrollments.waiting;
        // One network a minute, each waiting a day: about a day and an hour's worth kept.
        assert!(waiting.entries < 2 * 3 * 26 * 60, "{} kept", waiting.entries);
        assert_eq!(
            waiting.entries,
            waiting.by_network.values().map(Vec::len).sum::<usize>()
                + waiting.by_email.values().map(Vec::len).sum::<usize>()
                + waiting.last_named.values().map(HashMap::len).sum::<usize>()
        );
        assert!(waiting.by_network.len() < 3_000 && waiting.last_named.len() < 3_000);
    }
}
