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

use crate::{DomainModel, StreamCatalog};

/// The enrollments that await a decision, and what caps them. A decided enrollment is
/// dropped at its decision and an expired one at the next sweep: those are read from their
/// streams in the log ([`EnrollmentHistory`]), so what is kept follows what waits, not
/// every enrollment ever requested (docs/cost.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollments {
    awaiting: HashMap<EnrollmentId, Enrollment>,
    /// The version of the own stream of each link-only enrollment kept: its decision's
    /// expected version. The stream of the enrollments naming an address is shared, and
    /// its version is the [`StreamCatalog`]'s.
    own_stream_versions: HashMap<EnrollmentId, u64>,
    /// What awaits a decision, by what caps it.
    waiting: Waiting,
}

/// Enrollments folded from their streams as the log holds them, decided and expired ones
/// included: what the lists and the approval page read of those [`Enrollments`] no longer
/// keeps. Folded by the same steps as the live model.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentHistory {
    enrollments: HashMap<EnrollmentId, Enrollment>,
    stream_versions: HashMap<String, u64>,
}

impl EnrollmentHistory {
    /// Folds one event of an enrollment stream, in log order.
    pub fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        if fold(&mut self.enrollments, recorded, event).is_some() {
            self.stream_versions
                .insert(recorded.stream_id.as_str().to_owned(), recorded.stream_version);
        }
    }

    /// The enrollment and the version of the stream it lives in.
    pub fn with_version(&self, id: EnrollmentId) -> Option<(&Enrollment, u64)> {
        let enrollment = self.enrollments.get(&id)?;
        let version = self.stream_versions.get(enrollment.stream.as_str()).copied();
        Some((enrollment, version.unwrap_or(0)))
    }

    pub fn into_enrollments(self) -> impl Iterator<Item = Enrollment> {
        self.enrollments.into_values()
    }
}

