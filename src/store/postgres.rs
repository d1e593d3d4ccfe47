//! The production backend: PostgreSQL, which several keyward processes can share. Writers
//! serialize on a transaction-scoped advisory lock; commits are announced with NOTIFY so
//! every process's tails wake at once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::{RecordedEvent, StreamId};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};
use tokio::sync::watch;

use super::batch::{self, BatchPlan, PendingAppend};
use super::group_commit::{GroupCommitStore, LogBackend, raise};
use super::{LogHead, StoreError, StoredRow, event_type_in, to_i64};

/// Serializes writers of the log across processes; the value is arbitrary but fixed.
const WRITER_LOCK: i64 = 0x006b_6579_7761_7264; // "keyward" in ASCII
const COMMIT_CHANNEL: &str = "keyward_events";

const SELECT_EVENTS: &str = "SELECT position, event_id, stream_id, stream_version, event_type, schema_version, \
     payload, metadata, recorded_at, prev_hash, hash FROM events";

impl PostgresLog {
    /// Up to `limit` events after `after_position` that also meet `condition` (empty, or
    /// ending in `AND `), in commit order.
    async fn read_after(
        &self,
        condition: &str,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let query = format!("{SELECT_EVENTS} WHERE {condition}position > $1 ORDER BY position LIMIT $2");
        let rows = sqlx::query(&query)
            .bind(to_i64(after_position))
            .bind(to_i64(limit as u64))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }
}

pub(super) struct PostgresLog {
    pool: PgPool,
}

pub(super) async fn open(database_url: &str) -> Result<GroupCommitStore<PostgresLog>, StoreError> {
    let options = PgConnectOptions::from_str(database_url)?;
    // One direct connection first: its error says why (refused, unknown database, bad
    // password), where a pool would only report that it timed out.
    sqlx::PgConnection::connect_with(&options).await?.close().await?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    // The migrator holds its own advisory lock, so replicas starting together are safe.
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    let log = PostgresLog { pool: pool.clone() };
    let committed = Arc::new(watch::Sender::new(log.head().await?.position));
    tokio::spawn(follow_other_writers(pool, committed.clone()));
    Ok(GroupCommitStore::start(log, committed))
}

/// Raises the committed position as other processes announce their commits. Tails also
/// poll, so a notification lost while reconnecting delays them but never loses an event.
async fn follow_other_writers(pool: PgPool, committed: Arc<watch::Sender<u64>>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for commits; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(COMMIT_CHANNEL).await {
            tracing::warn!(%error, "cannot listen for commits; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    if let Ok(position) = notification.payload().parse::<u64>() {
                        committed.send_if_modified(|known| raise(known, position));
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "commit notifications interrupted; reconnecting");
                    break;
                }
            }
        }
        if pool.is_closed() {
            return;
        }
    }
}

fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
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

fn decode_head((position, hash, recorded_at): (i64, Vec<u8>, Option<i64>)) -> Result<LogHead, StoreError> {
    LogHead::from_stored(position, &hash, recorded_at)
}

impl PostgresLog {
    async fn write(tx: &mut Transaction<'_, Postgres>, appends: Vec<PendingAppend>) -> Result<BatchPlan, StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITER_LOCK)
            .execute(&mut **tx)
            .await?;
        let head = decode_head(
            sqlx::query_as("SELECT position, hash, recorded_at FROM log_head WHERE id = 1")
                .fetch_one(&mut **tx)
                .await?,
        )?;
        // A correlated MAX per stream is one index seek each.
        let versions = sqlx::query(
            "SELECT touched, (SELECT MAX(stream_version) FROM events WHERE stream_id = touched) \
             FROM UNNEST($1::text[]) AS touched",
        )
        .bind(batch::streams_touched(&appends))
        .fetch_all(&mut **tx)
        .await?;
        let versions = batch::stored_versions(
            versions
                .iter()
                .map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?))),
        )?;
        let plan = batch::plan(head, versions, appends, Utc::now());
        if plan.rows.is_empty() {
            return Ok(plan);
        }

        let rows = &plan.rows;
        sqlx::query(
            "INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, \
             payload, metadata, recorded_at, prev_hash, hash) \
             SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], \
             $7::text[], $8::text[], $9::bigint[], $10::bytea[], $11::bytea[])",
        )
        .bind(rows.iter().map(|r| to_i64(r.position)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.stream_id.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| to_i64(r.stream_version)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event_type.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| i64::from(r.schema_version)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.payload.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.metadata.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.recorded_at.timestamp_micros())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.prev_hash.0.to_vec()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.hash.0.to_vec()).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE log_head SET position = $1, hash = $2, recorded_at = $3 WHERE id = 1")
            .bind(to_i64(plan.head.position))
            .bind(plan.head.hash.0.as_slice())
            .bind(plan.head.recorded_at.map(|at| at.timestamp_micros()))
            .execute(&mut **tx)
            .await?;
        // Delivered when the transaction commits, and only then.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(COMMIT_CHANNEL)
            .bind(plan.head.position.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(plan)
    }
}

#[async_trait]
impl LogBackend for PostgresLog {
    // Replicas share the database: their commits land here too.
    const SHARED: bool = true;

    async fn commit(&self, appends: Vec<PendingAppend>) -> Result<BatchPlan, StoreError> {
        let mut tx = self.pool.begin().await?;
        // On error the transaction is dropped, which rolls it back.
        let plan = Self::write(&mut tx, appends).await?;
        tx.commit().await?;
        Ok(plan)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let query =
            format!("{SELECT_EVENTS} WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version LIMIT $3");
        let rows = sqlx::query(&query)
            .bind(stream.as_str())
            .bind(to_i64(after_version))
            .bind(to_i64(limit as u64))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_after("", after_position, limit).await
    }

    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        let positions: Vec<i64> = positions.iter().copied().map(to_i64).collect();
        let rows = sqlx::query(&format!("{SELECT_EVENTS} WHERE position = ANY($1) ORDER BY position"))
            .bind(positions)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn read_of_types(
        &self,
        types: &'static [&'static str],
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_after(&format!("{} AND ", event_type_in(types)), after_position, limit)
            .await
    }

    async fn head(&self) -> Result<LogHead, StoreError> {
        decode_head(
            sqlx::query_as("SELECT position, hash, recorded_at FROM log_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
