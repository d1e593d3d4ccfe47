//! The hash chain that makes the log tamper-evident: every event stores the hash of its
//! predecessor and its own hash over all of its stored fields, so changing, deleting or
//! reordering any stored event breaks the chain at that event.

use std::fmt;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event::RecordedEvent;

/// Marks the encoding, so a change of the hashed fields can never collide with this one.
const DOMAIN_TAG: &[u8] = b"keyward-event-chain-v1";

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The predecessor of the first event.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

/// The stored fields of one event that its hash covers.
#[derive(Debug, Clone, Copy)]
pub struct HashedFields<'a> {
    pub prev_hash: &'a ChainHash,
    pub position: u64,
    pub event_id: &'a Uuid,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub payload: &'a str,
    pub metadata: &'a str,
    pub recorded_at_micros: i64,
}

impl HashedFields<'_> {
    /// SHA-256 over every field, each length-prefixed so no two different events share
    /// an encoding.
    pub fn hash(&self) -> ChainHash {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(DOMAIN_TAG);
        field(&self.prev_hash.0);
        field(&self.position.to_be_bytes());
        field(self.event_id.as_bytes());
        field(self.stream_id.as_bytes());
        field(&self.stream_version.to_be_bytes());
        field(self.event_type.as_bytes());
        field(&self.schema_version.to_be_bytes());
        field(self.payload.as_bytes());
        field(self.metadata.as_bytes());
        field(&self.recorded_at_micros.to_be_bytes());
        ChainHash(hasher.finalize().into())
    }
}

impl RecordedEvent {
    pub fn hashed_fields(&self) -> HashedFields<'_> {
        HashedFields {
            prev_hash: &self.prev_hash,
            position: self.position,
            event_id: &self.event_id,
            stream_id: self.stream_id.as_str(),
            stream_version: self.stream_version,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            payload: &self.payload,
            metadata: &self.metadata,
            recorded_at_micros: self.recorded_at.timestamp_micros(),
        }
    }
}

/// The first place where the stored log departs from its chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("event {event_id} at position {position}: expected position {expected}, events are missing or reordered")]
    PositionGap {
        event_id: Uuid,
        position: u64,
        expected: u64,
    },
    #[error("event {event_id} at position {position}: its link to the previous event does not match that event's hash")]
    BrokenLink { event_id: Uuid, position: u64 },
    #[error("event {event_id} at position {position}: its stored contents do not match its hash")]
    ContentChanged { event_id: Uuid, position: u64 },
    #[error(
        "the log ends at position {last_position} but its recorded head is position {head_position}: events at the end were deleted"
    )]
    TruncatedTail { last_position: u64, head_position: u64 },
    /// Found by [`check_in_place`] only: an event known to be at `position` is not there.
    #[error("the event at position {position} is missing")]
    Missing { position: u64 },
    /// Found by [`check_in_place`] only: the event was replaced (rehashed) or the one
    /// after it deleted.
    #[error("event {event_id} at position {position}: the event after it is missing or does not link to its hash")]
    Unlinked { event_id: Uuid, position: u64 },
}

impl ChainBreak {
    /// The event where the chain first breaks, if the break is at an event.
    pub fn event_id(&self) -> Option<Uuid> {
        match self {
            Self::PositionGap { event_id, .. }
            | Self::BrokenLink { event_id, .. }
            | Self::ContentChanged { event_id, .. }
            | Self::Unlinked { event_id, .. } => Some(*event_id),
            Self::TruncatedTail { .. } | Self::Missing { .. } => None,
        }
    }
}

/// Walks the log in position order and stops at the first break.
#[derive(Debug, Clone, Default)]
pub struct ChainVerifier {
    last_position: u64,
    last_hash: ChainHash,
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Events verified so far.
    pub fn verified(&self) -> u64 {
        self.last_position
    }

    pub fn check(&mut self, event: &RecordedEvent) -> Result<(), ChainBreak> {
        let expected = self.last_position + 1;
        if event.position != expected {
            return Err(ChainBreak::PositionGap {
                event_id: event.event_id,
                position: event.position,
                expected,
            });
        }
        if event.prev_hash != self.last_hash {
            return Err(ChainBreak::BrokenLink {
                event_id: event.event_id,
                position: event.position,
            });
        }
        if event.hashed_fields().hash() != event.hash {
            return Err(ChainBreak::ContentChanged {
                event_id: event.event_id,
                position: event.position,
            });
        }
        self.last_position = event.position;
        self.last_hash = event.hash;
        Ok(())
    }

