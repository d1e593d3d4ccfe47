//! Pure folds of the event log into the read models that answer requests.
//!
//! Every model implements [`ReadModel::apply`]; [`ReadModels`] holds them all and can be
//! built up to any position or moment of the log, which is how point-in-time questions
//! are answered.

pub mod access;
pub mod access_review;
pub mod audit;
mod chains;
pub mod directory;
pub mod enrollments;
mod read_models;
pub mod secrets;
pub mod shares;
pub mod signing_keys;
pub mod stream_catalog;
#[cfg(test)]
mod test_log;
pub mod transactions;

use domain::RecordedEvent;
use domain::events::Event;

pub use access::Access;
pub use audit::AuditTrail;
pub use directory::Directory;
pub use enrollments::{Enrollments, Outbox};
pub use read_models::{AccessModels, Fold, ReadModels, Until};
pub use secrets::Secrets;
pub use shares::Shares;
pub use signing_keys::SigningKeys;
pub use stream_catalog::StreamCatalog;
pub use transactions::Transactions;

// `MODEL_FINGERPRINT`: which build's folds a snapshot of the models came from (build.rs).
include!(concat!(env!("OUT_DIR"), "/model_fingerprint.rs"));

/// A read model: state folded from the log, one event at a time, in position order.
pub trait ReadModel {
    fn apply(&mut self, event: &RecordedEvent);
}

/// A read model of domain events. [`ReadModels`] decodes each event's payload once and
/// hands every such model the result.
pub trait DomainModel {
    fn apply(&mut self, recorded: &RecordedEvent, event: &Event);
}
