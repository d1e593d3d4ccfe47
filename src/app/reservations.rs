//! Reserving value and nonce on an agent's stream, in turns. A submission that arrives
//! while its agent's turn is being written waits for the next turn; a turn decides every
//! waiting submission in arrival order, each on what the ones before it reserved, and
//! writes them in one append at the agent's expected version. One agent's burst thus
//! costs one durable write per turn instead of one each, nobody starves, and the expected
//! version still settles a race with another replica (the whole turn is decided again).
//!
//! Turns run in a task of their own: a client that hangs up cannot leave a reservation
//! half-made, and a decided reservation is always answered and, unless sign-only, handed
//! to the broadcaster.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::agent::agent_stream;
use domain::change::DomainError;
use domain::event::ExpectedVersion;
use domain::events::Event;
use domain::transaction::{intents_activity_stream, nonce_reserved, sender_stream};
use domain::{AgentId, Metadata, NewEvent, StreamId};
use intents::submission::{self, Decided, InTurn, Refusal, Submission};
use intents::{Address, PrivateKey, Rpc, SignedTx};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::AppError;
use super::AppState;
use super::broadcasts::{self, Outgoing, Receipt};
use super::lanes::{Drain, Lanes};
use crate::app::commands::{Attempt, CommandError};
use crate::store::StreamAppend;

/// One submission waiting for its agent's turn, with all its decision needs.
pub struct Ticket {
    pub submission: Submission,
    /// The key's address.
    pub from: Address,
    pub chain_pending_nonce: u64,
    /// Zeroized when the turn that signs with it ends.
    pub key: PrivateKey,
    /// The chain's node, for the broadcast (unless the submission is sign-only).
    pub rpc: Rpc,
    pub metadata: Metadata,
    pub now: DateTime<Utc>,
}

/// A submission's reservation.
pub enum Reserved {
    /// Reserved and signed: the transaction is in the log, for the agent to broadcast.
    Signed,
    /// Reserved, signed and queued for broadcast in nonce order; the receipt comes once
    /// the broadcast's outcome is recorded.
    Broadcasting(Receipt),
    /// An earlier request with the same Idempotency-Key made this transaction.
    Repeat(Uuid),
}

type Answer = Result<Result<Reserved, Refusal>, AppError>;

/// What a turn made of a ticket it did not refuse.
enum Made {
    Signed(SignedTx),
    Repeat(Uuid),
}

/// Every agent's lane within this replica.
#[derive(Default)]
pub struct Reservations {
    lanes: Lanes<AgentId, (Ticket, oneshot::Sender<Answer>)>,
}

/// Queues `ticket` on its agent's lane and waits for the turn that decides it.
pub async fn reserve(state: &AppState, agent_id: AgentId, ticket: Ticket) -> Answer {
    let (answer, answered) = oneshot::channel();
    if let Some(drain) = state.reservations.lanes.queue(agent_id, [(ticket, answer)]) {
        tokio::spawn(take_turns(state.clone(), agent_id, drain));
    }
    answered
        .await
        .map_err(|_| AppError::internal("a reservation turn ended without an answer"))?
}

