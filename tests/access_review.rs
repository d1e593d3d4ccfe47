//! The access review at a past moment (docs/cost.md) folds only the events that change
//! who may reach what, read through a partial index: its answers are those of a fold of
//! the whole log up to that moment, on both backends, and the statement is answered from
//! the index rather than by a scan of the log.

mod common;

use chrono::{DateTime, Utc};
use common::{Api, TestDb};
use domain::SecretPath;
use domain::VaultId;
use keyward::store;
use projections::{AccessModels, ReadModels, Until, access_review};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A principal as both answers name it: type, id, permissions and the policy that lets it.
type Reviewed = Vec<(Value, Value, Value, Value)>;

/// Builds a history in which each step changes who may reach `reports/q3`, with audited
/// reads between the steps; returns the vault and the moment after each step.
async fn history_of_access(api: &Api, human: &str) -> (String, Vec<DateTime<Utc>>) {
    let mut moments = vec![Utc::now()];
    let call = |method: &'static str, path: String, body: Option<Value>| async move {
        let (status, answer) = api.call(method, &path, Some(human), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
        answer
    };
    let vault = call("POST", "/v1/vaults".into(), Some(json!({"name": "prod"}))).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_vault = call("POST", "/v1/vaults".into(), Some(json!({"name": "other"}))).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        "PUT",
        format!("/v1/vaults/{vault}/secrets/reports/q3"),
        Some(json!({"value": "42"})),
    )
    .await;
    moments.push(Utc::now());

    let mut agents = Vec::new();
    for name in ["reader", "writer"] {
        let agent = call("POST", "/v1/agents".into(), Some(json!({"name": name}))).await;
        let id = agent["agent"]["id"].as_str().unwrap().to_owned();
        let token = api.agent_token(agent["api_key"].as_str().unwrap()).await;
        agents.push((id, token));
    }
    let grant = |agent: &str, pattern: &str, permissions: Value| json!({"secret_path_pattern": pattern, "principal_type": "agent", "principal_id": agent, "permissions": permissions});
    let reader_policy = call(
        "POST",
        format!("/v1/vaults/{vault}/policies"),
        Some(grant(&agents[0].0, "reports/*", json!(["read"]))),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        "POST",
        format!("/v1/vaults/{vault}/policies"),
        Some(grant(&agents[1].0, "**", json!(["read", "write"]))),
    )
    .await;
    moments.push(Utc::now());

    let reads = |token: String| {
        let path = format!("/v1/vaults/{vault}/secrets/reports/q3");
        async move {
            for _ in 0..5 {
                api.call("GET", &path, Some(&token), None).await;
            }
        }
    };
    reads(agents[0].1.clone()).await;
    reads(agents[1].1.clone()).await;

    // The reader's policy widened to writing; then the writer bound to the other vault.
    call(
        "PUT",
        format!("/v1/vaults/{vault}/policies/{reader_policy}"),
        Some(json!({"permissions": ["read", "write"]})),
    )
    .await;
    moments.push(Utc::now());
    call(
        "PATCH",
        format!("/v1/agents/{}", agents[1].0),
        Some(json!({"vault_ids": [other_vault]})),
    )
    .await;
    moments.push(Utc::now());
    reads(agents[0].1.clone()).await;

    // The reader's scopes narrowed away from reports, then back; then it is deactivated.
    call(
        "PATCH",
        format!("/v1/agents/{}", agents[0].0),
        Some(json!({"scopes": ["db/*"]})),
    )
    .await;
    moments.push(Utc::now());
    call(
        "PATCH",
        format!("/v1/agents/{}", agents[0].0),
        Some(json!({"scopes": ["reports/*"]})),
    )
    .await;
    moments.push(Utc::now());
    reads(agents[0].1.clone()).await;
    call("DELETE", format!("/v1/agents/{}", agents[0].0), None).await;
    moments.push(Utc::now());

    // The policy revoked, and the vault deleted at last.
    call("DELETE", format!("/v1/vaults/{vault}/policies/{reader_policy}"), None).await;
    moments.push(Utc::now());
    call("DELETE", format!("/v1/vaults/{vault}"), None).await;
    moments.push(Utc::now());
    (vault, moments)
}

/// The review of `vault`'s `reports/q3` through the API; `None` for a 404.
async fn reviewed_by_the_api(api: &Api, human: &str, vault: &str, at: DateTime<Utc>) -> Option<Reviewed> {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let query = format!(
        "/v1/audit/access-review?vault_id={vault}&path=reports/q3&at={}",
        at.replace('+', "%2B")
    );
    let (status, review) = api.call("GET", &query, Some(human), None).await;
    if status == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(status, StatusCode::OK, "{review}");
    Some(
        review["principals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["principal_type"].clone(),
                    p["principal_id"].clone(),
                    p["permissions"].clone(),
                    p["policy_id"].clone(),
                )
            })
            .collect(),
    )
}

