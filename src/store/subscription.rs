//! Tailing the log: catch up from a position, then follow new commits as they happen.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use domain::RecordedEvent;
use tokio::sync::watch;

use super::{EventStore, StoreError};

const READ_BATCH: usize = 1000;
/// Commit signals cover this process and, on Postgres, every other one; polling is the
/// safety net for writers that cannot signal (another process on the same SQLite file).
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Yields every event after a starting position exactly once, in position order.
pub struct Subscription {
    store: Arc<dyn EventStore>,
    after: u64,
    buffered: VecDeque<RecordedEvent>,
    committed: watch::Receiver<u64>,
}

impl Subscription {
    pub(super) fn new(store: Arc<dyn EventStore>, after_position: u64) -> Self {
        let committed = store.committed();
        Self {
            store,
            after: after_position,
            buffered: VecDeque::new(),
            committed,
        }
    }

    /// The position of the last event yielded.
    pub fn position(&self) -> u64 {
        self.after
    }

    /// The next event, waiting for one to be committed if the tail has caught up.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                self.after = event.position;
                return Ok(event);
            }
            // Mark the signal seen before reading: a commit that lands after the read
            // then wakes the wait below instead of being missed.
            self.committed.borrow_and_update();
            let events = self.store.read_all(self.after, READ_BATCH).await?;
            if events.is_empty() {
                tokio::select! {
                    changed = self.committed.changed() => {
                        if changed.is_err() {
                            return Err(StoreError::Closed);
                        }
                    }
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                }
            }
            self.buffered.extend(events);
        }
    }
}
