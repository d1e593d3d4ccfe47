//! Secrets over HTTP: the golden path of the issue, each authorization layer denying on
//! its own, immediate revocation with a token in hand, and no plaintext at rest.

mod common;

use common::{Api, Server, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A human with a vault holding two secrets, and an agent they registered.
struct World {
    human: String,
    vault: String,
    agent_id: String,
    agent_key: String,
}

async fn world(api: &Api, agent: Value) -> World {
    let human = api.signup("ada@example.com", "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    for (path, value) in [("api-keys/openai", "sk-openai-123"), ("db/password", "hunter2-db")] {
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
    let (_, created) = api.call("POST", "/v1/agents", Some(&human), Some(agent)).await;
    World {
        human,
        vault,
        agent_id: created["agent"]["id"].as_str().unwrap().to_owned(),
        agent_key: created["api_key"].as_str().unwrap().to_owned(),
    }
}

async fn grant(api: &Api, world: &World, pattern: &str, extra: Value) -> String {
    let mut body = json!({
        "secret_path_pattern": pattern,
        "principal_type": "agent",
        "principal_id": world.agent_id,
        "permissions": ["read"],
    });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (status, policy) = api
        .call(
            "POST",
            &format!("/v1/vaults/{}/policies", world.vault),
            Some(&world.human),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    policy["id"].as_str().unwrap().to_owned()
}

async fn agent_token(api: &Api, world: &World) -> String {
    api.agent_token(&world.agent_key).await
}

async fn read(api: &Api, world: &World, token: &str, path: &str) -> (StatusCode, Value) {
    api.call(
        "GET",
        &format!("/v1/vaults/{}/secrets/{path}", world.vault),
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn golden_path_an_agent_reads_what_it_was_granted_and_nothing_else() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api, json!({"name": "bot"})).await;
    grant(&api, &world, "api-keys/*", json!({})).await;
    let token = agent_token(&api, &world).await;

    let (status, secret) = read(&api, &world, &token, "api-keys/openai").await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    assert_eq!(
        (secret["value"].as_str(), secret["version"].as_u64()),
        (Some("sk-openai-123"), Some(1))
    );
    assert_eq!(secret["type"], "api_key");
    assert_eq!(read(&api, &world, &token, "db/password").await.0, StatusCode::FORBIDDEN);
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{}/secrets/api-keys/new", world.vault),
            Some(&token),
            Some(json!({"value": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, listed) = api
        .call(
            "GET",
            &format!("/v1/vaults/{}/secrets", world.vault),
            Some(&world.human),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["secrets"].as_array().unwrap().len(), 2);
    let text = listed.to_string();
    assert!(
        !text.contains("sk-openai-123") && !text.contains("hunter2-db"),
        "a listing shows values: {text}"
    );
    let (_, agents_list) = api
        .call(
            "GET",
            &format!("/v1/vaults/{}/secrets", world.vault),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        agents_list["secrets"].as_array().unwrap().len(),
        1,
        "the agent lists only what it may read"
    );
    let (_, prefixed) = api
        .call(
            "GET",
            &format!("/v1/vaults/{}/secrets?prefix=db/", world.vault),
            Some(&world.human),
            None,
        )
        .await;
    assert_eq!(prefixed["secrets"][0]["path"], "db/password");
}

#[tokio::test]
async fn a_new_version_replaces_the_value_and_delete_makes_it_404() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api, json!({"name": "bot"})).await;
    let path = format!("/v1/vaults/{}/secrets/db/password", world.vault);
    let (status, written) = api
        .call("PUT", &path, Some(&world.human), Some(json!({"value": "v2-secret"})))
        .await;
    assert_eq!((status, written["version"].as_u64()), (StatusCode::CREATED, Some(2)));
    let (_, secret) = api.call("GET", &path, Some(&world.human), None).await;
    assert_eq!(
        (secret["value"].as_str(), secret["version"].as_u64()),
        (Some("v2-secret"), Some(2))
    );
    assert_eq!(
        api.call("DELETE", &path, Some(&world.human), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", &path, Some(&world.human), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("DELETE", &path, Some(&world.human), None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn each_layer_denies_on_its_own() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api, json!({"name": "bot"})).await;
    let (_, other_vault) = api
        .call("POST", "/v1/vaults", Some(&world.human), Some(json!({"name": "other"})))
        .await;
    let other_vault = other_vault["id"].as_str().unwrap();
    let agent = format!("/v1/agents/{}", world.agent_id);
    let set_agent = |body: Value| api.call("PATCH", &agent, Some(&world.human), Some(body));

    // Vault binding: bound to another vault, even with a policy and scopes covering the path.
    let policy = grant(&api, &world, "api-keys/*", json!({})).await;
    set_agent(json!({"vault_ids": [other_vault], "scopes": ["api-keys/*"]})).await;
    let token = agent_token(&api, &world).await;
    let (status, problem) = read(&api, &world, &token, "api-keys/openai").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        problem["detail"].as_str().unwrap().contains("vault_binding"),
        "{problem}"
    );

    // Scope ceiling: bound to this vault, but its scopes do not reach the path.
    set_agent(json!({"vault_ids": [world.vault], "scopes": ["other/*"]})).await;
    let token = agent_token(&api, &world).await;
    let (status, problem) = read(&api, &world, &token, "api-keys/openai").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        problem["detail"].as_str().unwrap().contains("scope_ceiling"),
        "{problem}"
    );

    // No policy: scopes reach the path, but the policy is gone.
    set_agent(json!({"scopes": ["**"]})).await;
    let policy_path = format!("/v1/vaults/{}/policies/{policy}", world.vault);
    assert_eq!(
        api.call("DELETE", &policy_path, Some(&world.human), None).await.0,
        StatusCode::NO_CONTENT
    );
    let token = agent_token(&api, &world).await;
    let (status, problem) = read(&api, &world, &token, "api-keys/openai").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(problem["detail"].as_str().unwrap().contains("policy"), "{problem}");

    // IP allowlist: the test client comes from 127.0.0.1.
    let policy = grant(
        &api,
        &world,
        "api-keys/*",
        json!({"conditions": {"ip_allowlist": ["10.0.0.0/8"]}}),
    )
    .await;
    assert_eq!(
        read(&api, &world, &token, "api-keys/openai").await.0,
        StatusCode::FORBIDDEN
    );
    let policy_path = format!("/v1/vaults/{}/policies/{policy}", world.vault);
    let (status, _) = api
        .call(
            "PUT",
            &policy_path,
            Some(&world.human),
            Some(json!({"conditions": {"ip_allowlist": ["127.0.0.1"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read(&api, &world, &token, "api-keys/openai").await.0, StatusCode::OK);

    // Time window: a one-minute window twelve hours from now.
    let start = (chrono::Utc::now() + chrono::Duration::hours(12))
        .format("%H:%M")
        .to_string();
    let end = (chrono::Utc::now() + chrono::Duration::hours(12) + chrono::Duration::minutes(1))
        .format("%H:%M")
        .to_string();
    let window = json!({"conditions": {"time_window": {"start": start, "end": end, "timezone": "UTC"}}});
    assert_eq!(
        api.call("PUT", &policy_path, Some(&world.human), Some(window)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        read(&api, &world, &token, "api-keys/openai").await.0,
        StatusCode::FORBIDDEN
    );

    // Expired policy.
    let expired = json!({"conditions": {}, "expires_at": "2020-01-01T00:00:00Z"});
    assert_eq!(
        api.call("PUT", &policy_path, Some(&world.human), Some(expired)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        read(&api, &world, &token, "api-keys/openai").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn revocation_takes_effect_on_the_next_request_with_a_token_in_hand() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api, json!({"name": "bot"})).await;
    let policy = grant(&api, &world, "api-keys/*", json!({})).await;
    let token = agent_token(&api, &world).await;
    assert_eq!(read(&api, &world, &token, "api-keys/openai").await.0, StatusCode::OK);
    let policy_path = format!("/v1/vaults/{}/policies/{policy}", world.vault);
    assert_eq!(
        api.call("DELETE", &policy_path, Some(&world.human), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        read(&api, &world, &token, "api-keys/openai").await.0,
        StatusCode::FORBIDDEN
    );

    grant(&api, &world, "api-keys/*", json!({})).await;
    assert_eq!(read(&api, &world, &token, "api-keys/openai").await.0, StatusCode::OK);
    let agent = format!("/v1/agents/{}", world.agent_id);
    assert_eq!(
        api.call("DELETE", &agent, Some(&world.human), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        read(&api, &world, &token, "api-keys/openai").await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Two keyward processes on one Postgres database: revoke through one, read through the
/// other, refused on the very next request.
#[tokio::test]
async fn revocation_through_one_replica_is_refused_by_another() {
    let db = TestDb::postgres().await;
    let service = common::Service::new(&db, &[]);
    let first = service.start().await;
    let second = service.start().await;
    let world = world(&first, json!({"name": "bot"})).await;
    let policy = grant(&first, &world, "api-keys/*", json!({})).await;
    let token = agent_token(&first, &world).await;
    assert_eq!(read(&second, &world, &token, "api-keys/openai").await.0, StatusCode::OK);

    let policy_path = format!("/v1/vaults/{}/policies/{policy}", world.vault);
    assert_eq!(
        first.call("DELETE", &policy_path, Some(&world.human), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        read(&second, &world, &token, "api-keys/openai").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn an_intents_agent_never_reads_key_material() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api, json!({"name": "signer", "intents_api_enabled": true})).await;
    let path = format!("/v1/vaults/{}/secrets/keys/deployer", world.vault);
    let key =
        json!({"value": "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318", "type": "private_key"});
    assert_eq!(
        api.call("PUT", &path, Some(&world.human), Some(key)).await.0,
        StatusCode::CREATED
    );
    grant(&api, &world, "**", json!({})).await;
    let token = agent_token(&api, &world).await;
    assert_eq!(
        read(&api, &world, &token, "keys/deployer").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(read(&api, &world, &token, "api-keys/openai").await.0, StatusCode::OK);
}

#[tokio::test]
async fn max_access_count_is_exact_under_concurrency_and_expiry_is_410() {
    let db = TestDb::postgres().await;
    let api = Api::start(&db).await;
    let world = world(&api, json!({"name": "bot"})).await;
    let path = format!("/v1/vaults/{}/secrets/one-time/code", world.vault);
    let body = json!({"value": "424242", "max_access_count": 5});
    assert_eq!(
        api.call("PUT", &path, Some(&world.human), Some(body)).await.0,
        StatusCode::CREATED
    );
    let reads = (0..20).map(|_| api.call("GET", &path, Some(&world.human), None));
    let statuses: Vec<StatusCode> = futures::future::join_all(reads)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::GONE || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert_eq!(
        api.call("GET", &path, Some(&world.human), None).await.0,
        StatusCode::GONE
    );

    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let path = format!("/v1/vaults/{}/secrets/short/lived", world.vault);
    assert_eq!(
        api.call(
            "PUT",
            &path,
            Some(&world.human),
            Some(json!({"value": "x", "expires_at": soon}))
        )
        .await
        .0,
        StatusCode::CREATED
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        api.call("GET", &path, Some(&world.human), None).await.0,
        StatusCode::GONE
    );
}

#[tokio::test]
async fn bad_paths_are_400() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api, json!({"name": "bot"})).await;
    // Sent as raw HTTP: clients normalize `..` and `.` away before a server could see them.
    for path in [
        "a/../b",
        "a//b",
        "a/./b",
        "a/b/",
        "sp%20ace",
        "a/%2e%2e/b",
        "..",
        "a/%2F/b",
    ] {
        let status = raw_put(
            &api,
            &format!("/v1/vaults/{}/secrets/{path}", world.vault),
            &world.human,
        )
        .await;
        assert_eq!(status, 400, "{path}");
    }
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{}/secrets/a", world.vault),
            Some(&world.human),
            Some(json!({"value": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Invariant 2: the value is nowhere at rest, not in the database files, not in the logs;
/// after DELETE it cannot be recovered, not even by replaying the log.
#[tokio::test]
async fn no_plaintext_at_rest_and_deleted_values_are_unrecoverable() {
    let db = TestDb::sqlite();
    let data_dir = tempfile::tempdir().unwrap();
    let log_file = data_dir.path().join("server.log");
    let marker = format!("marker-{}", uuid::Uuid::now_v7().simple());
    {
        let stderr = std::fs::File::create(&log_file).unwrap();
        let server = Server::start_with_stderr(
            &[
                ("KEYWARD_DATABASE_URL", &db.url()),
                ("KEYWARD_DATA_DIR", data_dir.path().to_str().unwrap()),
                ("KEYWARD_LOG", "debug"),
            ],
            stderr,
        )
        .await;
        let api = Api::new(server, data_dir.path().to_owned());
        let human = api.signup("ada@example.com", "correct horse").await;
        let (_, vault) = api
            .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
            .await;
        let path = format!("/v1/vaults/{}/secrets/marked", vault["id"].as_str().unwrap());
        assert_eq!(
            api.call("PUT", &path, Some(&human), Some(json!({"value": marker})))
                .await
                .0,
            StatusCode::CREATED
        );
        assert_eq!(
            api.call("GET", &path, Some(&human), None).await.1["value"],
            marker.as_str()
        );
        assert_eq!(
            api.call("DELETE", &path, Some(&human), None).await.0,
            StatusCode::NO_CONTENT
        );
    }
    let db_path = db.sqlite_path().unwrap();
    for file in [
        db_path.clone(),
        db_path.with_extension("db-wal"),
        db_path.with_extension("db-shm"),
        log_file,
    ] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{} holds the value",
                file.display()
            );
        }
    }
    // Replay the whole log: the secret is gone, and its ciphertext in the log has no key.
    let store = keyward::store::open(&db.url()).await.unwrap();
    let models = keyward::replay::build(store, projections::Until::End, |_| {})
        .await
        .unwrap();
    assert_eq!(models.secrets.secret_count(), 0);
}

/// A PUT written byte for byte, so the path reaches the server exactly as given.
async fn raw_put(api: &Api, path: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = api.server.base_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = r#"{"value":"x"}"#;
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn explain_names_the_layer_that_decides() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api, json!({"name": "bot"})).await;
    grant(
        &api,
        &world,
        "api-keys/*",
        json!({"conditions": {"ip_allowlist": ["10.0.0.0/8"]}}),
    )
    .await;
    let explain = |principal_type: &str, principal_id: &str, path: &str, client_ip: Option<&str>| {
        let mut body = json!({
            "vault_id": world.vault, "path": path, "permission": "read",
            "principal_type": principal_type, "principal_id": principal_id,
        });
        if let Some(ip) = client_ip {
            body["client_ip"] = json!(ip);
        }
        api.call("POST", "/v1/authz/explain", Some(&world.human), Some(body))
    };
    let (status, decision) = explain("agent", &world.agent_id, "api-keys/openai", Some("10.1.2.3")).await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    assert_eq!(
        (decision["allowed"].as_bool(), decision["layer"].as_str()),
        (Some(true), Some("policy"))
    );
    let (_, decision) = explain("agent", &world.agent_id, "api-keys/openai", Some("192.0.2.1")).await;
    assert_eq!(
        (decision["allowed"].as_bool(), decision["layer"].as_str()),
        (Some(false), Some("policy"))
    );
    assert!(
        decision["reason"].as_str().unwrap().contains("ip_allowlist"),
        "{decision}"
    );
    let (_, decision) = explain("agent", &world.agent_id, "db/password", Some("10.1.2.3")).await;
    assert_eq!(
        (decision["allowed"].as_bool(), decision["layer"].as_str()),
        (Some(false), Some("scope_ceiling"))
    );

    let (_, me) = api.call("GET", "/v1/auth/me", Some(&world.human), None).await;
    let (_, decision) = explain("user", me["id"].as_str().unwrap(), "db/password", None).await;
    assert_eq!(
        (decision["allowed"].as_bool(), decision["layer"].as_str()),
        (Some(true), Some("owner_bypass"))
    );

    let stranger = api.signup("eve@example.com", "correct horse").await;
    let body = json!({"vault_id": world.vault, "path": "db/password", "permission": "read",
        "principal_type": "agent", "principal_id": world.agent_id});
    assert_eq!(
        api.call("POST", "/v1/authz/explain", Some(&stranger), Some(body))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

/// A deletion racing writes to the same secret: whatever order they land in, no value of a
/// deleted secret opens afterwards. Each round writes a secret, then deletes it while six
/// more versions are written at once; every value the log holds for a deleted secret is
/// then tried with the master key. (The narrowest interleaving, a write appended between
/// the shredding and the deletion's append, is rare here; the handler covers it by
/// shredding again whenever the secret moved since it read its versions.)
#[tokio::test]
async fn no_value_of_a_secret_deleted_while_it_was_written_opens_again() {
    use domain::events::Event;
    use keyward::crypto::{Envelope, KeyTable, MasterKey, SealedValue};

    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "race"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let url = format!("/v1/vaults/{vault}/secrets/race/key");
    let mut deletions = 0;
    for round in 0..20 {
        let put = |n: usize| {
            let body = json!({"value": format!("round {round} value {n}"), "type": "api_key"});
            api.call("PUT", &url, Some(&human), Some(body))
        };
        let (status, _) = put(0).await;
        assert_eq!(status, StatusCode::CREATED);
        let writes = futures::future::join_all((1..=6).map(put));
        let delete = api.call("DELETE", &url, Some(&human), None);
        let (_, (deleted, _)) = futures::future::join(writes, delete).await;
        if deleted == StatusCode::NO_CONTENT {
            deletions += 1;
        }
        // Whatever is left of it goes too, for the next round to start anew.
        let _ = api.call("DELETE", &url, Some(&human), None).await;
    }
    assert!(deletions > 0, "no deletion went through");

    let store = keyward::store::open(&db.url()).await.unwrap();
    let events = store.read_all(0, usize::MAX >> 1).await.unwrap();
    let decoded: Vec<Event> = events
        .iter()
        .filter_map(|recorded| Event::decode(recorded).map(Result::unwrap))
        .collect();
    let deleted: std::collections::HashSet<_> = decoded
        .iter()
        .filter_map(|event| match event {
            Event::SecretDeleted(deleted) => Some(deleted.secret_id),
            _ => None,
        })
        .collect();
    let master = std::fs::read_to_string(api.data_dir.join("master.key")).unwrap();
    let envelope = Envelope::new(
        MasterKey::parse(master.trim()).unwrap(),
        KeyTable::open(&db.url()).await.unwrap(),
    );
    let mut tried = 0;
    for event in &decoded {
        let Event::SecretWritten(written) = event else {
            continue;
        };
        if !deleted.contains(&written.secret_id) {
            continue;
        }
        let sealed: SealedValue = serde_json::from_value(serde_json::to_value(&written.sealed).unwrap()).unwrap();
        let opened = envelope
            .open(written.vault_id, written.path.as_str(), written.version, &sealed)
            .await;
        assert!(
            opened.is_err(),
            "version {} of a deleted secret still opens",
            written.version
        );
        tried += 1;
    }
    assert!(tried > 0);
}
