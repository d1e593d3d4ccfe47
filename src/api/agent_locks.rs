//! One lane per agent for decisions on its stream. The stream's expected version keeps
//! reservations correct across replicas; within a replica, concurrent submissions of one
//! agent wait their turn here instead of racing, losing and re-signing, so none starves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::AgentId;
use tokio::sync::OwnedMutexGuard;

#[derive(Debug, Default)]
pub struct AgentLocks {
    lanes: Mutex<HashMap<AgentId, Arc<tokio::sync::Mutex<()>>>>,
}

impl AgentLocks {
    /// Waits for `agent`'s lane; it is free again when the guard drops.
    pub async fn lock(&self, agent: AgentId) -> OwnedMutexGuard<()> {
        let lane = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            lanes.entry(agent).or_default().clone()
        };
        lane.lock_owned().await
    }
}
