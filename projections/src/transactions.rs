//! Every agent's transactions, in the order they were signed.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

use domain::events::Event;
use domain::transaction::{NonceBook, TransactionHistory, TransactionRecord, TxStatus};
use domain::{AgentId, RecordedEvent};
use uuid::Uuid;

use crate::DomainModel;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transactions {
    by_agent: HashMap<AgentId, TransactionHistory>,
    /// Every agent's nonces per chain and sender: agents may sign with one key.
    nonces: NonceBook,
}

static NO_HISTORY: LazyLock<TransactionHistory> = LazyLock::new(TransactionHistory::default);

impl Transactions {
    pub fn history(&self, agent: AgentId) -> &TransactionHistory {
        self.by_agent.get(&agent).unwrap_or(&NO_HISTORY)
    }

    /// The nonces every agent's transactions hold or released, per chain and sender.
    pub fn nonces(&self) -> &NonceBook {
        &self.nonces
    }

    pub fn of(&self, agent: AgentId) -> &[TransactionRecord] {
        self.history(agent).records()
    }

    pub fn get(&self, agent: AgentId, id: Uuid) -> Option<&TransactionRecord> {
        self.history(agent).get(id)
    }

    /// Every agent's transactions signed for broadcast whose outcome is not in the log.
    pub fn unsettled(&self) -> impl Iterator<Item = &TransactionRecord> {
        self.by_agent
            .values()
            .flat_map(TransactionHistory::records)
            .filter(|record| record.status == TxStatus::Signed)
    }
}

impl DomainModel for Transactions {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        match event {
            Event::TransactionSigned(signed) => {
                let record = TransactionRecord::signed(signed, recorded.recorded_at);
                self.nonces.record(&record);
                self.by_agent.entry(signed.agent_id).or_default().push(record);
            }
            Event::TransactionBroadcast(broadcast) => {
                if let Some(history) = self.by_agent.get_mut(&broadcast.agent_id) {
                    history.mark_broadcast(broadcast.tx_id);
                }
            }
            Event::TransactionFailed(failed) => {
                if let Some(history) = self.by_agent.get_mut(&failed.agent_id) {
                    history.mark_failed(failed.tx_id, &failed.error);
                    if let Some(record) = history.get(failed.tx_id) {
                        self.nonces.release(record);
                    }
                }
            }
            _ => {}
        }
    }
}
