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
use domain::transaction::{Ledger, NonceBook, RequestDigest, TransactionHistory, TransactionRecord, TxStatus};
use domain::wei::Wei;
use serde_json::json;
use uuid::Uuid;

use crate::guardrails::{Guardrails, Outgoing, SoFar, Violation};
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
    /// What its request asked ([`Request::digest`]).
    pub request_digest: RequestDigest,
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
            data: &self.data,
            idempotency_key: self.idempotency_key.as_deref(),
            request_digest: &self.request_digest,
        }
    }

    /// The digest the log keeps: only beside an Idempotency-Key, the one thing it is
    /// compared for (a transaction without a key is never looked up by its request).
    fn kept_digest(&self) -> Option<RequestDigest> {
        self.idempotency_key.as_ref().map(|_| self.request_digest.clone())
    }

    /// The most it can pay the network: its gas limit times the highest price per gas its
    /// fee allows (capped at [`Wei::CEILING`], past every budget).
    pub fn max_fee(&self) -> Wei {
        u128::from(self.gas_limit)
            .checked_mul(self.fee.max_per_gas())
            .map_or(Wei::CEILING, |wei| Wei::from_wei(wei).min(Wei::CEILING))
    }
}

/// A request to sign (and, unless sign-only, send) a transaction, as the client wrote it:
/// what an Idempotency-Key answers for. Two requests under one key are the same request
/// when these are; how the client prefers to be answered (`Prefer: respond-async`) is no
/// part of it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// POST .../transactions/sign rather than POST .../transactions.
    pub sign_only: bool,
    /// The chain as resolved: its name and its id are one chain.
    pub chain: &'a str,
    pub chain_id: u64,
    pub to: Address,
    pub value: Wei,
    pub data: &'a [u8],
    /// As given: none (the agent's provisioned key, else the chain's default path) is not
    /// the path it comes to.
    pub signing_key_path: Option<&'a str>,
    pub nonce: Option<u64>,
    pub gas_limit: Option<u64>,
    /// Wei, decimal strings as given.
    pub gas_price: Option<&'a str>,
    pub max_fee_per_gas: Option<&'a str>,
    pub max_priority_fee_per_gas: Option<&'a str>,
    pub simulate_first: bool,
}

impl Request<'_> {
    /// Names the encoding: a change to what the digest covers changes it.
    const ENCODING: &'static str = "keyward/transaction-request/1";

    /// SHA-256 of the fields as a JSON array in a fixed order: strings quoted and escaped,
    /// absent fields `null`, so no two requests share an encoding. Addresses and calldata
    /// are lowercase hex, amounts decimal wei; a fee that is a number of wei counts as
    /// that number (`"01"` is `"1"`), any other is refused later and counts as given.
    pub fn digest(&self) -> RequestDigest {
        let wei = |text: Option<&str>| {
            text.map(|text| {
                text.parse::<u128>()
                    .map_or_else(|_| text.to_owned(), |wei| wei.to_string())
            })
        };
        let encoded = json!([
            Self::ENCODING,
            if self.sign_only { "sign" } else { "send" },
            self.chain,
            self.chain_id,
            lower_hex(self.to),
            self.value.as_u128().to_string(),
            format!("0x{}", hex_of(self.data)),
            self.signing_key_path,
            self.nonce,
            self.gas_limit,
            wei(self.gas_price),
            wei(self.max_fee_per_gas),
            wei(self.max_priority_fee_per_gas),
            self.simulate_first,
        ]);
        RequestDigest::of(encoded.to_string().as_bytes())
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
    pub data: &'a [u8],
    pub idempotency_key: Option<&'a str>,
    pub request_digest: &'a RequestDigest,
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
        let request_digest = submission.kept_digest();
        let max_fee = submission.max_fee();
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
            max_fee_wei: max_fee,
            nonce,
            tx_hash: signed.hash.to_string(),
            signed_tx: format!("0x{}", hex_of(&signed.raw)),
            signing_key_path: submission.signing_key_path,
            idempotency_key: submission.idempotency_key,
            request_digest,
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
            max_fee: self.submission.max_fee(),
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
            request_digest: self.submission.kept_digest(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("a request with this Idempotency-Key is still in flight; retry later")]
    InFlight,
    #[error(
        "this Idempotency-Key was used for a different request in the last 24 hours; a new request needs a new key"
    )]
    IdempotencyKeyReused,
    #[error(transparent)]
    Guardrail(#[from] Violation),
    #[error("nonce {0} is already held by another transaction of this agent")]
    NonceTaken(u64),
    #[error("the agent is deactivated or its Intents API is disabled")]
    Disabled,
}

