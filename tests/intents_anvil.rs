//! The Intents proxy against a real anvil: transfers mined with exact balances, each
//! guardrail refusing on its own with nothing on chain, a daily limit that holds under 50
//! concurrent submissions with contiguous nonces, and a key that never leaves.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use common::chain::{self, ETH};
use common::world::{
    PASSWORD, PUBLIC_URL, RAW_SIGNING_ACKNOWLEDGEMENT, World, audit_trail, change_agent, change_agent_confirming,
    sign_intent, signer_of, submit, transactions_listed, world, world_with_chains,
};
use common::{Api, Server, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::watch;

fn transfer(world: &World, value: &str) -> Value {
    json!({"chain": "anvil", "to": world.recipient, "value": value})
}

#[tokio::test]
async fn a_half_eth_transfer_is_mined_and_the_recipient_gets_exactly_half_an_eth() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let (status, tx) = submit(&world, transfer(&world, "0.5")).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    assert_eq!(
        (tx["status"].as_str(), tx["value_wei"].as_str(), tx["chain_id"].as_u64()),
        (Some("broadcast"), Some("500000000000000000"), Some(31337))
    );
    assert_eq!(tx["from"], world.signer.as_str());
    assert!(
        tx["signed_tx"].as_str().unwrap().starts_with("0x02"),
        "EIP-1559 by default"
    );
    assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
    assert_eq!(chain::balance(&world.recipient).await, ETH / 2);

    // Listed for the agent and its human; the raw transaction only on request.
    let path = format!("/v1/agents/{}/transactions", world.agent_id);
    let listed = transactions_listed(&world, &world.human).await;
    assert_eq!(listed[0]["id"], tx["id"]);
    assert!(listed[0].get("signed_tx").is_none());
    let one = format!("{path}/{}?include_signed_tx=true", tx["id"].as_str().unwrap());
    let (_, fetched) = world.api.call("GET", &one, Some(&world.agent), None).await;
    assert_eq!(fetched["signed_tx"], tx["signed_tx"]);

    // A legacy transaction when the agent names a gas price.
    let mut legacy = transfer(&world, "0.25");
    legacy["gas_price"] = json!("3000000000");
    let (status, tx) = submit(&world, legacy).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    assert_eq!(tx["nonce"], 1);
    assert!(!tx["signed_tx"].as_str().unwrap().starts_with("0x02"));
    assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
    assert_eq!(chain::balance(&world.recipient).await, ETH / 2 + ETH / 4);
}

#[tokio::test]
async fn each_guardrail_refuses_on_its_own_and_nothing_reaches_the_chain() {
    let other_chain = json!({
        "name": "other", "display_name": "Other", "chain_id": 31338, "rpc_url": chain::anvil_url(),
        "native_currency": "ETH", "is_testnet": true,
    });
    let allowed = chain::fresh_address();
    // 21,000 gas at 1,000 gwei: fees of up to 0.021 ETH.
    let dear = json!({"gas_price": "1000000000000"});
    let cases = [
        (
            "tx_allowed_chains",
            json!({"tx_allowed_chains": ["other"]}),
            "0.1",
            json!({}),
        ),
        (
            "tx_to_allowlist",
            json!({"tx_to_allowlist": [allowed]}),
            "0.1",
            json!({}),
        ),
        ("tx_max_value_eth", json!({"tx_max_value_eth": "0.5"}), "0.6", json!({})),
        (
            "tx_daily_limit_eth",
            json!({"tx_daily_limit_eth": "1.0"}),
            "1.1",
            json!({}),
        ),
        ("tx_max_per_day", json!({"tx_max_per_day": 0}), "0.1", json!({})),
        (
            "tx_overhead_budget",
            json!({"tx_overhead_budget": {"anvil": "0.02"}}),
            "0.1",
            dear,
        ),
    ];
    for (rule, settings, value, fee) in cases {
        let world = world(TestDb::sqlite(), settings, std::slice::from_ref(&other_chain)).await;
        let mut body = transfer(&world, value);
        body.as_object_mut().unwrap().extend(fee.as_object().unwrap().clone());
        let (status, problem) = submit(&world, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{rule}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().starts_with(rule),
            "{rule}: {problem}"
        );
        assert_eq!(chain::nonce(&world.signer).await, 0, "{rule}: nothing was sent");
        assert_eq!(chain::balance(&world.recipient).await, 0);
        let listed = transactions_listed(&world, &world.human).await;
        assert_eq!(listed, json!([]), "{rule}: nothing was signed");
        let trail = audit_trail(&world, "transaction.reject").await;
        assert_eq!(
            trail["events"][0]["details"]["rule"], rule,
            "the refusal is audited with its rule"
        );
    }
}

#[tokio::test]
async fn a_token_transfer_through_an_allowed_contract_pays_only_an_allowed_recipient() {
    let token = chain::fresh_address();
    let stranger = chain::fresh_address();
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let settings = json!({"tx_to_allowlist": [world.recipient], "tx_token_allowlist": [token]});
    let (status, shown) = change_agent(&world, settings).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["tx_token_allowlist"], json!([token]));
    // ERC-20 transfer(party, 1): `to` is the token contract, the party is in the calldata.
    let transfer_to = |party: &str| format!("0xa9059cbb{:0>64}{:064x}", party.trim_start_matches("0x"), 1);
    let call = |to: &str, data: String| json!({"chain": "anvil", "to": to, "value": "0", "data": data});
    for (to, data, rule) in [
        (&token, transfer_to(&stranger), "tx_to_allowlist"),
        (&stranger, "0xd0e30db0".to_owned(), "tx_to_allowlist"),
        (&world.recipient, transfer_to(&world.recipient), "tx_token_allowlist"),
    ] {
        let (status, problem) = submit(&world, call(to, data)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert!(problem["detail"].as_str().unwrap().starts_with(rule), "{problem}");
    }
    assert_eq!(chain::nonce(&world.signer).await, 0, "nothing was sent");
    let (status, tx) = submit(&world, call(&token, transfer_to(&world.recipient))).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
}

#[tokio::test]
async fn twenty_concurrent_transfers_under_a_fee_budget_for_five_sign_exactly_five() {
    // 21,000 gas at up to 10 gwei: 0.00021 ETH each; the budget holds five.
    let settings = json!({"tx_overhead_budget": {"anvil": "0.00105"}, "tx_max_per_day": 100});
    let world = world(TestDb::postgres().await, settings, &[]).await;
    let mut body = transfer(&world, "0.01");
    body["max_fee_per_gas"] = json!("10000000000");
    body["max_priority_fee_per_gas"] = json!("1");
    let results = futures::future::join_all((0..20).map(|_| submit(&world, body.clone()))).await;
    let accepted = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let refused = results
        .iter()
        .filter(|(status, problem)| {
            *status == StatusCode::FORBIDDEN && problem["detail"].as_str().unwrap().starts_with("tx_overhead_budget")
        })
        .count();
    assert_eq!((accepted, refused), (5, 15), "{results:?}");
    wait_until_mined(&world.signer, 5).await;
    assert_eq!(chain::balance(&world.recipient).await, 5 * ETH / 100);
}

