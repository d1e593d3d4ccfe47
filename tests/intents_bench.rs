//! Benchmark, not a test (`#[ignore]`, asserts nothing about time): transactions per second
//! through the proxy against signing locally and sending the same kind of raw transactions
//! straight to anvil. Run it with a release build:
//!
//!   scripts/test --release --run-ignored only -E 'binary(intents_bench)' --no-capture
//!
//! KEYWARD_BENCH_TRANSACTIONS sets how many transfers each side sends (default 2000). Each
//! side's rate is given twice: until the node accepted its transactions into its pool, and
//! until it mined them. It also prints the keyward process's CPU time per proxied transfer
//! (user + system, from /proc, 10 ms resolution) and how many transfers anvil packed into
//! each block on either side: a node that mines on every arrival does much of its work per
//! block.

mod common;

use std::time::{Duration, Instant};

use common::chain::{self, ETH};
use common::{Api, TestDb};
use futures::StreamExt;
use intents::{Fee, PrivateKey, UnsignedTx};
use reqwest::StatusCode;
use serde_json::json;

const CONCURRENCY: usize = 16;
const GAS_PRICE: u128 = 5_000_000_000;

#[tokio::test]
#[ignore = "a benchmark: run it on purpose, in release"]
async fn proxy_versus_direct_transactions_per_second() {
    let transactions: usize = std::env::var("KEYWARD_BENCH_TRANSACTIONS").map_or(2000, |n| n.parse().unwrap());
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_CHAINS", &chain::chains_setting(&[]))]).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "bench"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let (proxy_key, proxy_signer) = chain::fresh_account();
    chain::set_balance(&proxy_signer, 1_000 * ETH).await;
    api.call(
        "PUT",
        &format!("/v1/vaults/{vault}/secrets/keys/anvil-signer"),
        Some(&human),
        Some(json!({"value": proxy_key, "type": "private_key"})),
    )
    .await;
    let (_, created) = api
        .call(
            "POST",
            "/v1/agents",
            Some(&human),
            Some(json!({"name": "bench", "intents_api_enabled": true})),
        )
        .await;
    let agent_id = created["agent"]["id"].as_str().unwrap().to_owned();
    api.call(
        "POST",
        &format!("/v1/vaults/{vault}/policies"),
        Some(&human),
        Some(json!({"secret_path_pattern": "keys/*", "principal_type": "agent", "principal_id": agent_id, "permissions": ["read"]})),
    )
    .await;
    let (_, token) = api
        .call(
            "POST",
            "/v1/auth/agent-token",
            None,
            Some(json!({"api_key": created["api_key"]})),
        )
        .await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let recipient = chain::fresh_address();
    let url = api.server.url(&format!("/v1/agents/{agent_id}/transactions"));
    let body = json!({"chain": "anvil", "to": recipient, "value": "0.000001", "gas_price": GAS_PRICE.to_string()});

    let proxy_turn = || async {
        let statuses: Vec<StatusCode> = futures::stream::iter(0..transactions / 2)
            .map(|_| {
                let request = api.client.post(&url).bearer_auth(&token).json(&body);
                async move { request.send().await.unwrap().status() }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s == StatusCode::CREATED), "{statuses:?}");
    };

    let (direct_key, direct_signer) = chain::fresh_account();
    chain::set_balance(&direct_signer, 1_000 * ETH).await;
    let key = PrivateKey::parse_hex(&direct_key).unwrap();
    let to = recipient.parse().unwrap();
    let client = reqwest::Client::new();
    let direct_turn = |first_nonce: u64| {
        let (key, client) = (&key, &client);
        async move {
            let accepted: Vec<bool> = futures::stream::iter(first_nonce..first_nonce + (transactions / 2) as u64)
                .map(|nonce| {
                    let raw = UnsignedTx {
                        chain_id: 31337,
                        nonce,
                        to,
                        value: intents::U256::from(1_000_000_000_000u128),
                        data: Default::default(),
                        gas_limit: 21_000,
                        fee: Fee::Legacy { gas_price: GAS_PRICE },
                    }
                    .sign(key)
                    .unwrap()
                    .raw;
                    let request = client.post(chain::anvil_url()).json(&json!({
                        "jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
                        "params": [format!("0x{}", intents::hex::encode(raw))],
                    }));
                    async move {
                        let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
                        answer.get("result").is_some()
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            assert!(accepted.iter().all(|ok| *ok));
        }
    };

    // anvil slows as its chain grows: the two sides take turns, proxy-direct-direct-proxy,
    // so neither runs on a younger chain than the other. anvil answers a send once the
    // transaction is in its pool and mines behind it: each turn ends when its last
    // transaction is mined, so no turn inherits the mining of the one before.
    let mut proxy = Side::default();
    let mut direct = Side::default();
    let mut keyward_cpu = 0.0;
    for (round, proxy_first) in [true, false].into_iter().enumerate() {
        for proxied in [proxy_first, !proxy_first] {
            let sent_by_then = ((round + 1) * transactions / 2) as u64;
            let cpu_before = api.server.cpu_seconds();
            let first_block = chain::block_number().await;
            let started = Instant::now();
            let (side, signer) = if proxied {
                proxy_turn().await;
                keyward_cpu += api.server.cpu_seconds() - cpu_before;
                (&mut proxy, &proxy_signer)
            } else {
                direct_turn((round * transactions / 2) as u64).await;
                (&mut direct, &direct_signer)
            };
            side.accepted_seconds += started.elapsed().as_secs_f64();
            while chain::nonce(signer).await < sent_by_then {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            side.mined_seconds += started.elapsed().as_secs_f64();
            side.blocks += chain::block_number().await - first_block;
        }
    }
    let transactions_f = transactions as f64;
    println!(
        "intents bench: {transactions} transfers, {CONCURRENCY} at a time: \
         mined: proxy {:.0} tx/s, direct {:.0} tx/s, ratio {:.2}; \
         accepted by the node: proxy {:.0} tx/s, direct {:.0} tx/s, ratio {:.2}; \
         keyward CPU {:.0} µs per proxied transfer; \
         anvil packed {:.1} transfers per block proxied, {:.1} direct",
        transactions_f / proxy.mined_seconds,
        transactions_f / direct.mined_seconds,
        direct.mined_seconds / proxy.mined_seconds,
        transactions_f / proxy.accepted_seconds,
        transactions_f / direct.accepted_seconds,
        direct.accepted_seconds / proxy.accepted_seconds,
        keyward_cpu / transactions_f * 1e6,
        transactions_f / proxy.blocks as f64,
        transactions_f / direct.blocks as f64,
    );
}

/// One side's turns, summed.
#[derive(Default)]
struct Side {
    /// Until the node accepted the last transaction of each turn.
    accepted_seconds: f64,
    /// Until the node mined it.
    mined_seconds: f64,
    blocks: u64,
}
