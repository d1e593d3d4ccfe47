//! Stream identifiers: one stream per aggregate instance, named `<category>-<id>`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest stream id accepted; aggregate ids are UUIDs, so real ids are far shorter.
const MAX_LEN: usize = 200;

/// A validated stream id such as `agent-0190f5c2-…`: printable ASCII without whitespace,
/// with a non-empty category before the first `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("stream id is empty")]
    Empty,
    #[error("stream id is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("stream id may only hold printable ASCII without whitespace")]
    InvalidCharacter,
    #[error("stream id must be <category>-<id>")]
    MissingCategory,
}

impl StreamId {
    /// The stream of one aggregate instance: `category` names the aggregate type.
    pub fn for_aggregate(category: &str, id: impl fmt::Display) -> Result<Self, StreamIdError> {
        Self::parse(format!("{category}-{id}"))
    }

    pub fn parse(raw: impl Into<String>) -> Result<Self, StreamIdError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(StreamIdError::Empty);
        }
        if raw.len() > MAX_LEN {
            return Err(StreamIdError::TooLong);
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StreamIdError::InvalidCharacter);
        }
        match raw.split_once('-') {
            Some((category, id)) if !category.is_empty() && !id.is_empty() => Ok(Self(raw)),
            _ => Err(StreamIdError::MissingCategory),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The aggregate type this stream belongs to, e.g. `agent`.
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(&self.0, |(category, _)| category)
    }
}

impl TryFrom<String> for StreamId {
    type Error = StreamIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> Self {
        id.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_stream_id_has_its_category() {
        let id = StreamId::for_aggregate("agent", "42").unwrap();
        assert_eq!(id.as_str(), "agent-42");
        assert_eq!(id.category(), "agent");
    }

    #[test]
    fn malformed_stream_ids_are_rejected() {
        assert_eq!(StreamId::parse(""), Err(StreamIdError::Empty));
        assert_eq!(StreamId::parse("agent"), Err(StreamIdError::MissingCategory));
        assert_eq!(StreamId::parse("-42"), Err(StreamIdError::MissingCategory));
        assert_eq!(StreamId::parse("agent-"), Err(StreamIdError::MissingCategory));
        assert_eq!(StreamId::parse("agent 42"), Err(StreamIdError::InvalidCharacter));
        assert_eq!(StreamId::parse("agent-é"), Err(StreamIdError::InvalidCharacter));
        assert_eq!(
            StreamId::parse(format!("a-{}", "x".repeat(MAX_LEN))),
            Err(StreamIdError::TooLong)
        );
    }
}
