//! Every agent's recent and unsettled transactions, in the order they were signed, and
//! every sender's nonces: what the guardrails, the nonces and the broadcast workers decide
//! on. Older transactions are forgotten as the log's time passes them (docs/cost.md) and
//! read from the log when asked for.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

use domain::events::Event;
use domain::transaction::{NonceBook, TransactionHistory, TransactionRecord, forgotten_at_or_before};
use domain::{AgentId, RecordedEvent};
use uuid::Uuid;

use crate::DomainModel;

/// How often, in the log's time, every history is compacted, not only those that sign:
/// an agent that stops signing is left with no more than it signed in its last windows.
const SWEEP_EVERY: Duration = Duration::hours(24);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transactions {
    by_agent: HashMap<AgentId, TransactionHistory>,
    /// Every agent's nonces per chain and sender: agents may sign with one key.
    nonces: NonceBook,
    /// The recorded time of the event at which every history was last compacted.
    swept_at: Option<DateTime<Utc>>,
}

static NO_HISTORY: LazyLock<TransactionHistory> = LazyLock::new(TransactionHistory::default);

impl Transactions {
    pub fn history(&self, agent: AgentId) -> &TransactionHistory {
        self.by_agent.get(&agent).unwrap_or(&NO_HISTORY)
    }

    /// The nonces every agent's transactions hold or released, per chain and sender.
    pub fn nonces(&self) -> &NonceBook {
        &self.nonces
    }

    pub fn get(&self, agent: AgentId, id: Uuid) -> Option<&TransactionRecord> {
        self.history(agent).get(id)
    }

    /// Every agent's transactions signed for broadcast whose outcome is not in the log.
    pub fn unsettled(&self) -> impl Iterator<Item = &TransactionRecord> {
        self.by_agent.values().flat_map(TransactionHistory::unsettled)
    }

    /// Compacts `agent`'s history as of `at`, the time of the event being folded.
    fn compact(&mut self, agent: AgentId, at: DateTime<Utc>) {
        let Some(history) = self.by_agent.get_mut(&agent) else {
            return;
        };
        for forgotten in history.compact(forgotten_at_or_before(at)) {
            self.nonces.forget(&forgotten);
        }
    }

    /// Once a day of the log's time, compacts every history, and drops those left empty.
    fn sweep(&mut self, at: DateTime<Utc>) {
        if self.swept_at.is_some_and(|swept_at| at - swept_at < SWEEP_EVERY) {
            return;
        }
        self.swept_at = Some(at);
        let cutoff = forgotten_at_or_before(at);
        let nonces = &mut self.nonces;
        self.by_agent.retain(|_, history| {
            for forgotten in history.compact(cutoff) {
                nonces.forget(&forgotten);
            }
            !history.is_empty()
        });
    }
}

impl DomainModel for Transactions {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        match event {
            Event::TransactionSigned(signed) => {
                let record = TransactionRecord::signed(signed, recorded.recorded_at);
                self.nonces.record(&record);
                self.by_agent.entry(signed.agent_id).or_default().push(record);
                self.compact(signed.agent_id, recorded.recorded_at);
            }
            Event::TransactionBroadcast(broadcast) => {
                if let Some(forgotten) = self
                    .by_agent
                    .get_mut(&broadcast.agent_id)
                    .and_then(|history| history.mark_broadcast(broadcast.tx_id))
                {
                    self.nonces.forget(&forgotten);
                }
            }
            Event::TransactionFailed(failed) => {
                if let Some(record) = self
                    .by_agent
                    .get_mut(&failed.agent_id)
                    .and_then(|history| history.mark_failed(failed.tx_id, &failed.error))
                {
                    self.nonces.release(&record);
                }
            }
            _ => {}
        }
        self.sweep(recorded.recorded_at);
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;
    use domain::events::{TransactionBroadcast, TransactionFailed, TransactionSigned};
    use domain::transaction::{IDEMPOTENCY_WINDOW, Ledger, SPEND_WINDOW, TxStatus, transaction_stream};
    use domain::wei::Wei;
    use domain::{ChainHash, Metadata, StreamId};
    use proptest::prelude::*;

    use super::*;

