//! Threat: the audit endpoints as a leak and a lever (docs/security.md, "The audit
//! endpoints"). A tenant's verification answers for its own events only; a platform
//! administrator's walks the whole log; an access review settles who may ask before it
//! reads the log; and each is rate-limited.

mod common;

use common::{Api, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "ops@example.com";

/// Waits until `token`'s org has `count` mails sent: the last events a sign-up causes come
/// from the mailer, after the response.
async fn mails_sent(api: &Api, token: &str, count: u64) {
    for _ in 0..200 {
        let (_, sent) = api
            .call("GET", "/v1/audit/events?action=mail.send", Some(token), None)
            .await;
        if sent["count"] == count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{count} mails were not sent within 10 s");
}

/// How many events `token`'s org has in its audit trail.
async fn trail_count(api: &Api, token: &str) -> u64 {
    let (status, trail) = api.call("GET", "/v1/audit/events?limit=1", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    trail["count"].as_u64().unwrap()
}

async fn verify(api: &Api, token: &str, query: &str) -> (StatusCode, Value) {
    api.call("GET", &format!("/v1/audit/verify{query}"), Some(token), None)
        .await
}

async fn log_position(api: &Api) -> u64 {
    let (_, health) = api.call("GET", "/v1/health", None, None).await;
    health["log_position"].as_u64().unwrap()
}

/// A vault of `token`'s org with a secret written `writes` times; its id.
async fn vault_with_writes(api: &Api, token: &str, writes: usize) -> String {
    let (status, vault) = api
        .call("POST", "/v1/vaults", Some(token), Some(json!({"name": "prod"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vault}");
    let vault = vault["id"].as_str().unwrap().to_owned();
    for n in 0..writes {
        let path = format!("/v1/vaults/{vault}/secrets/db/password");
        let (status, body) = api
            .call("PUT", &path, Some(token), Some(json!({"value": format!("v{n}")})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    vault
}

/// The stored event of `event_type` whose payload mentions `needle`: (position, event id).
async fn stored_event(db: &TestDb, event_type: &str, needle: &str) -> (u64, String) {
    let store = keyward::store::open(&db.url()).await.unwrap();
    let events = store.read_all(0, 10_000).await.unwrap();
    let event = events
        .iter()
        .find(|event| event.event_type == event_type && event.payload.contains(needle))
        .unwrap_or_else(|| panic!("no {event_type} about {needle}"));
    (event.position, event.event_id.to_string())
}

#[tokio::test]
async fn a_tenants_verify_counts_its_own_events_and_not_the_platforms() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    vault_with_writes(&api, &ada, 3).await;
    let eve = api.signup("eve@example.com", "correct horse").await;
    mails_sent(&api, &ada, 1).await;
    mails_sent(&api, &eve, 1).await;
    let (ada_events, eve_events) = (trail_count(&api, &ada).await, trail_count(&api, &eve).await);
    assert!(ada_events + eve_events <= log_position(&api).await);

    let (status, verdict) = verify(&api, &eve, "").await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(
        verdict,
        json!({
            "chain_valid": true,
            "events_verified": eve_events,
            "events_checked": eve_events,
            "broken_at_event_id": null,
            "scope": "organization",
            "scheme": verdict["scheme"].clone(),
        }),
        "eve learns how many events her own org has, nothing about ada's"
    );
    let (_, verdict) = verify(&api, &ada, "").await;
    assert_eq!(
        (verdict["chain_valid"].as_bool(), verdict["events_verified"].as_u64()),
        (Some(true), Some(ada_events)),
        "{verdict}"
    );

    // The spec's window: at most `limit` of them, oldest first, between `from` and `to`.
    let (_, verdict) = verify(&api, &ada, "?limit=2").await;
    assert_eq!(verdict["events_verified"], 2, "{verdict}");
    let (_, everything) = api.call("GET", "/v1/audit/events?limit=1000", Some(&ada), None).await;
    let newest = everything["events"][0]["created_at"].as_str().unwrap();
    let at_newest = everything["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["created_at"] == newest)
        .count();
    let from = newest.replace('+', "%2B");
    let (_, verdict) = verify(&api, &ada, &format!("?from={from}")).await;
    assert_eq!(verdict["events_verified"].as_u64(), Some(at_newest as u64), "{verdict}");
    assert!(at_newest < ada_events as usize);
    for limit in ["0", "10001"] {
        let (status, problem) = verify(&api, &ada, &format!("?limit={limit}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["detail"], "limit must be between 1 and 10000");
    }
}

#[tokio::test]
async fn a_changed_event_breaks_its_own_orgs_verify_and_no_other() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let eve = api.signup("eve@example.com", "correct horse").await;
    mails_sent(&api, &eve, 1).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    let vault = vault_with_writes(&api, &ada, 2).await;
    mails_sent(&api, &ada, 1).await;
    let (position, event_id) = stored_event(&db, "vault.created", &vault).await;
    let changed = db
        .tamper_with_payload(position, |payload| payload.replace("\"prod\"", "\"qrod\""))
        .await;
    assert_eq!(changed, 1);

    let (status, verdict) = verify(&api, &ada, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict["chain_valid"], false, "{verdict}");
    assert_eq!(verdict["broken_at_event_id"], event_id.as_str());
    assert_eq!(
        verdict["broken_reason"],
        format!("event {event_id}: its stored contents do not match its hash"),
        "no log position: it would tell how busy other tenants are"
    );
    let verified = verdict["events_verified"].as_u64().unwrap();
    assert_eq!(verdict["events_checked"].as_u64(), Some(verified + 1));
    let (_, verdict) = verify(&api, &eve, "").await;
    assert_eq!(verdict["chain_valid"], true, "eve's events are untouched: {verdict}");
}

#[tokio::test]
async fn a_deleted_event_breaks_its_orgs_verify_at_the_event_before_it() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    // The mail first, so that every later event is a request's own, each recorded alone.
    mails_sent(&api, &ada, 1).await;
    vault_with_writes(&api, &ada, 3).await;
    let (position, _) = stored_event(&db, "secret.write", "\"version\":2").await;
    let store = keyward::store::open(&db.url()).await.unwrap();
    let mut around = store.read_all(position - 2, 2).await.unwrap();
    let (before, deleted) = (around.remove(0), around.remove(0));
    drop(store);
    assert_eq!(
        db.execute_sql(&format!("DELETE FROM events WHERE position = {position}"))
            .await,
        1
    );
    // Checked oldest first, the org's events meet the gap at the one before it, whose
    // successor no longer links to it.
    let (_, verdict) = verify(&api, &ada, "").await;
    assert_eq!(verdict["chain_valid"], false, "{verdict}");
    let event_id = before.event_id.to_string();
    assert_eq!(
        (
            verdict["broken_at_event_id"].as_str(),
            verdict["broken_reason"].as_str()
        ),
        (
            Some(event_id.as_str()),
            Some(format!("event {event_id}: the event after it is missing or does not link to its hash").as_str())
        ),
        "{verdict}"
    );
    // From the deleted event's moment on, it is the first the org's trail names, and it is
    // not there.
    let from = deleted.recorded_at.to_rfc3339().replace('+', "%2B");
    let (_, verdict) = verify(&api, &ada, &format!("?from={from}")).await;
    assert_eq!(
        (verdict["broken_at_event_id"].clone(), verdict["broken_reason"].clone()),
        (
            Value::Null,
            json!("an event of this organization is missing from the log")
        ),
        "{verdict}"
    );
    assert_eq!(verdict["events_verified"], 0, "{verdict}");
}

#[tokio::test]
async fn a_tenants_verifications_run_out_after_five_and_others_are_not_held_up() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    let eve = api.signup("eve@example.com", "correct horse").await;
    for attempt in 1..=5 {
        assert_eq!(verify(&api, &ada, "").await.0, StatusCode::OK, "attempt {attempt}");
    }
    let response = api
        .client
        .get(api.server.url("/v1/audit/verify"))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = common::retry_after(&response);
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(verify(&api, &eve, "").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_platform_admins_verify_walks_the_whole_log_twice_then_waits() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_ADMINS", ADMIN)]).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    mails_sent(&api, &ada, 1).await;
    let admin = api.signup_verified(ADMIN, "correct horse").await;
    mails_sent(&api, &admin, 1).await;
    let everything = log_position(&api).await;
    assert!(trail_count(&api, &admin).await < everything);
    for _ in 0..2 {
        let (status, verdict) = verify(&api, &admin, "?limit=1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (verdict["scope"].as_str(), verdict["events_verified"].as_u64()),
            (Some("log"), Some(everything)),
            "the whole log, whatever the window: {verdict}"
        );
    }
    let (status, _) = verify(&api, &admin, "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

async fn review(api: &Api, token: &str, vault: &str, at: Option<&str>) -> (StatusCode, Value) {
    let at = at
        .map(|at| format!("&at={}", at.replace('+', "%2B")))
        .unwrap_or_default();
    let query = format!("/v1/audit/access-review?vault_id={vault}&path=db/password{at}");
    api.call("GET", &query, Some(token), None).await
}

#[tokio::test]
async fn another_orgs_access_review_is_refused_before_the_log_is_read() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    let vault = vault_with_writes(&api, &ada, 1).await;
    let eve = api.signup("eve@example.com", "correct horse").await;
    assert_eq!(review(&api, &ada, &vault, None).await.0, StatusCode::OK);

    // The log's first vault is made unreadable: any review now fails there.
    assert_eq!(
        db.execute_sql(
            "UPDATE events SET event_id = X'00' WHERE position = \
             (SELECT MIN(position) FROM events WHERE event_type = 'vault.created')"
        )
        .await,
        1
    );
    let (status, _) = review(&api, &ada, &vault, None).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "ada may review, so her review reads the log and meets the broken event"
    );
    let (status, problem) = review(&api, &eve, &vault, None).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some("vault not found")),
        "eve is refused without a replay"
    );
    let unknown = "0190e1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b";
    assert_eq!(review(&api, &eve, unknown, None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_deleted_vault_is_reviewed_by_its_org_only() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    let vault = vault_with_writes(&api, &ada, 1).await;
    let eve = api.signup("eve@example.com", "correct horse").await;
    let while_it_stood = chrono::Utc::now().to_rfc3339();
    let (status, _) = api
        .call("DELETE", &format!("/v1/vaults/{vault}"), Some(&ada), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, reviewed) = review(&api, &ada, &vault, Some(&while_it_stood)).await;
    assert_eq!(status, StatusCode::OK, "{reviewed}");
    assert_eq!(reviewed["principals"][0]["principal_type"], "user", "{reviewed}");
    let (status, problem) = review(&api, &ada, &vault, None).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some("vault not found at that moment"))
    );
    let (status, problem) = review(&api, &eve, &vault, Some(&while_it_stood)).await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some("vault not found"))
    );
}

#[tokio::test]
async fn a_tenants_access_reviews_run_out_after_ten_and_others_are_not_held_up() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    let vault = vault_with_writes(&api, &ada, 1).await;
    let eve = api.signup("eve@example.com", "correct horse").await;
    let eves = vault_with_writes(&api, &eve, 1).await;
    for attempt in 1..=10 {
        assert_eq!(
            review(&api, &ada, &vault, None).await.0,
            StatusCode::OK,
            "attempt {attempt}"
        );
    }
    let (status, problem) = review(&api, &ada, &vault, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(review(&api, &eve, &eves, None).await.0, StatusCode::OK);
    // A refusal spends nothing: eve asking about ada's vault does not use up ada's reviews,
    // nor her own.
    for _ in 0..20 {
        assert_eq!(review(&api, &eve, &vault, None).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(review(&api, &eve, &eves, None).await.0, StatusCode::OK);
}
