//! An agent's transactions as its stream records them: what was signed, with which nonce
//! and value, and what became of it. Spend and nonces are read from here, under the agent
//! stream's expected version, so concurrent submissions cannot overspend or reuse a nonce.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::change::stream;
use crate::events::TransactionSigned;
use crate::ids::AgentId;
use crate::stream::StreamId;
use crate::wei::Wei;

/// A signed transaction's outcome (broadcast or failed) is recorded once, in a stream of
/// its own: outcomes never contend with the reservations on the agent's stream.
pub fn transaction_stream(tx_id: Uuid) -> StreamId {
    stream("transaction", tx_id)
}

/// Refusals and simulations: audit records that reserve nothing, kept off the agent's
/// stream so they never make a reservation retry.
pub fn intents_activity_stream(agent: AgentId) -> StreamId {
    stream("intents_activity", agent)
}

/// The daily limit looks back this far.
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
    /// The node refused it: its nonce and value are released.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    pub id: Uuid,
    pub agent_id: AgentId,
    pub chain: String,
    pub chain_id: u64,
    pub from: String,
    pub to: String,
    pub value: Wei,
    pub nonce: u64,
    pub tx_hash: String,
    pub signed_tx: String,
    pub status: TxStatus,
    pub error: Option<String>,
    pub signed_at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
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
        }
    }

    fn holds_reservation(&self) -> bool {
        self.status != TxStatus::Failed
    }
}

/// How long an Idempotency-Key is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::hours(24);

/// An agent's transactions as a decision sees them: those in the log, then those decided
/// earlier in the same turn and not yet appended. Borrowed, never copied: an agent's
/// history only grows.
#[derive(Debug, Clone, Copy)]
pub struct Ledger<'a> {
    logged: &'a [TransactionRecord],
    this_turn: &'a [TransactionRecord],
}

impl<'a> Ledger<'a> {
    pub fn new(logged: &'a [TransactionRecord], this_turn: &'a [TransactionRecord]) -> Self {
        Self { logged, this_turn }
    }

    fn records(self) -> impl DoubleEndedIterator<Item = &'a TransactionRecord> {
        self.logged.iter().chain(self.this_turn)
    }

    fn of_sender(self, chain_id: u64, from: &str) -> impl Iterator<Item = &'a TransactionRecord> {
        self.records()
            .filter(move |r| r.chain_id == chain_id && r.from.eq_ignore_ascii_case(from))
    }

    /// The transaction an earlier request with `key` created, if it is recent enough to count.
    pub fn by_idempotency_key(self, key: &str, now: DateTime<Utc>) -> Option<&'a TransactionRecord> {
        self.records()
            .rev()
            .find(|r| r.idempotency_key.as_deref() == Some(key) && r.signed_at > now - IDEMPOTENCY_WINDOW)
    }

    /// What the agent spent in the window before `now`: signed and not failed.
    pub fn spent_before(self, now: DateTime<Utc>) -> Wei {
        let since = now - SPEND_WINDOW;
        Wei::checked_sum(
            self.records()
                .filter(|r| r.holds_reservation() && r.signed_at > since)
                .map(|r| r.value),
        )
        .unwrap_or(Wei::CEILING)
    }

    /// Whether a live transaction from `from` on `chain_id` holds `nonce`.
    pub fn holds_nonce(self, chain_id: u64, from: &str, nonce: u64) -> bool {
        self.of_sender(chain_id, from)
            .any(|r| r.nonce == nonce && r.holds_reservation())
    }

    /// The nonce for the next transaction from `from` on `chain_id`: a nonce released by a
    /// failed broadcast first (so no gap strands the transactions after it), else one past
    /// the highest held, and never below what the node reports as pending.
    pub fn next_nonce(self, chain_id: u64, from: &str, chain_pending: u64) -> u64 {
        let after_held = self
            .of_sender(chain_id, from)
            .filter(|r| r.holds_reservation())
            .map(|r| r.nonce.saturating_add(1))
            .max()
            .unwrap_or(0);
        // Failures are rare: the candidates are few, and only they are checked against
        // the nonces held since.
        let mut released: Vec<u64> = self
            .of_sender(chain_id, from)
            .filter(|r| !r.holds_reservation() && r.nonce >= chain_pending)
            .map(|r| r.nonce)
            .collect();
        released.sort_unstable();
        released.dedup();
        released
            .into_iter()
            .find(|nonce| !self.holds_nonce(chain_id, from, *nonce))
            .unwrap_or_else(|| after_held.max(chain_pending))
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
            nonce,
            tx_hash: String::new(),
            signed_tx: String::new(),
            status,
            error: None,
            signed_at: at,
            idempotency_key: None,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().to_utc()
    }

    #[test]
    fn spend_counts_the_last_24_hours_and_not_failures() {
        let records = [
            record(0, TxStatus::Broadcast, "0.4", now() - Duration::hours(25)),
            record(1, TxStatus::Broadcast, "0.3", now() - Duration::hours(23)),
            record(2, TxStatus::Failed, "5", now() - Duration::hours(1)),
            record(3, TxStatus::Signed, "0.2", now()),
        ];
        assert_eq!(
            Ledger::new(&records, &[]).spent_before(now()),
            Wei::from_eth_str("0.5").unwrap()
        );
    }

    #[test]
    fn nonces_continue_reuse_released_ones_and_follow_the_chain() {
        assert_eq!(Ledger::new(&[], &[]).next_nonce(31337, "0xabc", 4), 4);
        let records = [
            record(4, TxStatus::Broadcast, "1", now()),
            record(5, TxStatus::Failed, "1", now()),
            record(6, TxStatus::Broadcast, "1", now()),
        ];
        assert_eq!(
            Ledger::new(&records[..1], &records[1..]).next_nonce(31337, "0xABC", 4),
            5,
            "the gap left by a failure is filled first"
        );
        assert_eq!(
            Ledger::new(&records[..2], &[]).next_nonce(31337, "0xabc", 5),
            5,
            "a failed last nonce is reused"
        );
        assert_eq!(
            Ledger::new(&records[..1], &records[1..]).next_nonce(31337, "0xabc", 9),
            9,
            "the node knows of later ones"
        );
        assert_eq!(
            Ledger::new(&records[..1], &records[1..]).next_nonce(1, "0xabc", 0),
            0,
            "other chains count apart"
        );
    }
}
