//! An agent's transactions as its stream records them: what was signed, with which nonce
//! and value, and what became of it. Spend is read from here under the agent stream's
//! expected version, and nonces under their sender's stream's (agents may share a key),
//! so concurrent submissions cannot overspend or reuse a nonce.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::change::{Change, stream};
use crate::event::ExpectedVersion;
use crate::events::{Event, NonceReserved, TransactionSigned};
use crate::ids::AgentId;
use crate::stream::StreamId;
use crate::suffix_sums::SuffixSums;
use crate::wei::Wei;

/// A signed transaction's outcome (broadcast or failed) is recorded once, in a stream of
/// its own: outcomes never contend with the reservations on the agent's stream.
pub fn transaction_stream(tx_id: Uuid) -> StreamId {
    stream("transaction", tx_id)
}

/// Every nonce reserved for one sender (a key's address) on one chain, by whichever agent
/// signs with that key: its expected version keeps two agents sharing a key, on one
/// replica or several, from reserving the same nonce.
pub fn sender_stream(chain_id: u64, from: &str) -> StreamId {
    stream("sender", format!("{chain_id}-{}", from.to_ascii_lowercase()))
}

/// What a signed transaction records on its sender's stream: the nonce it holds.
pub fn nonce_reserved(signed: &TransactionSigned) -> NonceReserved {
    NonceReserved {
        tx_id: signed.tx_id,
        agent_id: signed.agent_id,
        chain_id: signed.chain_id,
        from: signed.from.to_ascii_lowercase(),
        nonce: signed.nonce,
    }
}

/// Refusals and simulations: audit records that reserve nothing, kept off the agent's
/// stream so they never make a reservation retry.
pub fn intents_activity_stream(agent: AgentId) -> StreamId {
    stream("intents_activity", agent)
}

/// Appends `events` to the agent's intents activity: whatever it holds, since nothing is
/// decided on it.
pub fn intents_activity(agent: AgentId, events: Vec<Event>) -> Change {
    Change {
        stream: intents_activity_stream(agent),
        expected: ExpectedVersion::Any,
        events,
    }
}

/// The daily limit and the fee budget look back this far.
pub const SPEND_WINDOW: Duration = Duration::hours(24);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// Signed, its nonce and value reserved; not yet accepted by the node.
    Signed,
    /// Signed for the agent to broadcast itself; reserved like any other.
    SignOnly,
    /// Accepted by the node.
    Broadcast,
    /// The node refused it: its nonce is free for the next transaction, but its value,
    /// fee ceiling and place in the daily count stay held for their window (docs/security.md).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransactionRecord {
    pub id: Uuid,
    pub agent_id: AgentId,
    pub chain: String,
    pub chain_id: u64,
    pub from: String,
    pub to: String,
    pub value: Wei,
    /// The most it can pay the network in fees; zero if signed before keyward kept it.
    pub max_fee: Wei,
    pub nonce: u64,
    pub tx_hash: String,
    pub signed_tx: String,
    pub status: TxStatus,
    pub error: Option<String>,
    pub signed_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    /// What the request that made it asked, when it came with an Idempotency-Key; none for
    /// transactions signed before keyward kept it.
    pub request_digest: Option<RequestDigest>,
}

impl TransactionRecord {
    pub fn signed(event: &TransactionSigned, at: DateTime<Utc>) -> Self {
        Self {
            id: event.tx_id,
            agent_id: event.agent_id,
            chain: event.chain.clone(),
            chain_id: event.chain_id,
            from: event.from.clone(),
            to: event.to.clone(),
            value: event.value_wei,
            max_fee: event.max_fee_wei,
            nonce: event.nonce,
            tx_hash: event.tx_hash.clone(),
            signed_tx: event.signed_tx.clone(),
            status: if event.sign_only {
                TxStatus::SignOnly
            } else {
                TxStatus::Signed
            },
            error: None,
            signed_at: at,
            idempotency_key: event.idempotency_key.clone(),
            request_digest: event.request_digest.clone(),
        }
    }

    /// Whether its nonce is still taken. A failed broadcast's nonce is given to the next
    /// transaction, which once mined makes the failed one invalid for good.
    fn holds_nonce(&self) -> bool {
        self.status != TxStatus::Failed
    }

    /// Its signed bytes, while they are any use to whoever asks: a failed broadcast's are
    /// withheld, since nothing but sending them behind keyward's back is left to do with them.
    pub fn signed_bytes(&self) -> Option<&str> {
        (self.status != TxStatus::Failed).then_some(self.signed_tx.as_str())
    }
}

/// How long an Idempotency-Key is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::hours(24);

/// How far before the newest event's time a decision's `now` may fall: a request reads
/// its clock when it arrives, the store stamps `recorded_at` when it commits (never
/// earlier than the last commit), so a request's `now` may be behind the newest
/// transaction's time, by its own latency or a replica's clock. Transactions are kept
/// this much past the windows so that every answer for such a `now` stays exact.
pub const CLOCK_SKEW_MARGIN: Duration = Duration::hours(1);

