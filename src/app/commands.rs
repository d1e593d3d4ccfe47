//! Executing decisions: a handler's changes become one atomic append, and the handler
//! returns only once the read models include it, so the next request reads its write.

use std::sync::Arc;

use domain::change::{Change, DomainError};
use domain::{Metadata, NewEvent};
use projections::ReadModels;

use crate::projector::Projector;
use crate::store::{AppendError, Appended, EventStore, StreamAppend};

/// Attempts at one decision before it gives up. Every conflict or stale preparation means
/// another request got through, so contention resolves; the bound only guards against a
/// livelock bug. It must exceed the contenders of one stream (20 concurrent reads of a
/// secret allowed 5 reads get 5 values and 15 clean refusals, not conflicts).
pub const ATTEMPTS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error("cannot encode an event: {0}")]
    Encoding(#[from] serde_json::Error),
    /// Every attempt found its preparation overtaken: says by what.
    #[error("{0}")]
    KeptChanging(&'static str),
}

/// What one attempt at a decision came to.
pub enum Attempt<T> {
    /// Append these parts, all or none (none is allowed), and answer `T`.
    Append(Vec<StreamAppend>, T),
    /// The state moved past what the attempt prepared (a key shredded before a newer
    /// version appeared): prepare and decide again. Says what kept moving, for the error
    /// should every attempt find it so.
    Stale(&'static str),
}

impl<T> Attempt<T> {
    /// Appends `changes`, each event with `metadata`, and answers `answer`.
    pub fn changes(changes: Vec<Change>, metadata: &Metadata, answer: T) -> Result<Self, CommandError> {
        Ok(Self::Append(encode_all(changes, metadata)?, answer))
    }
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
        self.append(encode_all(changes, metadata)?).await
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
        self.run(
            || std::future::ready(Ok(())),
            |()| {
                let (changes, seen) = self.projector.read(&decision)?;
                Attempt::changes(changes, metadata, seen)
            },
        )
        .await
    }

    /// The one retry loop of a decision. Each attempt first `prepare`s what takes IO and
    /// must come before the append (sealing a value, shredding keys, reading the state it
    /// prepares for), then `decide`s, without awaiting, what to append, and appends it.
    /// When the append finds a stream moved on (another request, another replica), the
    /// read models catch up with the log and the next attempt starts over on the newer
    /// state; so does an attempt whose decision finds its preparation overtaken
    /// ([`Attempt::Stale`]). At most [`ATTEMPTS`] attempts.
    pub async fn run<P, T, E, Prepared>(
        &self,
        mut prepare: impl FnMut() -> Prepared,
        mut decide: impl FnMut(P) -> Result<Attempt<T>, E>,
    ) -> Result<(Appended, T), E>
    where
        Prepared: Future<Output = Result<P, E>>,
        E: From<CommandError>,
    {
        let mut overtaken_by = "the state";
        for attempt in 1..=ATTEMPTS {
            let prepared = prepare().await?;
            let (parts, answer) = match decide(prepared)? {
                Attempt::Append(parts, answer) => (parts, answer),
                Attempt::Stale(by) => {
                    overtaken_by = by;
                    continue;
                }
            };
            if parts.is_empty() {
                // Nothing to write, nor to wait for: the read models include what was decided on.
                let unchanged = Appended {
                    stream_versions: Vec::new(),
                    position: self.projector.position(),
                };
                return Ok((unchanged, answer));
            }
            match self.append(parts).await {
                Err(CommandError::Append(AppendError::WrongExpectedVersion { .. })) if attempt < ATTEMPTS => {
                    self.catch_up_after_conflict().await?;
                }
                outcome => return Ok((outcome?, answer)),
            }
        }
        Err(CommandError::KeptChanging(overtaken_by).into())
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

fn encode_all(changes: Vec<Change>, metadata: &Metadata) -> Result<Vec<StreamAppend>, CommandError> {
    changes.into_iter().map(|change| encode(change, metadata)).collect()
}
