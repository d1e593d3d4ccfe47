//! The tools, as 1claw's MCP server names them, each mapped onto the REST API.

use std::fmt;

use axum::http::{HeaderName, Method, StatusCode};
use rmcp::model::{JsonObject, Tool};
use serde_json::{Map, Value, json};

use super::rest::{Answer, Caller, Rest};

/// Every tool, with its parameters as JSON Schema.
pub fn catalog() -> Vec<Tool> {
    let vault = json!({"type": "string", "description": "The vault's id; the X-Vault-ID header's if absent."});
    let path = json!({"type": "string", "description": "The secret's path, such as api-keys/openai."});
    let tool = |name: &'static str, description: &'static str, properties: Value, required: &[&str]| {
        let mut properties = properties.as_object().cloned().unwrap_or_default();
        properties.insert("vault_id".into(), vault.clone());
        let schema: JsonObject = serde_json::from_value(json!({
            "type": "object",
            "properties": properties,
            "required": required,
        }))
        .unwrap_or_default();
        Tool::new(name, description, schema)
    };
    vec![
        tool(
            "list_secrets",
            "List the secrets of a vault the agent may see: metadata only, never values.",
            json!({"prefix": {"type": "string", "description": "Only paths starting with this."}}),
            &[],
        ),
        tool(
            "get_secret",
            "Fetch a secret's decrypted value by path (audited).",
            json!({"path": path}),
            &["path"],
        ),
        tool(
            "put_secret",
            "Create or update a secret: a new version at the path.",
            json!({
                "path": path,
                "value": {"type": "string"},
                "type": {"type": "string", "description": "api_key, password, private_key, certificate, note, ..."},
                "metadata": {"type": "object"},
                "expires_at": {"type": "string", "format": "date-time"},
                "max_access_count": {"type": "integer", "minimum": 1},
            }),
            &["path", "value"],
        ),
        tool(
            "delete_secret",
            "Delete a secret: its keys are destroyed, its history stays in the audit trail.",
            json!({"path": path}),
            &["path"],
        ),
        tool(
            "describe_secret",
            "A secret's metadata (type, version, dates) without its value.",
            json!({"path": path}),
            &["path"],
        ),
        tool(
            "rotate_and_store",
            "Generate a new random value for an existing secret and store it as its next version; the value is not returned.",
            json!({
                "path": path,
                "length": {"type": "integer"},
                "charset": {"type": "string", "enum": ["alphanumeric", "hex", "base64", "printable"]},
            }),
            &["path"],
        ),
        tool(
            "get_env_bundle",
            "Fetch a secret holding KEY=VALUE lines and return them as a JSON object (audited).",
            json!({"path": path}),
            &["path"],
        ),
        tool(
            "share_secret",
            "Share a secret: by default back to the human who created the agent, for a day.",
            json!({
                "path": path,
                "recipient_type": {"type": "string", "enum": ["creator", "user", "agent", "external_email", "anyone_with_link"]},
                "recipient_id": {"type": "string"},
                "email": {"type": "string"},
                "expires_at": {"type": "string", "format": "date-time"},
                "max_access_count": {"type": "integer", "minimum": 1},
                "passphrase": {"type": "string"},
                "ip_allowlist": {"type": "array", "items": {"type": "string"}},
            }),
            &["path"],
        ),
        tool(
            "grant_access",
            "Grant a principal access to the secrets matching a path pattern (a policy; humans only).",
            json!({
                "secret_path_pattern": {"type": "string", "description": "A glob, such as api-keys/*."},
                "principal_type": {"type": "string", "enum": ["agent", "user"]},
                "principal_id": {"type": "string"},
                "permissions": {"type": "array", "items": {"type": "string", "enum": ["read", "write"]}},
                "conditions": {"type": "object"},
            }),
            &["secret_path_pattern", "principal_type", "principal_id"],
        ),
        tool(
            "submit_transaction",
            "Sign and broadcast an EVM transaction with the agent's key, under its guardrails \
             (recipient allowlist, per-transaction cap, daily limit, allowed chains).",
            transaction(),
            &["to", "value", "chain"],
        ),
        tool(
            "simulate_transaction",
            "Simulate a transaction against the chain without signing it.",
            transaction(),
            &["to", "value", "chain"],
        ),
        tool(
            "sign_transaction",
            "Sign a transaction under the same guardrails, without broadcasting it.",
            transaction(),
            &["to", "value", "chain"],
        ),
        tool(
            "list_transactions",
            "The agent's transactions, newest first.",
            json!({}),
            &[],
        ),
        tool(
            "get_balance",
            "The balance of the agent's signing key on a chain.",
            json!({"chain": {"type": "string"}}),
            &["chain"],
        ),
        tool("list_vaults", "List the vaults the caller may see.", json!({}), &[]),
        tool(
            "create_vault",
            "Create a vault (humans only).",
            json!({"name": {"type": "string"}, "description": {"type": "string"}}),
            &["name"],
        ),
    ]
}

