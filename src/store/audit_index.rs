//! The audit trail, answered from an index in the log's database instead of memory
//! (docs/cost.md). The indexer tails the log and writes, per event, the columns
//! `GET /v1/audit/events` filters on; a query finds an org's matching positions through
//! the index, and the records are read from the events at those positions. The index is
//! derived data: its tables dropped, it is rebuilt from the log.
//!
//! Every replica indexes; rows are keyed by position, so replicas sharing Postgres write
//! the same rows and never conflict.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use domain::OrgId;
use domain::events::Event;
use projections::audit::{AuditQuery, AuditRecord};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};
use tokio::sync::watch;
use uuid::Uuid;

use super::{EventStore, StoreError, to_i64, to_u64};

/// Events indexed per write: one statement, one transaction.
const BATCH: usize = 500;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AuditIndex {
    backend: Backend,
    /// Every event up to this position is indexed.
    indexed: watch::Sender<u64>,
}

enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What the index keeps of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexRow {
    position: i64,
    org_id: Option<Uuid>,
    action: &'static str,
    actor_id: Option<String>,
    resource_id: String,
    created_at: i64,
}

impl IndexRow {
    fn of(record: &AuditRecord) -> Self {
        Self {
            position: to_i64(record.position),
            org_id: record.org_id.map(|org| org.0),
            action: record.action,
            actor_id: record.actor_id.clone(),
            resource_id: record.resource_id.clone(),
            created_at: record.created_at.timestamp_micros(),
        }
    }
}

/// Binds the filter of `$query` for `$org` onto the query builder `$builder`: the same SQL
/// on both backends, whose builders differ in type only.
macro_rules! push_filter {
    ($builder:expr, $org:expr, $query:expr) => {{
        $builder.push(" FROM audit_index WHERE org_id = ").push_bind($org.0);
        if let Some(action) = &$query.action {
            $builder.push(" AND action = ").push_bind(action.clone());
        }
        if let Some(actor) = &$query.actor_id {
            $builder.push(" AND actor_id = ").push_bind(actor.clone());
        }
        if let Some(resource) = &$query.resource_id {
            $builder.push(" AND resource_id = ").push_bind(resource.clone());
        }
        if let Some(from) = $query.from {
            $builder.push(" AND created_at >= ").push_bind(from.timestamp_micros());
        }
        if let Some(to) = $query.to {
            $builder.push(" AND created_at <= ").push_bind(to.timestamp_micros());
        }
    }};
}

/// Inserts `$rows` (not empty) with `$builder`, one statement.
macro_rules! push_rows {
    ($builder:expr, $rows:expr) => {{
        $builder.push("INSERT INTO audit_index (position, org_id, action, actor_id, resource_id, created_at) ");
        $builder.push_values($rows, |mut values, row| {
            values
                .push_bind(row.position)
                .push_bind(row.org_id)
                .push_bind(row.action)
                .push_bind(row.actor_id.clone())
                .push_bind(row.resource_id.clone())
                .push_bind(row.created_at);
        });
        $builder.push(" ON CONFLICT (position) DO NOTHING");
    }};
}

