//! Sending reserved transactions to their chain, per sender, in the order they were
//! signed. A node holds a transaction whose nonce runs ahead of the ones it has as
//! "queued" and promotes it later, at a cost and, on a busy node, at the risk of dropping
//! it; so one task per (chain, sender) sends everything queued since its last send as one
//! JSON-RPC batch, in nonce order, and records every outcome in one append.
//!
//! The task is the request's no longer: a client that hangs up after its reservation
//! still has its transaction sent and the outcome recorded, exactly one per transaction.

use std::collections::HashSet;

use chrono::Utc;
use domain::change::Change;
use domain::event::ExpectedVersion;
use domain::events::{Event, TransactionBroadcast, TransactionFailed};
use domain::transaction::{TransactionRecord, transaction_stream};
use domain::{AgentId, Metadata, StreamId};
use intents::{Address, B256, Rpc, RpcError, SignedTx};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::AppState;
use super::chains::enabled_chains;
use super::lanes::{Drain, Lanes};
use super::problem::ApiError;
use crate::commands::CommandError;
use crate::store::{AppendError, StreamAppend};

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

/// Sends again every transaction the log holds as signed for broadcast but without an
/// outcome: keyward stopped after reserving it and before recording what the node said,
/// perhaps before sending it at all. Queued before any request is served, each sender's
/// in nonce order; the outcome is recorded as for any broadcast, a transaction the node
/// already has counting as broadcast. How many were queued.
pub fn resume_unsettled(state: &AppState) -> usize {
    let mut unsettled: Vec<TransactionRecord> = state
        .projector
        .read(|models| models.transactions.unsettled().cloned().collect());
    unsettled.sort_by(|a, b| (a.chain_id, &a.from, a.nonce).cmp(&(b.chain_id, &b.from, b.nonce)));
    let chains = enabled_chains(state);
    let now = Utc::now();
    let mut queued = 0;
    for record in unsettled {
        let Some(chain) = chains.iter().find(|chain| chain.settings.chain_id == record.chain_id) else {
            tracing::warn!(tx_id = %record.id, chain_id = record.chain_id, "a transaction signed before the last stop waits for its chain to be enabled again");
            continue;
        };
        let Some(signed) = signed_of(&record) else {
            tracing::error!(tx_id = %record.id, "a signed transaction in the log does not parse; it is not sent");
            continue;
        };
        drop(send(
            state,
            Outgoing {
                rpc: state.rpc.rpc(&chain.settings.rpc_url),
                agent_id: record.agent_id,
                tx_id: record.id,
                chain_id: record.chain_id,
                signed,
                metadata: Metadata::system(now),
            },
        ));
        queued += 1;
    }
    queued
}

/// The signed transaction a record holds.
fn signed_of(record: &TransactionRecord) -> Option<SignedTx> {
    Some(SignedTx {
        from: record.from.parse().ok()?,
        hash: record.tx_hash.parse().ok()?,
        raw: intents::hex::decode(&record.signed_tx).ok()?,
    })
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
        let outcomes = confirmed(&rpc, &batch, rpc.send_raw_batch(&raws).await).await;
        if outcomes.iter().any(Result::is_err) {
            // The node's count is asked again: a nonce it refused is reserved anew.
            state.pending_nonces.forget(first.chain_id, first.signed.from);
        }
        tokio::spawn(record(state.clone(), batch, outcomes));
    }
}

/// The outcomes of a batch, each failed send checked with the node: a send can fail after
/// the node took the transaction (an answer lost to a timeout), or because it already has
/// it (sent again after a restart: "already known", or "nonce too low" once mined). A
/// transaction the node has was broadcast, whatever its send said; recording it as failed
/// would release value the chain spends.
async fn confirmed(
    rpc: &Rpc,
    batch: &[Queued],
    mut outcomes: Vec<Result<B256, RpcError>>,
) -> Vec<Result<B256, RpcError>> {
    for ((outgoing, _), outcome) in batch.iter().zip(&mut outcomes) {
        let hash = outgoing.signed.hash;
        if outcome.is_err() && rpc.knows_transaction(hash).await == Ok(true) {
            *outcome = Ok(hash);
        }
    }
    outcomes
}

/// Records each transaction's outcome in its own stream, which it starts, all in one
/// append; then answers each receipt. An outcome another replica recorded first (it sent
/// the same transaction again after a restart) stands, and the others are recorded
/// without it.
async fn record(state: AppState, batch: Vec<Queued>, outcomes: Vec<Result<B256, RpcError>>) {
    let mut recorded_elsewhere = HashSet::new();
    let recorded = loop {
        let parts = match outcome_events(&batch, &outcomes, &recorded_elsewhere) {
            Ok(parts) if parts.is_empty() => break Ok(()),
            Ok(parts) => parts,
            Err(error) => break Err(error),
        };
        match state.commands.append(parts).await {
            Err(CommandError::Append(AppendError::WrongExpectedVersion { stream, .. }))
                if recorded_elsewhere.insert(stream.clone()) => {}
            appended => break appended.map(|_| ()).map_err(ApiError::from),
        }
    };
    if let Err(error) = &recorded {
        tracing::error!(%error, transactions = batch.len(), "cannot record broadcast outcomes");
    }
    for (_, receipt) in batch {
        // A request that gave up no longer needs its receipt.
        let _ = receipt.send(recorded.clone());
    }
}

/// Each transaction's outcome, as the event that starts its stream, but for the streams in
/// `skipped`.
fn outcome_events(
    batch: &[Queued],
    outcomes: &[Result<B256, RpcError>],
    skipped: &HashSet<StreamId>,
) -> Result<Vec<StreamAppend>, ApiError> {
    batch
        .iter()
        .zip(outcomes)
        .map(|((outgoing, _), outcome)| (transaction_stream(outgoing.tx_id), outgoing, outcome))
        .filter(|(stream, _, _)| !skipped.contains(stream))
        .map(|(stream, outgoing, outcome)| {
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
            let change = Change::new(stream, ExpectedVersion::NoStream, event);
            crate::commands::encode(change, &outgoing.metadata).map_err(ApiError::from)
        })
        .collect()
}