/// Takes turns until nobody waits. A turn's signed transactions go to the broadcaster
/// before anyone is answered, so they are sent in the order they were signed.
async fn take_turns(state: AppState, agent_id: AgentId, mut drain: Drain<(Ticket, oneshot::Sender<Answer>)>) {
    while let Some(turn) = drain.next_batch() {
        let (tickets, answers): (Vec<Ticket>, Vec<_>) = turn.into_iter().unzip();
        match decide_turn(&state, agent_id, &tickets).await {
            Ok(outcomes) => {
                for (answer, outcome) in answers.into_iter().zip(dispatch(&state, agent_id, tickets, outcomes)) {
                    // A request that gave up no longer needs its answer.
                    let _ = answer.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(%error, submissions = tickets.len(), "a reservation turn failed");
                for answer in answers {
                    let _ = answer.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Hands a turn's signed transactions to the broadcaster, in ticket order; each ticket's
/// outcome as its request sees it.
fn dispatch(
    state: &AppState,
    agent_id: AgentId,
    tickets: Vec<Ticket>,
    outcomes: Vec<Result<Made, Refusal>>,
) -> Vec<Result<Reserved, Refusal>> {
    tickets
        .into_iter()
        .zip(outcomes)
        .map(|(ticket, outcome)| {
            outcome.map(|decided| match decided {
                Made::Signed(_) if ticket.submission.sign_only => Reserved::Signed,
                Made::Signed(signed) => Reserved::Broadcasting(broadcasts::send(
                    state,
                    Outgoing {
                        rpc: ticket.rpc,
                        agent_id,
                        tx_id: ticket.submission.tx_id,
                        chain_id: ticket.submission.chain_id,
                        signed,
                        metadata: ticket.metadata,
                    },
                )),
                Made::Repeat(earlier) => Reserved::Repeat(earlier),
            })
        })
        .collect()
}

/// Decides and appends one turn; after a conflict with another replica, decides it again
/// on the newer state.
async fn decide_turn(
    state: &AppState,
    agent_id: AgentId,
    tickets: &[Ticket],
) -> Result<Vec<Result<Made, Refusal>>, AppError> {
    let (_, outcomes) = state
        .commands
        .run::<_, _, AppError, _>(
            || std::future::ready(Ok(())),
            |()| {
                let (parts, outcomes) = decide_all(state, agent_id, tickets)?;
                Ok(Attempt::Append(parts, outcomes))
            },
        )
        .await?;
    Ok(outcomes)
}

type Decisions = (Vec<StreamAppend>, Vec<Result<Made, Refusal>>);

/// Each ticket decided in turn on the agent's state as read now, then signed: the
/// reservations for the agent's stream, the nonces they hold for their senders' streams
/// (at the versions the decision read: another agent signing with the same key, here or
/// on another replica, makes the turn decide again), the refusals for its activity
/// stream, and every ticket's outcome.
fn decide_all(state: &AppState, agent_id: AgentId, tickets: &[Ticket]) -> Result<Decisions, AppError> {
    // Decided under the read models' lock, borrowing the agent's history.
    let (version, senders, decisions) = state.projector.read(|models| {
        let agent = models.directory.agent(agent_id).ok_or(DomainError::NotFound("agent"))?;
        let transactions = &models.transactions;
        let mut turn = InTurn::new(agent, transactions.history(agent_id), transactions.nonces());
        let decisions: Vec<_> = tickets
            .iter()
            .map(|ticket| turn.decide(&ticket.submission, ticket.from, ticket.chain_pending_nonce, ticket.now))
            .collect();
        // Each ticket's sender stream, at the version this decision read.
        let senders: Vec<(StreamId, u64)> = tickets
            .iter()
            .map(|ticket| {
                let stream = sender_stream(ticket.submission.chain_id, &ticket.from.to_string());
                let version = models.streams.version(&stream);
                (stream, version)
            })
            .collect();
        Ok::<_, DomainError>((agent.version, senders, decisions))
    })?;
    // Signed outside it: signatures are the costly part, and need no history.
    let mut signed = Vec::new();
    let mut nonces_held: BTreeMap<StreamId, (u64, Vec<NewEvent>)> = BTreeMap::new();
    let mut rejected = Vec::new();
    let mut outcomes = Vec::with_capacity(tickets.len());
    for ((ticket, decided), (sender, read_at)) in tickets.iter().zip(decisions).zip(senders) {
        outcomes.push(match decided {
            Ok(Decided::Reserved(reservation)) => {
                // Never for a key that parsed; the nonces after it would leave a gap, so
                // the whole turn fails and nothing is appended.
                let (event, tx) = reservation.sign(&ticket.key).map_err(AppError::internal)?;
                nonces_held
                    .entry(sender)
                    .or_insert_with(|| (read_at, Vec::new()))
                    .1
                    .push(encoded(nonce_reserved(&event), &ticket.metadata)?);
                signed.push(encoded(event, &ticket.metadata)?);
                Ok(Made::Signed(tx))
            }
            Ok(Decided::Repeat(earlier)) => Ok(Made::Repeat(earlier)),
            Err(Refusal::Guardrail(violation)) => {
                let refusal = submission::rejected(agent_id, &ticket.submission.ask(), &violation);
                rejected.push(encoded(refusal, &ticket.metadata)?);
                Err(Refusal::Guardrail(violation))
            }
            Err(refusal) => Err(refusal),
        });
    }
    let mut parts = Vec::new();
    if !signed.is_empty() {
        parts.push(StreamAppend {
            stream: agent_stream(agent_id),
            expected: ExpectedVersion::Exact(version),
            events: signed,
        });
    }
    for (stream, (read_at, events)) in nonces_held {
        parts.push(StreamAppend {
            stream,
            expected: ExpectedVersion::Exact(read_at),
            events,
        });
    }
    if !rejected.is_empty() {
        parts.push(StreamAppend {
            stream: intents_activity_stream(agent_id),
            expected: ExpectedVersion::Any,
            events: rejected,
        });
    }
    Ok((parts, outcomes))
}

fn encoded(event: impl Into<Event>, metadata: &Metadata) -> Result<NewEvent, AppError> {
    event
        .into()
        .to_new_event(metadata)
        .map_err(|e| AppError::from(CommandError::from(e)))
}
