//! Humans over HTTP: sign-up founds an org, sign-in issues tokens that are checked live,
//! and vaults are visible only inside their org.

mod common;

use common::{Api, TestDb};
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
    let (status, _) = api
        .call("POST", "/v1/auth/refresh", None, Some(json!({"refresh_token": "x"})))
        .await;
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
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
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
    let (_, login) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": "ada@example.com", "password": "correct horse"})),
        )
        .await;
    let first = login["refresh_token"].as_str().unwrap().to_owned();

    let (status, refreshed) = api
        .call("POST", "/v1/auth/refresh", None, Some(json!({"refresh_token": first})))
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let second = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(
        api.call("GET", "/v1/auth/me", Some(access), None).await.0,
        StatusCode::OK
    );

    // The first token again: someone holds a copy, so the whole sign-in is refused.
    let (status, _) = api
        .call("POST", "/v1/auth/refresh", None, Some(json!({"refresh_token": first})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.call("GET", "/v1/auth/me", Some(access), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = api
        .call("POST", "/v1/auth/refresh", None, Some(json!({"refresh_token": second})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "rt_made_up"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Signs in with email and password: (access token, refresh token).
async fn sign_in(api: &Api, email: &str, password: &str) -> (String, String) {
    let (status, login) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = |name: &str| login[name].as_str().unwrap().to_owned();
    (token("access_token"), token("refresh_token"))
}

/// Every access token of a sign-in, and its refresh token, are refused.
async fn assert_signed_out(api: &Api, access_tokens: [&str; 2], refresh: &str) {
    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
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
    let (status, refreshed) = api
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": first_refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();

    assert_eq!(
        api.call("DELETE", "/v1/auth/token", Some(&access), None).await.0,
        StatusCode::NO_CONTENT
    );

    assert_signed_out(&api, [&access, &first_access], &refresh).await;
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
    assert_signed_out(&restarted, [&access, &first_access], &refresh).await;
    assert_eq!(
        restarted
            .call("GET", "/v1/auth/me", Some(&elsewhere_access), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = restarted
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": elsewhere_refresh})),
        )
        .await;
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
    let (status, refreshed) = api
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": stolen_refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let later_access = refreshed["access_token"].as_str().unwrap().to_owned();
    let later_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
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
    let (status, _) = restarted
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": own_refresh})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the sign-in the change was made in keeps its refresh token"
    );
}
