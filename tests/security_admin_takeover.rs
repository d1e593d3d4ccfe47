//! Threat: taking platform administration (docs/security.md, "Platform administration").
//! An address among the config's `admins` grants the rights only once its holder shows
//! they read its mail; otherwise only an operator's grant on the server does.

mod common;

use common::{Api, TestDb, run_keyward};
use reqwest::StatusCode;
use serde_json::json;

const ADMIN: &str = "ops@example.com";

fn chain() -> serde_json::Value {
    json!({"name": "evil", "display_name": "Evil", "chain_id": 666, "rpc_url": "http://127.0.0.1:9/attacker"})
}

/// Every admin endpoint answers `status` to `token`.
async fn admin_endpoints_answer(api: &Api, token: &str, status: StatusCode) {
    assert_eq!(api.call("GET", "/v1/admin/chains", Some(token), None).await.0, status);
    let (got, body) = api.call("POST", "/v1/admin/chains", Some(token), Some(chain())).await;
    let expected = if status == StatusCode::OK {
        StatusCode::CREATED
    } else {
        status
    };
    assert_eq!(got, expected, "{body}");
}

#[tokio::test]
async fn signing_up_with_an_admins_unclaimed_address_grants_nothing_until_its_mail_is_read() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_ADMINS", ADMIN)]).await;
    let squatter = api.signup(ADMIN, "correct horse").await;
    let (_, me) = api.call("GET", "/v1/auth/me", Some(&squatter), None).await;
    assert_eq!(me["email_verified"], false, "{me}");
    admin_endpoints_answer(&api, &squatter, StatusCode::FORBIDDEN).await;

    // The holder of the mailbox reads the token and proves the address: now it is theirs.
    let token = api.verification_tokens(ADMIN, 1).await.remove(0);
    let (status, signed_in) = api.verify_email(&token).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert_eq!(signed_in["token_type"], "Bearer");
    assert!(signed_in["refresh_token"].as_str().is_some(), "{signed_in}");
    let admin = signed_in["access_token"].as_str().unwrap();
    let (_, me) = api.call("GET", "/v1/auth/me", Some(admin), None).await;
    assert_eq!(me["email_verified"], true, "{me}");
    admin_endpoints_answer(&api, admin, StatusCode::OK).await;
}

#[tokio::test]
async fn a_forged_used_expired_or_foreign_verification_token_verifies_nothing() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_ADMINS", ADMIN)]).await;
    let squatter = api.signup(ADMIN, "correct horse").await;
    let own = api.signup("mallory@example.com", "correct horse").await;
    let mallorys = api.verification_tokens("mallory@example.com", 1).await.remove(0);
    let admins = api.verification_tokens(ADMIN, 1).await.remove(0);
    let (_, me) = api.call("GET", "/v1/auth/me", Some(&squatter), None).await;
    let admin_id = me["id"].as_str().unwrap();
    let (secret_part, _) = (mallorys.split_once('.').unwrap().1, ());

    let refused = [
        String::new(),
        "ev_".to_owned(),
        format!("ev_{admin_id}"),
        format!("ev_{admin_id}.{}", "A".repeat(43)),
        // Mallory's own random part, under the admin's account id.
        format!("ev_{admin_id}.{secret_part}"),
        admins.replacen("ev_", "sc_", 1),
    ];
    for token in &refused {
        let (status, problem) = api.verify_email(token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{token:?}: {problem}");
        assert_eq!(
            problem["detail"], "the verification token is invalid, used or expired",
            "one answer for every refusal"
        );
    }
    let (status, _) = api.verify_email(&mallorys).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.verify_email(&mallorys).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a token works once");
    admin_endpoints_answer(&api, &squatter, StatusCode::FORBIDDEN).await;
    admin_endpoints_answer(&api, &own, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn a_new_verification_token_voids_the_last_and_comes_at_most_once_a_minute() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let resend = || api.call("POST", "/v1/auth/verify-email/resend", Some(&human), None);
    let (status, problem) = resend().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(
        api.verification_tokens("ada@example.com", 1).await.len(),
        1,
        "no mail for a refused resend"
    );
    assert_eq!(
        api.call("POST", "/v1/auth/verify-email/resend", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_operators_grant_on_the_server_makes_an_admin_and_a_revoke_unmakes_it() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let human = api.signup("ops@example.org", "correct horse").await;
    admin_endpoints_answer(&api, &human, StatusCode::FORBIDDEN).await;
    let env = [("KEYWARD_DATABASE_URL", db.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let (code, stdout, stderr) = run_keyward(&["admin", "grant", "nobody@example.org"], &env);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("no account holds nobody@example.org"), "{stdout}");

    let (code, stdout, stderr) = run_keyward(&["admin", "grant", "OPS@example.org"], &env);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The running server's tail polls the file another process wrote.
    eventually_answers(&api, &human, StatusCode::OK).await;
    let (code, stdout, stderr) = run_keyward(&["admin", "revoke", "ops@example.org"], &env);
    assert_eq!(code, 0, "{stdout}{stderr}");
    eventually_answers(&api, &human, StatusCode::FORBIDDEN).await;

    let (_, audit) = api
        .call(
            "GET",
            "/v1/audit/events?action=platform.admin_grant",
            Some(&human),
            None,
        )
        .await;
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(1), "{audit}");
}

async fn eventually_answers(api: &Api, token: &str, status: StatusCode) {
    for _ in 0..50 {
        if api.call("GET", "/v1/admin/chains", Some(token), None).await.0 == status {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("/v1/admin/chains never answered {status}");
}

#[tokio::test]
async fn the_emailed_link_opens_a_page_that_verifies_only_when_its_button_is_pressed() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let mail = common::mail::wait_for(&api.outbox(), "ada@example.com", "Confirm your email").await;
    let link = mail.line_after("http://").map(|rest| format!("http://{rest}")).unwrap();
    let token = api.verification_tokens("ada@example.com", 1).await.remove(0);
    let path_and_query = &link[link.find("/verify-email").unwrap()..];
    let browser = common::browser();
    let page = browser.get(api.server.url(path_and_query)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("value=\"{token}\"")));
    let csrf = common::hidden_input(&page, "csrf");
    let verified = || async {
        let (_, me) = api.call("GET", "/v1/auth/me", Some(&human), None).await;
        me["email_verified"].as_bool().unwrap()
    };
    assert!(!verified().await, "a GET verifies nothing: mail scanners follow links");

    let press_the_button = || {
        browser
            .post(api.server.url("/verify-email"))
            .form(&[("csrf", csrf.as_str()), ("token", token.as_str())])
            .send()
    };
    let confirmed = press_the_button().await.unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(confirmed.text().await.unwrap().contains("ada@example.com is verified"));
    assert!(verified().await);
    assert_eq!(
        press_the_button().await.unwrap().status(),
        StatusCode::BAD_REQUEST,
        "once"
    );
}
