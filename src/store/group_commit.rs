//! Group commit: one writer task per process takes every append queued while the previous
//! transaction was committing and writes them all in one transaction, so throughput grows
//! with the number of concurrent writers while each append still returns only once durable.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{RecordedEvent, StreamId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::batch::{BatchPlan, PendingAppend};
use super::{AppendError, Appended, EventStore, LogHead, StoreError, StreamAppend};

/// Caps one transaction; a single larger append still goes through, alone.
const MAX_BATCH_EVENTS: usize = 4096;
/// Appends waiting beyond this make callers wait for room: back-pressure, not memory growth.
const QUEUE_CAPACITY: usize = 8192;
/// Committed batches kept for tails that have not taken them yet; one further behind reads
/// the log instead.
const PUBLISHED_BATCHES: usize = 256;

/// What a SQL backend provides; batching, version checks and hashing are shared.
#[async_trait]
pub(super) trait LogBackend: Send + Sync + 'static {
    /// Whether other processes write the same log.
    const SHARED: bool;

    /// In one transaction that excludes every other writer of the log: reads the head and
    /// the versions of the streams `appends` touch, lets [`super::batch::plan`] decide,
    /// inserts its rows, records the new head and commits.
    async fn commit(&self, appends: Vec<PendingAppend>) -> Result<BatchPlan, StoreError>;

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError>;

    async fn read_of_types(
        &self,
        types: &'static [&'static str],
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    async fn head(&self) -> Result<LogHead, StoreError>;
}

struct Queued {
    append: PendingAppend,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

pub(super) struct GroupCommitStore<B> {
    backend: Arc<B>,
    queue: mpsc::Sender<Queued>,
    committed: Arc<watch::Sender<u64>>,
    published: broadcast::Sender<Arc<[RecordedEvent]>>,
}

impl<B: LogBackend> GroupCommitStore<B> {
    /// Starts the writer task. `committed` may also be fed by the backend, e.g. from
    /// another process's notifications.
    pub(super) fn start(backend: B, committed: Arc<watch::Sender<u64>>) -> Self {
        let backend = Arc::new(backend);
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (published, _) = broadcast::channel(PUBLISHED_BATCHES);
        tokio::spawn(write_batches(
            backend.clone(),
            receiver,
            committed.clone(),
            published.clone(),
        ));
        Self {
            backend,
            queue,
            committed,
            published,
        }
    }
}

async fn write_batches<B: LogBackend>(
    backend: Arc<B>,
    mut receiver: mpsc::Receiver<Queued>,
    committed: Arc<watch::Sender<u64>>,
    published: broadcast::Sender<Arc<[RecordedEvent]>>,
) {
    while let Some(first) = receiver.recv().await {
        let mut events = first.append.event_count();
        let mut batch = vec![first];
        while events < MAX_BATCH_EVENTS {
            match receiver.try_recv() {
                Ok(queued) => {
                    events += queued.append.event_count();
                    batch.push(queued);
                }
                Err(_) => break,
            }
        }
        let (appends, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|q| (q.append, q.reply)).unzip();
        let started = std::time::Instant::now();
        match backend.commit(appends).await {
            Ok(plan) => {
                crate::telemetry::record_commit(plan.rows.len(), started.elapsed());
                // Published before the position is raised: a tail woken by the position
                // finds the events already waiting. Nobody listening is no error.
                if !plan.rows.is_empty() {
                    let _ = published.send(plan.rows.into());
                }
                committed.send_if_modified(|known| raise(known, plan.head.position));
                for (reply, outcome) in replies.into_iter().zip(plan.outcomes) {
                    // A caller that gave up waiting no longer needs the answer.
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, appends = replies.len(), "group commit failed");
                for reply in replies {
                    let _ = reply.send(Err(error.clone().into()));
                }
            }
        }
    }
}

/// Raises a known committed position, never lowers it.
pub(super) fn raise(known: &mut u64, position: u64) -> bool {
    if position > *known {
        *known = position;
        true
    } else {
        false
    }
}

#[async_trait]
impl<B: LogBackend> EventStore for GroupCommitStore<B> {
    async fn append_atomic(&self, parts: Vec<StreamAppend>) -> Result<Appended, AppendError> {
        let (reply, answer) = oneshot::channel();
        let append = PendingAppend { parts };
        self.queue
            .send(Queued { append, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.backend.read_stream(stream, after_version, limit).await
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.backend.read_all(after_position, limit).await
    }

    async fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        self.backend.read_positions(positions).await
    }

    async fn read_of_types(
        &self,
        types: &'static [&'static str],
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.backend.read_of_types(types, after_position, limit).await
    }

    async fn head(&self) -> Result<LogHead, StoreError> {
        self.backend.head().await
    }

    fn committed(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    fn published(&self) -> broadcast::Receiver<Arc<[RecordedEvent]>> {
        self.published.subscribe()
    }

    fn is_shared(&self) -> bool {
        B::SHARED
    }
}
