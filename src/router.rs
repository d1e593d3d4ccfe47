//! The whole HTTP surface, assembled (docs/architecture.md): the JSON API (src/api), the
//! HTML pages (src/web) and MCP at `/mcp` (src/mcp), whose tools call the other two in
//! process, under one set of layers: request ids, the per-request tracing span, metrics,
//! and problem+json for what no route answers.

use axum::Router;
use axum::http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::api;
use crate::app::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let public_url = state.config.public_url.clone();
    let api_and_pages = api_and_pages(state);
    let mcp = crate::mcp::service(api_and_pages.clone(), &public_url);
    Router::new().nest_service("/mcp", mcp).merge(api_and_pages)
}

fn api_and_pages(state: AppState) -> Router {
    api::routes()
        .merge(crate::web::routes(state.clone()))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(crate::telemetry::track))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request
                .headers()
                .get(&REQUEST_ID)
                .and_then(|id| id.to_str().ok())
                .unwrap_or("");
            // The path only: query strings can carry share passphrases and tokens.
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
