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

impl Submission {
    pub fn ask(&self) -> Ask<'_> {
        Ask {
            chain: &self.chain,
            chain_id: self.chain_id,
            to: self.to,
            value: self.value,
            idempotency_key: self.idempotency_key.as_deref(),
        }
    }
}

/// What the guardrails and the Idempotency-Key judge of a submission: known from the
/// request alone, before a key is read or the node asked.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub chain: &'a str,
    pub chain_id: u64,
    pub to: Address,
    pub value: Wei,
    pub idempotency_key: Option<&'a str>,
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
    #[error("the agent is deactivated or its Intents API is disabled")]
    Disabled,
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

    /// The transaction an earlier request with the ask's Idempotency-Key made, if any,
    /// else whether the agent's guardrails allow the ask. Asked by the turn, and before
    /// the turn, so a repeat or a refusal costs no key read, simulation or call to the
    /// node: the turn's answer is the one that holds.
    pub fn screen(&self, ask: &Ask<'_>, now: DateTime<Utc>) -> Result<Option<Uuid>, Refusal> {
        // Checked again here: the agent may have been switched off since its request
        // was authenticated.
        if !self.agent.can_authenticate(now) || !self.agent.settings.intents_api_enabled {
            return Err(Refusal::Disabled);
        }
        let ledger = Ledger::new(self.logged, &self.this_turn);
        if let Some(earlier) = ask
            .idempotency_key
            .and_then(|idempotency_key| ledger.by_idempotency_key(idempotency_key, now))
        {
            return match earlier.status {
                TxStatus::Signed => Err(Refusal::InFlight),
                TxStatus::Broadcast | TxStatus::Failed | TxStatus::SignOnly => Ok(Some(earlier.id)),
            };
        }
        guardrails_of(self.agent).check(
            ask.chain,
            ask.chain_id,
            &lower_hex(ask.to),
            ask.value,
            ledger.spent_before(now),
        )?;
        Ok(None)
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
        if let Some(earlier) = self.screen(&submission.ask(), now)? {
            return Ok(Decided::Repeat(earlier));
        }
        let ledger = Ledger::new(self.logged, &self.this_turn);
        let to = lower_hex(submission.to);
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
pub fn rejected(agent_id: AgentId, ask: &Ask<'_>, violation: &Violation) -> TransactionRejected {
    TransactionRejected {
        agent_id,
        chain: ask.chain.to_owned(),
        to: lower_hex(ask.to),
        value_wei: ask.value,
        rule: violation.rule.to_owned(),
        detail: violation.detail.clone(),
    }
}

#[cfg(test)]
mod tests {
    use domain::agent::{AgentKey, AgentSettings};
    use domain::transaction::IDEMPOTENCY_WINDOW;
    use domain::{OrgId, UserId};

    use super::*;

    fn agent(settings: impl FnOnce(&mut AgentSettings)) -> Agent {
        let mut agent_settings = AgentSettings::named("trader".into(), None);
        agent_settings.intents_api_enabled = true;
        settings(&mut agent_settings);
        Agent {
            id: AgentId::new(),
            org_id: OrgId::new(),
            created_by: UserId::new(),
            settings: agent_settings,
            key: AgentKey {
                key_id: Uuid::now_v7(),
                key_hash: String::new(),
                key_prefix: String::new(),
            },
            is_active: true,
            created_at: now(),
            last_active_at: None,
            version: 1,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().to_utc()
    }

    fn submission(value_eth: &str, idempotency_key: Option<&str>) -> Submission {
        Submission {
            tx_id: Uuid::now_v7(),
            chain: "anvil".into(),
            chain_id: 31337,
            to: Address::repeat_byte(0x11),
            value: Wei::from_eth_str(value_eth).unwrap(),
            data: Bytes::new(),
            gas_limit: 21_000,
            fee: Fee::Legacy { gas_price: 1 },
            nonce: None,
            signing_key_path: "keys/anvil-signer".into(),
            idempotency_key: idempotency_key.map(str::to_owned),
            sign_only: false,
        }
    }

    fn decide(agent: &Agent, logged: &TransactionHistory, submission: &Submission) -> Result<Decided, Refusal> {
        InTurn::new(agent, logged).decide(submission, Address::repeat_byte(0x22), 0, now())
    }

    #[test]
    fn an_agent_switched_off_after_its_request_was_authenticated_reserves_nothing() {
        let logged = TransactionHistory::default();
        let deactivated = Agent {
            is_active: false,
            ..agent(|_| {})
        };
        let intents_off = agent(|settings| settings.intents_api_enabled = false);
        let expired = agent(|settings| settings.expires_at = Some(now()));
        for switched_off in [deactivated, intents_off, expired] {
            assert_eq!(
                decide(&switched_off, &logged, &submission("0.1", None)).map(|_| ()),
                Err(Refusal::Disabled)
            );
        }
        assert!(matches!(
            decide(&agent(|_| {}), &logged, &submission("0.1", None)),
            Ok(Decided::Reserved(_))
        ));
    }

    #[test]
    fn a_screen_answers_a_repeat_and_refuses_an_in_flight_key_or_a_guardrail() {
        let capped = agent(|settings| settings.tx_max_value = Some(Wei::from_eth_str("0.5").unwrap()));
        let key = PrivateKey::generate().unwrap();
        let first = submission("0.1", Some("k1"));
        let Ok(Decided::Reserved(reservation)) = decide(&capped, &TransactionHistory::default(), &first) else {
            panic!("the first is reserved");
        };
        let (signed, _) = reservation.sign(&key).unwrap();
        let mut logged = TransactionHistory::default();
        logged.push(TransactionRecord::signed(&signed, now()));
        let turn = InTurn::new(&capped, &logged);

        let repeat = submission("0.1", Some("k1"));
        assert_eq!(
            turn.screen(&repeat.ask(), now()),
            Err(Refusal::InFlight),
            "not yet broadcast"
        );
        logged.mark_broadcast(first.tx_id);
        let turn = InTurn::new(&capped, &logged);
        assert_eq!(turn.screen(&repeat.ask(), now()), Ok(Some(first.tx_id)));
        assert_eq!(
            turn.screen(&repeat.ask(), now() + IDEMPOTENCY_WINDOW),
            Ok(None),
            "a key older than its window is forgotten"
        );
        let over = submission("0.6", None);
        assert!(matches!(
            turn.screen(&over.ask(), now()),
            Err(Refusal::Guardrail(Violation {
                rule: "tx_max_value_eth",
                ..
            }))
        ));
        assert_eq!(turn.screen(&submission("0.2", None).ask(), now()), Ok(None));
    }
}
