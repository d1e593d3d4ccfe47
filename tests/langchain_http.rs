//! 1claw's LangChain integration (PyPI `langchain-1claw`), driven by tests/langchain/tools.py
//! against a running keyward with nothing changed but its base URL. Its client signs in with
//! the agent's API key alone (`POST /v1/auth/agent-token`), takes the agent and its default
//! vault from that answer (`agent_id`, `vault_ids`), and names each secret by its whole path
//! URL-encoded (`/v1/vaults/{id}/secrets/api-keys%2Fopenai`). Its tools list, read, write and
//! rotate what the agent's policy grants; outside the policy or the vault binding, with a
//! wrong key, another agent's id or a rotated key, they answer a refusal and no value.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{Api, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn python() -> String {
    std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "KEYWARD_TEST_PYTHON is not set: this test drives keyward with langchain-1claw, which \
             scripts/test installs into .tools/venv. Run it as `scripts/test -E 'binary(langchain_http)'`."
        )
    })
}

/// A human's vault `prod` and a second vault `staging`, and an agent bound to `prod` that may
/// read and write `api-keys/*` there (and, by a policy its binding overrides, read in `staging`).
struct Vaults {
    api: Api,
    human: String,
    prod: String,
    staging: String,
    agent_id: String,
    api_key: String,
}

