//! Walking the whole log to check its hash chain, or checking some of its events where
//! they stand.

use domain::{ChainBreak, ChainVerifier, RecordedEvent};

use crate::store::{EventStore, StoreError};

const READ_BATCH: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact { events: u64 },
    Broken { events_verified: u64, reason: BreakReason },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakReason {
    Chain(ChainBreak),
    /// A row whose columns cannot even be decoded: edited to something no writer writes.
    Unreadable {
        position: i64,
        reason: String,
    },
}

impl std::fmt::Display for BreakReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BreakReason::Chain(chain_break) => chain_break.fmt(f),
            BreakReason::Unreadable { position, reason } => {
                write!(f, "event at position {position} is unreadable: {reason}")
            }
        }
    }
}

/// Checks every stored event against its predecessor and its own hash, and the end of the
/// log against the recorded head.
pub async fn verify(store: &dyn EventStore, mut progress: impl FnMut(u64)) -> Result<Verdict, StoreError> {
    let mut verifier = ChainVerifier::new();
    let broken = |verifier: &ChainVerifier, reason| Verdict::Broken {
        events_verified: verifier.verified(),
        reason,
    };
    loop {
        let events = match store.read_all(verifier.verified(), READ_BATCH).await {
            Ok(events) => events,
            Err(StoreError::Corrupt { position, reason }) => {
                // The batch's events before the unreadable one are checked still, so the
                // count says how far the chain holds.
                if let Some(chain_break) = check_before(store, &mut verifier, position).await? {
                    return Ok(broken(&verifier, BreakReason::Chain(chain_break)));
                }
                return Ok(broken(&verifier, BreakReason::Unreadable { position, reason }));
            }
            Err(other) => return Err(other),
        };
        if events.is_empty() {
            break;
        }
        for event in &events {
            if let Err(chain_break) = verifier.check(event) {
                return Ok(broken(&verifier, BreakReason::Chain(chain_break)));
            }
        }
        progress(verifier.verified());
    }
    let head = store.head().await?;
    Ok(match verifier.finish(head.position) {
        Ok(events) => Verdict::Intact { events },
        Err(chain_break) => broken(&verifier, BreakReason::Chain(chain_break)),
    })
}

/// Checks the events after those `verifier` verified and before `unreadable`, the position
/// of an event that cannot be read: the first break among them, if any.
async fn check_before(
    store: &dyn EventStore,
    verifier: &mut ChainVerifier,
    unreadable: i64,
) -> Result<Option<ChainBreak>, StoreError> {
    let before = u64::try_from(unreadable)
        .unwrap_or(0)
        .saturating_sub(verifier.verified() + 1);
    if before == 0 {
        return Ok(None);
    }
    let events = match store.read_all(verifier.verified(), before as usize).await {
        Ok(events) => events,
        // Events missing before it brought the unreadable one into this read too.
        Err(StoreError::Corrupt { .. }) => return Ok(None),
        Err(other) => return Err(other),
    };
    for event in events.iter().take_while(|event| (event.position as i64) < unreadable) {
        if let Err(chain_break) = verifier.check(event) {
            return Ok(Some(chain_break));
        }
    }
    Ok(None)
}

/// Checks the events at `positions` (ascending, none past the recorded head `head`) each
/// where it stands, between its neighbours ([`domain::check_in_place`]), and stops at the
/// first that fails; `Intact` counts the events checked. Positions whose neighbourhoods
/// meet are read in one query.
pub async fn verify_in_place(store: &dyn EventStore, positions: &[u64], head: u64) -> Result<Verdict, StoreError> {
    let mut verified = 0;
    let mut rest = positions;
    while let Some(&first) = rest.first() {
        let run = 1 + rest
            .windows(2)
            .take_while(|pair| pair[1] <= pair[0] + 3 && pair[1] - first < READ_BATCH as u64)
            .count();
        let (run, next) = rest.split_at(run);
        let last = run[run.len() - 1];
        // From the event before the first through the event after the last.
        let after = first.saturating_sub(2);
        let limit = usize::try_from(last + 1 - after).unwrap_or(usize::MAX);
        let events = match store.read_all(after, limit).await {
            Ok(events) => events,
            Err(StoreError::Corrupt { position, reason }) => {
                return Ok(Verdict::Broken {
                    events_verified: verified,
                    reason: BreakReason::Unreadable { position, reason },
                });
            }
            Err(other) => return Err(other),
        };
        let at = |position: u64| -> Option<&RecordedEvent> {
            let found = events.binary_search_by_key(&position, |event| event.position).ok()?;
            events.get(found)
        };
        for &position in run {
            let (before, after) = (position.checked_sub(1).and_then(at), at(position + 1));
            if let Err(chain_break) = domain::check_in_place(position, before, at(position), after, head) {
                return Ok(Verdict::Broken {
                    events_verified: verified,
                    reason: BreakReason::Chain(chain_break),
                });
            }
            verified += 1;
        }
        rest = next;
    }
    Ok(Verdict::Intact { events: verified })
}
