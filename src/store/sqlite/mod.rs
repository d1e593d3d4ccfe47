//! The embedded default backend: one SQLite file in WAL mode. One sqlx connection writes
//! (the group-commit task); reads go through rusqlite connections of their own, which WAL
//! lets run beside the writer.

mod reader;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::{RecordedEvent, StreamId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::{Mutex, watch};

use super::batch::{self, BatchPlan, PendingAppend};
use super::group_commit::{GroupCommitStore, LogBackend};
use super::{LogHead, StoreError, to_i64};

/// SQLite allows 32766 bound parameters per statement; 11 per row.
const ROWS_PER_INSERT: usize = 1000;

pub(super) struct SqliteLog {
    writer: Mutex<SqliteConnection>,
    readers: reader::Readers,
}

pub(super) async fn open(database_url: &str) -> Result<GroupCommitStore<SqliteLog>, StoreError> {
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before the append returns, also across power loss.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    let mut writer = SqliteConnection::connect_with(&options).await?;
    sqlx::migrate!("./migrations/sqlite").run(&mut writer).await?;
    let log = SqliteLog {
        writer: Mutex::new(writer),
        readers: reader::Readers::new(options.get_filename().to_owned()),
    };
    let committed = Arc::new(watch::Sender::new(log.head().await?.position));
    Ok(GroupCommitStore::start(log, committed))
}

/// Decodes the `log_head` row, as both the writer and the readers read it.
fn decode_head((position, hash, recorded_at): (i64, Vec<u8>, Option<i64>)) -> Result<LogHead, StoreError> {
    LogHead::from_stored(position, &hash, recorded_at)
}

impl SqliteLog {
    async fn write(connection: &mut SqliteConnection, appends: Vec<PendingAppend>) -> Result<BatchPlan, StoreError> {
        let head = decode_head(
            sqlx::query_as("SELECT position, hash, recorded_at FROM log_head WHERE id = 1")
                .fetch_one(&mut *connection)
                .await?,
        )?;
        // A correlated MAX per stream is one index seek each; MAX with GROUP BY over an
        // IN list walks every event of those streams.
        let streams = serde_json::to_string(&batch::streams_touched(&appends)).map_err(|e| StoreError::Corrupt {
            position: 0,
            reason: format!("stream ids: {e}"),
        })?;
        let versions = sqlx::query(
            "SELECT touched.value, (SELECT MAX(stream_version) FROM events WHERE stream_id = touched.value) \
             FROM json_each($1) AS touched",
        )
        .bind(streams)
        .fetch_all(&mut *connection)
        .await?;
        let versions = batch::stored_versions(versions.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))))?;
        let plan = batch::plan(head, versions, appends, Utc::now());
        for rows in plan.rows.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (position, event_id, stream_id, stream_version, event_type, \
                 schema_version, payload, metadata, recorded_at, prev_hash, hash) ",
            );
            insert.push_values(rows, |mut values, row| {
                values
                    .push_bind(to_i64(row.position))
                    .push_bind(row.event_id)
                    .push_bind(row.stream_id.as_str())
                    .push_bind(to_i64(row.stream_version))
                    .push_bind(row.event_type.as_str())
                    .push_bind(i64::from(row.schema_version))
                    .push_bind(row.payload.as_str())
                    .push_bind(row.metadata.as_str())
                    .push_bind(row.recorded_at.timestamp_micros())
                    .push_bind(row.prev_hash.0.as_slice())
                    .push_bind(row.hash.0.as_slice());
            });
            insert.build().execute(&mut *connection).await?;
        }
        if !plan.rows.is_empty() {
            sqlx::query("UPDATE log_head SET position = $1, hash = $2, recorded_at = $3 WHERE id = 1")
                .bind(to_i64(plan.head.position))
                .bind(plan.head.hash.0.as_slice())
                .bind(plan.head.recorded_at.map(|at| at.timestamp_micros()))
                .execute(&mut *connection)
                .await?;
        }
        Ok(plan)
    }
}

#[async_trait]
impl LogBackend for SqliteLog {
    // One process owns the file: its own commits are all there is.
    const SHARED: bool = false;

    async fn commit(&self, appends: Vec<PendingAppend>) -> Result<BatchPlan, StoreError> {
        let mut connection = self.writer.lock().await;
        // IMMEDIATE takes the write lock up front, so another process writing the same
        // file waits instead of failing half-way through the batch.
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *connection).await?;
        match Self::write(&mut connection, appends).await {
            Ok(plan) => {
                sqlx::query("COMMIT").execute(&mut *connection).await?;
                Ok(plan)
            }
            Err(error) => {
                if let Err(rollback) = sqlx::query("ROLLBACK").execute(&mut *connection).await {
                    tracing::error!(error = %rollback, "rollback failed");
                }
                Err(error)
            }
        }
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

    async fn head(&self) -> Result<LogHead, StoreError> {
        self.readers.head().await
    }
}
