//! GET /metrics: the Prometheus exposition (src/telemetry.rs), for whoever presents the
//! configured `metrics_token` as a bearer token. Without one configured the route is not
//! served: a 404, as for any path keyward does not have.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::app::AppState;
use crate::telemetry;

pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(token) = &state.config.metrics_token else {
        return Err(ApiError::NotFound("no such resource".into()));
    };
    let presented = super::session::bearer_token(&headers).unwrap_or_default();
    if !token.admits(presented) {
        return Err(ApiError::Unauthorized);
    }
    let committed = *state.store.committed().borrow();
    telemetry::record_projection(state.projector.position(), committed);
    let exposition = telemetry::render().unwrap_or_default();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        exposition,
    )
        .into_response())
}
