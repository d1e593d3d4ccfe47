//! What administrators changed in the chain registry; the configured chains are the base
//! it is laid over (`RegistryChanges::effective`).

use domain::RecordedEvent;
use domain::events::Event;
use domain::evm_chain::{EvmChain, RegistryChanges};

use crate::DomainModel;

impl DomainModel for RegistryChanges {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event) {
        let at = recorded.recorded_at;
        match event {
            Event::ChainAdded(added) => {
                self.removed.remove(&added.id);
                self.changed.insert(
                    added.id,
                    EvmChain {
                        id: added.id,
                        settings: added.settings.clone(),
                        created_at: Some(at),
                        updated_at: Some(at),
                    },
                );
            }
            Event::ChainUpdated(updated) => {
                let created_at = self.changed.get(&updated.id).and_then(|chain| chain.created_at);
                self.changed.insert(
                    updated.id,
                    EvmChain {
                        id: updated.id,
                        settings: updated.settings.clone(),
                        created_at,
                        updated_at: Some(at),
                    },
                );
            }
            Event::ChainRemoved(removed) => {
                self.changed.remove(&removed.id);
                self.removed.insert(removed.id);
            }
            _ => return,
        }
        self.version = recorded.stream_version;
    }
}
