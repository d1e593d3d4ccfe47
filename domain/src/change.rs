//! What a decision produces: events for streams, each with the version its stream must
//! still be at, so a decision made on stale state is refused by the store.

use crate::event::ExpectedVersion;
use crate::events::Event;
use crate::stream::StreamId;

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<Event>,
}

impl Change {
    pub fn new(stream: StreamId, expected: ExpectedVersion, event: impl Into<Event>) -> Self {
        Self {
            stream,
            expected,
            events: vec![event.into()],
        }
    }
}

/// A decision's refusal: the command is invalid in itself or in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The input is malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The state forbids it, e.g. the name is taken (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The caller may see the thing but not do this to it (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// It existed but is no longer available: expired, or used up (HTTP 410).
    #[error("{0}")]
    Gone(String),
    /// Allowed again, but not yet: a cooldown is running (HTTP 429 with Retry-After).
    #[error("too soon; retry in {retry_after_seconds} s")]
    TooSoon { retry_after_seconds: u64 },
}

/// Streams are named `<category>-<id>`; every id keyward generates is a UUID or a hex
/// digest, both valid in a stream id.
pub(crate) fn stream(category: &str, id: impl std::fmt::Display) -> StreamId {
    StreamId::for_aggregate(category, id)
        .unwrap_or_else(|error| unreachable!("stream ids of generated ids are valid: {error}"))
}
