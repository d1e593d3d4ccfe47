//! Folding the log into read models: at start-up, for `keyward replay`, and for any
//! point-in-time question.

use std::sync::Arc;

use projections::{Fold, ReadModels, Until};
use tokio::sync::mpsc;

use crate::store::{EventStore, StoreError};

/// Events read per query; large enough to amortize the round trip.
const READ_BATCH: usize = 10_000;

/// Builds every read model from the start of the log up to `until`, calling `progress`
/// with the position reached after each batch. Reading and folding overlap: one task
/// reads the next batch while this one folds the last.
pub async fn build(
    store: Arc<dyn EventStore>,
    until: Until,
    progress: impl FnMut(u64),
) -> Result<ReadModels, StoreError> {
    build_into(store, until, progress).await
}

/// Builds the models `M` (all of them, or a subset such as [`projections::AccessModels`]).
pub async fn build_into<M: Fold>(
    store: Arc<dyn EventStore>,
    until: Until,
    progress: impl FnMut(u64),
) -> Result<M, StoreError> {
    build_on(M::default(), store, until, progress).await
}

/// Folds into `models` the events after their position, up to `until`: a snapshot's tail.
/// Models that name the only event types they fold ([`Fold::EVENT_TYPES`]) are read just
/// those.
pub async fn build_on<M: Fold>(
    mut models: M,
    store: Arc<dyn EventStore>,
    until: Until,
    mut progress: impl FnMut(u64),
) -> Result<M, StoreError> {
    let (batches, mut received) = mpsc::channel(2);
    let mut after = models.position();
    let reader = tokio::spawn(async move {
        loop {
            let batch = match M::EVENT_TYPES {
                Some(types) => store.read_of_types(types, after, READ_BATCH).await,
                None => store.read_all(after, READ_BATCH).await,
            };
            let done = match &batch {
                Ok(events) => match events.last() {
                    Some(last) => {
                        after = last.position;
                        !until.includes(last)
                    }
                    None => true,
                },
                Err(_) => true,
            };
            if batches.send(batch).await.is_err() || done {
                return;
            }
        }
    });

    while let Some(batch) = received.recv().await {
        let events = batch?;
        for event in events.iter().take_while(|event| until.includes(event)) {
            models.apply(event);
        }
        progress(models.position());
    }
    // The reader ends on its own once it has sent its last batch.
    let _ = reader.await;
    Ok(models)
}
