//! The REST API a tool calls: in process, through the same router, layers and handlers as
//! a request from the network (the hosted endpoint); or a keyward over HTTP (`keyward mcp`).
//! Either way the request carries the caller's own credentials, so it is decided as theirs.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;
use url::Url;

/// The largest REST answer a tool reads: more than any secret or list keyward returns.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The header a client names its vault in, when a tool is not given `vault_id`.
pub const VAULT_HEADER: HeaderName = HeaderName::from_static("x-vault-id");

/// The request headers a tool's REST request carries over from the MCP request: who the
/// caller is, and what correlates its requests.
const CARRIED: [HeaderName; 3] = [
    header::AUTHORIZATION,
    HeaderName::from_static("x-request-id"),
    header::USER_AGENT,
];

/// Who a tool call is made for: the headers its REST requests carry, the vault it names,
/// and the address it came from (which policies' IP conditions and the rate limits read).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    headers: HeaderMap,
    pub vault: Option<String>,
    address: Option<ConnectInfo<SocketAddr>>,
}

impl Caller {
    /// The sender of an MCP request over HTTP.
    pub fn of(request: &Parts) -> Self {
        let mut headers = HeaderMap::new();
        for name in CARRIED {
            if let Some(value) = request.headers.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        Self {
            headers,
            vault: request
                .headers
                .get(VAULT_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            address: request.extensions.get::<ConnectInfo<SocketAddr>>().copied(),
        }
    }

    /// The same caller, its requests also carrying `name: value` (dropped if not a valid
    /// header value).
    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    /// A caller presenting `token`, in `vault` if named.
    pub fn bearer(token: &str, vault: Option<String>) -> Self {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert(header::AUTHORIZATION, value);
        }
        Self {
            headers,
            vault,
            address: None,
        }
    }
}

/// Where the REST API is.
pub enum Rest {
    /// This process's router.
    InProcess(Router),
    /// A keyward at this base URL.
    Remote { base: Url, client: reqwest::Client },
}

/// What the REST API answered.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Rest {
    /// `method` `path` with `body` (JSON), as `caller`.
    pub async fn call(&self, caller: &Caller, method: Method, path: &str, body: Option<Value>) -> Answer {
        match self {
            Self::InProcess(router) => in_process(router, caller, method, path, body).await,
            Self::Remote { base, client } => remote(client, base, caller, method, path, body).await,
        }
    }
}

async fn in_process(router: &Router, caller: &Caller, method: Method, path: &str, body: Option<Value>) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in &caller.headers {
        request = request.header(name, value);
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
    if let Some(address) = caller.address {
        request.extensions_mut().insert(address);
    }
    let response = match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    match axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await {
        Ok(bytes) => Answer::read(status, &bytes),
        Err(_) => Answer::refused(StatusCode::BAD_GATEWAY, "the answer was too large to read"),
    }
}

async fn remote(
    client: &reqwest::Client,
    base: &Url,
    caller: &Caller,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let url = match base.join(path.trim_start_matches('/')) {
        Ok(url) => url,
        Err(error) => return Answer::refused(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let mut request = client.request(method, url).headers(caller.headers.clone());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            return Answer::refused(
                StatusCode::BAD_GATEWAY,
                &format!("keyward could not be reached: {error}"),
            );
        }
    };
    let status = response.status();
    match response.bytes().await {
        Ok(bytes) if bytes.len() <= MAX_ANSWER_BYTES => Answer::read(status, &bytes),
        Ok(_) => Answer::refused(StatusCode::BAD_GATEWAY, "the answer was too large to read"),
        Err(error) => Answer::refused(StatusCode::BAD_GATEWAY, &format!("the answer was cut off: {error}")),
    }
}

impl Answer {
    fn read(status: StatusCode, bytes: &[u8]) -> Self {
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).unwrap_or(Value::Null)
        };
        Self { status, body }
    }

    pub fn refused(status: StatusCode, detail: &str) -> Self {
        Self {
            status,
            body: serde_json::json!({ "detail": detail }),
        }
    }
}
