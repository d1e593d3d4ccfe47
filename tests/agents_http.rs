//! Agents over HTTP: registered by a human, signing in with an API key shown once, and
//! refused on the very next request after deactivation or key rotation.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Api, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A human with a vault, and an agent they registered: (human token, vault id, agent id, api key).
async fn human_with_agent(api: &Api, agent: Value) -> (String, String, String, String) {
    let human = api.signup("ada@example.com", "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
        .await;
    let vault_id = vault["id"].as_str().unwrap().to_owned();
    let (status, created) = api.call("POST", "/v1/agents", Some(&human), Some(agent)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let agent_id = created["agent"]["id"].as_str().unwrap().to_owned();
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    (human, vault_id, agent_id, api_key)
}

async fn agent_token(api: &Api, api_key: &str) -> (StatusCode, Value) {
    api.call("POST", "/v1/auth/agent-token", None, Some(json!({"api_key": api_key})))
        .await
}

#[tokio::test]
async fn a_registered_agent_exchanges_its_key_for_a_token_carrying_its_limits() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let agent = json!({
        "name": "deployer",
        "description": "ships builds",
        "scopes": ["api-keys/*"],
        "token_ttl_seconds": 600,
        "intents_api_enabled": true,
        "tx_to_allowlist": ["0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"],
        "tx_max_value_eth": "0.5",
        "tx_daily_limit": "1.0",
        "tx_allowed_chains": ["anvil"]
    });
    let (human, _, agent_id, api_key) = human_with_agent(&api, agent).await;
    assert!(api_key.starts_with("ocv_"), "{api_key}");

    let (status, listed) = api.call("GET", "/v1/agents", Some(&human), None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &listed["agents"][0];
    assert_eq!(listed["id"], agent_id.as_str());
    assert_eq!(listed["tx_max_value"], "0.5");
    assert_eq!(listed["tx_daily_limit_eth"], "1");
    assert_eq!(
        listed["tx_to_allowlist"][0],
        "0xabcdef0123456789abcdef0123456789abcdef01"
    );
    assert!(!listed.to_string().contains(&api_key), "a listing shows the API key");

    let (status, token) = agent_token(&api, &api_key).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        (token["agent_id"].as_str(), token["expires_in"].as_i64()),
        (Some(agent_id.as_str()), Some(600))
    );
    let access = token["access_token"].as_str().unwrap();
    let (status, me) = api.call("GET", "/v1/agents/me", Some(access), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["name"].as_str(), me["intents_api_enabled"].as_bool()),
        (Some("deployer"), Some(true))
    );
    assert_eq!(me["scopes"], json!(["api-keys/*"]));
    assert!(me["last_active_at"].is_string(), "signing in records activity");
    // An agent token is not a human session.
    assert_eq!(
        api.call("GET", "/v1/vaults", Some(access), None).await.0,
        StatusCode::FORBIDDEN
    );
}

/// 1claw's integrations sign in with the key alone and take the agent and its default vault
/// from this answer (tests/langchain_http.rs).
#[tokio::test]
async fn the_agent_token_answer_names_the_agent_and_the_vaults_its_token_is_bound_to() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let (human, vault_id, agent_id, api_key) = human_with_agent(&api, json!({"name": "bot"})).await;
    let (status, token) = agent_token(&api, &api_key).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        (&token["agent_id"], &token["vault_ids"]),
        (&json!(agent_id), &json!([])),
        "unbound: every vault of the org, none named"
    );

    let (status, body) = api
        .call(
            "PATCH",
            &format!("/v1/agents/{agent_id}"),
            Some(&human),
            Some(json!({"vault_ids": [vault_id]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, token) = agent_token(&api, &api_key).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        (&token["agent_id"], &token["vault_ids"]),
        (&json!(agent_id), &json!([vault_id]))
    );
    // The answer says what the token carries.
    let payload = token["access_token"].as_str().unwrap().split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["vault_ids"], json!([vault_id]), "{claims}");
}

