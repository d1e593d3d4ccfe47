//! Versions of a secret over HTTP: listing them (metadata only), reading one by number,
//! disabling one, and server-side rotation, each behind the same authorization, audit and
//! read limits as the secret itself.

mod common;

use common::{Api, Server, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A human with a vault holding `db/password` at three versions, and an agent they
/// registered with read access to `db/*`.
struct World {
    human: String,
    vault: String,
    agent_id: String,
    agent_key: String,
}

const VALUES: [&str; 3] = ["first-value-1", "second-value-2", "third-value-3"];

async fn world(api: &Api) -> World {
    let human = api.signup("ada@example.com", "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let types = ["password", "api_key", "note"];
    for (n, (value, secret_type)) in VALUES.iter().zip(types).enumerate() {
        let body = json!({"value": value, "type": secret_type, "metadata": {"written": n + 1}});
        let (status, written) = api
            .call(
                "PUT",
                &format!("/v1/vaults/{vault}/secrets/db/password"),
                Some(&human),
                Some(body),
            )
            .await;
        assert_eq!(
            (status, written["version"].as_u64()),
            (StatusCode::CREATED, Some(n as u64 + 1))
        );
    }
    let (_, created) = api
        .call("POST", "/v1/agents", Some(&human), Some(json!({"name": "bot"})))
        .await;
    let world = World {
        human,
        vault,
        agent_id: created["agent"]["id"].as_str().unwrap().to_owned(),
        agent_key: created["api_key"].as_str().unwrap().to_owned(),
    };
    let policy = json!({
        "secret_path_pattern": "db/*",
        "principal_type": "agent",
        "principal_id": world.agent_id,
        "permissions": ["read"],
    });
    let (status, body) = api
        .call(
            "POST",
            &format!("/v1/vaults/{}/policies", world.vault),
            Some(&world.human),
            Some(policy),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    world
}

async fn agent_token(api: &Api, world: &World) -> String {
    api.agent_token(&world.agent_key).await
}

fn versions_url(world: &World, path: &str) -> String {
    format!("/v1/vaults/{}/secret-versions/{path}", world.vault)
}

fn version_url(world: &World, path: &str, version: &str) -> String {
    format!("/v1/vaults/{}/secret-version/{path}/{version}", world.vault)
}

fn disable_url(world: &World, path: &str, version: &str) -> String {
    format!("/v1/vaults/{}/secret-version-disable/{path}/{version}", world.vault)
}

fn rotate_url(world: &World, path: &str) -> String {
    format!("/v1/vaults/{}/secret-rotate/{path}", world.vault)
}

fn secret_url(world: &World, path: &str) -> String {
    format!("/v1/vaults/{}/secrets/{path}", world.vault)
}

/// (version, is_disabled) of every listed version, in the order listed.
async fn listed(api: &Api, world: &World, token: &str) -> Vec<(u64, bool)> {
    let (status, body) = api
        .call("GET", &versions_url(world, "db/password"), Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["is_disabled"].as_bool().unwrap()))
        .collect()
}

async fn disable(api: &Api, world: &World, token: &str, version: &str) -> StatusCode {
    api.call("POST", &disable_url(world, "db/password", version), Some(token), None)
        .await
        .0
}

async fn read_version(api: &Api, world: &World, token: &str, version: u64) -> (StatusCode, Value) {
    api.call(
        "GET",
        &version_url(world, "db/password", &version.to_string()),
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn three_writes_list_three_versions_oldest_first_with_metadata_and_no_values() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let (status, body) = api
        .call("GET", &versions_url(&world, "db/password"), Some(&world.human), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let versions = body["versions"].as_array().unwrap();
    let (_, current) = api
        .call("GET", &secret_url(&world, "db/password"), Some(&world.human), None)
        .await;
    let summary: Vec<(u64, &str, Value, bool, &str)> = versions
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["type"].as_str().unwrap(),
                v["metadata"].clone(),
                v["is_disabled"].as_bool().unwrap(),
                v["id"].as_str().unwrap(),
            )
        })
        .collect();
    let id = current["id"].as_str().unwrap();
    assert_eq!(
        summary,
        vec![
            (1, "password", json!({"written": 1}), false, id),
            (2, "api_key", json!({"written": 2}), false, id),
            (3, "note", json!({"written": 3}), false, id),
        ]
    );
    assert!(
        versions
            .iter()
            .all(|v| v["path"] == "db/password" && v.get("value").is_none())
    );
    let created: Vec<_> = versions
        .iter()
        .map(|v| chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(created.windows(2).all(|pair| pair[0] <= pair[1]), "{created:?}");
    assert_eq!(
        current["created_at"], versions[0]["created_at"],
        "the secret dates from its first version"
    );
    let text = body.to_string();
    for value in VALUES {
        assert!(!text.contains(value), "the version list shows a value: {text}");
    }

    let (status, _) = api
        .call("GET", &versions_url(&world, "db/missing"), Some(&world.human), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_old_version_reads_its_own_value_and_the_read_is_audited_with_its_version() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let token = agent_token(&api, &world).await;
    let (status, first) = read_version(&api, &world, &token, 1).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        (
            first["value"].as_str(),
            first["version"].as_u64(),
            first["type"].as_str(),
            first["metadata"].clone()
        ),
        (Some(VALUES[0]), Some(1), Some("password"), json!({"written": 1}))
    );
    let (_, third) = read_version(&api, &world, &token, 3).await;
    assert_eq!(
        (third["value"].as_str(), third["version"].as_u64()),
        (Some(VALUES[2]), Some(3))
    );
    let (_, current) = api
        .call("GET", &secret_url(&world, "db/password"), Some(&token), None)
        .await;
    assert_eq!(
        (current["value"].as_str(), current["version"].as_u64()),
        (Some(VALUES[2]), Some(3))
    );
    assert_eq!(read_version(&api, &world, &token, 4).await.0, StatusCode::NOT_FOUND);

    let (_, audit) = api
        .call("GET", "/v1/audit/events?action=secret.read", Some(&world.human), None)
        .await;
    let mut versions: Vec<u64> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["version"].as_u64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 3, 3]);
}

