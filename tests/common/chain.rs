//! The anvil node of the test run: fresh funded accounts per test, balances, receipts.

use std::time::Duration;

use serde_json::{Value, json};

/// The node `scripts/test` started for the run.
pub fn anvil_url() -> String {
    std::env::var("KEYWARD_TEST_ANVIL_URL")
        .expect("KEYWARD_TEST_ANVIL_URL names the run's anvil (scripts/test starts one)")
}

/// keyward's KEYWARD_CHAINS for the run's anvil, plus `extra` chains.
pub fn chains_setting(extra: &[Value]) -> String {
    chains_setting_at(&anvil_url(), extra)
}

/// [`chains_setting`] with the anvil chain reached at `rpc_url` (a stand-in in front of
/// the node).
pub fn chains_setting_at(rpc_url: &str, extra: &[Value]) -> String {
    let mut chains = vec![json!({
        "name": "anvil", "display_name": "Anvil", "chain_id": 31337, "rpc_url": rpc_url,
        "native_currency": "ETH", "is_testnet": true,
    })];
    chains.extend(extra.iter().cloned());
    Value::Array(chains).to_string()
}

pub async fn rpc(method: &str, params: Value) -> Value {
    let response: Value = reqwest::Client::new()
        .post(anvil_url())
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(response.get("error").is_none(), "{method}: {response}");
    response["result"].clone()
}

fn quantity(value: &Value) -> u128 {
    u128::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// A new private key (0x hex) and its lower-case address; tests never share accounts.
pub fn fresh_account() -> (String, String) {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if let Ok(key) = intents::PrivateKey::parse_hex(&hex) {
            return (format!("0x{hex}"), key.address().to_string().to_lowercase());
        }
    }
}

/// A fresh address nobody holds a key of here: a recipient whose balance starts at zero.
pub fn fresh_address() -> String {
    fresh_account().1
}

pub async fn set_balance(address: &str, wei: u128) {
    rpc("anvil_setBalance", json!([address, format!("0x{wei:x}")])).await;
}

pub async fn balance(address: &str) -> u128 {
    quantity(&rpc("eth_getBalance", json!([address, "latest"])).await)
}

/// The number of the chain's latest block.
pub async fn block_number() -> u64 {
    quantity(&rpc("eth_blockNumber", json!([])).await) as u64
}

pub async fn nonce(address: &str) -> u64 {
    quantity(&rpc("eth_getTransactionCount", json!([address, "latest"])).await) as u64
}

/// Waits until the transaction is mined; its receipt's status (1 for success).
pub async fn mined_status(tx_hash: &str) -> u64 {
    for _ in 0..300 {
        let receipt = rpc("eth_getTransactionReceipt", json!([tx_hash])).await;
        if !receipt.is_null() {
            return quantity(&receipt["status"]) as u64;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{tx_hash} was not mined within 30 s");
}

pub const ETH: u128 = 1_000_000_000_000_000_000;