#[tokio::test]
async fn deactivating_an_agent_refuses_its_token_already_in_hand() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let (human, _, agent_id, api_key) = human_with_agent(&api, json!({"name": "bot"})).await;
    let (_, token) = agent_token(&api, &api_key).await;
    let access = token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call("GET", "/v1/agents/me", Some(&access), None).await.0,
        StatusCode::OK
    );

    assert_eq!(
        api.call("DELETE", &format!("/v1/agents/{agent_id}"), Some(&human), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", "/v1/agents/me", Some(&access), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(agent_token(&api, &api_key).await.0, StatusCode::UNAUTHORIZED);
    let (_, agent) = api
        .call("GET", &format!("/v1/agents/{agent_id}"), Some(&human), None)
        .await;
    assert_eq!(agent["is_active"], false);

    // Reactivated, it signs in again with the same API key, but a token issued before its
    // deactivation stays refused: reactivating must not revive tokens someone may hold.
    let (status, _) = api
        .call(
            "PATCH",
            &format!("/v1/agents/{agent_id}"),
            Some(&human),
            Some(json!({"is_active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.call("GET", "/v1/agents/me", Some(&access), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, token) = agent_token(&api, &api_key).await;
    assert_eq!(status, StatusCode::OK);
    let fresh = token["access_token"].as_str().unwrap();
    assert_eq!(
        api.call("GET", "/v1/agents/me", Some(fresh), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rotating_the_key_refuses_the_old_key_and_every_token_it_issued() {
    let db = TestDb::postgres().await;
    let api = Api::start(&db).await;
    let (human, _, agent_id, old_key) = human_with_agent(&api, json!({"name": "bot"})).await;
    let (_, token) = agent_token(&api, &old_key).await;
    let old_token = token["access_token"].as_str().unwrap().to_owned();

    let (status, rotated) = api
        .call("POST", &format!("/v1/agents/{agent_id}/rotate-key"), Some(&human), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_key = rotated["api_key"].as_str().unwrap();
    assert_ne!(new_key, old_key);

    assert_eq!(
        api.call("GET", "/v1/agents/me", Some(&old_token), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(agent_token(&api, &old_key).await.0, StatusCode::UNAUTHORIZED);
    let (status, token) = agent_token(&api, new_key).await;
    assert_eq!(status, StatusCode::OK);
    let new_token = token["access_token"].as_str().unwrap();
    assert_eq!(
        api.call("GET", "/v1/agents/me", Some(new_token), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn agents_are_managed_within_their_org_only() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let (_, _, agent_id, _) = human_with_agent(&api, json!({"name": "bot"})).await;
    let bob = api.signup("bob@example.com", "correct horse").await;
    let path = format!("/v1/agents/{agent_id}");
    assert_eq!(api.call("GET", &path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call("PATCH", &path, Some(&bob), Some(json!({"name": "mine"})))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("DELETE", &path, Some(&bob), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("POST", &format!("{path}/rotate-key"), Some(&bob), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, listed) = api.call("GET", "/v1/agents", Some(&bob), None).await;
    assert_eq!(listed["agents"], json!([]));
}

#[tokio::test]
async fn agent_settings_are_updated_with_patch_and_put() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let (human, vault_id, agent_id, _) = human_with_agent(&api, json!({"name": "bot", "scopes": ["a/*"]})).await;
    let path = format!("/v1/agents/{agent_id}");
    let (status, patched) = api
        .call(
            "PATCH",
            &path,
            Some(&human),
            Some(json!({"vault_ids": [vault_id], "token_ttl_seconds": 120})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["name"].as_str(), patched["token_ttl_seconds"].as_i64()),
        (Some("bot"), Some(120))
    );
    assert_eq!(patched["scopes"], json!(["a/*"]), "absent fields keep their value");
    assert_eq!(patched["vault_ids"], json!([vault_id]));
    let (status, put) = api
        .call("PUT", &path, Some(&human), Some(json!({"name": "renamed"})))
        .await;
    assert_eq!((status, put["name"].as_str()), (StatusCode::OK, Some("renamed")));
    assert_eq!(put["token_ttl_seconds"], 120);
    // The spec makes token_ttl_seconds nullable: null goes back to the default.
    let (_, cleared) = api
        .call("PATCH", &path, Some(&human), Some(json!({"token_ttl_seconds": null})))
        .await;
    assert_eq!(cleared["token_ttl_seconds"], Value::Null, "{cleared}");
    assert_eq!(cleared["name"], "renamed");
}

#[tokio::test]
async fn bad_agent_input_is_400_and_changes_nothing() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let bob = api.signup("bob@example.com", "correct horse").await;
    let (_, bobs_vault) = api
        .call("POST", "/v1/vaults", Some(&bob), Some(json!({"name": "bob's"})))
        .await;
    let (_, health) = api.call("GET", "/v1/health", None, None).await;
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x", "scopes": ["../etc"]}),
        json!({"name": "x", "scopes": ["a/[b]"]}),
        json!({"name": "x", "tx_max_value": "-1"}),
        json!({"name": "x", "tx_daily_limit_eth": "0.0000000000000000001"}),
        json!({"name": "x", "tx_max_value": "1e18"}),
        json!({"name": "x", "tx_allowed_chains": ["mainnet-of-nowhere"]}),
        json!({"name": "x", "tx_to_allowlist": ["0x1234"]}),
        json!({"name": "x", "vault_ids": [bobs_vault["id"]]}),
        json!({"name": "x", "vault_ids": ["not-a-uuid"]}),
        json!({"name": "x", "token_ttl_seconds": 5}),
    ] {
        let (status, problem) = api.call("POST", "/v1/agents", Some(&human), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
    }
    let (_, after) = api.call("GET", "/v1/health", None, None).await;
    assert_eq!(
        after["log_position"], health["log_position"],
        "a refused request wrote events"
    );
    for key in ["", "ocv_short", "1ck_notanagentkeyatall0000000000000000000000000"] {
        assert_eq!(agent_token(&api, key).await.0, StatusCode::UNAUTHORIZED, "{key:?}");
    }
}
