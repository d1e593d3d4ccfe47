//! The key table: wrapped KEKs and DEKs, in the event log's database but outside the log.
//! Mutable on purpose: deleting a row is how a secret, or a whole vault, is shredded.
//!
//! The table comes from the event store's migrations (`0002_key_table.sql`); open the store
//! first, then the key table.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use domain::VaultId;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};

use super::CryptoError;
use super::key_id::KeyId;
use super::remembered_keys::RememberedKeys;

const MAX_CONNECTIONS: u32 = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shred waits for readers of the SQLite WAL before leaving its truncation to a
/// later checkpoint.
const SCRUB_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// The wrapped keys of every vault, in a pool of its own on the log's database.
pub struct KeyTable {
    backend: Backend,
    /// On SQLite only: the file is this process's, so every shred goes through
    /// [`KeyTable::forget_shredded`]; replicas sharing Postgres shred behind each other's back.
    remembered: Option<RememberedKeys>,
}

enum Backend {
    Sqlite {
        pool: SqlitePool,
        /// For the short-lived connection that checkpoints after a shred.
        options: Box<SqliteConnectOptions>,
    },
    Postgres {
        pool: PgPool,
    },
}

/// Runs `$body` with `$pool` bound to whichever pool the table has: the SQL is the same
/// on both backends.
macro_rules! on_pool {
    ($backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            Backend::Sqlite { pool: $pool, .. } => $body,
            Backend::Postgres { pool: $pool } => $body,
        }
    };
}

impl fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        };
        f.debug_struct("KeyTable").field("backend", &backend).finish()
    }
}

impl KeyTable {
    /// Opens the key table of the database `database_url` names. It runs no migrations:
    /// the event store's `open` does, and must have run first.
    pub async fn open(database_url: &str) -> Result<Self, CryptoError> {
        let backend = if database_url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(database_url)?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(BUSY_TIMEOUT)
                // Deleted rows are overwritten with zeros, not merely unlinked.
                .pragma("secure_delete", "ON");
            let pool = SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(BUSY_TIMEOUT)
                .connect_with(options.clone())
                .await?;
            Backend::Sqlite {
                pool,
                options: Box::new(options),
            }
        } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(database_url)?;
            let pool = PgPoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .acquire_timeout(BUSY_TIMEOUT)
                .connect_with(options)
                .await?;
            Backend::Postgres { pool }
        } else {
            return Err(CryptoError::UnsupportedUrl);
        };
        let remembered = matches!(backend, Backend::Sqlite { .. }).then(RememberedKeys::default);
        let table = KeyTable { backend, remembered };
        // A database the store has not migrated fails here, at start-up, rather than at the
        // first secret written.
        on_pool!(&table.backend, pool => {
            sqlx::query("SELECT key_id FROM wrapped_keys LIMIT 1").fetch_optional(pool).await?;
        });
        Ok(table)
    }

    /// Stores a wrapped key unless its key id is taken; returns whether it was stored.
    pub(crate) async fn insert_if_absent(&self, id: &KeyId<'_>, wrapped: &[u8]) -> Result<bool, CryptoError> {
        const INSERT: &str = "INSERT INTO wrapped_keys (key_id, vault_id, secret_path, wrapped, created_at) \
                              VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING";
        let key_id = id.to_string();
        let created_at = Utc::now().timestamp_micros();
        let inserted = on_pool!(&self.backend, pool => {
            sqlx::query(INSERT)
                .bind(&key_id)
                .bind(id.vault().0)
                .bind(id.secret_path())
                .bind(wrapped)
                .bind(created_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(inserted == 1)
    }

    /// The wrapped keys stored under `ids`, in the same order; `None` for each that is gone.
    pub(crate) async fn load<const N: usize>(&self, ids: [&KeyId<'_>; N]) -> Result<[Option<Vec<u8>>; N], CryptoError> {
        let names = ids.map(|id| id.to_string());
        let lookup = match self.remembered.as_ref().map(|remembered| remembered.lookup(&names)) {
            // The lookup's copies are the answer: nothing is copied again.
            Some(lookup) if lookup.found.iter().all(Option::is_some) => return Ok(lookup.found),
            lookup => lookup,
        };
        let placeholders = (1..=N).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        let select = format!("SELECT key_id, wrapped FROM wrapped_keys WHERE key_id IN ({placeholders})");
        let rows: Vec<(String, Vec<u8>)> = on_pool!(&self.backend, pool => {
            let mut query = sqlx::query_as(&select);
            for name in &names {
                query = query.bind(name);
            }
            query.fetch_all(pool).await?
        });
        let mut found = [const { None }; N];
        for (key_id, wrapped) in rows {
            if let Some(slot) = names.iter().position(|name| *name == key_id) {
                found[slot] = Some(wrapped);
            }
        }
        if let (Some(remembered), Some(lookup)) = (&self.remembered, &lookup) {
            remembered.remember(lookup, &names, &found);
        }
        Ok(found)
    }

    /// Deletes the DEKs of every version of one secret; returns how many there were.
    pub(crate) async fn delete_secret(&self, vault: VaultId, path: &str) -> Result<u64, CryptoError> {
        const DELETE: &str = "DELETE FROM wrapped_keys WHERE vault_id = $1 AND secret_path = $2";
        let deleted = on_pool!(&self.backend, pool => {
            sqlx::query(DELETE).bind(vault.0).bind(path).execute(pool).await?.rows_affected()
        });
        self.forget_shredded();
        self.scrub(deleted).await;
        Ok(deleted)
    }

    /// Deletes a vault's KEK and all its DEKs; returns how many keys there were.
    pub(crate) async fn delete_vault(&self, vault: VaultId) -> Result<u64, CryptoError> {
        const DELETE: &str = "DELETE FROM wrapped_keys WHERE vault_id = $1";
        let deleted = on_pool!(&self.backend, pool => {
            sqlx::query(DELETE).bind(vault.0).execute(pool).await?.rows_affected()
        });
        self.forget_shredded();
        self.scrub(deleted).await;
        Ok(deleted)
    }

    /// Keys were deleted: none remembered may be opened any more. Shreds are rare, so all
    /// are forgotten rather than picked out.
    fn forget_shredded(&self) {
        if let Some(remembered) = &self.remembered {
            remembered.forget_all();
        }
    }

    /// Closes the table's connections.
    pub async fn close(&self) {
        on_pool!(&self.backend, pool => pool.close().await);
    }

    /// After a delete on SQLite: `secure_delete` zeroed the rows in their pages, but the
    /// WAL still holds the frames that first wrote them until it is checkpointed and
    /// truncated. Best effort, with a short wait for readers: the keys are already
    /// unreachable, and a busy log rewrites its WAL from the start soon anyway.
    async fn scrub(&self, deleted: u64) {
        let Backend::Sqlite { options, .. } = &self.backend else {
            return;
        };
        if deleted == 0 {
            return;
        }
        let checkpoint = async {
            let mut connection =
                SqliteConnection::connect_with(&options.clone().busy_timeout(SCRUB_BUSY_TIMEOUT)).await?;
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut connection)
                .await?;
            connection.close().await?;
            Ok::<_, sqlx::Error>(busy == 0)
        };
        match checkpoint.await {
            Ok(true) => {}
            Ok(false) => tracing::debug!("WAL busy; shredded keys leave it with a later checkpoint"),
            Err(error) => tracing::warn!(%error, "cannot checkpoint the WAL after shredding keys"),
        }
    }
}
