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
/// `public_url` is where keyward is reached: its host is accepted besides loopback ones (the
/// transport refuses other `Host` headers, against DNS rebinding).
pub fn service(api: Router, public_url: &Url) -> StreamableHttpService<VaultTools, LocalSessionManager> {
    let tools = VaultTools {
        rest: Arc::new(Rest::InProcess(api)),
        source: Source::Http,
    };
    let mut allowed_hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    if let Some(host) = public_url.host_str() {
        allowed_hosts.push(host.to_owned());
    }
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(allowed_hosts);
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
