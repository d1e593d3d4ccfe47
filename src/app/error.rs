//! Why a use case failed, in the application's terms. Each adapter turns it into its own
//! answer in one place: problem+json in src/api/problem.rs.

use domain::change::DomainError;
use domain::share::AccessRefused;

use super::commands::CommandError;
use crate::store::AppendError;

/// Cloned where one failure answers several waiting requests (a reservation turn, a
/// broadcast batch).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// A domain rule refused it.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Other requests kept changing what it was decided on, through every attempt: says
    /// what changed.
    #[error("{0}")]
    Contended(String),
    /// A share refused to open: not there for this accessor, over, or its passphrase or
    /// the client's address wrong.
    #[error(transparent)]
    ShareRefused(AccessRefused),
    /// Asked too often: the caller may try again after this many seconds.
    #[error("too many requests; retry in {retry_after_seconds} s")]
    Throttled { retry_after_seconds: u64 },
    /// Not possible right now, but soon: the server is busy with other requests' work.
    #[error("{detail}; retry in {retry_after_seconds} s")]
    Unavailable { detail: String, retry_after_seconds: u64 },
    /// A fault of keyward or its store: logged in full, never shown to the caller.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        AppError::Internal(error.to_string())
    }
}

impl From<CommandError> for AppError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Domain(domain) => AppError::Domain(domain),
            CommandError::Append(AppendError::WrongExpectedVersion { .. }) => {
                AppError::Contended("the resource was changed by a concurrent request".into())
            }
            CommandError::KeptChanging(what) => AppError::Contended(what.into()),
            other => AppError::internal(other),
        }
    }
}