/// The same review from every model, folded from every event of the log up to `at`.
async fn reviewed_by_a_whole_fold(db: &TestDb, vault: &str, at: DateTime<Utc>) -> Option<Reviewed> {
    let log = store::open(&db.url()).await.unwrap();
    let models: ReadModels = keyward::replay::build(log, Until::Time(at), |_| {}).await.unwrap();
    let vault: VaultId = serde_json::from_value(json!(vault)).unwrap();
    let path = SecretPath::parse("reports/q3".to_owned()).unwrap();
    let reviewed = access_review::review(&models.directory, &models.access, vault, &path, at)?;
    Some(
        reviewed
            .into_iter()
            .map(|access| {
                (
                    serde_json::to_value(access.principal.kind).unwrap(),
                    json!(access.principal.id),
                    serde_json::to_value(access.permissions).unwrap(),
                    serde_json::to_value(access.policy_id).unwrap(),
                )
            })
            .collect(),
    )
}

async fn reviews_at_every_moment_are_a_whole_folds(db: TestDb) {
    let api = Api::start(&db).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let (vault, moments) = history_of_access(&api, &human).await;
    let mut answers = Vec::new();
    for at in moments {
        let by_api = reviewed_by_the_api(&api, &human, &vault, at).await;
        let by_fold = reviewed_by_a_whole_fold(&db, &vault, at).await;
        assert_eq!(by_api, by_fold, "at {at}");
        answers.push(by_api.map(|principals| principals.len()));
    }
    // The history moved the answer: absent, the owner alone, then with the agents, then
    // fewer as access was taken away, and absent again once the vault was deleted.
    assert_eq!(
        answers,
        [
            None,
            Some(1),
            Some(3),
            Some(3),
            Some(2),
            Some(1),
            Some(2),
            Some(1),
            Some(1),
            None
        ]
    );
}

#[tokio::test]
async fn reviews_at_every_moment_are_a_whole_folds_on_sqlite() {
    reviews_at_every_moment_are_a_whole_folds(TestDb::sqlite()).await;
}

#[tokio::test]
async fn reviews_at_every_moment_are_a_whole_folds_on_postgres() {
    reviews_at_every_moment_are_a_whole_folds(TestDb::postgres().await).await;
}

/// The statement the review reads with, as SQLite plans it.
#[tokio::test]
async fn the_events_shaping_access_are_read_through_their_index() {
    let db = TestDb::sqlite();
    drop(store::open(&db.url()).await.unwrap());
    let statement = format!(
        "EXPLAIN QUERY PLAN SELECT * FROM events WHERE {} AND position > 0 ORDER BY position LIMIT 10",
        store::event_type_in(AccessModels::SHAPING_EVENTS)
    );
    let connection = rusqlite::Connection::open(db.sqlite_path().unwrap()).unwrap();
    let plan: Vec<String> = connection
        .prepare(&statement)
        .unwrap()
        .query_map([], |row| row.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        plan.iter()
            .any(|step| step.contains("USING INDEX events_shaping_access")),
        "{plan:?}"
    );
}

/// Each migration's index condition names the set the statement names, in its order: a
/// set that differs leaves the index unused (the review then scans the whole log).
#[test]
fn the_migrations_index_exactly_the_events_shaping_access() {
    let condition = store::event_type_in(AccessModels::SHAPING_EVENTS);
    for migration in [
        include_str!("../migrations/sqlite/0003_events_shaping_access.sql"),
        include_str!("../migrations/sqlite/0004_streams_as_numbers.sql"),
        include_str!("../migrations/postgres/0005_events_shaping_access.sql"),
    ] {
        assert!(migration.contains(&format!("WHERE {condition};")), "{migration}");
    }
    for name in AccessModels::SHAPING_EVENTS {
        assert!(domain::events::Event::TYPES.contains(name), "{name}");
    }
}

/// The same statement as Postgres plans it, with scans of the whole table priced out: the
/// index is chosen whenever its condition covers the statement's.
#[tokio::test]
async fn postgres_reads_the_events_shaping_access_through_their_index() {
    let db = TestDb::postgres().await;
    drop(store::open(&db.url()).await.unwrap());
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url())
        .await
        .unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut connection)
        .await
        .unwrap();
    let statement = format!(
        "EXPLAIN SELECT * FROM events WHERE {} AND position > 0 ORDER BY position LIMIT 10",
        store::event_type_in(AccessModels::SHAPING_EVENTS)
    );
    let plan: Vec<String> = sqlx::query_scalar(&statement).fetch_all(&mut connection).await.unwrap();
    assert!(
        plan.iter().any(|step| step.contains("events_shaping_access")),
        "{plan:?}"
    );
}
