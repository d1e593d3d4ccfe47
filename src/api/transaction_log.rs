//! An agent's transactions as the log holds them, for the reads that want more than the
//! read models keep (they keep only the recent and the unsettled ones: docs/cost.md).
//! Each signature is found through the audit index, where it is recorded as
//! `transaction.sign` by its agent with the transaction as its resource, so the work
//! follows the page asked for, not the agent's history. What is read is folded as the
//! read model folds it, so the answers are the same, and only up to the position the read
//! models have applied, so a read never shows a transaction, or an outcome, that a
//! decision has not seen yet.

use domain::events::Event;
use domain::transaction::{TransactionHistory, TransactionRecord, transaction_stream};
use domain::{AgentId, OrgId, RecordedEvent};
use projections::audit::AuditQuery;
use uuid::Uuid;

use crate::store::audit_index::AuditIndex;
use crate::store::{EventStore, StoreError, read_in_order, read_stream_up_to};

/// The audit action of a signature.
const SIGNED: &str = "transaction.sign";

/// The transactions `agent` of `org` signed in the log up to `applied`, newest first,
/// after skipping `offset`, at most `limit`, with the outcomes recorded up to there. The
/// index must have reached `applied`.
pub(super) async fn page(
    store: &dyn EventStore,
    index: &AuditIndex,
    (org, agent): (OrgId, AgentId),
    applied: u64,
    offset: usize,
    limit: usize,
) -> Result<Vec<TransactionRecord>, StoreError> {
    let by_agent = AuditQuery {
        action: Some(SIGNED.into()),
        actor_id: Some(agent.to_string()),
        ..AuditQuery::default()
    };
    let (positions, _) = index
        .query_up_to(store, org, &by_agent, Some(applied), offset, limit)
        .await?;
    let newest_first = signed_at(store, &positions, agent, |_| true).await?;
    let history = settled(store, newest_first.into_iter().rev(), applied).await?;
    Ok(history.records().iter().rev().cloned().collect())
}

/// The transaction `tx_id` of `agent` of `org` as the log has it up to `applied`, if any.
/// The index must have reached `applied`.
pub(super) async fn transaction(
    store: &dyn EventStore,
    index: &AuditIndex,
    (org, agent): (OrgId, AgentId),
    tx_id: Uuid,
    applied: u64,
) -> Result<Option<TransactionRecord>, StoreError> {
    let by_id = AuditQuery {
        action: Some(SIGNED.into()),
        resource_id: Some(tx_id.to_string()),
        ..AuditQuery::default()
    };
    let (positions, _) = index.query_up_to(store, org, &by_id, Some(applied), 0, 1).await?;
    let found = signed_at(store, &positions, agent, |id| id == tx_id).await?;
    let history = settled(store, found, applied).await?;
    Ok(history.get(tx_id).cloned())
}

/// The history of `records`, given oldest first, each signed for broadcast marked with
/// its outcome if the log has it up to `applied`.
async fn settled(
    store: &dyn EventStore,
    records: impl IntoIterator<Item = TransactionRecord>,
    applied: u64,
) -> Result<TransactionHistory, StoreError> {
    let mut history = TransactionHistory::default();
    for record in records {
        history.push(record);
    }
    let unsettled: Vec<Uuid> = history.unsettled().map(|record| record.id).collect();
    settle(store, &mut history, &unsettled, applied).await?;
    Ok(history)
}

/// The records of the transactions `agent` signed at `positions`, whose id is `wanted`, in
/// the same order.
async fn signed_at(
    store: &dyn EventStore,
    positions: &[u64],
    agent: AgentId,
    wanted: impl Fn(Uuid) -> bool,
) -> Result<Vec<TransactionRecord>, StoreError> {
    let events = read_in_order(store, positions).await?;
    Ok(events
        .iter()
        .filter_map(|recorded| signed(recorded, agent, &wanted))
        .collect())
}

fn signed(recorded: &RecordedEvent, agent: AgentId, wanted: impl Fn(Uuid) -> bool) -> Option<TransactionRecord> {
    match Event::decode(recorded) {
        Some(Ok(Event::TransactionSigned(signed))) if signed.agent_id == agent && wanted(signed.tx_id) => {
            Some(TransactionRecord::signed(&signed, recorded.recorded_at))
        }
        _ => None,
    }
}

/// Marks each of `ids`, signed for broadcast, with its outcome, if the log has it up to
/// `applied`: one read of its outcome's stream each.
async fn settle(
    store: &dyn EventStore,
    history: &mut TransactionHistory,
    ids: &[Uuid],
    applied: u64,
) -> Result<(), StoreError> {
    for id in ids {
        for recorded in read_stream_up_to(store, &transaction_stream(*id), applied).await? {
            match Event::decode(&recorded) {
                Some(Ok(Event::TransactionBroadcast(broadcast))) if broadcast.tx_id == *id => {
                    history.mark_broadcast(broadcast.tx_id);
                }
                Some(Ok(Event::TransactionFailed(failed))) if failed.tx_id == *id => {
                    history.mark_failed(failed.tx_id, &failed.error);
                }
                _ => {}
            }
        }
    }
    Ok(())
}
