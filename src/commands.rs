//! Executing decisions: a handler's changes become one atomic append, and the handler
//! returns only once the read models include it, so the next request reads its write.

use std::sync::Arc;

use domain::change::{Change, DomainError};
use domain::{Metadata, NewEvent};
use projections::ReadModels;

use crate::projector::Projector;
use crate::store::{AppendError, Appended, EventStore, StreamAppend};

/// Decisions are retried this often when another request changed a stream between
/// reading the state and appending. Every conflict means another request got through, so
/// contention resolves; the bound only guards against a livelock bug. It must exceed the
/// contenders of one stream (20 concurrent reads of a secret allowed 5 reads get 5 values
/// and 15 clean refusals, not conflicts).
pub const ATTEMPTS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error("cannot encode an event: {0}")]
    Encoding(#[from] serde_json::Error),
}

#[derive(Clone)]
pub struct Commands {
    store: Arc<dyn EventStore>,
    projector: Arc<Projector>,
}

impl Commands {
    pub fn new(store: Arc<dyn EventStore>, projector: Arc<Projector>) -> Self {
        Self { store, projector }
    }

    /// Appends `changes` in one transaction and waits for the read models to include them.
    pub async fn execute(&self, changes: Vec<Change>, metadata: &Metadata) -> Result<Appended, CommandError> {
        let parts = changes
            .into_iter()
            .map(|change| encode(change, metadata))
            .collect::<Result<Vec<_>, _>>()?;
        self.append(parts).await
    }

    /// Appends events already encoded, each with its own metadata (decisions taken for
    /// several requests together), in one transaction; waits for the read models.
    pub async fn append(&self, parts: Vec<StreamAppend>) -> Result<Appended, CommandError> {
        let appended = self.store.append_atomic(parts).await?;
        self.projector.caught_up_to(appended.position).await;
        Ok(appended)
    }

    /// After a conflict: the read models catch up with the log's head, for a new decision.
    pub async fn catch_up_after_conflict(&self) -> Result<(), CommandError> {
        let head = self.store.head().await.map_err(AppendError::from)?;
        self.projector.caught_up_to(head.position).await;
        Ok(())
    }

    /// Decides on the current read models and executes the decision. When a stream moved
    /// on in between (another request, another replica), the read models catch up and the
    /// decision is made again on the newer state.
    pub async fn decide(
        &self,
        metadata: &Metadata,
        decision: impl Fn(&ReadModels) -> Result<Vec<Change>, DomainError>,
    ) -> Result<Appended, CommandError> {
        let (appended, ()) = self
            .decide_with(metadata, |models| decision(models).map(|changes| (changes, ())))
            .await?;
        Ok(appended)
    }

    /// [`Commands::decide`], also returning what the decision saw beside its changes,
    /// taken from the same state (a secret read returns the version it recorded).
    pub async fn decide_with<T>(
        &self,
        metadata: &Metadata,
        decision: impl Fn(&ReadModels) -> Result<(Vec<Change>, T), DomainError>,
    ) -> Result<(Appended, T), CommandError> {
        let mut attempt = 1;
        loop {
            let (changes, seen) = self.projector.read(&decision)?;
            match self.execute(changes, metadata).await {
                Err(CommandError::Append(AppendError::WrongExpectedVersion { .. })) if attempt < ATTEMPTS => {
                    attempt += 1;
                    self.catch_up_after_conflict().await?;
                }
                outcome => return outcome.map(|appended| (appended, seen)),
            }
        }
    }
}

/// A change's events encoded with `metadata`: one part of an append, which may hold
/// parts of several requests, each with its own metadata.
pub fn encode(change: Change, metadata: &Metadata) -> Result<StreamAppend, CommandError> {
    let events = change
        .events
        .iter()
        .map(|event| event.to_new_event(metadata))
        .collect::<Result<Vec<NewEvent>, _>>()?;
    Ok(StreamAppend {
        stream: change.stream,
        expected: change.expected,
        events,
    })
}