    /// Checks the end of the walk against the head the store recorded with its last
    /// commit, which is what reveals events deleted from the end of the log.
    pub fn finish(&self, recorded_head: u64) -> Result<u64, ChainBreak> {
        if recorded_head != self.last_position {
            return Err(ChainBreak::TruncatedTail {
                last_position: self.last_position,
                head_position: recorded_head,
            });
        }
        Ok(self.last_position)
    }
}

/// Checks the event at `position` where it stands, between its neighbours as stored
/// (`before` at `position - 1`, `after` at `position + 1`, each `None` if not there), in
/// a log whose recorded head is `head` (at least `position`): it is there, it links to the
/// hash of the event before it, its contents match its hash, and the event after it links
/// to that hash unless it is the last. This is for verifying some of the log's events (an
/// organization's) and not all: a change, deletion or replacement of the event is caught
/// as a walk of the whole log would catch it, while the other events are not looked at.
pub fn check_in_place(
    position: u64,
    before: Option<&RecordedEvent>,
    event: Option<&RecordedEvent>,
    after: Option<&RecordedEvent>,
    head: u64,
) -> Result<(), ChainBreak> {
    let event = event
        .filter(|event| event.position == position)
        .ok_or(ChainBreak::Missing { position })?;
    let (event_id, position) = (event.event_id, event.position);
    let link = if position == 1 {
        Some(ChainHash::GENESIS)
    } else {
        before
            .filter(|before| before.position + 1 == position)
            .map(|before| before.hash)
    };
    if link != Some(event.prev_hash) {
        return Err(ChainBreak::BrokenLink { event_id, position });
    }
    if event.hashed_fields().hash() != event.hash {
        return Err(ChainBreak::ContentChanged { event_id, position });
    }
    let linked_from_after = after.is_some_and(|after| after.position == position + 1 && after.prev_hash == event.hash);
    if position < head && !linked_from_after {
        return Err(ChainBreak::Unlinked { event_id, position });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::stream::StreamId;

    fn chain_of(len: u64) -> Vec<RecordedEvent> {
        let mut prev_hash = ChainHash::GENESIS;
        (1..=len)
            .map(|position| {
                let mut event = RecordedEvent {
                    position,
                    event_id: Uuid::from_u128(position as u128),
                    stream_id: StreamId::parse("test-1").unwrap(),
                    stream_version: position,
                    event_type: "test.happened".into(),
                    schema_version: 1,
                    payload: format!(r#"{{"n":{position}}}"#),
                    metadata: "{}".into(),
                    recorded_at: DateTime::from_timestamp_micros(position as i64).unwrap(),
                    prev_hash,
                    hash: ChainHash::GENESIS,
                };
                event.hash = event.hashed_fields().hash();
                prev_hash = event.hash;
                event
            })
            .collect()
    }

    fn verify(events: &[RecordedEvent], head: u64) -> Result<u64, ChainBreak> {
        let mut verifier = ChainVerifier::new();
        events.iter().try_for_each(|event| verifier.check(event))?;
        verifier.finish(head)
    }

    #[test]
    fn intact_chain_verifies_every_event() {
        assert_eq!(verify(&chain_of(5), 5), Ok(5));
        assert_eq!(verify(&[], 0), Ok(0));
    }

    #[test]
    fn changed_payload_names_that_event() {
        let mut events = chain_of(5);
        events[2].payload = r#"{"n":4}"#.into();
        assert_eq!(
            verify(&events, 5),
            Err(ChainBreak::ContentChanged {
                event_id: Uuid::from_u128(3),
                position: 3
            })
        );
    }

    #[test]
    fn every_hashed_field_is_covered() {
        let original = chain_of(1).remove(0);
        let tamperings: Vec<fn(&mut RecordedEvent)> = vec![
            |e| e.event_id = Uuid::from_u128(99),
            |e| e.stream_id = StreamId::parse("test-2").unwrap(),
            |e| e.stream_version += 1,
            |e| e.event_type.push('x'),
            |e| e.schema_version += 1,
            |e| e.metadata = r#"{"a":1}"#.into(),
            |e| e.recorded_at += chrono::Duration::microseconds(1),
        ];
        for tamper in tamperings {
            let mut event = original.clone();
            tamper(&mut event);
            assert_ne!(event.hashed_fields().hash(), original.hash, "{event:?}");
        }
    }

    #[test]
    fn deleted_event_is_detected_at_its_successor() {
        let mut events = chain_of(5);
        events.remove(1);
        assert_eq!(
            verify(&events, 5),
            Err(ChainBreak::PositionGap {
                event_id: Uuid::from_u128(3),
                position: 3,
                expected: 2
            })
        );
    }

    #[test]
    fn deleted_tail_is_detected_against_the_recorded_head() {
        let mut events = chain_of(5);
        events.pop();
        assert_eq!(
            verify(&events, 5),
            Err(ChainBreak::TruncatedTail {
                last_position: 4,
                head_position: 5
            })
        );
    }

    #[test]
    fn swapped_contents_are_detected_at_the_first_swapped_event() {
        let mut events = chain_of(5);
        let (a, b) = (events[1].clone(), events[3].clone());
        events[1] = RecordedEvent { position: 2, ..b };
        events[3] = RecordedEvent { position: 4, ..a };
        assert_eq!(
            verify(&events, 5),
            Err(ChainBreak::BrokenLink {
                event_id: Uuid::from_u128(4),
                position: 2
            })
        );
    }

    /// [`check_in_place`] of the event at `position` in `events`, found by position.
    fn in_place(events: &[RecordedEvent], position: u64, head: u64) -> Result<(), ChainBreak> {
        let at = |position: u64| events.iter().find(|event| event.position == position);
        check_in_place(position, at(position - 1), at(position), at(position + 1), head)
    }

    #[test]
    fn every_event_of_an_intact_chain_checks_in_place() {
        let events = chain_of(5);
        for position in 1..=5 {
            assert_eq!(in_place(&events, position, 5), Ok(()), "{position}");
        }
    }

    #[test]
    fn in_place_a_changed_event_is_named_and_its_neighbours_are_not() {
        let mut events = chain_of(5);
        events[2].payload = r#"{"n":4}"#.into();
        let changed = Err(ChainBreak::ContentChanged {
            event_id: Uuid::from_u128(3),
            position: 3,
        });
        assert_eq!(in_place(&events, 3, 5), changed);
        assert_eq!((in_place(&events, 2, 5), in_place(&events, 4, 5)), (Ok(()), Ok(())));
    }

    #[test]
    fn in_place_a_rehashed_event_is_caught_by_its_successors_link() {
        let mut events = chain_of(5);
        events[2].payload = r#"{"n":4}"#.into();
        events[2].hash = events[2].hashed_fields().hash();
        assert_eq!(
            in_place(&events, 3, 5),
            Err(ChainBreak::Unlinked {
                event_id: Uuid::from_u128(3),
                position: 3
            })
        );
    }

    #[test]
    fn in_place_a_deleted_event_is_missing_and_breaks_both_neighbours() {
        let mut events = chain_of(5);
        events.remove(2);
        assert_eq!(in_place(&events, 3, 5), Err(ChainBreak::Missing { position: 3 }));
        assert_eq!(
            in_place(&events, 2, 5),
            Err(ChainBreak::Unlinked {
                event_id: Uuid::from_u128(2),
                position: 2
            })
        );
        assert_eq!(
            in_place(&events, 4, 5),
            Err(ChainBreak::BrokenLink {
                event_id: Uuid::from_u128(4),
                position: 4
            })
        );
    }

    #[test]
    fn in_place_the_last_event_needs_no_successor_unless_the_head_is_further() {
        let mut events = chain_of(5);
        assert_eq!(in_place(&events, 5, 5), Ok(()));
        events.pop();
        assert_eq!(
            in_place(&events, 4, 5),
            Err(ChainBreak::Unlinked {
                event_id: Uuid::from_u128(4),
                position: 4
            }),
            "the tail after it was deleted"
        );
    }

    #[test]
    fn in_place_a_moved_event_is_not_where_it_is_known_to_be() {
        let mut events = chain_of(5);
        events[2].position = 7;
        assert_eq!(in_place(&events, 3, 5), Err(ChainBreak::Missing { position: 3 }));
    }
}
