//! Threat: a token that outlives what should end it (docs/security.md, "Every token belongs
//! to a sign-in"). Sign-up's token and the web pages' cookie used to name no sign-in, so a
//! new password or the pages' sign-out left them working until they expired, and the
//! cookie's token opened the API too.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Api, Service, TestDb};
use keyward::auth::{PrincipalType, SigningKeys, TokenIssuer, TokenRequest, TokenUse};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADA: &str = "ada@example.com";
const PASSWORD: &str = "correct horse";

/// A client that keeps no cookies and follows no redirects: each request says what it sends.
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What the home page answers the session cookie `token`: 200 when it signs in, else the
/// way to the sign-in form.
async fn home_with_cookie(api: &Api, token: &str) -> (StatusCode, String) {
    let response = bare_client()
        .get(api.server.url("/"))
        .header("cookie", format!("keyward_session={token}"))
        .send()
        .await
        .unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), location)
}

/// What GET /v1/auth/me answers the bearer token `token`.
async fn me(api: &Api, token: &str) -> StatusCode {
    api.call("GET", "/v1/auth/me", Some(token), None).await.0
}

/// POST /v1/auth/token: the access token of a new sign-in.
async fn sign_in(api: &Api, password: &str) -> String {
    let (status, answer) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": ADA, "password": password})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn change_password(api: &Api, token: &str, from: &str, to: &str) {
    let (status, body) = api
        .call(
            "POST",
            "/v1/auth/change-password",
            Some(token),
            Some(json!({"current_password": from, "new_password": to})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// The claims of a token, read without checking it.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A new password ends the sign-up's token and the pages' cookie along with every other
/// sign-in made with the old one, also once the read models are rebuilt from the log; the
/// sign-in the change was made in carries on.
#[tokio::test]
async fn a_new_password_ends_the_sign_up_token_and_the_pages_cookie() {
    let db = TestDb::sqlite();
    let service = Service::new(&db, &[]);
    let api = service.start().await;
    let sign_up = api.signup(ADA, PASSWORD).await;
    let cookie = api.page_session_token(ADA, PASSWORD).await;
    let own = sign_in(&api, PASSWORD).await;
    assert_eq!(me(&api, &sign_up).await, StatusCode::OK);
    assert_eq!(home_with_cookie(&api, &cookie).await.0, StatusCode::OK);

    change_password(&api, &own, PASSWORD, "a new secret").await;

    for api in [api, service.start().await] {
        assert_eq!(
            me(&api, &sign_up).await,
            StatusCode::UNAUTHORIZED,
            "the sign-up's token"
        );
        assert_eq!(
            home_with_cookie(&api, &cookie).await,
            (StatusCode::SEE_OTHER, "/login?next=%2F".to_owned()),
            "the pages' cookie"
        );
        assert_eq!(me(&api, &own).await, StatusCode::OK, "the sign-in of the change");
    }
}

/// A password changed with the sign-up's token keeps that token, as any sign-in the change
/// is made in; logging out with it ends it like any other.
#[tokio::test]
async fn the_sign_up_token_is_a_sign_in_like_any_other() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let sign_up = api.signup(ADA, PASSWORD).await;
    let other = sign_in(&api, PASSWORD).await;
    let cookie = api.page_session_token(ADA, PASSWORD).await;

    change_password(&api, &sign_up, PASSWORD, "a new secret").await;
    assert_eq!(me(&api, &sign_up).await, StatusCode::OK);
    assert_eq!(me(&api, &other).await, StatusCode::UNAUTHORIZED);
    assert_eq!(home_with_cookie(&api, &cookie).await.0, StatusCode::SEE_OTHER);

    let (status, _) = api.call("DELETE", "/v1/auth/token", Some(&sign_up), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(&api, &sign_up).await, StatusCode::UNAUTHORIZED);
    let own = sign_in(&api, "a new secret").await;
    let (_, trail) = api
        .call("GET", "/v1/audit/events?action=auth.logout", Some(&own), None)
        .await;
    assert_eq!(
        trail["events"][0]["details"]["family_id"],
        claims(&sign_up)["sid"],
        "the sign-up's sign-in ended: {trail}"
    );
}

/// The pages' sign-out ends the cookie's sign-in in the log: a copy of the cookie kept
/// anywhere (another tab, a proxy's log, a stolen laptop's profile) is refused after it,
/// on every replica and after a restart, while the human's other sign-ins carry on.
#[tokio::test]
async fn signing_out_of_the_pages_ends_the_cookie_wherever_a_copy_of_it_is() {
    let db = TestDb::sqlite();
    let service = Service::new(&db, &[]);
    let api = service.start().await;
    api.signup(ADA, PASSWORD).await;
    let cookie = api.page_session_token(ADA, PASSWORD).await;
    let other_tab = api.page_session_token(ADA, PASSWORD).await;
    let bearer = sign_in(&api, PASSWORD).await;
    assert_eq!(home_with_cookie(&api, &cookie).await.0, StatusCode::OK);

    let response = sign_out_form(&api, Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/login");
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("keyward_session=; "),
        "the browser forgets the cookie"
    );

    let replica = service.start().await;
    for api in [&api, &replica] {
        assert_eq!(
            home_with_cookie(api, &cookie).await,
            (StatusCode::SEE_OTHER, "/login?next=%2F".to_owned()),
            "the signed-out cookie's copy"
        );
        assert_eq!(
            home_with_cookie(api, &other_tab).await.0,
            StatusCode::OK,
            "another sign-in"
        );
        assert_eq!(me(api, &bearer).await, StatusCode::OK);
    }
    let (_, trail) = api
        .call("GET", "/v1/audit/events?action=auth.logout", Some(&bearer), None)
        .await;
    let events = trail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{trail}");
    assert_eq!(events[0]["details"]["family_id"], claims(&cookie)["sid"]);
    let (_, trail) = api
        .call("GET", "/v1/audit/events?action=auth.sign_in", Some(&bearer), None)
        .await;
    let kinds: Vec<&str> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["details"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["api", "page", "page", "sign_up"], "newest first: {trail}");

    // Signing out again, or with no cookie at all, is harmless.
    for cookie in [Some(cookie.as_str()), None] {
        assert_eq!(sign_out_form(&api, cookie).await.status(), StatusCode::SEE_OTHER);
    }
}

/// The page's "Sign out" form posted by a browser holding the session cookie `session`, if
/// any: with the browser's CSRF cookie and the same value in the form (src/web/csrf.rs).
async fn sign_out_form(api: &Api, session: Option<&str>) -> reqwest::Response {
    let csrf = "5e".repeat(32);
    let mut cookies = format!("keyward_csrf={csrf}");
    if let Some(session) = session {
        cookies.push_str(&format!("; keyward_session={session}"));
    }
    bare_client()
        .post(api.server.url("/logout"))
        .header("cookie", cookies)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap()
}

/// The cookie is sent by the browser along with whatever another site makes it request:
/// its token opens the pages (whose forms carry a CSRF token), never the API. And a
/// bearer token is no cookie.
#[tokio::test]
async fn the_pages_cookie_is_no_bearer_token_and_a_bearer_token_no_cookie() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let sign_up = api.signup(ADA, PASSWORD).await;
    let bearer = sign_in(&api, PASSWORD).await;
    let cookie = api.page_session_token(ADA, PASSWORD).await;
    assert_eq!(claims(&cookie)["aud"], "keyward-page");
    assert_eq!(claims(&bearer)["aud"], "keyward");

    for (method, path) in [
        ("GET", "/v1/auth/me"),
        ("GET", "/v1/vaults"),
        ("POST", "/v1/vaults"),
        ("GET", "/v1/agents/enrollments"),
        ("DELETE", "/v1/auth/token"),
        ("POST", "/v1/auth/api-keys"),
    ] {
        let (status, problem) = api.call(method, path, Some(&cookie), Some(json!({"name": "x"}))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {problem}");
    }
    let (_, vaults) = api.call("GET", "/v1/vaults", Some(&bearer), None).await;
    assert_eq!(vaults["vaults"], json!([]), "nothing was created with the cookie");
    assert_eq!(home_with_cookie(&api, &cookie).await.0, StatusCode::OK);

    for token in [&bearer, &sign_up] {
        assert_eq!(
            home_with_cookie(&api, token).await,
            (StatusCode::SEE_OTHER, "/login?next=%2F".to_owned())
        );
        assert_eq!(me(&api, token).await, StatusCode::OK);
    }
}

/// Tokens issued before sign-ins were recorded for sign-up and the pages name none (no
/// `sid`): after the upgrade they are refused at once, not left to run out their hour.
/// They are made here with the server's own key, as the server before the upgrade made them.
#[tokio::test]
async fn tokens_without_a_sign_in_from_before_the_upgrade_are_refused() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let sign_up = api.signup(ADA, PASSWORD).await;
    let current = claims(&sign_up);
    assert!(current["sid"].is_string(), "{current}");
    let keys = SigningKeys::load_or_generate(&api.data_dir).unwrap();
    let issuer = TokenIssuer::new(keys, current["iss"].as_str().unwrap(), "keyward");
    let legacy = |token_use| {
        let user = current["sub"].as_str().unwrap().strip_prefix("user:").unwrap();
        let request = TokenRequest {
            token_use,
            principal_type: PrincipalType::User,
            principal_id: user.parse().unwrap(),
            org_id: current["org"].as_str().unwrap().parse().unwrap(),
            scopes: Vec::new(),
            vault_ids: Vec::new(),
            intents_api_enabled: false,
            sid: None,
        };
        issuer
            .issue(request, chrono::Utc::now(), chrono::Duration::hours(1))
            .unwrap()
            .0
    };
    let (bearer, cookie) = (legacy(TokenUse::Api), legacy(TokenUse::Page));
    assert!(claims(&bearer).get("sid").is_none());

    assert_eq!(me(&api, &bearer).await, StatusCode::UNAUTHORIZED);
    assert_eq!(home_with_cookie(&api, &cookie).await.0, StatusCode::SEE_OTHER);
    assert_eq!(me(&api, &sign_up).await, StatusCode::OK, "a current one still works");
}
