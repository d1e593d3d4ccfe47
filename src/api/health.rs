//! GET /v1/health: liveness, and how far the read models have folded the log.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::AppState;

#[derive(Debug, Serialize)]
pub struct Health {
    status: &'static str,
    version: &'static str,
    /// Position of the last event the read models include.
    log_position: u64,
}

pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        log_position: state.projector.position(),
    })
}
