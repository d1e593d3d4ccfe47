//! The audit trail over HTTP: what happened, who could reach a secret at any past moment,
//! and whether the log is intact.

mod common;

use chrono::Utc;
use common::{Api, TestDb, run_keyward};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn grant_read_revoke_deny_is_reviewable_at_every_moment() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let secret = format!("/v1/vaults/{vault}/secrets/api-keys/openai");
    api.call(
        "PUT",
        &secret,
        Some(&human),
        Some(json!({"value": "sk-live-do-not-log"})),
    )
    .await;
    let (_, agent) = api
        .call(
            "POST",
            "/v1/agents",
            Some(&human),
            Some(json!({"name": "bot", "scopes": ["api-keys/*"]})),
        )
        .await;
    let agent_id = agent["agent"]["id"].as_str().unwrap().to_owned();
    let agent_token = api.agent_token(agent["api_key"].as_str().unwrap()).await;

    let before_grant = Utc::now();
    let grant = json!({"secret_path_pattern": "api-keys/*", "principal_type": "agent", "principal_id": agent_id, "permissions": ["read"]});
    let (_, policy) = api
        .call(
            "POST",
            &format!("/v1/vaults/{vault}/policies"),
            Some(&human),
            Some(grant),
        )
        .await;
    let policy_id = policy["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call("GET", &secret, Some(&agent_token), None).await.0,
        StatusCode::OK
    );
    let after_read = Utc::now();
    api.call(
        "DELETE",
        &format!("/v1/vaults/{vault}/policies/{policy_id}"),
        Some(&human),
        None,
    )
    .await;
    assert_eq!(
        api.call("GET", &secret, Some(&agent_token), None).await.0,
        StatusCode::FORBIDDEN
    );
    let after_denial = Utc::now();

    let review = |at: chrono::DateTime<Utc>| {
        let query = format!(
            "/v1/audit/access-review?vault_id={vault}&path=api-keys/openai&at={}",
            urlencode(&at.to_rfc3339())
        );
        let human = human.clone();
        let api = &api;
        async move { api.call("GET", &query, Some(&human), None).await }
    };
    let (status, at_read) = review(after_read).await;
    assert_eq!(status, StatusCode::OK, "{at_read}");
    let agents: Vec<&Value> = at_read["principals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["principal_type"] == "agent")
        .collect();
    assert_eq!(agents.len(), 1, "{at_read}");
    assert_eq!(
        (agents[0]["principal_id"].as_str(), agents[0]["policy_id"].as_str()),
        (Some(agent_id.as_str()), Some(policy_id.as_str()))
    );
    let owner = &at_read["principals"][0];
    assert_eq!(
        (owner["principal_type"].as_str(), owner["policy_id"].is_null()),
        (Some("user"), true)
    );
    for moment in [before_grant, after_denial] {
        let (_, review) = review(moment).await;
        let principals = review["principals"].as_array().unwrap();
        assert!(principals.iter().all(|p| p["principal_type"] == "user"), "{review}");
    }

    let (_, reads) = api
        .call("GET", "/v1/audit/events?action=secret.read", Some(&human), None)
        .await;
    let by_agent: Vec<&Value> = reads["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_id"] == agent_id.as_str())
        .collect();
    assert_eq!(by_agent.len(), 1, "{reads}");
    assert_eq!(
        (
            by_agent[0]["ip_address"].as_str(),
            by_agent[0]["details"]["path"].as_str()
        ),
        (Some("127.0.0.1"), Some("api-keys/openai"))
    );
    let (_, denials) = api
        .call("GET", "/v1/audit/events?action=secret.read_denied", Some(&human), None)
        .await;
    let denial = &denials["events"][0];
    assert_eq!(
        (denial["actor_id"].as_str(), denial["details"]["path"].as_str()),
        (Some(agent_id.as_str()), Some("api-keys/openai"))
    );
    assert_eq!(denial["ip_address"], "127.0.0.1");
    let (_, everything) = api.call("GET", "/v1/audit/events?limit=1000", Some(&human), None).await;
    assert!(
        !everything.to_string().contains("sk-live-do-not-log"),
        "a value reached the audit trail"
    );
    let actions: Vec<&str> = everything["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "secret.write",
        "policy.create",
        "policy.delete",
        "agent.register",
        "auth.success",
        "vault.create",
    ] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    assert_eq!(everything["count"].as_u64(), Some(actions.len() as u64));

    // The same review from the command line, and the log exported for a SIEM.
    let env = [("KEYWARD_DATABASE_URL", db.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let target = format!("{vault}/api-keys/openai");
    let until = after_read.to_rfc3339();
    let (code, stdout, stderr) = run_keyward(&["replay", "--until", &until, "--access-review", &target], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("agent {agent_id} read (policy {policy_id})")),
        "{stdout}"
    );
    let until = before_grant.to_rfc3339();
    let (_, stdout, _) = run_keyward(&["replay", "--until", &until, "--access-review", &target], &env);
    assert!(!stdout.contains(&agent_id), "{stdout}");
    let (code, exported, _) = run_keyward(&["export", "--format", "jsonl"], &env);
    assert_eq!(code, 0);
    let (_, health) = api.call("GET", "/v1/health", None, None).await;
    assert_eq!(
        exported.lines().count() as u64,
        health["log_position"].as_u64().unwrap()
    );
    assert!(
        !exported.contains("sk-live-do-not-log") && !exported.contains("$argon2id"),
        "export leaks secrets"
    );
    let first: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["position"].as_u64(), first["event_type"].as_str()),
        (Some(1), Some("email.claimed"))
    );
    let from = after_read.to_rfc3339();
    let (_, recent, _) = run_keyward(&["export", "--from", &from], &env);
    assert!(
        recent.lines().count() < exported.lines().count() && recent.contains("policy.deleted"),
        "{recent}"
    );

    // Another org sees none of it and cannot review this vault.
    let eve = api.signup("eve@example.com", "correct horse").await;
    let (_, theirs) = api.call("GET", "/v1/audit/events?limit=1000", Some(&eve), None).await;
    assert!(!theirs.to_string().contains(&vault), "{theirs}");
    let query = format!("/v1/audit/access-review?vault_id={vault}&path=api-keys/openai");
    assert_eq!(api.call("GET", &query, Some(&eve), None).await.0, StatusCode::NOT_FOUND);
}

