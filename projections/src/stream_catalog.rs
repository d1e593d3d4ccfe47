//! How many streams and events the log holds, how often each kind of event occurred, and
//! how far each shared stream has grown.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use domain::{RecordedEvent, StreamId};

use crate::ReadModel;

/// The categories of streams that many decisions write to, so each must name the version it
/// read: an org's membership, the claim of an address and the enrollments naming it, and a
/// sender's nonces. They follow orgs, addresses and signing keys, never the log's length.
/// Every other stream belongs to one entity, whose model keeps its version while it lives
/// (docs/cost.md), so the catalog keeps none of them.
const SHARED_CATEGORIES: [&str; 4] = ["org", "email", "enrollments", "sender"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCatalog {
    /// The version of every stream of [`SHARED_CATEGORIES`].
    shared_versions: HashMap<String, u64>,
    events_by_type: HashMap<String, u64>,
    events: u64,
    streams: u64,
}

impl StreamCatalog {
    /// The version of `stream`'s last event; 0 for a stream with none.
    ///
    /// # Panics
    /// For a stream outside [`SHARED_CATEGORIES`], whose version the catalog does not keep:
    /// answering 0 would let a decision expect a stream to be empty when it is not.
    pub fn version(&self, stream: &StreamId) -> u64 {
        assert!(
            is_shared(stream.category()),
            "the catalog keeps no version of {}",
            stream.as_str()
        );
        self.shared_versions.get(stream.as_str()).copied().unwrap_or(0)
    }

    /// How many streams have an event.
    pub fn stream_count(&self) -> u64 {
        self.streams
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

fn is_shared(category: &str) -> bool {
    SHARED_CATEGORIES.contains(&category)
}

impl ReadModel for StreamCatalog {
    fn apply(&mut self, event: &RecordedEvent) {
        self.events += 1;
        if event.stream_version == 1 {
            self.streams += 1;
        }
        // Look up by &str first: replay touches existing entries far more often than it
        // creates new ones, and this spares an allocation per event.
        match self.events_by_type.get_mut(event.event_type.as_str()) {
            Some(count) => *count += 1,
            None => {
                self.events_by_type.insert(event.event_type.clone(), 1);
            }
        }
        if !is_shared(event.stream_id.category()) {
            return;
        }
        match self.shared_versions.get_mut(event.stream_id.as_str()) {
            Some(version) => *version = event.stream_version,
            None => {
                self.shared_versions
                    .insert(event.stream_id.as_str().to_owned(), event.stream_version);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use domain::email::Email;
    use domain::{ChainHash, OrgId};
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
    fn catalog_counts_streams_and_event_types_and_keeps_shared_versions_only() {
        let mut catalog = StreamCatalog::default();
        catalog.apply(&event(1, "vault-1", 1, "vault.created"));
        catalog.apply(&event(2, "org-1", 1, "org.created"));
        catalog.apply(&event(3, "vault-2", 1, "vault.created"));
        catalog.apply(&event(4, "org-1", 2, "org.renamed"));
        catalog.apply(&event(5, "vault-1", 2, "vault.deleted"));

        assert_eq!(catalog.event_count(), 5);
        assert_eq!(catalog.stream_count(), 3);
        assert_eq!(catalog.events_of_type("vault.created"), 2);
        assert_eq!(catalog.events_of_type("vault.deleted"), 1);
        assert_eq!(catalog.events_of_type("vault.renamed"), 0);
        assert_eq!(catalog.version(&StreamId::parse("org-1").unwrap()), 2);
        assert_eq!(catalog.version(&StreamId::parse("org-2").unwrap()), 0);
        assert_eq!(catalog.shared_versions.len(), 1, "{:?}", catalog.shared_versions);
    }

    #[test]
    #[should_panic(expected = "the catalog keeps no version of vault-1")]
    fn a_version_the_catalog_does_not_keep_is_never_answered_as_zero() {
        let mut catalog = StreamCatalog::default();
        catalog.apply(&event(1, "vault-1", 1, "vault.created"));
        catalog.version(&StreamId::parse("vault-1").unwrap());
    }

    /// The shared categories are spelt as the domain names its streams.
    #[test]
    fn the_shared_categories_are_the_domains_shared_streams() {
        let email = Email::parse("ada@example.com").unwrap();
        let shared = [
            domain::user::org_stream(OrgId(Uuid::nil())),
            domain::user::email_stream(&email),
            domain::enrollment::email_enrollments_stream(&email),
            domain::transaction::sender_stream(1, "0xabc"),
        ];
        let categories: Vec<&str> = shared.iter().map(StreamId::category).collect();
        assert_eq!(categories, SHARED_CATEGORIES);
    }
}
