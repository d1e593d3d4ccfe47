//! Pure decisions of keyward: the vocabulary of the event log and, per aggregate, the
//! functions that turn a command and the current state into events.
//!
//! Nothing here performs IO, awaits, or reads a clock: time is always an argument.

pub mod chain;
pub mod event;
pub mod ids;
pub mod stream;

pub use chain::{ChainBreak, ChainHash, ChainVerifier};
pub use ids::{AgentId, ApiKeyId, EnrollmentId, OrgId, PolicyId, SecretId, ShareId, UserId, VaultId};
pub use event::{ActorType, ExpectedVersion, Metadata, NewEvent, RecordedEvent};
pub use stream::{StreamId, StreamIdError};
