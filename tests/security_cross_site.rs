//! Threat: forms posted from other sites (docs/security.md, "Forms from other sites"). A
//! page elsewhere can make a visitor's browser post any form to keyward's pages, cookies
//! and all; it cannot read the CSRF token keyward gave that browser. Every state-changing
//! form needs it: the sign-in form (a login CSRF would sign the visitor into the attacker's
//! account), the approval form, the address confirmation and sign-out.

mod common;

use common::{Api, TestDb};
use reqwest::StatusCode;
use serde_json::json;

const REFUSAL: &str = "this form is stale or came from another site: reload the page and try again";

async fn post(
    browser: &reqwest::Client,
    api: &Api,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = browser.post(api.server.url(path)).form(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Whether `response` set a session cookie.
fn starts_a_session(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|cookie| cookie.to_str().unwrap().starts_with("keyward_session="))
}

/// Asserts `response` is the refusal page, and returns nothing else of it.
async fn assert_refused(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
    assert!(!starts_a_session(&response), "{what}");
    assert!(response.text().await.unwrap().contains(REFUSAL), "{what}");
}

/// Where `browser` lands on keyward's home page: 200 if signed in, else a redirect.
async fn home(browser: &reqwest::Client, api: &Api) -> StatusCode {
    browser.get(api.server.url("/")).send().await.unwrap().status()
}

#[tokio::test]
async fn a_sign_in_form_posted_from_another_site_signs_the_browser_into_nothing() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    api.signup("mallory@example.com", "correct horse").await;
    let mallorys_browser = common::browser();
    let mallorys_token = api.form_token(&mallorys_browser, "/login").await;
    // The visitor has been to keyward before: their browser holds a token of its own.
    let visitor = common::browser();
    let visitors_token = api.form_token(&visitor, "/login").await;
    assert_ne!(visitors_token, mallorys_token);

    // Mallory's page posts her own credentials from the visitor's browser, with no token,
    // or the one her own browser was given.
    let credentials = [
        ("email", "mallory@example.com"),
        ("password", "correct horse"),
        ("next", "/"),
    ];
    for csrf in [None, Some(""), Some(mallorys_token.as_str())] {
        let mut form = credentials.to_vec();
        form.extend(csrf.map(|csrf| ("csrf", csrf)));
        assert_refused(post(&visitor, &api, "/login", &form, &[]).await, &format!("{csrf:?}")).await;
    }
    // A browser that says the form came from elsewhere is refused even with the token.
    let mut form = credentials.to_vec();
    form.push(("csrf", &visitors_token));
    for site in ["cross-site", "same-site"] {
        let response = post(&visitor, &api, "/login", &form, &[("sec-fetch-site", site)]).await;
        assert_refused(response, site).await;
    }
    // A browser that never visited keyward has no token to match.
    let stranger = common::browser();
    let mut form = credentials.to_vec();
    form.push(("csrf", &mallorys_token));
    assert_refused(post(&stranger, &api, "/login", &form, &[]).await, "no cookie").await;
    assert_eq!(home(&visitor, &api).await, StatusCode::SEE_OTHER, "nobody is signed in");

    // keyward's own form, from its own page, signs in.
    let mut form = credentials.to_vec();
    form.push(("csrf", &visitors_token));
    let response = post(&visitor, &api, "/login", &form, &[("sec-fetch-site", "same-origin")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(starts_a_session(&response));
    assert_eq!(home(&visitor, &api).await, StatusCode::OK);
}

#[tokio::test]
async fn every_page_form_refuses_a_post_without_the_browsers_token() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup("ada@example.com", "correct horse").await;
    let verification = api.verification_tokens("ada@example.com", 1).await.remove(0);
    let (status, enrolled) = api
        .call("POST", "/v1/agents/enroll", None, Some(json!({"name": "scraper"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");
    let approval_url = enrolled["approval_url"].as_str().unwrap().to_owned();
    let (path, query) = approval_url.split_once("/enroll/").unwrap().1.split_once('?').unwrap();
    let (enrollment, code) = (format!("/enroll/{path}"), query.strip_prefix("code=").unwrap());
    let browser = api.signed_in_browser("ada@example.com", "correct horse").await;
    let token = api.form_token(&browser, "/login").await;

    let forms: [(&str, Vec<(&str, &str)>); 3] = [
        ("/verify-email", vec![("token", verification.as_str())]),
        (&enrollment, vec![("code", code), ("decision", "allow")]),
        ("/logout", vec![]),
    ];
    for (path, form) in &forms {
        assert_refused(post(&browser, &api, path, form, &[]).await, path).await;
        let mut wrong = form.clone();
        wrong.push((
            "csrf",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ));
        assert_refused(post(&browser, &api, path, &wrong, &[]).await, path).await;
    }
    // Nothing changed: the address is unconfirmed, the agent waits, the browser is signed in.
    let (_, me) = api.call("GET", "/v1/auth/me", Some(&ada), None).await;
    assert_eq!(me["email_verified"], false);
    let (_, listed) = api.call("GET", "/v1/agents/enrollments", Some(&ada), None).await;
    assert_eq!(listed["enrollments"], json!([]), "the agent is nobody's until approved");
    assert_eq!(home(&browser, &api).await, StatusCode::OK);

    // With the browser's token each does what it says.
    let answers: Vec<StatusCode> = {
        let mut answers = Vec::new();
        for (path, form) in &forms {
            let mut form = form.clone();
            form.push(("csrf", &token));
            answers.push(post(&browser, &api, path, &form, &[]).await.status());
        }
        answers
    };
    assert_eq!(answers, [StatusCode::OK, StatusCode::OK, StatusCode::SEE_OTHER]);
    let (_, me) = api.call("GET", "/v1/auth/me", Some(&ada), None).await;
    assert_eq!(me["email_verified"], true);
    let (_, listed) = api.call("GET", "/v1/agents/enrollments", Some(&ada), None).await;
    assert_eq!(listed["enrollments"][0]["status"], "approved", "{listed}");
    assert_eq!(home(&browser, &api).await, StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn every_page_sets_the_token_cookie_and_gives_its_forms_the_same_token() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let response = reqwest::get(api.server.url("/verify-email?token=x")).await.unwrap();
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("keyward_csrf=") && cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
    let value = &cookie["keyward_csrf=".len()..cookie.find(';').unwrap()];
    assert_eq!(common::hidden_input(&response.text().await.unwrap(), "csrf"), value);

    // A browser that has it keeps it, page after page.
    let browser = common::browser();
    let first = api.form_token(&browser, "/login").await;
    let again = browser.get(api.server.url("/login")).send().await.unwrap();
    assert!(again.headers().get("set-cookie").is_none());
    assert_eq!(common::hidden_input(&again.text().await.unwrap(), "csrf"), first);
    assert_eq!(api.form_token(&browser, "/verify-email?token=x").await, first);
}