    const SENDERS: [(u64, &str); 3] = [(1, "0xaa"), (1, "0xbb"), (8453, "0xaa")];

    fn agent(n: u8) -> AgentId {
        AgentId(Uuid::from_u128(u128::from(n) + 1))
    }

    fn recorded(position: u64, at: DateTime<Utc>, stream: StreamId, event: Event) -> RecordedEvent {
        let new = event.to_new_event(&Metadata::system(at)).unwrap();
        RecordedEvent {
            position,
            event_id: new.event_id,
            stream_id: stream,
            stream_version: 1,
            event_type: new.event_type,
            schema_version: new.schema_version,
            payload: new.payload,
            metadata: new.metadata,
            recorded_at: at,
            prev_hash: ChainHash::GENESIS,
            hash: ChainHash::GENESIS,
        }
    }

    /// The whole history, folded as before anything was forgotten, answering by scanning.
    #[derive(Default)]
    struct Everything(Vec<TransactionRecord>);

    impl Everything {
        fn of(&self, agent: AgentId) -> impl Iterator<Item = &TransactionRecord> {
            self.0.iter().filter(move |r| r.agent_id == agent)
        }

        fn spent(&self, agent: AgentId, now: DateTime<Utc>) -> Wei {
            let values = self
                .of(agent)
                .filter(|r| r.signed_at > now - SPEND_WINDOW)
                .map(|r| r.value);
            Wei::checked_sum(values).unwrap()
        }

        fn fees(&self, agent: AgentId, now: DateTime<Utc>, chain_id: u64) -> Wei {
            let fees = self
                .of(agent)
                .filter(|r| r.chain_id == chain_id && r.signed_at > now - SPEND_WINDOW)
                .map(|r| r.max_fee);
            Wei::checked_sum(fees).unwrap()
        }

        fn signed_today(&self, agent: AgentId, now: DateTime<Utc>) -> u64 {
            let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
            self.of(agent).filter(|r| r.signed_at >= midnight).count() as u64
        }

        fn by_key(&self, agent: AgentId, key: &str, now: DateTime<Utc>) -> Option<Uuid> {
            self.of(agent)
                .filter(|r| r.idempotency_key.as_deref() == Some(key))
                .last()
                .filter(|r| r.signed_at > now - IDEMPOTENCY_WINDOW)
                .map(|r| r.id)
        }

        fn of_sender(&self, (chain_id, from): (u64, &str)) -> impl Iterator<Item = &TransactionRecord> {
            self.0.iter().filter(move |r| r.chain_id == chain_id && r.from == from)
        }

        fn holds(&self, sender: (u64, &str), nonce: u64) -> bool {
            self.of_sender(sender)
                .any(|r| r.status != TxStatus::Failed && r.nonce == nonce)
        }

        fn next_nonce(&self, sender: (u64, &str), pending: u64) -> u64 {
            let held = self.of_sender(sender).filter(|r| r.status != TxStatus::Failed);
            let fresh = held.map(|r| r.nonce + 1).max().unwrap_or(0).max(pending);
            self.of_sender(sender)
                .filter(|r| r.status == TxStatus::Failed && (pending..fresh).contains(&r.nonce))
                .map(|r| r.nonce)
                .filter(|nonce| !self.holds(sender, *nonce))
                .min()
                .unwrap_or(fresh)
        }
    }

    /// One step of a history: a transaction signed (by which agent, from which sender, a
    /// nonce of its own or the next, with an Idempotency-Key or not, for broadcast or
    /// not), or the outcome of one still unsettled; then time passes.
    #[derive(Debug, Clone)]
    enum Step {
        Sign {
            agent: u8,
            sender: usize,
            explicit_nonce: Option<u64>,
            pending: u64,
            key: Option<u8>,
            milli_eth: u32,
            sign_only: bool,
        },
        Outcome {
            which: usize,
            fails: bool,
        },
    }

