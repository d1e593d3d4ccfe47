//! Reads of the SQLite log through rusqlite, on blocking threads: rows are decoded
//! straight from SQLite's buffers, several times faster than through sqlx, which is what
//! makes replaying millions of events take seconds rather than minutes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use domain::RecordedEvent;
use rusqlite::OpenFlags;
use rusqlite::types::ValueRef;

use super::packing::{Dictionaries, Unpacker};
use crate::store::{LogHead, StoreError, StoredRow, event_type_in, to_i64};

/// Events with their stream's name, which the log stores once, in `streams`, and names by
/// number (migration 0004). CROSS JOIN keeps the log the outer loop: reads go in position
/// or stream-version order, each event's stream found by its number.
const SELECT_EVENTS: &str = "SELECT e.position, e.event_id, s.name, e.stream_version, e.event_type, \
     e.schema_version, e.payload, e.metadata, e.recorded_at, e.prev_hash, e.hash \
     FROM events e CROSS JOIN streams s ON s.id = e.stream";

/// Read-only connections to the log file, reused across reads.
#[derive(Clone)]
pub(super) struct Readers {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Reader>>>,
    dictionaries: Dictionaries,
}

/// A read-only connection, and what unpacks the events it reads.
struct Reader {
    connection: rusqlite::Connection,
    unpacker: Unpacker,
}

impl Readers {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Arc::default(),
            dictionaries: Dictionaries::default(),
        }
    }

    /// Runs `read` on an idle reader (or a new one) on a blocking thread.
    async fn with_connection<T: Send + 'static>(
        &self,
        read: impl FnOnce(&rusqlite::Connection, &mut Unpacker) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let idle = readers
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop();
            let mut reader = match idle {
                Some(reader) => reader,
                None => Reader {
                    connection: super::connect(&readers.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?,
                    unpacker: Unpacker::new(readers.dictionaries.clone())?,
                },
            };
            let result = read(&reader.connection, &mut reader.unpacker);
            readers
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(reader);
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    pub(super) async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_after(String::new(), after_position, limit).await
    }

    pub(super) async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        // One statement whatever the number of positions, given as a JSON array.
        let listed = serde_json::to_string(positions).map_err(|error| StoreError::Corrupt {
            position: 0,
            reason: format!("cannot list positions: {error}"),
        })?;
        let limit = positions.len();
        self.with_connection(move |connection, unpacker| {
            let query =
                format!("{SELECT_EVENTS} WHERE e.position IN (SELECT value FROM json_each(?1)) ORDER BY e.position");
            let mut statement = connection.prepare_cached(&query)?;
            let rows = statement.query([listed])?;
            decode_all(rows, limit, connection, unpacker)
        })
        .await
    }

    pub(super) async fn read_of_types(
        &self,
        types: &'static [&'static str],
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_after(format!("{} AND ", event_type_in(types)), after_position, limit)
            .await
    }

    /// Up to `limit` events after `after_position` that also meet `condition` (empty, or
    /// ending in `AND `), in commit order.
    async fn read_after(
        &self,
        condition: String,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.with_connection(move |connection, unpacker| {
            let query = format!("{SELECT_EVENTS} WHERE {condition}e.position > ?1 ORDER BY e.position LIMIT ?2");
            let mut statement = connection.prepare_cached(&query)?;
            let rows = statement.query((to_i64(after_position), to_i64(limit as u64)))?;
            decode_all(rows, limit, connection, unpacker)
        })
        .await
    }

    pub(super) async fn read_stream(
        &self,
        stream: String,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.with_connection(move |connection, unpacker| {
            let query = format!(
                "{SELECT_EVENTS} WHERE e.stream = (SELECT id FROM streams WHERE name = ?1) \
                 AND e.stream_version > ?2 ORDER BY e.stream_version LIMIT ?3"
            );
            let mut statement = connection.prepare_cached(&query)?;
            let rows = statement.query((stream, to_i64(after_version), to_i64(limit as u64)))?;
            decode_all(rows, limit, connection, unpacker)
        })
        .await
    }

    pub(super) async fn head(&self) -> Result<LogHead, StoreError> {
        self.with_connection(|connection, _| super::read_head(connection)).await
    }
}

/// The events in `rows`, read on `connection`. A row whose payload is a blob holds the
/// payload and metadata packed (migration 0005); one whose payload is text was stored
/// before, as JSON in both columns.
fn decode_all(
    mut rows: rusqlite::Rows<'_>,
    limit: usize,
    connection: &rusqlite::Connection,
    unpacker: &mut Unpacker,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = Vec::with_capacity(limit.min(10_000));
    while let Some(row) = rows.next()? {
        let position: i64 = row.get(0)?;
        let not_a_uuid = || StoreError::Corrupt {
            position,
            reason: "event_id is not 16 bytes".into(),
        };
        let event_id_bytes = row.get_ref(1)?.as_blob().map_err(|_| not_a_uuid())?;
        let event_id = uuid::Uuid::from_slice(event_id_bytes).map_err(|_| not_a_uuid())?;
        let (payload, metadata) = match row.get_ref(6)? {
            ValueRef::Blob(packed) => unpacker.unpack(connection, position, packed)?,
            // Stored before packing (migration 0005): text, unless something rewrote it.
            _ => {
                let text = |column: usize, name: &str| {
                    row.get::<_, String>(column).map_err(|_| StoreError::Corrupt {
                        position,
                        reason: format!("its {name} is neither packed nor UTF-8 text"),
                    })
                };
                (text(6, "payload")?, text(7, "metadata")?)
            }
        };
        let stored = StoredRow {
            position,
            event_id,
            stream_id: row.get(2)?,
            stream_version: row.get(3)?,
            event_type: row.get(4)?,
            schema_version: row.get(5)?,
            payload,
            metadata,
            recorded_at: row.get(8)?,
            prev_hash: row.get(9)?,
            hash: row.get(10)?,
        };
        events.push(stored.into_event()?);
    }
    Ok(events)
}
