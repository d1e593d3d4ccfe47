//! The chain registry: the configured chains, and administrators' changes laid over them,
//! kept across restarts.

mod common;

use common::{Api, TestDb};
use reqwest::StatusCode;
use serde_json::json;

const ADMIN: &str = "ops@example.com";

#[tokio::test]
async fn the_default_registry_is_one_local_anvil_chain_found_by_name_or_id() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let (status, listed) = api.call("GET", "/v1/chains", Some(&human), None).await;
    assert_eq!(status, StatusCode::OK);
    let chains = listed["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 1, "{listed}");
    assert_eq!(
        (chains[0]["name"].as_str(), chains[0]["chain_id"].as_u64()),
        (Some("anvil"), Some(31337))
    );
    assert!(
        chains[0].get("rpc_url").is_none(),
        "RPC URLs can hold provider keys: admins only"
    );
    for identifier in ["anvil", "31337"] {
        let (status, chain) = api
            .call("GET", &format!("/v1/chains/{identifier}"), Some(&human), None)
            .await;
        assert_eq!((status, chain["id"].clone()), (StatusCode::OK, chains[0]["id"].clone()));
    }
    assert_eq!(
        api.call("GET", "/v1/chains/nope", Some(&human), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("GET", "/v1/chains", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call("GET", "/v1/admin/chains", Some(&human), None).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn administrators_add_change_and_remove_chains_and_it_survives_a_restart() {
    let db = TestDb::sqlite();
    let service = common::Service::new(&db, &[("KEYWARD_ADMINS", ADMIN)]);
    let api = service.start().await;
    let admin = api.signup_verified(ADMIN, "correct horse").await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let base_sepolia = json!({
        "name": "base-sepolia", "display_name": "Base Sepolia", "chain_id": 84532,
        "rpc_url": "https://sepolia.base.org", "is_testnet": true,
    });
    let (status, _) = api
        .call("POST", "/v1/admin/chains", Some(&human), Some(base_sepolia.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, added) = api
        .call("POST", "/v1/admin/chains", Some(&admin), Some(base_sepolia.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(
        (added["rpc_url"].as_str(), added["is_enabled"].as_bool()),
        (Some("https://sepolia.base.org"), Some(true))
    );
    let (status, _) = api
        .call("POST", "/v1/admin/chains", Some(&admin), Some(base_sepolia))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "names and chain ids are unique");

    // Agents may now be allowed the new chain.
    let (status, agent) = api
        .call(
            "POST",
            "/v1/agents",
            Some(&human),
            Some(json!({"name": "bot", "tx_allowed_chains": ["base-sepolia"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");

    let id = added["id"].as_str().unwrap();
    let (status, changed) = api
        .call(
            "PUT",
            &format!("/v1/admin/chains/{id}"),
            Some(&admin),
            Some(json!({"display_name": "Base (test)", "is_enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (changed["display_name"].as_str(), changed["name"].as_str()),
        (Some("Base (test)"), Some("base-sepolia"))
    );
    assert_eq!(
        api.call("GET", "/v1/chains/base-sepolia", Some(&human), None).await.0,
        StatusCode::NOT_FOUND,
        "disabled"
    );

    let (_, listed) = api.call("GET", "/v1/admin/chains", Some(&admin), None).await;
    let anvil = listed["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "anvil")
        .unwrap()
        .clone();
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/admin/chains/{}", anvil["id"].as_str().unwrap()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    drop(api);
    let restarted = service.start().await;
    let (_, listed) = restarted.call("GET", "/v1/admin/chains", Some(&admin), None).await;
    let names: Vec<(&str, bool)> = listed["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["is_enabled"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        names,
        vec![("base-sepolia", false)],
        "the configured anvil stays removed"
    );
    let (status, _) = restarted
        .call(
            "POST",
            "/v1/agents",
            Some(&human),
            Some(json!({"name": "bot2", "tx_allowed_chains": ["anvil"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
