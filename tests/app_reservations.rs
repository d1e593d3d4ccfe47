//! Intent submission's reservations, in process: the application layer's use case called
//! directly, with no server spawned and no chain (the submissions are sign-only, so no
//! node is asked anything). The human and the agent are set up through the JSON API's
//! router, also in process. docs/architecture.md, "The layers".

mod common;

use axum::http::Method;
use chrono::Utc;
use common::TestDb;
use common::in_process::InProcess;
use domain::{ActorType, AgentId, Metadata};
use intents::guardrails::Violation;
use intents::submission::Request as TransactionRequest;
use intents::{Address, Bytes, Fee, PrivateKey, Refusal, Submission, Wei};
use keyward::app::reservations::{self, Reserved, Ticket};
use serde_json::json;
use uuid::Uuid;

/// anvil's first account's key: any valid key serves, nothing is sent.
const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ALLOWED: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const CHAIN: &str = "anvil";
const CHAIN_ID: u64 = 31337;
const GAS_PRICE: u128 = 1_000_000_000;

/// What these tests add to a process in process: an agent that may sign, its tickets.
trait Intents {
    async fn agent(&self, max_eth: &str, daily_eth: &str) -> (AgentId, Uuid);
    fn ticket(&self, agent: AgentId, org: Uuid, chain: (&str, u64), to: &str, eth: &str, key: Option<&str>) -> Ticket;
    fn signed_nonces(&self, agent: AgentId) -> Vec<u64>;
}

impl Intents for InProcess {
    /// A human and an agent of theirs that may sign on anvil, at most `max_eth` a
    /// transaction and `daily_eth` a day, to `ALLOWED` only: the agent and its org.
    async fn agent(&self, max_eth: &str, daily_eth: &str) -> (AgentId, Uuid) {
        let human = self.human("ada@example.com").await;
        let settings = json!({
            "name": "trader",
            "intents_api_enabled": true,
            "tx_allowed_chains": [CHAIN],
            "tx_max_value_eth": max_eth,
            "tx_daily_limit_eth": daily_eth,
            "tx_to_allowlist": [ALLOWED],
        });
        let created = self.call(Method::POST, "/v1/agents", Some(&human), settings).await;
        let agent = AgentId(created["agent"]["id"].as_str().unwrap().parse().unwrap());
        let org = self
            .state
            .projector
            .read(|models| models.directory.agent(agent).unwrap().org_id);
        (agent, org.0)
    }

    /// A sign-only submission of `eth` to `to` on `chain`, as the transactions endpoint
    /// makes it, and the agent's ticket for it.
    fn ticket(&self, agent: AgentId, org: Uuid, chain: (&str, u64), to: &str, eth: &str, key: Option<&str>) -> Ticket {
        let to: Address = to.parse().unwrap();
        let value = Wei::from_eth_str(eth).unwrap();
        let gas_price = GAS_PRICE.to_string();
        let request = TransactionRequest {
            sign_only: true,
            chain: chain.0,
            chain_id: chain.1,
            to,
            value,
            data: &[],
            signing_key_path: None,
            nonce: None,
            gas_limit: Some(21_000),
            gas_price: Some(&gas_price),
            max_fee_per_gas: None,
            max_priority_fee_per_gas: None,
            simulate_first: false,
        };
        let key_of_agent = PrivateKey::parse_hex(KEY).unwrap();
        Ticket {
            submission: Submission {
                tx_id: Uuid::now_v7(),
                chain: chain.0.into(),
                chain_id: chain.1,
                to,
                value,
                data: Bytes::new(),
                gas_limit: 21_000,
                fee: Fee::Legacy { gas_price: GAS_PRICE },
                nonce: None,
                signing_key_path: "keys/anvil".into(),
                idempotency_key: key.map(str::to_owned),
                request_digest: request.digest(),
                sign_only: true,
            },
            from: key_of_agent.address(),
            chain_pending_nonce: 0,
            key: key_of_agent,
            rpc: self.state.rpc.rpc("http://127.0.0.1:9"),
            metadata: Metadata {
                actor_type: ActorType::Agent,
                actor_id: Some(agent.to_string()),
                org_id: Some(org),
                client_ip: Some([127, 0, 0, 1].into()),
                request_id: None,
                timestamp: Utc::now(),
            },
            now: Utc::now(),
        }
    }

    /// The nonces of the agent's signed transactions, in the read models.
    fn signed_nonces(&self, agent: AgentId) -> Vec<u64> {
        let mut nonces: Vec<u64> = self.state.projector.read(|models| {
            models
                .transactions
                .history(agent)
                .records()
                .iter()
                .map(|record| record.nonce)
                .collect()
        });
        nonces.sort_unstable();
        nonces
    }
}

