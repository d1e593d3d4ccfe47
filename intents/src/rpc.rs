//! The few JSON-RPC calls the proxy makes to a chain's node.

use alloy_primitives::{Address, B256, U256};
use serde_json::{Value, json};

use crate::simulation::{self, Call, Simulated};

#[derive(Debug, Clone)]
pub struct Rpc {
    url: String,
    client: reqwest::Client,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// The node could not be reached or answered with something that is not JSON-RPC.
    #[error("the chain's RPC node is unavailable: {0}")]
    Unavailable(String),
    /// The node refused the call (a revert, a nonce too low, an underpriced transaction).
    #[error("the chain refused: {0}")]
    Refused(String),
}

fn quantity(value: &Value) -> Result<u128, RpcError> {
    value
        .as_str()
        .and_then(|hex| hex.strip_prefix("0x"))
        .and_then(|hex| u128::from_str_radix(hex, 16).ok())
        .ok_or_else(|| RpcError::Unavailable(format!("not a quantity: {value}")))
}

impl Rpc {
    pub fn new(url: &str, client: reqwest::Client) -> Self {
        Self {
            url: url.to_owned(),
            client,
        }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        outcome(&self.post(&request).await?)
    }

    /// The next nonce of `address`, counting transactions in the node's pool.
    pub async fn pending_nonce(&self, address: Address) -> Result<u64, RpcError> {
        let nonce = quantity(
            &self
                .call("eth_getTransactionCount", json!([address.to_string(), "pending"]))
                .await?,
        )?;
        u64::try_from(nonce).map_err(|_| RpcError::Unavailable("nonce out of range".into()))
    }

    /// The native balance of `address` at the latest block, in wei.
    pub async fn balance(&self, address: Address) -> Result<U256, RpcError> {
        let balance = self
            .call("eth_getBalance", json!([address.to_string(), "latest"]))
            .await?;
        balance
            .as_str()
            .and_then(|hex| hex.parse().ok())
            .ok_or_else(|| RpcError::Unavailable(format!("not a balance: {balance}")))
    }

    pub async fn gas_price(&self) -> Result<u128, RpcError> {
        quantity(&self.call("eth_gasPrice", json!([])).await?)
    }

    pub async fn estimate_gas(&self, from: Address, to: Address, value: u128, data: &[u8]) -> Result<u64, RpcError> {
        let call = json!({
            "from": from.to_string(), "to": to.to_string(),
            "value": format!("0x{value:x}"),
            "data": format!("0x{}", hex_of(data)),
        });
        let gas = quantity(&self.call("eth_estimateGas", json!([call])).await?)?;
        u64::try_from(gas).map_err(|_| RpcError::Unavailable("gas out of range".into()))
    }

    /// Runs `calls` one after another on the latest state without sending anything; a
    /// revert is a result, not an error. `Refused` when the bundle cannot run at all (a
    /// sender cannot pay).
    pub async fn simulate(&self, calls: &[Call]) -> Result<Vec<Simulated>, RpcError> {
        let answer = self.call("eth_simulateV1", simulation::request(calls)).await?;
        simulation::results(&answer, calls.len())
    }

    /// Whether the node has the transaction with `hash`, in its pool or mined.
    pub async fn knows_transaction(&self, hash: B256) -> Result<bool, RpcError> {
        let found = self.call("eth_getTransactionByHash", json!([hash.to_string()])).await?;
        Ok(!found.is_null())
    }

    /// Broadcasts a signed transaction; the node's hash for it.
    pub async fn send_raw(&self, raw: &[u8]) -> Result<B256, RpcError> {
        let hash = self.call("eth_sendRawTransaction", raw_param(raw)).await?;
        transaction_hash(&hash)
    }

    /// Broadcasts signed transactions in one JSON-RPC batch, in the order given (a node
    /// takes one sender's nonces best in order); each one's outcome, in the same order.
    /// One transaction goes as a plain call; to a node that takes no batches, each does.
    pub async fn send_raw_batch(&self, raws: &[&[u8]]) -> Vec<Result<B256, RpcError>> {
        if let [raw] = raws {
            return vec![self.send_raw(raw).await];
        }
        let batch: Vec<Value> = raws
            .iter()
            .enumerate()
            .map(|(id, raw)| json!({"jsonrpc": "2.0", "id": id, "method": "eth_sendRawTransaction", "params": raw_param(raw)}))
            .collect();
        match self.post(&Value::Array(batch)).await {
            Ok(Value::Array(answers)) => {
                // Answers may come in any order; they are matched by id.
                let mut outcomes: Vec<Result<B256, RpcError>> = (0..raws.len())
                    .map(|_| {
                        Err(RpcError::Unavailable(
                            "the node's batch answer left this transaction out".into(),
                        ))
                    })
                    .collect();
                for answer in answers {
                    let slot = answer["id"]
                        .as_u64()
                        .and_then(|id| outcomes.get_mut(usize::try_from(id).ok()?));
                    if let Some(slot) = slot {
                        *slot = outcome(&answer).and_then(|hash| transaction_hash(&hash));
                    }
                }
                outcomes
            }
            // A node that takes no batches answers with one error: nothing was sent, so
            // each goes on its own, still in order.
            Ok(_) => {
                let mut outcomes = Vec::with_capacity(raws.len());
                for raw in raws {
                    outcomes.push(self.send_raw(raw).await);
                }
                outcomes
            }
            Err(error) => vec![Err(error); raws.len()],
        }
    }

    async fn post(&self, request: &Value) -> Result<Value, RpcError> {
        self.client
            .post(&self.url)
            .json(request)
            .send()
            .await
            .map_err(|e| RpcError::Unavailable(e.without_url().to_string()))?
            .json()
            .await
            .map_err(|e| RpcError::Unavailable(e.without_url().to_string()))
    }
}

fn raw_param(raw: &[u8]) -> Value {
    json!([format!("0x{}", hex_of(raw))])
}

fn transaction_hash(hash: &Value) -> Result<B256, RpcError> {
    hash.as_str()
        .and_then(|hash| hash.parse().ok())
        .ok_or_else(|| RpcError::Unavailable(format!("not a transaction hash: {hash}")))
}

/// A JSON-RPC answer's result, or its error as a refusal.
fn outcome(response: &Value) -> Result<Value, RpcError> {
    if let Some(error) = response.get("error") {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("unknown error");
        return Err(RpcError::Refused(message.to_owned()));
    }
    response
        .get("result")
        .cloned()
        .ok_or_else(|| RpcError::Unavailable("a response with neither result nor error".into()))
}

pub fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One HTTP client for every chain's node, so connections are pooled and reused.
#[derive(Debug, Clone)]
pub struct RpcPool {
    client: reqwest::Client,
}

impl RpcPool {
    pub fn new() -> Result<Self, RpcError> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .map_err(|e| RpcError::Unavailable(e.to_string()))?;
        Ok(Self { client })
    }

    pub fn rpc(&self, url: &str) -> Rpc {
        Rpc::new(url, self.client.clone())
    }
}