    fn step() -> impl Strategy<Value = (Step, i64)> {
        let sign = (
            0u8..2,
            0usize..SENDERS.len(),
            proptest::option::weighted(0.2, 0u64..40),
            0u64..20,
            proptest::option::weighted(0.4, 0u8..4),
            0u32..3_000,
            proptest::bool::weighted(0.15),
        )
            .prop_map(
                |(agent, sender, explicit_nonce, pending, key, milli_eth, sign_only)| Step::Sign {
                    agent,
                    sender,
                    explicit_nonce,
                    pending,
                    key,
                    milli_eth,
                    sign_only,
                },
            );
        let outcome =
            (0usize..1000, proptest::bool::weighted(0.3)).prop_map(|(which, fails)| Step::Outcome { which, fails });
        (prop_oneof![3 => sign, 2 => outcome], 0i64..4 * 3600)
    }

    proptest! {
        /// Whatever was forgotten, every question a decision asks is answered as the whole
        /// history answers it, for any moment from the last event's on; and the kept
        /// transactions are no more than those the windows and the unsettled need.
        #[test]
        fn the_windowed_fold_answers_as_the_whole_history(
            steps in proptest::collection::vec(step(), 1..250),
            laters in proptest::collection::vec(0i64..40 * 3600, 1..4),
        ) {
            let mut at = DateTime::UNIX_EPOCH + Duration::days(20_000);
            let mut model = Transactions::default();
            let mut everything = Everything::default();
            for (position, (step, seconds_after)) in (1u64..).zip(steps) {
                let event = match step {
                    Step::Sign { agent: n, sender, explicit_nonce, pending, key, milli_eth, sign_only } => {
                        let (chain_id, from) = SENDERS[sender];
                        let nonce = explicit_nonce
                            .filter(|nonce| !everything.holds((chain_id, from), *nonce))
                            .unwrap_or_else(|| everything.next_nonce((chain_id, from), pending));
                        Event::TransactionSigned(TransactionSigned {
                            tx_id: Uuid::from_u128(u128::from(position) << 64),
                            agent_id: agent(n),
                            chain: "chain".into(),
                            chain_id,
                            from: from.into(),
                            to: "0xdef".into(),
                            value_wei: Wei::from_wei(u128::from(milli_eth) * 1_000_000_000_000_000),
                            max_fee_wei: Wei::from_wei(u128::from(milli_eth) * 21_000),
                            nonce,
                            tx_hash: String::new(),
                            signed_tx: String::new(),
                            signing_key_path: "keys/signer".into(),
                            idempotency_key: key.map(|key| format!("k{key}")),
                            request_digest: None,
                            sign_only,
                        })
                    }
                    Step::Outcome { which, fails } => {
                        let unsettled: Vec<&TransactionRecord> =
                            everything.0.iter().filter(|r| r.status == TxStatus::Signed).collect();
                        let Some(record) = unsettled.get(which % unsettled.len().max(1)) else {
                            continue;
                        };
                        let (tx_id, agent_id) = (record.id, record.agent_id);
                        if fails {
                            Event::TransactionFailed(TransactionFailed { tx_id, agent_id, error: "refused".into() })
                        } else {
                            Event::TransactionBroadcast(TransactionBroadcast { tx_id, agent_id })
                        }
                    }
                };
                let stream = transaction_stream(Uuid::from_u128(u128::from(position)));
                model.apply(&recorded(position, at, stream, event.clone()), &event);
                match &event {
                    Event::TransactionSigned(signed) => everything.0.push(TransactionRecord::signed(signed, at)),
                    Event::TransactionBroadcast(b) => {
                        everything.0.iter_mut().find(|r| r.id == b.tx_id).unwrap().status = TxStatus::Broadcast;
                    }
                    Event::TransactionFailed(f) => {
                        let record = everything.0.iter_mut().find(|r| r.id == f.tx_id).unwrap();
                        record.status = TxStatus::Failed;
                        record.error = Some(f.error.clone());
                    }
                    _ => unreachable!(),
                }
                for later in std::iter::once(0).chain(laters.iter().copied()) {
                    let now = at + Duration::seconds(later);
                    for n in 0..2 {
                        let ledger = Ledger::new(model.history(agent(n)), model.nonces(), &[]);
                        prop_assert_eq!(ledger.spent_before(now), everything.spent(agent(n), now));
                        for (chain_id, _) in SENDERS {
                            prop_assert_eq!(ledger.fees_before(now, chain_id), everything.fees(agent(n), now, chain_id));
                        }
                        prop_assert_eq!(ledger.signed_today(now), everything.signed_today(agent(n), now));
                        for key in 0..4 {
                            let key = format!("k{key}");
                            prop_assert_eq!(
                                ledger.by_idempotency_key(&key, now).map(|r| r.id),
                                everything.by_key(agent(n), &key, now)
                            );
                        }
                    }
                }
                let ledger = Ledger::new(model.history(agent(0)), model.nonces(), &[]);
                for sender in SENDERS {
                    for nonce in 0..45 {
                        prop_assert_eq!(ledger.holds_nonce(sender.0, sender.1, nonce), everything.holds(sender, nonce), "{:?} {}", sender, nonce);
                    }
                    for pending in [0, 5, 20, 44] {
                        prop_assert_eq!(ledger.next_nonce(sender.0, sender.1, pending), everything.next_nonce(sender, pending));
                    }
                }
                let mut unsettled: Vec<Uuid> = model.unsettled().map(|r| r.id).collect();
                unsettled.sort();
                let expected: Vec<Uuid> = everything.0.iter().filter(|r| r.status == TxStatus::Signed).map(|r| r.id).collect();
                prop_assert_eq!(unsettled, expected);
                for record in &everything.0 {
                    if let Some(kept) = model.get(record.agent_id, record.id) {
                        prop_assert_eq!(kept, record);
                    }
                }
                at += Duration::seconds(seconds_after);
            }
        }
    }

