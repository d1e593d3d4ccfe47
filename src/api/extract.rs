//! Extractors whose rejections are problem+json like every other error.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use domain::{ActorType, Metadata, OrgId};
use serde::de::DeserializeOwned;

use super::problem::ApiError;
use crate::app::AppState;

/// A JSON request body; a malformed one is a 400 problem that never echoes its values.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}

/// Path parameters; a malformed one (a vault id that is not a UUID) is a 400 problem.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParams(value))
    }
}

/// Query parameters, rejected as 400 problems.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(QueryParams(value))
    }
}

/// Where a request came from and when: what audit metadata and policy conditions need.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The socket peer, or the client a trusted proxy forwarded for.
    pub client_ip: IpAddr,
    pub request_id: Option<String>,
    pub now: DateTime<Utc>,
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip())
            .ok_or_else(|| ApiError::internal("the server was started without peer addresses"))?;
        // Every X-Forwarded-For line, in order, as one list (RFC 9110 5.3): a proxy may
        // add a line of its own after one the client wrote. A line that is not text
        // breaks the chain there, as an address that does not parse does.
        let lines: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|value| value.to_str().unwrap_or("?"))
            .collect();
        let forwarded = (!lines.is_empty()).then(|| lines.join(","));
        let client_ip = state.config.client_ip(peer, forwarded.as_deref());
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|id| id.to_str().ok())
            .map(str::to_owned);
        Ok(RequestContext {
            client_ip,
            request_id,
            now: Utc::now(),
        })
    }
}

impl RequestContext {
    /// Audit metadata for an event this request causes.
    pub fn metadata(&self, actor_type: ActorType, actor_id: Option<String>, org_id: Option<OrgId>) -> Metadata {
        Metadata {
            actor_type,
            actor_id,
            org_id: org_id.map(|org| org.0),
            client_ip: Some(self.client_ip),
            request_id: self.request_id.clone(),
            timestamp: self.now,
        }
    }
}
