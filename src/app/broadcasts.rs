//! Sending reserved transactions to their chain, per sender, in the order they were
//! signed. A node holds a transaction whose nonce runs ahead of the ones it has as
//! "queued" and promotes it later, at a cost and, on a busy node, at the risk of dropping
//! it; so one task per (chain, sender) sends everything queued since its last send as one
//! JSON-RPC batch, in nonce order, and records every outcome in one append.
//!
//! The task is the request's no longer: a client that hangs up after its reservation
//! still has its transaction sent and the outcome recorded, exactly one per transaction.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use domain::change::Change;
use domain::event::ExpectedVersion;
use domain::events::{Event, TransactionBroadcast, TransactionFailed};
use domain::transaction::{TransactionRecord, transaction_stream};
use domain::{AgentId, Metadata, OrgId, StreamId};
use intents::{Address, B256, Rpc, RpcError, SignedTx};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::AppError;
use super::AppState;
use super::chains::enabled_chains;
use super::lanes::{Drain, Lanes};
use crate::app::commands::CommandError;
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

/// Answers once the broadcast's outcome (sent or failed) is in the read models, or once
/// the node could not be asked whether it took the transaction.
pub type Receipt = oneshot::Receiver<Result<Delivery, AppError>>;

/// How far a broadcast got when its receipt was answered.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The outcome is in the log: broadcast, or failed with nothing spent.
    Recorded,
    /// The send went unanswered and the node could not say whether it has the
    /// transaction: it stays signed, holding its value and nonce, and is sent again
    /// until the node answers. The error the node's silence came with.
    Unanswered(String),
    /// The node answered, but its answer could not be recorded yet (the log's database
    /// failed): the transaction stays signed, holding its value and nonce, and keyward
    /// keeps trying to record the answer. `None` when the node took the transaction, else
    /// why it refused it.
    Unrecorded { refused: Option<String> },
}

/// A transaction waiting to be sent, and the request waiting for its receipt (none for
/// one sent again: its receipt was answered the first time).
type Queued = (Outgoing, Option<oneshot::Sender<Result<Delivery, AppError>>>);

/// The pause before an unanswered transaction is sent again, or outcomes the log refused
/// are appended again, doubling up to the longest.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(10);

/// Every sender's lane within this replica.
#[derive(Default)]
pub struct Broadcasts {
    lanes: Lanes<(u64, Address), Queued>,
}