#[tokio::test]
async fn fees_are_held_to_the_agents_24_hour_budget_and_transactions_to_its_daily_count() {
    let settings = json!({"tx_overhead_budget": {"anvil": "0.001"}, "tx_max_per_day": 6});
    let world = world(TestDb::sqlite(), settings, &[]).await;
    let priced = |max_fee_per_gas: &str| {
        let mut body = transfer(&world, "0.01");
        body["max_fee_per_gas"] = json!(max_fee_per_gas);
        body["max_priority_fee_per_gas"] = json!("1");
        body
    };
    // 21,000 gas at up to 10 gwei: fees of up to 0.00021 ETH each, four within the budget.
    for _ in 0..4 {
        let (status, tx) = submit(&world, priced("10000000000")).await;
        assert_eq!(status, StatusCode::CREATED, "{tx}");
    }
    let (status, problem) = submit(&world, priced("10000000000")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("tx_overhead_budget: fees of up to 0.00021"),
        "{problem}"
    );
    // What is left of the budget still takes a cheaper one, then the day's count is full.
    for _ in 0..2 {
        let (status, tx) = submit(&world, priced("1000000000")).await;
        assert_eq!(status, StatusCode::CREATED, "{tx}");
    }
    let (status, problem) = submit(&world, priced("1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().starts_with("tx_max_per_day"),
        "{problem}"
    );
    wait_until_mined(&world.signer, 6).await;
    let paid = 100 * ETH - 6 * ETH / 100 - chain::balance(&world.signer).await;
    assert!(
        paid <= ETH / 1000,
        "the signer paid {paid} wei in fees, over the budget"
    );
    assert_eq!(audit_trail(&world, "transaction.reject").await["count"], 2);

    // The human sees the settings; a budget for a chain keyward does not know, or of no
    // amount, is refused.
    let agent = format!("/v1/agents/{}", world.agent_id);
    let (_, shown) = world.api.call("GET", &agent, Some(&world.human), None).await;
    assert_eq!(shown["tx_overhead_budget"], json!({"anvil": "0.001"}), "{shown}");
    assert_eq!(shown["tx_max_per_day"], 6, "{shown}");
    // And what the agent used of them, as they count it.
    let used = ["tx_spent_today_eth", "tx_count_today", "tx_overhead_today_by_chain"].map(|field| &shown[field]);
    assert_eq!(
        used,
        [&json!("0.06"), &json!(6), &json!({"anvil": "0.000882"})],
        "{shown}"
    );
    for (budget, complaint) in [
        (json!({"solana": "0.5"}), "no chain named \"solana\""),
        (json!({"anvil": "-1"}), "tx_overhead_budget.anvil"),
    ] {
        let change = json!({"tx_overhead_budget": budget});
        let (status, problem) = change_agent(&world, change).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(complaint), "{problem}");
    }
    // By chain id, and an empty budget lifts it.
    let by_id = json!({"tx_overhead_budget": {"31337": "1"}});
    let (status, changed) = change_agent(&world, by_id).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["tx_overhead_budget"], json!({"31337": "1"}), "{changed}");
    let lifted = json!({"tx_overhead_budget": {}});
    let (_, changed) = change_agent(&world, lifted).await;
    assert!(changed.get("tx_overhead_budget").is_none(), "{changed}");
    // A change that leaves the daily count out keeps it; null lifts it (the spec's "null =
    // unlimited"), and the agent signs a seventh transaction today.
    let renamed = json!({"name": "trader-2"});
    let (_, changed) = change_agent(&world, renamed).await;
    assert_eq!(changed["tx_max_per_day"], 6, "{changed}");
    let unlimited = json!({"tx_max_per_day": null});
    let (_, changed) = change_agent(&world, unlimited).await;
    assert!(changed.get("tx_max_per_day").is_none(), "{changed}");
    let (status, tx) = submit(&world, priced("1000000000")).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
}

#[tokio::test]
async fn fifty_concurrent_tenths_under_a_one_eth_daily_limit_send_exactly_one_eth() {
    let world = world(TestDb::postgres().await, json!({"tx_daily_limit_eth": "1.0"}), &[]).await;
    let submissions = (0..50).map(|_| submit(&world, transfer(&world, "0.1")));
    let results = futures::future::join_all(submissions).await;
    let accepted: Vec<&Value> = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, tx)| tx)
        .collect();
    let refused = results
        .iter()
        .filter(|(status, problem)| {
            *status == StatusCode::FORBIDDEN && problem["detail"].as_str().unwrap().starts_with("tx_daily_limit_eth")
        })
        .count();
    assert_eq!((accepted.len(), refused), (10, 40), "{results:?}");
    let mut nonces: Vec<u64> = accepted.iter().map(|tx| tx["nonce"].as_u64().unwrap()).collect();
    nonces.sort();
    assert_eq!(nonces, (0..10).collect::<Vec<u64>>(), "contiguous nonces");
    for tx in &accepted {
        assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
    }
    assert_eq!(chain::balance(&world.recipient).await, ETH);
}