fn guardrails_of(agent: &Agent) -> Guardrails {
    let settings = &agent.settings;
    Guardrails {
        allowed_chains: settings.tx_allowed_chains.clone(),
        to_allowlist: settings.tx_to_allowlist.clone(),
        token_allowlist: settings.tx_token_allowlist.clone(),
        max_value: settings.tx_max_value,
        daily_limit: settings.tx_daily_limit,
        overhead_budget: settings.tx_overhead_budget.clone(),
        max_per_day: settings.tx_max_per_day,
    }
}

fn lower_hex(address: Address) -> String {
    format!("0x{}", hex_of(address.as_slice()))
}

/// One agent's submissions, decided one after another on the agent's transactions in the
/// log plus those reserved earlier in the same turn, their nonces beside every nonce any
/// agent's transactions hold (agents may sign with one key).
pub struct InTurn<'a> {
    agent: &'a Agent,
    /// The agent's, taken once for the whole turn.
    guardrails: Guardrails,
    logged: &'a TransactionHistory,
    nonces: &'a NonceBook,
    this_turn: Vec<TransactionRecord>,
}

impl<'a> InTurn<'a> {
    pub fn new(agent: &'a Agent, logged: &'a TransactionHistory, nonces: &'a NonceBook) -> Self {
        Self {
            agent,
            guardrails: guardrails_of(agent),
            logged,
            nonces,
            this_turn: Vec::new(),
        }
    }

