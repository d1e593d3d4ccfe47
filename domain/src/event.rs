//! The event envelope: what a command produces (`NewEvent`) and what the log returns
//! once it is stored (`RecordedEvent`).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::chain::ChainHash;
use crate::stream::StreamId;

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    User,
    Agent,
    /// keyward itself: start-up, expiry sweeps, benchmarks.
    System,
    /// A caller without credentials, such as an enrolling agent.
    Anonymous,
}

/// Context of the request that caused an event. It is stored beside the payload and is
/// covered by the hash chain, so the audit trail cannot be rewritten either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub actor_type: ActorType,
    pub actor_id: Option<String>,
    pub org_id: Option<Uuid>,
    pub client_ip: Option<IpAddr>,
    /// Left out of the stored JSON when absent, as most requests send none: every audited
    /// read would store `"request_id":null` (docs/cost.md, "Disk"). Older events that
    /// stored the null read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When the command was decided (the clock of the request, not of the store).
    pub timestamp: DateTime<Utc>,
}

impl Metadata {
    pub fn system(timestamp: DateTime<Utc>) -> Self {
        Self {
            actor_type: ActorType::System,
            actor_id: None,
            org_id: None,
            client_ip: None,
            request_id: None,
            timestamp,
        }
    }
}

/// An event about to be appended. Payload and metadata are serialized once, here, so the
/// bytes that are hashed are exactly the bytes that are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: String,
    pub metadata: String,
}

impl NewEvent {
    pub fn new(
        event_type: impl Into<String>,
        schema_version: u32,
        payload: &impl Serialize,
        metadata: &Metadata,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version,
            payload: serde_json::to_string(payload)?,
            metadata: serde_json::to_string(metadata)?,
        })
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position: 1 for the first event, gapless, in commit order.
    pub position: u64,
    pub event_id: Uuid,
    pub stream_id: StreamId,
    /// Position within its stream: 1 for the stream's first event.
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: String,
    pub metadata: String,
    /// When the store committed the event; never decreases along the log.
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

impl RecordedEvent {
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    pub fn metadata(&self) -> Result<Metadata, serde_json::Error> {
        serde_json::from_str(&self.metadata)
    }
}

/// What the appender believes the stream's current version to be. Stream versions start
/// at 1; a stream that does not exist has version 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds (for streams with a single writer, such as audit).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    pub fn admits(self, current: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::Exact(expected) => current == expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_version_admits_only_the_matching_stream_state() {
        assert!(ExpectedVersion::Any.admits(0));
        assert!(ExpectedVersion::Any.admits(7));
        assert!(ExpectedVersion::NoStream.admits(0));
        assert!(!ExpectedVersion::NoStream.admits(1));
        assert!(ExpectedVersion::Exact(3).admits(3));
        assert!(!ExpectedVersion::Exact(3).admits(2));
        assert!(!ExpectedVersion::Exact(3).admits(4));
    }

    #[test]
    fn metadata_round_trips_through_its_stored_json() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let metadata = Metadata {
            actor_type: ActorType::Agent,
            actor_id: Some("agent-1".into()),
            org_id: Some(Uuid::nil()),
            client_ip: Some("10.0.0.7".parse().unwrap()),
            request_id: Some("req-1".into()),
            timestamp: at,
        };
        let event = NewEvent::new("vault.created", 1, &serde_json::json!({"n": 1}), &metadata).unwrap();
        assert_eq!(event.payload, r#"{"n":1}"#);
        let back: Metadata = serde_json::from_str(&event.metadata).unwrap();
        assert_eq!(back, metadata);
    }

    #[test]
    fn metadata_without_a_request_id_leaves_it_out_and_reads_the_stored_null_as_before() {
        let metadata = Metadata::system(DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap());
        let stored = serde_json::to_string(&metadata).unwrap();
        assert!(!stored.contains("request_id"), "{stored}");
        let older = r#"{"actor_type":"system","actor_id":null,"org_id":null,"client_ip":null,"request_id":null,"timestamp":"2023-11-14T22:13:20Z"}"#;
        assert_eq!(serde_json::from_str::<Metadata>(older).unwrap(), metadata);
        assert_eq!(serde_json::from_str::<Metadata>(&stored).unwrap(), metadata);
    }
}
