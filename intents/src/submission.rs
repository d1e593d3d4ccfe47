//! Deciding submissions: the guardrails on the agent's spend so far and the nonce make a
//! [`Reservation`], which signed becomes the event for the agent's stream at the version
//! the decision read. Submissions that arrive together are decided in turn ([`InTurn`]),
//! each seeing what the ones before it reserved, so they go to the log in one append.
//! Deciding borrows the agent's history and is cheap; signing, the costly part, needs none
//! of it. Pure: the chain's pending nonce and the key come in as arguments.

use alloy_primitives::{Address, Bytes, U256};
use chrono::{DateTime, Utc};
use domain::AgentId;
use domain::agent::Agent;
use domain::events::{TransactionRejected, TransactionSigned};
use domain::transaction::{Ledger, TransactionHistory, TransactionRecord, TxStatus};
use domain::wei::Wei;
use uuid::Uuid;

use crate::guardrails::{Guardrails, Violation};
use crate::key::PrivateKey;
use crate::rpc::hex_of;
use crate::tx::{Fee, SignError, SignedTx, UnsignedTx};

#[derive(Debug, Clone)]
pub struct Submission {
    pub tx_id: Uuid,
    pub chain: String,
    pub chain_id: u64,
    pub to: Address,
    pub value: Wei,
    pub data: Bytes,
    pub gas_limit: u64,
    pub fee: Fee,
    /// A nonce the agent chose; otherwise the proxy reserves one.
    pub nonce: Option<u64>,
    pub signing_key_path: String,
    pub idempotency_key: Option<String>,
    /// Sign, but leave the broadcast to the agent.
    pub sign_only: bool,
}

/// What a submission comes to.
#[derive(Debug, Clone)]
pub enum Decided {
    /// Value and nonce reserved: sign it, append it, then broadcast.
    Reserved(Box<Reservation>),
    /// An earlier request with the same Idempotency-Key made this transaction.
    Repeat(Uuid),
}

/// A submission the guardrails allow, with the nonce it holds, not yet signed.
#[derive(Debug, Clone)]
pub struct Reservation {
    submission: Submission,
    agent_id: AgentId,
    from: String,
    to: String,
    nonce: u64,
}

impl Reservation {
    /// The signed transaction and the event that records it on the agent's stream.
    pub fn sign(self, key: &PrivateKey) -> Result<(TransactionSigned, SignedTx), SignError> {
        let Reservation {
            submission,
            agent_id,
            from,
            to,
            nonce,
        } = self;
        let signed = UnsignedTx {
            chain_id: submission.chain_id,
            nonce,
            to: submission.to,
            value: U256::from(submission.value.as_u128()),
            data: submission.data,
            gas_limit: submission.gas_limit,
            fee: submission.fee,
        }
        .sign(key)?;
        let event = TransactionSigned {
            tx_id: submission.tx_id,
            agent_id,
            chain: submission.chain,
            chain_id: submission.chain_id,
            from,
            to,
            value_wei: submission.value,
            nonce,
            tx_hash: signed.hash.to_string(),
            signed_tx: format!("0x{}", hex_of(&signed.raw)),
            signing_key_path: submission.signing_key_path,
            idempotency_key: submission.idempotency_key,
            sign_only: submission.sign_only,
        };
        Ok((event, signed))
    }

    /// What the turn holds for it until the log does: enough for the decisions after it.
    fn held(&self, now: DateTime<Utc>) -> TransactionRecord {
        TransactionRecord {
            id: self.submission.tx_id,
            agent_id: self.agent_id,
            chain: self.submission.chain.clone(),
            chain_id: self.submission.chain_id,
            from: self.from.clone(),
            to: self.to.clone(),
            value: self.submission.value,
            nonce: self.nonce,
            tx_hash: String::new(),
            signed_tx: String::new(),
            status: if self.submission.sign_only {
                TxStatus::SignOnly
            } else {
                TxStatus::Signed
            },
            error: None,
            signed_at: now,
            idempotency_key: self.submission.idempotency_key.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("a request with this Idempotency-Key is still in flight; retry later")]
    InFlight,
    #[error(transparent)]
    Guardrail(#[from] Violation),
    #[error("nonce {0} is already held by another transaction of this agent")]
    NonceTaken(u64),
}

pub fn guardrails_of(agent: &Agent) -> Guardrails {
    let settings = &agent.settings;
    Guardrails {
        allowed_chains: settings.tx_allowed_chains.clone(),
        to_allowlist: settings.tx_to_allowlist.clone(),
        max_value: settings.tx_max_value,
        daily_limit: settings.tx_daily_limit,
    }
}

fn lower_hex(address: Address) -> String {
    format!("0x{}", hex_of(address.as_slice()))
}

/// One agent's submissions, decided one after another on the agent's transactions in the
/// log plus those reserved earlier in the same turn.
pub struct InTurn<'a> {
    agent: &'a Agent,
    logged: &'a TransactionHistory,
    this_turn: Vec<TransactionRecord>,
}

impl<'a> InTurn<'a> {
    pub fn new(agent: &'a Agent, logged: &'a TransactionHistory) -> Self {
        Self {
            agent,
            logged,
            this_turn: Vec::new(),
        }
    }

    /// Reserves value and nonce for `submission`, sent from `from`, if the agent's
    /// guardrails allow it; or finds the transaction an earlier request with its
    /// Idempotency-Key made.
    pub fn decide(
        &mut self,
        submission: &Submission,
        from: Address,
        chain_pending_nonce: u64,
        now: DateTime<Utc>,
    ) -> Result<Decided, Refusal> {
        let ledger = Ledger::new(self.logged, &self.this_turn);
        if let Some(earlier) = submission
            .idempotency_key
            .as_deref()
            .and_then(|idempotency_key| ledger.by_idempotency_key(idempotency_key, now))
        {
            return match earlier.status {
                TxStatus::Signed => Err(Refusal::InFlight),
                TxStatus::Broadcast | TxStatus::Failed | TxStatus::SignOnly => Ok(Decided::Repeat(earlier.id)),
            };
        }
        let to = lower_hex(submission.to);
        guardrails_of(self.agent).check(
            &submission.chain,
            submission.chain_id,
            &to,
            submission.value,
            ledger.spent_before(now),
        )?;
        let from = lower_hex(from);
        let nonce = match submission.nonce {
            Some(chosen) if ledger.holds_nonce(submission.chain_id, &from, chosen) => {
                return Err(Refusal::NonceTaken(chosen));
            }
            Some(chosen) => chosen,
            None => ledger.next_nonce(submission.chain_id, &from, chain_pending_nonce),
        };
        let reservation = Reservation {
            submission: submission.clone(),
            agent_id: self.agent.id,
            from,
            to,
            nonce,
        };
        self.this_turn.push(reservation.held(now));
        Ok(Decided::Reserved(Box::new(reservation)))
    }
}

/// A guardrail's refusal, for the audit trail (the agent's intents activity stream).
pub fn rejected(agent_id: AgentId, submission: &Submission, violation: &Violation) -> TransactionRejected {
    TransactionRejected {
        agent_id,
        chain: submission.chain.clone(),
        to: lower_hex(submission.to),
        value_wei: submission.value,
        rule: violation.rule.to_owned(),
        detail: violation.detail.clone(),
    }
}
