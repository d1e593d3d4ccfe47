//! The world of the Intents tests against the run's anvil: a keyward server, a human, a
//! vault holding a funded signing key, and an intents agent allowed to read it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::chain::{self, ETH};
use super::{Api, Server, TestDb};

/// The human's password, for what asks them to re-enter it (X-Auth-Confirm).
pub const PASSWORD: &str = "correct horse";

/// What a human who turns raw digest signing on acknowledges, word for word.
pub const RAW_SIGNING_ACKNOWLEDGEMENT: &str = "RAW SIGNING HANDS OVER THE KEY";
pub const PUBLIC_URL: &str = "http://keyward.test";
/// What opens the world server's /metrics.
pub const METRICS_TOKEN: &str = "world-metrics-token-0123456789";

/// A human, a vault with the signing key, and an intents agent allowed to read it.
pub struct World {
    pub api: Api,
    pub human: String,
    pub agent_id: String,
    pub agent: String,
    /// To exchange for a new token when the server starts again.
    pub api_key: String,
    pub vault: String,
    pub key: String,
    pub signer: String,
    pub recipient: String,
    /// Kept so the test can read the server's database afterwards.
    pub db: TestDb,
    pub env: Vec<(String, String)>,
}

pub async fn world(db: TestDb, settings: Value, extra_chains: &[Value]) -> World {
    world_with_chains(db, settings, chain::chains_setting(extra_chains)).await
}

/// [`world`] with its server's KEYWARD_CHAINS.
pub async fn world_with_chains(db: TestDb, settings: Value, chains: String) -> World {
    let data_dir = tempfile::tempdir().unwrap().keep();
    let log = std::fs::File::create(data_dir.join("server.log")).unwrap();
    let settings_env = [
        ("KEYWARD_DATABASE_URL", db.url()),
        ("KEYWARD_DATA_DIR", data_dir.to_str().unwrap().to_owned()),
        ("KEYWARD_CHAINS", chains),
        ("KEYWARD_LOG", "debug".to_owned()),
        // Tokens stay valid on another process on the same log.
        ("KEYWARD_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ("KEYWARD_METRICS_TOKEN", METRICS_TOKEN.to_owned()),
    ];
    let server_env: Vec<(&str, &str)> = settings_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let api = Api::new(Server::start_with_stderr(&server_env, log).await, data_dir);
    let human = api.signup("ada@example.com", PASSWORD).await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "treasury"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let (key, signer) = chain::fresh_account();
    chain::set_balance(&signer, 100 * ETH).await;
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{vault}/secrets/keys/anvil-signer"),
            Some(&human),
            Some(json!({"value": key, "type": "private_key"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut agent = json!({"name": "trader", "intents_api_enabled": true});
    agent
        .as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    let (status, created) = api.call("POST", "/v1/agents", Some(&human), Some(agent)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let agent_id = created["agent"]["id"].as_str().unwrap().to_owned();
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/vaults/{vault}/policies"),
            Some(&human),
            Some(json!({
                "secret_path_pattern": "keys/*", "principal_type": "agent",
                "principal_id": agent_id, "permissions": ["read"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = api.agent_token(created["api_key"].as_str().unwrap()).await;
    World {
        env: vec![("KEYWARD_DATABASE_URL".into(), db.url())],
        api,
        human,
        agent_id,
        agent: token,
        api_key: created["api_key"].as_str().unwrap().to_owned(),
        vault,
        key,
        signer,
        recipient: chain::fresh_address(),
        db,
    }
}

/// The agent submits a transaction (POST /v1/agents/{id}/transactions).
pub async fn submit(world: &World, body: Value) -> (StatusCode, Value) {
    world
        .api
        .call(
            "POST",
            &format!("/v1/agents/{}/transactions", world.agent_id),
            Some(&world.agent),
            Some(body),
        )
        .await
}

/// The agent's human changes its settings (PATCH /v1/agents/{id}).
pub async fn change_agent(world: &World, settings: Value) -> (StatusCode, Value) {
    let path = format!("/v1/agents/{}", world.agent_id);
    world.api.call("PATCH", &path, Some(&world.human), Some(settings)).await
}

/// [`change_agent`], the human re-entering `password` in X-Auth-Confirm.
pub async fn change_agent_confirming(world: &World, settings: Value, password: &str) -> (StatusCode, Value) {
    let path = format!("/v1/agents/{}", world.agent_id);
    let headers = [("X-Auth-Confirm", password)];
    world
        .api
        .call_with_headers("PATCH", &path, Some(&world.human), Some(settings), &headers)
        .await
}

/// The agent's transactions as `token`'s holder lists them, newest first.
pub async fn transactions_listed(world: &World, token: &str) -> Value {
    let (status, listed) = world
        .api
        .call(
            "GET",
            &format!("/v1/agents/{}/transactions", world.agent_id),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    listed["transactions"].clone()
}

/// The audit trail's events of one action, as the human sees them.
pub async fn audit_trail(world: &World, action: &str) -> Value {
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
    trail
}

/// The agent asks for a signature (POST /v1/agents/{id}/sign).
pub async fn sign_intent(world: &World, body: Value) -> (StatusCode, Value) {
    let path = format!("/v1/agents/{}/sign", world.agent_id);
    world.api.call("POST", &path, Some(&world.agent), Some(body)).await
}

/// The address that signed `hash`, recovered from a 65-byte signature in 0x hex.
pub fn signer_of(signature: &Value, hash: &Value) -> String {
    let signature = alloy_primitives::hex::decode(signature.as_str().unwrap()).unwrap();
    let hash: alloy_primitives::B256 = hash.as_str().unwrap().parse().unwrap();
    let signature = alloy_primitives::Signature::from_raw(&signature).unwrap();
    format!("{:#x}", signature.recover_address_from_prehash(&hash).unwrap())
}