/// Thirty tenths of an ether submitted at once under a one-ether daily limit: each turn
/// decides its submissions on what the ones before reserved, so exactly ten are signed,
/// with the nonces 0 to 9, and the other twenty are refused by the daily limit.
#[tokio::test]
async fn thirty_concurrent_tenths_under_a_one_ether_day_sign_exactly_ten() {
    let db = TestDb::sqlite();
    let keyward = InProcess::start(&db).await;
    let (agent, org) = keyward.agent("0.5", "1").await;
    let submissions = (0..30).map(|_| {
        let ticket = keyward.ticket(agent, org, (CHAIN, CHAIN_ID), ALLOWED, "0.1", None);
        reservations::reserve(&keyward.state, agent, ticket)
    });
    let answers = futures::future::join_all(submissions).await;

    let mut signed = 0;
    let mut over_the_day = 0;
    for answer in answers {
        match answer.expect("no turn fails") {
            Ok(Reserved::Signed) => signed += 1,
            Err(Refusal::Guardrail(Violation {
                rule: "tx_daily_limit_eth",
                ..
            })) => over_the_day += 1,
            Err(other) => panic!("refused for another reason: {other}"),
            Ok(_) => panic!("a sign-only submission is neither broadcast nor a repeat"),
        }
    }
    assert_eq!((signed, over_the_day), (10, 20));
    assert_eq!(keyward.signed_nonces(agent), (0..10).collect::<Vec<u64>>());
}

/// Each guardrail refuses on its own, nothing is signed, and every refusal is in the log.
#[tokio::test]
async fn each_guardrail_refuses_on_its_own_and_is_recorded() {
    let db = TestDb::sqlite();
    let keyward = InProcess::start(&db).await;
    let (agent, org) = keyward.agent("0.5", "1").await;
    let stranger = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
    let cases = [
        ((CHAIN, CHAIN_ID), ALLOWED, "0.6", "tx_max_value_eth"),
        ((CHAIN, CHAIN_ID), stranger, "0.1", "tx_to_allowlist"),
        (("sepolia", 11_155_111), ALLOWED, "0.1", "tx_allowed_chains"),
    ];
    for (chain, to, eth, rule) in cases {
        let ticket = keyward.ticket(agent, org, chain, to, eth, None);
        match reservations::reserve(&keyward.state, agent, ticket).await.unwrap() {
            Err(Refusal::Guardrail(violation)) => assert_eq!(violation.rule, rule, "{}", violation.detail),
            Err(other) => panic!("{rule}: refused for another reason: {other}"),
            Ok(_) => panic!("{rule}: signed"),
        }
    }
    assert!(keyward.signed_nonces(agent).is_empty());
    let rejections = keyward
        .state
        .store
        .read_all(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.event_type == "transaction.rejected")
        .count();
    assert_eq!(rejections, cases.len());
}

/// One Idempotency-Key sent five times at once signs one transaction; every later answer
/// names it. The same key for another request is refused.
#[tokio::test]
async fn one_idempotency_key_five_times_at_once_signs_once() {
    let db = TestDb::sqlite();
    let keyward = InProcess::start(&db).await;
    let (agent, org) = keyward.agent("0.5", "1").await;
    let submissions = (0..5).map(|_| {
        let ticket = keyward.ticket(agent, org, (CHAIN, CHAIN_ID), ALLOWED, "0.1", Some("pay-invoice-7"));
        reservations::reserve(&keyward.state, agent, ticket)
    });
    let answers: Vec<_> = futures::future::join_all(submissions)
        .await
        .into_iter()
        .map(|answer| answer.unwrap())
        .collect();
    let signed = answers.iter().filter(|a| matches!(a, Ok(Reserved::Signed))).count();
    let repeats = answers.iter().filter(|a| matches!(a, Ok(Reserved::Repeat(_)))).count();
    assert_eq!((signed, repeats), (1, 4), "every other answer repeats the first");
    assert_eq!(keyward.signed_nonces(agent), vec![0]);
    let signed_id = keyward
        .state
        .projector
        .read(|models| models.transactions.history(agent).records()[0].id);
    for answer in &answers {
        if let Ok(Reserved::Repeat(id)) = answer {
            assert_eq!(*id, signed_id, "a repeat names the transaction the first signed");
        }
    }

    let other_request = keyward.ticket(agent, org, (CHAIN, CHAIN_ID), ALLOWED, "0.2", Some("pay-invoice-7"));
    assert!(matches!(
        reservations::reserve(&keyward.state, agent, other_request)
            .await
            .unwrap(),
        Err(Refusal::IdempotencyKeyReused)
    ));
}
