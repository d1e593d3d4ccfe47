//! The event log: one trait, [`EventStore`], with SQL backends behind a group-commit
//! writer. Every backend passes the same conformance suite (tests/store_conformance.rs).

pub mod audit_index;
mod batch;
mod group_commit;
mod postgres;
pub mod snapshot;
mod sqlite;
mod subscription;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::{ChainHash, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use tokio::sync::{broadcast, watch};

pub use subscription::Subscription;

/// Where the log ends, as the store recorded it with its last commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogHead {
    pub position: u64,
    pub hash: ChainHash,
    pub recorded_at: Option<DateTime<Utc>>,
}

impl LogHead {
    /// Decodes the stored head row, which every backend keeps the same way.
    fn from_stored(position: i64, hash: &[u8], recorded_at: Option<i64>) -> Result<Self, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            position,
            reason: reason.to_owned(),
        };
        Ok(LogHead {
            position: to_u64(position, position, "head position")?,
            hash: ChainHash::from_slice(hash).ok_or_else(|| corrupt("head hash is not 32 bytes"))?,
            recorded_at: match recorded_at {
                Some(micros) => Some(DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt("head time"))?),
                None => None,
            },
        })
    }
}

/// Events for one stream, and the version that stream must be at for them to be written.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// The result of a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Each stream's version after the append, in the order the streams were given.
    pub stream_versions: Vec<u64>,
    /// The global position of the last appended event (or of the log's head, for an
    /// append of no events): wait for projections to reach it to read your own write.
    pub position: u64,
}

impl Appended {
    /// The version of the first (for [`EventStore::append`], the only) stream.
    pub fn stream_version(&self) -> u64 {
        self.stream_versions.first().copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream} is at version {actual}, but the append expected {expected:?}")]
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(Arc<sqlx::Error>),
    #[error("database error: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    #[error("migration failed: {0}")]
    Migration(Arc<sqlx::migrate::MigrateError>),
    #[error("stored event at position {position} cannot be read: {reason}")]
    Corrupt { position: i64, reason: String },
    #[error("unsupported database URL {0:?}: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("the event store has shut down")]
    Closed,
    #[error("file error: {0}")]
    Io(Arc<std::io::Error>),
    #[error("compression failed: {0}")]
    Compression(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(Arc::new(error))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(Arc::new(error))
    }
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends to every stream given, in one transaction, if each stream's version admits
    /// what its part expects; returns once the events are durable. Any conflict is an error
    /// and writes nothing, so a command that touches several streams (a signup claims an
    /// email and creates a user) never half-happens.
    async fn append_atomic(&self, parts: Vec<StreamAppend>) -> Result<Appended, AppendError>;

    /// Appends `events` to `stream` if the stream's version admits `expected`.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, AppendError> {
        self.append_atomic(vec![StreamAppend {
            stream: stream.clone(),
            expected,
            events,
        }])
        .await
    }

    /// Events of one stream with a version above `after_version`, in version order.
    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events with a global position above `after_position`, in commit order.
    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The events at `positions` (at most a page's worth), in commit order; a position the
    /// log has no event at is left out. One query, where one per position would cost a
    /// round trip each to a database server.
    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the given types with a position above `after_position`, in
    /// commit order.
    async fn read_of_types(
        &self,
        types: &'static [&'static str],
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The head recorded with the last commit.
    async fn head(&self) -> Result<LogHead, StoreError>;

    /// The highest position known to be committed, updated as commits happen in this
    /// process or, where the backend can tell, in others.
    fn committed(&self) -> watch::Receiver<u64>;

    /// The events this process commits, batch by batch, as each commits: a tail that keeps
    /// up takes them from here instead of reading them back. A receiver that falls behind
    /// is told it lagged, and reads the log.
    fn published(&self) -> broadcast::Receiver<Arc<[RecordedEvent]>>;

    /// Whether other processes append to this log too (Postgres replicas). Then only the
    /// database knows the newest position: see [`crate::projector::Projector::catch_up`].
    fn is_shared(&self) -> bool;
}

/// Opens the store a database URL names, creating and migrating it as needed.
pub async fn open(database_url: &str) -> Result<Arc<dyn EventStore>, StoreError> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::open(database_url).await?))
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::open(database_url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(database_url.to_owned()))
    }
}

