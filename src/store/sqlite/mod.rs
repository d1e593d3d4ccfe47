//! The embedded default backend: one SQLite file in WAL mode. One connection writes (the
//! group-commit task's), others read, which WAL lets run beside the writer. Both go
//! through rusqlite on blocking threads: a commit's statements run back to back on one
//! thread instead of each taking a hop to sqlx's worker and back, and rows are decoded
//! straight from SQLite's buffers. sqlx only runs the migrations.

mod packing;
mod reader;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::{RecordedEvent, StreamId};
use rusqlite::{OpenFlags, OptionalExtension, TransactionBehavior};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::watch;

use packing::Packer;

use super::batch::{self, BatchPlan, PendingAppend};
use super::group_commit::{GroupCommitStore, LogBackend};
use super::{LogHead, StoreError, to_i64};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Sqlite(Arc::new(error))
    }
}

pub(super) struct SqliteLog {
    /// Taken only by the group-commit task's commits, one at a time.
    writer: Arc<Mutex<Writer>>,
    readers: reader::Readers,
}

/// The one connection that writes, and what packs the events it writes.
struct Writer {
    connection: rusqlite::Connection,
    packer: Packer,
}

pub(super) async fn open(database_url: &str) -> Result<GroupCommitStore<SqliteLog>, StoreError> {
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(BUSY_TIMEOUT);
    let mut migrator = SqliteConnection::connect_with(&options).await?;
    sqlx::migrate!("./migrations/sqlite").run(&mut migrator).await?;
    migrator.close().await?;
    let path = options.get_filename().to_owned();
    let writer = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let connection = open_writer(&path)?;
            let packer = Packer::load(&connection)?;
            Ok::<_, StoreError>(Writer { connection, packer })
        })
        .await
        .map_err(|_| StoreError::Closed)??
    };
    let log = SqliteLog {
        writer: Arc::new(Mutex::new(writer)),
        readers: reader::Readers::new(path),
    };
    let committed = Arc::new(watch::Sender::new(log.head().await?.position));
    Ok(GroupCommitStore::start(log, committed))
}

/// A connection to the log file, for reading (`SQLITE_OPEN_READ_ONLY`) or writing
/// (`SQLITE_OPEN_READ_WRITE`); each is used by one thread at a time.
fn connect(path: &Path, access: OpenFlags) -> Result<rusqlite::Connection, StoreError> {
    let connection = rusqlite::Connection::open_with_flags(
        path,
        access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
    )?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    Ok(connection)
}

fn open_writer(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let connection = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    // FULL: a commit is on disk before the append returns, also across power loss.
    connection.pragma_update(None, "synchronous", "FULL")?;
    Ok(connection)
}

/// The `log_head` row, as both the writer and the readers read it.
fn read_head(connection: &rusqlite::Connection) -> Result<LogHead, StoreError> {
    let mut statement = connection.prepare_cached("SELECT position, hash, recorded_at FROM log_head WHERE id = 1")?;
    let mut rows = statement.query(())?;
    let row = rows.next()?.ok_or(StoreError::Corrupt {
        position: 0,
        reason: "the log head row is missing".into(),
    })?;
    let (position, hash, recorded_at): (i64, Vec<u8>, Option<i64>) = (row.get(0)?, row.get(1)?, row.get(2)?);
    LogHead::from_stored(position, &hash, recorded_at)
}

impl SqliteLog {
    /// Plans, packs and inserts a batch inside `transaction`, which holds the write lock.
    fn write(
        transaction: &rusqlite::Transaction<'_>,
        packer: &mut Packer,
        appends: Vec<PendingAppend>,
    ) -> Result<BatchPlan, StoreError> {
        let head = read_head(transaction)?;
        // Each stream's number and version: one seek in `streams`, one in the stream index.
        let mut numbers: HashMap<String, i64> = HashMap::new();
        let versions = {
            let mut number_and_version = transaction.prepare_cached(
                "SELECT s.id, (SELECT MAX(stream_version) FROM events WHERE stream = s.id) \
                 FROM streams s WHERE s.name = ?1",
            )?;
            let mut stored = Vec::new();
            for stream in batch::streams_touched(&appends) {
                let found: Option<(i64, Option<i64>)> = number_and_version
                    .query_row([&stream], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                if let Some((number, version)) = found {
                    numbers.insert(stream.clone(), number);
                    stored.push(Ok::<_, StoreError>((stream, version)));
                }
            }
            batch::stored_versions(stored.into_iter())?
        };
        let plan = batch::plan(head, versions, appends, Utc::now());
        let mut insert = transaction.prepare_cached(
            "INSERT INTO events (position, event_id, stream, stream_version, event_type, \
             schema_version, payload, metadata, recorded_at, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut number_new_stream =
            transaction.prepare_cached("INSERT INTO streams (name) VALUES (?1) RETURNING id")?;
        for row in &plan.rows {
            let name = row.stream_id.as_str();
            let number = match numbers.get(name) {
                Some(number) => *number,
                None => {
                    let number: i64 = number_new_stream.query_row([name], |row| row.get(0))?;
                    numbers.insert(name.to_owned(), number);
                    number
                }
            };
            // Payload and metadata go packed into `payload`, `metadata` left empty
            // (migration 0005).
            let packed = packer.pack(number, &row.payload, &row.metadata)?;
            insert.execute((
                to_i64(row.position),
                row.event_id.as_bytes().as_slice(),
                number,
                to_i64(row.stream_version),
                row.event_type.as_str(),
                i64::from(row.schema_version),
                packed.as_slice(),
                [0u8; 0].as_slice(),
                row.recorded_at.timestamp_micros(),
                row.prev_hash.0.as_slice(),
                row.hash.0.as_slice(),
            ))?;
        }
        if !plan.rows.is_empty() {
            transaction
                .prepare_cached("UPDATE log_head SET position = ?1, hash = ?2, recorded_at = ?3 WHERE id = 1")?
                .execute((
                    to_i64(plan.head.position),
                    plan.head.hash.0.as_slice(),
                    plan.head.recorded_at.map(|at| at.timestamp_micros()),
                ))?;
        }
        Ok(plan)
    }
}

impl SqliteLog {
    fn commit_batch(
        connection: &mut rusqlite::Connection,
        packer: &mut Packer,
        appends: Vec<PendingAppend>,
    ) -> Result<BatchPlan, StoreError> {
        // IMMEDIATE takes the write lock up front, so another process writing the same
        // file waits instead of failing half-way through the batch. Dropped without a
        // commit, the transaction rolls back.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        packer.renew_dictionary(&transaction)?;
        let plan = Self::write(&transaction, packer, appends)?;
        transaction.commit()?;
        Ok(plan)
    }
}

#[async_trait]
impl LogBackend for SqliteLog {
    // One process owns the file: its own commits are all there is.
    const SHARED: bool = false;

    async fn commit(&self, appends: Vec<PendingAppend>) -> Result<BatchPlan, StoreError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let Writer { connection, packer } = &mut *writer;
            let committed = Self::commit_batch(connection, packer, appends);
            if committed.is_err() {
                // A dictionary made for the batch went with its rollback.
                *packer = Packer::load(connection)?;
            }
            committed
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.readers
            .read_stream(stream.as_str().to_owned(), after_version, limit)
            .await
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.readers.read_all(after_position, limit).await
    }

    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.readers.read_positions(positions).await
    }

    async fn read_of_types(
        &self,
        types: &'static [&'static str],
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.readers.read_of_types(types, after_position, limit).await
    }

    async fn head(&self) -> Result<LogHead, StoreError> {
        self.readers.head().await
    }
}
