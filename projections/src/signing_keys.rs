//! Every agent's signing keys: public parts, sealed private parts, which one signs.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

use domain::events::Event;
use domain::signing_key::{self, AgentSigningKeys};
use domain::{AgentId, RecordedEvent};

use crate::DomainModel;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeys {
    by_agent: HashMap<AgentId, AgentSigningKeys>,
}

static NO_KEYS: LazyLock<AgentSigningKeys> = LazyLock::new(AgentSigningKeys::default);

impl SigningKeys {
    pub fn of(&self, agent: AgentId) -> &AgentSigningKeys {
        self.by_agent.get(&agent).unwrap_or(&NO_KEYS)
    }
}

impl DomainModel for SigningKeys {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let agent = match event {
            Event::SigningKeyProvisioned(e) => e.agent_id,
            Event::SigningKeyDeactivated(e) => e.agent_id,
            Event::SigningKeyExported(e) => e.agent_id,
            _ => return,
        };
        let keys = self.by_agent.entry(agent).or_default();
        signing_key::apply(keys, event, recorded.stream_version, recorded.recorded_at);
    }
}
