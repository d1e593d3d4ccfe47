//! MCP (src/mcp, docs/mcp.md), driven by the official Python MCP client (PyPI `mcp`), at
//! /mcp and through `keyward mcp` over stdio: a session initializes and lists the tools; an
//! agent's tool calls read, list, describe and bundle what its policy grants, audited as its
//! REST reads are; what the policy does not grant is a tool error naming the status, without
//! a value; an agent deactivated in the middle of a session is refused at its next call; and
//! the endpoint answers only its own host and origin, and keeps no session.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::world::{World, world};
use common::{Api, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn python() -> String {
    std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "KEYWARD_TEST_PYTHON is not set: this test drives MCP with the official Python client, which \
             scripts/test installs into .tools/venv. Run it as `scripts/test -E 'binary(mcp_http)'`."
        )
    })
}

/// A human's vault with two secrets, and an agent allowed to read `api-keys/*` only.
struct Vault {
    api: Api,
    human: String,
    vault: String,
    agent_id: String,
    agent: String,
    api_key: String,
}

async fn vault(db: &TestDb) -> Vault {
    let api = Api::start(db).await;
    let human = api.signup_verified("ada@example.com", "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    for (path, value) in [
        ("api-keys/openai", "sk-live-123"),
        ("api-keys/env", "# app\nDB_URL=postgres://db\nexport TOKEN=\"t 1\"\n"),
        ("other/root", "never-shown"),
    ] {
        let (status, body) = api
            .call(
                "PUT",
                &format!("/v1/vaults/{vault}/secrets/{path}"),
                Some(&human),
                Some(json!({"value": value})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, created) = api
        .call("POST", "/v1/agents", Some(&human), Some(json!({"name": "bot"})))
        .await;
    let agent_id = created["agent"]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call(
            "POST",
            &format!("/v1/vaults/{vault}/policies"),
            Some(&human),
            Some(json!({
                "secret_path_pattern": "api-keys/*",
                "principal_type": "agent",
                "principal_id": agent_id,
                "permissions": ["read"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let agent = api.agent_token(&api_key).await;
    Vault {
        api,
        human,
        vault,
        agent_id,
        agent,
        api_key,
    }
}

/// A running keyward and the vault MCP sessions name.
trait Reaches {
    fn api(&self) -> &Api;
    fn vault(&self) -> &str;
}

impl Reaches for Vault {
    fn api(&self) -> &Api {
        &self.api
    }
    fn vault(&self) -> &str {
        &self.vault
    }
}

impl Reaches for World {
    fn api(&self) -> &Api {
        &self.api
    }
    fn vault(&self) -> &str {
        &self.vault
    }
}

/// How the Python client reaches keyward's MCP server.
enum Transport<'a> {
    /// The hosted endpoint, with this agent token and the world's vault in the headers.
    Http(&'a str),
    /// `keyward mcp`, signing in with this agent API key, the world's vault in its environment.
    Stdio(&'a str),
}

/// A session of the Python client over `transport`, running each batch of calls in turn;
/// before each batch after the first, `between` runs (the test changing the world
/// mid-session).
async fn session(
    world: &impl Reaches,
    transport: Transport<'_>,
    batches: &[Value],
    mut between: Vec<impl AsyncFnMut()>,
) -> Vec<Value> {
    let (kind, target, settings) = match transport {
        Transport::Http(token) => (
            "http",
            world.api().server.url("/mcp"),
            json!({"Authorization": format!("Bearer {token}"), "X-Vault-ID": world.vault()}),
        ),
        Transport::Stdio(api_key) => (
            "stdio",
            format!("{} mcp", env!("CARGO_BIN_EXE_keyward")),
            json!({
                "ONECLAW_BASE_URL": world.api().server.url("/"),
                "ONECLAW_AGENT_API_KEY": api_key,
                "ONECLAW_VAULT_ID": world.vault(),
                "KEYWARD_LOG": "warn",
            }),
        ),
    };
    let mut client = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py"))
        .args([kind, target.as_str(), settings.to_string().as_str()])
        .args(batches.iter().map(Value::to_string))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut answers = Vec::new();
    for n in 0..batches.len() {
        if n > 0 {
            between[n - 1]().await;
            writeln!(stdin, "go").unwrap();
        }
        let Some(Ok(line)) = lines.next() else {
            let output = client.wait_with_output().unwrap();
            panic!("the MCP client stopped: {}", String::from_utf8_lossy(&output.stderr));
        };
        answers.push(serde_json::from_str(&line).unwrap());
    }
    drop(stdin);
    assert!(client.wait().unwrap().success());
    answers
}

/// The agent's human deactivates it.
async fn deactivate_agent(world: &Vault) {
    let (status, body) = world
        .api
        .call(
            "DELETE",
            &format!("/v1/agents/{}", world.agent_id),
            Some(&world.human),
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");
}

/// Nothing changes between batches.
fn no_changes() -> Vec<fn() -> std::future::Ready<()>> {
    Vec::new()
}

fn call(answer: &Value, n: usize) -> (&str, bool, Value) {
    let call = &answer["calls"][n];
    let text = call["text"].as_str().unwrap();
    (
        call["name"].as_str().unwrap(),
        call["is_error"].as_bool().unwrap(),
        serde_json::from_str(text).unwrap_or_else(|_| json!(text)),
    )
}

#[tokio::test]
async fn an_agent_reads_what_its_policy_grants_through_mcp_and_nothing_else() {
    let db = TestDb::sqlite();
    let world = vault(&db).await;
    let calls = json!([
        ["list_secrets", {}],
        ["get_secret", {"path": "api-keys/openai"}],
        ["describe_secret", {"path": "api-keys/openai"}],
        ["get_env_bundle", {"path": "api-keys/env"}],
        ["get_secret", {"path": "other/root"}],
        ["put_secret", {"path": "api-keys/new", "value": "x"}],
        ["get_secret", {"path": "api-keys/openai", "vault_id": "00000000-0000-0000-0000-000000000000"}],
    ]);
    let answers = session(&world, Transport::Http(&world.agent), &[calls], no_changes()).await;
    let answer = &answers[0];
    let tools: Vec<&str> = answer["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for tool in [
        "list_secrets",
        "get_secret",
        "put_secret",
        "delete_secret",
        "describe_secret",
        "rotate_and_store",
        "get_env_bundle",
        "list_vaults",
        "create_vault",
    ] {
        assert!(tools.contains(&tool), "{tool} in {tools:?}");
    }

    let (_, failed, listed) = call(answer, 0);
    assert!(!failed, "{listed}");
    let paths: Vec<&str> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"api-keys/openai"), "{listed}");
    assert!(!listed.to_string().contains("sk-live-123"), "a list carries no values");

    let (_, failed, read) = call(answer, 1);
    assert_eq!((failed, read["value"].as_str()), (false, Some("sk-live-123")), "{read}");
    let (_, failed, described) = call(answer, 2);
    assert!(!failed && described["path"] == "api-keys/openai", "{described}");
    assert!(described.get("value").is_none(), "{described}");
    let (_, failed, bundle) = call(answer, 3);
    assert_eq!(
        (failed, bundle),
        (false, json!({"DB_URL": "postgres://db", "TOKEN": "t 1"}))
    );

    // Refusals are tool errors naming the status, carrying no value.
    for n in [4, 5, 6] {
        let (name, failed, text) = call(answer, n);
        assert!(failed, "{name}: {text}");
        let text = text.as_str().unwrap().to_owned();
        assert!(
            text.starts_with("403 Forbidden:") || text.starts_with("404 Not Found:"),
            "{name}: {text}"
        );
        assert!(!text.contains("never-shown") && !text.contains("sk-live"), "{text}");
    }

    // The reads are the agent's, in the audit trail, as REST reads are.
    let (_, trail) = world
        .api
        .call("GET", "/v1/audit/events?action=secret.read", Some(&world.human), None)
        .await;
    let reads: Vec<&Value> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_id"] == world.agent_id.as_str())
        .collect();
    assert_eq!(reads.len(), 2, "get_secret and get_env_bundle: {trail}");
    let (_, denied) = world
        .api
        .call(
            "GET",
            "/v1/audit/events?action=secret.read_denied",
            Some(&world.human),
            None,
        )
        .await;
    assert!(
        denied["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor_id"] == world.agent_id.as_str()),
        "{denied}"
    );
}

#[tokio::test]
async fn an_agent_deactivated_mid_session_is_refused_at_its_next_call() {
    let db = TestDb::sqlite();
    let world = vault(&db).await;
    let read = json!([["get_secret", {"path": "api-keys/openai"}]]);
    let deactivate = async || deactivate_agent(&world).await;
    let answers = session(
        &world,
        Transport::Http(&world.agent),
        &[read.clone(), read],
        vec![deactivate],
    )
    .await;
    let (_, failed, before) = call(&answers[0], 0);
    assert!(!failed, "{before}");
    let (_, failed, after) = call(&answers[1], 0);
    assert!(failed, "{after}");
    assert!(after.as_str().unwrap().starts_with("401 Unauthorized:"), "{after}");
}

#[tokio::test]
async fn a_call_without_credentials_learns_nothing() {
    let db = TestDb::sqlite();
    let world = vault(&db).await;
    let calls = json!([["list_secrets", {}], ["list_vaults", {}]]);
    let answers = session(&world, Transport::Http("not-a-token"), &[calls], no_changes()).await;
    for n in 0..2 {
        let (name, failed, text) = call(&answers[0], n);
        assert!(
            failed && text.as_str().unwrap().starts_with("401 Unauthorized:"),
            "{name}: {text}"
        );
    }
}

#[tokio::test]
async fn keyward_mcp_over_stdio_signs_in_as_the_agent_and_is_decided_by_the_server() {
    let db = TestDb::sqlite();
    let world = vault(&db).await;
    let calls = json!([
        ["get_secret", {"path": "api-keys/openai"}],
        ["get_secret", {"path": "other/root"}],
    ]);
    let read = json!([["get_secret", {"path": "api-keys/openai"}]]);
    let deactivate = async || deactivate_agent(&world).await;
    let answers = session(
        &world,
        Transport::Stdio(&world.api_key),
        &[calls, read],
        vec![deactivate],
    )
    .await;
    assert!(answers[0]["tools"].as_array().unwrap().len() >= 9, "{}", answers[0]);
    let (_, failed, read) = call(&answers[0], 0);
    assert_eq!((failed, read["value"].as_str()), (false, Some("sk-live-123")), "{read}");
    let (_, failed, refused) = call(&answers[0], 1);
    assert!(
        failed && refused.as_str().unwrap().starts_with("403 Forbidden:"),
        "{refused}"
    );
    assert!(!refused.to_string().contains("never-shown"), "{refused}");
    // Deactivated, the agent's token is refused at once, and so is its key.
    let (_, failed, after) = call(&answers[1], 0);
    assert!(
        failed && after.as_str().unwrap().starts_with("401 Unauthorized:"),
        "{after}"
    );

    // A wrong key is refused at the first call, by the server.
    let answers = session(&world, Transport::Stdio("ocv_not-a-key"), &[read_once()], no_changes()).await;
    let (_, failed, refused) = call(&answers[0], 0);
    assert!(
        failed && refused.as_str().unwrap().starts_with("401 Unauthorized:"),
        "{refused}"
    );
}

fn read_once() -> Value {
    json!([["get_secret", {"path": "api-keys/openai"}]])
}

#[tokio::test]
async fn an_agent_shares_back_to_its_human_and_only_a_human_grants_access() {
    let db = TestDb::sqlite();
    let world = vault(&db).await;
    let agent_calls = json!([
        ["share_secret", {"path": "api-keys/openai"}],
        ["share_secret", {"path": "other/root"}],
        ["grant_access", {"secret_path_pattern": "other/*", "principal_type": "agent", "principal_id": world.agent_id}],
    ]);
    let answers = session(&world, Transport::Http(&world.agent), &[agent_calls], no_changes()).await;
    let (_, failed, share) = call(&answers[0], 0);
    assert!(!failed, "{share}");
    assert!(
        !share.to_string().contains("sk-live-123"),
        "a share's answer carries no value: {share}"
    );
    let (status, opened) = world
        .api
        .call(
            "GET",
            &format!("/v1/share/{}", share["id"].as_str().unwrap()),
            Some(&world.human),
            None,
        )
        .await;
    assert_eq!(
        (status, opened["value"].as_str()),
        (StatusCode::OK, Some("sk-live-123")),
        "{opened}"
    );
    for n in [1, 2] {
        let (name, failed, text) = call(&answers[0], n);
        assert!(failed, "{name} outside what the agent may do: {text}");
        assert!(!text.to_string().contains("never-shown"), "{text}");
    }

    // The human grants through MCP too; the agent then reads what it could not.
    let grant = json!([
        ["grant_access", {"secret_path_pattern": "other/*", "principal_type": "agent", "principal_id": world.agent_id}],
    ]);
    let answers = session(&world, Transport::Http(&world.human), &[grant], no_changes()).await;
    let (_, failed, policy) = call(&answers[0], 0);
    assert!(!failed, "{policy}");
    // A token's scopes are fixed when it is issued: the wider grant needs a new one.
    let renewed = world.api.agent_token(&world.api_key).await;
    let answers = session(
        &world,
        Transport::Http(&renewed),
        &[json!([["get_secret", {"path": "other/root"}]])],
        no_changes(),
    )
    .await;
    let (_, failed, read) = call(&answers[0], 0);
    assert_eq!((failed, read["value"].as_str()), (false, Some("never-shown")), "{read}");
}

#[tokio::test]
async fn an_agent_transacts_on_anvil_through_mcp_under_its_guardrails() {
    let world = world(TestDb::sqlite(), json!({"tx_max_value_eth": "0.5"}), &[]).await;
    let transfer = |value: &str| json!({"chain": "anvil", "to": world.recipient, "value": value});
    let once = json!({"chain": "anvil", "to": world.recipient, "value": "0.1", "idempotency_key": "pay-1"});
    let calls = json!([
        ["simulate_transaction", transfer("0.1")],
        ["submit_transaction", once],
        ["submit_transaction", transfer("0.6")],
        ["submit_transaction", once],
        ["list_transactions", {}],
        ["get_balance", {"chain": "anvil"}],
    ]);
    let answers = session(&world, Transport::Http(&world.agent), &[calls], no_changes()).await;
    let (_, failed, simulated) = call(&answers[0], 0);
    assert!(!failed, "{simulated}");
    let (_, failed, sent) = call(&answers[0], 1);
    assert_eq!((failed, sent["status"].as_str()), (false, Some("broadcast")), "{sent}");
    let (_, failed, refused) = call(&answers[0], 2);
    let refused = refused.as_str().unwrap().to_owned();
    assert!(failed && refused.starts_with("403 Forbidden:"), "{refused}");
    assert!(
        refused.contains("tx_max_value_eth"),
        "the refusal names its rule: {refused}"
    );
    // The retry with the same Idempotency-Key is the first transaction again.
    let (_, failed, retried) = call(&answers[0], 3);
    assert_eq!((failed, &retried["id"]), (false, &sent["id"]), "{retried}");
    let (_, failed, listed) = call(&answers[0], 4);
    assert!(!failed, "{listed}");
    assert_eq!(listed["transactions"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["transactions"][0]["id"], sent["id"]);
    // This agent signs with a key from the vault, not a provisioned one: the tool answers
    // what the REST API answers, in its words.
    let (_, failed, balance) = call(&answers[0], 5);
    let (status, direct) = world
        .api
        .call(
            "GET",
            &format!("/v1/agents/{}/signing-keys/anvil/balance", world.agent_id),
            Some(&world.agent),
            None,
        )
        .await;
    assert_eq!(
        (failed, balance.as_str().unwrap().to_owned()),
        (
            true,
            format!(
                "{} {}: {}",
                status.as_u16(),
                status.canonical_reason().unwrap(),
                direct["detail"].as_str().unwrap()
            )
        )
    );

    // A human's token is no agent's: the Intents tools act for the calling agent only.
    let calls = json!([["submit_transaction", transfer("0.1")]]);
    let answers = session(&world, Transport::Http(&world.human), &[calls], no_changes()).await;
    let (_, failed, text) = call(&answers[0], 0);
    assert!(failed, "{text}");
    assert_eq!(
        common::world::transactions_listed(&world, &world.human)
            .await
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing more was signed"
    );
}

/// A raw `initialize` at /mcp with these extra headers: its status and headers.
async fn initialize_with(api: &Api, headers: &[(&str, &str)]) -> (StatusCode, reqwest::header::HeaderMap) {
    let mut request = api
        .client
        .post(api.server.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "probe", "version": "0"},
            },
        }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.headers().clone())
}

#[tokio::test]
async fn the_endpoint_answers_only_its_own_host_and_origin_and_keeps_no_session() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_PUBLIC_URL", "http://vault.example")]).await;
    for allowed in [
        vec![],
        vec![("host", "vault.example")],
        vec![("origin", "http://vault.example")],
    ] {
        let (status, headers) = initialize_with(&api, &allowed).await;
        assert_eq!(status, StatusCode::OK, "{allowed:?}");
        assert!(!headers.contains_key("mcp-session-id"), "{allowed:?}: {headers:?}");
    }
    // A page of another site, or a name rebound to this server's address, is refused.
    for refused in [
        vec![("host", "attacker.example")],
        vec![("origin", "http://attacker.example")],
        vec![("origin", "http://vault.example:8080")],
        vec![("origin", "null")],
    ] {
        let (status, _) = initialize_with(&api, &refused).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused:?}");
    }
}