/// The moment at and before which a finished transaction is forgotten, once an event
/// recorded at `at` was folded: every window a decision sums (the spend and fee window,
/// the Idempotency-Key's, and the UTC day, which began less than 24 hours before its
/// `now`) starts after it for any `now` no more than [`CLOCK_SKEW_MARGIN`] before `at`.
pub fn forgotten_at_or_before(at: DateTime<Utc>) -> DateTime<Utc> {
    at - SPEND_WINDOW.max(IDEMPOTENCY_WINDOW) - CLOCK_SKEW_MARGIN
}

/// A history is compacted only once the part past the windows is at least half of it
/// and at least this many records: the rebuild it costs is paid for by what it drops.
const COMPACT_MIN: usize = 16;

/// What a request to sign a transaction asked, hashed: SHA-256 of an unambiguous encoding
/// of its fields (intents' `submission::Request`), as lowercase hex. A repeat of an
/// Idempotency-Key gets the earlier answer only if it asks the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestDigest(String);

impl RequestDigest {
    /// The digest of `encoded`, a request's fields in an encoding where no two requests
    /// share one.
    pub fn of(encoded: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(encoded)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The nonces one sender's live transactions hold on one chain, and those failed
/// broadcasts released.
///
/// The nonces of transactions forgotten once past the windows (see
/// [`TransactionHistory::compact`]) are kept as ranges, not one by one: a sender's nonces
/// follow one another, so they make one range, plus one per gap an explicit nonce left.
/// A single high-water mark ("every nonce at or below the highest forgotten one is held
/// unless released") would be smaller still, but it would also hold the gaps an explicit
/// nonce skipped, which no transaction ever held: a request for one of them would be
/// refused where the whole history accepts it. The ranges answer exactly as the whole
/// history does.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct SenderNonces {
    /// Held by transactions kept in memory.
    held: BTreeSet<u64>,
    /// Released by failed broadcasts and not held since: the gaps to fill first. A nonce
    /// held again leaves it, so it keeps gaps only.
    released: BTreeSet<u64>,
    /// Held by forgotten transactions, as ranges: first nonce to last, inclusive.
    forgotten: BTreeMap<u64, u64>,
}

impl SenderNonces {
    fn holds(&self, nonce: u64) -> bool {
        self.held.contains(&nonce) || self.holds_forgotten(nonce)
    }

    /// The highest nonce held, by a transaction kept or forgotten.
    fn highest(&self) -> Option<u64> {
        let forgotten = self.forgotten.last_key_value().map(|(_, last)| *last);
        self.held.last().copied().max(forgotten)
    }

    /// Adds `nonce` to the forgotten ranges, merging it with its neighbours.
    fn forget(&mut self, nonce: u64) {
        if self.holds_forgotten(nonce) {
            return;
        }
        let before = self
            .forgotten
            .range(..nonce)
            .next_back()
            .filter(|(_, last)| last.checked_add(1) == Some(nonce))
            .map(|(first, _)| *first);
        let after = nonce.checked_add(1).and_then(|next| self.forgotten.remove(&next));
        let first = before.unwrap_or(nonce);
        self.forgotten.insert(first, after.unwrap_or(nonce));
    }

    fn holds_forgotten(&self, nonce: u64) -> bool {
        self.forgotten
            .range(..=nonce)
            .next_back()
            .is_some_and(|(_, last)| *last >= nonce)
    }
}

/// The nonces every agent's transactions hold or released, per chain and sender: what a
/// decision reserves from, since agents may share a key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NonceBook {
    senders: HashMap<(u64, String), SenderNonces>,
}

impl NonceBook {
    /// `record` holds its nonce, or (signed failed) has released it.
    pub fn record(&mut self, record: &TransactionRecord) {
        let nonces = self.senders.entry(sender(record.chain_id, &record.from)).or_default();
        if record.holds_nonce() {
            nonces.held.insert(record.nonce);
            nonces.released.remove(&record.nonce);
        } else {
            nonces.released.insert(record.nonce);
        }
    }

    /// `record`'s broadcast failed: its nonce is free again.
    pub fn release(&mut self, record: &TransactionRecord) {
        let nonces = self.senders.entry(sender(record.chain_id, &record.from)).or_default();
        nonces.held.remove(&record.nonce);
        nonces.released.insert(record.nonce);
    }

    /// `record` is forgotten (past the windows, settled): the nonce it holds stays held.
    pub fn forget(&mut self, record: &TransactionRecord) {
        if !record.holds_nonce() {
            return;
        }
        let nonces = self.senders.entry(sender(record.chain_id, &record.from)).or_default();
        nonces.held.remove(&record.nonce);
        nonces.forget(record.nonce);
    }

    fn of(&self, chain_id: u64, from: &str) -> Option<&SenderNonces> {
        self.senders.get(&sender(chain_id, from))
    }
}

impl<'r> FromIterator<&'r TransactionRecord> for NonceBook {
    fn from_iter<I: IntoIterator<Item = &'r TransactionRecord>>(records: I) -> Self {
        let mut book = Self::default();
        for record in records {
            book.record(record);
        }
        book
    }
}

