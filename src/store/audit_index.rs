//! The audit trail, answered from an index in the log's database instead of memory
//! (docs/cost.md). The indexer tails the log and writes, per event, the columns
//! `GET /v1/audit/events` filters on; a query finds an org's matching positions through
//! the index, and the records are read from the events at those positions. The index is
//! derived data: its tables dropped, it is rebuilt from the log.
//!
//! Rows are narrow (docs/cost.md, "Disk"): the organization, action, actor and resource
//! are numbers standing for terms kept once in `audit_terms`, and there is no time column,
//! for positions follow time: a time window is found in the log as a range of positions.
//!
//! Every replica indexes; rows are keyed by position, and a writer locks the index's head
//! before it inserts the rows past it, so replicas sharing Postgres never write a row twice.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::OrgId;
use domain::events::Event;
use projections::audit::{AuditQuery, AuditRecord};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};
use tokio::sync::watch;

use super::{EventStore, StoreError, to_i64, to_u64};

/// Events indexed per write, in one transaction. Each write rewrites the index pages it
/// touches whatever the number of rows, so larger batches cost less per event.
const BATCH: usize = 5000;
/// Rows (or terms) per statement, within both backends' limits on bound parameters.
const ROWS_PER_STATEMENT: usize = 1000;
/// Index rows per insert: a batch's full statements are all the same one, prepared once.
const ROWS_PER_INSERT: usize = 128;
/// Locks the index's head for the rest of the transaction, and reads it.
const LOCK_HEAD: &str = "UPDATE audit_index_head SET position = position WHERE id = 1 RETURNING position";
/// How long a batch waits for more events after its first: a query waits for the index at
/// most this much longer, and a steady trickle of events is written in fewer transactions.
const LINGER: Duration = Duration::from_millis(50);
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows written before Postgres first samples the index's tables again.
const FIRST_ANALYZE: usize = 100_000;
/// The page cache of each of the index's SQLite connections (two at most).
const SQLITE_CACHE_KIB: u32 = 16 * 1024;

pub struct AuditIndex {
    backend: Backend,
    /// Every event up to this position is indexed.
    indexed: watch::Sender<u64>,
    /// Rows this process wrote, and how many it will have written when Postgres next
    /// samples the index's tables: see [`AuditIndex::refresh_statistics`].
    rows_written: Mutex<(usize, usize)>,
}

enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What the index keeps of one event, as terms; stored as their numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IndexRow {
    position: i64,
    org: String,
    action: &'static str,
    actor: Option<String>,
    resource: String,
}

impl IndexRow {
    /// The row of a record an organization owns; none for the others, which no query of
    /// an organization's trail returns.
    fn of(record: &AuditRecord) -> Option<Self> {
        Some(Self {
            position: to_i64(record.position),
            org: record.org_id?.to_string(),
            action: record.action,
            actor: record.actor_id.clone(),
            resource: record.resource_id.clone(),
        })
    }

    fn terms(&self) -> impl Iterator<Item = &str> {
        [
            Some(self.org.as_str()),
            Some(self.action),
            self.actor.as_deref(),
            Some(&self.resource),
        ]
        .into_iter()
        .flatten()
    }
}

/// The positions a query's time window spans in the log: those of the events recorded at
/// or after `from` and at or before `to`.
#[derive(Debug, Clone, Copy)]
struct PositionRange {
    first: Option<i64>,
    last: Option<i64>,
}

impl PositionRange {
    /// Found by searching the log up to `head`, whose recorded_at never decreases: about
    /// log₃₂(head) reads for each bound (see [`first_position_where`]), whatever the
    /// window holds.
    async fn of(store: &dyn EventStore, query: &AuditQuery, head: u64) -> Result<Self, StoreError> {
        let first = match query.from {
            Some(from) => Some(first_position_where(store, head, |at| at >= from).await?),
            None => None,
        };
        let last = match query.to {
            Some(to) => Some(first_position_where(store, head, |at| at > to).await? - 1),
            None => None,
        };
        Ok(Self {
            first: first.map(to_i64),
            last: last.map(to_i64),
        })
    }
}

