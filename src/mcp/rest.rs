//! The REST API, called in process: a tool's request goes through the same router, layers
//! and handlers as one from the network, as the caller that sent the MCP request.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderName, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

/// The largest REST answer a tool reads: more than any secret or list keyward returns.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

pub struct Rest {
    api: Router,
}

/// What the REST API answered.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// The request headers a tool's REST request carries over from the MCP request: who the
/// caller is, and what correlates its requests.
const CARRIED: [HeaderName; 3] = [
    header::AUTHORIZATION,
    HeaderName::from_static("x-request-id"),
    header::USER_AGENT,
];

impl Rest {
    pub fn new(api: Router) -> Self {
        Self { api }
    }

    /// `method` `path` with `body` (JSON), as the sender of `carrier`, from its address.
    pub async fn call(&self, carrier: &Parts, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        for name in CARRIED {
            if let Some(value) = carrier.headers.get(&name) {
                request = request.header(name, value);
            }
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let mut request = match request.body(body) {
            Ok(request) => request,
            Err(error) => return Answer::refused(StatusCode::BAD_REQUEST, &error.to_string()),
        };
        // The client's address, which policies' IP conditions and the rate limits read.
        if let Some(address) = carrier.extensions.get::<ConnectInfo<SocketAddr>>() {
            request.extensions_mut().insert(*address);
        }
        let response = match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = match axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => return Answer::refused(StatusCode::BAD_GATEWAY, "the answer was too large to read"),
        };
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Answer { status, body }
    }
}

impl Answer {
    fn refused(status: StatusCode, detail: &str) -> Self {
        Self {
            status,
            body: serde_json::json!({ "detail": detail }),
        }
    }
}