/// The parameters of a transaction intent (the spec's SubmitTransactionRequest, EVM part).
fn transaction() -> Value {
    json!({
        "to": {"type": "string", "description": "The recipient's address."},
        "value": {"type": "string", "description": "In ether, such as 0.01."},
        "chain": {"type": "string", "description": "The chain's name, such as base or anvil."},
        "data": {"type": "string", "description": "Calldata, 0x-prefixed hex."},
        "signing_key_path": {"type": "string"},
        "nonce": {"type": "integer"},
        "gas_limit": {"type": "integer"},
        "max_fee_per_gas": {"type": "string"},
        "max_priority_fee_per_gas": {"type": "string"},
        "simulate_first": {"type": "boolean"},
        "idempotency_key": {
            "type": "string",
            "description": "Sent as Idempotency-Key: a retry with the same key gets the first call's transaction.",
        },
    })
}

/// The arguments of a transaction intent that its REST request takes.
const TRANSACTION_FIELDS: [&str; 10] = [
    "to",
    "value",
    "chain",
    "data",
    "signing_key_path",
    "nonce",
    "gas_limit",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "simulate_first",
];

/// Why a tool call did not succeed: what the REST API answered, or what was missing.
#[derive(Debug)]
pub struct Refusal {
    status: Option<StatusCode>,
    detail: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(
                f,
                "{} {}: {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("error"),
                self.detail
            ),
            None => f.write_str(&self.detail),
        }
    }
}

impl Refusal {
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self {
            status: None,
            detail: detail.into(),
        }
    }

    /// The API's refusal, in its own words (the problem document's `detail`).
    pub fn of(answer: &Answer) -> Self {
        let detail = answer.body["detail"]
            .as_str()
            .or(answer.body["title"].as_str())
            .unwrap_or("the request was refused")
            .to_owned();
        Self {
            status: Some(answer.status),
            detail,
        }
    }
}

