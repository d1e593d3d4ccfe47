//! Sending reserved transactions to their chain, per sender, in the order they were
//! signed. A node holds a transaction whose nonce runs ahead of the ones it has as
//! "queued" and promotes it later, at a cost and, on a busy node, at the risk of dropping
//! it; so one task per (chain, sender) sends everything queued since its last send as one
//! JSON-RPC batch, in nonce order, and records every outcome in one append.
//!
//! The task is the request's no longer: a client that hangs up after its reservation
//! still has its transaction sent and the outcome recorded, exactly one per transaction.

use domain::change::Change;
use domain::event::ExpectedVersion;
use domain::events::{Event, TransactionBroadcast, TransactionFailed};
use domain::transaction::transaction_stream;
use domain::{AgentId, Metadata};
use intents::{Address, B256, Rpc, RpcError, SignedTx};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::AppState;
use super::lanes::{Drain, Lanes};
use super::problem::ApiError;
use crate::store::StreamAppend;

/// A reserved transaction, signed, and what its outcome is recorded with.
pub struct Outgoing {
    pub rpc: Rpc,
    pub agent_id: AgentId,
    pub tx_id: Uuid,
    pub chain_id: u64,
    pub signed: SignedTx,
    pub metadata: Metadata,
}

/// Answers once the broadcast's outcome (sent or failed) is in the read models.
pub type Receipt = oneshot::Receiver<Result<(), ApiError>>;

type Queued = (Outgoing, oneshot::Sender<Result<(), ApiError>>);

/// Every sender's lane within this replica.
#[derive(Default)]
pub struct Broadcasts {
    lanes: Lanes<(u64, Address), Queued>,
}

/// Queues `outgoing` behind what its sender has queued; its receipt.
pub fn send(state: &AppState, outgoing: Outgoing) -> Receipt {
    let (receipt, received) = oneshot::channel();
    let sender = (outgoing.chain_id, outgoing.signed.from);
    if let Some(drain) = state.broadcasts.lanes.queue(sender, [(outgoing, receipt)]) {
        tokio::spawn(send_batches(state.clone(), drain));
    }
    received
}

/// Sends batch after batch until nothing is queued. Each batch is sent only after the
/// one before it was answered; recording the outcomes overlaps the next send.
async fn send_batches(state: AppState, mut drain: Drain<Queued>) {
    while let Some(batch) = drain.next_batch() {
        let Some((first, _)) = batch.first() else {
            continue;
        };
        let rpc = first.rpc.clone();
        let raws: Vec<&[u8]> = batch
            .iter()
            .map(|(outgoing, _)| outgoing.signed.raw.as_slice())
            .collect();
        let outcomes = rpc.send_raw_batch(&raws).await;
        if outcomes.iter().any(Result::is_err) {
            // The node's count is asked again: a nonce it refused is reserved anew.
            state.pending_nonces.forget(first.chain_id, first.signed.from);
        }
        tokio::spawn(record(state.clone(), batch, outcomes));
    }
}

/// Records each transaction's outcome in its own stream, which it starts, all in one
/// append; then answers each receipt.
async fn record(state: AppState, batch: Vec<Queued>, outcomes: Vec<Result<B256, RpcError>>) {
    let parts: Result<Vec<StreamAppend>, ApiError> = batch
        .iter()
        .zip(&outcomes)
        .map(|((outgoing, _), outcome)| {
            let (tx_id, agent_id) = (outgoing.tx_id, outgoing.agent_id);
            let event: Event = match outcome {
                Ok(_) => TransactionBroadcast { tx_id, agent_id }.into(),
                Err(error) => TransactionFailed {
                    tx_id,
                    agent_id,
                    error: error.to_string(),
                }
                .into(),
            };
            let change = Change::new(transaction_stream(tx_id), ExpectedVersion::NoStream, event);
            crate::commands::encode(change, &outgoing.metadata).map_err(ApiError::from)
        })
        .collect();
    let recorded = match parts {
        Ok(parts) => state.commands.append(parts).await.map(|_| ()).map_err(ApiError::from),
        Err(error) => Err(error),
    };
    if let Err(error) = &recorded {
        tracing::error!(%error, transactions = batch.len(), "cannot record broadcast outcomes");
    }
    for (_, receipt) in batch {
        // A request that gave up no longer needs its receipt.
        let _ = receipt.send(recorded.clone());
    }
}