/// The event at `position`, if the log has one there.
pub async fn read_at(store: &dyn EventStore, position: u64) -> Result<Option<RecordedEvent>, StoreError> {
    let events = store.read_all(position.saturating_sub(1), 1).await?;
    Ok(events.into_iter().next().filter(|event| event.position == position))
}

/// The events at `positions`, in the order given; a position the log has no event at is
/// left out.
pub async fn read_in_order(store: &dyn EventStore, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut by_position: std::collections::HashMap<u64, RecordedEvent> = store
        .read_positions(positions)
        .await?
        .into_iter()
        .map(|event| (event.position, event))
        .collect();
    Ok(positions
        .iter()
        .filter_map(|position| by_position.remove(position))
        .collect())
}

/// Every event of `stream` at a position up to `up_to`, in stream order, read a page at a
/// time: for reads of a whole stream that must not show what the read models have not
/// applied yet (pass `u64::MAX` for everything committed).
pub async fn read_stream_up_to(
    store: &dyn EventStore,
    stream: &StreamId,
    up_to: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    /// Events read from the stream at a time.
    const PAGE: usize = 1000;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_stream(stream, after, PAGE).await?;
        let full = page.len() == PAGE;
        let Some(last) = page.last() else {
            return Ok(events);
        };
        after = last.stream_version;
        let past = page.iter().any(|event| event.position > up_to);
        events.extend(page.into_iter().filter(|event| event.position <= up_to));
        if !full || past {
            return Ok(events);
        }
    }
}

/// Starts a tail of the log after `after_position`.
pub fn subscribe(store: Arc<dyn EventStore>, after_position: u64) -> Subscription {
    Subscription::new(store, after_position)
}

/// The condition `event_type IN ('a', 'b', …)` with the types as literals, in the order
/// given: a database answers it from a partial index only when the statement names the
/// very set the index's condition names (`events_shaping_access` in the migrations, for
/// [`projections::AccessModels::SHAPING_EVENTS`]), which a bound parameter cannot show it.
pub fn event_type_in(types: &[&str]) -> String {
    let literals: Vec<String> = types
        .iter()
        .map(|name| {
            // Type names are compile-time constants of the event vocabulary; nothing a
            // request sends reaches here.
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "not an event type: {name}"
            );
            format!("'{name}'")
        })
        .collect();
    format!("event_type IN ({})", literals.join(", "))
}

/// Converts a database integer into a position or version; negative values only come
/// from a tampered database.
fn to_u64(value: i64, position: i64, column: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        position,
        reason: format!("negative {column}"),
    })
}

/// Positions and versions are u64 in the domain and BIGINT in both databases.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The fields of one stored row, decoded the same way for every backend.
struct StoredRow {
    position: i64,
    event_id: uuid::Uuid,
    stream_id: String,
    stream_version: i64,
    event_type: String,
    schema_version: i64,
    payload: String,
    metadata: String,
    recorded_at: i64,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl StoredRow {
    fn into_event(self) -> Result<RecordedEvent, StoreError> {
        let position = self.position;
        let corrupt = |reason: &str| StoreError::Corrupt {
            position,
            reason: reason.to_owned(),
        };
        Ok(RecordedEvent {
            position: to_u64(position, position, "position")?,
            event_id: self.event_id,
            stream_id: StreamId::parse(self.stream_id).map_err(|e| corrupt(&e.to_string()))?,
            stream_version: to_u64(self.stream_version, position, "stream version")?,
            event_type: self.event_type,
            schema_version: u32::try_from(self.schema_version).map_err(|_| corrupt("schema version out of range"))?,
            payload: self.payload,
            metadata: self.metadata,
            recorded_at: DateTime::from_timestamp_micros(self.recorded_at)
                .ok_or_else(|| corrupt("recorded_at out of range"))?,
            prev_hash: ChainHash::from_slice(&self.prev_hash).ok_or_else(|| corrupt("prev_hash is not 32 bytes"))?,
            hash: ChainHash::from_slice(&self.hash).ok_or_else(|| corrupt("hash is not 32 bytes"))?,
        })
    }
}