/// Positions read at each step of the search for a time window's bounds.
const PROBES: u64 = 32;

/// The first position in 1..=`head` whose event's recorded_at satisfies `reached` (which,
/// once true, stays true along the log), or `head + 1` if none does. A search in steps
/// that each read [`PROBES`] evenly spaced events in one query: about log₃₂(head) reads,
/// 5 for 10 million events, each a round trip to a database server.
async fn first_position_where(
    store: &dyn EventStore,
    head: u64,
    reached: impl Fn(DateTime<Utc>) -> bool,
) -> Result<u64, StoreError> {
    // The answer is within low..=high.
    let (mut low, mut high) = (1, head + 1);
    while low < high {
        let span = high - low;
        let mut probes: Vec<u64> = if span <= PROBES {
            (low..high).collect()
        } else {
            (1..=PROBES).map(|i| low + span * i / (PROBES + 1)).collect()
        };
        probes.dedup();
        let read: HashMap<u64, DateTime<Utc>> = store
            .read_positions(&probes)
            .await?
            .into_iter()
            .map(|event| (event.position, event.recorded_at))
            .collect();
        let (mut below, mut at) = (low, high);
        for probe in probes {
            let recorded_at = match read.get(&probe) {
                Some(&recorded_at) => Some(recorded_at),
                None => recorded_at_or_after(store, probe).await?,
            };
            if recorded_at.is_none_or(&reached) {
                at = probe;
                break;
            }
            below = probe + 1;
        }
        (low, high) = (below, at);
    }
    Ok(low)
}

/// When the event at `position` was recorded, or, should it be missing from the log (a
/// tampered log, which verification must still be able to look at), the next one present:
/// either way a time that never decreases along the positions. None past the last event.
async fn recorded_at_or_after(store: &dyn EventStore, position: u64) -> Result<Option<DateTime<Utc>>, StoreError> {
    let events = store.read_all(position - 1, 1).await?;
    Ok(events.first().map(|event| event.recorded_at))
}

/// The number of `$term`, as a subquery: NULL, which matches nothing, for a term the
/// index never named.
const TERM: &str = "(SELECT id FROM audit_terms WHERE term = ";

/// Binds the filter of `$query` for `$org`, within `$range`, onto the query builder
/// `$builder`: the same SQL on both backends, whose builders differ in type only.
macro_rules! push_filter {
    ($builder:expr, $org:expr, $query:expr, $range:expr) => {{
        $builder
            .push(" FROM audit_index WHERE org = ")
            .push(TERM)
            .push_bind($org.to_string())
            .push(")");
        if let Some(action) = &$query.action {
            $builder
                .push(" AND action = ")
                .push(TERM)
                .push_bind(action.clone())
                .push(")");
        }
        if let Some(actor) = &$query.actor_id {
            $builder
                .push(" AND actor = ")
                .push(TERM)
                .push_bind(actor.clone())
                .push(")");
        }
        if let Some(resource) = &$query.resource_id {
            $builder
                .push(" AND resource = ")
                .push(TERM)
                .push_bind(resource.clone())
                .push(")");
        }
        if let Some(first) = $range.first {
            $builder.push(" AND position >= ").push_bind(first);
        }
        if let Some(last) = $range.last {
            $builder.push(" AND position <= ").push_bind(last);
        }
    }};
}

