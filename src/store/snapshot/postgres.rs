//! Snapshots of a Postgres log, in a table of its database (migrations/postgres): every
//! replica can load one and verify it against the shared log.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{KEEP, SnapshotStore};
use crate::store::{StoreError, to_i64, to_u64};

pub struct PostgresSnapshots {
    pool: PgPool,
}

impl PostgresSnapshots {
    /// Connects to the log's database; the log's migrations created the table.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new().max_connections(2).connect(database_url).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl SnapshotStore for PostgresSnapshots {
    async fn positions(&self) -> Result<Vec<u64>, StoreError> {
        let rows = sqlx::query("SELECT position FROM read_model_snapshots ORDER BY position DESC")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let position: i64 = row.try_get(0)?;
                to_u64(position, position, "position")
            })
            .collect()
    }

    async fn read(&self, position: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT body FROM read_model_snapshots WHERE position = $1")
            .bind(to_i64(position))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    async fn write(&self, position: u64, bytes: Vec<u8>) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        // Replicas snapshot the same shared log: the first one's snapshot of a position
        // stands, another's would hold the same models.
        sqlx::query("INSERT INTO read_model_snapshots (position, body) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(to_i64(position))
            .bind(bytes)
            .execute(&mut *transaction)
            .await?;
        sqlx::query(
            "DELETE FROM read_model_snapshots WHERE position NOT IN \
             (SELECT position FROM read_model_snapshots ORDER BY position DESC LIMIT $1)",
        )
        .bind(KEEP as i64)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }
}
