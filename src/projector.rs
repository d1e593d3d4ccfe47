//! Keeps the read models current: loaded from the newest usable snapshot and the log's
//! tail at start-up (or folded from the whole log), then fed by a tail of the log, so
//! every process (and every replica) converges on the same state. Snapshots are written
//! in the background as the log grows, and at a clean shutdown (docs/cost.md).

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use projections::{ReadModels, Until};
use tokio::sync::watch;

use crate::replay;
use crate::store::snapshot::{self, SnapshotStore};
use crate::store::{self, EventStore, StoreError};

pub struct Projector {
    store: Arc<dyn EventStore>,
    models: RwLock<ReadModels>,
    applied: watch::Sender<u64>,
    snapshots: Option<Arc<dyn SnapshotStore>>,
    /// The position of the newest snapshot written or loaded.
    snapshotted: watch::Sender<u64>,
}

/// When the background writer takes a snapshot: once this many events have been folded
/// since the last one, or this long after it if any have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSchedule {
    pub every_events: u64,
    pub every: Duration,
}

impl Projector {
    /// Builds the read models from the log alone, then keeps them current in the
    /// background: for a log with nowhere to keep snapshots.
    pub async fn start(store: Arc<dyn EventStore>) -> Result<Arc<Self>, StoreError> {
        Self::start_with(store, None).await
    }

    /// Loads the newest usable snapshot and folds the log's tail onto it (the whole log if
    /// there is none), then keeps the models current, writing snapshots on `schedule`.
    pub async fn start_with(
        store: Arc<dyn EventStore>,
        snapshots: Option<(Arc<dyn SnapshotStore>, SnapshotSchedule)>,
    ) -> Result<Arc<Self>, StoreError> {
        let loaded = match &snapshots {
            Some((snapshots, _)) => snapshot::newest_usable(snapshots.as_ref(), store.as_ref()).await?,
            None => None,
        };
        let loaded_at = loaded.as_ref().map_or(0, |snapshot| snapshot.position);
        let start = loaded.map(|snapshot| snapshot.models).unwrap_or_default();
        let models = replay::build_on(start, store.clone(), Until::End, |_| {}).await?;
        tracing::info!(
            snapshot = loaded_at,
            tail = models.position() - loaded_at,
            "read models loaded"
        );
        let position = models.position();
        let projector = Arc::new(Self {
            store: store.clone(),
            models: RwLock::new(models),
            applied: watch::Sender::new(position),
            snapshots: snapshots.as_ref().map(|(snapshots, _)| snapshots.clone()),
            snapshotted: watch::Sender::new(loaded_at),
        });
        tokio::spawn(follow(Arc::downgrade(&projector), store, position));
        if let Some((_, schedule)) = snapshots {
            tokio::spawn(snapshot_on_schedule(Arc::downgrade(&projector), schedule));
        }
        Ok(projector)
    }

    /// Writes a snapshot of the models as they stand, unless the newest one already
    /// reflects them; the position it reflects. Building it holds up the tail only while
    /// the models are cloned; encoding and writing happen off the request path.
    pub async fn write_snapshot(&self) -> Result<Option<u64>, StoreError> {
        let Some(snapshots) = &self.snapshots else {
            return Ok(None);
        };
        let models = self.read(|models| (models.position() > *self.snapshotted.borrow()).then(|| models.clone()));
        let Some(models) = models else {
            return Ok(None);
        };
        let position = models.position();
        let Some(last) = self.store.read_all(position - 1, 1).await?.into_iter().next() else {
            return Ok(None);
        };
        let bytes = tokio::task::spawn_blocking(move || snapshot::encode(&models, last.hash))
            .await
            .map_err(|_| StoreError::Closed)?;
        snapshots.write(position, bytes).await?;
        self.snapshotted.send_replace(position);
        tracing::info!(position, "read-model snapshot written");
        Ok(Some(position))
    }

    /// The position of the last event folded into the read models.
    pub fn position(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Answers a question from the read models.
    pub fn read<T>(&self, question: impl FnOnce(&ReadModels) -> T) -> T {
        let models = self.models.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        question(&models)
    }

    /// Brings the read models up to everything committed before this call, on every
    /// replica: what makes a revocation through one replica refused by another on the
    /// very next request. The tail would get there within milliseconds, but "the next
    /// request" may be sooner. With one process, its own commits are already applied
    /// when they return, so this costs nothing; with replicas it costs one read of the
    /// log's head, not a query about the request.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        if self.store.is_shared() {
            let head = self.store.head().await?;
            self.caught_up_to(head.position).await;
        }
        Ok(())
    }

    /// Waits until the read models include `position`: a command handler's own write is
    /// visible to the reads that follow it.
    pub async fn caught_up_to(&self, position: u64) {
        let mut applied = self.applied.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we borrow it.
        let _ = applied.wait_for(|applied| *applied >= position).await;
    }
}

/// Events folded under one hold of the write lock at most: what keeps a request's read of
/// the models from waiting behind a long catch-up.
const FOLDED_PER_LOCK: usize = 1024;

async fn follow(projector: std::sync::Weak<Projector>, store: Arc<dyn EventStore>, after: u64) {
    let mut tail = store::subscribe(store, after);
    loop {
        match tail.next().await {
            Ok(first) => {
                let Some(projector) = projector.upgrade() else {
                    return;
                };
                let mut models = projector
                    .models
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                models.apply(&first);
                // A commit publishes its events together: they are folded together, and
                // every request waiting for one of them is woken once, not once per event.
                for _ in 1..FOLDED_PER_LOCK {
                    let Some(event) = tail.next_at_hand() else { break };
                    models.apply(&event);
                }
                let position = models.position();
                drop(models);
                projector.applied.send_replace(position);
            }
            Err(error) => {
                if projector.strong_count() == 0 {
                    return;
                }
                tracing::error!(%error, "cannot read the log; read models are paused");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn snapshot_on_schedule(projector: Weak<Projector>, schedule: SnapshotSchedule) {
    if schedule.every_events == 0 && schedule.every.is_zero() {
        return;
    }
    let Some(mut applied) = projector.upgrade().map(|projector| projector.applied.subscribe()) else {
        return;
    };
    // A zero turns its trigger off.
    let by_count = |since: u64| match schedule.every_events {
        0 => u64::MAX,
        every => since.saturating_add(every),
    };
    let by_time = match schedule.every {
        every if every.is_zero() => Duration::MAX,
        every => every,
    };
    loop {
        let Some(since) = projector.upgrade().map(|projector| *projector.snapshotted.borrow()) else {
            return;
        };
        let enough = by_count(since);
        let gone = tokio::time::timeout(by_time, applied.wait_for(|applied| *applied >= enough))
            .await
            .is_ok_and(|waited| waited.is_err());
        if gone {
            return;
        }
        let Some(projector) = projector.upgrade() else {
            return;
        };
        if let Err(error) = projector.write_snapshot().await {
            tracing::warn!(%error, "cannot write a read-model snapshot; trying again later");
            drop(projector);
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }
}
