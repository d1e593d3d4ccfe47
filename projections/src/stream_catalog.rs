//! Which streams exist, how far each has grown, and how often each kind of event occurred.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{RecordedEvent, StreamId};

use crate::ReadModel;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCatalog {
    streams: HashMap<String, StreamEntry>,
    events_by_type: HashMap<String, u64>,
    events: u64,
}

impl StreamCatalog {
    pub fn stream(&self, stream_id: &str) -> Option<&StreamEntry> {
        self.streams.get(stream_id)
    }

    /// The version of `stream`'s last event; 0 for a stream with none.
    pub fn version(&self, stream: &StreamId) -> u64 {
        self.stream(stream.as_str()).map_or(0, |entry| entry.version)
    }

    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    pub fn event_count(&self) -> u64 {
        self.events
    }

    pub fn event_type_count(&self) -> usize {
        self.events_by_type.len()
    }

    pub fn events_of_type(&self, event_type: &str) -> u64 {
        self.events_by_type.get(event_type).copied().unwrap_or(0)
    }
}

impl ReadModel for StreamCatalog {
    fn apply(&mut self, event: &RecordedEvent) {
        self.events += 1;
        // Look up by &str first: replay touches existing entries far more often than it
        // creates new ones, and this spares an allocation per event.
        match self.events_by_type.get_mut(event.event_type.as_str()) {
            Some(count) => *count += 1,
            None => {
                self.events_by_type.insert(event.event_type.clone(), 1);
            }
        }
        match self.streams.get_mut(event.stream_id.as_str()) {
            Some(entry) => {
                entry.version = event.stream_version;
                entry.updated_at = event.recorded_at;
            }
            None => {
                self.streams.insert(
                    event.stream_id.as_str().to_owned(),
                    StreamEntry {
                        version: event.stream_version,
                        created_at: event.recorded_at,
                        updated_at: event.recorded_at,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::{ChainHash, StreamId};
    use uuid::Uuid;

    use super::*;

    fn event(position: u64, stream: &str, version: u64, event_type: &str) -> RecordedEvent {
        RecordedEvent {
            position,
            event_id: Uuid::from_u128(position as u128),
            stream_id: StreamId::parse(stream).unwrap(),
            stream_version: version,
            event_type: event_type.into(),
            schema_version: 1,
            payload: "{}".into(),
            metadata: "{}".into(),
            recorded_at: DateTime::from_timestamp(position as i64, 0).unwrap(),
            prev_hash: ChainHash::GENESIS,
            hash: ChainHash::GENESIS,
        }
    }

    #[test]
    fn catalog_tracks_stream_versions_and_event_types() {
        let mut catalog = StreamCatalog::default();
        catalog.apply(&event(1, "vault-1", 1, "vault.created"));
        catalog.apply(&event(2, "vault-2", 1, "vault.created"));
        catalog.apply(&event(3, "vault-1", 2, "vault.deleted"));

        assert_eq!(catalog.event_count(), 3);
        assert_eq!(catalog.stream_count(), 2);
        assert_eq!(catalog.events_of_type("vault.created"), 2);
        assert_eq!(catalog.events_of_type("vault.deleted"), 1);
        assert_eq!(catalog.events_of_type("vault.renamed"), 0);
        let vault_1 = catalog.stream("vault-1").unwrap();
        assert_eq!(vault_1.version, 2);
        assert_eq!(vault_1.created_at, DateTime::from_timestamp(1, 0).unwrap());
        assert_eq!(vault_1.updated_at, DateTime::from_timestamp(3, 0).unwrap());
    }
}
