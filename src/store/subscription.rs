//! Tailing the log: catch up from a position, then follow new commits as they happen.
//! This process's own commits arrive with their events (see [`EventStore::published`]);
//! the log is read only for what they do not cover: the catch-up, other processes'
//! commits, and a tail that fell behind.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use domain::RecordedEvent;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};

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
    published: broadcast::Receiver<Arc<[RecordedEvent]>>,
    /// The log is read whatever the signals say: at the start, after missing published
    /// events (a lag, a gap), and when a poll is due.
    read_the_log: bool,
}

impl Subscription {
    pub(super) fn new(store: Arc<dyn EventStore>, after_position: u64) -> Self {
        let committed = store.committed();
        let published = store.published();
        Self {
            store,
            after: after_position,
            buffered: VecDeque::new(),
            committed,
            published,
            read_the_log: true,
        }
    }

    /// The position of the last event yielded.
    pub fn position(&self) -> u64 {
        self.after
    }

    /// The next event, waiting for one to be committed if the tail has caught up.
    /// Cancel-safe: dropped before it returns, it has yielded nothing, and the next call
    /// starts after the last event yielded (a read of the log it dropped is done again, at
    /// the latest at the next poll).
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                self.after = event.position;
                return Ok(event);
            }
            while self.buffered.is_empty() {
                match self.published.try_recv() {
                    Ok(batch) => self.take(&batch),
                    Err(TryRecvError::Lagged(_)) => self.read_the_log = true,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            if !self.buffered.is_empty() {
                continue;
            }
            // Mark the signal seen before reading: a commit that lands after the read
            // then wakes the wait below instead of being missed.
            let committed = *self.committed.borrow_and_update();
            if committed > self.after || std::mem::take(&mut self.read_the_log) {
                let events = self.store.read_all(self.after, READ_BATCH).await?;
                if !events.is_empty() {
                    self.buffered.extend(events);
                    continue;
                }
            }
            tokio::select! {
                changed = self.committed.changed() => {
                    if changed.is_err() {
                        return Err(StoreError::Closed);
                    }
                }
                published = self.published.recv() => match published {
                    Ok(batch) => self.take(&batch),
                    Err(RecvError::Lagged(_)) => self.read_the_log = true,
                    Err(RecvError::Closed) => return Err(StoreError::Closed),
                },
                () = tokio::time::sleep(POLL_INTERVAL) => self.read_the_log = true,
            }
        }
    }

    /// The next event if one is at hand (buffered, or published by this process), without
    /// waiting or reading the log: what a batching reader takes after [`Subscription::next`].
    pub fn next_at_hand(&mut self) -> Option<RecordedEvent> {
        while self.buffered.is_empty() {
            match self.published.try_recv() {
                Ok(batch) => self.take(&batch),
                Err(TryRecvError::Lagged(_)) => {
                    self.read_the_log = true;
                    return None;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
        let event = self.buffered.pop_front()?;
        self.after = event.position;
        Some(event)
    }

    /// Buffers the events of a published batch that come right after what was yielded;
    /// a batch beyond a gap (one missed while reading the log) is left to the log.
    fn take(&mut self, batch: &[RecordedEvent]) {
        let next = self.buffered.back().map_or(self.after, |last| last.position) + 1;
        let Some(from) = batch.iter().position(|event| event.position == next) else {
            if batch.first().is_some_and(|first| first.position > next) {
                self.read_the_log = true;
            }
            return;
        };
        self.buffered.extend(batch[from..].iter().cloned());
    }
}