#[tokio::test]
async fn a_disabled_version_is_410_the_others_still_read_and_disabling_again_is_204() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let human = world.human.as_str();
    assert_eq!(disable(&api, &world, human, "2").await, StatusCode::NO_CONTENT);
    assert_eq!(read_version(&api, &world, human, 2).await.0, StatusCode::GONE);
    assert_eq!(read_version(&api, &world, human, 1).await.1["value"], VALUES[0]);
    assert_eq!(read_version(&api, &world, human, 3).await.1["value"], VALUES[2]);
    assert_eq!(
        api.call("GET", &secret_url(&world, "db/password"), Some(human), None)
            .await
            .1["value"],
        VALUES[2]
    );
    assert_eq!(
        listed(&api, &world, human).await,
        vec![(1, false), (2, true), (3, false)]
    );

    // Idempotent: the second disable is 204 and logs nothing.
    assert_eq!(disable(&api, &world, human, "2").await, StatusCode::NO_CONTENT);
    let (_, audit) = api
        .call(
            "GET",
            "/v1/audit/events?action=secret.version_disable",
            Some(human),
            None,
        )
        .await;
    assert_eq!(audit["count"], 1, "{audit}");
    assert_eq!(audit["events"][0]["details"]["version"], 2);
    assert_eq!(disable(&api, &world, human, "4").await, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call("POST", &disable_url(&world, "db/missing", "1"), Some(human), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Disabling the current version: the secret is 410 until a new version is written.
    assert_eq!(disable(&api, &world, human, "3").await, StatusCode::NO_CONTENT);
    let secret = secret_url(&world, "db/password");
    assert_eq!(api.call("GET", &secret, Some(human), None).await.0, StatusCode::GONE);
    assert_eq!(read_version(&api, &world, human, 3).await.0, StatusCode::GONE);
    let (_, list) = api
        .call("GET", &format!("/v1/vaults/{}/secrets", world.vault), Some(human), None)
        .await;
    assert_eq!(list["secrets"][0]["is_disabled"], true, "{list}");
    let (status, _) = api
        .call("PUT", &secret, Some(human), Some(json!({"value": "fourth-value-4"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, current) = api.call("GET", &secret, Some(human), None).await;
    assert_eq!(
        (status, current["value"].as_str(), current["version"].as_u64()),
        (StatusCode::OK, Some("fourth-value-4"), Some(4))
    );
    assert_eq!(
        listed(&api, &world, human).await,
        vec![(1, false), (2, true), (3, true), (4, false)]
    );
}

#[tokio::test]
async fn rotate_writes_a_new_version_of_the_requested_length_and_charset() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let human = world.human.as_str();
    let secret = secret_url(&world, "db/password");
    let rotate = rotate_url(&world, "db/password");

    type Check = fn(char) -> bool;
    let cases: [(Option<Value>, usize, Check); 5] = [
        (Some(json!({})), 32, |c| matches!(c, '0'..='9' | 'a'..='f')),
        (None, 32, |c| matches!(c, '0'..='9' | 'a'..='f')),
        (Some(json!({"length": 48, "charset": "alphanumeric"})), 48, |c| {
            c.is_ascii_alphanumeric()
        }),
        (Some(json!({"length": 100, "charset": "base64"})), 100, |c| {
            c.is_ascii_alphanumeric() || c == '+' || c == '/'
        }),
        (Some(json!({"length": 8, "charset": "ascii"})), 8, |c| {
            c.is_ascii_graphic()
        }),
    ];
    let mut previous = VALUES[2].to_owned();
    for (n, (body, length, allowed)) in cases.into_iter().enumerate() {
        let version = n as u64 + 4;
        let (status, created) = api.call("POST", &rotate, Some(human), body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body:?}: {created}");
        assert_eq!(
            (
                created["version"].as_u64(),
                created["type"].as_str(),
                created["metadata"].clone()
            ),
            (Some(version), Some("note"), json!({"written": 3})),
            "{created}"
        );
        assert!(created.get("value").is_none(), "{created}");
        let (_, read) = api.call("GET", &secret, Some(human), None).await;
        let value = read["value"].as_str().unwrap().to_owned();
        assert_eq!(read["version"].as_u64(), Some(version));
        assert_eq!(value.len(), length, "{body:?}: {value}");
        assert!(value.chars().all(allowed), "{body:?}: {value}");
        assert_ne!(value, previous);
        assert!(!created.to_string().contains(&value));
        previous = value;
    }

    // The type can be overridden; the old versions stay readable.
    let (status, created) = api
        .call("POST", &rotate, Some(human), Some(json!({"type": "api_key"})))
        .await;
    assert_eq!(
        (status, created["type"].as_str()),
        (StatusCode::CREATED, Some("api_key"))
    );
    assert_eq!(read_version(&api, &world, human, 1).await.1["value"], VALUES[0]);

    // The rotated value is audited like any write, and never appears in the trail.
    let (_, audit) = api.call("GET", "/v1/audit/events?limit=1000", Some(human), None).await;
    assert!(
        !audit.to_string().contains(&previous),
        "the audit trail shows a rotated value"
    );
}

#[tokio::test]
async fn rotate_refuses_a_missing_secret_and_bad_lengths_and_charsets() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let human = world.human.as_str();
    let (status, _) = api
        .call("POST", &rotate_url(&world, "db/missing"), Some(human), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call("GET", &secret_url(&world, "db/missing"), Some(human), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a refused rotation created nothing");
    for body in [
        json!({"length": 7}),
        json!({"length": 1025}),
        json!({"length": 0}),
        json!({"length": -1}),
        json!({"length": "32"}),
        json!({"charset": "emoji"}),
        json!({"charset": "HEX"}),
        json!({"type": "nonsense"}),
        json!([]),
    ] {
        let (status, _) = api
            .call(
                "POST",
                &rotate_url(&world, "db/password"),
                Some(human),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(
        listed(&api, &world, human).await.len(),
        3,
        "a refused rotation wrote nothing"
    );
}

#[tokio::test]
async fn an_agent_that_may_only_read_lists_and_reads_versions_but_cannot_rotate_or_disable() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let token = agent_token(&api, &world).await;
    assert_eq!(
        listed(&api, &world, &token).await,
        vec![(1, false), (2, false), (3, false)]
    );
    assert_eq!(read_version(&api, &world, &token, 2).await.1["value"], VALUES[1]);
    let (status, problem) = api
        .call(
            "POST",
            &rotate_url(&world, "db/password"),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (status, problem) = api
        .call("POST", &disable_url(&world, "db/password", "1"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    // A refused rotation of a missing secret is a 403 too: no probing for paths.
    let (status, _) = api
        .call("POST", &rotate_url(&world, "db/missing"), Some(&token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        listed(&api, &world, &world.human).await,
        vec![(1, false), (2, false), (3, false)]
    );

    // Beyond its policy, even the version list and old versions are refused, and audited.
    let (_, written) = api
        .call(
            "PUT",
            &secret_url(&world, "other/key"),
            Some(&world.human),
            Some(json!({"value": "other-value"})),
        )
        .await;
    assert_eq!(written["version"], 1);
    let (status, _) = api
        .call("GET", &versions_url(&world, "other/key"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .call("GET", &version_url(&world, "other/key", "1"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, denied) = api
        .call(
            "GET",
            "/v1/audit/events?action=secret.read_denied",
            Some(&world.human),
            None,
        )
        .await;
    assert_eq!(denied["count"], 1, "{denied}");
}

#[tokio::test]
async fn an_intents_agent_reads_no_version_that_held_key_material() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let human = world.human.as_str();
    let agent = format!("/v1/agents/{}", world.agent_id);
    let (status, _) = api
        .call("PATCH", &agent, Some(human), Some(json!({"intents_api_enabled": true})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let secret = secret_url(&world, "db/signer");
    let key =
        json!({"value": "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318", "type": "private_key"});
    assert_eq!(
        api.call("PUT", &secret, Some(human), Some(key)).await.0,
        StatusCode::CREATED
    );
    let note = json!({"value": "moved to the signing proxy", "type": "note"});
    assert_eq!(
        api.call("PUT", &secret, Some(human), Some(note)).await.0,
        StatusCode::CREATED
    );
    let token = agent_token(&api, &world).await;
    let (status, _) = api
        .call("GET", &version_url(&world, "db/signer", "1"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, note) = api
        .call("GET", &version_url(&world, "db/signer", "2"), Some(&token), None)
        .await;
    assert_eq!(
        (status, note["value"].as_str()),
        (StatusCode::OK, Some("moved to the signing proxy"))
    );
}

#[tokio::test]
async fn bad_versions_and_bad_paths_are_400() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let human = world.human.as_str();
    for version in ["0", "-1", "x", "+1", "1.5", "99999999999999999999999"] {
        let (status, _) = api
            .call("GET", &version_url(&world, "db/password", version), Some(human), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "GET version {version}");
        let (status, _) = api
            .call("POST", &disable_url(&world, "db/password", version), Some(human), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "disable version {version}");
    }
    for url in [
        format!("/v1/vaults/{}/secret-version/1", world.vault),
        version_url(&world, "a//b", "1"),
        version_url(&world, "sp%20ace", "1"),
        disable_url(&world, "a//b", "1"),
        versions_url(&world, "a//b"),
        rotate_url(&world, "a//b"),
    ] {
        let method = if url.contains("secret-version/") || url.contains("secret-versions/") {
            "GET"
        } else {
            "POST"
        };
        let (status, _) = api.call(method, &url, Some(human), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {url}");
    }
    assert_eq!(
        listed(&api, &world, human).await,
        vec![(1, false), (2, false), (3, false)]
    );
}

#[tokio::test]
async fn a_versions_read_limit_counts_reads_through_either_endpoint_and_survives_new_versions() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let human = world.human.as_str();
    let secret = secret_url(&world, "one-time/code");
    let body = json!({"value": "424242", "max_access_count": 2});
    assert_eq!(
        api.call("PUT", &secret, Some(human), Some(body)).await.0,
        StatusCode::CREATED
    );
    let version_one = version_url(&world, "one-time/code", "1");
    assert_eq!(api.call("GET", &secret, Some(human), None).await.0, StatusCode::OK);
    assert_eq!(api.call("GET", &version_one, Some(human), None).await.0, StatusCode::OK);
    assert_eq!(
        api.call("GET", &version_one, Some(human), None).await.0,
        StatusCode::GONE
    );
    assert_eq!(api.call("GET", &secret, Some(human), None).await.0, StatusCode::GONE);

    // A new, unlimited version does not make the spent value readable again.
    assert_eq!(
        api.call("PUT", &secret, Some(human), Some(json!({"value": "515151"})))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.call("GET", &version_one, Some(human), None).await.0,
        StatusCode::GONE
    );
    for _ in 0..3 {
        assert_eq!(api.call("GET", &secret, Some(human), None).await.1["value"], "515151");
    }
}

#[tokio::test]
async fn deleting_the_secret_drops_every_version() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let human = world.human.as_str();
    let secret = secret_url(&world, "db/password");
    assert_eq!(
        api.call("DELETE", &secret, Some(human), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, _) = api
        .call("GET", &versions_url(&world, "db/password"), Some(human), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(read_version(&api, &world, human, 1).await.0, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call("POST", &rotate_url(&world, "db/password"), Some(human), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A new secret at the path starts again at version 1, with none of the old values.
    assert_eq!(
        api.call("PUT", &secret, Some(human), Some(json!({"value": "fresh"})))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(listed(&api, &world, human).await, vec![(1, false)]);
    assert_eq!(read_version(&api, &world, human, 1).await.1["value"], "fresh");
    assert_eq!(read_version(&api, &world, human, 2).await.0, StatusCode::NOT_FOUND);
}

/// Invariant 2 for rotation: the generated value is in no database file, no log line and
/// no event, only behind an audited GET; and versions survive a restart (replay).
#[tokio::test]
async fn a_rotated_value_is_nowhere_at_rest_and_versions_survive_a_restart() {
    let db = TestDb::sqlite();
    let data_dir = tempfile::tempdir().unwrap();
    let log_file = data_dir.path().join("server.log");
    let env = |log: &std::path::Path| {
        (
            std::fs::File::create(log).unwrap(),
            [
                ("KEYWARD_DATABASE_URL".to_owned(), db.url()),
                (
                    "KEYWARD_DATA_DIR".to_owned(),
                    data_dir.path().to_str().unwrap().to_owned(),
                ),
                ("KEYWARD_LOG".to_owned(), "debug".to_owned()),
            ],
        )
    };
    let (stderr, vars) = env(&log_file);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let api = Api::new(
        Server::start_with_stderr(&vars, stderr).await,
        data_dir.path().to_owned(),
    );
    let world = world(&api).await;
    let human = world.human.as_str();
    let (status, _) = api
        .call(
            "POST",
            &rotate_url(&world, "db/password"),
            Some(human),
            Some(json!({"length": 64, "charset": "alphanumeric"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        api.call("POST", &disable_url(&world, "db/password", "2"), Some(human), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let (_, read) = api
        .call("GET", &secret_url(&world, "db/password"), Some(human), None)
        .await;
    let rotated = read["value"].as_str().unwrap().to_owned();
    assert_eq!(rotated.len(), 64);
    api.server.kill();

    let db_path = db.sqlite_path().unwrap();
    for file in [
        db_path.clone(),
        db_path.with_extension("db-wal"),
        db_path.with_extension("db-shm"),
        log_file,
    ] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes.windows(rotated.len()).any(|w| w == rotated.as_bytes()),
                "{} holds the rotated value",
                file.display()
            );
        }
    }

    let (stderr, vars) = env(&data_dir.path().join("second.log"));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let api = Api::new(
        Server::start_with_stderr(&vars, stderr).await,
        data_dir.path().to_owned(),
    );
    let (status, login) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": "ada@example.com", "password": "correct horse"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let human = login["access_token"].as_str().unwrap();
    assert_eq!(
        listed(&api, &world, human).await,
        vec![(1, false), (2, true), (3, false), (4, false)]
    );
    assert_eq!(read_version(&api, &world, human, 1).await.1["value"], VALUES[0]);
    assert_eq!(read_version(&api, &world, human, 2).await.0, StatusCode::GONE);
    assert_eq!(read_version(&api, &world, human, 4).await.1["value"], rotated.as_str());
}

/// On Postgres, under concurrency: 20 simultaneous reads of an old version allowed 3 reads
/// hand out exactly 3 values, and a disable racing with reads is never followed by one.
#[tokio::test]
async fn an_old_versions_read_limit_is_exact_under_concurrency() {
    let db = TestDb::postgres().await;
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let human = world.human.as_str();
    let secret = secret_url(&world, "one-time/code");
    let body = json!({"value": "424242", "max_access_count": 3});
    assert_eq!(
        api.call("PUT", &secret, Some(human), Some(body)).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.call("PUT", &secret, Some(human), Some(json!({"value": "515151"})))
            .await
            .0,
        StatusCode::CREATED
    );
    let version_one = version_url(&world, "one-time/code", "1");
    let reads = (0..20).map(|_| api.call("GET", &version_one, Some(human), None));
    let outcomes = futures::future::join_all(reads).await;
    let handed_out: Vec<&Value> = outcomes
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(handed_out.len(), 3, "{outcomes:?}");
    assert!(handed_out.iter().all(|body| body["value"] == "424242"));
    assert!(
        outcomes
            .iter()
            .all(|(s, _)| [StatusCode::OK, StatusCode::GONE, StatusCode::CONFLICT].contains(s)),
        "{outcomes:?}"
    );
    let (_, audit) = api
        .call(
            "GET",
            "/v1/audit/events?action=secret.read&limit=1000",
            Some(human),
            None,
        )
        .await;
    let version_one_reads = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["path"] == "one-time/code" && e["details"]["version"] == 1)
        .count();
    assert_eq!(version_one_reads, 3);

    // Unlimited reads of version 2 race with its disable: a read may be logged just after
    // the disable, but then it hands out nothing, so every value handed out was logged
    // before it; once the disable answered, every read is 410.
    let version_two = version_url(&world, "one-time/code", "2");
    let disable = disable_url(&world, "one-time/code", "2");
    let reads = (0..20).map(|_| api.call("GET", &version_two, Some(human), None));
    let (outcomes, (status, _)) = tokio::join!(
        futures::future::join_all(reads),
        api.call("POST", &disable, Some(human), None)
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        outcomes
            .iter()
            .all(|(s, _)| [StatusCode::OK, StatusCode::GONE].contains(s)),
        "{outcomes:?}"
    );
    assert_eq!(
        api.call("GET", &version_two, Some(human), None).await.0,
        StatusCode::GONE
    );
    assert_eq!(api.call("GET", &secret, Some(human), None).await.0, StatusCode::GONE);
    let (_, audit) = api.call("GET", "/v1/audit/events?limit=1000", Some(human), None).await;
    // Newest first.
    let events = audit["events"].as_array().unwrap();
    let disabled_at = events
        .iter()
        .position(|e| e["action"] == "secret.version_disable")
        .unwrap();
    let logged_before_disable = events[disabled_at..]
        .iter()
        .filter(|e| e["action"] == "secret.read" && e["details"]["version"] == 2)
        .count();
    let handed_out = outcomes.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert!(
        handed_out <= logged_before_disable,
        "{handed_out} values handed out, {logged_before_disable} reads logged before the disable"
    );
}