/// What an enrollment event changes in `enrollments`: the enrollment it requested or
/// decided, whose id is returned; None for any other event, or a decision of an enrollment
/// `enrollments` does not hold.
fn fold(
    enrollments: &mut HashMap<EnrollmentId, Enrollment>,
    recorded: &RecordedEvent,
    event: &Event,
) -> Option<EnrollmentId> {
    let at = recorded.recorded_at;
    let (id, decision) = match event {
        Event::EnrollmentRequested(requested) => {
            enrollments.insert(requested.enrollment_id, Enrollment::requested(requested, at));
            return Some(requested.enrollment_id);
        }
        Event::EnrollmentApproved(EnrollmentApproved {
            enrollment_id,
            org_id,
            approved_by,
            agent_id,
        }) => (
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
        }) => (*enrollment_id, Decision::Denied { by: *denied_by, at }),
        _ => return None,
    };
    enrollments.get_mut(&id)?.decision = Some(decision);
    Some(id)
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
    fn sweep(&mut self, at: DateTime<Utc>) -> bool {
        if self.entries < self.sweep_at {
            return false;
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
        true
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
    /// An enrollment that awaits a decision (or expired since the last sweep).
    pub fn get(&self, id: EnrollmentId) -> Option<&Enrollment> {
        self.awaiting.get(&id)
    }

    /// The enrollment, if it awaits a decision, and the version of the stream it lives in,
    /// `streams`' if it is shared.
    pub fn with_version(&self, id: EnrollmentId, streams: &StreamCatalog) -> Option<(&Enrollment, u64)> {
        let enrollment = self.awaiting.get(&id)?;
        let version = match &enrollment.human_email {
            Some(_) => streams.version(&enrollment.stream),
            None => self.own_stream_versions.get(&id).copied().unwrap_or(0),
        };
        Some((enrollment, version))
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

    /// The enrollments naming `email` that await a decision (or expired since the last
    /// sweep), oldest first, and the version of their stream, `streams`'.
    pub fn naming(&self, email: &Email, streams: &StreamCatalog) -> (Vec<&Enrollment>, u64) {
        let mut named: Vec<&Enrollment> = self
            .waiting
            .by_email
            .get(email)
            .into_iter()
            .flatten()
            .filter_map(|(id, _)| self.awaiting.get(id))
            .collect();
        named.sort_by_key(|e| (e.requested_at, e.id));
        (
            named,
            streams.version(&domain::enrollment::email_enrollments_stream(email)),
        )
    }

    /// Forgets `id`, decided or expired: its caps' entries, and the version of its own
    /// stream if it has one.
    fn forget(&mut self, id: EnrollmentId) {
        let Some(enrollment) = self.awaiting.remove(&id) else {
            return;
        };
        self.waiting.decided(&enrollment);
        self.own_stream_versions.remove(&id);
    }
}

impl DomainModel for Enrollments {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let Some(id) = fold(&mut self.awaiting, recorded, event) else {
            return;
        };
        let Some(enrollment) = self.awaiting.get(&id) else {
            return;
        };
        let at = recorded.recorded_at;
        let decided = enrollment.decision.is_some();
        if !decided {
            self.waiting.requested(enrollment, at);
            if enrollment.human_email.is_none() {
                self.own_stream_versions.insert(id, recorded.stream_version);
            }
        }
        if decided {
            self.forget(id);
        } else if self.waiting.sweep(at) {
            let cutoff = at - FORGET_EXPIRED_AFTER;
            let expired: Vec<EnrollmentId> = self
                .awaiting
                .values()
                .filter(|enrollment| enrollment.expires_at <= cutoff)
                .map(|enrollment| enrollment.id)
                .collect();
            for id in expired {
                self.forget(id);
            }
        }
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
    use domain::enrollment::{self, Backlog, Decider, EnrollmentStatus, RequestEnrollment};

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
        let (link_only, version) = log.models.enrollments.with_version(first, &log.models.streams).unwrap();
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
        let kept = log.models.enrollments.awaiting.len();
        assert!(kept < 3_000, "{kept} of 6000 enrollments kept");
        let own_versions = log.models.enrollments.own_stream_versions.len();
        assert!(own_versions < 3_000, "{own_versions} link-only streams' versions kept");
    }

    #[test]
    fn a_decided_enrollment_is_forgotten_and_its_stream_gives_it_back() {
        let mut log = Log::default();
        let ada = Email::parse("ada@example.com").unwrap();
        let link_only = request(&mut log, "203.0.113.7", None);
        let named = request(&mut log, "198.51.100.1", Some("ada@example.com"));
        let waiting = request(&mut log, "192.0.2.1", Some("ada@example.com"));
        let decider = Decider {
            user: UserId::new(),
            org: OrgId::new(),
            email_holder_org: None,
            code: Some("code".into()),
        };
        for id in [link_only, named] {
            let (enrollment, version) = log.models.enrollments.with_version(id, &log.models.streams).unwrap();
            let denied = enrollment::deny(enrollment, version, &decider, log.now()).unwrap();
            log.append(vec![denied]);
        }
        let (enrollments, streams) = (&log.models.enrollments, &log.models.streams);
        assert!(enrollments.get(link_only).is_none() && enrollments.get(named).is_none());
        let (still_named, version) = enrollments.naming(&ada, streams);
        assert_eq!(still_named.iter().map(|e| e.id).collect::<Vec<_>>(), [waiting]);
        // The address's stream moved with the decision: the next request naming it expects it.
        assert_eq!(version, 3);
        assert!(
            enrollments.own_stream_versions.is_empty(),
            "the link-only stream's version is forgotten"
        );

        let mut history = EnrollmentHistory::default();
        for recorded in &log.recorded {
            history.apply(recorded, &Event::decode(recorded).unwrap().unwrap());
        }
        let (denied, version) = history.with_version(link_only).unwrap();
        assert_eq!((denied.status(log.now()), version), (EnrollmentStatus::Denied, 2));
        let (denied, version) = history.with_version(named).unwrap();
        assert_eq!((denied.status(log.now()), version), (EnrollmentStatus::Denied, 3));
        assert_eq!(history.with_version(waiting).unwrap().0.decision, None);
    }
}