/// Runs tool `name` with `arguments` as `caller`; the text of its result.
pub async fn call(rest: &Rest, caller: &Caller, name: &str, arguments: &JsonObject) -> Result<String, Refusal> {
    let argument = |key: &str| arguments.get(key).and_then(Value::as_str);
    let required = |key: &str| argument(key).ok_or_else(|| Refusal::invalid(format!("{key} is required")));
    let vault = || -> Result<String, Refusal> {
        let vault = argument("vault_id")
            .or(caller.vault.as_deref())
            .ok_or_else(|| Refusal::invalid("no vault: pass vault_id or send the X-Vault-ID header"))?;
        uuid::Uuid::parse_str(vault)
            .map(|id| id.to_string())
            .map_err(|_| Refusal::invalid("vault_id is not a UUID"))
    };
    let secret_url = |route: &str| -> Result<String, Refusal> {
        Ok(format!(
            "/v1/vaults/{}/{route}/{}",
            vault()?,
            encode_path(required("path")?)
        ))
    };
    let ok = |answer: Answer| {
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(Refusal::of(&answer))
        }
    };
    let body = match name {
        "list_secrets" => {
            let listed = ok(rest
                .call(caller, Method::GET, &format!("/v1/vaults/{}/secrets", vault()?), None)
                .await)?;
            let prefix = argument("prefix").unwrap_or("");
            let secrets: Vec<&Value> = listed["secrets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|secret| secret["path"].as_str().is_some_and(|path| path.starts_with(prefix)))
                .collect();
            json!({ "secrets": secrets })
        }
        "get_secret" => ok(rest.call(caller, Method::GET, &secret_url("secrets")?, None).await)?,
        "put_secret" => {
            required("value")?;
            let body = copied(
                arguments,
                &["value", "type", "metadata", "expires_at", "max_access_count"],
            );
            ok(rest
                .call(caller, Method::PUT, &secret_url("secrets")?, Some(Value::Object(body)))
                .await)?
        }
        "delete_secret" => {
            ok(rest.call(caller, Method::DELETE, &secret_url("secrets")?, None).await)?;
            json!({ "deleted": required("path")? })
        }
        "describe_secret" => visible_secret(rest, caller, &vault()?, required("path")?).await?,
        "share_secret" => {
            let secret = visible_secret(rest, caller, &vault()?, required("path")?).await?;
            let id = secret["id"].as_str().unwrap_or_default();
            let mut body = copied(
                arguments,
                &[
                    "recipient_type",
                    "recipient_id",
                    "email",
                    "max_access_count",
                    "expires_at",
                    "passphrase",
                    "ip_allowlist",
                ],
            );
            // Back to the human who created the agent, for a day, unless asked otherwise.
            body.entry("recipient_type").or_insert_with(|| json!("creator"));
            body.entry("expires_at")
                .or_insert_with(|| json!(chrono::Utc::now() + chrono::Duration::days(1)));
            ok(rest
                .call(
                    caller,
                    Method::POST,
                    &format!("/v1/secrets/{id}/share"),
                    Some(Value::Object(body)),
                )
                .await)?
        }
        "grant_access" => {
            let mut body = copied(
                arguments,
                &["principal_type", "principal_id", "permissions", "conditions"],
            );
            body.insert("secret_path_pattern".into(), json!(required("secret_path_pattern")?));
            body.entry("permissions").or_insert_with(|| json!(["read"]));
            ok(rest
                .call(
                    caller,
                    Method::POST,
                    &format!("/v1/vaults/{}/policies", vault()?),
                    Some(Value::Object(body)),
                )
                .await)?
        }
        "rotate_and_store" => {
            let body = copied(arguments, &["length", "charset"]);
            ok(rest
                .call(
                    caller,
                    Method::POST,
                    &secret_url("secret-rotate")?,
                    Some(Value::Object(body)),
                )
                .await)?
        }
        "get_env_bundle" => {
            let secret = ok(rest.call(caller, Method::GET, &secret_url("secrets")?, None).await)?;
            Value::Object(env_bundle(secret["value"].as_str().unwrap_or("")))
        }
        "submit_transaction" | "simulate_transaction" | "sign_transaction" => {
            let route = match name {
                "submit_transaction" => "transactions",
                "simulate_transaction" => "transactions/simulate",
                _ => "transactions/sign",
            };
            let agent = calling_agent(rest, caller).await?;
            let body = copied(arguments, &TRANSACTION_FIELDS);
            // A retried call with the same key gets the first call's transaction, not a second.
            let caller = match argument("idempotency_key") {
                Some(key) => caller
                    .clone()
                    .with_header(HeaderName::from_static("idempotency-key"), key),
                None => caller.clone(),
            };
            ok(rest
                .call(
                    &caller,
                    Method::POST,
                    &format!("/v1/agents/{agent}/{route}"),
                    Some(Value::Object(body)),
                )
                .await)?
        }
        "list_transactions" => {
            let agent = calling_agent(rest, caller).await?;
            ok(rest
                .call(caller, Method::GET, &format!("/v1/agents/{agent}/transactions"), None)
                .await)?
        }
        "get_balance" => {
            let agent = calling_agent(rest, caller).await?;
            let chain = encode_path(required("chain")?).replace('/', "%2F");
            ok(rest
                .call(
                    caller,
                    Method::GET,
                    &format!("/v1/agents/{agent}/signing-keys/{chain}/balance"),
                    None,
                )
                .await)?
        }
        "list_vaults" => ok(rest.call(caller, Method::GET, "/v1/vaults", None).await)?,
        "create_vault" => {
            required("name")?;
            let body = copied(arguments, &["name", "description"]);
            ok(rest
                .call(caller, Method::POST, "/v1/vaults", Some(Value::Object(body)))
                .await)?
        }
        other => return Err(Refusal::invalid(format!("no tool named {other}"))),
    };
    Ok(body.to_string())
}