/// One agent's recent transactions in signing order, indexed for the questions decisions
/// ask: by id and by Idempotency-Key. Records' `signed_at` never decreases along the log,
/// so the spend window is a suffix.
///
/// Only what a decision needs is kept: the transactions signed since
/// [`forgotten_at_or_before`] the newest one (see [`Self::compact`]), and those older still
/// unsettled, which the broadcast workers send again whatever their age. Everything older
/// is read from the log on demand.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransactionHistory {
    records: Vec<TransactionRecord>,
    /// Unsettled transactions signed before the windows kept in `records`: found by id,
    /// counted in no window (each began after them), forgotten once their outcome is in.
    unsettled_past_windows: HashMap<Uuid, TransactionRecord>,
    by_id: HashMap<Uuid, usize>,
    by_idempotency_key: HashMap<String, usize>,
    /// What each record holds against the daily limit, in record order: its value.
    held: SuffixSums,
    /// Per chain id, what each record there holds against the chain's fee budget: its
    /// fee ceiling.
    fees: HashMap<u64, TimedSums>,
}

/// Amounts with the moments they were signed at, which never decrease: sums over the
/// window since any moment, found by binary search.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct TimedSums {
    at: Vec<DateTime<Utc>>,
    sums: SuffixSums,
}

impl TimedSums {
    /// Adds `amount` at `at`.
    fn push(&mut self, at: DateTime<Utc>, amount: u128) {
        self.at.push(at);
        self.sums.push(amount);
    }

    /// The sum of the amounts after `moment`.
    fn after(&self, moment: DateTime<Utc>) -> u128 {
        self.sums.from(self.at.partition_point(|at| *at <= moment))
    }
}

impl TransactionHistory {
    /// The transactions kept in the windows, oldest first.
    pub fn records(&self) -> &[TransactionRecord] {
        &self.records
    }

    pub fn get(&self, id: Uuid) -> Option<&TransactionRecord> {
        self.by_id
            .get(&id)
            .map(|&at| &self.records[at])
            .or_else(|| self.unsettled_past_windows.get(&id))
    }

    /// Its transactions signed for broadcast whose outcome is not in the log, whatever
    /// their age.
    pub fn unsettled(&self) -> impl Iterator<Item = &TransactionRecord> {
        self.records
            .iter()
            .filter(|record| record.status == TxStatus::Signed)
            .chain(self.unsettled_past_windows.values())
    }

    /// Whether it keeps nothing.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.unsettled_past_windows.is_empty()
    }

    /// Forgets the transactions signed at or before `cutoff` (see [`forgotten_at_or_before`])
    /// once they are at least half of those kept and at least [`COMPACT_MIN`], and rebuilds
    /// the indexes and sums from the rest: amortized, each record is rebuilt a bounded
    /// number of times. Unsettled ones are set aside, findable by id and counted in no
    /// window. The records forgotten, whose nonces their sender's book must still hold.
    ///
    /// `cutoff` must come from the time of the event being folded, never a clock, so that
    /// a rebuild from the log, or a snapshot and its tail, forgets exactly as this fold did.
    pub fn compact(&mut self, cutoff: DateTime<Utc>) -> Vec<TransactionRecord> {
        let past = self.records.partition_point(|record| record.signed_at <= cutoff);
        if past < COMPACT_MIN || 2 * past < self.records.len() {
            return Vec::new();
        }
        let mut kept = std::mem::take(&mut self.records);
        let past: Vec<TransactionRecord> = kept.drain(..past).collect();
        let unsettled_past_windows = std::mem::take(&mut self.unsettled_past_windows);
        *self = Self {
            unsettled_past_windows,
            ..Self::default()
        };
        for record in kept {
            self.push(record);
        }
        let mut forgotten = Vec::new();
        for record in past {
            if record.status == TxStatus::Signed {
                self.unsettled_past_windows.insert(record.id, record);
            } else {
                forgotten.push(record);
            }
        }
        forgotten
    }

    pub fn push(&mut self, record: TransactionRecord) {
        let at = self.records.len();
        self.by_id.insert(record.id, at);
        if let Some(key) = &record.idempotency_key {
            self.by_idempotency_key.insert(key.clone(), at);
        }
        self.held.push(counted(record.value));
        self.fees
            .entry(record.chain_id)
            .or_default()
            .push(record.signed_at, counted(record.max_fee));
        self.records.push(record);
    }

    /// The node took it. A transaction past the windows is settled now, so forgotten: it
    /// is returned, for its sender's book to keep its nonce held.
    pub fn mark_broadcast(&mut self, id: Uuid) -> Option<TransactionRecord> {
        if let Some(&at) = self.by_id.get(&id) {
            self.records[at].status = TxStatus::Broadcast;
            return None;
        }
        let mut forgotten = self.unsettled_past_windows.remove(&id)?;
        forgotten.status = TxStatus::Broadcast;
        Some(forgotten)
    }

    /// The node refused it: its nonce is released, its value stays held. A refusal proves
    /// nothing about later: the same signed bytes may be valid tomorrow (the key topped up,
    /// the base fee fallen), sent by the node that refused them or by anyone who read them.
    /// The record as failed, if it was known; one past the windows is forgotten now.
    pub fn mark_failed(&mut self, id: Uuid, error: &str) -> Option<TransactionRecord> {
        let record = match self.by_id.get(&id) {
            Some(&at) => &mut self.records[at],
            None => self.unsettled_past_windows.get_mut(&id)?,
        };
        record.status = TxStatus::Failed;
        record.error = Some(error.to_owned());
        let failed = record.clone();
        self.unsettled_past_windows.remove(&id);
        Some(failed)
    }
}