async fn vaults(db: &TestDb) -> Vaults {
    let api = Api::start(db).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let mut ids = Vec::new();
    for (name, secrets) in [
        (
            "prod",
            [("api-keys/openai", "sk-live-123"), ("other/root", "never-shown")],
        ),
        (
            "staging",
            [("api-keys/openai", "sk-staging-9"), ("other/root", "never-shown")],
        ),
    ] {
        let (status, vault) = api
            .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": name})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{vault}");
        let vault = vault["id"].as_str().unwrap().to_owned();
        for (path, value) in secrets {
            let (status, body) = api
                .call(
                    "PUT",
                    &format!("/v1/vaults/{vault}/secrets/{path}"),
                    Some(&human),
                    Some(json!({"value": value, "type": "api_key"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        ids.push(vault);
    }
    let (prod, staging) = (ids[0].clone(), ids[1].clone());
    let (status, created) = api
        .call(
            "POST",
            "/v1/agents",
            Some(&human),
            Some(json!({"name": "summarizer", "vault_ids": [prod]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let agent_id = created["agent"]["id"].as_str().unwrap().to_owned();
    for (vault, permissions) in [(&prod, json!(["read", "write"])), (&staging, json!(["read"]))] {
        let (status, body) = api
            .call(
                "POST",
                &format!("/v1/vaults/{vault}/policies"),
                Some(&human),
                Some(json!({
                    "secret_path_pattern": "api-keys/*",
                    "principal_type": "agent",
                    "principal_id": agent_id,
                    "permissions": permissions,
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    Vaults {
        api,
        human,
        prod,
        staging,
        agent_id,
        api_key: created["api_key"].as_str().unwrap().to_owned(),
    }
}

/// One `OneclawClient` signed in with `api_key` (and `settings`, its other constructor
/// arguments), whose tools run each batch of calls in turn; before each batch after the first,
/// `between` runs (the test changing the world while the client holds its token). One answer
/// per batch: the calls' outputs, and the agent and vault the client resolved.
async fn session(
    world: &Vaults,
    api_key: &str,
    settings: Value,
    batches: &[Value],
    mut between: Vec<impl AsyncFnMut()>,
) -> Vec<Value> {
    let mut client = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/langchain/tools.py"))
        .args([&world.api.server.base_url, api_key, &settings.to_string()])
        .args(batches.iter().map(Value::to_string))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // LangSmith tracing stays off: nothing leaves the machine.
        .env("LANGSMITH_TRACING", "false")
        .env_remove("LANGSMITH_API_KEY")
        .env_remove("LANGCHAIN_API_KEY")
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
            panic!(
                "the langchain-1claw driver stopped: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        answers.push(serde_json::from_str(&line).unwrap());
    }
    drop(stdin);
    assert!(client.wait().unwrap().success());
    answers
}

/// Nothing changes between batches.
fn no_changes() -> Vec<fn() -> std::future::Ready<()>> {
    Vec::new()
}

/// What call `n` of an answer returned: the tools answer text, JSON for what they serialize.
fn output(answer: &Value, n: usize) -> &str {
    answer["calls"][n]["output"].as_str().unwrap()
}

/// The problem+json a tool passes on after `prefix`, for the refusals whose text it quotes.
fn problem(output: &str, prefix: &str) -> Value {
    let rest = output
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?}…, got {output:?}"));
    serde_json::from_str(rest).unwrap_or_else(|e| panic!("{e}: {rest}"))
}

const REFUSED: &str = "[1claw error] HTTP 403: ";
const UNAUTHORIZED: &str = "[1claw error] HTTP 401: ";
const INVALID: &str = "[1claw error] Validation error: ";
/// The client's own words when the agent-token exchange is refused.
const SIGN_IN_REFUSED: &str = "[1claw error] Authentication failed: HTTP 401";

/// A secret's current value and version, as the human reads it over REST with the path as is.
async fn as_the_human_reads(world: &Vaults, vault: &str, path: &str) -> (StatusCode, Value) {
    world
        .api
        .call(
            "GET",
            &format!("/v1/vaults/{vault}/secrets/{path}"),
            Some(&world.human),
            None,
        )
        .await
}

/// The audit events of `action` the agent is the actor of.
async fn agents_audit_events(world: &Vaults, action: &str) -> Vec<Value> {
    let (status, trail) = world
        .api
        .call(
            "GET",
            &format!("/v1/audit/events?action={action}"),
            Some(&world.human),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["actor_id"] == world.agent_id.as_str())
        .cloned()
        .collect()
}

#[tokio::test]
async fn langchain_tools_signed_in_with_the_agent_key_alone_list_read_write_and_rotate_what_the_policy_grants() {
    let db = TestDb::sqlite();
    let world = vaults(&db).await;
    let calls = json!([
        ["oneclaw_list_secrets", {}],
        ["oneclaw_list_secrets", {"prefix": "api-keys/"}],
        ["oneclaw_get_secret", {"path": "api-keys/openai"}],
        ["oneclaw_put_secret", {"path": "api-keys/anthropic", "value": "sk-ant-456", "secret_type": "api_key", "description": "for the summaries"}],
        ["oneclaw_get_secret", {"path": "api-keys/anthropic"}],
        ["oneclaw_rotate_secret", {"path": "api-keys/anthropic", "length": 48, "charset": "hex"}],
        ["oneclaw_get_secret", {"path": "api-keys/anthropic"}],
    ]);
    let answers = session(&world, &world.api_key, json!({}), &[calls], no_changes()).await;
    let answer = &answers[0];
    for tool in [
        "oneclaw_get_secret",
        "oneclaw_put_secret",
        "oneclaw_list_secrets",
        "oneclaw_rotate_secret",
    ] {
        assert!(answer["tools"].as_array().unwrap().contains(&json!(tool)), "{answer}");
    }
    // Agent and default vault, from the agent-token answer alone.
    assert_eq!(
        (&answer["agent_id"], &answer["vault_id"]),
        (&json!(world.agent_id), &json!(world.prod))
    );

    // Listings: what the policy lets the agent see, metadata only.
    for n in [0, 1] {
        let listed: Value = serde_json::from_str(output(answer, n)).unwrap();
        let paths: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|secret| secret["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["api-keys/openai"], "{listed}");
        assert_eq!(listed[0]["type"], "api_key");
        assert!(listed[0].get("value").is_none(), "a listing carries no value: {listed}");
    }
    assert_eq!(output(answer, 2), "sk-live-123");

    // A write to a nested path, URL-encoded whole, then read back the same way.
    let written: Value = serde_json::from_str(output(answer, 3)).unwrap();
    assert_eq!(
        (&written["path"], &written["type"], &written["version"]),
        (&json!("api-keys/anthropic"), &json!("api_key"), &json!(1)),
        "{written}"
    );
    assert!(written.get("value").is_none(), "{written}");
    assert_eq!(output(answer, 4), "sk-ant-456");

    // Rotation: a new version with a value generated by the server, which the answer omits.
    let rotated: Value = serde_json::from_str(output(answer, 5)).unwrap();
    assert_eq!(
        (&rotated["path"], &rotated["type"], &rotated["version"]),
        (&json!("api-keys/anthropic"), &json!("api_key"), &json!(2)),
        "{rotated}"
    );
    assert!(rotated.get("value").is_none(), "{rotated}");
    let generated = output(answer, 6);
    assert_eq!(generated.len(), 48, "{generated}");
    assert!(
        generated.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')),
        "{generated}"
    );

    // The encoded path and the plain one are the same secret: the human sees what the agent wrote.
    let (status, seen) = as_the_human_reads(&world, &world.prod, "api-keys/anthropic").await;
    assert_eq!(
        (status, &seen["value"], &seen["version"]),
        (StatusCode::OK, &json!(generated), &json!(2)),
        "{seen}"
    );
    // Every read is the agent's, in the audit trail.
    assert_eq!(agents_audit_events(&world, "secret.read").await.len(), 3);
}

#[tokio::test]
async fn langchain_tools_get_a_refusal_and_no_value_outside_the_policy_and_the_vault_binding() {
    let db = TestDb::sqlite();
    let world = vaults(&db).await;
    let calls = json!([
        ["oneclaw_get_secret", {"path": "other/root"}],
        // `..` inside the encoded path: not a way out of `api-keys/*`.
        ["oneclaw_get_secret", {"path": "api-keys/../other/root"}],
        ["oneclaw_put_secret", {"path": "other/planted", "value": "planted-value"}],
        ["oneclaw_rotate_secret", {"path": "other/root"}],
        // A policy grants reading in `staging`, but the agent is bound to `prod`.
        ["oneclaw_get_secret", {"path": "api-keys/openai", "vault_id": world.staging}],
        ["oneclaw_list_secrets", {"vault_id": world.staging}],
    ]);
    let answers = session(&world, &world.api_key, json!({}), &[calls], no_changes()).await;
    let answer = &answers[0];
    for (n, prefix, status) in [
        (0, REFUSED, 403),
        (1, INVALID, 400),
        (2, REFUSED, 403),
        (3, REFUSED, 403),
        (4, REFUSED, 403),
    ] {
        let text = output(answer, n);
        assert_eq!(problem(text, prefix)["status"], status, "call {n}: {text}");
        for value in ["never-shown", "sk-staging-9", "sk-live-123"] {
            assert!(!text.contains(value), "call {n} leaks {value}: {text}");
        }
    }
    // A listing shows what the caller may read or write there: nothing, not even a path.
    assert_eq!(output(answer, 5), "[]");

    // Nothing was written: no planted secret, no new version of the one out of reach.
    let (status, _) = as_the_human_reads(&world, &world.prod, "other/planted").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, root) = as_the_human_reads(&world, &world.prod, "other/root").await;
    assert_eq!(
        (status, &root["value"], &root["version"]),
        (StatusCode::OK, &json!("never-shown"), &json!(1))
    );
    // The refused reads are in the audit trail; no read of the agent's succeeded.
    assert!(!agents_audit_events(&world, "secret.read_denied").await.is_empty());
    assert_eq!(agents_audit_events(&world, "secret.read").await, Vec::<Value>::new());
}

#[tokio::test]
async fn langchain_tools_with_a_wrong_key_a_humans_key_or_another_agents_id_get_no_token_and_no_value() {
    let db = TestDb::sqlite();
    let world = vaults(&db).await;
    let (status, personal) = world
        .api
        .call(
            "POST",
            "/v1/auth/api-keys",
            Some(&world.human),
            Some(json!({"name": "laptop"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{personal}");
    let (status, other) = world
        .api
        .call(
            "POST",
            "/v1/agents",
            Some(&world.human),
            Some(json!({"name": "other", "vault_ids": [world.prod]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let wrong = format!("ocv_{}", "A".repeat(43));
    let attempts = [
        (wrong.as_str(), json!({})),
        (personal["api_key"].as_str().unwrap(), json!({})),
        // The right key, claimed for another agent.
        (world.api_key.as_str(), json!({"agent_id": other["agent"]["id"]})),
        // The right vault named outright does not stand in for a token.
        (wrong.as_str(), json!({"vault_id": world.prod})),
    ];
    let calls = json!([
        ["oneclaw_get_secret", {"path": "api-keys/openai"}],
        ["oneclaw_list_secrets", {}],
        ["oneclaw_put_secret", {"path": "api-keys/planted", "value": "planted-value"}],
    ]);
    for (key, settings) in attempts {
        let answers = session(
            &world,
            key,
            settings.clone(),
            std::slice::from_ref(&calls),
            no_changes(),
        )
        .await;
        let answer = &answers[0];
        for n in 0..3 {
            assert_eq!(output(answer, n), SIGN_IN_REFUSED, "{settings}: {answer}");
        }
        assert_eq!(
            answer["vault_id"],
            settings.get("vault_id").cloned().unwrap_or(Value::Null)
        );
    }
    let (status, _) = as_the_human_reads(&world, &world.prod, "api-keys/planted").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(agents_audit_events(&world, "secret.read").await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_rotated_key_stops_the_langchain_client_at_its_next_call_though_it_holds_a_token() {
    let db = TestDb::sqlite();
    let world = vaults(&db).await;
    let read = json!([["oneclaw_get_secret", {"path": "api-keys/openai"}]]);
    let mut new_key = String::new();
    let rotate = async || {
        let (status, rotated) = world
            .api
            .call(
                "POST",
                &format!("/v1/agents/{}/rotate-key", world.agent_id),
                Some(&world.human),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        new_key = rotated["api_key"].as_str().unwrap().to_owned();
    };
    let answers = session(
        &world,
        &world.api_key,
        json!({}),
        &[read.clone(), read.clone()],
        vec![rotate],
    )
    .await;
    assert_eq!(output(&answers[0], 0), "sk-live-123");
    // The token the client still holds was issued for the old key: refused at once.
    let refused = output(&answers[1], 0);
    assert_eq!(problem(refused, UNAUTHORIZED)["status"], 401, "{refused}");
    assert!(!refused.contains("sk-live-123"), "{refused}");

    // A new client with the old key cannot sign in; with the new key it reads again.
    let answers = session(
        &world,
        &world.api_key,
        json!({}),
        std::slice::from_ref(&read),
        no_changes(),
    )
    .await;
    assert_eq!(output(&answers[0], 0), SIGN_IN_REFUSED);
    let answers = session(&world, &new_key, json!({}), &[read], no_changes()).await;
    assert_eq!(output(&answers[0], 0), "sk-live-123");
}