/// The numbers of `$terms` (distinct), numbering those the index has not named yet, within
/// the transaction `$transaction` on `$db`: a map from term to number.
macro_rules! number_terms {
    ($db:ty, $transaction:expr, $terms:expr) => {{
        let terms: Vec<&str> = $terms;
        let mut numbers: HashMap<String, i64> = HashMap::with_capacity(terms.len());
        // Looked up first, so that the common case, every term known, writes nothing; then
        // the new ones inserted (another replica may insert one at the same moment: the
        // conflict leaves its number), then looked up again.
        for inserting in [false, true] {
            let missing: Vec<&str> = terms
                .iter()
                .copied()
                .filter(|term| !numbers.contains_key(*term))
                .collect();
            if missing.is_empty() {
                break;
            }
            for chunk in missing.chunks(ROWS_PER_STATEMENT) {
                if inserting {
                    let mut insert = QueryBuilder::<$db>::new("INSERT INTO audit_terms (term) ");
                    insert.push_values(chunk, |mut values, term| {
                        values.push_bind(term.to_string());
                    });
                    insert.push(" ON CONFLICT (term) DO NOTHING");
                    insert.build().execute(&mut *$transaction).await?;
                }
                let mut select = QueryBuilder::<$db>::new("SELECT id, term FROM audit_terms WHERE term IN (");
                let mut listed = select.separated(", ");
                for term in chunk {
                    listed.push_bind(term.to_string());
                }
                select.push(")");
                for row in select.build().fetch_all(&mut *$transaction).await? {
                    numbers.insert(row.try_get(1)?, row.try_get(0)?);
                }
            }
        }
        numbers
    }};
}

/// Pushes the condition naming the rows of `audit_index_counts` that count `$org`'s
/// events matching `$query`'s action, actor and resource, with the table, onto `$builder`.
macro_rules! push_counts_of {
    ($builder:expr, $org:expr, $query:expr) => {{
        $builder
            .push(" FROM audit_index_counts WHERE org = ")
            .push(TERM)
            .push_bind($org.to_string())
            .push(") AND facet = ")
            .push_bind(i64::from(Facet::of($query).0));
        for (column, filter) in [
            ("action", &$query.action),
            ("actor", &$query.actor_id),
            ("resource", &$query.resource_id),
        ] {
            $builder.push(format_args!(" AND {column} = "));
            match filter {
                Some(term) => $builder.push(TERM).push_bind(term.clone()).push(")"),
                None => $builder.push("0"),
            };
        }
    }};
}

/// Where a page `$offset` entries from the newest of `$range` starts, on `$db`: the
/// range narrowed below the whole blocks the offset skips, and the offset left within it,
/// so that a deep page walks at most a block's worth of index entries it does not return.
/// `$blocks` are the range's whole blocks, as its count plan has them.
macro_rules! skip_whole_blocks {
    ($db:ty, $pool:expr, $org:expr, $query:expr, $range:expr, $blocks:expr, $offset:expr) => {{
        let range: PositionRange = $range;
        let blocks = match $blocks {
            Blocks::WholeHistory => Some((0, None)),
            Blocks::From(first) => Some((*first, None)),
            Blocks::Between(first, last) => Some((*first, Some(*last))),
            Blocks::None => None,
        };
        match blocks {
            Some((first, last)) if $offset > 0 => {
                // Newer than the last whole block: what the window holds of the block at
                // its end, counted in the index.
                let newer = match (last, range.last) {
                    (Some(last_whole), Some(last)) => {
                        let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*)");
                        let edge = PositionRange {
                            first: Some((last_whole + 1) * BLOCK),
                            last: Some(last),
                        };
                        push_filter!(count, $org, $query, edge);
                        count.build().fetch_one($pool).await?.try_get::<i64, _>(0)?
                    }
                    _ => 0,
                };
                let mut counts = QueryBuilder::<$db>::new("SELECT block, count");
                push_counts_of!(counts, $org, $query);
                counts.push(" AND block >= ").push_bind(first);
                if let Some(last) = last {
                    counts.push(" AND block <= ").push_bind(last);
                }
                counts.push(" ORDER BY block DESC");
                let mut newest_first = Vec::new();
                for row in counts.build().fetch_all($pool).await? {
                    newest_first.push((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?));
                }
                match skipped_blocks($offset, newer, &newest_first) {
                    Some((oldest_skipped, skipped)) => (
                        PositionRange {
                            first: range.first,
                            last: Some(oldest_skipped * BLOCK - 1),
                        },
                        $offset - skipped,
                    ),
                    None => (range, $offset),
                }
            }
            _ => (range, $offset),
        }
    }};
}