/// A value as the window sums count it: capped at [`Wei::CEILING`], which no limit exceeds,
/// so that the sum of any number of them an agent could sign fits in 128 bits.
fn counted(value: Wei) -> u128 {
    value.as_u128().min(Wei::CEILING.as_u128())
}

fn sender(chain_id: u64, from: &str) -> (u64, String) {
    (chain_id, from.to_ascii_lowercase())
}

/// An agent's transactions as a decision sees them: its history in the log, then those
/// decided earlier in the same turn and not yet appended (a handful); and the nonces
/// every agent's transactions in the log hold (agents may share a key). Borrowed, never copied; every
/// question is answered from the indexes, not by a scan.
#[derive(Debug, Clone, Copy)]
pub struct Ledger<'a> {
    logged: &'a TransactionHistory,
    nonces: &'a NonceBook,
    this_turn: &'a [TransactionRecord],
}

impl<'a> Ledger<'a> {
    pub fn new(logged: &'a TransactionHistory, nonces: &'a NonceBook, this_turn: &'a [TransactionRecord]) -> Self {
        Self {
            logged,
            nonces,
            this_turn,
        }
    }

    fn of_sender_this_turn(self, chain_id: u64, from: &str) -> impl Iterator<Item = &'a TransactionRecord> {
        self.this_turn
            .iter()
            .filter(move |r| r.chain_id == chain_id && r.from.eq_ignore_ascii_case(from))
    }

    /// The transaction an earlier request with `key` created, if it is recent enough to count.
    pub fn by_idempotency_key(self, key: &str, now: DateTime<Utc>) -> Option<&'a TransactionRecord> {
        let this_turn = self
            .this_turn
            .iter()
            .rev()
            .find(|r| r.idempotency_key.as_deref() == Some(key));
        this_turn
            .or_else(|| {
                let at = *self.logged.by_idempotency_key.get(key)?;
                self.logged.records.get(at)
            })
            .filter(|r| r.signed_at > now - IDEMPOTENCY_WINDOW)
    }

    /// What the agent spent in the window before `now`: everything it signed, failed
    /// broadcasts included (see [`TransactionHistory::mark_failed`]). The log's
    /// part is a suffix of its records (their `signed_at` never decreases), found by
    /// binary search and summed by the history's index.
    pub fn spent_before(self, now: DateTime<Utc>) -> Wei {
        let since = now - SPEND_WINDOW;
        let first_in_window = self.logged.records.partition_point(|r| r.signed_at <= since);
        let logged = Wei::from_wei(self.logged.held.from(first_in_window));
        let this_turn = self.this_turn.iter().filter(|r| r.signed_at > since).map(|r| r.value);
        Wei::checked_sum(std::iter::once(logged).chain(this_turn)).unwrap_or(Wei::CEILING)
    }

    /// What the agent's transactions on `chain_id` may pay in fees, in the window before
    /// `now`: their fee ceilings, as the spend is counted.
    pub fn fees_before(self, now: DateTime<Utc>, chain_id: u64) -> Wei {
        let since = now - SPEND_WINDOW;
        let logged = Wei::from_wei(self.logged.fees.get(&chain_id).map_or(0, |fees| fees.after(since)));
        let this_turn = self
            .this_turn
            .iter()
            .filter(|r| r.chain_id == chain_id && r.signed_at > since)
            .map(|r| r.max_fee);
        Wei::checked_sum(std::iter::once(logged).chain(this_turn)).unwrap_or(Wei::CEILING)
    }

    /// How many transactions the agent signed in `now`'s UTC calendar day, failed ones
    /// included.
    pub fn signed_today(self, now: DateTime<Utc>) -> u64 {
        let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
        let first = self.logged.records.partition_point(|r| r.signed_at < midnight);
        let logged = self.logged.records.len() - first;
        let this_turn = self.this_turn.iter().filter(|r| r.signed_at >= midnight).count();
        u64::try_from(logged + this_turn).unwrap_or(u64::MAX)
    }

    /// Whether a live transaction from `from` on `chain_id` holds `nonce`.
    pub fn holds_nonce(self, chain_id: u64, from: &str, nonce: u64) -> bool {
        self.nonces.of(chain_id, from).is_some_and(|nonces| nonces.holds(nonce))
            || self.of_sender_this_turn(chain_id, from).any(|r| r.nonce == nonce)
    }

    /// The nonce for the next transaction from `from` on `chain_id`: a nonce released by a
    /// failed broadcast below the next fresh one first (so no gap strands the transactions
    /// after it), else the fresh one: one past the highest held, and never below what the
    /// node reports as pending. A released nonce at or past the fresh one is never taken:
    /// it would open a gap of its own (a failed send with an explicit nonce far ahead).
    pub fn next_nonce(self, chain_id: u64, from: &str, chain_pending: u64) -> u64 {
        let logged = self.nonces.of(chain_id, from);
        let after_held = logged
            .and_then(SenderNonces::highest)
            .into_iter()
            .chain(self.of_sender_this_turn(chain_id, from).map(|r| r.nonce))
            .max()
            .map_or(0, |highest| highest.saturating_add(1));
        let fresh = after_held.max(chain_pending);
        logged
            .into_iter()
            .flat_map(|nonces| nonces.released.range(chain_pending..fresh))
            .copied()
            .find(|nonce| !self.holds_nonce(chain_id, from, *nonce))
            .unwrap_or(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(nonce: u64, status: TxStatus, value_eth: &str, at: DateTime<Utc>) -> TransactionRecord {
        TransactionRecord {
            id: Uuid::now_v7(),
            agent_id: AgentId::new(),
            chain: "anvil".into(),
            chain_id: 31337,
            from: "0xabc".into(),
            to: "0xdef".into(),
            value: Wei::from_eth_str(value_eth).unwrap(),
            max_fee: Wei::ZERO,
            nonce,
            tx_hash: String::new(),
            signed_tx: String::new(),
            status,
            error: None,
            signed_at: at,
            idempotency_key: None,
            request_digest: None,
        }
    }

    /// The nonces `records` hold or released, as the log's every-agent book has them.
    fn nonces_of(records: &[TransactionRecord]) -> NonceBook {
        records.iter().collect()
    }

    fn history(records: &[TransactionRecord]) -> TransactionHistory {
        let mut history = TransactionHistory::default();
        for record in records {
            history.push(record.clone());
        }
        history
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().to_utc()
    }

    #[test]
    fn a_transaction_signed_before_request_digests_were_kept_reads_and_writes_as_it_was() {
        let stored = concat!(
            r#"{"tx_id":"00000000-0000-0000-0000-000000000001","agent_id":"00000000-0000-0000-0000-000000000002","#,
            r#""chain":"anvil","chain_id":31337,"from":"0xabc","to":"0xdef","value_wei":"1000","nonce":0,"#,
            r#""tx_hash":"0x01","signed_tx":"0x02","signing_key_path":"keys/anvil-signer","idempotency_key":"k1"}"#
        );
        let event: TransactionSigned = serde_json::from_str(stored).unwrap();
        assert_eq!(event.request_digest, None);
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            stored,
            "the same bytes, the same hash"
        );
        assert_eq!(TransactionRecord::signed(&event, now()).request_digest, None);

        let digested = TransactionSigned {
            request_digest: Some(RequestDigest::of(b"a request")),
            ..event
        };
        let written = serde_json::to_string(&digested).unwrap();
        assert!(
            written.ends_with(
                r#""idempotency_key":"k1","request_digest":"af0bf2a562dabe2a81e0b0b47a33a515b5e8495c72fff218af4c15f3f066fa44"}"#
            ),
            "{written}"
        );
        assert_eq!(serde_json::from_str::<TransactionSigned>(&written).unwrap(), digested);
    }

    #[test]
    fn spend_counts_the_last_24_hours_failures_included() {
        let records = [
            record(0, TxStatus::Broadcast, "0.4", now() - Duration::hours(25)),
            record(1, TxStatus::Broadcast, "0.3", now() - Duration::hours(23)),
            record(2, TxStatus::Failed, "5", now() - Duration::hours(1)),
            record(3, TxStatus::Signed, "0.2", now()),
        ];
        assert_eq!(
            Ledger::new(&history(&records), &nonces_of(&records), &[]).spent_before(now()),
            Wei::from_eth_str("5.5").unwrap()
        );
    }

    #[test]
    fn fees_count_per_chain_over_the_last_24_hours_with_the_turns_failures_included() {
        let fee = |record: TransactionRecord, chain_id: u64, max_fee_eth: &str| TransactionRecord {
            chain_id,
            max_fee: Wei::from_eth_str(max_fee_eth).unwrap(),
            ..record
        };
        let records = [
            fee(
                record(0, TxStatus::Broadcast, "1", now() - Duration::hours(25)),
                1,
                "0.4",
            ),
            fee(
                record(1, TxStatus::Broadcast, "1", now() - Duration::hours(23)),
                1,
                "0.03",
            ),
            fee(record(2, TxStatus::Failed, "1", now() - Duration::hours(1)), 1, "5"),
            fee(record(3, TxStatus::SignOnly, "1", now()), 1, "0.002"),
            fee(record(0, TxStatus::Broadcast, "1", now()), 8453, "0.7"),
        ];
        let this_turn = [fee(record(4, TxStatus::Signed, "1", now()), 1, "0.0001")];
        let (logged, nonces) = (history(&records), nonces_of(&records));
        let ledger = Ledger::new(&logged, &nonces, &this_turn);
        assert_eq!(ledger.fees_before(now(), 1), Wei::from_eth_str("5.0321").unwrap());
        assert_eq!(ledger.fees_before(now(), 8453), Wei::from_eth_str("0.7").unwrap());
        assert_eq!(ledger.fees_before(now(), 31337), Wei::ZERO);
    }

    #[test]
    fn the_daily_count_starts_at_midnight_utc_failures_included() {
        let midnight = now() - Duration::hours(12);
        let records = [
            record(0, TxStatus::Broadcast, "1", midnight - Duration::seconds(1)),
            record(1, TxStatus::Broadcast, "1", midnight),
            record(2, TxStatus::Failed, "1", midnight + Duration::hours(1)),
            record(3, TxStatus::SignOnly, "1", now()),
        ];
        let this_turn = [record(4, TxStatus::Signed, "1", now())];
        let (logged, nonces) = (history(&records), nonces_of(&records));
        assert_eq!(Ledger::new(&logged, &nonces, &this_turn).signed_today(now()), 4);
        let mut later = logged.clone();
        later.mark_failed(records[3].id, "refused");
        assert_eq!(Ledger::new(&later, &nonces, &[]).signed_today(now()), 3);
    }

    #[test]
    fn nonces_continue_reuse_released_ones_and_follow_the_chain() {
        assert_eq!(
            Ledger::new(&history(&[]), &nonces_of(&[]), &[]).next_nonce(31337, "0xabc", 4),
            4
        );
        let records = [
            record(4, TxStatus::Broadcast, "1", now()),
            record(5, TxStatus::Failed, "1", now()),
            record(6, TxStatus::Broadcast, "1", now()),
        ];
        assert_eq!(
            Ledger::new(&history(&records), &nonces_of(&records), &[]).next_nonce(31337, "0xABC", 4),
            5,
            "the gap left by a failure is filled first"
        );
        assert_eq!(
            Ledger::new(&history(&records[..2]), &nonces_of(&records[..2]), &[]).next_nonce(31337, "0xabc", 5),
            5,
            "a failed last nonce is reused"
        );
        assert_eq!(
            Ledger::new(&history(&records), &nonces_of(&records), &[]).next_nonce(31337, "0xabc", 9),
            9,
            "the node knows of later ones"
        );
        assert_eq!(
            Ledger::new(&history(&records), &nonces_of(&records), &[]).next_nonce(1, "0xabc", 0),
            0,
            "other chains count apart"
        );
    }

    #[test]
    fn a_nonce_released_ahead_of_the_next_fresh_one_is_not_taken() {
        let records = [
            record(0, TxStatus::Broadcast, "1", now()),
            record(10, TxStatus::Failed, "1", now()),
        ];
        let logged = history(&records);
        let book = nonces_of(logged.records());
        let ledger = Ledger::new(&logged, &book, &[]);
        assert_eq!(
            ledger.next_nonce(31337, "0xabc", 1),
            1,
            "taking 10 would strand it behind 1 to 9"
        );
        assert_eq!(ledger.next_nonce(31337, "0xabc", 10), 10, "the node has reached it");
    }

    #[test]
    fn every_agents_nonces_keep_an_agent_off_a_nonce_another_agent_holds_with_the_same_key() {
        let mine = record(0, TxStatus::Broadcast, "1", now());
        let theirs = record(1, TxStatus::Signed, "1", now());
        assert_ne!(mine.agent_id, theirs.agent_id);
        let own = history(std::slice::from_ref(&mine));
        let mut every_agents = NonceBook::default();
        every_agents.record(&mine);
        every_agents.record(&theirs);
        assert_eq!(
            Ledger::new(&own, &nonces_of(own.records()), &[]).next_nonce(31337, "0xabc", 0),
            1,
            "its own history alone does not know the other agent's nonce"
        );
        let ledger = Ledger::new(&own, &every_agents, &[]);
        assert!(ledger.holds_nonce(31337, "0xABC", 1));
        assert_eq!(ledger.next_nonce(31337, "0xabc", 0), 2);
        every_agents.release(&theirs);
        assert_eq!(
            Ledger::new(&own, &every_agents, &[]).next_nonce(31337, "0xabc", 0),
            1,
            "a nonce the other agent's failed broadcast released"
        );
        assert_eq!(sender_stream(31337, "0xABC"), sender_stream(31337, "0xabc"));
        assert_ne!(sender_stream(31337, "0xabc"), sender_stream(1, "0xabc"));
    }

    #[test]
    fn a_turn_sees_what_it_reserved_before_the_log_does() {
        let logged = history(&[record(4, TxStatus::Broadcast, "0.25", now())]);
        let mut reserved = record(5, TxStatus::Signed, "0.5", now());
        reserved.idempotency_key = Some("k1".into());
        let this_turn = [reserved];
        let book = nonces_of(logged.records());
        let ledger = Ledger::new(&logged, &book, &this_turn);
        assert_eq!(ledger.next_nonce(31337, "0xabc", 0), 6);
        assert!(ledger.holds_nonce(31337, "0xABC", 5));
        assert_eq!(ledger.spent_before(now()), Wei::from_eth_str("0.75").unwrap());
        assert_eq!(ledger.by_idempotency_key("k1", now()).map(|r| r.nonce), Some(5));
        assert_eq!(
            Ledger::new(&logged, &nonces_of(logged.records()), &[]).by_idempotency_key("k1", now()),
            None
        );
    }

    #[test]
    fn a_failure_releases_its_nonce_until_another_holds_it_but_keeps_its_value_held() {
        let mut logged = history(&[
            record(0, TxStatus::Broadcast, "1", now()),
            record(1, TxStatus::Signed, "1", now()),
            record(2, TxStatus::Broadcast, "1", now()),
        ]);
        let failed = logged.records()[1].id;
        logged.mark_failed(failed, "nonce too low");
        assert_eq!(
            Ledger::new(&logged, &nonces_of(logged.records()), &[]).next_nonce(31337, "0xabc", 0),
            1
        );
        assert_eq!(
            Ledger::new(&logged, &nonces_of(logged.records()), &[]).spent_before(now()),
            Wei::from_eth_str("3").unwrap(),
            "its signed bytes may still be mined, by whoever has them"
        );
        logged.push(record(1, TxStatus::Signed, "1", now()));
        assert_eq!(
            Ledger::new(&logged, &nonces_of(logged.records()), &[]).next_nonce(31337, "0xabc", 0),
            3
        );
    }

    /// `count` broadcast transactions a minute apart from `start`, nonces from `first_nonce`.
    fn broadcast_from(start: DateTime<Utc>, first_nonce: u64, count: u64) -> Vec<TransactionRecord> {
        (0..count)
            .map(|n| {
                record(
                    first_nonce + n,
                    TxStatus::Broadcast,
                    "1",
                    start + Duration::minutes(n as i64),
                )
            })
            .collect()
    }

    #[test]
    fn an_unsettled_transaction_past_the_windows_stays_findable_and_counts_in_no_window() {
        let long_ago = now() - Duration::days(3);
        let mut old = broadcast_from(long_ago, 0, 20);
        old[3].status = TxStatus::Signed;
        let stuck = old[3].id;
        let mut logged = history(&old);
        let mut book = nonces_of(&old);
        let recent = broadcast_from(now(), 20, 2);
        for record in &recent {
            book.record(record);
            logged.push(record.clone());
        }
        let forgotten = logged.compact(forgotten_at_or_before(now()));
        assert_eq!(forgotten.len(), 19, "all but the unsettled one");
        for record in &forgotten {
            book.forget(record);
        }
        assert_eq!(logged.records(), &recent[..]);
        assert_eq!(logged.get(stuck).map(|r| r.nonce), Some(3));
        assert_eq!(logged.unsettled().map(|r| r.id).collect::<Vec<_>>(), vec![stuck]);
        assert_eq!(logged.get(old[4].id), None);
        let ledger = Ledger::new(&logged, &book, &[]);
        assert_eq!(
            ledger.spent_before(now()),
            Wei::from_eth_str("2").unwrap(),
            "counted once, now"
        );
        assert_eq!(ledger.signed_today(now()), 2);
        assert_eq!(ledger.next_nonce(31337, "0xabc", 0), 22);
        assert!(ledger.holds_nonce(31337, "0xabc", 3) && ledger.holds_nonce(31337, "0xabc", 0));

        let settled = logged.mark_broadcast(stuck).unwrap();
        book.forget(&settled);
        assert_eq!(logged.get(stuck), None, "settled past the windows: forgotten");
        assert_eq!(logged.unsettled().count(), 0);
        assert!(Ledger::new(&logged, &book, &[]).holds_nonce(31337, "0xabc", 3));
        assert_eq!(
            logged.compact(forgotten_at_or_before(now())),
            vec![],
            "too little past the windows"
        );
    }

    #[test]
    fn an_unsettled_transaction_that_fails_past_the_windows_releases_its_nonce() {
        let long_ago = now() - Duration::days(3);
        let mut old = broadcast_from(long_ago, 0, 20);
        old[3].status = TxStatus::Signed;
        let mut logged = history(&old);
        let mut book = nonces_of(&old);
        for record in logged.compact(forgotten_at_or_before(now())) {
            book.forget(&record);
        }
        let failed = logged.mark_failed(old[3].id, "nonce too low").unwrap();
        assert_eq!(
            (failed.status, failed.error.as_deref()),
            (TxStatus::Failed, Some("nonce too low"))
        );
        book.release(&failed);
        assert_eq!(logged.get(old[3].id), None);
        let ledger = Ledger::new(&logged, &book, &[]);
        assert!(!ledger.holds_nonce(31337, "0xabc", 3));
        assert_eq!(ledger.next_nonce(31337, "0xabc", 0), 3, "the gap is filled first");
    }

    #[test]
    fn forgotten_nonces_stay_held_but_a_gap_an_explicit_nonce_skipped_stays_free() {
        let mut records = broadcast_from(now() - Duration::days(3), 0, 5);
        records.push(record(8, TxStatus::Broadcast, "1", now() - Duration::days(3)));
        records.push(record(5, TxStatus::Failed, "1", now() - Duration::days(3)));
        let mut book = nonces_of(&records);
        for record in &records {
            book.forget(record);
        }
        let empty = TransactionHistory::default();
        let ledger = Ledger::new(&empty, &book, &[]);
        let held: Vec<u64> = (0..10).filter(|n| ledger.holds_nonce(31337, "0xABC", *n)).collect();
        assert_eq!(held, [0, 1, 2, 3, 4, 8]);
        assert_eq!(ledger.next_nonce(31337, "0xabc", 0), 5, "the released one first");
        assert_eq!(ledger.next_nonce(31337, "0xabc", 6), 9, "past the highest forgotten");
        let sender = book.of(31337, "0xabc").unwrap();
        assert_eq!(sender.forgotten, BTreeMap::from([(0, 4), (8, 8)]));
        assert!(sender.held.is_empty());

        let refilled = record(5, TxStatus::Broadcast, "1", now());
        book.record(&refilled);
        assert!(
            book.of(31337, "0xabc").unwrap().released.is_empty(),
            "a nonce held again is no gap"
        );
        book.forget(&refilled);
        assert_eq!(
            book.of(31337, "0xabc").unwrap().forgotten,
            BTreeMap::from([(0, 5), (8, 8)])
        );
    }

    proptest::proptest! {
        /// The indexed window sums (value, and each chain's fees) and the daily count are
        /// what going through the window's records one by one gives, whatever the times,
        /// amounts, chains and failures, and wherever `now` falls.
        #[test]
        fn spend_fees_and_counts_from_the_indexes_are_those_of_the_windows_records(
            steps in proptest::collection::vec(
                (0i64..4 * 3600, 0u32..3_000, 0u64..2, proptest::bool::weighted(0.2)),
                0..120,
            ),
            now_after_last in 0i64..30 * 3600,
        ) {
            let mut at = now() - Duration::hours(48);
            let mut logged = TransactionHistory::default();
            for (nonce, (seconds_after, milli_eth, chain_id, _)) in (0u64..).zip(&steps) {
                at += Duration::seconds(*seconds_after);
                let value = format!("{}.{:03}", milli_eth / 1000, milli_eth % 1000);
                let mut signed = record(nonce, TxStatus::Signed, &value, at);
                signed.chain_id = *chain_id;
                signed.max_fee = Wei::from_wei(u128::from(*milli_eth) * 21_000);
                logged.push(signed);
            }
            let failed: Vec<Uuid> = logged
                .records()
                .iter()
                .zip(&steps)
                .filter(|(_, (_, _, _, fails))| *fails)
                .map(|(record, _)| record.id)
                .collect();
            for id in failed {
                logged.mark_failed(id, "refused");
            }
            let now = at + Duration::seconds(now_after_last);
            let signed = || logged.records().iter();
            let in_window = || signed().filter(|r| r.signed_at > now - SPEND_WINDOW);
            let nonces = nonces_of(logged.records());
            let ledger = Ledger::new(&logged, &nonces, &[]);
            proptest::prop_assert_eq!(ledger.spent_before(now), Wei::checked_sum(in_window().map(|r| r.value)).unwrap());
            for chain_id in 0..2 {
                let scanned = Wei::checked_sum(in_window().filter(|r| r.chain_id == chain_id).map(|r| r.max_fee));
                proptest::prop_assert_eq!(ledger.fees_before(now, chain_id), scanned.unwrap());
            }
            let midnight = now.date_naive().and_time(NaiveTime::MIN).and_utc();
            proptest::prop_assert_eq!(ledger.signed_today(now), signed().filter(|r| r.signed_at >= midnight).count() as u64);
        }

        /// The next nonce is free, not below the node's pending count, and opens no gap:
        /// it is at most one past the highest held or the node's count, whatever nonces
        /// were used, explicitly or not, and whichever failed.
        #[test]
        fn the_next_nonce_is_free_and_opens_no_gap(
            used in proptest::collection::vec((0u64..40, proptest::bool::weighted(0.3)), 0..40),
            chain_pending in 0u64..45,
        ) {
            let mut logged = TransactionHistory::default();
            for (nonce, fails) in &used {
                let status = if *fails { TxStatus::Failed } else { TxStatus::Broadcast };
                logged.push(record(*nonce, status, "1", now()));
            }
            let book = nonces_of(logged.records());
            let ledger = Ledger::new(&logged, &book, &[]);
            let next = ledger.next_nonce(31337, "0xabc", chain_pending);
            let after_held = used.iter().filter(|(_, fails)| !fails).map(|(nonce, _)| nonce + 1).max().unwrap_or(0);
            proptest::prop_assert!(!ledger.holds_nonce(31337, "0xabc", next));
            proptest::prop_assert!(next >= chain_pending);
            proptest::prop_assert!(next <= after_held.max(chain_pending), "{next} opens a gap");
        }
    }
}