/// A platform administrator (docs/security.md, "Platform administration"): only they
/// verify the whole log through the API; anyone else verifies their org's events
/// (tests/security_audit_scope.rs).
const ADMIN: &str = "ops@example.com";

async fn admin_of(api: &Api) -> String {
    api.signup_verified(ADMIN, "correct horse").await
}

#[tokio::test]
async fn verify_through_the_api_names_a_tampered_event() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_ADMINS", ADMIN)]).await;
    let admin = admin_of(&api).await;
    api.call("POST", "/v1/vaults", Some(&admin), Some(json!({"name": "prod"})))
        .await;
    // The verification mail's outcome is the last event to come.
    for _ in 0..100 {
        let (_, sent) = api
            .call("GET", "/v1/audit/events?action=mail.send", Some(&admin), None)
            .await;
        if sent["count"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, health) = api.call("GET", "/v1/health", None, None).await;
    let (status, verdict) = api.call("GET", "/v1/audit/verify", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict["chain_valid"], true);
    assert_eq!(verdict["scope"], "log");
    assert_eq!(verdict["events_verified"], health["log_position"], "{verdict}");

    let store = keyward::store::open(&db.url()).await.unwrap();
    let third = store.read_all(2, 1).await.unwrap().remove(0);
    drop(store);
    let changed = db
        .tamper_with_payload(3, |payload| payload.replace("\"type\"", "\"typf\""))
        .await;
    assert_eq!(changed, 1);
    let (_, verdict) = api.call("GET", "/v1/audit/verify", Some(&admin), None).await;
    assert_eq!(verdict["chain_valid"], false, "{verdict}");
    assert_eq!(verdict["broken_at_event_id"], third.event_id.to_string());
    assert_eq!(
        (verdict["events_verified"].as_u64(), verdict["events_checked"].as_u64()),
        (Some(2), Some(3))
    );
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn verify_through_the_api_names_a_deleted_or_reordered_event() {
    for tampering in ["DELETE FROM events WHERE position = 2", "reorder"] {
        let db = TestDb::sqlite();
        let api = Api::start_with(&db, &[("KEYWARD_ADMINS", ADMIN)]).await;
        let admin = admin_of(&api).await;
        api.call("POST", "/v1/vaults", Some(&admin), Some(json!({"name": "prod"})))
            .await;
        let store = keyward::store::open(&db.url()).await.unwrap();
        let events = store.read_all(0, 10).await.unwrap();
        drop(store);
        let expected = if tampering == "reorder" {
            db.execute_sql("UPDATE events SET position = -2 WHERE position = 2")
                .await;
            db.execute_sql("UPDATE events SET position = 2 WHERE position = 3")
                .await;
            db.execute_sql("UPDATE events SET position = 3 WHERE position = -2")
                .await;
            events[2].event_id // the third event now stands second
        } else {
            db.execute_sql(tampering).await;
            events[2].event_id // the successor of the deleted event
        };
        let (_, verdict) = api.call("GET", "/v1/audit/verify", Some(&admin), None).await;
        assert_eq!(verdict["chain_valid"], false, "{tampering}: {verdict}");
        assert_eq!(
            verdict["broken_at_event_id"],
            expected.to_string(),
            "{tampering}: {verdict}"
        );
    }
}

#[tokio::test]
async fn the_client_address_is_the_nearest_one_a_trusted_proxy_added_on_any_header_line() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_TRUSTED_PROXIES", "127.0.0.1")]).await;
    // The client wrote the first line; the proxy added the second, with the address it saw.
    let (status, signed_up) = api
        .call_with_headers(
            "POST",
            "/v1/auth/signup",
            None,
            Some(json!({"email": "ada@example.com", "password": "correct horse"})),
            &[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-for", "198.51.100.7")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed_up}");
    let token = signed_up["access_token"].as_str().unwrap();
    let (_, trail) = api
        .call("GET", "/v1/audit/events?action=user.signup", Some(token), None)
        .await;
    assert_eq!(trail["events"][0]["ip_address"], "198.51.100.7", "{trail}");
}
