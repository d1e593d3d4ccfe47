//! Deciding submissions: the guardrails on the agent's spend so far, the nonce, and the
//! signature, turned into events for the agent's stream at the version they were read at.
//! Submissions that arrive together are decided in turn ([`InTurn`]), each seeing what the
//! ones before it reserved, so they go to the log in one append. Pure: the chain's pending
//! nonce and the key come in as arguments.

use alloy_primitives::{Address, Bytes, U256};
use chrono::{DateTime, Utc};
use domain::agent::Agent;
use domain::events::{TransactionRejected, TransactionSigned};
use domain::transaction::{TransactionRecord, TxStatus, by_idempotency_key, next_nonce, spent_before};
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
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// Signed now: append the event to the agent's stream, then broadcast.
    Signed(Box<TransactionSigned>, SignedTx),
    /// An earlier request with the same Idempotency-Key made this transaction.
    Repeat(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("a request with this Idempotency-Key is still in flight; retry later")]
    InFlight,
    #[error(transparent)]
    Guardrail(#[from] Violation),
    #[error("nonce {0} is already held by another transaction of this agent")]
    NonceTaken(u64),
    #[error(transparent)]
    Sign(#[from] SignError),
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

/// One agent's submissions, decided one after another on the agent's transactions as
/// read plus those signed earlier in the same turn.
pub struct InTurn<'a> {
    agent: &'a Agent,
    records: Vec<TransactionRecord>,
}

impl<'a> InTurn<'a> {
    pub fn new(agent: &'a Agent, records: Vec<TransactionRecord>) -> Self {
        Self { agent, records }
    }

    /// Decides `submission` on what the agent holds so far, and holds what it signs.
    pub fn decide(
        &mut self,
        submission: &Submission,
        chain_pending_nonce: u64,
        key: &PrivateKey,
        now: DateTime<Utc>,
    ) -> Result<Decided, Refusal> {
        let decided = decide(self.agent, &self.records, submission, chain_pending_nonce, key, now)?;
        if let Decided::Signed(event, _) = &decided {
            self.records.push(TransactionRecord::signed(event, now));
        }
        Ok(decided)
    }
}

/// Signs `submission` for `agent` if its guardrails allow it, reserving value and nonce;
/// or finds the transaction an earlier request with its Idempotency-Key made.
fn decide(
    agent: &Agent,
    records: &[TransactionRecord],
    submission: &Submission,
    chain_pending_nonce: u64,
    key: &PrivateKey,
    now: DateTime<Utc>,
) -> Result<Decided, Refusal> {
    if let Some(earlier) = submission
        .idempotency_key
        .as_deref()
        .and_then(|idempotency_key| by_idempotency_key(records, idempotency_key, now))
    {
        return match earlier.status {
            TxStatus::Signed => Err(Refusal::InFlight),
            TxStatus::Broadcast | TxStatus::Failed | TxStatus::SignOnly => Ok(Decided::Repeat(earlier.id)),
        };
    }
    let to = lower_hex(submission.to);
    guardrails_of(agent).check(
        &submission.chain,
        submission.chain_id,
        &to,
        submission.value,
        spent_before(records, now),
    )?;
    let from = lower_hex(key.address());
    let nonce = match submission.nonce {
        Some(chosen) => {
            let held = records.iter().any(|r| {
                r.chain_id == submission.chain_id && r.from == from && r.nonce == chosen && r.status != TxStatus::Failed
            });
            if held {
                return Err(Refusal::NonceTaken(chosen));
            }
            chosen
        }
        None => next_nonce(records, submission.chain_id, &from, chain_pending_nonce),
    };
    let signed = UnsignedTx {
        chain_id: submission.chain_id,
        nonce,
        to: submission.to,
        value: U256::from(submission.value.as_u128()),
        data: submission.data.clone(),
        gas_limit: submission.gas_limit,
        fee: submission.fee,
    }
    .sign(key)?;
    let event = TransactionSigned {
        tx_id: submission.tx_id,
        agent_id: agent.id,
        chain: submission.chain.clone(),
        chain_id: submission.chain_id,
        from,
        to,
        value_wei: submission.value,
        nonce,
        tx_hash: signed.hash.to_string(),
        signed_tx: format!("0x{}", hex_of(&signed.raw)),
        signing_key_path: submission.signing_key_path.clone(),
        idempotency_key: submission.idempotency_key.clone(),
        sign_only: submission.sign_only,
    };
    Ok(Decided::Signed(Box::new(event), signed))
}

/// A guardrail's refusal, for the audit trail (the agent's intents activity stream).
pub fn rejected(agent: &Agent, submission: &Submission, violation: &Violation) -> TransactionRejected {
    TransactionRejected {
        agent_id: agent.id,
        chain: submission.chain.clone(),
        to: lower_hex(submission.to),
        value_wei: submission.value,
        rule: violation.rule.to_owned(),
        detail: violation.detail.clone(),
    }
}