/// The metadata of the secret at `path` in `vault`, if the caller may see it.
async fn visible_secret(rest: &Rest, caller: &Caller, vault: &str, path: &str) -> Result<Value, Refusal> {
    let listed = rest
        .call(caller, Method::GET, &format!("/v1/vaults/{vault}/secrets"), None)
        .await;
    if !listed.status.is_success() {
        return Err(Refusal::of(&listed));
    }
    listed.body["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|secret| secret["path"] == path)
        .cloned()
        .ok_or_else(|| Refusal {
            status: Some(StatusCode::NOT_FOUND),
            detail: "no secret at this path that the caller may see".into(),
        })
}

/// The id of the agent `caller` is, as the API knows it (`GET /v1/agents/me`): the
/// Intents tools act for the caller only.
async fn calling_agent(rest: &Rest, caller: &Caller) -> Result<String, Refusal> {
    let me = rest.call(caller, Method::GET, "/v1/agents/me", None).await;
    if !me.status.is_success() {
        return Err(Refusal::of(&me));
    }
    me.body["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Refusal::invalid("the API did not name the calling agent"))
}

/// The arguments named `keys` that were given, for a request's body.
fn copied(arguments: &JsonObject, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|key| Some(((*key).to_owned(), arguments.get(*key)?.clone())))
        .collect()
}

/// `KEY=VALUE` lines as an object; blank lines and `#` comments skipped, an `export `
/// prefix and quotes around a value dropped.
fn env_bundle(text: &str) -> Map<String, Value> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("export ").unwrap_or(line).split_once('='))
        .map(|(key, value)| {
            let value = value.trim();
            let unquoted = [('"', '"'), ('\'', '\'')]
                .into_iter()
                .find_map(|(open, close)| value.strip_prefix(open)?.strip_suffix(close))
                .unwrap_or(value);
            (key.trim().to_owned(), Value::String(unquoted.to_owned()))
        })
        .collect()
}

/// A secret path for a URL: each segment percent-encoded but for unreserved characters.
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => encoded.push(byte as char),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_env_bundle_reads_keys_and_values_and_skips_the_rest() {
        let bundle =
            env_bundle("# db\nexport DB_URL=\"postgres://x\"\n\nAPI_KEY = abc=def\nnot a pair\nQUOTED='a b'\n");
        assert_eq!(
            Value::Object(bundle),
            json!({"DB_URL": "postgres://x", "API_KEY": "abc=def", "QUOTED": "a b"})
        );
    }

    #[test]
    fn a_path_is_encoded_per_segment() {
        assert_eq!(encode_path("api-keys/open ai?x#y%"), "api-keys/open%20ai%3Fx%23y%25");
    }
}
