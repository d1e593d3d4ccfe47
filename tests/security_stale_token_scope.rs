//! Threat: an agent's token outliving a narrowing of the agent (docs/security.md, "Narrowing
//! an agent"). A token carries the agent's `scopes` and `vault_ids` as they were when it was
//! issued, and lives up to 366 days; a human who narrows the agent means it on the next
//! request, as deactivating it does (DESIGN.md, invariant 5): for reads, writes, listings
//! and the keys the signing proxy signs with, on every replica. Widening takes a new token.

mod common;

use common::{Api, Service, TestDb, chain};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A human, two vaults, and an agent scoped to `reports/**` and `ops/**` in both, with a
/// policy there for everything, and a token issued before anything changes.
struct World {
    human: String,
    agent_id: String,
    api_key: String,
    /// The agent's token, issued at the start.
    old_token: String,
    prod: String,
    staging: String,
}

async fn world(api: &Api) -> World {
    let human = api.signup("ada@example.com", "correct horse").await;
    let mut vaults = Vec::new();
    for name in ["prod", "staging"] {
        let (_, vault) = api
            .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": name})))
            .await;
        vaults.push(vault["id"].as_str().unwrap().to_owned());
    }
    let (prod, staging) = (vaults[0].clone(), vaults[1].clone());
    let (status, created) = api
        .call(
            "POST",
            "/v1/agents",
            Some(&human),
            Some(json!({
                "name": "reporter",
                "scopes": ["reports/**", "ops/**"],
                "vault_ids": [prod, staging],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let agent_id = created["agent"]["id"].as_str().unwrap().to_owned();
    for vault in [&prod, &staging] {
        let (status, _) = api
            .call(
                "POST",
                &format!("/v1/vaults/{vault}/policies"),
                Some(&human),
                Some(json!({
                    "secret_path_pattern": "**", "principal_type": "agent",
                    "principal_id": agent_id, "permissions": ["read", "write"],
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        for path in ["reports/q3", "ops/db", "misc/note"] {
            put(api, &human, vault, path).await;
        }
    }
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let old_token = api.agent_token(&api_key).await;
    World {
        human,
        agent_id,
        api_key,
        old_token,
        prod,
        staging,
    }
}

async fn put(api: &Api, token: &str, vault: &str, path: &str) -> (StatusCode, Value) {
    let (status, body) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{vault}/secrets/{path}"),
            Some(token),
            Some(json!({"value": format!("value of {path}")})),
        )
        .await;
    assert!(
        [StatusCode::CREATED, StatusCode::FORBIDDEN].contains(&status),
        "{status}: {body}"
    );
    (status, body)
}

async fn read(api: &Api, token: &str, vault: &str, path: &str) -> (StatusCode, Value) {
    api.call("GET", &format!("/v1/vaults/{vault}/secrets/{path}"), Some(token), None)
        .await
}

/// The paths `token` lists in `vault`.
async fn listed(api: &Api, token: &str, vault: &str) -> Vec<String> {
    let (status, body) = api
        .call("GET", &format!("/v1/vaults/{vault}/secrets"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut paths: Vec<String> = body["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|secret| secret["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    paths
}

/// The human changes the agent's settings.
async fn change_agent(api: &Api, world: &World, settings: Value) {
    let (status, body) = api
        .call(
            "PATCH",
            &format!("/v1/agents/{}", world.agent_id),
            Some(&world.human),
            Some(settings),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// What the explain endpoint says of the agent reading `path` in `vault`.
async fn explained(api: &Api, world: &World, vault: &str, path: &str) -> (bool, String) {
    let (status, decision) = api
        .call(
            "POST",
            "/v1/authz/explain",
            Some(&world.human),
            Some(json!({
                "vault_id": vault, "path": path, "principal_type": "agent",
                "principal_id": world.agent_id, "permission": "read",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    (
        decision["allowed"].as_bool().unwrap(),
        decision["layer"].as_str().unwrap().to_owned(),
    )
}

/// The refusal a caller sees names the layer that refused.
fn refused_at(layer: &str) -> (StatusCode, String) {
    (StatusCode::FORBIDDEN, format!("access denied ({layer})"))
}

async fn status_and_detail(api: &Api, token: &str, vault: &str, path: &str) -> (StatusCode, String) {
    let (status, body) = read(api, token, vault, path).await;
    (status, body["detail"].as_str().unwrap_or_default().to_owned())
}

/// The token issued before the narrowing, and one issued after, are refused alike, and
/// the explain endpoint names the same layer.
async fn narrowed_reach_holds(api: &Api, world: &World) {
    let new_token = api.agent_token(&world.api_key).await;
    for token in [&world.old_token, &new_token] {
        assert_eq!(read(api, token, &world.prod, "reports/q3").await.0, StatusCode::OK);
        assert_eq!(
            status_and_detail(api, token, &world.prod, "ops/db").await,
            refused_at("scope_ceiling")
        );
        assert_eq!(
            status_and_detail(api, token, &world.staging, "reports/q3").await,
            refused_at("vault_binding")
        );
        assert_eq!(put(api, token, &world.prod, "ops/new").await.0, StatusCode::FORBIDDEN);
        assert_eq!(put(api, token, &world.prod, "reports/q4").await.0, StatusCode::CREATED);
        assert_eq!(
            listed(api, token, &world.prod).await,
            ["reports/q3", "reports/q4"],
            "only what it may still read or write is listed"
        );
        assert_eq!(listed(api, token, &world.staging).await, Vec::<String>::new());
    }
    assert_eq!(
        explained(api, world, &world.prod, "ops/db").await,
        (false, "scope_ceiling".to_owned())
    );
    assert_eq!(
        explained(api, world, &world.staging, "reports/q3").await,
        (false, "vault_binding".to_owned())
    );
    assert_eq!(
        explained(api, world, &world.prod, "reports/q3").await,
        (true, "policy".to_owned())
    );
}

/// The agent narrowed to `reports/**` in prod.
fn narrowed(world: &World) -> Value {
    json!({"scopes": ["reports/**"], "vault_ids": [world.prod]})
}

#[tokio::test]
async fn narrowing_an_agents_scopes_and_vaults_refuses_its_old_token_on_the_next_request() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    // Before: the token reaches both vaults, both scopes.
    for vault in [&world.prod, &world.staging] {
        for path in ["reports/q3", "ops/db"] {
            assert_eq!(read(&api, &world.old_token, vault, path).await.0, StatusCode::OK);
        }
        assert_eq!(listed(&api, &world.old_token, vault).await, ["ops/db", "reports/q3"]);
    }

    change_agent(&api, &world, narrowed(&world)).await;
    narrowed_reach_holds(&api, &world).await;
}

#[tokio::test]
async fn widening_an_agent_again_reaches_only_tokens_issued_since() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    change_agent(&api, &world, json!({"scopes": ["**"], "vault_ids": []})).await;
    // The old token stays within what it was issued with.
    assert_eq!(
        status_and_detail(&api, &world.old_token, &world.prod, "misc/note").await,
        refused_at("scope_ceiling")
    );
    let new_token = api.agent_token(&world.api_key).await;
    assert_eq!(read(&api, &new_token, &world.prod, "misc/note").await.0, StatusCode::OK);
    assert_eq!(
        explained(&api, &world, &world.prod, "misc/note").await,
        (true, "policy".to_owned()),
        "explain judges a token issued now"
    );

    // Narrowed below what the old token carries, then widened again: the old token is held
    // to each state on its next request.
    change_agent(&api, &world, json!({"scopes": ["reports/**"]})).await;
    assert_eq!(
        status_and_detail(&api, &world.old_token, &world.prod, "ops/db").await,
        refused_at("scope_ceiling")
    );
    change_agent(&api, &world, json!({"scopes": ["reports/**", "ops/**"]})).await;
    assert_eq!(
        read(&api, &world.old_token, &world.prod, "ops/db").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_narrowing_made_through_one_replica_refuses_the_old_token_on_the_other() {
    let db = TestDb::postgres().await;
    let service = Service::new(&db, &[]);
    let first = service.start().await;
    let second = service.start().await;
    let world = world(&first).await;
    assert_eq!(
        read(&second, &world.old_token, &world.staging, "ops/db").await.0,
        StatusCode::OK
    );
    change_agent(&first, &world, narrowed(&world)).await;
    narrowed_reach_holds(&second, &world).await;
}

/// The signing proxy reads its key through the same layers: a narrowed agent's old token
/// signs nothing with a key it may no longer read.
#[tokio::test]
async fn a_narrowed_agents_old_token_signs_nothing_with_a_key_outside_its_reach() {
    let db = TestDb::sqlite();
    let chains = chain::chains_setting(&[]);
    let api = Api::start_with(&db, &[("KEYWARD_CHAINS", chains.as_str())]).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "treasury"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let (key, signer) = chain::fresh_account();
    chain::set_balance(&signer, chain::ETH).await;
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{vault}/secrets/keys/signer"),
            Some(&human),
            Some(json!({"value": key, "type": "private_key"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, created) = api
        .call(
            "POST",
            "/v1/agents",
            Some(&human),
            Some(json!({
                "name": "trader", "intents_api_enabled": true,
                "scopes": ["keys/*"], "vault_ids": [vault],
            })),
        )
        .await;
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
    let old_token = api.agent_token(created["api_key"].as_str().unwrap()).await;
    let submit = |token: String| {
        let api = &api;
        let path = format!("/v1/agents/{agent_id}/transactions");
        async move {
            let transfer = json!({
                "chain": "anvil", "to": chain::fresh_address(), "value": "0.001",
                "signing_key_path": "keys/signer",
            });
            api.call("POST", &path, Some(&token), Some(transfer)).await
        }
    };
    let (status, tx) = submit(old_token.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    assert_eq!(tx["from"], signer.as_str());

    let agent = format!("/v1/agents/{agent_id}");
    let narrow = |settings: Value| {
        let (api, human, agent) = (&api, &human, &agent);
        async move {
            let (status, body) = api.call("PATCH", agent, Some(human), Some(settings)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    narrow(json!({"scopes": ["reports/*"]})).await;
    let (status, problem) = submit(old_token.clone()).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (StatusCode::FORBIDDEN, Some("access denied (scope_ceiling)")),
        "{problem}"
    );

    let (_, other) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "elsewhere"})))
        .await;
    narrow(json!({"scopes": ["keys/*"], "vault_ids": [other["id"]]})).await;
    let (status, problem) = submit(old_token).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (
            StatusCode::NOT_FOUND,
            Some("no signing key at keys/signer in the agent's vaults")
        ),
        "{problem}"
    );
}
