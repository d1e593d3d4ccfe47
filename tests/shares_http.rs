//! Sharing over HTTP: an agent shares back to its human, access limits that hold under
//! concurrency, revocation, expiry, passphrases, invitations by email.

mod common;

use chrono::{Duration, Utc};
use common::{Api, TestDb, mail};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A human, their vault, and an agent that may read and write `reports/*` in it.
struct World {
    human: String,
    human_email: String,
    vault: String,
    agent: String,
    agent_id: String,
    /// The policy that lets the agent at `reports/*`.
    policy_id: String,
}

async fn world(api: &Api) -> World {
    let human_email = format!("ada-{}@example.com", uuid::Uuid::now_v7().simple());
    let human = api.signup(&human_email, "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let (_, created) = api
        .call("POST", "/v1/agents", Some(&human), Some(json!({"name": "analyst"})))
        .await;
    let agent_id = created["agent"]["id"].as_str().unwrap();
    let (status, policy) = api
        .call(
            "POST",
            &format!("/v1/vaults/{vault}/policies"),
            Some(&human),
            Some(json!({
                "secret_path_pattern": "reports/*",
                "principal_type": "agent",
                "principal_id": agent_id,
                "permissions": ["read", "write"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = api.agent_token(created["api_key"].as_str().unwrap()).await;
    World {
        human,
        human_email,
        vault,
        agent: token,
        agent_id: agent_id.to_owned(),
        policy_id: policy["id"].as_str().unwrap().to_owned(),
    }
}

/// Writes `value` at `path` as `token` and returns the secret's id.
async fn write(api: &Api, world: &World, token: &str, path: &str, value: &str) -> String {
    let (status, body) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{}/secrets/{path}", world.vault),
            Some(token),
            Some(json!({"value": value})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn share(api: &Api, token: &str, secret: &str, body: Value) -> (StatusCode, Value) {
    api.call("POST", &format!("/v1/secrets/{secret}/share"), Some(token), Some(body))
        .await
}

fn in_an_hour() -> String {
    (Utc::now() + Duration::hours(1)).to_rfc3339()
}

async fn open(api: &Api, token: Option<&str>, share: &str) -> (StatusCode, Value) {
    api.call("GET", &format!("/v1/share/{share}"), token, None).await
}

#[tokio::test]
async fn an_agent_shares_back_to_its_creator_who_accepts_and_reads_twice_then_410() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let secret = write(&api, &world, &world.agent, "reports/q3", "revenue: 42").await;
    let (status, created) = share(
        &api,
        &world.agent,
        &secret,
        json!({"recipient_type": "creator", "max_access_count": 2, "expires_at": in_an_hour()}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["share_url"], api.server.url(&format!("/v1/share/{id}")));
    assert!(created.get("value").is_none());

    let (_, inbound) = api.call("GET", "/v1/shares/inbound", Some(&world.human), None).await;
    let shares = inbound["shares"].as_array().unwrap();
    assert_eq!(shares.len(), 1, "{inbound}");
    assert_eq!(
        (
            shares[0]["id"].as_str(),
            shares[0]["secret_path"].as_str(),
            shares[0]["is_accepted"].as_bool()
        ),
        (Some(id.as_str()), Some("reports/q3"), Some(false))
    );
    let (_, outbound) = api.call("GET", "/v1/shares/outbound", Some(&world.agent), None).await;
    assert_eq!(outbound["shares"][0]["recipient_email"], world.human_email);

    // The human's page lists it too.
    let browser = api.signed_in_browser(&world.human_email, "correct horse").await;
    let home = browser
        .get(api.server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        home.contains("reports/q3") && home.contains(&format!("GET /v1/share/{id}")),
        "{home}"
    );

    let (status, _) = api
        .call("POST", &format!("/v1/shares/{id}/accept"), Some(&world.human), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, inbound) = api.call("GET", "/v1/shares/inbound", Some(&world.human), None).await;
    assert_eq!(inbound["shares"][0]["is_accepted"], true);

    let (status, first) = open(&api, Some(&world.human), &id).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        (first["value"].as_str(), first["access_count"].as_u64()),
        (Some("revenue: 42"), Some(1))
    );
    // The share follows its secret: a new version is what the next access gets.
    write(&api, &world, &world.agent, "reports/q3", "revenue: 43").await;
    let (status, second) = open(&api, Some(&world.human), &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (second["value"].as_str(), second["version"].as_u64()),
        (Some("revenue: 43"), Some(2))
    );
    let (status, third) = open(&api, Some(&world.human), &id).await;
    assert_eq!(status, StatusCode::GONE, "{third}");

    // Only its recipient opens it: the agent that shared it, or nobody signed in, cannot.
    assert_eq!(open(&api, Some(&world.agent), &id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(open(&api, None, &id).await.0, StatusCode::NOT_FOUND);
    // The human who created the agent hears of each access.
    let notices = mail::wait_for_count(
        &api.outbox(),
        &world.human_email,
        "Your share of reports/q3 was opened",
        2,
    )
    .await;
    assert!(notices[0].body().contains("was opened by") && !notices[0].body().contains("revenue"));
}

#[tokio::test]
async fn twenty_concurrent_accesses_of_a_share_allowed_five_succeed_exactly_five_times() {
    let db = TestDb::postgres().await;
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let secret = write(&api, &world, &world.human, "reports/board", "confidential").await;
    let (_, created) = share(
        &api,
        &world.human,
        &secret,
        json!({"recipient_type": "anyone_with_link", "max_access_count": 5, "expires_at": in_an_hour()}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let accesses = (0..20).map(|_| open(&api, None, &id));
    let results = futures::future::join_all(accesses).await;
    let ok: Vec<&Value> = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    let gone = results.iter().filter(|(status, _)| *status == StatusCode::GONE).count();
    assert_eq!((ok.len(), gone), (5, 15), "{results:?}");
    let mut counts: Vec<u64> = ok.iter().map(|body| body["access_count"].as_u64().unwrap()).collect();
    counts.sort();
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
    assert!(ok.iter().all(|body| body["value"] == "confidential"));
}

#[tokio::test]
async fn a_revoked_share_is_404_and_an_expired_one_410() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let secret = write(&api, &world, &world.human, "reports/a", "alpha").await;
    let (_, created) = share(
        &api,
        &world.human,
        &secret,
        json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour()}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(open(&api, None, &id).await.0, StatusCode::OK);
    // Only its creator revokes it.
    let (status, _) = api
        .call("DELETE", &format!("/v1/share/{id}"), Some(&world.agent), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call("DELETE", &format!("/v1/share/{id}"), Some(&world.human), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(open(&api, None, &id).await.0, StatusCode::NOT_FOUND);
    let (_, outbound) = api.call("GET", "/v1/shares/outbound", Some(&world.human), None).await;
    assert_eq!(outbound["shares"], json!([]));

    let soon = (Utc::now() + Duration::milliseconds(1500)).to_rfc3339();
    let (status, created) = share(
        &api,
        &world.human,
        &secret,
        json!({"recipient_type": "anyone_with_link", "expires_at": soon}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let (status, body) = open(&api, None, &id).await;
    assert_eq!(status, StatusCode::GONE, "{body}");

    let (status, _) = share(
        &api,
        &world.human,
        &secret,
        json!({"recipient_type": "anyone_with_link", "expires_at": (Utc::now() - Duration::hours(1)).to_rfc3339()}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a share cannot be born expired");
}

#[tokio::test]
async fn a_wrong_passphrase_is_403_and_counts_nothing() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let secret = write(&api, &world, &world.human, "reports/vault-code", "1234").await;
    let (_, created) = share(
        &api,
        &world.human,
        &secret,
        json!({
            "recipient_type": "anyone_with_link", "max_access_count": 1,
            "passphrase": "open sesame", "expires_at": in_an_hour(),
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let url = api.server.url(&format!("/v1/share/{id}"));
    assert_eq!(open(&api, None, &id).await.0, StatusCode::FORBIDDEN, "no passphrase");
    for wrong in ["open sesame!", ""] {
        let response = api
            .client
            .get(&url)
            .json(&json!({"passphrase": wrong}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    // The SDK sends the passphrase in a GET body; ?passphrase= works too.
    let right = api
        .client
        .get(&url)
        .json(&json!({"passphrase": "open sesame"}))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let right: Value = right.json().await.unwrap();
    assert_eq!(
        (right["value"].as_str(), right["access_count"].as_u64()),
        (Some("1234"), Some(1))
    );
    let again = api
        .client
        .get(format!("{url}?passphrase=open%20sesame"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::GONE, "the one access was the right one");

    let (_, trail) = api
        .call(
            "GET",
            "/v1/audit/events?action=share.access_denied",
            Some(&world.human),
            None,
        )
        .await;
    assert_eq!(trail["count"], 3, "{trail}");
    let serialized = trail.to_string();
    assert!(!serialized.contains("open sesame"), "passphrases are never recorded");
}

#[tokio::test]
async fn an_email_share_is_claimed_only_with_the_token_emailed_to_the_address() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let secret = write(&api, &world, &world.human, "reports/handover", "the keys").await;
    let grace = format!("grace-{}@example.com", uuid::Uuid::now_v7().simple());
    // Sign-up does not prove the mailbox: this account may be anyone's, and it is there
    // before the share is.
    let squatter = api.signup(&grace, "correct horse").await;
    let (status, created) = share(
        &api,
        &world.human,
        &secret,
        json!({"recipient_type": "external_email", "email": grace, "expires_at": in_an_hour()}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["recipient_email"], grace);
    let id = created["id"].as_str().unwrap().to_owned();
    let invitation = mail::wait_for(&api.outbox(), &grace, "shared a secret with you").await;
    let body = invitation.body();
    assert!(body.contains("reports/handover"));
    assert!(!body.contains("the keys"), "the value is never in an email");
    let link = body
        .split_whitespace()
        .find(|word| word.contains(&format!("/v1/share/{id}?claim=")))
        .unwrap_or_else(|| panic!("no claim link in {body}"));
    let token = link.split("?claim=").nth(1).unwrap().to_owned();
    let with = |token: &str| format!("/v1/share/{id}?claim={token}");

    // (a) Signed up with the address but without the token: no share to see or open.
    let (_, inbound) = api.call("GET", "/v1/shares/inbound", Some(&squatter), None).await;
    assert_eq!(inbound["shares"], json!([]), "{inbound}");
    assert_eq!(open(&api, Some(&squatter), &id).await.0, StatusCode::NOT_FOUND);
    let (status, _) = api.call("GET", &with("sc_wrong"), Some(&squatter), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a wrong token claims nothing");
    let (status, _) = api
        .call("POST", &format!("/v1/shares/{id}/accept"), Some(&squatter), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The token alone is not enough either: it takes the address's account.
    assert_eq!(
        api.call("GET", &with(&token), None, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("GET", &with(&token), Some(&world.human), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, outbound) = api.call("GET", "/v1/shares/outbound", Some(&world.human), None).await;
    assert_eq!(outbound["shares"][0]["access_count"], 0, "nothing was counted");

    // (b) With the emailed token, the address's account claims and opens it.
    let (status, opened) = api.call("GET", &with(&token), Some(&squatter), None).await;
    assert_eq!(
        (status, opened["value"].as_str()),
        (StatusCode::OK, Some("the keys")),
        "{opened}"
    );
    let (_, inbound) = api.call("GET", "/v1/shares/inbound", Some(&squatter), None).await;
    assert_eq!(inbound["shares"][0]["id"], id.as_str());
    let (status, opened) = open(&api, Some(&squatter), &id).await;
    assert_eq!((status, opened["access_count"].as_u64()), (StatusCode::OK, Some(2)));
    let (_, audit) = api
        .call("GET", "/v1/audit/events?action=share.claim", Some(&squatter), None)
        .await;
    assert_eq!(audit["count"], 1, "{audit}");
    assert!(!audit.to_string().contains(&token), "the token is never recorded");

    // (c) Claimed, it is that account's alone, token or not.
    let other = api
        .signup(
            &format!("eve-{}@example.com", uuid::Uuid::now_v7().simple()),
            "correct horse",
        )
        .await;
    for token_holder in [Some(other.as_str()), Some(world.human.as_str()), None] {
        assert_eq!(
            api.call("GET", &with(&token), token_holder, None).await.0,
            StatusCode::NOT_FOUND
        );
    }
    let (_, inbound) = api.call("GET", "/v1/shares/inbound", Some(&other), None).await;
    assert_eq!(inbound["shares"], json!([]));

    // Declined, it is gone from their inbox and cannot be opened, nor claimed again.
    let (status, _) = api
        .call("POST", &format!("/v1/shares/{id}/decline"), Some(&squatter), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, inbound) = api.call("GET", "/v1/shares/inbound", Some(&squatter), None).await;
    assert_eq!(inbound["shares"], json!([]));
    assert_eq!(open(&api, Some(&squatter), &id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call("GET", &with(&token), Some(&squatter), None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn share_requests_that_break_the_rules_are_refused_with_4xx() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let secret = write(&api, &world, &world.human, "reports/x", "x").await;
    let cases = [
        (
            &world.human,
            json!({"recipient_type": "creator", "expires_at": in_an_hour()}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &world.agent,
            json!({"recipient_type": "external_email", "email": "x@example.com", "expires_at": in_an_hour()}),
            StatusCode::FORBIDDEN,
        ),
        (
            &world.human,
            json!({"recipient_type": "user", "expires_at": in_an_hour()}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &world.human,
            json!({"recipient_type": "user", "recipient_id": uuid::Uuid::now_v7(), "expires_at": in_an_hour()}),
            StatusCode::NOT_FOUND,
        ),
        (
            &world.human,
            json!({"recipient_type": "anyone_with_link"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &world.human,
            json!({"recipient_type": "anyone_with_link", "max_access_count": 0, "expires_at": in_an_hour()}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &world.human,
            json!({"recipient_type": "anyone_with_link", "ip_allowlist": ["nowhere"], "expires_at": in_an_hour()}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (token, body, expected) in cases {
        let (status, problem) = share(&api, token, &secret, body.clone()).await;
        assert_eq!(status, expected, "{body}: {problem}");
    }
    let (status, _) = share(
        &api,
        &world.human,
        &uuid::Uuid::now_v7().to_string(),
        json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour()}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A share that only opens from elsewhere is refused here, and counts nothing.
    let (_, created) = share(
        &api,
        &world.human,
        &secret,
        json!({"recipient_type": "anyone_with_link", "ip_allowlist": ["203.0.113.0/24"], "expires_at": in_an_hour()}),
    )
    .await;
    let (status, _) = open(&api, None, created["id"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The id of the human signed in with `token`.
async fn user_id(api: &Api, token: &str) -> String {
    let (_, me) = api.call("GET", "/v1/auth/me", Some(token), None).await;
    me["id"].as_str().unwrap().to_owned()
}

/// Registers an agent for the human signed in with `token` and returns its id.
async fn register_agent(api: &Api, token: &str, name: &str) -> String {
    let (status, created) = api
        .call("POST", "/v1/agents", Some(token), Some(json!({"name": name})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["agent"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_agent_shares_only_with_its_creator_and_its_own_org_never_by_link() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let secret = write(&api, &world, &world.agent, "reports/q4", "revenue: 44").await;
    let outsider = api
        .signup(
            &format!("eve-{}@example.com", uuid::Uuid::now_v7().simple()),
            "correct horse",
        )
        .await;
    let outsider_id = user_id(&api, &outsider).await;
    let outsiders_agent = register_agent(&api, &outsider, "elsewhere").await;
    let colleague = register_agent(&api, &world.human, "colleague").await;
    let cases = [
        // A link carries the value to whoever holds it.
        (
            &world.agent,
            json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour()}),
            StatusCode::FORBIDDEN,
        ),
        // Ids of another org are as good as absent, for agents and humans alike.
        (
            &world.agent,
            json!({"recipient_type": "user", "recipient_id": outsider_id, "expires_at": in_an_hour()}),
            StatusCode::NOT_FOUND,
        ),
        (
            &world.agent,
            json!({"recipient_type": "agent", "recipient_id": outsiders_agent, "expires_at": in_an_hour()}),
            StatusCode::NOT_FOUND,
        ),
        (
            &world.human,
            json!({"recipient_type": "user", "recipient_id": outsider_id, "expires_at": in_an_hour()}),
            StatusCode::NOT_FOUND,
        ),
        (
            &world.human,
            json!({"recipient_type": "agent", "recipient_id": outsiders_agent, "expires_at": in_an_hour()}),
            StatusCode::NOT_FOUND,
        ),
        // Inside the org it may.
        (
            &world.agent,
            json!({"recipient_type": "agent", "recipient_id": colleague, "expires_at": in_an_hour()}),
            StatusCode::CREATED,
        ),
        (
            &world.agent,
            json!({"recipient_type": "creator", "expires_at": in_an_hour()}),
            StatusCode::CREATED,
        ),
    ];
    for (token, body, expected) in cases {
        let (status, problem) = share(&api, token, &secret, body.clone()).await;
        assert_eq!(status, expected, "{body}: {problem}");
    }
    let (_, outbound) = api.call("GET", "/v1/shares/outbound", Some(&world.agent), None).await;
    assert_eq!(outbound["shares"].as_array().map(Vec::len), Some(2), "{outbound}");
}

#[tokio::test]
async fn an_agents_share_closes_when_it_loses_its_policy_is_deactivated_or_turns_to_intents() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let secret = write(&api, &world, &world.agent, "reports/q1", "revenue: 41").await;
    let (status, created) = share(
        &api,
        &world.agent,
        &secret,
        json!({"recipient_type": "creator", "expires_at": in_an_hour()}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(open(&api, Some(&world.human), &id).await.0, StatusCode::OK);

    // The policy that let the agent read is gone: so is what it lent.
    let policy = format!("/v1/vaults/{}/policies/{}", world.vault, world.policy_id);
    let (status, _) = api.call("DELETE", &policy, Some(&world.human), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = open(&api, Some(&world.human), &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Granted again, the share stands again; the agent deactivated, it does not.
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/vaults/{}/policies", world.vault),
            Some(&world.human),
            Some(json!({
                "secret_path_pattern": "reports/*",
                "principal_type": "agent",
                "principal_id": world.agent_id,
                "permissions": ["read"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(open(&api, Some(&world.human), &id).await.0, StatusCode::OK);
    let agent = format!("/v1/agents/{}", world.agent_id);
    let (status, _) = api.call("DELETE", &agent, Some(&world.human), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(open(&api, Some(&world.human), &id).await.0, StatusCode::NOT_FOUND);

    // Active again but with the Intents API, it hands out no key material, even when the
    // shared secret became a key after it was shared.
    let (status, body) = api
        .call(
            "PATCH",
            &agent,
            Some(&world.human),
            Some(json!({"is_active": true, "intents_api_enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(open(&api, Some(&world.human), &id).await.0, StatusCode::OK);
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{}/secrets/reports/q1", world.vault),
            Some(&world.human),
            Some(json!({"type": "private_key", "value": "0x01"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(open(&api, Some(&world.human), &id).await.0, StatusCode::NOT_FOUND);

    // The three openings that stood are each a read of the secret too; the others, nothing.
    for action in ["share.access", "secret.read"] {
        let (_, trail) = api
            .call(
                "GET",
                &format!("/v1/audit/events?action={action}"),
                Some(&world.human),
                None,
            )
            .await;
        assert_eq!(trail["count"], 3, "{action}: {trail}");
    }
}

#[tokio::test]
async fn share_accesses_count_against_the_secrets_own_access_limit() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let (status, written) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{}/secrets/reports/once-twice", world.vault),
            Some(&world.human),
            Some(json!({"value": "twice only", "max_access_count": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{written}");
    let secret = written["id"].as_str().unwrap();
    let (_, created) = share(
        &api,
        &world.human,
        secret,
        json!({"recipient_type": "anyone_with_link", "expires_at": in_an_hour()}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let read = format!("/v1/vaults/{}/secrets/reports/once-twice", world.vault);
    let (status, _) = api.call("GET", &read, Some(&world.human), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, opened) = open(&api, None, &id).await;
    assert_eq!((status, opened["value"].as_str()), (StatusCode::OK, Some("twice only")));
    // Two reads were allowed, one direct and one through the share: both ways are closed.
    let (status, body) = open(&api, None, &id).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    let (status, body) = api.call("GET", &read, Some(&world.human), None).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
}

#[tokio::test]
async fn the_vaults_owner_revokes_an_agents_share_and_an_outsider_cannot() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let world = world(&api).await;
    let secret = write(&api, &world, &world.agent, "reports/q2", "revenue: 40").await;
    let colleague = register_agent(&api, &world.human, "colleague").await;
    let (status, created) = share(
        &api,
        &world.agent,
        &secret,
        json!({"recipient_type": "agent", "recipient_id": colleague, "expires_at": in_an_hour()}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let outsider = api
        .signup(
            &format!("eve-{}@example.com", uuid::Uuid::now_v7().simple()),
            "correct horse",
        )
        .await;
    let revoke = format!("/v1/share/{id}");
    let (status, _) = api.call("DELETE", &revoke, Some(&outsider), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The vault's owner neither made nor receives the share, and ends it.
    let (status, body) = api.call("DELETE", &revoke, Some(&world.human), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, outbound) = api.call("GET", "/v1/shares/outbound", Some(&world.agent), None).await;
    assert_eq!(outbound["shares"], json!([]));
    let (status, _) = api.call("DELETE", &revoke, Some(&world.human), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoked is revoked");
}
