//! Keeps the read models current: built from the log at start-up, then fed by a tail of
//! the log, so every process (and every replica) converges on the same state.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use projections::{ReadModels, Until};
use tokio::sync::watch;

use crate::replay;
use crate::store::{self, EventStore, StoreError};

pub struct Projector {
    store: Arc<dyn EventStore>,
    models: RwLock<ReadModels>,
    applied: watch::Sender<u64>,
}

impl Projector {
    /// Rebuilds the read models from the whole log, then keeps them current in the
    /// background.
    pub async fn start(store: Arc<dyn EventStore>) -> Result<Arc<Self>, StoreError> {
        let models = replay::build(store.clone(), Until::End, |_| {}).await?;
        let position = models.position();
        let projector = Arc::new(Self {
            store: store.clone(),
            models: RwLock::new(models),
            applied: watch::Sender::new(position),
        });
        tokio::spawn(follow(Arc::downgrade(&projector), store, position));
        Ok(projector)
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

async fn follow(projector: std::sync::Weak<Projector>, store: Arc<dyn EventStore>, after: u64) {
    let mut tail = store::subscribe(store, after);
    loop {
        match tail.next().await {
            Ok(event) => {
                let Some(projector) = projector.upgrade() else {
                    return;
                };
                let mut models = projector
                    .models
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                models.apply(&event);
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