/// A page of matching positions, newest first, and how many match in all, on `$db`.
macro_rules! page_and_count {
    ($db:ty, $pool:expr, $org:expr, $query:expr, $range:expr, $offset:expr, $limit:expr) => {{
        let plan = CountPlan::of($range, BLOCK);
        let (page_range, page_offset) = skip_whole_blocks!($db, $pool, $org, $query, $range, &plan.blocks, $offset);
        let mut page = QueryBuilder::<$db>::new("SELECT position");
        push_filter!(page, $org, $query, page_range);
        page.push(" ORDER BY position DESC LIMIT ")
            .push_bind($limit)
            .push(" OFFSET ")
            .push_bind(page_offset);
        let mut count = QueryBuilder::<$db>::new("SELECT CAST((SELECT COALESCE(SUM(count), 0)");
        push_counts_of!(count, $org, $query);
        match plan.blocks {
            Blocks::WholeHistory => count.push(" AND block = ").push_bind(WHOLE_HISTORY),
            Blocks::From(first) => count.push(" AND block >= ").push_bind(first),
            Blocks::Between(first, last) => count
                .push(" AND block BETWEEN ")
                .push_bind(first)
                .push(" AND ")
                .push_bind(last),
            Blocks::None => count.push(" AND FALSE"),
        };
        count.push(")");
        for (first, last) in plan.edges {
            count.push(" + (SELECT COUNT(*)");
            let edge = PositionRange {
                first: Some(first),
                last: Some(last),
            };
            push_filter!(count, $org, $query, edge);
            count.push(")");
        }
        count.push(" AS BIGINT)");
        let rows = page.build().fetch_all($pool).await?;
        let total: i64 = count.build().fetch_one($pool).await?.try_get(0)?;
        let positions: Vec<i64> = rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
        (positions, total)
    }};
}

/// The whole blocks a page `offset` entries from the newest can skip: given the matching
/// entries `newer` than the blocks, and the blocks' counts newest first (a block with
/// none has no count), the oldest block skipped and how many entries are skipped in all
/// (`newer` with them); None if the page starts before the newest block ends.
fn skipped_blocks(offset: i64, newer: i64, newest_first: &[(i64, i64)]) -> Option<(i64, i64)> {
    let mut skipped = newer;
    let mut oldest_skipped = None;
    for &(block, count) in newest_first {
        if skipped + count > offset {
            break;
        }
        skipped += count;
        oldest_skipped = Some(block);
    }
    oldest_skipped.map(|block| (block, skipped))
}

