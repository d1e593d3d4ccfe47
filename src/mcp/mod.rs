//! keyward as a Model Context Protocol server, for the agent frameworks that reach vaults
//! through MCP (docs/mcp.md): streamable HTTP at `/mcp`, and `keyward mcp` over stdio in
//! front of a keyward reached over HTTP ([`stdio`]).
//!
//! Every tool is one or two requests to the REST API: at `/mcp` made in process through the
//! same router, with the caller's own `Authorization` header and client address. So a tool call
//! is authorized, limited and audited exactly as the REST request it stands for: the four
//! layers, scopes, the vault binding, the audit trail. There is no second path to a secret.
//! A refusal comes back as a tool error carrying the status and the API's own `detail`,
//! never a stack trace or a value.

mod rest;
pub mod stdio;
mod tools;

use std::sync::Arc;

use axum::Router;
use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use url::Url;

use rest::{Caller, Rest};
use stdio::AgentLogin;

/// The MCP endpoint's service, answering tool calls through `api` (the REST router).
///
/// It keeps no sessions: every request is served on its own (rmcp's stateless mode), since
/// each one carries its caller's credentials and is authorized again anyway. So a client,
/// signed in or not, leaves nothing behind in memory, however many times it initializes.
///
/// `public_url` is where keyward is reached. Its host is accepted besides loopback ones, and
/// a browser's `Origin` must be its origin: the transport refuses anything else, against DNS
/// rebinding and pages of other sites.
pub fn service(api: Router, public_url: &Url) -> StreamableHttpService<VaultTools, LocalSessionManager> {
    let tools = VaultTools {
        rest: Arc::new(Rest::InProcess(api)),
        source: Source::Http,
    };
    let mut allowed_hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let mut allowed_origins = Vec::new();
    if let Some(host) = public_url.host_str() {
        allowed_hosts.push(host.to_owned());
        // With its port spelt out, even the scheme's default: an origin without one would
        // match any port.
        if let Some(port) = public_url.port_or_known_default() {
            allowed_origins.push(format!("{}://{host}:{port}", public_url.scheme()));
        }
    }
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts)
        .with_allowed_origins(allowed_origins)
        .enforce_origin_validation();
    StreamableHttpService::new(move || Ok(tools.clone()), Arc::default(), config)
}

/// The tools, calling `rest` as whoever `source` says each call comes from.
#[derive(Clone)]
pub struct VaultTools {
    rest: Arc<Rest>,
    source: Source,
}

/// Whom a tool call is made for.
#[derive(Clone)]
enum Source {
    /// The sender of the HTTP request that carried it.
    Http,
    /// The agent `keyward mcp` signed in as.
    Agent(Arc<AgentLogin>),
}

impl ServerHandler for VaultTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::catalog()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = match &self.source {
            Source::Http => match context.extensions.get::<Parts>() {
                Some(request) => Ok(Caller::of(request)),
                None => {
                    return Err(ErrorData::internal_error(
                        "the call came without its HTTP request",
                        None,
                    ));
                }
            },
            Source::Agent(login) => login.caller().await,
        };
        let arguments = request.arguments.unwrap_or_default();
        let outcome = match caller {
            Ok(caller) => tools::call(&self.rest, &caller, &request.name, &arguments).await,
            Err(refusal) => Err(refusal),
        };
        let result = match outcome {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(refusal) => CallToolResult::error(vec![ContentBlock::text(refusal.to_string())]),
        };
        Ok(result.into())
    }
}
