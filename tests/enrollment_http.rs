//! Agent self-enrollment end to end: an agent with no credentials enrolls, the human it
//! names is emailed (through a real SMTP server), approves, receives the key by email,
//! and the agent can read nothing until the human grants it a policy. Also: answers that
//! cannot enumerate accounts, rate limits, one decision only, CSRF on the approval page.

mod common;

use common::mail::{self, Email};
use common::{Api, TestDb, hidden_input};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple())
}

async fn enroll(api: &Api, body: Value) -> (StatusCode, Value) {
    api.call("POST", "/v1/agents/enroll", None, Some(body)).await
}

async fn enrollments(api: &Api, human: &str) -> Vec<Value> {
    let (status, body) = api.call("GET", "/v1/agents/enrollments", Some(human), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["enrollments"].as_array().unwrap().clone()
}

/// The API key in the email that delivers it.
fn api_key_in(email: &Email) -> String {
    email
        .body()
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("ocv_"))
        .unwrap_or_else(|| panic!("no API key in {}", email.raw))
        .to_owned()
}

#[tokio::test]
async fn an_enrolled_agent_is_approved_by_email_and_reads_only_after_a_policy() {
    let db = TestDb::sqlite();
    let smtp = mail::smtp_url();
    let api = Api::start_with(&db, &[("KEYWARD_SMTP_URL", &smtp)]).await;
    let maildir = mail::smtp_maildir();
    let ada = unique_email("ada");
    api.signup(&ada, "correct horse").await;
    // Enrollments naming an address are its holder's once they show they read its mail.
    let confirm = mail::wait_for(&maildir, &ada, "Confirm your email").await;
    let token = format!("ev_{}", confirm.line_after("ev_").expect("the token"));
    let (status, verified) = api.verify_email(&token).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    let human = verified["access_token"].as_str().unwrap().to_owned();
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{vault}/secrets/api-keys/stripe"),
            Some(&human),
            Some(json!({"value": "sk-live-42"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, enrolled) = enroll(
        &api,
        json!({"name": "billing-bot", "human_email": ada, "description": "reconciles invoices"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");
    assert_eq!(enrolled["agent_id"], "00000000-0000-0000-0000-000000000000");
    assert!(
        enrolled.get("api_key").is_none(),
        "the key never goes to the agent: {enrolled}"
    );
    let approval_url = enrolled["approval_url"].as_str().unwrap();
    assert!(approval_url.starts_with(&api.server.url("/enroll/")), "{approval_url}");

    let ask = mail::wait_for(&maildir, &ada, "Approve agent").await;
    let allow_link = ask.line_after("Allow:").expect("an Allow link");
    let deny_link = ask.line_after("Deny:").expect("a Deny link");
    assert!(allow_link.starts_with(approval_url) && allow_link.ends_with("decision=allow"));
    assert!(deny_link.ends_with("decision=deny"));
    assert!(ask.body().contains("billing-bot") && ask.body().contains("127.0.0.1"));

    // Mail scanners follow links: opening Allow, even signed in, changes nothing.
    let browser = api.signed_in_browser(&ada, "correct horse").await;
    let page = browser.get(&allow_link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("billing-bot") && page.contains("reconciles invoices"),
        "{page}"
    );
    let listed = enrollments(&api, &human).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "pending");
    assert_eq!(listed[0]["name"], "billing-bot");
    let enrollment_id = listed[0]["id"].as_str().unwrap().to_owned();

    let (status, approved) = api
        .call(
            "POST",
            &format!("/v1/agents/enrollments/{enrollment_id}/approve"),
            Some(&human),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let agent_id = approved["agent"]["id"].as_str().unwrap().to_owned();
    assert_eq!(approved["agent"]["scopes"], json!([]));

    let key_mail = mail::wait_for(&maildir, &ada, "API key for agent").await;
    let api_key = api_key_in(&key_mail);
    assert_eq!(api_key, approved["api_key"].as_str().unwrap());

    let token = api.agent_token(&api_key).await;
    let secret_path = format!("/v1/vaults/{vault}/secrets/api-keys/stripe");
    let (status, _) = api.call("GET", &secret_path, Some(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a new agent has zero access");

    let (status, policy) = api
        .call(
            "POST",
            &format!("/v1/vaults/{vault}/policies"),
            Some(&human),
            Some(json!({
                "secret_path_pattern": "api-keys/*",
                "principal_type": "agent",
                "principal_id": agent_id,
                "permissions": ["read"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    // A token's scope ceiling is what the agent's policies reached when it was issued: the
    // agent takes a new token to use the new grant.
    let token = api.agent_token(&api_key).await;
    let (status, secret) = api.call("GET", &secret_path, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    assert_eq!(secret["value"], "sk-live-42");

    let listed = enrollments(&api, &human).await;
    assert_eq!(
        (listed[0]["status"].as_str(), listed[0]["agent_id"].as_str()),
        (Some("approved"), Some(agent_id.as_str()))
    );
    let (_, trail) = api.call("GET", "/v1/audit/events?limit=100", Some(&human), None).await;
    let actions: Vec<&str> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["action"].as_str())
        .collect();
    for action in ["agent.enroll", "agent.enroll_approve", "mail.queue"] {
        assert!(actions.contains(&action), "no {action} in {actions:?}");
    }
}

#[tokio::test]
async fn answers_for_an_existing_and_an_unknown_email_are_alike() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = unique_email("ada");
    api.signup_verified(&ada, "correct horse").await;
    let nobody = unique_email("nobody");

    let (known_status, known) = enroll(&api, json!({"name": "bot", "human_email": ada})).await;
    let (unknown_status, unknown) = enroll(&api, json!({"name": "bot", "human_email": nobody})).await;
    assert_eq!(
        (known_status, unknown_status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let fields = |body: &Value| body.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(fields(&known), fields(&unknown));
    assert_eq!(known["message"], unknown["message"]);
    assert_eq!(known["agent_id"], unknown["agent_id"]);
    assert!(known["approval_url"].is_string() && unknown["approval_url"].is_string());

    // The per-email cooldown applies alike, account or not.
    for email in [&ada, &nobody] {
        let response = api
            .client
            .post(api.server.url("/v1/agents/enroll"))
            .json(&json!({"name": "bot", "human_email": email.to_uppercase()}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after = common::retry_after(&response);
        assert!((1..=600).contains(&retry_after), "Retry-After {retry_after}");
    }
    // Only the account holder is emailed (the outbox, with no SMTP server configured).
    mail::wait_for(&api.outbox(), &ada, "Approve agent").await;
    assert!(mail::emails_to(&api.outbox(), &nobody).is_empty());
}

#[tokio::test]
async fn enrollments_from_one_address_come_in_bursts_of_five_then_one_a_second() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let started = std::time::Instant::now();
    let requests = (0..12).map(|i| enroll(&api, json!({"name": format!("bot-{i}")})));
    let statuses: Vec<StatusCode> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let refilled = started.elapsed().as_secs() as usize;
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(created + limited, 12, "{statuses:?}");
    assert!(
        (5..=5 + refilled).contains(&created),
        "{created} created in {refilled} s: {statuses:?}"
    );
}

#[tokio::test]
async fn a_second_decision_is_a_conflict_and_a_denied_agent_never_exists() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = unique_email("ada");
    let human = api.signup_verified(&ada, "correct horse").await;
    enroll(&api, json!({"name": "intruder", "human_email": ada})).await;
    let id = enrollments(&api, &human).await[0]["id"].as_str().unwrap().to_owned();

    let (status, denied) = api
        .call("POST", &format!("/v1/agents/enrollments/{id}/deny"), Some(&human), None)
        .await;
    assert_eq!((status, denied["status"].as_str()), (StatusCode::OK, Some("denied")));
    for decision in ["approve", "deny"] {
        let (status, _) = api
            .call(
                "POST",
                &format!("/v1/agents/enrollments/{id}/{decision}"),
                Some(&human),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{decision} after deny");
    }
    // Decided, it is no longer kept in memory: the list reads it from its stream in the log.
    let listed = enrollments(&api, &human).await;
    assert_eq!((listed.len(), listed[0]["status"].as_str()), (1, Some("denied")));
    let (_, agents) = api.call("GET", "/v1/agents", Some(&human), None).await;
    assert_eq!(agents["agents"], json!([]));

    // Someone of another organization cannot see or decide it.
    let eve = api.signup(&unique_email("eve"), "correct horse").await;
    assert!(enrollments(&api, &eve).await.is_empty());
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/agents/enrollments/{id}/approve"),
            Some(&eve),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nor can one whose organization verified an address, looking it up in the log.
    let mallory = api.signup_verified(&unique_email("mallory"), "correct horse").await;
    assert!(enrollments(&api, &mallory).await.is_empty());
    for decision in ["approve", "deny"] {
        let (status, _) = api
            .call(
                "POST",
                &format!("/v1/agents/enrollments/{id}/{decision}"),
                Some(&mallory),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{decision} by another organization");
    }
}

#[tokio::test]
async fn concurrent_approvals_register_exactly_one_agent() {
    let db = TestDb::postgres().await;
    let api = Api::start(&db).await;
    let ada = unique_email("ada");
    let human = api.signup_verified(&ada, "correct horse").await;
    enroll(&api, json!({"name": "racer", "human_email": ada})).await;
    let id = enrollments(&api, &human).await[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/agents/enrollments/{id}/approve");
    let attempts = (0..8).map(|_| api.call("POST", &path, Some(&human), None));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(status, _)| status)
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
    let (_, agents) = api.call("GET", "/v1/agents", Some(&human), None).await;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1);
    mail::wait_for(&api.outbox(), &ada, "API key for agent").await;
    let key_mails = mail::emails_to(&api.outbox(), &ada)
        .into_iter()
        .filter(|email| email.header("Subject").is_some_and(|s| s.contains("API key")))
        .count();
    assert_eq!(key_mails, 1, "one key, one email");
}

#[tokio::test]
async fn a_link_only_enrollment_is_decided_by_whoever_holds_the_link_on_the_page() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let bob = unique_email("bob");
    let human = api.signup(&bob, "correct horse").await;
    let (status, enrolled) = enroll(&api, json!({"name": "scraper"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let approval_url = enrolled["approval_url"].as_str().unwrap().to_owned();

    // Not signed in: the page asks for sign-in first, and comes back.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = anonymous.get(&approval_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next=%2Fenroll%2F")
    );

    let browser = api.signed_in_browser(&bob, "correct horse").await;
    // Without the link's code, the enrollment is nobody's to see.
    let without_code = approval_url.split('?').next().unwrap();
    assert_eq!(
        browser.get(without_code).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let page = browser.get(&approval_url).send().await.unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let page = page.text().await.unwrap();
    let (csrf, code) = (hidden_input(&page, "csrf"), hidden_input(&page, "code"));

    // A form posted from elsewhere has no valid CSRF token: refused, nothing changes.
    let forged = browser
        .post(without_code)
        .form(&[
            ("csrf", "0".repeat(64).as_str()),
            ("code", &code),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(enrollments(&api, &human).await.is_empty(), "nothing approved");

    let allowed = browser
        .post(without_code)
        .form(&[("csrf", csrf.as_str()), ("code", &code), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(allowed.text().await.unwrap().contains("Agent allowed"));
    let listed = enrollments(&api, &human).await;
    assert_eq!(listed[0]["status"], "approved");
    let (_, agents) = api.call("GET", "/v1/agents", Some(&human), None).await;
    assert_eq!(agents["agents"][0]["name"], "scraper");
    let key_mail = mail::wait_for(&api.outbox(), &bob, "API key for agent").await;
    let (status, _) = api
        .call(
            "POST",
            "/v1/auth/agent-token",
            None,
            Some(json!({"api_key": api_key_in(&key_mail)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let again = browser
        .post(without_code)
        .form(&[("csrf", csrf.as_str()), ("code", &code), ("decision", "deny")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn an_email_the_smtp_server_refuses_is_retried_then_recorded_as_failed() {
    let db = TestDb::sqlite();
    // A server that greets every connection with a permanent refusal. A port left
    // closed instead can be taken by another test's listener meanwhile, which accepts
    // and stays silent: each attempt then waits out the SMTP timeout.
    let refusing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let smtp = format!("smtp://{}", refusing.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut connection, _)) = refusing.accept().await {
            let _ = connection.write_all(b"554 5.3.2 not accepting mail\r\n").await;
        }
    });
    let api = Api::start_with(&db, &[("KEYWARD_SMTP_URL", &smtp)]).await;
    let ada = unique_email("ada");
    let human = api.signup(&ada, "correct horse").await;
    let (status, _) = enroll(&api, json!({"name": "bot", "human_email": ada})).await;
    assert_eq!(status, StatusCode::CREATED, "sending never holds up the response");

    let mut failure = None;
    for _ in 0..600 {
        let (_, trail) = api
            .call("GET", "/v1/audit/events?action=mail.failure", Some(&human), None)
            .await;
        if let Some(event) = trail["events"].as_array().unwrap().first() {
            failure = Some(event.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let failure = failure.expect("a mail.failure audit event within 60 s");
    assert_eq!(failure["details"]["attempts"], 6, "{failure}");
    let error = failure["details"]["error"].as_str().unwrap();
    assert!(
        error.contains("not accepting mail"),
        "the server's own words: {failure}"
    );
}

/// The sign-in form returns only to paths of this site: browsers drop tabs and line
/// breaks from a URL and read `\` as `/`, so each of these would leave for evil.com.
#[tokio::test]
async fn sign_in_never_redirects_to_another_host() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = unique_email("ada");
    api.signup(&ada, "correct horse").await;
    let browser = common::browser();
    let csrf = api.form_token(&browser, "/login").await;
    let sign_in = |next: &'static str| {
        browser
            .post(api.server.url("/login"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", ada.as_str()),
                ("password", "correct horse"),
                ("next", next),
            ])
            .send()
    };
    for next in [
        "/\t/evil.com",
        "/\n/evil.com",
        "/\r\n/evil.com",
        "//evil.com",
        "/\\evil.com",
    ] {
        let response = sign_in(next).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(response.headers()["location"], "/", "{next:?}");
        // The form carries only a local path on, too.
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        let form = browser
            .get(api.server.url(&format!("/login?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), StatusCode::OK, "{next:?}");
        assert_eq!(hidden_input(&form.text().await.unwrap(), "next"), "/", "{next:?}");
    }
    let response = sign_in("/enroll/x?code=y").await.unwrap();
    assert_eq!(response.headers()["location"], "/enroll/x?code=y");
}
