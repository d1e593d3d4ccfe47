//! Humans over HTTP: sign-up founds an org, sign-in issues tokens that are checked live,
//! and vaults are visible only inside their org.

mod common;

use std::time::Duration;

use common::{Api, TestDb};
use keyward::store::audit_index::AuditIndex;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_human_signs_up_signs_in_and_manages_their_profile() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let (status, body) = api
        .call(
            "POST",
            "/v1/auth/signup",
            None,
            Some(json!({"email": " Ada@Example.com ", "password": "correct horse", "display_name": "Ada"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["token_type"], "Bearer");
    let signup_token = body["access_token"].as_str().unwrap().to_owned();

    let (status, me) = api.call("GET", "/v1/auth/me", Some(&signup_token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["email"].as_str(), me["display_name"].as_str(), me["role"].as_str()),
        (Some("ada@example.com"), Some("Ada"), Some("owner"))
    );

    let (status, login) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": "ada@example.com", "password": "correct horse"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(login["expires_in"], 3600);
    let token = login["access_token"].as_str().unwrap().to_owned();

    let (status, updated) = api
        .call(
            "PATCH",
            "/v1/auth/me",
            Some(&token),
            Some(json!({"display_name": "Ada L.", "marketing_emails": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (updated["display_name"].as_str(), updated["marketing_emails"].as_bool()),
        (Some("Ada L."), Some(true))
    );

    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/change-password",
            Some(&token),
            Some(json!({"current_password": "wrong one!", "new_password": "new secret pw"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/change-password",
            Some(&token),
            Some(json!({"current_password": "correct horse", "new_password": "new secret pw"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": "ada@example.com", "password": "correct horse"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": "ada@example.com", "password": "new secret pw"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, members) = api.call("GET", "/v1/org/members", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    assert_eq!(members["members"][0]["email"], "ada@example.com");
}

#[tokio::test]
async fn wrong_credentials_are_the_same_401_whether_or_not_the_email_exists() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    api.signup("ada@example.com", "correct horse").await;
    let (wrong_password, body_a) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": "ada@example.com", "password": "nope nope"})),
        )
        .await;
    let (unknown_email, body_b) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": "bob@example.com", "password": "nope nope"})),
        )
        .await;
    assert_eq!(
        (wrong_password, unknown_email),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(body_a, body_b);
}

#[tokio::test]
async fn refused_credentials_run_out_per_client_and_stop_growing_the_log() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let token = api.signup("ada@example.com", "correct horse").await;
    let sign_in = |password: &'static str| {
        api.call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": "ada@example.com", "password": password})),
        )
    };
    for attempt in 1..=20 {
        assert_eq!(
            sign_in("nope nope").await.0,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    assert_eq!(sign_in("nope nope").await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        sign_in("correct horse").await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "a client out of refusals is not heard, so guessing slows to one every 5 seconds"
    );
    // Refresh tokens cannot be guessed, but each refusal was audited: they count too.
    let (status, _) = refresh(&api, "x").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (_, trail) = api
        .call("GET", "/v1/audit/events?action=auth.failure", Some(&token), None)
        .await;
    assert_eq!(
        trail["count"], 20,
        "only the refusals within the allowance are in the log"
    );
}

#[tokio::test]
async fn an_email_has_one_account_even_under_concurrent_sign_ups() {
    let db = TestDb::postgres().await;
    let api = Api::start(&db).await;
    let attempts = (0..8).map(|_| {
        api.call(
            "POST",
            "/v1/auth/signup",
            None,
            Some(json!({"email": "race@example.com", "password": "correct horse"})),
        )
    });
    let answers = futures::future::join_all(attempts).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(),
        7,
        "{statuses:?}"
    );
    // Those that lost the race for the address decided again and found it taken.
    for (status, body) in &answers {
        if *status == StatusCode::CONFLICT {
            assert_eq!(body["detail"], "an account with this email already exists", "{body}");
        }
    }
}

#[tokio::test]
async fn a_revoked_session_is_refused_on_the_next_request() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let token = api.signup("ada@example.com", "correct horse").await;
    assert_eq!(
        api.call("GET", "/v1/auth/me", Some(&token), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.call("DELETE", "/v1/auth/token", Some(&token), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, _) = api.call("GET", "/v1/auth/me", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forged_and_missing_tokens_are_401() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let token = api.signup("ada@example.com", "correct horse").await;
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in [
        None,
        Some("garbage"),
        Some(tampered.as_str()),
        Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
    ] {
        let (status, _) = api.call("GET", "/v1/auth/me", bad, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    let (status, jwks) = api.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    let (_, public_key) = api.call("GET", "/v1/auth/jwt-public-key", None, None).await;
    assert_eq!(public_key["alg"], "EdDSA");
}

#[tokio::test]
async fn bad_sign_up_input_is_400_and_changes_nothing() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    for body in [
        json!({"email": "not-an-email", "password": "correct horse"}),
        json!({"email": "ada@example.com", "password": "short"}),
        json!({"email": "ada@example.com"}),
        json!({"email": 12345678, "password": "correct horse"}),
        json!({"email": "ada@example.com", "password": "correct horse", "display_name": "   "}),
    ] {
        let (status, problem) = api.call("POST", "/v1/auth/signup", None, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(!problem["detail"].as_str().unwrap().contains("12345678"), "{problem}");
    }
    let (_, health) = api.call("GET", "/v1/health", None, None).await;
    assert_eq!(health["log_position"], 0, "a refused sign-up wrote events");
}

#[tokio::test]
async fn vaults_are_created_listed_and_deleted_within_their_org_only() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    let bob = api.signup("bob@example.com", "correct horse").await;

    let (status, vault) = api
        .call(
            "POST",
            "/v1/vaults",
            Some(&ada),
            Some(json!({"name": "prod", "description": "production keys"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (vault["name"].as_str(), vault["created_by_type"].as_str()),
        (Some("prod"), Some("user"))
    );
    let vault_id = vault["id"].as_str().unwrap().to_owned();

    let (_, listed) = api.call("GET", "/v1/vaults", Some(&ada), None).await;
    assert_eq!(listed["vaults"].as_array().unwrap().len(), 1);
    let (_, listed) = api.call("GET", "/v1/vaults", Some(&bob), None).await;
    assert_eq!(
        listed["vaults"].as_array().unwrap().len(),
        0,
        "another org sees the vault"
    );
    let path = format!("/v1/vaults/{vault_id}");
    assert_eq!(api.call("GET", &path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call("DELETE", &path, Some(&bob), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("GET", "/v1/vaults/not-a-uuid", Some(&ada), None).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.call("POST", "/v1/vaults", Some(&ada), Some(json!({"name": ""})))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    let (status, fetched) = api.call("GET", &path, Some(&ada), None).await;
    assert_eq!(
        (status, fetched["description"].as_str()),
        (StatusCode::OK, Some("production keys"))
    );
    assert_eq!(
        api.call("DELETE", &path, Some(&ada), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.call("GET", &path, Some(&ada), None).await.0, StatusCode::NOT_FOUND);
}

/// Invariant 1: state lives only in the log. A restarted service rebuilds every read model
/// from it and answers exactly as before.
#[tokio::test]
async fn a_restarted_service_answers_the_same_from_the_log_alone() {
    let db = TestDb::postgres().await;
    let service = common::Service::new(&db, &[]);
    let answers = |api: Api, token: String| async move {
        let mut answers = Vec::new();
        for path in ["/v1/auth/me", "/v1/vaults", "/v1/org/members"] {
            answers.push(api.call("GET", path, Some(&token), None).await);
        }
        answers
    };
    let first = service.start().await;
    let token = first.signup("ada@example.com", "correct horse").await;
    first
        .call("POST", "/v1/vaults", Some(&token), Some(json!({"name": "prod"})))
        .await;
    first
        .call(
            "PATCH",
            "/v1/auth/me",
            Some(&token),
            Some(json!({"display_name": "Ada"})),
        )
        .await;
    let before = answers(first, token.clone()).await;

    let restarted = service.start().await;
    assert_eq!(answers(restarted, token).await, before);
}

/// A personal API key named `ci`, scoped to `deploy/**`, as created: the key and its record.
async fn deploy_key(api: &Api, session: &str) -> serde_json::Value {
    let (status, created) = api
        .call(
            "POST",
            "/v1/auth/api-keys",
            Some(session),
            Some(json!({"name": "ci", "scopes": ["deploy/**"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

#[tokio::test]
async fn a_personal_api_key_works_directly_and_for_tokens_until_revoked() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let session = api.signup("ada@example.com", "correct horse").await;
    let created = deploy_key(&api, &session).await;
    let key = created["api_key"].as_str().unwrap().to_owned();
    let key_id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("1ck_"));
    assert!(key.starts_with(created["key"]["key_prefix"].as_str().unwrap()));

    let (_, listed) = api.call("GET", "/v1/auth/api-keys", Some(&session), None).await;
    assert_eq!(listed["keys"][0]["name"], "ci");
    assert!(!listed.to_string().contains(&key), "a listing shows the key");

    // Directly as a bearer token, and exchanged for one.
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&session), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap();
    let outside = format!("/v1/vaults/{vault}/secrets/db/password");
    let inside = format!("/v1/vaults/{vault}/secrets/deploy/token");
    assert_eq!(
        api.call("PUT", &inside, Some(&session), Some(json!({"value": "x"})))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(api.call("GET", &inside, Some(&key), None).await.0, StatusCode::OK);
    let (status, token) = api
        .call("POST", "/v1/auth/api-key-token", None, Some(json!({"api_key": key})))
        .await;
    assert_eq!((status, token["expires_in"].as_i64()), (StatusCode::OK, Some(3600)));
    let exchanged = token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(api.call("GET", &inside, Some(&exchanged), None).await.0, StatusCode::OK);

    // The key's scopes are a ceiling: a secret outside them is refused even in the human's own vault.
    assert_eq!(
        api.call("PUT", &outside, Some(&key), Some(json!({"value": "x"})))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call("PUT", &inside, Some(&key), Some(json!({"value": "y"})))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.call("PUT", &outside, Some(&session), Some(json!({"value": "x"})))
            .await
            .0,
        StatusCode::CREATED
    );

    let path = format!("/v1/auth/api-keys/{key_id}");
    assert_eq!(
        api.call("DELETE", &path, Some(&session), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", &inside, Some(&key), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call("GET", &inside, Some(&exchanged), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = api
        .call("POST", "/v1/auth/api-key-token", None, Some(json!({"api_key": key})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.call("DELETE", &path, Some(&session), None).await.0,
        StatusCode::NOT_FOUND
    );
}

/// A scoped key is for secrets within its scopes, not for acting as its human: with it, or
/// a token exchanged for it, no endpoint that manages answers, and nothing changes.
#[tokio::test]
async fn a_scoped_api_key_reaches_only_secrets_within_its_scopes_and_cannot_manage() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let session = api.signup("ada@example.com", "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&session), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let (_, agent) = api
        .call("POST", "/v1/agents", Some(&session), Some(json!({"name": "bot"})))
        .await;
    let agent = agent["agent"]["id"].as_str().unwrap().to_owned();
    let created = deploy_key(&api, &session).await;
    let key = created["api_key"].as_str().unwrap().to_owned();
    let (_, token) = api
        .call("POST", "/v1/auth/api-key-token", None, Some(json!({"api_key": key})))
        .await;
    let exchanged = token["access_token"].as_str().unwrap().to_owned();
    let before = (
        api.call("GET", "/v1/auth/api-keys", Some(&session), None).await,
        api.call("GET", "/v1/vaults", Some(&session), None).await,
        api.call("GET", "/v1/agents", Some(&session), None).await,
        api.call("GET", &format!("/v1/vaults/{vault}/policies"), Some(&session), None)
            .await,
    );

    let grant = json!({
        "secret_path_pattern": "**",
        "principal_type": "agent",
        "principal_id": agent,
        "permissions": ["read"],
    });
    let management: Vec<(&str, String, Option<serde_json::Value>)> = vec![
        ("POST", "/v1/auth/api-keys".into(), Some(json!({"name": "x"}))),
        ("GET", "/v1/auth/api-keys".into(), None),
        ("GET", "/v1/auth/me".into(), None),
        ("POST", "/v1/vaults".into(), Some(json!({"name": "mine"}))),
        ("DELETE", format!("/v1/vaults/{vault}"), None),
        ("POST", format!("/v1/vaults/{vault}/policies"), Some(grant)),
        ("POST", "/v1/agents".into(), Some(json!({"name": "evil"}))),
        ("POST", format!("/v1/agents/{agent}/rotate-key"), None),
        ("GET", "/v1/agents/enrollments".into(), None),
        ("GET", "/v1/org/members".into(), None),
        ("GET", "/v1/audit/events".into(), None),
        ("GET", "/v1/shares/outbound".into(), None),
        ("GET", format!("/v1/agents/{agent}/transactions"), None),
        (
            "DELETE",
            "/v1/auth/me".into(),
            Some(json!({"confirmation": "DELETE MY ACCOUNT"})),
        ),
    ];
    for credential in [&key, &exchanged] {
        for (method, path, body) in &management {
            let (status, problem) = api.call(method, path, Some(credential), body.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {problem}");
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("a scoped credential cannot manage"),
                "{problem}"
            );
        }
    }
    let after = (
        api.call("GET", "/v1/auth/api-keys", Some(&session), None).await,
        api.call("GET", "/v1/vaults", Some(&session), None).await,
        api.call("GET", "/v1/agents", Some(&session), None).await,
        api.call("GET", &format!("/v1/vaults/{vault}/policies"), Some(&session), None)
            .await,
    );
    assert_eq!(after, before, "a refused request changed something");

    // Secrets within its scopes still answer; outside them, the ceiling refuses.
    let inside = format!("/v1/vaults/{vault}/secrets/deploy/token");
    let outside = format!("/v1/vaults/{vault}/secrets/db/password");
    for credential in [&key, &exchanged] {
        let (status, body) = api
            .call("PUT", &inside, Some(credential), Some(json!({"value": "v"})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, read) = api.call("GET", &inside, Some(credential), None).await;
        assert_eq!((status, read["value"].as_str()), (StatusCode::OK, Some("v")));
        let (status, _) = api
            .call("PUT", &outside, Some(credential), Some(json!({"value": "v"})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    // An unscoped key acts as its human, as before.
    let (_, unscoped) = api
        .call(
            "POST",
            "/v1/auth/api-keys",
            Some(&session),
            Some(json!({"name": "all"})),
        )
        .await;
    let unscoped = unscoped["api_key"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call("POST", "/v1/vaults", Some(&unscoped), Some(json!({"name": "staging"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        api.call("GET", "/v1/auth/me", Some(&unscoped), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_refresh_token_works_once_and_its_reuse_revokes_the_sign_in() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    api.signup("ada@example.com", "correct horse").await;
    let (_, first) = sign_in(&api, "ada@example.com", "correct horse").await;

    let (status, refreshed) = refresh(&api, &first).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let second = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(
        api.call("GET", "/v1/auth/me", Some(access), None).await.0,
        StatusCode::OK
    );

    // The first token again: someone holds a copy, so the whole sign-in is refused.
    let (status, _) = refresh(&api, &first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.call("GET", "/v1/auth/me", Some(access), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = refresh(&api, &second).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = refresh(&api, "rt_made_up").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Presents `refresh_token` at POST /v1/auth/refresh.
async fn refresh(api: &Api, refresh_token: &str) -> (StatusCode, serde_json::Value) {
    api.call(
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh_token})),
    )
    .await
}

/// A refresh token for the next (access token, refresh token) of its sign-in.
async fn refreshed(api: &Api, refresh_token: &str) -> (String, String) {
    let (status, answer) = refresh(api, refresh_token).await;
    session_tokens(status, &answer)
}

/// POST /v1/auth/token with email and password.
async fn log_in(api: &Api, email: &str, password: &str) -> (StatusCode, serde_json::Value) {
    api.call(
        "POST",
        "/v1/auth/token",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

/// Signs in with email and password: (access token, refresh token).
async fn sign_in(api: &Api, email: &str, password: &str) -> (String, String) {
    let (status, answer) = log_in(api, email, password).await;
    session_tokens(status, &answer)
}

/// The (access token, refresh token) of a sign-in's answer, which must be 200.
fn session_tokens(status: StatusCode, answer: &serde_json::Value) -> (String, String) {
    assert_eq!(status, StatusCode::OK, "{answer}");
    let token = |name: &str| answer[name].as_str().unwrap().to_owned();
    (token("access_token"), token("refresh_token"))
}

/// Every access token of a sign-in, and its refresh token, are refused.
async fn assert_signed_out(api: &Api, access_tokens: [&str; 2], refresh_token: &str) {
    let (status, _) = refresh(api, refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the sign-in's refresh token");
    for token in access_tokens {
        let (status, _) = api.call("GET", "/v1/auth/me", Some(token), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "an access token of the sign-in");
    }
}

/// Logging out ends the sign-in, not only the token presented: its refresh token and
/// every access token issued in it are refused, also once the read models are rebuilt
/// from the log, while another sign-in of the same human carries on.
#[tokio::test]
async fn logging_out_ends_the_sign_in_and_its_refresh_token() {
    let db = TestDb::sqlite();
    let service = common::Service::new(&db, &[]);
    let api = service.start().await;
    api.signup("ada@example.com", "correct horse").await;
    let (first_access, first_refresh) = sign_in(&api, "ada@example.com", "correct horse").await;
    let (elsewhere_access, elsewhere_refresh) = sign_in(&api, "ada@example.com", "correct horse").await;
    let (access, later_refresh) = refreshed(&api, &first_refresh).await;

    assert_eq!(
        api.call("DELETE", "/v1/auth/token", Some(&access), None).await.0,
        StatusCode::NO_CONTENT
    );

    assert_signed_out(&api, [&access, &first_access], &later_refresh).await;
    // The other sign-in carries on, and the trail says who signed out.
    let (status, events) = api
        .call(
            "GET",
            "/v1/audit/events?action=auth.logout",
            Some(&elsewhere_access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");

    // Rebuilt from the log alone, the answers are the same.
    drop(api);
    let restarted = service.start().await;
    assert_signed_out(&restarted, [&access, &first_access], &later_refresh).await;
    assert_eq!(
        restarted
            .call("GET", "/v1/auth/me", Some(&elsewhere_access), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = refresh(&restarted, &elsewhere_refresh).await;
    assert_eq!(status, StatusCode::OK);
}

/// A new password ends every other sign-in made with the old one, its access tokens as
/// well as its refresh token, also once the read models are rebuilt from the log; the
/// sign-in the change was made in carries on.
#[tokio::test]
async fn changing_the_password_ends_every_other_sign_in() {
    let db = TestDb::sqlite();
    let service = common::Service::new(&db, &[]);
    let api = service.start().await;
    api.signup("ada@example.com", "correct horse").await;
    let (stolen_access, stolen_refresh) = sign_in(&api, "ada@example.com", "correct horse").await;
    let (later_access, later_refresh) = refreshed(&api, &stolen_refresh).await;
    let (own_access, own_refresh) = sign_in(&api, "ada@example.com", "correct horse").await;

    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/change-password",
            Some(&own_access),
            Some(json!({"current_password": "correct horse", "new_password": "new secret pw"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    assert_signed_out(&api, [&stolen_access, &later_access], &later_refresh).await;
    assert_eq!(
        api.call("GET", "/v1/auth/me", Some(&own_access), None).await.0,
        StatusCode::OK
    );
    drop(api);
    let restarted = service.start().await;
    assert_signed_out(&restarted, [&stolen_access, &later_access], &later_refresh).await;
    assert_eq!(
        restarted.call("GET", "/v1/auth/me", Some(&own_access), None).await.0,
        StatusCode::OK
    );
    let (status, _) = refresh(&restarted, &own_refresh).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the sign-in the change was made in keeps its refresh token"
    );
}

const CONFIRMATION: &str = "DELETE MY ACCOUNT";

/// DELETE /v1/auth/me as `token`, with `body` and the password re-entered in X-Auth-Confirm.
async fn delete_account(
    api: &Api,
    token: &str,
    body: Option<serde_json::Value>,
    password: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let headers: Vec<(&str, &str)> = password.map(|p| ("X-Auth-Confirm", p)).into_iter().collect();
    api.call_with_headers("DELETE", "/v1/auth/me", Some(token), body, &headers)
        .await
}

/// The key table's ids of the keys of `vault` (its KEK and every DEK), read past keyward,
/// as tests/envelope_encryption.rs reads them.
async fn vault_key_ids(db: &TestDb, vault: &str) -> Vec<String> {
    use sqlx::Connection;
    let mut connection = sqlx::SqliteConnection::connect(&db.url()).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT key_id FROM wrapped_keys ORDER BY key_id")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(key_id,)| key_id)
        .filter(|key_id| key_id.contains(vault))
        .collect()
}

/// What a human's account holds, with every kind of credential to it.
struct Account {
    signup_token: String,
    access: String,
    refresh: String,
    api_key: String,
    /// A token exchanged for the API key.
    exchanged: String,
    agent_id: String,
    agent_key: String,
    agent_token: String,
    vault: String,
    secret: String,
    share: String,
}

async fn account_with_everything(api: &Api, email: &str) -> Account {
    let signup_token = api.signup(email, "correct horse").await;
    // A verified address: enrollments naming it are the account's to decide.
    let token = api.verification_tokens(email, 1).await.remove(0);
    assert_eq!(api.verify_email(&token).await.0, StatusCode::OK);
    let (access, refresh) = sign_in(api, email, "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&access), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let secret = format!("/v1/vaults/{vault}/secrets/db/password");
    let (status, written) = api
        .call("PUT", &secret, Some(&access), Some(json!({"value": "hunter2"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{written}");
    let (status, share) = api
        .call(
            "POST",
            &format!("/v1/secrets/{}/share", written["id"].as_str().unwrap()),
            Some(&access),
            Some(json!({
                "recipient_type": "anyone_with_link",
                "expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    let (status, agent) = api
        .call("POST", "/v1/agents", Some(&access), Some(json!({"name": "bot"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent_id = agent["agent"]["id"].as_str().unwrap().to_owned();
    let agent_key = agent["api_key"].as_str().unwrap().to_owned();
    let agent_token = api.agent_token(&agent_key).await;
    let (status, key) = api
        .call("POST", "/v1/auth/api-keys", Some(&access), Some(json!({"name": "ci"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    let (status, token) = api
        .call(
            "POST",
            "/v1/auth/api-key-token",
            None,
            Some(json!({"api_key": api_key})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let exchanged = token["access_token"].as_str().unwrap().to_owned();
    Account {
        signup_token,
        access,
        refresh,
        api_key,
        exchanged,
        agent_id,
        agent_key,
        agent_token,
        vault,
        secret,
        share: share["id"].as_str().unwrap().to_owned(),
    }
}

/// What the account answers to every credential of it: (request, status, value).
async fn account_answers(api: &Api, account: &Account) -> Vec<(String, StatusCode, serde_json::Value)> {
    let mut answers = Vec::new();
    for (name, token) in [
        ("sign-up token", &account.signup_token),
        ("sign-in token", &account.access),
        ("API key", &account.api_key),
        ("token for the API key", &account.exchanged),
    ] {
        for path in ["/v1/auth/me", "/v1/vaults", "/v1/agents", account.secret.as_str()] {
            let (status, body) = api.call("GET", path, Some(token), None).await;
            answers.push((format!("GET {path} with the {name}"), status, body));
        }
    }
    let (status, body) = api.call("GET", "/v1/agents/me", Some(&account.agent_token), None).await;
    answers.push(("the agent's token".into(), status, body));
    let (status, body) = api
        .call("GET", &format!("/v1/share/{}", account.share), None, None)
        .await;
    // Each opening counts: only whether it opens is the same answer twice.
    answers.push(("the link share".into(), status, json!(body["value"])));
    answers
}

/// Every credential of a deleted account is refused, its agent's too, its password signs
/// nobody in, and what its vault held does not open through a share either.
async fn assert_account_gone(api: &Api, account: &Account) {
    assert_signed_out(api, [&account.access, &account.signup_token], &account.refresh).await;
    for (name, token) in [
        ("API key", &account.api_key),
        ("token for the API key", &account.exchanged),
    ] {
        for path in ["/v1/auth/me", account.secret.as_str()] {
            let (status, _) = api.call("GET", path, Some(token), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "GET {path} with the {name}");
        }
    }
    let (status, _) = api.call("GET", "/v1/agents/me", Some(&account.agent_token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the agent's token");
    for (exchange, key) in [
        ("/v1/auth/api-key-token", &account.api_key),
        ("/v1/auth/agent-token", &account.agent_key),
    ] {
        let (status, _) = api.call("POST", exchange, None, Some(json!({"api_key": key}))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a key for a token at {exchange}");
    }
    let (status, share) = api
        .call("GET", &format!("/v1/share/{}", account.share), None, None)
        .await;
    assert_eq!(status, StatusCode::GONE, "the link share: {share}");
}

/// What a human's token sees of their own account.
async fn own_answers(api: &Api, token: &str) -> Vec<(StatusCode, serde_json::Value)> {
    let mut answers = Vec::new();
    for path in ["/v1/auth/me", "/v1/vaults", "/v1/agents", "/v1/agents/enrollments"] {
        answers.push(api.call("GET", path, Some(token), None).await);
    }
    answers
}

/// DELETE /v1/auth/me deletes the account in one append: every credential of the human
/// and of their organization's agent refused on the next request, the vault's keys
/// destroyed, the email free for a new account that finds nothing of the old one. Only the
/// token of a sign-in with the password, the password re-entered and the exact
/// confirmation delete; anything less changes nothing. The log keeps every event, and a
/// service rebuilt from it answers the same.
#[tokio::test]
async fn deleting_the_account_ends_every_credential_and_vault_and_frees_the_email() {
    let db = TestDb::sqlite();
    let service = common::Service::new(&db, &[]);
    let api = service.start().await;
    let ada = account_with_everything(&api, "ada@example.com").await;
    let bob = account_with_everything(&api, "bob@example.com").await;
    let (status, enrolled) = api
        .call(
            "POST",
            "/v1/agents/enroll",
            None,
            Some(json!({"name": "helper", "human_email": "ada@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");
    assert_eq!(vault_key_ids(&db, &ada.vault).await.len(), 2, "a KEK and a DEK");
    let ada_id = api.call("GET", "/v1/auth/me", Some(&ada.access), None).await.1["id"].clone();
    let before = account_answers(&api, &ada).await;
    assert!(
        before.iter().all(|(_, status, _)| *status == StatusCode::OK),
        "{before:?}"
    );

    // Anything less than a sign-in's token, the password and the exact words changes nothing.
    let confirmed = Some(json!({"confirmation": CONFIRMATION}));
    for (token, body, password, expected) in [
        (&ada.access, None, Some("correct horse"), StatusCode::BAD_REQUEST),
        (
            &ada.access,
            Some(json!({})),
            Some("correct horse"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &ada.access,
            Some(json!({"confirmation": "delete my account"})),
            Some("correct horse"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &ada.access,
            Some(json!({"confirmation": 1})),
            Some("correct horse"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &ada.api_key,
            confirmed.clone(),
            Some("correct horse"),
            StatusCode::FORBIDDEN,
        ),
        (
            &ada.exchanged,
            confirmed.clone(),
            Some("correct horse"),
            StatusCode::FORBIDDEN,
        ),
        (
            &ada.signup_token,
            confirmed.clone(),
            Some("correct horse"),
            StatusCode::FORBIDDEN,
        ),
        (
            &ada.agent_token,
            confirmed.clone(),
            Some("correct horse"),
            StatusCode::FORBIDDEN,
        ),
        (&ada.access, confirmed.clone(), None, StatusCode::FORBIDDEN),
        (
            &ada.access,
            confirmed.clone(),
            Some("wrong horse"),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (status, problem) = delete_account(&api, token, body.clone(), password).await;
        assert_eq!(status, expected, "{body:?} {password:?}: {problem}");
    }
    assert_eq!(
        account_answers(&api, &ada).await,
        before,
        "a refused deletion changed something"
    );
    assert_eq!(vault_key_ids(&db, &ada.vault).await.len(), 2);

    let (status, body) = delete_account(&api, &ada.access, confirmed, Some("correct horse")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    assert_account_gone(&api, &ada).await;
    let (status, _) = log_in(&api, "ada@example.com", "correct horse").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password");
    // Crypto-shredding: the vault's keys are gone, so its values in the log never open again.
    assert_eq!(vault_key_ids(&db, &ada.vault).await, Vec::<String>::new());
    assert_eq!(vault_key_ids(&db, &bob.vault).await.len(), 2, "another account's keys");
    // Another account carries on.
    let bob_before = account_answers(&api, &bob).await;
    assert!(
        bob_before.iter().all(|(_, status, _)| *status == StatusCode::OK),
        "{bob_before:?}"
    );

    // The email founds a new account, which finds nothing of the old one.
    let again = api.signup("ada@example.com", "another horse").await;
    let again_id = api.call("GET", "/v1/auth/me", Some(&again), None).await.1["id"].clone();
    let token = api
        .verification_tokens("ada@example.com", 2)
        .await
        .into_iter()
        .find(|token| token.starts_with(&format!("ev_{}.", again_id.as_str().unwrap())))
        .expect("the new account's verification");
    assert_eq!(api.verify_email(&token).await.0, StatusCode::OK);
    let (again_access, _) = sign_in(&api, "ada@example.com", "another horse").await;
    let fresh = own_answers(&api, &again_access).await;
    assert_eq!(fresh[0].0, StatusCode::OK);
    assert_ne!(fresh[0].1["id"], ada_id);
    assert_eq!(fresh[1].1["vaults"], json!([]));
    assert_eq!(fresh[2].1["agents"], json!([]));
    // The enrollment that waited for the deleted account's decision was denied with it.
    let enrollments = fresh[3].1["enrollments"].as_array().unwrap();
    assert_eq!(enrollments.len(), 1, "{enrollments:?}");
    assert_eq!(enrollments[0]["status"], "denied");
    assert_eq!(
        api.call("GET", "/v1/auth/me", Some(&again), None).await.0,
        StatusCode::OK
    );

    // The log keeps the events (the trail of who did what); rebuilt from it alone, the
    // answers are the same.
    let store = keyward::store::open(&db.url()).await.unwrap();
    let models = keyward::replay::build(store.clone(), projections::Until::End, |_| {})
        .await
        .unwrap();
    let count = |event_type| models.streams.events_of_type(event_type);
    assert_eq!(
        [
            count("user.deleted"),
            count("email.released"),
            count("vault.deleted"),
            count("agent.deactivated"),
            count("enrollment.denied"),
            count("secret.write"),
        ],
        [1, 1, 1, 1, 1, 2]
    );
    let agent: domain::AgentId = ada.agent_id.parse().unwrap();
    let org = models.directory.agent(agent).unwrap().org_id;
    let deleted = projections::audit::AuditQuery {
        action: Some("user.delete".into()),
        ..Default::default()
    };
    let index = AuditIndex::open(&db.url()).await.unwrap();
    index.start(store.clone());
    assert!(index.caught_up_to(models.position(), Duration::from_secs(10)).await);
    let (positions, _) = index.query(&*store, org, &deleted, 0, 10).await.unwrap();
    let records = AuditIndex::records(&*store, &positions).await.unwrap();
    let records: Vec<_> = records
        .iter()
        .map(|r| (r.actor_id.clone(), json!(r.resource_id)))
        .collect();
    assert_eq!(records, [(ada_id.as_str().map(str::to_owned), ada_id.clone())]);
    drop(api);
    let restarted = service.start().await;
    assert_account_gone(&restarted, &ada).await;
    assert_eq!(own_answers(&restarted, &again_access).await, fresh);
    assert_eq!(account_answers(&restarted, &bob).await.len(), bob_before.len());
    assert!(
        account_answers(&restarted, &bob)
            .await
            .iter()
            .all(|(_, status, _)| *status == StatusCode::OK)
    );
}

/// Today every org has one member, its owner: the rules that must hold once invitations
/// come are those a lone owner meets. They cannot demote nor remove themselves (the last
/// owner), setting the role they have changes nothing and appends nothing, another org's
/// user is as good as absent, and an agent manages no member.
#[tokio::test]
async fn the_last_owner_cannot_step_down_or_leave_and_strangers_are_not_found() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let token = api.signup("ada@example.com", "correct horse").await;
    let (_, me) = api.call("GET", "/v1/auth/me", Some(&token), None).await;
    let ada = me["id"].as_str().unwrap().to_owned();
    let bob_token = api.signup("bob@example.com", "correct horse").await;
    let (_, bob) = api.call("GET", "/v1/auth/me", Some(&bob_token), None).await;
    let bob = bob["id"].as_str().unwrap().to_owned();
    let (_, agent) = api
        .call("POST", "/v1/agents", Some(&token), Some(json!({"name": "bot"})))
        .await;
    let agent_token = api.agent_token(agent["api_key"].as_str().unwrap()).await;
    let own = format!("/v1/org/members/{ada}");
    let head = || async { api.call("GET", "/v1/health", None, None).await.1["log_position"].clone() };
    let (_, members_before) = api.call("GET", "/v1/org/members", Some(&token), None).await;
    let before = head().await;

    for role in ["admin", "member"] {
        let (status, problem) = api.call("PATCH", &own, Some(&token), Some(json!({"role": role}))).await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
        assert_eq!(
            problem["detail"],
            "the organization must keep at least one owner: make another member an owner first"
        );
    }
    let (status, problem) = api.call("DELETE", &own, Some(&token), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["detail"],
        "you are the organization's last owner: it must keep one. To leave it for good, delete the account \
         with DELETE /v1/auth/me"
    );

    // The role the owner has already: the member, and nothing appended.
    let (status, member) = api
        .call("PATCH", &own, Some(&token), Some(json!({"role": "owner"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{member}");
    assert_eq!(member, members_before["members"][0]);
    assert_eq!(
        (member["id"].as_str(), member["role"].as_str(), member["email"].as_str()),
        (Some(ada.as_str()), Some("owner"), Some("ada@example.com"))
    );

    // Another org's user, and an id that is not one: 404, whatever is asked.
    for path in [format!("/v1/org/members/{bob}"), "/v1/org/members/not-a-uuid".into()] {
        let (status, problem) = api
            .call("PATCH", &path, Some(&token), Some(json!({"role": "member"})))
            .await;
        assert_eq!(
            (status, problem["detail"].as_str()),
            (StatusCode::NOT_FOUND, Some("member not found")),
            "PATCH {path}"
        );
        let (status, problem) = api.call("DELETE", &path, Some(&token), None).await;
        assert_eq!(
            (status, problem["detail"].as_str()),
            (StatusCode::NOT_FOUND, Some("member not found")),
            "DELETE {path}"
        );
    }

    for body in [json!({"role": "superuser"}), json!({}), json!({"role": 1})] {
        let (status, problem) = api.call("PATCH", &own, Some(&token), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
    }

    let (status, problem) = api
        .call("PATCH", &own, Some(&agent_token), Some(json!({"role": "member"})))
        .await;
    assert_eq!(
        (status, problem["detail"].as_str()),
        (StatusCode::FORBIDDEN, Some("this endpoint is for human accounts"))
    );
    let (status, _) = api.call("DELETE", &own, Some(&agent_token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert_eq!(head().await, before, "a refused or idle membership change appended");
    let (_, members_after) = api.call("GET", "/v1/org/members", Some(&token), None).await;
    assert_eq!(members_after, members_before);
    assert_eq!(members_after["members"][0]["role"], "owner");
    let (status, _) = api.call("GET", "/v1/auth/me", Some(&bob_token), None).await;
    assert_eq!(status, StatusCode::OK, "bob is untouched");
}