/// Another intents agent of the world's human, allowed to read the same signing key: its
/// id and token.
async fn agent_sharing_the_key(world: &World) -> (String, String) {
    let api = &world.api;
    let body = json!({"name": "second trader", "intents_api_enabled": true});
    let (status, created) = api.call("POST", "/v1/agents", Some(&world.human), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let agent_id = created["agent"]["id"].as_str().unwrap().to_owned();
    let policy = json!({
        "secret_path_pattern": "keys/*", "principal_type": "agent",
        "principal_id": agent_id, "permissions": ["read"],
    });
    let policies = format!("/v1/vaults/{}/policies", world.vault);
    let (status, _) = api.call("POST", &policies, Some(&world.human), Some(policy)).await;
    assert_eq!(status, StatusCode::CREATED);
    let token = api.agent_token(created["api_key"].as_str().unwrap()).await;
    (agent_id, token)
}

/// Two agents signing with one key at once: the key's nonces are reserved in one place
/// (its sender's stream, at an expected version), so no two transactions take one nonce,
/// none is refused by the node or replaces another, and every one is mined.
#[tokio::test]
async fn two_agents_signing_with_one_key_at_once_never_take_the_same_nonce() {
    let world = world(TestDb::postgres().await, json!({}), &[]).await;
    let (second_id, second_token) = agent_sharing_the_key(&world).await;
    let each = 12u64;
    let second_url = format!("/v1/agents/{second_id}/transactions");
    let firsts = (0..each).map(|_| submit(&world, transfer(&world, "0.01")));
    let seconds = (0..each).map(|_| {
        world
            .api
            .call("POST", &second_url, Some(&second_token), Some(transfer(&world, "0.01")))
    });
    let (firsts, seconds) =
        futures::future::join(futures::future::join_all(firsts), futures::future::join_all(seconds)).await;
    let results: Vec<(StatusCode, Value)> = firsts.into_iter().chain(seconds).collect();
    for (status, tx) in &results {
        assert_eq!(
            (*status, tx["status"].as_str()),
            (StatusCode::CREATED, Some("broadcast")),
            "{tx}"
        );
    }
    let mut nonces: Vec<u64> = results.iter().map(|(_, tx)| tx["nonce"].as_u64().unwrap()).collect();
    nonces.sort();
    assert_eq!(
        nonces,
        (0..2 * each).collect::<Vec<u64>>(),
        "one nonce each, none skipped"
    );
    wait_until_mined(&world.signer, 2 * each).await;
    for (_, tx) in &results {
        assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
    }
    assert_eq!(chain::balance(&world.recipient).await, u128::from(2 * each) * ETH / 100);
}

/// An agent's transactions come a page at a time, newest first; another agent of the same org, sharing the key, sees only its own, even when it
/// names one of the first agent's transactions under its own path.
#[tokio::test]
async fn an_agents_transactions_are_listed_a_page_at_a_time_and_only_its_own() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let (second_id, second_token) = agent_sharing_the_key(&world).await;
    let mut sent = vec![];
    for _ in 0..5 {
        let (status, tx) = submit(&world, transfer(&world, "0.01")).await;
        assert_eq!(status, StatusCode::CREATED, "{tx}");
        sent.push(tx["id"].as_str().unwrap().to_owned());
    }
    let second_url = format!("/v1/agents/{second_id}/transactions");
    let (status, theirs) = world
        .api
        .call("POST", &second_url, Some(&second_token), Some(transfer(&world, "0.01")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");

    let api = &world.api;
    let page = |query: &str, token: &str, agent: &str| {
        let url = format!("/v1/agents/{agent}/transactions{query}");
        let token = token.to_owned();
        async move { api.call("GET", &url, Some(&token), None).await }
    };
    let ids = |listed: &Value| -> Vec<String> {
        listed["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tx| tx["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();
    for (query, expected) in [
        ("", &newest_first[..]),
        ("?limit=2", &newest_first[..2]),
        ("?limit=2&offset=2", &newest_first[2..4]),
        ("?limit=2&offset=4", &newest_first[4..]),
        ("?offset=5", &[][..]),
    ] {
        let (status, listed) = page(query, &world.agent, &world.agent_id).await;
        assert_eq!(status, StatusCode::OK, "{query}: {listed}");
        assert_eq!(ids(&listed), expected, "{query}");
    }
    for query in ["?limit=0", "?limit=1001", "?offset=-1"] {
        let (status, _) = page(query, &world.agent, &world.agent_id).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }

    let (_, listed) = page("", &second_token, &second_id).await;
    assert_eq!(ids(&listed), [theirs["id"].as_str().unwrap()], "{listed}");
    let (status, _) = page("", &second_token, &world.agent_id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another agent's list");
    let (status, _) = page(&format!("/{}", sent[0]), &second_token, &second_id).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another agent's transaction under its own path"
    );
}

/// The attack of docs/security.md's "Spending past a limit": a transfer the node refuses
/// (the key cannot pay it yet) must not hand the agent bytes it could send itself once the
/// key is topped up, nor give its value back to spend again through keyward.
#[tokio::test]
async fn a_refused_transfers_signed_bytes_are_withheld_and_its_value_still_counts_against_the_daily_limit() {
    let world = world(TestDb::sqlite(), json!({"tx_daily_limit_eth": "1.0"}), &[]).await;
    chain::set_balance(&world.signer, ETH / 2).await;
    let (status, refused) = submit(&world, transfer(&world, "1.0")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "insufficient funds: {refused}");
    let listed = transactions_listed(&world, &world.agent).await;
    let failed = listed[0]["id"].as_str().unwrap();
    assert_eq!(listed[0]["status"], "failed", "{listed}");

    for path in [
        format!(
            "/v1/agents/{}/transactions/{failed}?include_signed_tx=true",
            world.agent_id
        ),
        format!("/v1/agents/{}/transactions?include_signed_tx=true", world.agent_id),
    ] {
        let (status, answer) = world.api.call("GET", &path, Some(&world.agent), None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(!answer.to_string().contains("signed_tx"), "{path}: {answer}");
    }

    chain::set_balance(&world.signer, 100 * ETH).await;
    let (status, problem) = submit(&world, transfer(&world, "0.5")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().starts_with("tx_daily_limit_eth"),
        "{problem}"
    );
    assert_eq!(chain::balance(&world.recipient).await, 0);
}

#[tokio::test]
async fn a_refused_broadcast_leaves_no_gap_that_strands_later_transactions() {
    let world = world(TestDb::sqlite(), json!({"tx_daily_limit_eth": "0.06"}), &[]).await;
    // A gas price of zero is under any base fee: the node refuses that transaction. Sent
    // among four good ones, its nonce may fall before theirs.
    let mut underpriced = transfer(&world, "0.01");
    underpriced["gas_price"] = json!("0");
    let mut bodies = vec![transfer(&world, "0.01"); 4];
    bodies.insert(2, underpriced);
    let results = futures::future::join_all(bodies.into_iter().map(|body| submit(&world, body))).await;
    let statuses: Vec<StatusCode> = results.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
        4,
        "{results:?}"
    );
    let (_, refused) = results
        .iter()
        .find(|(status, _)| *status == StatusCode::BAD_GATEWAY)
        .expect("the underpriced one is a 502");
    assert!(
        refused["detail"].as_str().unwrap().contains("stays counted"),
        "{refused}"
    );

    // A fifth good transfer takes the released nonce, and every good transfer is mined
    // after it; the refused 0.01 still counts, so the 0.06 limit is now used up.
    let (status, filler) = submit(&world, transfer(&world, "0.01")).await;
    assert_eq!(status, StatusCode::CREATED, "{filler}");
    for (_, tx) in results.iter().filter(|(status, _)| *status == StatusCode::CREATED) {
        assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
    }
    assert_eq!(chain::mined_status(filler["tx_hash"].as_str().unwrap()).await, 1);
    assert_eq!(chain::nonce(&world.signer).await, 5, "nonces 0 to 4, no gap");
    assert_eq!(chain::balance(&world.recipient).await, 5 * ETH / 100);
    let (status, problem) = submit(&world, transfer(&world, "0.01")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let listed = transactions_listed(&world, &world.agent).await;
    let failed: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|tx| tx["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{listed}");
    assert!(failed[0]["error_message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn a_refused_send_with_a_nonce_far_ahead_does_not_pull_the_next_transaction_behind_a_gap() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let mut ahead = transfer(&world, "0.01");
    ahead["nonce"] = json!(10);
    ahead["gas_price"] = json!("0");
    let (status, refused) = submit(&world, ahead).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{refused}");

    let (status, next) = submit(&world, transfer(&world, "0.01")).await;
    assert_eq!(
        (status, next["nonce"].as_u64()),
        (StatusCode::CREATED, Some(0)),
        "{next}"
    );
    assert_eq!(chain::mined_status(next["tx_hash"].as_str().unwrap()).await, 1);
}

#[tokio::test]
async fn a_key_path_in_several_vaults_signs_with_the_one_the_agent_may_read() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let put_key = |vault: String, key: String| {
        let api = &world.api;
        let human = &world.human;
        async move {
            let (status, _) = api
                .call(
                    "PUT",
                    &format!("/v1/vaults/{vault}/secrets/ops/signer"),
                    Some(human),
                    Some(json!({"value": key, "type": "private_key"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
    };
    // The older vault holds the path too, but the agent's policy there is for keys/* only.
    let (unreadable_key, _) = chain::fresh_account();
    put_key(world.vault.clone(), unreadable_key).await;
    let (_, ops) = world
        .api
        .call("POST", "/v1/vaults", Some(&world.human), Some(json!({"name": "ops"})))
        .await;
    let ops = ops["id"].as_str().unwrap().to_owned();
    let (readable_key, readable_signer) = chain::fresh_account();
    chain::set_balance(&readable_signer, ETH).await;
    put_key(ops.clone(), readable_key).await;
    let (status, _) = world
        .api
        .call(
            "POST",
            &format!("/v1/vaults/{ops}/policies"),
            Some(&world.human),
            Some(json!({
                "secret_path_pattern": "ops/*", "principal_type": "agent",
                "principal_id": world.agent_id, "permissions": ["read"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // A token issued since: its scopes come from the agent's policies, the new one's too.
    let token = world.api.agent_token(&world.api_key).await;
    let mut body = transfer(&world, "0.1");
    body["signing_key_path"] = json!("ops/signer");
    let (status, tx) = world
        .api
        .call(
            "POST",
            &format!("/v1/agents/{}/transactions", world.agent_id),
            Some(&token),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    assert_eq!(tx["from"].as_str().unwrap(), readable_signer.to_lowercase());
    assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
}

#[tokio::test]
async fn a_guardrail_refuses_before_the_key_is_read_or_the_chain_is_asked() {
    let world = world(TestDb::sqlite(), json!({"tx_max_value_eth": "0.5"}), &[]).await;
    delete_signing_key(&world).await;
    let reverter = chain::fresh_address();
    chain::rpc("anvil_setCode", json!([reverter, "0x60006000fd"])).await;
    // Over the cap, and a call that reverts: the guardrail answers, not the simulation.
    let call = json!({"chain": "anvil", "to": reverter, "value": "0.6", "data": "0x12345678", "simulate_first": true});
    let (status, problem) = submit(&world, call).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().starts_with("tx_max_value_eth"),
        "{problem}"
    );
    assert_eq!(audit_trail(&world, "transaction.reject").await["count"], 1);
    assert_eq!(
        audit_trail(&world, "transaction.simulate").await["count"],
        0,
        "nothing simulated"
    );
}

/// Deletes the world's signing key: what still works without it never read it.
async fn delete_signing_key(world: &World) {
    let (status, _) = world
        .api
        .call(
            "DELETE",
            &format!("/v1/vaults/{}/secrets/keys/anvil-signer", world.vault),
            Some(&world.human),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn requests_the_node_would_refuse_are_refused_before_anything_is_signed() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let mut tip_over_cap = transfer(&world, "0.01");
    tip_over_cap["max_fee_per_gas"] = json!("1000000000");
    tip_over_cap["max_priority_fee_per_gas"] = json!("2000000000");
    let (status, problem) = submit(&world, tip_over_cap).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    let reverter = chain::fresh_address();
    chain::rpc("anvil_setCode", json!([reverter, "0x60006000fd"])).await;
    let call = json!({"chain": "anvil", "to": reverter, "value": "0", "data": "0x12345678"});
    let (status, problem) = submit(&world, call).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a call that cannot be estimated: {problem}"
    );

    let listed = transactions_listed(&world, &world.agent).await;
    assert_eq!(listed, json!([]), "nothing signed");
    assert_eq!(chain::nonce(&world.signer).await, 0);
}

#[tokio::test]
async fn a_repeated_idempotency_key_gets_the_first_answer_from_the_log_alone() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let submit_with_key = |key: &'static str, body: Value| {
        let api = &world.api;
        let (path, agent) = (format!("/v1/agents/{}/transactions", world.agent_id), &world.agent);
        async move {
            api.call_with_headers("POST", &path, Some(agent), Some(body), &[("idempotency-key", key)])
                .await
        }
    };
    let (status, first) = submit_with_key("pay-1", transfer(&world, "0.1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let mut underpriced = transfer(&world, "0.1");
    underpriced["gas_price"] = json!("0");
    let (status, refused) = submit_with_key("pay-2", underpriced.clone()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{refused}");

    // The key is gone: a repeat that read it again could not be answered.
    delete_signing_key(&world).await;
    let (status, repeat) = submit_with_key("pay-1", transfer(&world, "0.1")).await;
    assert_eq!((status, &repeat), (StatusCode::OK, &first));
    let (status, refused_again) = submit_with_key("pay-2", underpriced).await;
    assert_eq!((status, &refused_again), (StatusCode::BAD_GATEWAY, &refused));

    let one = format!(
        "/v1/agents/{}/transactions/{}",
        world.agent_id,
        first["id"].as_str().unwrap()
    );
    for (query, included) in [("true", true), ("1", true), ("yes", false), ("false", false)] {
        let (status, tx) = world
            .api
            .call(
                "GET",
                &format!("{one}?include_signed_tx={query}"),
                Some(&world.agent),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {tx}");
        assert_eq!(tx.get("signed_tx").is_some(), included, "include_signed_tx={query}");
    }
}

#[tokio::test]
async fn an_idempotency_key_reused_for_a_different_request_is_422_and_nothing_is_signed_or_sent() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let call = |endpoint: &'static str, body: Value| {
        let api = &world.api;
        let (path, agent) = (format!("/v1/agents/{}/{endpoint}", world.agent_id), &world.agent);
        async move {
            api.call_with_headers("POST", &path, Some(agent), Some(body), &[("idempotency-key", "pay-1")])
                .await
        }
    };
    let (status, first) = call("transactions", transfer(&world, "0.1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");

    let elsewhere = chain::fresh_address();
    let mut to_elsewhere = transfer(&world, "0.1");
    to_elsewhere["to"] = json!(elsewhere);
    let mut with_gas = transfer(&world, "0.1");
    with_gas["gas_limit"] = json!(30_000);
    let others = [
        ("transactions", to_elsewhere),
        ("transactions", transfer(&world, "0.2")),
        ("transactions", with_gas),
        ("transactions/sign", transfer(&world, "0.1")),
    ];
    for (endpoint, body) in others {
        let (status, problem) = call(endpoint, body.clone()).await;
        assert_eq!(
            (status, problem["status"].as_u64(), problem["detail"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(422),
                Some(
                    "this Idempotency-Key was used for a different request in the last 24 hours; a new request needs a new key"
                )
            ),
            "{endpoint} {body}: {problem}"
        );
    }
    assert_eq!(chain::nonce(&world.signer).await, 1, "nothing more was sent");
    assert_eq!(chain::balance(&world.recipient).await, ETH / 10);
    assert_eq!(chain::balance(&elsewhere).await, 0);
    let listed = transactions_listed(&world, &world.human).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "nothing more was signed: {listed}");
    assert_eq!(
        audit_trail(&world, "transaction.reject").await["count"],
        0,
        "not a guardrail's refusal"
    );

    let (status, repeat) = call("transactions", transfer(&world, "0.1")).await;
    assert_eq!(
        (status, &repeat),
        (StatusCode::OK, &first),
        "the same request still gets its answer"
    );
}

#[tokio::test]
async fn the_private_key_is_in_no_response_log_line_or_stored_event() {
    let db = TestDb::sqlite();
    let world = world(db, json!({"message_signing_enabled": true}), &[]).await;
    let bare_key = world.key.trim_start_matches("0x").to_owned();
    let mut responses = Vec::new();
    let (status, tx) = submit(&world, transfer(&world, "0.01")).await;
    assert_eq!(status, StatusCode::CREATED);
    responses.push(tx.to_string());
    let message = json!({"intent_type": "personal_sign", "chain": "anvil", "message": "0x00"});
    let (status, signed) = sign_intent(&world, message).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    responses.push(signed.to_string());
    // Intents agents never read key material themselves.
    let (status, refused) = world.api.call("GET", "/v1/vaults", Some(&world.agent), None).await;
    responses.push(refused.to_string());
    assert!(status.is_success() || status.is_client_error());
    for path in ["/v1/audit/events?limit=500", "/v1/agents"] {
        responses.push(
            world
                .api
                .call("GET", path, Some(&world.human), None)
                .await
                .1
                .to_string(),
        );
    }
    for response in &responses {
        assert!(!response.contains(&bare_key), "a response holds the key: {response}");
    }
    let env: Vec<(&str, &str)> = world.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, exported, _) = common::run_keyward(&["export", "--format", "jsonl"], &env);
    assert_eq!(code, 0);
    assert!(exported.contains("transaction.signed"), "the export holds the log");
    assert!(!exported.contains(&bare_key), "a stored event holds the key");
    let log = std::fs::read_to_string(world.api.data_dir.join("server.log")).unwrap();
    assert!(log.contains("request"), "the server logged at debug level");
    assert!(!log.contains(&bare_key), "a log line holds the key");
    let database = std::fs::read(world.db.sqlite_path().unwrap()).unwrap();
    assert!(
        !database
            .windows(bare_key.len())
            .any(|window| window == bare_key.as_bytes()),
        "the database holds the key in plain text"
    );
}

#[tokio::test]
async fn one_idempotency_key_sent_five_times_at_once_puts_one_transaction_on_chain() {
    let world = world(TestDb::postgres().await, json!({}), &[]).await;
    let url = world
        .api
        .server
        .url(&format!("/v1/agents/{}/transactions", world.agent_id));
    let send = || {
        world
            .api
            .client
            .post(&url)
            .bearer_auth(&world.agent)
            .header("Idempotency-Key", "pay-invoice-42")
            .json(&transfer(&world, "0.1"))
            .send()
    };
    let responses = futures::future::join_all((0..5).map(|_| send())).await;
    let mut created = Vec::new();
    for response in responses {
        let response = response.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        match status {
            StatusCode::CREATED => created.push(body),
            // The same transaction again, or "still in flight, retry".
            StatusCode::OK | StatusCode::CONFLICT => {}
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created.len(), 1, "one request signs");
    let first = &created[0];
    assert_eq!(chain::mined_status(first["tx_hash"].as_str().unwrap()).await, 1);

    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(&again.json::<Value>().await.unwrap(), first, "the same body");
    assert_eq!(chain::nonce(&world.signer).await, 1, "one transaction on chain");
    assert_eq!(chain::balance(&world.recipient).await, ETH / 10);
    let listed = transactions_listed(&world, &world.human).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_call_that_reverts_is_refused_by_simulate_first_and_nothing_is_signed() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    // PUSH1 0 PUSH1 0 REVERT: a contract that refuses every call.
    let reverter = chain::fresh_address();
    chain::rpc("anvil_setCode", json!([reverter, "0x60006000fd"])).await;
    let call = json!({"chain": "anvil", "to": reverter, "value": "0", "data": "0x12345678", "simulate_first": true});
    let (status, problem) = submit(&world, call).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("reverted"), "{problem}");
    let listed = transactions_listed(&world, &world.human).await;
    assert_eq!(listed, json!([]), "nothing signed");
    assert_eq!(chain::nonce(&world.signer).await, 0, "nothing broadcast");

    let simulate = format!("/v1/agents/{}/transactions/simulate", world.agent_id);
    let (status, reverted) = world
        .api
        .call(
            "POST",
            &simulate,
            Some(&world.agent),
            Some(json!({"chain": "anvil", "to": reverter, "value": "0"})),
        )
        .await;
    assert_eq!(
        (status, reverted["status"].as_str()),
        (StatusCode::OK, Some("reverted")),
        "{reverted}"
    );
    let (_, transfer) = world
        .api
        .call("POST", &simulate, Some(&world.agent), Some(transfer(&world, "0.5")))
        .await;
    assert_eq!(
        (transfer["status"].as_str(), transfer["gas_used"].as_u64()),
        (Some("success"), Some(21_000)),
        "{transfer}"
    );
    assert_eq!(
        change_of(&transfer, &world.recipient),
        json!({"address": world.recipient, "token": "native", "token_symbol": "ETH",
               "before": "0", "after": "500000000000000000", "change": "500000000000000000"})
    );
    assert_eq!(chain::balance(&world.recipient).await, 0, "a simulation sends nothing");
    let trail = audit_trail(&world, "transaction.simulate").await;
    assert_eq!(trail["count"], 3, "every simulation is audited");
}

#[tokio::test]
async fn a_signature_records_its_key_use_and_a_counted_key_counts_each_signature() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let (status, tx) = submit(&world, transfer(&world, "0.1")).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    let signed = audit_trail(&world, "transaction.sign").await;
    assert_eq!(signed["count"], 1, "{signed}");
    assert_eq!(
        signed["events"][0]["details"]["signing_key_path"], "keys/anvil-signer",
        "{signed}"
    );

    // A key with an access limit: each signature is a counted read, and the limit holds.
    let (counted_key, counted) = chain::fresh_account();
    chain::set_balance(&counted, ETH).await;
    let (status, _) = world
        .api
        .call(
            "PUT",
            &format!("/v1/vaults/{}/secrets/keys/counted", world.vault),
            Some(&world.human),
            Some(json!({"value": counted_key, "type": "private_key", "max_access_count": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let with_counted_key = || {
        let mut body = transfer(&world, "0.01");
        body["signing_key_path"] = json!("keys/counted");
        body
    };
    let statuses = [
        submit(&world, with_counted_key()).await.0,
        submit(&world, with_counted_key()).await.0,
        submit(&world, with_counted_key()).await.0,
    ];
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CREATED, StatusCode::GONE]);
    assert_eq!(chain::nonce(&counted).await, 2, "the third was never signed");
}

#[tokio::test]
async fn a_provisioned_key_signs_when_no_path_is_given_and_rotation_retires_it() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let keys = format!("/v1/agents/{}/signing-keys", world.agent_id);
    let provision = |token: String, chain: &'static str| {
        let (api, keys) = (&world.api, &keys);
        async move {
            api.call("POST", keys, Some(&token), Some(json!({"chain": chain})))
                .await
        }
    };
    let (status, key) = provision(world.human.clone(), "ethereum").await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    assert_eq!(
        (
            &key["agent_id"],
            &key["chain"],
            &key["curve"],
            &key["key_version"],
            &key["is_active"]
        ),
        (
            &json!(world.agent_id),
            &json!("ethereum"),
            &json!("secp256k1"),
            &json!(1),
            &json!(true)
        )
    );
    let address = key["address"].as_str().unwrap().to_owned();
    assert_eq!(address.len(), 42);
    assert_eq!(key["public_key"].as_str().unwrap().len(), 2 + 130);
    assert_eq!(provision(world.human.clone(), "ethereum").await.0, StatusCode::CONFLICT);
    assert_eq!(
        provision(world.human.clone(), "solana").await.0,
        StatusCode::BAD_REQUEST
    );
    assert!(
        provision(world.agent.clone(), "ethereum").await.0.is_client_error(),
        "agents do not provision"
    );

    // Without signing_key_path the provisioned key signs.
    chain::set_balance(&address, ETH).await;
    let (status, tx) = submit(&world, transfer(&world, "0.5")).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    assert_eq!(tx["from"], address.as_str());
    assert_eq!(chain::balance(&world.recipient).await, ETH / 2);
    assert_eq!(chain::nonce(&world.signer).await, 0, "the vault key did not sign");

    let (status, rotated) = world
        .api
        .call("POST", &format!("{keys}/ethereum/rotate"), Some(&world.human), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["key_version"], 2);
    assert_ne!(rotated["address"], address.as_str());
    let (status, listed) = world.api.call("GET", &keys, Some(&world.agent), None).await;
    assert_eq!(status, StatusCode::OK, "the agent lists its own keys");
    let summary: Vec<_> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key_version"].clone(),
                k["is_active"].clone(),
                k["rotated_at"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![(json!(1), json!(false), true), (json!(2), json!(true), false)]
    );
    let fields: Vec<&String> = listed["keys"][0].as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "address",
            "agent_id",
            "chain",
            "created_at",
            "curve",
            "id",
            "is_active",
            "key_version",
            "public_key",
            "rotated_at"
        ],
        "no private key, sealed or not"
    );

    let (status, _) = world
        .api
        .call("DELETE", &format!("{keys}/ethereum"), Some(&world.human), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, tx) = submit(&world, transfer(&world, "0.1")).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    assert_eq!(
        tx["from"],
        world.signer.as_str(),
        "with no active key, keys/anvil-signer signs"
    );
    for action in ["signing_key.create", "signing_key.rotate", "signing_key.deactivate"] {
        assert_eq!(audit_trail(&world, action).await["count"], 1, "{action}");
    }
}

/// The balance change a simulation reports for `address`.
fn change_of(simulation: &Value, address: &str) -> Value {
    let changes = simulation["balance_changes"].as_array().unwrap();
    let mut of_address = changes.iter().filter(|c| c["address"] == address);
    let change = of_address
        .next()
        .unwrap_or_else(|| panic!("no change for {address}: {simulation}"));
    assert!(of_address.next().is_none(), "one change per address: {simulation}");
    change.clone()
}

#[tokio::test]
async fn a_bundle_runs_in_order_each_call_on_the_state_the_ones_before_it_leave() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    // A second key with nothing on it: it can only send what the first call gives it.
    let (spare_key, spare) = chain::fresh_account();
    let (status, _) = world
        .api
        .call(
            "PUT",
            &format!("/v1/vaults/{}/secrets/keys/spare", world.vault),
            Some(&world.human),
            Some(json!({"value": spare_key, "type": "private_key"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let reverter = chain::fresh_address();
    chain::rpc("anvil_setCode", json!([reverter, "0x60006000fd"])).await;
    let bundle = json!({"transactions": [
        {"chain": "anvil", "to": spare, "value": "0.5"},
        {"chain": "anvil", "to": world.recipient, "value": "0.2", "signing_key_path": "keys/spare"},
        {"chain": "anvil", "to": reverter, "value": "0", "data": "0x12345678"},
    ]});
    let simulate_bundle = format!("/v1/agents/{}/transactions/simulate-bundle", world.agent_id);
    let (status, answer) = world
        .api
        .call("POST", &simulate_bundle, Some(&world.agent), Some(bundle))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let [funding, spending, reverted] =
        <[Value; 3]>::try_from(answer["simulations"].as_array().unwrap().clone()).unwrap();
    assert_eq!(
        [&funding, &spending, &reverted].map(|s| s["status"].as_str().unwrap().to_owned()),
        ["success", "success", "reverted"]
    );
    assert_eq!(
        (
            funding["gas_used"].as_u64(),
            change_of(&funding, &world.signer)["after"].as_str()
        ),
        (Some(21_000), Some("99500000000000000000"))
    );
    let spare_after_funding = change_of(&funding, &spare);
    assert_eq!(
        (
            spare_after_funding["before"].as_str(),
            spare_after_funding["after"].as_str()
        ),
        (Some("0"), Some("500000000000000000"))
    );
    assert_eq!(
        change_of(&spending, &spare),
        json!({"address": spare, "token": "native", "token_symbol": "ETH",
               "before": "500000000000000000", "after": "300000000000000000", "change": "-200000000000000000"})
    );
    assert_eq!(change_of(&spending, &world.recipient)["after"], "200000000000000000");
    assert_eq!(
        (
            reverted["balance_changes"].as_array().map(Vec::len),
            reverted["revert_reason"].is_string()
        ),
        (Some(0), true)
    );

    assert_eq!(
        (
            chain::balance(&spare).await,
            chain::balance(&world.recipient).await,
            chain::nonce(&world.signer).await
        ),
        (0, 0, 0),
        "a simulation sends nothing"
    );
    let trail = audit_trail(&world, "transaction.simulate").await;
    assert_eq!(trail["count"], 3, "every simulated call is audited");

    let (status, problem) = world
        .api
        .call(
            "POST",
            &simulate_bundle,
            Some(&world.agent),
            Some(json!({"transactions": []})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
}

/// EIP-712's own example, on anvil's chain, from `contract`.
fn mail(contract: &str) -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
            ],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [
                {"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                {"name": "contents", "type": "string"}
            ]
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "version": "1", "chainId": 31337, "verifyingContract": contract},
        "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!"
        }
    })
}

#[tokio::test]
async fn messages_typed_data_and_digests_are_signed_only_once_a_human_turns_each_kind_on() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let mail_contract = "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC";
    let personal = json!({"intent_type": "personal_sign", "chain": "anvil", "message": "0x68656c6c6f"});
    let typed = json!({"intent_type": "typed_data", "chain": "anvil", "typed_data": mail(mail_contract)});
    let digest = format!("0x{}", "ab".repeat(32));
    let blind = json!({"intent_type": "eip712_digest", "chain": "anvil", "hash": digest});
    for (body, rule) in [
        (&personal, "message_signing_enabled"),
        (&typed, "eip712_domain_allowlist"),
        (&blind, "raw_signing_enabled"),
    ] {
        let (status, problem) = sign_intent(&world, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert!(problem["detail"].as_str().unwrap().starts_with(rule), "{problem}");
    }
    assert_eq!(audit_trail(&world, "message.refuse").await["count"], 3);

    let turned_on = json!({
        "message_signing_enabled": true, "raw_signing_enabled": true,
        "raw_signing_acknowledgement": RAW_SIGNING_ACKNOWLEDGEMENT,
        "eip712_domain_allowlist": [{"verifyingContract": mail_contract}],
    });
    let (status, shown) = change_agent_confirming(&world, turned_on, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(
        shown["eip712_domain_allowlist"],
        json!([{"verifying_contract": mail_contract.to_lowercase()}])
    );
    assert_eq!(shown["eip712_default_policy"], "deny");

    let (status, signed) = sign_intent(&world, personal).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signed["from"], world.signer.as_str());
    let expected = alloy_primitives::eip191_hash_message(b"hello");
    assert_eq!(
        signed["message_hash"],
        json!(expected.to_string()),
        "EIP-191 of the bytes"
    );
    assert_eq!(signer_of(&signed["signature"], &signed["message_hash"]), world.signer);

    let (status, signed) = sign_intent(&world, typed).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(
        signer_of(&signed["signature"], &signed["typed_data_hash"]),
        world.signer
    );
    let elsewhere = json!({"intent_type": "typed_data", "chain": "anvil", "typed_data": mail(&chain::fresh_address())});
    let (status, problem) = sign_intent(&world, elsewhere).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another contract: {problem}");

    let (status, signed) = sign_intent(&world, blind).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signer_of(&signed["signature"], &json!(digest)), world.signer);

    // Each signature was recorded with what it signed; no value moved, no nonce was used.
    let trail = audit_trail(&world, "message.sign").await;
    assert_eq!(trail["count"], 3, "{trail}");
    assert_eq!(chain::nonce(&world.signer).await, 0);
    for (body, status) in [
        (
            json!({"intent_type": "personal_sign", "chain": "anvil"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"intent_type": "personal_sign", "chain": "anvil", "message": "0xzz"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"intent_type": "eip712_digest", "chain": "anvil", "hash": "0x12"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"intent_type": "sign_anything", "chain": "anvil"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (answered, problem) = sign_intent(&world, body).await;
        assert_eq!(answered, status, "{problem}");
    }
}

#[tokio::test]
async fn a_transaction_intent_is_signed_as_transactions_sign_signs_it_under_the_same_guardrails() {
    let world = world(TestDb::sqlite(), json!({"tx_max_value_eth": "0.5"}), &[]).await;
    let intent = |value: &str, extra: Value| {
        let mut body = json!({"intent_type": "transaction", "chain": "anvil", "to": world.recipient, "value": value});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, signed) = sign_intent(&world, intent("0.1", json!({"tx_type": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(
        (signed["tx_type"].as_u64(), signed["from"].as_str()),
        (Some(2), Some(world.signer.as_str()))
    );
    assert!(signed["signed_tx"].as_str().unwrap().starts_with("0x02"), "{signed}");
    assert_eq!(chain::nonce(&world.signer).await, 0, "keyward did not send it");
    let hash = chain::rpc("eth_sendRawTransaction", json!([signed["signed_tx"]])).await;
    assert_eq!(hash, signed["tx_hash"]);
    assert_eq!(chain::mined_status(hash.as_str().unwrap()).await, 1);
    assert_eq!(chain::balance(&world.recipient).await, ETH / 10);

    let (status, legacy) = sign_intent(&world, intent("0.1", json!({"tx_type": 0, "gas_price": "3000000000"}))).await;
    assert_eq!(status, StatusCode::OK, "{legacy}");
    assert_eq!(legacy["tx_type"], 0);
    let (status, problem) = sign_intent(&world, intent("0.6", json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().starts_with("tx_max_value_eth"),
        "{problem}"
    );
    for extra in [
        json!({"tx_type": 4, "authorization_list": [{}]}),
        json!({"tx_type": 3}),
        json!({"tx_type": 0}),
        json!({"tx_type": 2, "gas_price": "1"}),
        json!({"access_list": [{"address": world.recipient, "storageKeys": []}]}),
    ] {
        let (status, problem) = sign_intent(&world, intent("0.1", extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {problem}");
    }
    let listed = transactions_listed(&world, &world.human).await;
    let statuses: Vec<&Value> = listed.as_array().unwrap().iter().map(|tx| &tx["status"]).collect();
    assert_eq!(statuses, [&json!("sign_only"), &json!("sign_only")], "{listed}");
}

#[tokio::test]
async fn a_sign_only_transaction_is_not_sent_but_counts_against_the_daily_limit() {
    let world = world(TestDb::sqlite(), json!({"tx_daily_limit_eth": "0.3"}), &[]).await;
    let (status, signed) = world
        .api
        .call(
            "POST",
            &format!("/v1/agents/{}/transactions/sign", world.agent_id),
            Some(&world.agent),
            Some(transfer(&world, "0.2")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(
        (signed["status"].as_str(), signed["nonce"].as_u64()),
        (Some("sign_only"), Some(0))
    );
    assert_eq!(chain::nonce(&world.signer).await, 0, "keyward did not send it");

    let (status, problem) = submit(&world, transfer(&world, "0.2")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(problem["detail"].as_str().unwrap().starts_with("tx_daily_limit_eth"));

    // The agent sends it itself; the next submission takes the next nonce.
    let hash = chain::rpc("eth_sendRawTransaction", json!([signed["signed_tx"]])).await;
    assert_eq!(hash, signed["tx_hash"]);
    assert_eq!(chain::mined_status(hash.as_str().unwrap()).await, 1);
    let (status, next) = submit(&world, transfer(&world, "0.1")).await;
    assert_eq!(
        (status, next["nonce"].as_u64()),
        (StatusCode::CREATED, Some(1)),
        "{next}"
    );
    assert_eq!(chain::mined_status(next["tx_hash"].as_str().unwrap()).await, 1);
    assert_eq!(chain::balance(&world.recipient).await, 3 * ETH / 10);
}

#[tokio::test]
async fn an_exported_key_needs_the_password_and_an_imported_one_signs_from_then_on() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let keys = format!("/v1/agents/{}/signing-keys", world.agent_id);
    let (status, provisioned) = world
        .api
        .call("POST", &keys, Some(&world.human), Some(json!({"chain": "ethereum"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{provisioned}");
    let export = |token: String, password: Option<&'static str>| {
        let (api, url) = (&world.api, format!("{keys}/ethereum/export"));
        async move {
            let headers: Vec<(&str, &str)> = password.map(|p| ("X-Auth-Confirm", p)).into_iter().collect();
            api.call_with_headers("POST", &url, Some(&token), None, &headers).await
        }
    };

    // Without the password, with a wrong one, or as the agent: no key.
    assert_eq!(export(world.human.clone(), None).await.0, StatusCode::FORBIDDEN);
    let (status, refused) = export(world.human.clone(), Some("wrong horse")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(refused.get("private_key").is_none());
    assert!(
        export(world.agent.clone(), Some("correct horse"))
            .await
            .0
            .is_client_error()
    );
    assert_eq!(audit_trail(&world, "signing_key.export").await["count"], 0);

    let (status, exported) = export(world.human.clone(), Some("correct horse")).await;
    assert_eq!(status, StatusCode::OK, "{exported}");
    let private_key = exported["private_key"].as_str().unwrap();
    let derived = intents::PrivateKey::parse_hex(private_key).unwrap().address();
    assert_eq!(
        derived.to_string().to_lowercase(),
        provisioned["address"].as_str().unwrap()
    );
    assert_eq!(
        (&exported["address"], &exported["public_key"], &exported["key_version"]),
        (&provisioned["address"], &provisioned["public_key"], &json!(1))
    );
    let exports = audit_trail(&world, "signing_key.export").await;
    assert_eq!(exports["count"], 1, "the export is recorded");
    assert!(!exports.to_string().contains(&private_key[2..]), "but not its key");

    // An imported key replaces the active one and signs the next submission.
    let (imported_key, imported_address) = chain::fresh_account();
    let import = |password: &'static str, private_key: String| {
        let (api, url, human) = (&world.api, format!("{keys}/ethereum/import"), &world.human);
        async move {
            let body = json!({"private_key": private_key, "format": "hex"});
            let headers = [("X-Auth-Confirm", password)];
            api.call_with_headers("POST", &url, Some(human), Some(body), &headers)
                .await
        }
    };
    assert_eq!(
        import("wrong horse", imported_key.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        import("correct horse", "0x1234".into()).await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, imported) = import("correct horse", imported_key.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{imported}");
    assert_eq!(
        (&imported["address"], &imported["key_version"], &imported["is_active"]),
        (&json!(imported_address), &json!(2), &json!(true))
    );
    assert!(!imported.to_string().contains(&imported_key[2..]));
    let (_, listed) = world.api.call("GET", &keys, Some(&world.human), None).await;
    let active: Vec<_> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["is_active"].clone())
        .collect();
    assert_eq!(active, [json!(false), json!(true)], "the provisioned key is retired");

    let balance_url = format!("{keys}/ethereum/balance");
    chain::set_balance(&imported_address, ETH).await;
    let (status, balance) = world.api.call("GET", &balance_url, Some(&world.agent), None).await;
    assert_eq!(status, StatusCode::OK, "{balance}");
    assert_eq!(
        balance,
        json!({"chain": "anvil", "address": imported_address,
               "balance_wei": "1000000000000000000", "balance_display": "1"})
    );
    let (status, tx) = submit(&world, transfer(&world, "0.25")).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    assert_eq!(tx["from"], imported_address.as_str());
    assert_eq!(chain::balance(&world.recipient).await, ETH / 4);
    let (_, balance) = world.api.call("GET", &balance_url, Some(&world.human), None).await;
    let left: u128 = balance["balance_wei"].as_str().unwrap().parse().unwrap();
    assert!(left < 3 * ETH / 4, "the transfer and its gas left the imported address");
    assert_eq!(audit_trail(&world, "signing_key.import").await["count"], 1);
}

/// A chain node stand-in in front of anvil: it passes every call on, but keeps the answer
/// to any that sends a transaction, so keyward never hears whether the node took it.
async fn node_that_never_answers_sends() -> String {
    async fn pass_on(body: String) -> ([(&'static str, &'static str); 1], String) {
        let sends = body.contains("eth_sendRawTransaction");
        let answer = anvils_answer(body).await;
        if sends {
            std::future::pending::<()>().await;
        }
        ([("content-type", "application/json")], answer)
    }
    serve_node(axum::Router::new().route("/", axum::routing::post(pass_on))).await
}

/// What anvil answers to a JSON-RPC request.
async fn anvils_answer(body: String) -> String {
    reqwest::Client::new()
        .post(chain::anvil_url())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Serves a node stand-in on a free port; its URL.
async fn serve_node(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A chain node stand-in in front of anvil: it passes every call on, but holds the answers
/// to sends until it has been sent `count` transactions (or 10 s passed), so that every
/// sender has sent before any hears back. Its URL, and how many sends it has had.
async fn node_that_answers_sends_after(count: usize) -> (String, watch::Receiver<usize>) {
    async fn pass_on(
        State(held): State<Arc<(usize, watch::Sender<usize>)>>,
        body: String,
    ) -> ([(&'static str, &'static str); 1], String) {
        let sends = body.contains("eth_sendRawTransaction");
        let answer = anvils_answer(body).await;
        if sends {
            let (count, sent) = &*held;
            sent.send_modify(|sent| *sent += 1);
            let mut seen = sent.subscribe();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), seen.wait_for(|sent| sent >= count)).await;
        }
        ([("content-type", "application/json")], answer)
    }
    let (sent, sends) = watch::channel(0);
    let held = Arc::new((count, sent));
    let url = serve_node(
        axum::Router::new()
            .route("/", axum::routing::post(pass_on))
            .with_state(held),
    )
    .await;
    (url, sends)
}

/// A chain node stand-in in front of anvil that, while its switch is on, loses the answer
/// to every send it passes on and fails every lookup of a transaction: keyward cannot
/// learn whether the node took a transaction. Everything else passes.
async fn node_that_loses_answers(losing: Arc<AtomicBool>) -> String {
    async fn pass_on(State(losing): State<Arc<AtomicBool>>, body: String) -> axum::response::Response {
        use axum::response::IntoResponse;
        let looks_up = body.contains("eth_getTransactionByHash");
        if losing.load(Ordering::SeqCst) && looks_up {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        let sends = body.contains("eth_sendRawTransaction");
        let answer = anvils_answer(body).await;
        if losing.load(Ordering::SeqCst) && sends {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        ([("content-type", "application/json")], answer).into_response()
    }
    serve_node(
        axum::Router::new()
            .route("/", axum::routing::post(pass_on))
            .with_state(losing),
    )
    .await
}

/// Submits with `Prefer: respond-async`; the status, whether the preference was applied,
/// and the body.
async fn submit_async(world: &World, body: Value) -> (StatusCode, bool, Value) {
    let response = world
        .api
        .client
        .post(
            world
                .api
                .server
                .url(&format!("/v1/agents/{}/transactions", world.agent_id)),
        )
        .bearer_auth(&world.agent)
        .header("prefer", "respond-async")
        .json(&body)
        .send()
        .await
        .unwrap();
    let applied = response
        .headers()
        .get("preference-applied")
        .is_some_and(|value| value == "respond-async");
    (response.status(), applied, response.json().await.unwrap())
}

async fn transaction_status(api: &Api, world_agent: (&str, &str), tx: &Value) -> String {
    let (agent_id, token) = world_agent;
    let (status, record) = api
        .call(
            "GET",
            &format!("/v1/agents/{agent_id}/transactions/{}", tx["id"].as_str().unwrap()),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    record["status"].as_str().unwrap().to_owned()
}

/// The transaction's status once it is no longer "signed": the outcome keyward recorded,
/// within 10 s of `since`.
async fn settled_status(api: &Api, world_agent: (&str, &str), tx: &Value, since: std::time::Instant) -> String {
    loop {
        let status = transaction_status(api, world_agent, tx).await;
        if status != "signed" {
            return status;
        }
        assert!(since.elapsed().as_secs() < 10, "still signed after 10 s: {tx}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits, at most 10 s, until anvil has mined `count` transactions of `signer`.
async fn wait_until_mined(signer: &str, count: u64) {
    let started = std::time::Instant::now();
    while chain::nonce(signer).await < count {
        assert!(
            started.elapsed().as_secs() < 10,
            "anvil never got transaction {count} of {signer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_asynchronous_answer_comes_before_the_node_and_what_was_queued_at_a_crash_is_sent_on_restart() {
    let node = node_that_never_answers_sends().await;
    let world = world_with_chains(TestDb::sqlite(), json!({}), chain::chains_setting_at(&node, &[])).await;

    // Answered once signed and queued, before the node: "signed", as the log says.
    let (status, applied, first) = submit_async(&world, transfer(&world, "0.25")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(applied, "Preference-Applied: respond-async");
    assert_eq!(first["status"], "signed");
    // The stand-in gave the first to anvil, which mines it; keyward never heard back, so
    // the second waits behind it in its sender's queue, never sent.
    wait_until_mined(&world.signer, 1).await;
    let (status, _, second) = submit_async(&world, transfer(&world, "0.25")).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let agent = (world.agent_id.as_str(), world.agent.as_str());
    for tx in [&first, &second] {
        assert_eq!(transaction_status(&world.api, agent, tx).await, "signed");
    }
    assert_eq!(chain::nonce(&world.signer).await, 1);

    // kill -9, and start again on anvil itself.
    let data_dir = world.api.data_dir.clone();
    let env = [
        ("KEYWARD_DATABASE_URL", world.db.url()),
        ("KEYWARD_DATA_DIR", data_dir.to_str().unwrap().to_owned()),
        ("KEYWARD_CHAINS", chain::chains_setting(&[])),
    ];
    let World {
        api,
        agent_id,
        api_key,
        signer,
        recipient,
        db: _db,
        ..
    } = world;
    api.server.kill();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let api = Api::new(Server::start(&env).await, data_dir);
    // The new process listens elsewhere, so tokens name another issuer: a new one.
    let agent = api.agent_token(&api_key).await;

    // The first, which anvil already has, counts as broadcast (sent again, the node refuses
    // it as known or its nonce as used); the second is sent now. Neither is failed.
    let agent = (agent_id.as_str(), agent.as_str());
    let settled = std::time::Instant::now();
    for tx in [&first, &second] {
        assert_eq!(settled_status(&api, agent, tx, settled).await, "broadcast", "{tx}");
        assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
    }
    assert_eq!(chain::nonce(&signer).await, 2);
    assert_eq!(chain::balance(&recipient).await, ETH / 2);
}

#[tokio::test]
async fn a_send_the_node_leaves_unanswered_keeps_its_value_and_is_sent_again_until_it_answers() {
    let losing = Arc::new(AtomicBool::new(true));
    let node = node_that_loses_answers(losing.clone()).await;
    let world = world_with_chains(
        TestDb::sqlite(),
        json!({"tx_daily_limit_eth": "1.0"}),
        chain::chains_setting_at(&node, &[]),
    )
    .await;

    // anvil takes and mines it, but keyward hears nothing and cannot ask: "signed", with
    // why, and not a 502 that would invite sending it again as another transaction.
    let (status, first) = submit(&world, transfer(&world, "0.6")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["status"], "signed");
    assert!(
        first["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("did not answer")),
        "{first}"
    );
    let agent = (world.agent_id.as_str(), world.agent.as_str());
    assert_eq!(transaction_status(&world.api, agent, &first).await, "signed");

    // Its 0.6 stays held while nobody knows: another 0.6 would pass the limit.
    let (status, refused) = submit(&world, transfer(&world, "0.6")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("tx_daily_limit_eth"),
        "{refused}"
    );

    // The node answers again: sent again, it is known, so broadcast.
    losing.store(false, Ordering::SeqCst);
    let healed = std::time::Instant::now();
    assert_eq!(settled_status(&world.api, agent, &first, healed).await, "broadcast");
    assert_eq!(chain::mined_status(first["tx_hash"].as_str().unwrap()).await, 1);

    // Exactly the rest of the limit still goes, on the next nonce.
    let (status, rest) = submit(&world, transfer(&world, "0.4")).await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    assert_eq!(rest["status"], "broadcast");
    assert_eq!(rest["nonce"], 1);
    let (status, over) = submit(&world, transfer(&world, "0.1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{over}");
    assert_eq!(chain::mined_status(rest["tx_hash"].as_str().unwrap()).await, 1);
    assert_eq!(chain::balance(&world.recipient).await, ETH);
}

#[tokio::test]
async fn a_node_answer_the_log_cannot_record_yet_is_answered_signed_and_recorded_once_the_log_takes_it() {
    let world = world(TestDb::sqlite(), json!({"tx_daily_limit_eth": "1.0"}), &[]).await;
    // Disk trouble, as far as keyward can tell: the database refuses every broadcast outcome.
    world
        .db
        .execute_sql(
            "CREATE TRIGGER refuse_outcomes BEFORE INSERT ON events \
             WHEN NEW.event_type = 'transaction.broadcast' \
             BEGIN SELECT RAISE(ABORT, 'disk trouble'); END",
        )
        .await;

    // anvil takes and mines it, but its answer is not in the log: "signed", with why, and
    // not a 500 that would invite paying again with another transaction.
    let (status, tx) = submit(&world, transfer(&world, "0.6")).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    assert_eq!(tx["status"], "signed");
    assert!(
        tx["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("took the transaction") && m.contains("could not be recorded yet")),
        "{tx}"
    );
    wait_until_mined(&world.signer, 1).await;
    assert_eq!(chain::mined_status(tx["tx_hash"].as_str().unwrap()).await, 1);
    assert_eq!(chain::balance(&world.recipient).await, 6 * ETH / 10);

    // Its 0.6 stays held while the log says "signed": another 0.6 would pass the limit.
    let agent = (world.agent_id.as_str(), world.agent.as_str());
    assert_eq!(transaction_status(&world.api, agent, &tx).await, "signed");
    let (status, refused) = submit(&world, transfer(&world, "0.6")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("tx_daily_limit_eth"),
        "{refused}"
    );

    // The disk recovers: keyward, still trying, records the outcome, once.
    world.db.execute_sql("DROP TRIGGER refuse_outcomes").await;
    let recovered = std::time::Instant::now();
    let one = format!(
        "/v1/agents/{}/transactions/{}",
        world.agent_id,
        tx["id"].as_str().unwrap()
    );
    let settled = loop {
        let (status, fetched) = world.api.call("GET", &one, Some(&world.agent), None).await;
        assert_eq!(status, StatusCode::OK, "{fetched}");
        if fetched["status"] != "signed" {
            break fetched;
        }
        assert!(
            recovered.elapsed().as_secs() < 15,
            "still signed 15 s after the disk recovered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(settled["status"], "broadcast", "{settled}");
    assert!(settled.get("error_message").is_none(), "{settled}");
    assert_eq!(audit_trail(&world, "transaction.broadcast").await["count"], 1);

    // Exactly the rest of the limit goes, on the next nonce.
    let (status, rest) = submit(&world, transfer(&world, "0.4")).await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    assert_eq!(
        (rest["status"].as_str(), rest["nonce"].as_u64()),
        (Some("broadcast"), Some(1))
    );
    assert_eq!(chain::mined_status(rest["tx_hash"].as_str().unwrap()).await, 1);
    assert_eq!(chain::balance(&world.recipient).await, ETH);

    // Each failed attempt was logged, without the signed transaction.
    let log = std::fs::read_to_string(world.api.data_dir.join("server.log")).unwrap();
    assert!(log.contains("cannot record broadcast outcomes yet"), "{log}");
    let signed = tx["signed_tx"].as_str().unwrap().trim_start_matches("0x");
    assert!(!log.contains(signed), "a log line holds the signed transaction");
}

#[tokio::test]
async fn two_replicas_sending_one_unsettled_transaction_record_one_outcome() {
    // The first process's send, then each replica's, before any is answered.
    let (node, sends) = node_that_answers_sends_after(3).await;
    let world = world_with_chains(
        TestDb::postgres().await,
        json!({}),
        chain::chains_setting_at(&node, &[]),
    )
    .await;
    let (status, _, tx) = submit_async(&world, transfer(&world, "0.25")).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    wait_until_mined(&world.signer, 1).await;

    // Stopped before it heard back; two replicas start on its log, and each sends again
    // what the log holds as signed without an outcome.
    let data_dir = world.api.data_dir.clone();
    let chains = chain::chains_setting_at(&node, &[]);
    let env = [
        ("KEYWARD_DATABASE_URL", world.db.url()),
        ("KEYWARD_DATA_DIR", data_dir.to_str().unwrap().to_owned()),
        ("KEYWARD_CHAINS", chains),
        ("KEYWARD_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("KEYWARD_LOG", "info".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let World {
        api,
        agent_id,
        agent,
        human,
        recipient,
        db: _db,
        ..
    } = world;
    api.server.kill();
    // Both start at once: one started after the other has heard back would find the
    // outcome recorded and rightly send nothing.
    let start = |name: &'static str| {
        let (data_dir, env) = (&data_dir, &env);
        async move {
            let log_path = data_dir.join(format!("replica-{name}.log"));
            let log = std::fs::File::create(&log_path).unwrap();
            let server = Server::start_with_stderr(env, log).await;
            (Api::new(server, data_dir.clone()), log_path)
        }
    };
    let replicas = futures::future::join_all(["b", "c"].map(start)).await;

    // Both heard the node has it; one outcome is recorded, and the other replica takes it
    // as recorded, without an error.
    for (replica, _) in &replicas {
        let started = std::time::Instant::now();
        let agent = (agent_id.as_str(), agent.as_str());
        assert_eq!(settled_status(replica, agent, &tx, started).await, "broadcast");
    }
    let (_, trail) = replicas[0]
        .0
        .call(
            "GET",
            "/v1/audit/events?action=transaction.broadcast",
            Some(&human),
            None,
        )
        .await;
    assert_eq!(trail["count"], 1, "{trail}");
    for (_, log_path) in &replicas {
        let log = std::fs::read_to_string(log_path).unwrap();
        assert!(!log.contains("ERROR"), "{log}");
    }
    assert_eq!(*sends.borrow(), 3, "each replica sent it again before hearing back");
    assert_eq!(chain::balance(&recipient).await, ETH / 4);
}

/// The history read from the log is shown only to the agent and its own humans: another
/// organization's human, and another organization's agent, learn nothing of it, not even
/// that the transaction exists.
#[tokio::test]
async fn another_organizations_human_or_agent_sees_none_of_an_agents_transactions() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let (status, tx) = submit(&world, transfer(&world, "0.1")).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    let eve = world.api.signup("eve@example.com", "correct horse").await;
    let (_, created) = world
        .api
        .call("POST", "/v1/agents", Some(&eve), Some(json!({"name": "eve-bot"})))
        .await;
    let eves_agent = world.api.agent_token(created["api_key"].as_str().unwrap()).await;
    let list = format!("/v1/agents/{}/transactions", world.agent_id);
    let one = format!("{list}/{}?include_signed_tx=true", tx["id"].as_str().unwrap());
    for outsider in [&eve, &eves_agent] {
        for path in [&list, &one] {
            let (status, body) = world.api.call("GET", path, Some(outsider), None).await;
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
                "{path}: {status} {body}"
            );
            assert!(!body.to_string().contains(tx["tx_hash"].as_str().unwrap()), "{body}");
        }
    }
    // Its own human still sees it.
    assert_eq!(transactions_listed(&world, &world.human).await[0]["id"], tx["id"]);
}
