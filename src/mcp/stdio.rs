//! `keyward mcp`: the MCP server over stdio, for local clients (Claude Desktop, Cursor, …),
//! in front of a keyward reached over HTTP. It signs in as the agent whose API key it is
//! given, as 1claw's local server does, and renews the token before it expires; every tool
//! call is then a REST request to that keyward with the token, decided and audited there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use rmcp::ServiceExt;
use serde_json::json;
use tokio::sync::Mutex;
use url::Url;
use zeroize::Zeroizing;

use super::rest::{Caller, Rest};
use super::tools::Refusal;
use super::{Source, VaultTools};

/// A token is renewed this long before it expires, so no call goes out with one about to.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(60);

/// What `keyward mcp` signs in with: 1claw's variables.
pub struct AgentCredentials {
    /// The keyward to call, such as https://vault.example.com.
    pub base_url: Url,
    pub agent_id: Option<String>,
    pub api_key: Zeroizing<String>,
    /// The vault tools use when not given `vault_id`.
    pub vault_id: Option<String>,
}

/// The agent's sign-in: its current token and when it expires.
pub struct AgentLogin {
    credentials: AgentCredentials,
    rest: Arc<Rest>,
    token: Mutex<Option<(Zeroizing<String>, Instant)>>,
}

impl AgentLogin {
    /// The caller the next tool call is made as: the agent, with a token good for a while.
    pub async fn caller(&self) -> Result<Caller, Refusal> {
        let mut token = self.token.lock().await;
        let fresh = token
            .as_ref()
            .is_some_and(|(_, expires)| Instant::now() + RENEW_BEFORE_EXPIRY < *expires);
        if !fresh {
            *token = Some(self.sign_in().await?);
        }
        let (current, _) = token.as_ref().ok_or_else(|| Refusal::invalid("no token"))?;
        Ok(Caller::bearer(current, self.credentials.vault_id.clone()))
    }

    async fn sign_in(&self) -> Result<(Zeroizing<String>, Instant), Refusal> {
        let mut request = json!({ "api_key": self.credentials.api_key.as_str() });
        if let Some(agent_id) = &self.credentials.agent_id {
            request["agent_id"] = json!(agent_id);
        }
        let answer = self
            .rest
            .call(&Caller::default(), Method::POST, "/v1/auth/agent-token", Some(request))
            .await;
        if !answer.status.is_success() {
            return Err(Refusal::of(&answer));
        }
        let token = answer.body["access_token"]
            .as_str()
            .ok_or_else(|| Refusal::invalid("the agent-token answer carried no access_token"))?;
        let lifetime = answer.body["expires_in"]
            .as_u64()
            .map_or(Duration::ZERO, Duration::from_secs);
        Ok((Zeroizing::new(token.to_owned()), Instant::now() + lifetime))
    }
}

/// Serves MCP on stdin and stdout until the client closes them.
pub async fn serve(credentials: AgentCredentials) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let rest = Arc::new(Rest::Remote {
        base: credentials.base_url.clone(),
        client,
    });
    let login = Arc::new(AgentLogin {
        credentials,
        rest: rest.clone(),
        token: Mutex::new(None),
    });
    let tools = VaultTools {
        rest,
        source: Source::Agent(login),
    };
    let running = tools.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