    /// An agent that signs steadily for a week keeps about a window's worth, and one that
    /// then stops is left with its unsettled transactions only, once a day of the log's time
    /// has passed.
    #[test]
    fn memory_follows_the_windows_not_the_history() {
        let mut model = Transactions::default();
        let mut at = DateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut position = 0;
        let mut fold = |model: &mut Transactions, at: DateTime<Utc>, event: Event| {
            position += 1;
            let stream = transaction_stream(Uuid::from_u128(position.into()));
            model.apply(&recorded(position, at, stream, event.clone()), &event);
        };
        let mut stuck = None;
        for nonce in 0..7 * 24 * 6 {
            let tx_id = Uuid::from_u128(u128::from(nonce) + 1);
            let signed = TransactionSigned {
                tx_id,
                agent_id: agent(0),
                chain: "chain".into(),
                chain_id: 1,
                from: "0xaa".into(),
                to: "0xdef".into(),
                value_wei: Wei::from_wei(1),
                max_fee_wei: Wei::ZERO,
                nonce,
                tx_hash: String::new(),
                signed_tx: String::new(),
                signing_key_path: "keys/signer".into(),
                idempotency_key: None,
                request_digest: None,
                sign_only: false,
            };
            fold(&mut model, at, Event::TransactionSigned(signed));
            if nonce == 10 {
                stuck = Some(tx_id);
            } else {
                let broadcast = TransactionBroadcast {
                    tx_id,
                    agent_id: agent(0),
                };
                fold(&mut model, at, Event::TransactionBroadcast(broadcast));
            }
            at += Duration::minutes(10);
        }
        let kept = model.history(agent(0)).records().len();
        assert!((150..=2 * 150 + 16).contains(&kept), "{kept} kept of {}", 7 * 24 * 6);
        let stuck = stuck.unwrap();
        assert_eq!(model.unsettled().map(|r| r.id).collect::<Vec<_>>(), [stuck]);
        let ledger = Ledger::new(model.history(agent(0)), model.nonces(), &[]);
        assert_eq!(ledger.next_nonce(1, "0xaa", 0), 7 * 24 * 6);
        assert_eq!(ledger.spent_before(at), Wei::from_wei(143), "a day of ten-minute steps");

        let nothing = Event::TransactionBroadcast(TransactionBroadcast {
            tx_id: Uuid::from_u128(u128::MAX),
            agent_id: agent(1),
        });
        fold(&mut model, at + Duration::days(2), nothing);
        assert_eq!(model.history(agent(0)).records(), []);
        assert_eq!(model.history(agent(0)).get(stuck).map(|r| r.nonce), Some(10));
        assert_eq!(
            Ledger::new(model.history(agent(0)), model.nonces(), &[]).next_nonce(1, "0xaa", 0),
            7 * 24 * 6
        );
    }
}
