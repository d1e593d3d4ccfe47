//! Pure decisions of keyward: the vocabulary of the event log and, per aggregate, the
//! functions that turn a command and the current state into events.
//!
//! Nothing here performs IO, awaits, or reads a clock: time is always an argument.

pub mod agent;
pub mod authz;
pub mod chain;
pub mod change;
pub mod constant_time;
pub mod email;
pub mod email_verification;
pub mod enrollment;
pub mod event;
pub mod events;
pub mod evm_chain;
pub mod ids;
pub mod mail;
pub mod membership;
pub mod message_signing;
pub mod network;
pub mod platform_admin;
pub mod policy;
pub mod secret;
pub mod secret_path;
pub mod share;
pub mod signing_key;
pub mod stream;
pub mod suffix_sums;
pub mod transaction;
pub mod user;
pub mod vault;
pub mod wei;

pub use chain::{ChainBreak, ChainHash, ChainVerifier, check_in_place};
pub use event::{ActorType, ExpectedVersion, Metadata, NewEvent, RecordedEvent};
pub use ids::{AgentId, ApiKeyId, EnrollmentId, MailId, OrgId, PolicyId, SecretId, ShareId, UserId, VaultId};
pub use secret_path::{SecretPath, SecretPathError};
pub use stream::{StreamId, StreamIdError};
