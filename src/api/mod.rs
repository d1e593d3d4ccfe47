//! The JSON API (axum): its routes, the state every handler reaches, and errors as
//! problem+json. src/router.rs serves it beside the pages and MCP.

mod agents;
mod api_keys;
mod audit;
pub(crate) mod auth;
mod chains;
pub(crate) mod email_verification;
pub(crate) mod enrollments;
mod explain;
pub(crate) mod extract;
mod health;
mod intent;
mod openapi;
mod org;
mod page;
mod policies;
mod problem;
mod scrape;
mod secrets;
pub(crate) mod session;
pub(crate) mod shares;
mod signatures;
mod signing_keys;
mod simulations;
mod transaction_log;
mod transactions;
mod vaults;

use crate::app::AppState;

use axum::Router;
use axum::routing::{get, post};

pub use problem::{ApiError, Problem, method_not_allowed, not_found};

/// The JSON API's routes; [`crate::router`] serves them beside the pages and MCP.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/health", get(health::health))
        .route("/metrics", get(scrape::metrics))
        .route("/v1/openapi.json", get(openapi::openapi))
        .route("/v1/auth/signup", post(auth::signup))
        .route("/v1/auth/verify-email", post(email_verification::verify))
        .route("/v1/auth/verify-email/resend", post(email_verification::resend))
        .route("/v1/auth/token", post(auth::login).delete(auth::logout))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route(
            "/v1/auth/me",
            get(auth::me).patch(auth::update_me).delete(auth::delete_me),
        )
        .route("/v1/auth/change-password", post(auth::change_password))
        .route("/v1/auth/jwt-public-key", get(auth::jwt_public_key))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/v1/auth/agent-token", post(agents::token))
        .route("/v1/auth/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/v1/auth/api-keys/{key_id}", axum::routing::delete(api_keys::revoke))
        .route("/v1/auth/api-key-token", post(api_keys::token))
        .route("/v1/agents", post(agents::create).get(agents::list))
        .route("/v1/agents/me", get(agents::me))
        .route("/v1/agents/enroll", post(enrollments::enroll))
        .route("/v1/agents/enrollments", get(enrollments::list))
        .route(
            "/v1/agents/enrollments/{enrollment_id}/approve",
            post(enrollments::approve),
        )
        .route("/v1/agents/enrollments/{enrollment_id}/deny", post(enrollments::deny))
        .route(
            "/v1/agents/{agent_id}",
            get(agents::get)
                .patch(agents::update)
                .put(agents::update)
                .delete(agents::deactivate),
        )
        .route("/v1/agents/{agent_id}/rotate-key", post(agents::rotate_key))
        .route(
            "/v1/agents/{agent_id}/transactions",
            post(transactions::submit).get(transactions::list),
        )
        .route("/v1/agents/{agent_id}/transactions/{tx_id}", get(transactions::get))
        .route(
            "/v1/agents/{agent_id}/transactions/simulate",
            post(simulations::simulate_one),
        )
        .route(
            "/v1/agents/{agent_id}/signing-keys",
            post(signing_keys::create).get(signing_keys::list),
        )
        .route(
            "/v1/agents/{agent_id}/signing-keys/{chain}",
            axum::routing::delete(signing_keys::deactivate),
        )
        .route(
            "/v1/agents/{agent_id}/signing-keys/{chain}/rotate",
            post(signing_keys::rotate),
        )
        .route(
            "/v1/agents/{agent_id}/signing-keys/{chain}/export",
            post(signing_keys::export),
        )
        .route(
            "/v1/agents/{agent_id}/signing-keys/{chain}/import",
            post(signing_keys::import),
        )
        .route(
            "/v1/agents/{agent_id}/signing-keys/{chain}/balance",
            get(signing_keys::balance),
        )
        .route(
            "/v1/agents/{agent_id}/transactions/simulate-bundle",
            post(simulations::simulate_bundle),
        )
        .route("/v1/agents/{agent_id}/transactions/sign", post(transactions::sign))
        .route("/v1/agents/{agent_id}/sign", post(signatures::sign))
        .route("/v1/org/members", get(org::members))
        .route(
            "/v1/org/members/{user_id}",
            axum::routing::patch(org::update_role).delete(org::remove),
        )
        .route("/v1/authz/explain", post(explain::explain))
        .route("/v1/audit/events", get(audit::events))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/audit/access-review", get(audit::access_review))
        .route("/v1/chains", get(chains::list))
        .route("/v1/chains/{identifier}", get(chains::get))
        .route("/v1/admin/chains", get(chains::admin_list).post(chains::create))
        .route(
            "/v1/admin/chains/{chain_id}",
            axum::routing::put(chains::update).delete(chains::delete),
        )
        .route("/v1/secrets/{secret_id}/share", post(shares::create))
        .route("/v1/share/{share_id}", get(shares::access).delete(shares::revoke))
        .route("/v1/shares/outbound", get(shares::outbound))
        .route("/v1/shares/inbound", get(shares::inbound))
        .route("/v1/shares/{share_id}/accept", post(shares::accept))
        .route("/v1/shares/{share_id}/decline", post(shares::decline))
        .route("/v1/vaults", post(vaults::create).get(vaults::list))
        .route("/v1/vaults/{vault_id}", get(vaults::get).delete(vaults::delete))
        .route(
            "/v1/vaults/{vault_id}/policies",
            post(policies::create).get(policies::list),
        )
        .route("/v1/vaults/{vault_id}/secrets", get(secrets::list))
        .route(
            "/v1/vaults/{vault_id}/secret-versions/{*path}",
            get(secrets::list_versions),
        )
        .route(
            "/v1/vaults/{vault_id}/secret-version/{*path}",
            get(secrets::get_version),
        )
        .route(
            "/v1/vaults/{vault_id}/secret-version-disable/{*path}",
            post(secrets::disable_version),
        )
        .route("/v1/vaults/{vault_id}/secret-rotate/{*path}", post(secrets::rotate))
        .route(
            "/v1/vaults/{vault_id}/secrets/{*path}",
            axum::routing::put(secrets::put)
                .get(secrets::get)
                .delete(secrets::delete),
        )
        .route(
            "/v1/vaults/{vault_id}/policies/{policy_id}",
            axum::routing::put(policies::update).delete(policies::delete),
        )
}
