//! The embedded default backend: one SQLite file in WAL mode. One connection writes (the
//! group-commit task); a small pool reads concurrently.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::{ChainHash, RecordedEvent, StreamId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::{Mutex, watch};

use super::batch::{self, BatchPlan, PendingAppend};
use super::group_commit::{GroupCommitStore, LogBackend};
use super::{LogHead, StoreError, StoredRow, to_i64};

/// SQLite allows 32766 bound parameters per statement; 11 per row.
const ROWS_PER_INSERT: usize = 1000;

const SELECT_EVENTS: &str = "SELECT position, event_id, stream_id, stream_version, event_type, schema_version, \
     payload, metadata, recorded_at, prev_hash, hash FROM events";

pub(super) struct SqliteLog {
    writer: Mutex<SqliteConnection>,
    readers: SqlitePool,
}

pub(super) async fn open(database_url: &str) -> Result<GroupCommitStore<SqliteLog>, StoreError> {
    let options = SqliteConnectOptions::from_str(database_url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit is on disk before the append returns, also across power loss.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    let mut writer = SqliteConnection::connect_with(&options).await?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&mut writer)
        .await?;
    let readers = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options.read_only(true))
        .await?;
    let log = SqliteLog {
        writer: Mutex::new(writer),
        readers,
    };
    let committed = Arc::new(watch::Sender::new(log.head().await?.position));
    Ok(GroupCommitStore::start(log, committed))
}

fn decode(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    StoredRow {
        position: row.try_get(0)?,
        event_id: row.try_get(1)?,
        stream_id: row.try_get(2)?,
        stream_version: row.try_get(3)?,
        event_type: row.try_get(4)?,
        schema_version: row.try_get(5)?,
        payload: row.try_get(6)?,
        metadata: row.try_get(7)?,
        recorded_at: row.try_get(8)?,
        prev_hash: row.try_get(9)?,
        hash: row.try_get(10)?,
    }
    .into_event()
}

fn decode_head(row: SqliteRow) -> Result<LogHead, StoreError> {
    let position: i64 = row.try_get(0)?;
    let hash: Vec<u8> = row.try_get(1)?;
    let recorded_at: Option<i64> = row.try_get(2)?;
    Ok(LogHead {
        position: super::to_u64(position, position, "head position")?,
        hash: ChainHash::from_slice(&hash).ok_or(StoreError::Corrupt {
            position,
            reason: "head hash is not 32 bytes".into(),
        })?,
        recorded_at: recorded_at.and_then(chrono::DateTime::from_timestamp_micros),
    })
}

impl SqliteLog {
    async fn write(
        connection: &mut SqliteConnection,
        appends: Vec<PendingAppend>,
    ) -> Result<BatchPlan, StoreError> {
        let head = decode_head(
            sqlx::query("SELECT position, hash, recorded_at FROM log_head WHERE id = 1")
                .fetch_one(&mut *connection)
                .await?,
        )?;
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT stream_id, MAX(stream_version) FROM events WHERE stream_id IN (",
        );
        let mut streams = query.separated(", ");
        for stream in batch::streams_touched(&appends) {
            streams.push_bind(stream);
        }
        query.push(") GROUP BY stream_id");
        let versions = query.build().fetch_all(&mut *connection).await?;
        let versions = batch::stored_versions(
            versions
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?))),
        )?;
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
            sqlx::query(
                "UPDATE log_head SET position = $1, hash = $2, recorded_at = $3 WHERE id = 1",
            )
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
    async fn commit(&self, appends: Vec<PendingAppend>) -> Result<BatchPlan, StoreError> {
        let mut connection = self.writer.lock().await;
        // IMMEDIATE takes the write lock up front, so another process writing the same
        // file waits instead of failing half-way through the batch.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *connection)
            .await?;
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
        let query = format!(
            "{SELECT_EVENTS} WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version LIMIT $3"
        );
        let rows = sqlx::query(&query)
            .bind(stream.as_str())
            .bind(to_i64(after_version))
            .bind(to_i64(limit as u64))
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let query = format!("{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2");
        let rows = sqlx::query(&query)
            .bind(to_i64(after_position))
            .bind(to_i64(limit as u64))
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn head(&self) -> Result<LogHead, StoreError> {
        decode_head(
            sqlx::query("SELECT position, hash, recorded_at FROM log_head WHERE id = 1")
                .fetch_one(&self.readers)
                .await?,
        )
    }
}
