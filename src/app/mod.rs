//! The application layer: what the adapters (the JSON API, the HTML pages, MCP, the
//! command line) call to change state. It turns decisions into appends to the log, and
//! decides again when another request changed the state first; its workers reserve and
//! broadcast transactions behind the requests that queued them.

pub mod account;
pub mod broadcasts;
pub mod chains;
pub mod commands;
pub mod error;
pub(crate) mod lanes;
pub mod mailer;
pub mod rate_limit;
pub mod reach;
pub mod reservations;
pub mod shares;
mod state;
pub mod values;

pub use error::AppError;
pub use state::{AppState, Services};