/// Queues `outgoing` behind what its sender has queued; its receipt.
pub fn send(state: &AppState, outgoing: Outgoing) -> Receipt {
    let (receipt, received) = oneshot::channel();
    let sender = (outgoing.chain_id, outgoing.signed.from);
    if let Some(drain) = state.broadcasts.lanes.queue(sender, [(outgoing, Some(receipt))]) {
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
    // With its agent's org: the outcome is recorded by keyward itself, in the org's trail.
    let mut unsettled: Vec<(TransactionRecord, Option<OrgId>)> = state.projector.read(|models| {
        models
            .transactions
            .unsettled()
            .map(|record| {
                let org = models.directory.agent(record.agent_id).map(|agent| agent.org_id);
                (record.clone(), org)
            })
            .collect()
    });
    unsettled.sort_by(|(a, _), (b, _)| (a.chain_id, &a.from, a.nonce).cmp(&(b.chain_id, &b.from, b.nonce)));
    let chains = enabled_chains(state);
    let now = Utc::now();
    let mut queued = 0;
    for (record, org) in unsettled {
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
                metadata: Metadata {
                    org_id: org.map(|org| org.0),
                    ..Metadata::system(now)
                },
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

/// What the node made of a transaction sent to it.
enum Settlement {
    /// The node has it: broadcast.
    Taken,
    /// The node refused it and does not have it: failed, nothing spent.
    Refused(RpcError),
    /// The send went unanswered and the node could not be asked: unknown.
    Unanswered(RpcError),
}

/// Sends batch after batch until nothing is queued. Each batch is sent only after the
/// one before it was answered; recording the outcomes overlaps the next send. What went
/// unanswered is sent again, after a pause, ahead of anything queued since: its nonces
/// come first, and until the node answers, the lane is not handed back.
async fn send_batches(state: AppState, mut drain: Drain<Queued>) {
    let mut unanswered: Vec<Queued> = Vec::new();
    let mut pause = FIRST_RETRY;
    loop {
        let batch = if unanswered.is_empty() {
            pause = FIRST_RETRY;
            match drain.next_batch() {
                Some(batch) => batch,
                None => return,
            }
        } else {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_RETRY);
            let mut batch = std::mem::take(&mut unanswered);
            batch.extend(drain.take_waiting());
            batch
        };
        let Some((first, _)) = batch.first() else {
            continue;
        };
        let rpc = first.rpc.clone();
        let raws: Vec<&[u8]> = batch
            .iter()
            .map(|(outgoing, _)| outgoing.signed.raw.as_slice())
            .collect();
        let started = std::time::Instant::now();
        let answered = rpc.send_raw_batch(&raws).await;
        crate::telemetry::record_node_send(started.elapsed());
        let settlements = settled(&rpc, &batch, answered).await;
        if settlements
            .iter()
            .any(|settlement| !matches!(settlement, Settlement::Taken))
        {
            // The node's count is asked again: a nonce it refused is reserved anew.
            state.pending_nonces.forget(first.chain_id, first.signed.from);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for (mut queued, settlement) in batch.into_iter().zip(settlements) {
            crate::telemetry::record_intent(match &settlement {
                Settlement::Taken => "taken",
                Settlement::Refused(_) => "refused",
                Settlement::Unanswered(_) => "unanswered",
            });
            match settlement {
                Settlement::Taken => outcomes.push((queued, Ok(()))),
                Settlement::Refused(error) => outcomes.push((queued, Err(error))),
                Settlement::Unanswered(error) => {
                    tracing::warn!(tx_id = %queued.0.tx_id, %error, "the node did not answer a send; it is sent again");
                    if let Some(receipt) = queued.1.take() {
                        // A request that gave up no longer needs its receipt.
                        let _ = receipt.send(Ok(Delivery::Unanswered(error.to_string())));
                    }
                    unanswered.push(queued);
                }
            }
        }
        if !outcomes.is_empty() {
            tokio::spawn(record(state.clone(), outcomes));
        }
    }
}

/// What became of each transaction of a batch, each failed send checked with the node: a
/// send can fail after the node took the transaction (an answer lost to a timeout), or
/// because it already has it (sent again after a restart: "already known", or "nonce too
/// low" once mined). A transaction the node has was broadcast, whatever its send said;
/// recording it as failed would release value the chain spends, so a failed send is
/// failed only once the node says it does not have the transaction.
async fn settled(rpc: &Rpc, batch: &[Queued], sends: Vec<Result<B256, RpcError>>) -> Vec<Settlement> {
    let mut node_answers = true;
    let mut settlements = Vec::with_capacity(sends.len());
    for ((outgoing, _), sent) in batch.iter().zip(sends) {
        let Err(error) = sent else {
            settlements.push(Settlement::Taken);
            continue;
        };
        // A node that did not answer one check is not asked again for the rest.
        let known = if node_answers {
            rpc.knows_transaction(outgoing.signed.hash).await.ok()
        } else {
            None
        };
        settlements.push(match known {
            Some(true) => Settlement::Taken,
            Some(false) => Settlement::Refused(error),
            None => {
                node_answers = false;
                Settlement::Unanswered(error)
            }
        });
    }
    settlements
}

/// A transaction the node answered for: broadcast, or refused.
type Outcome = (Queued, Result<(), RpcError>);

/// Records each transaction's outcome in its own stream, which it starts, all in one
/// append; then answers each receipt. An outcome another replica recorded first (it sent
/// the same transaction again after a restart) stands, and the others are recorded
/// without it.
///
/// An append the store fails (the database briefly unavailable, disk trouble) is tried
/// again, after a pause, until it holds: the node has answered, and until its answer is in
/// the log the transaction stays signed, its value held against the daily limit and its
/// nonce reserved; left alone, it would stay so until keyward starts again. The receipts
/// are answered at the first failure, with what the log holds: the transaction is reserved
/// and the node has it (or refused it), so an error would invite the client to pay again
/// with another transaction. An earlier attempt that committed although the store said it
/// failed shows as a conflict on its streams, and stands like another replica's. A keyward
/// stopped while still trying sends the transaction again when it starts, as any
/// unsettled one. This runs in a task of its own, beside the sender's next batches: however
/// long the log takes, the lane is not held up.
async fn record(state: AppState, mut outcomes: Vec<Outcome>) {
    let mut recorded_elsewhere = HashSet::new();
    let mut pause = FIRST_RETRY;
    let mut failed_attempts = 0u32;
    let recorded = loop {
        let parts = match outcome_events(&outcomes, &recorded_elsewhere) {
            Ok(parts) if parts.is_empty() => break Ok(()),
            Ok(parts) => parts,
            Err(error) => break Err(error),
        };
        match state.commands.append(parts).await {
            Err(CommandError::Append(AppendError::WrongExpectedVersion { stream, .. }))
                if recorded_elsewhere.insert(stream.clone()) => {}
            Err(CommandError::Append(AppendError::Store(error))) => {
                failed_attempts += 1;
                tracing::warn!(
                    %error,
                    attempt = failed_attempts,
                    retry_in = ?pause,
                    transactions = outcomes.len(),
                    "cannot record broadcast outcomes yet; trying again"
                );
                answer_unrecorded(&mut outcomes);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_RETRY);
            }
            appended => break appended.map(|_| ()).map_err(AppError::from),
        }
    };
    match &recorded {
        Err(error) => tracing::error!(%error, transactions = outcomes.len(), "cannot record broadcast outcomes"),
        Ok(()) if failed_attempts > 0 => tracing::info!(
            attempts = failed_attempts + 1,
            transactions = outcomes.len(),
            "broadcast outcomes recorded after failed attempts"
        ),
        Ok(()) => {}
    }
    for ((_, receipt), _) in outcomes {
        if let Some(receipt) = receipt {
            // A request that gave up no longer needs its receipt.
            let _ = receipt.send(recorded.clone().map(|()| Delivery::Recorded));
        }
    }
}

/// Answers the receipts not yet answered: the node answered, the log does not hold it yet.
fn answer_unrecorded(outcomes: &mut [Outcome]) {
    for ((_, receipt), outcome) in outcomes {
        if let Some(receipt) = receipt.take() {
            let refused = outcome.as_ref().err().map(ToString::to_string);
            // A request that gave up no longer needs its receipt.
            let _ = receipt.send(Ok(Delivery::Unrecorded { refused }));
        }
    }
}

/// Each transaction's outcome, as the event that starts its stream, but for the streams in
/// `skipped`.
fn outcome_events(outcomes: &[Outcome], skipped: &HashSet<StreamId>) -> Result<Vec<StreamAppend>, AppError> {
    outcomes
        .iter()
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
            crate::app::commands::encode(change, &outgoing.metadata).map_err(AppError::from)
        })
        .collect()
}
