//! Every agent's transactions, in the order they were signed.

use std::collections::HashMap;

use domain::events::Event;
use domain::transaction::{TransactionRecord, TxStatus};
use domain::{AgentId, RecordedEvent};
use uuid::Uuid;

use crate::DomainModel;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transactions {
    by_agent: HashMap<AgentId, Vec<TransactionRecord>>,
}

impl Transactions {
    pub fn of(&self, agent: AgentId) -> &[TransactionRecord] {
        self.by_agent.get(&agent).map_or(&[], Vec::as_slice)
    }

    pub fn get(&self, agent: AgentId, id: Uuid) -> Option<&TransactionRecord> {
        self.of(agent).iter().find(|record| record.id == id)
    }

    fn record_mut(&mut self, agent: AgentId, id: Uuid) -> Option<&mut TransactionRecord> {
        self.by_agent
            .get_mut(&agent)?
            .iter_mut()
            .rev()
            .find(|record| record.id == id)
    }
}

impl DomainModel for Transactions {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        match event {
            Event::TransactionSigned(signed) => self
                .by_agent
                .entry(signed.agent_id)
                .or_default()
                .push(TransactionRecord::signed(signed, recorded.recorded_at)),
            Event::TransactionBroadcast(broadcast) => {
                if let Some(record) = self.record_mut(broadcast.agent_id, broadcast.tx_id) {
                    record.status = TxStatus::Broadcast;
                }
            }
            Event::TransactionFailed(failed) => {
                if let Some(record) = self.record_mut(failed.agent_id, failed.tx_id) {
                    record.status = TxStatus::Failed;
                    record.error = Some(failed.error.clone());
                }
            }
            _ => {}
        }
    }
}
