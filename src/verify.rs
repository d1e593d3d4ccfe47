//! Walking the whole log to check its hash chain.

use domain::{ChainBreak, ChainVerifier};

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
