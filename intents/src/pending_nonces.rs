//! The node's pending nonce per chain and address, remembered briefly. keyward holds the
//! nonces it reserves in its log; the node's count matters only for what happened outside
//! keyward (the key's earlier use, another wallet with the same key). Asking the node on
//! every submission costs a round trip each; asking at most once per `fresh_for`, and
//! again after a failed broadcast, costs almost nothing and heals after one failure: a
//! transaction refused for a stale nonce releases its nonce, and the next one asks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy_primitives::Address;

use crate::rpc::{Rpc, RpcError};

#[derive(Debug)]
pub struct PendingNonces {
    fresh_for: Duration,
    seen: Mutex<HashMap<(u64, Address), (u64, Instant)>>,
}

impl PendingNonces {
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            fresh_for,
            seen: Mutex::default(),
        }
    }

    /// The node's pending nonce for `address` on `chain_id`, as seen within `fresh_for`.
    pub async fn get(&self, rpc: &Rpc, chain_id: u64, address: Address) -> Result<u64, RpcError> {
        if let Some(&(nonce, at)) = self.locked().get(&(chain_id, address))
            && at.elapsed() < self.fresh_for
        {
            return Ok(nonce);
        }
        let nonce = rpc.pending_nonce(address).await?;
        self.locked().insert((chain_id, address), (nonce, Instant::now()));
        Ok(nonce)
    }

    /// Forgets what the node said: the next submission asks again.
    pub fn forget(&self, chain_id: u64, address: Address) {
        self.locked().remove(&(chain_id, address));
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, Address), (u64, Instant)>> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