/// Inserts the `$rows` past the index's head, adds them to the counts, and raises the head
/// with `$raise_head` (bound to `$up_to`), in one transaction on `$db`.
macro_rules! write_batch {
    ($db:ty, $pool:expr, $rows:expr, $raise_head:expr, $up_to:expr) => {{
        let mut transaction = $pool.begin().await?;
        // The head's row is locked first: another writer of the same index (a replica on
        // Postgres, another process on the SQLite file) waits here until this one commits.
        // Every position up to the head is indexed and none past it, so the rows past it
        // are this writer's alone to insert and to count.
        let head: i64 = sqlx::query_scalar(LOCK_HEAD).fetch_one(&mut *transaction).await?;
        let rows: Vec<&IndexRow> = $rows.iter().filter(|row| row.position > head).collect();
        let distinct: BTreeSet<&str> = rows.iter().copied().flat_map(IndexRow::terms).collect();
        let numbers = number_terms!($db, transaction, distinct.into_iter().collect());
        let number = |term: &str| {
            numbers.get(term).copied().ok_or_else(|| StoreError::Corrupt {
                position: 0,
                reason: format!("the audit index could not number the term {term:?}"),
            })
        };
        let numbered = rows
            .iter()
            .map(|row| {
                let actor = row.actor.as_deref().map(number).transpose()?;
                Ok((
                    row.position,
                    number(&row.org)?,
                    number(row.action)?,
                    actor,
                    number(&row.resource)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Statements of a fixed size are prepared once per connection and then reused.
        for chunk in numbered.chunks(ROWS_PER_INSERT) {
            let mut insert =
                QueryBuilder::<$db>::new("INSERT INTO audit_index (position, org, action, actor, resource) ");
            insert.push_values(chunk, |mut values, (position, org, action, actor, resource)| {
                values
                    .push_bind(*position)
                    .push_bind(*org)
                    .push_bind(*action)
                    .push_bind(*actor)
                    .push_bind(*resource);
            });
            insert.build().execute(&mut *transaction).await?;
        }
        // Rows by their terms and block first: a batch holds few distinct ones, each then
        // spread over the counts it adds to.
        let mut inserted_terms: HashMap<(i64, i64, i64, Option<i64>, i64), i64> = HashMap::new();
        for (position, org, action, actor, resource) in numbered {
            *inserted_terms
                .entry((position.div_euclid(BLOCK), org, action, actor, resource))
                .or_default() += 1;
        }
        let mut inserted: HashMap<CountKey, i64> = HashMap::new();
        for ((block, org, action, actor, resource), rows) in inserted_terms {
            for key in CountKey::of_row(block, org, action, actor, resource) {
                *inserted.entry(key).or_default() += rows;
            }
        }
        // In one order everywhere, so that replicas adding to the same counts never wait
        // on each other in a cycle.
        let mut inserted: Vec<(CountKey, i64)> = inserted.into_iter().collect();
        inserted.sort_unstable();
        for counts in inserted.chunks(ROWS_PER_STATEMENT / 2) {
            let mut add = QueryBuilder::<$db>::new(
                "INSERT INTO audit_index_counts (org, facet, action, actor, resource, block, count) ",
            );
            add.push_values(counts, |mut values, (key, count)| {
                values
                    .push_bind(key.org)
                    .push_bind(i64::from(key.facet.0))
                    .push_bind(key.action)
                    .push_bind(key.actor)
                    .push_bind(key.resource)
                    .push_bind(key.block)
                    .push_bind(*count);
            });
            add.push(
                " ON CONFLICT (org, facet, action, actor, resource, block) \
                 DO UPDATE SET count = audit_index_counts.count + excluded.count",
            );
            add.build().execute(&mut *transaction).await?;
        }
        sqlx::query($raise_head).bind($up_to).execute(&mut *transaction).await?;
        transaction.commit().await?;
    }};
}

/// Positions per block of the counts: a time window's total reads the counts of the blocks
/// it spans whole and counts index rows in at most one block at either edge.
const BLOCK: i64 = 4096;
/// The block of the counts standing for the whole history.
const WHOLE_HISTORY: i64 = -1;

/// The fields a query filters on, as a set: 1 action, 2 actor, 4 resource. The counts keep
/// a total for every facet, so any query's is read, never counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Facet(u8);

impl Facet {
    const ACTION: u8 = 1;
    const ACTOR: u8 = 2;
    const RESOURCE: u8 = 4;

    fn of(query: &AuditQuery) -> Self {
        let bit = |filtered: bool, bit: u8| if filtered { bit } else { 0 };
        Self(
            bit(query.action.is_some(), Self::ACTION)
                | bit(query.actor_id.is_some(), Self::ACTOR)
                | bit(query.resource_id.is_some(), Self::RESOURCE),
        )
    }

    fn filters(self, field: u8) -> bool {
        self.0 & field != 0
    }
}

/// One row of `audit_index_counts`: an organization's events matching a facet's terms (0
/// for a field it does not filter on) within a block of positions, or the whole history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct CountKey {
    org: i64,
    facet: Facet,
    action: i64,
    actor: i64,
    resource: i64,
    block: i64,
}

impl CountKey {
    /// The counts an index row in `block` adds one to: those of every facet it matches (an
    /// event with no actor matches none that filters on one), in its block and in the whole
    /// history.
    fn of_row(block: i64, org: i64, action: i64, actor: Option<i64>, resource: i64) -> Vec<Self> {
        let mut keys = Vec::with_capacity(16);
        for facet in (0..8).map(Facet) {
            let actor = match (facet.filters(Facet::ACTOR), actor) {
                (false, _) => 0,
                (true, Some(actor)) => actor,
                (true, None) => continue,
            };
            for block in [block, WHOLE_HISTORY] {
                keys.push(Self {
                    org,
                    facet,
                    action: if facet.filters(Facet::ACTION) { action } else { 0 },
                    actor,
                    resource: if facet.filters(Facet::RESOURCE) { resource } else { 0 },
                    block,
                });
            }
        }
        keys
    }
}

/// How a total over a range of positions is taken: from the counts of the blocks the range
/// spans whole, plus index rows counted in the parts of the blocks at its edges.
#[derive(Debug, PartialEq, Eq)]
struct CountPlan {
    blocks: Blocks,
    /// Ranges of positions, first and last inclusive, whose rows are counted in the index:
    /// fewer than two blocks' worth in all.
    edges: Vec<(i64, i64)>,
}

/// The rows of `audit_index_counts` a total sums.
#[derive(Debug, PartialEq, Eq)]
enum Blocks {
    /// The one kept for the whole history: a query with no time window.
    WholeHistory,
    /// Every block from this one on: a window open at its end.
    From(i64),
    /// The blocks from the first to the last given, both included.
    Between(i64, i64),
    /// None: the window spans no block whole.
    None,
}

impl CountPlan {
    fn of(range: PositionRange, block: i64) -> Self {
        let (first, last) = match (range.first, range.last) {
            (None, None) => {
                return Self {
                    blocks: Blocks::WholeHistory,
                    edges: vec![],
                };
            }
            (first, last) => (first.unwrap_or(0).max(0), last),
        };
        // The first block that starts at or after `first`.
        let first_whole = (first + block - 1).div_euclid(block);
        let head_edge = (first, first_whole * block - 1);
        let mut edges = vec![];
        let blocks = match last {
            None => {
                edges.push(head_edge);
                Blocks::From(first_whole)
            }
            Some(last) if last < first => Blocks::None,
            Some(last) => {
                // The last block that ends at or before `last`.
                let last_whole = (last + 1).div_euclid(block) - 1;
                if first_whole <= last_whole {
                    edges.push(head_edge);
                    edges.push(((last_whole + 1) * block, last));
                    Blocks::Between(first_whole, last_whole)
                } else {
                    edges.push((first, last));
                    Blocks::None
                }
            }
        };
        edges.retain(|(first, last)| first <= last);
        Self { blocks, edges }
    }
}

impl AuditIndex {
    /// Opens the index of the log `database_url` names: on Postgres in the log's database,
    /// whose migrations the event store's `open` ran; on SQLite in a file of its own.
    pub async fn open(database_url: &str) -> Result<Arc<Self>, StoreError> {
        let backend = if database_url.starts_with("sqlite:") {
            let log = SqliteConnectOptions::from_str(database_url)?;
            let file = format!("{}.audit-index", log.get_filename().display());
            // Normal, not Full: a write lost to a power cut is indexed again from the log,
            // since the head moves in the same transaction.
            let options = SqliteConnectOptions::new()
                .filename(file)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(BUSY_TIMEOUT)
                // A batch touches a few pages of each index: held in the cache, they are
                // written once per transaction, not spilled and read back mid-batch.
                .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"));
            let pool = SqlitePoolOptions::new()
                .max_connections(2)
                .acquire_timeout(BUSY_TIMEOUT)
                .connect_with(options)
                .await?;
            sqlx::migrate!("./migrations/sqlite-audit-index").run(&pool).await?;
            Backend::Sqlite(pool)
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
            rows_written: Mutex::new((0, FIRST_ANALYZE)),
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
                let deadline = tokio::time::Instant::now() + LINGER;
                while events.len() < BATCH {
                    if let Some(event) = tail.next_at_hand() {
                        events.push(event);
                        continue;
                    }
                    // Subscription::next is cancel-safe: an event it has not yielded stays
                    // for the next call.
                    match tokio::time::timeout_at(deadline, tail.next()).await {
                        Ok(Ok(event)) => events.push(event),
                        Ok(Err(_)) | Err(_) => break,
                    }
                }
                let Some(index) = index.upgrade() else { return };
                let up_to = tail.position();
                let rows: Vec<IndexRow> = events
                    .iter()
                    .filter_map(|recorded| {
                        let event = Event::decode(recorded)?.ok()?;
                        AuditRecord::without_details(recorded, &event).and_then(|record| IndexRow::of(&record))
                    })
                    .collect();
                while let Err(error) = index.write(&rows, up_to).await {
                    tracing::error!(%error, "cannot write the audit index; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                index.indexed.send_replace(up_to);
                index.refresh_statistics(rows.len()).await;
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
    /// `offset`; and how many match in all. `store` is the log indexed, where a time
    /// window is looked up.
    pub async fn query(
        &self,
        store: &dyn EventStore,
        org: OrgId,
        query: &AuditQuery,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<u64>, usize), StoreError> {
        self.query_up_to(store, org, query, None, offset, limit).await
    }

    /// As [`Self::query`], among the events up to position `up_to` only, if given.
    pub async fn query_up_to(
        &self,
        store: &dyn EventStore,
        org: OrgId,
        query: &AuditQuery,
        up_to: Option<u64>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<u64>, usize), StoreError> {
        let mut range = PositionRange::of(store, query, self.position()).await?;
        if let Some(up_to) = up_to.map(to_i64) {
            range.last = Some(range.last.map_or(up_to, |last| last.min(up_to)));
        }
        let (offset, limit) = (to_i64(offset as u64), to_i64(limit as u64));
        let (positions, total) = match &self.backend {
            Backend::Sqlite(pool) => page_and_count!(Sqlite, pool, org, query, range, offset, limit),
            Backend::Postgres(pool) => page_and_count!(Postgres, pool, org, query, range, offset, limit),
        };
        let positions = positions
            .into_iter()
            .map(|position| to_u64(position, position, "audit index position"))
            .collect::<Result<_, _>>()?;
        Ok((positions, usize::try_from(total).unwrap_or(usize::MAX)))
    }

    /// The positions of `org`'s events matching `query`, oldest first, at most `limit`.
    pub async fn positions_in_log_order(
        &self,
        store: &dyn EventStore,
        org: OrgId,
        query: &AuditQuery,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let range = PositionRange::of(store, query, self.position()).await?;
        let limit = to_i64(limit as u64);
        let rows: Vec<i64> = match &self.backend {
            Backend::Sqlite(pool) => {
                let mut select = QueryBuilder::<Sqlite>::new("SELECT position");
                push_filter!(select, org, query, range);
                select.push(" ORDER BY position ASC LIMIT ").push_bind(limit);
                select.build_query_scalar().fetch_all(pool).await?
            }
            Backend::Postgres(pool) => {
                let mut select = QueryBuilder::<Postgres>::new("SELECT position");
                push_filter!(select, org, query, range);
                select.push(" ORDER BY position ASC LIMIT ").push_bind(limit);
                select.build_query_scalar().fetch_all(pool).await?
            }
        };
        rows.into_iter()
            .map(|position| to_u64(position, position, "audit index position"))
            .collect()
    }

    /// The records at `positions`, read from the log, in the same order.
    pub async fn records(store: &dyn EventStore, positions: &[u64]) -> Result<Vec<AuditRecord>, StoreError> {
        let events = super::read_in_order(store, positions).await?;
        Ok(events
            .iter()
            .filter_map(|recorded| {
                let event = Event::decode(recorded)?.ok()?;
                AuditRecord::of(recorded, &event)
            })
            .collect())
    }

    /// Has Postgres sample the index's tables each time this process has doubled the rows
    /// it wrote, from [`FIRST_ANALYZE`] on: a rebuild writes millions before autovacuum
    /// gets to them, and planned with the empty tables' statistics, a page of an
    /// organization's newest events sorts all of them instead of walking the index
    /// backwards, a hundred times slower. Past the rebuild, autovacuum keeps up.
    async fn refresh_statistics(&self, written: usize) {
        let Backend::Postgres(pool) = &self.backend else { return };
        {
            let mut rows = self
                .rows_written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let (total, next) = &mut *rows;
            *total += written;
            if *total < *next {
                return;
            }
            *next = *total * 2;
        }
        if let Err(error) = sqlx::query("ANALYZE audit_index, audit_index_counts")
            .execute(pool)
            .await
        {
            tracing::warn!(%error, "cannot refresh the audit index's statistics");
        }
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
            Backend::Sqlite(pool) => write_batch!(
                Sqlite,
                pool,
                rows,
                "UPDATE audit_index_head SET position = MAX(position, ?) WHERE id = 1",
                up_to
            ),
            Backend::Postgres(pool) => write_batch!(
                Postgres,
                pool,
                rows,
                "UPDATE audit_index_head SET position = GREATEST(position, $1) WHERE id = 1",
                up_to
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many times a plan counts each position of 0..`end`: once for each edge or block
    /// holding it.
    fn coverage(plan: &CountPlan, block: i64, end: i64) -> Vec<u32> {
        (0..end)
            .map(|position| {
                let in_blocks = match plan.blocks {
                    Blocks::WholeHistory => true,
                    Blocks::From(first) => position.div_euclid(block) >= first,
                    Blocks::Between(first, last) => (first..=last).contains(&position.div_euclid(block)),
                    Blocks::None => false,
                };
                let in_edges = plan
                    .edges
                    .iter()
                    .filter(|(first, last)| (*first..=*last).contains(&position))
                    .count();
                u32::from(in_blocks) + in_edges as u32
            })
            .collect()
    }

    #[test]
    fn a_plan_counts_every_position_of_its_range_once_and_no_other() {
        const BLOCK: i64 = 4;
        const END: i64 = 6 * BLOCK;
        let bounds = || std::iter::once(None).chain((0..END).map(Some));
        for first in bounds() {
            for last in bounds() {
                let range = PositionRange { first, last };
                let plan = CountPlan::of(range, BLOCK);
                let expected: Vec<u32> = (0..END)
                    .map(|p| u32::from(first.is_none_or(|f| p >= f) && last.is_none_or(|l| p <= l)))
                    .collect();
                assert_eq!(coverage(&plan, BLOCK, END), expected, "{range:?}: {plan:?}");
                let counted_in_index: i64 = plan.edges.iter().map(|(from, to)| to - from + 1).sum();
                assert!(counted_in_index < 2 * BLOCK, "at most two blocks' worth: {plan:?}");
            }
        }
    }

    #[test]
    fn a_deep_page_skips_the_whole_blocks_before_it_and_no_more() {
        // Blocks 9, 7 and 6 hold 10, 5 and 20 matching entries; 3 are newer than block 9.
        let blocks = [(9, 10), (7, 5), (6, 20)];
        assert_eq!(skipped_blocks(2, 3, &blocks), None, "within the newer entries");
        assert_eq!(skipped_blocks(12, 3, &blocks), None, "within block 9");
        assert_eq!(skipped_blocks(13, 3, &blocks), Some((9, 13)), "block 9 skipped whole");
        assert_eq!(skipped_blocks(17, 3, &blocks), Some((9, 13)));
        assert_eq!(skipped_blocks(18, 3, &blocks), Some((7, 18)));
        assert_eq!(skipped_blocks(38, 3, &blocks), Some((6, 38)), "past every entry");
        assert_eq!(skipped_blocks(100, 3, &blocks), Some((6, 38)));
    }

    #[test]
    fn a_row_counts_in_every_facet_it_matches_in_its_block_and_the_whole_history() {
        let keys = CountKey::of_row(1, 1, 2, Some(3), 4);
        assert_eq!(keys.len(), 16);
        assert!(keys.iter().all(|key| [1, WHOLE_HISTORY].contains(&key.block)));
        let everything = keys.iter().find(|key| key.facet == Facet(7)).unwrap();
        assert_eq!((everything.action, everything.actor, everything.resource), (2, 3, 4));
        let by_resource = keys.iter().find(|key| key.facet == Facet(Facet::RESOURCE)).unwrap();
        assert_eq!((by_resource.action, by_resource.actor, by_resource.resource), (0, 0, 4));

        let without_actor = CountKey::of_row(1, 1, 2, None, 4);
        assert_eq!(without_actor.len(), 8);
        assert!(without_actor.iter().all(|key| !key.facet.filters(Facet::ACTOR)));
    }
}
