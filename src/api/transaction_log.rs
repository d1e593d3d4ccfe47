//! An agent's transactions as the log holds them, for the reads that want its whole
//! history: the read models keep only the recent and the unsettled ones (docs/cost.md).
//! What is read is folded as the read model folds it, so the answers are the same, and
//! only up to the position the read models have applied, so a read never shows a
//! transaction, or an outcome, that a decision has not seen yet.

use domain::agent::agent_stream;
use domain::events::Event;
use domain::transaction::{TransactionHistory, TransactionRecord, transaction_stream};
use domain::{AgentId, RecordedEvent};
use uuid::Uuid;

use crate::store::{EventStore, StoreError, read_stream_up_to};

/// Every transaction `agent` signed in the log up to `applied`, oldest first, with the
/// outcomes recorded up to there.
pub(super) async fn history(
    store: &dyn EventStore,
    agent: AgentId,
    applied: u64,
) -> Result<TransactionHistory, StoreError> {
    let mut history = TransactionHistory::default();
    for record in signed(
        &read_stream_up_to(store, &agent_stream(agent), applied).await?,
        agent,
        |_| true,
    ) {
        history.push(record);
    }
    let unsettled: Vec<Uuid> = history.unsettled().map(|record| record.id).collect();
    settle(store, &mut history, &unsettled, applied).await?;
    Ok(history)
}

/// The transaction `tx_id` of `agent` as the log has it up to `applied`, if any.
pub(super) async fn transaction(
    store: &dyn EventStore,
    agent: AgentId,
    tx_id: Uuid,
    applied: u64,
) -> Result<Option<TransactionRecord>, StoreError> {
    let events = read_stream_up_to(store, &agent_stream(agent), applied).await?;
    let Some(record) = signed(&events, agent, |id| id == tx_id).next() else {
        return Ok(None);
    };
    let mut history = TransactionHistory::default();
    history.push(record);
    if history.unsettled().next().is_some() {
        settle(store, &mut history, &[tx_id], applied).await?;
    }
    Ok(history.get(tx_id).cloned())
}

/// The records of the transactions `agent` signed among `events`, whose id `wanted`.
fn signed<'e>(
    events: &'e [RecordedEvent],
    agent: AgentId,
    wanted: impl Fn(Uuid) -> bool + 'e,
) -> impl Iterator<Item = TransactionRecord> + 'e {
    events.iter().filter_map(move |recorded| match Event::decode(recorded) {
        Some(Ok(Event::TransactionSigned(signed))) if signed.agent_id == agent && wanted(signed.tx_id) => {
            Some(TransactionRecord::signed(&signed, recorded.recorded_at))
        }
        _ => None,
    })
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