    fn ledger(&self) -> Ledger<'_> {
        Ledger::new(self.logged, self.nonces, &self.this_turn)
    }

    /// The transaction an earlier request with the ask's Idempotency-Key made, if any,
    /// else whether the agent's guardrails allow the ask. Asked by the turn, and before
    /// the turn, so a repeat or a refusal costs no key read, simulation or call to the
    /// node: the turn's answer is the one that holds.
    ///
    /// The key answers only for the request it was first used for: another request under
    /// it is refused, also while the first is in flight (no retry would succeed, so "retry
    /// later" would mislead). An earlier transaction logged before requests were digested
    /// is taken to match.
    pub fn screen(&self, ask: &Ask<'_>, now: DateTime<Utc>) -> Result<Option<Uuid>, Refusal> {
        // Checked again here: the agent may have been switched off since its request
        // was authenticated.
        if !self.agent.can_authenticate(now) || !self.agent.settings.intents_api_enabled {
            return Err(Refusal::Disabled);
        }
        let ledger = self.ledger();
        if let Some(earlier) = ask
            .idempotency_key
            .and_then(|idempotency_key| ledger.by_idempotency_key(idempotency_key, now))
        {
            if earlier
                .request_digest
                .as_ref()
                .is_some_and(|digest| digest != ask.request_digest)
            {
                return Err(Refusal::IdempotencyKeyReused);
            }
            return match earlier.status {
                TxStatus::Signed => Err(Refusal::InFlight),
                TxStatus::Broadcast | TxStatus::Failed | TxStatus::SignOnly => Ok(Some(earlier.id)),
            };
        }
        let so_far = SoFar {
            spent_last_24h: ledger.spent_before(now),
            signed_today: ledger.signed_today(now),
        };
        let outgoing = Outgoing {
            chain_name: ask.chain,
            chain_id: ask.chain_id,
            to: &lower_hex(ask.to),
            value: ask.value,
            data: ask.data,
        };
        self.guardrails.check(outgoing, so_far)?;
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
        let ledger = self.ledger();
        // Only here: the fee is known once the gas is estimated and priced, after screening.
        self.guardrails.check_fees(
            &submission.chain,
            submission.chain_id,
            submission.max_fee(),
            ledger.fees_before(now, submission.chain_id),
        )?;
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
        varied(value_eth, idempotency_key, |_| {})
    }

    /// A submission changed by `vary`, with the digest of the request it then makes.
    fn varied(value_eth: &str, idempotency_key: Option<&str>, vary: impl FnOnce(&mut Submission)) -> Submission {
        let mut submission = Submission {
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
            request_digest: RequestDigest::of(b""),
            sign_only: false,
        };
        vary(&mut submission);
        submission.request_digest = request(&submission).digest();
        submission
    }

    /// The request a submission's fields make, the rest left out.
    fn request(submission: &Submission) -> Request<'_> {
        Request {
            sign_only: submission.sign_only,
            chain: &submission.chain,
            chain_id: submission.chain_id,
            to: submission.to,
            value: submission.value,
            data: &submission.data,
            signing_key_path: None,
            nonce: submission.nonce,
            gas_limit: None,
            gas_price: None,
            max_fee_per_gas: None,
            max_priority_fee_per_gas: None,
            simulate_first: false,
        }
    }

    /// `first`, signed and in the log, still in flight.
    fn logged_in_flight(agent: &Agent, first: &Submission) -> TransactionHistory {
        let Ok(Decided::Reserved(reservation)) = decide(agent, &TransactionHistory::default(), first) else {
            panic!("the first is reserved");
        };
        let (signed, _) = reservation.sign(&PrivateKey::generate().unwrap()).unwrap();
        let mut logged = TransactionHistory::default();
        logged.push(TransactionRecord::signed(&signed, now()));
        logged
    }

    /// The nonces the logged transactions hold, as the log's every-agent book has them.
    fn every_agents(logged: &TransactionHistory) -> NonceBook {
        logged.records().iter().collect()
    }

    fn decide(agent: &Agent, logged: &TransactionHistory, submission: &Submission) -> Result<Decided, Refusal> {
        InTurn::new(agent, logged, &every_agents(logged)).decide(submission, Address::repeat_byte(0x22), 0, now())
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
        let book = every_agents(&logged);
        let turn = InTurn::new(&capped, &logged, &book);

        let repeat = submission("0.1", Some("k1"));
        assert_eq!(
            turn.screen(&repeat.ask(), now()),
            Err(Refusal::InFlight),
            "not yet broadcast"
        );
        logged.mark_broadcast(first.tx_id);
        let book = every_agents(&logged);
        let turn = InTurn::new(&capped, &logged, &book);
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

    #[test]
    fn a_turn_holds_each_decisions_fee_ceiling_and_count_against_the_next() {
        // 21,000 gas at 10 gwei: a fee ceiling of 0.00021 each; the budget takes four.
        let budgeted = agent(|settings| {
            settings.tx_overhead_budget = [("anvil".to_owned(), Wei::from_eth_str("0.001").unwrap())].into();
            settings.tx_max_per_day = Some(6);
        });
        let priced = |gas_price: u128| {
            varied("0.1", None, |submission| {
                submission.fee = Fee::Eip1559 {
                    max_fee_per_gas: gas_price,
                    max_priority_fee_per_gas: 1,
                }
            })
        };
        let first = priced(10_000_000_000);
        assert_eq!(first.max_fee(), Wei::from_eth_str("0.00021").unwrap());
        let logged = logged_in_flight(&budgeted, &first);
        assert_eq!(
            logged.records()[0].max_fee,
            first.max_fee(),
            "the log keeps what it may pay"
        );
        let book = every_agents(&logged);
        let mut turn = InTurn::new(&budgeted, &logged, &book);
        let from = Address::repeat_byte(0x22);
        let rule = |decided: Result<Decided, Refusal>| match decided {
            Err(Refusal::Guardrail(violation)) => Some(violation.rule),
            _ => None,
        };
        for _ in 0..3 {
            assert_eq!(rule(turn.decide(&priced(10_000_000_000), from, 0, now())), None);
        }
        assert_eq!(
            rule(turn.decide(&priced(10_000_000_000), from, 0, now())),
            Some("tx_overhead_budget")
        );
        assert_eq!(
            rule(turn.decide(&priced(1), from, 0, now())),
            None,
            "a cheaper one fits"
        );
        assert_eq!(rule(turn.decide(&priced(1), from, 0, now())), None);
        assert_eq!(
            rule(turn.decide(&priced(1), from, 0, now())),
            Some("tx_max_per_day"),
            "the seventh of the day"
        );
        let absurd = varied("0", None, |submission| {
            submission.fee = Fee::Legacy { gas_price: u128::MAX }
        });
        assert_eq!(absurd.max_fee(), Wei::CEILING);
    }

    #[test]
    fn a_request_digest_is_the_same_for_the_same_request_and_changes_with_every_field() {
        let data = [0xa9, 0x05, 0x9c, 0xbb];
        let base = Request {
            sign_only: false,
            chain: "anvil",
            chain_id: 31337,
            to: Address::repeat_byte(0xab),
            value: Wei::from_eth_str("0.1").unwrap(),
            data: &data,
            signing_key_path: None,
            nonce: None,
            gas_limit: None,
            gas_price: None,
            max_fee_per_gas: Some("2000000000"),
            max_priority_fee_per_gas: Some("1000000000"),
            simulate_first: false,
        };
        // Pinned: a digest that changed with a release would refuse the honest retries
        // that straddle it. The SHA-256 of
        // ["keyward/transaction-request/1","send","anvil",31337,"0xabab…ab","100000000000000000",
        //  "0xa9059cbb",null,null,null,null,"2000000000","1000000000",false]
        assert_eq!(
            base.digest().as_str(),
            "50296ad3b3e259f6056638f2499338867ec478a21427ac3d54a21723a9f7e51a"
        );
        assert_eq!(base.clone().digest(), base.digest());
        assert_eq!(
            Request {
                max_fee_per_gas: Some("02000000000"),
                ..base.clone()
            }
            .digest(),
            base.digest(),
            "a number of wei is that number"
        );
        let variants = [
            Request {
                sign_only: true,
                ..base.clone()
            },
            Request {
                chain: "other",
                ..base.clone()
            },
            Request {
                chain_id: 1,
                ..base.clone()
            },
            Request {
                to: Address::repeat_byte(0xcd),
                ..base.clone()
            },
            Request {
                value: Wei::from_eth_str("0.2").unwrap(),
                ..base.clone()
            },
            Request {
                data: &[],
                ..base.clone()
            },
            Request {
                signing_key_path: Some("keys/anvil-signer"),
                ..base.clone()
            },
            Request {
                nonce: Some(0),
                ..base.clone()
            },
            Request {
                gas_limit: Some(60_000),
                ..base.clone()
            },
            Request {
                gas_price: Some("2000000000"),
                max_fee_per_gas: None,
                max_priority_fee_per_gas: None,
                ..base.clone()
            },
            Request {
                max_fee_per_gas: Some("3000000000"),
                ..base.clone()
            },
            Request {
                max_priority_fee_per_gas: Some("2000000000"),
                ..base.clone()
            },
            Request {
                simulate_first: true,
                ..base.clone()
            },
        ];
        let mut digests: Vec<RequestDigest> = variants.iter().map(Request::digest).collect();
        digests.push(base.digest());
        let count = digests.len();
        digests.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        digests.dedup();
        assert_eq!(digests.len(), count, "every field counts");
    }

    #[test]
    fn an_idempotency_key_answers_only_for_the_request_it_was_first_used_for() {
        let anyone = agent(|_| {});
        let first = submission("0.1", Some("k1"));
        let mut logged = logged_in_flight(&anyone, &first);
        logged.mark_broadcast(first.tx_id);
        let book = every_agents(&logged);
        let turn = InTurn::new(&anyone, &logged, &book);
        assert_eq!(
            turn.screen(&submission("0.1", Some("k1")).ask(), now()),
            Ok(Some(first.tx_id)),
            "the same request again"
        );
        let others = [
            varied("0.1", Some("k1"), |s| s.to = Address::repeat_byte(0x33)),
            submission("0.2", Some("k1")),
            varied("0.1", Some("k1"), |s| s.sign_only = true),
        ];
        for other in &others {
            assert_eq!(
                turn.screen(&other.ask(), now()),
                Err(Refusal::IdempotencyKeyReused),
                "{other:?}"
            );
        }
        assert_eq!(
            turn.screen(&others[0].ask(), now() + IDEMPOTENCY_WINDOW),
            Ok(None),
            "a forgotten key is free"
        );
        assert_eq!(
            turn.screen(&submission("0.2", Some("k2")).ask(), now()),
            Ok(None),
            "another key"
        );
    }

    #[test]
    fn another_request_under_an_in_flight_key_is_refused_as_a_reuse_not_told_to_retry() {
        let anyone = agent(|_| {});
        let first = submission("0.1", Some("k1"));
        let logged = logged_in_flight(&anyone, &first);
        let book = every_agents(&logged);
        let turn = InTurn::new(&anyone, &logged, &book);
        assert_eq!(
            turn.screen(&submission("0.2", Some("k1")).ask(), now()),
            Err(Refusal::IdempotencyKeyReused)
        );
        assert_eq!(
            turn.screen(&submission("0.1", Some("k1")).ask(), now()),
            Err(Refusal::InFlight)
        );
    }

    #[test]
    fn a_turn_refuses_another_request_under_a_key_it_reserved_for_one() {
        let anyone = agent(|_| {});
        let logged = TransactionHistory::default();
        let book = every_agents(&logged);
        let mut turn = InTurn::new(&anyone, &logged, &book);
        let from = Address::repeat_byte(0x22);
        assert!(matches!(
            turn.decide(&submission("0.1", Some("k1")), from, 0, now()),
            Ok(Decided::Reserved(_))
        ));
        assert_eq!(
            turn.decide(&submission("0.2", Some("k1")), from, 0, now()).map(|_| ()),
            Err(Refusal::IdempotencyKeyReused)
        );
    }

    #[test]
    fn a_key_logged_before_requests_were_digested_answers_any_repeat() {
        let anyone = agent(|_| {});
        let first = submission("0.1", Some("k1"));
        let Ok(Decided::Reserved(reservation)) = decide(&anyone, &TransactionHistory::default(), &first) else {
            panic!("the first is reserved");
        };
        let (mut signed, _) = reservation.sign(&PrivateKey::generate().unwrap()).unwrap();
        assert_eq!(signed.request_digest.as_ref(), Some(&first.request_digest));
        signed.request_digest = None;
        let mut logged = TransactionHistory::default();
        logged.push(TransactionRecord::signed(&signed, now()));
        logged.mark_broadcast(first.tx_id);
        let book = every_agents(&logged);
        let turn = InTurn::new(&anyone, &logged, &book);
        assert_eq!(
            turn.screen(&submission("0.2", Some("k1")).ask(), now()),
            Ok(Some(first.tx_id))
        );
    }

    #[test]
    fn the_log_keeps_a_request_digest_only_beside_an_idempotency_key() {
        let anyone = agent(|_| {});
        let key = PrivateKey::generate().unwrap();
        let sign = |submission: &Submission| {
            let Ok(Decided::Reserved(reservation)) = decide(&anyone, &TransactionHistory::default(), submission) else {
                panic!("reserved");
            };
            reservation.sign(&key).unwrap().0
        };
        assert_eq!(sign(&submission("0.1", None)).request_digest, None);
        let keyed = submission("0.1", Some("k1"));
        assert_eq!(sign(&keyed).request_digest, Some(keyed.request_digest));
    }
}