impl AuditIndex {
    /// Opens the index of the database `database_url` names; the event store's `open` ran
    /// its migrations.
    pub async fn open(database_url: &str) -> Result<Arc<Self>, StoreError> {
        let backend = if database_url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(database_url)?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(BUSY_TIMEOUT);
            Backend::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(BUSY_TIMEOUT)
                    .connect_with(options)
                    .await?,
            )
        } else {
            Backend::Postgres(
                PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(BUSY_TIMEOUT)
                    .connect(database_url)
                    .await?,
            )
        };
        let index = Self {
            backend,
            indexed: watch::Sender::new(0),
        };
        let head = index.head().await?;
        index.indexed.send_replace(head);
        Ok(Arc::new(index))
    }

    /// Keeps the index current with the log, in the background, from where it stopped.
    pub fn start(self: &Arc<Self>, store: Arc<dyn EventStore>) {
        let index = Arc::downgrade(self);
        let after = self.position();
        tokio::spawn(async move {
            let mut tail = super::subscribe(store, after);
            loop {
                let mut events = match tail.next().await {
                    Ok(event) => vec![event],
                    Err(error) => {
                        tracing::error!(%error, "cannot read the log; the audit index is paused");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                while events.len() < BATCH {
                    match tail.next_at_hand() {
                        Some(event) => events.push(event),
                        None => break,
                    }
                }
                let Some(index) = index.upgrade() else { return };
                let up_to = tail.position();
                let rows: Vec<IndexRow> = events
                    .iter()
                    .filter_map(|recorded| {
                        let event = Event::decode(recorded)?.ok()?;
                        AuditRecord::of(recorded, &event).map(|record| IndexRow::of(&record))
                    })
                    .collect();
                while let Err(error) = index.write(&rows, up_to).await {
                    tracing::error!(%error, "cannot write the audit index; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                index.indexed.send_replace(up_to);
            }
        });
    }

    /// Every event up to this position is indexed.
    pub fn position(&self) -> u64 {
        *self.indexed.borrow()
    }

    /// Waits until every event up to `position` is indexed, at most `within`; whether it is.
    pub async fn caught_up_to(&self, position: u64, within: Duration) -> bool {
        let mut indexed = self.indexed.subscribe();
        tokio::time::timeout(within, indexed.wait_for(|indexed| *indexed >= position))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// The positions of `org`'s events matching `query`, newest first, after skipping
    /// `offset`; and how many match in all.
    pub async fn query(
        &self,
        org: OrgId,
        query: &AuditQuery,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<u64>, usize), StoreError> {
        let (offset, limit) = (to_i64(offset as u64), to_i64(limit as u64));
        let (positions, total): (Vec<i64>, i64) = match &self.backend {
            Backend::Sqlite(pool) => {
                let mut page = QueryBuilder::<Sqlite>::new("SELECT position");
                push_filter!(page, org, query);
                page.push(" ORDER BY position DESC LIMIT ")
                    .push_bind(limit)
                    .push(" OFFSET ")
                    .push_bind(offset);
                let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*)");
                push_filter!(count, org, query);
                let rows = page.build().fetch_all(pool).await?;
                let total = count.build().fetch_one(pool).await?.try_get(0)?;
                (rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?, total)
            }
            Backend::Postgres(pool) => {
                let mut page = QueryBuilder::<Postgres>::new("SELECT position");
                push_filter!(page, org, query);
                page.push(" ORDER BY position DESC LIMIT ")
                    .push_bind(limit)
                    .push(" OFFSET ")
                    .push_bind(offset);
                let mut count = QueryBuilder::<Postgres>::new("SELECT COUNT(*)");
                push_filter!(count, org, query);
                let rows = page.build().fetch_all(pool).await?;
                let total = count.build().fetch_one(pool).await?.try_get(0)?;
                (rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?, total)
            }
        };
        let positions = positions
            .into_iter()
            .map(|position| to_u64(position, position, "audit index position"))
            .collect::<Result<_, _>>()?;
        Ok((positions, usize::try_from(total).unwrap_or(usize::MAX)))
    }

    /// The records at `positions`, read from the log, in the same order.
    pub async fn records(store: &dyn EventStore, positions: &[u64]) -> Result<Vec<AuditRecord>, StoreError> {
        let mut records = Vec::with_capacity(positions.len());
        for &position in positions {
            let event = store.read_all(position.saturating_sub(1), 1).await?;
            let record = event
                .first()
                .filter(|event| event.position == position)
                .and_then(|recorded| {
                    let event = Event::decode(recorded)?.ok()?;
                    AuditRecord::of(recorded, &event)
                });
            records.extend(record);
        }
        Ok(records)
    }

    async fn head(&self) -> Result<u64, StoreError> {
        const HEAD: &str = "SELECT position FROM audit_index_head WHERE id = 1";
        let position: i64 = match &self.backend {
            Backend::Sqlite(pool) => sqlx::query_scalar(HEAD).fetch_one(pool).await?,
            Backend::Postgres(pool) => sqlx::query_scalar(HEAD).fetch_one(pool).await?,
        };
        to_u64(position, position, "audit index head")
    }

    /// Indexes `rows` and records that the log is indexed up to `up_to`, in one transaction.
    async fn write(&self, rows: &[IndexRow], up_to: u64) -> Result<(), StoreError> {
        let up_to = to_i64(up_to);
        match &self.backend {
            Backend::Sqlite(pool) => {
                let mut transaction = pool.begin().await?;
                if !rows.is_empty() {
                    let mut insert = QueryBuilder::<Sqlite>::new("");
                    push_rows!(insert, rows);
                    insert.build().execute(&mut *transaction).await?;
                }
                sqlx::query("UPDATE audit_index_head SET position = MAX(position, ?) WHERE id = 1")
                    .bind(up_to)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
            }
            Backend::Postgres(pool) => {
                let mut transaction = pool.begin().await?;
                if !rows.is_empty() {
                    let mut insert = QueryBuilder::<Postgres>::new("");
                    push_rows!(insert, rows);
                    insert.build().execute(&mut *transaction).await?;
                }
                sqlx::query("UPDATE audit_index_head SET position = GREATEST(position, $1) WHERE id = 1")
                    .bind(up_to)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
            }
        }
        Ok(())
    }
}
