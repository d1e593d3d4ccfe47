//! Threat: guessing credentials and probing for accounts (docs/security.md, "Password
//! guessing" and "Sign-up"). A client's password guesses are counted as they start, so
//! guesses sent at once get no more answers than guesses sent one by one, through the API
//! and through the sign-in page alike; sign-ups, which also answer whether an address has
//! an account, run out per client.

mod common;

use common::{Api, TestDb};
use reqwest::StatusCode;
use serde_json::json;

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse";

/// Where a guess is sent.
#[derive(Clone, Copy, Debug)]
enum Door {
    Api,
    SignInPage,
}

struct Guesser<'a> {
    api: &'a Api,
    door: Door,
    browser: reqwest::Client,
    csrf: String,
}

impl<'a> Guesser<'a> {
    async fn at(api: &'a Api, door: Door) -> Self {
        let browser = common::browser();
        let csrf = match door {
            Door::Api => String::new(),
            Door::SignInPage => api.form_token(&browser, "/login").await,
        };
        Self {
            api,
            door,
            browser,
            csrf,
        }
    }

    /// The status a sign-in with `password` gets: 200 (the page's 303) when it was right,
    /// 401 when it was checked and wrong, 429 when it was not checked.
    async fn guess(&self, password: &str) -> (StatusCode, Option<String>) {
        let response = match self.door {
            Door::Api => {
                self.api
                    .client
                    .post(self.api.server.url("/v1/auth/token"))
                    .json(&json!({"email": EMAIL, "password": password}))
                    .send()
                    .await
            }
            Door::SignInPage => {
                self.browser
                    .post(self.api.server.url("/login"))
                    .form(&[
                        ("csrf", self.csrf.as_str()),
                        ("email", EMAIL),
                        ("password", password),
                        ("next", "/"),
                    ])
                    .send()
                    .await
            }
        }
        .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        let status = match response.status() {
            StatusCode::SEE_OTHER => StatusCode::OK,
            status => status,
        };
        (status, retry_after)
    }
}

/// Failed sign-ins audited in `token`'s org.
async fn audited_failures(api: &Api, token: &str) -> u64 {
    let (_, trail) = api
        .call("GET", "/v1/audit/events?action=auth.failure&limit=1", Some(token), None)
        .await;
    trail["count"].as_u64().unwrap()
}

/// Spends the client's refusals (20, and those that come back meanwhile, one every 5
/// seconds), then waits for the next to come back and spends it too, and waits 5.5 s more:
/// the client then holds exactly one refusal and a fraction of the next.
async fn leave_one_refusal(guesser: &Guesser<'_>) {
    let mut checked = 0;
    while guesser.guess("wrong guess").await.0 == StatusCode::UNAUTHORIZED {
        checked += 1;
        assert!(checked <= 30, "the refusals never ran out");
    }
    assert!(checked >= 20, "{checked}");
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if guesser.guess("wrong guess").await.0 == StatusCode::UNAUTHORIZED {
            break;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(5500)).await;
}

/// Sixteen guesses at once, the right password among them, from a client holding one
/// refusal: one is checked, fifteen are turned away unchecked.
async fn sixteen_at_once_get_one_check(door: Door) {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup(EMAIL, PASSWORD).await;
    let guesser = Guesser::at(&api, door).await;
    leave_one_refusal(&guesser).await;
    let failures_before = audited_failures(&api, &ada).await;

    let guesses: Vec<String> = (0..15)
        .map(|n| format!("wrong guess {n}"))
        .chain([PASSWORD.to_owned()])
        .collect();
    let answers = futures::future::join_all(guesses.iter().map(|password| guesser.guess(password))).await;
    let checked: Vec<StatusCode> = answers
        .iter()
        .map(|(status, _)| *status)
        .filter(|status| *status != StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(checked.len(), 1, "{door:?}: {answers:?}");
    assert!(
        [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(&checked[0]),
        "{door:?}: {answers:?}"
    );
    for (status, retry_after) in &answers {
        if *status == StatusCode::TOO_MANY_REQUESTS && matches!(door, Door::Api) {
            let seconds: u64 = retry_after.as_deref().unwrap().parse().unwrap();
            assert!((1..=5).contains(&seconds), "{answers:?}");
        }
    }
    let wrong_checked = u64::from(checked[0] == StatusCode::UNAUTHORIZED);
    assert_eq!(
        audited_failures(&api, &ada).await,
        failures_before + wrong_checked,
        "{door:?}: only the checked guess can be in the log"
    );
}

#[tokio::test]
async fn sixteen_concurrent_password_guesses_get_one_check_through_the_api() {
    sixteen_at_once_get_one_check(Door::Api).await;
}

#[tokio::test]
async fn sixteen_concurrent_password_guesses_get_one_check_through_the_sign_in_page() {
    sixteen_at_once_get_one_check(Door::SignInPage).await;
}

#[tokio::test]
async fn a_client_has_at_most_two_passwords_checked_at_once() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = api.signup(EMAIL, PASSWORD).await;
    let guesser = Guesser::at(&api, Door::Api).await;
    // Within the client's 20 refusals: only the number running at once holds them back.
    let answers = futures::future::join_all((0..16).map(|_| guesser.guess("wrong guess"))).await;
    let checked = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|answer| **answer == (StatusCode::TOO_MANY_REQUESTS, Some("1".to_owned())))
        .count();
    assert_eq!(checked + refused, 16, "{answers:?}");
    // Sixteen arrive within milliseconds while a check takes tens: a few are checked
    // (two, or one more for each check that ended before the last arrived), not all.
    assert!((1..=4).contains(&checked), "{answers:?}");
    assert_eq!(audited_failures(&api, &ada).await, checked as u64);
    // Turned away unchecked, they spent no refusal: 20 - checked are left (and any that
    // came back meanwhile), where spending one each would have left 4.
    for attempt in 1..=(20 - checked) {
        assert_eq!(
            guesser.guess("wrong guess").await.0,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
}

#[tokio::test]
async fn a_right_password_spends_nothing_of_the_clients_refusals() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    api.signup(EMAIL, PASSWORD).await;
    let guesser = Guesser::at(&api, Door::Api).await;
    for _ in 0..25 {
        assert_eq!(guesser.guess(PASSWORD).await.0, StatusCode::OK);
    }
    // Had each right one spent a refusal, the client would have none left.
    for attempt in 1..=20 {
        assert_eq!(
            guesser.guess("wrong guess").await.0,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
}

async fn signup_from(api: &Api, client: &str, email: &str) -> (StatusCode, serde_json::Value) {
    api.call_with_headers(
        "POST",
        "/v1/auth/signup",
        None,
        Some(json!({"email": email, "password": PASSWORD})),
        &[("x-forwarded-for", client)],
    )
    .await
}

/// The mails in the server's outbox to `to`.
fn mails_to(api: &Api, to: &str) -> usize {
    common::mail::emails_to(&api.outbox(), to).len()
}

#[tokio::test]
async fn a_flood_of_sign_ups_from_one_client_stops_after_ten_and_mails_no_more() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_TRUSTED_PROXIES", "127.0.0.1")]).await;
    for n in 0..10 {
        let (status, body) = signup_from(&api, "203.0.113.9", &format!("victim{n}@example.com")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    api.verification_tokens("victim9@example.com", 1).await;
    let before = decided_events(&db).await;
    let response = api
        .client
        .post(api.server.url("/v1/auth/signup"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"email": "victim10@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = common::retry_after(&response);
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(decided_events(&db).await, before, "nothing was decided");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        mails_to(&api, "victim10@example.com"),
        0,
        "no mail to the eleventh address"
    );

    // Another client is not held up; one IPv6 host is one /64, whatever address it takes.
    assert_eq!(
        signup_from(&api, "198.51.100.7", "someone@example.com").await.0,
        StatusCode::OK
    );
    for n in 0..10 {
        let client = format!("2001:db8:0:1::{n:x}");
        let (status, body) = signup_from(&api, &client, &format!("v6-{n}@example.com")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        signup_from(&api, "2001:db8:0:1:ffff::1", "v6-10@example.com").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        signup_from(&api, "2001:db8:0:2::1", "v6-10@example.com").await.0,
        StatusCode::OK
    );
}

/// How many events of the log a request decided: all but the outcomes of the mails sent
/// before, which the mailer records whenever it gets to them.
async fn decided_events(db: &TestDb) -> usize {
    let log = keyward::store::open(&db.url()).await.unwrap();
    let events = log.read_all(0, usize::MAX >> 1).await.unwrap();
    events
        .iter()
        .filter(|event| !matches!(event.event_type.as_str(), "mail.sent" | "mail.failed"))
        .count()
}

#[tokio::test]
async fn probing_addresses_through_sign_up_spends_the_same_allowance_and_mails_nobody() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_TRUSTED_PROXIES", "127.0.0.1")]).await;
    assert_eq!(signup_from(&api, "198.51.100.7", EMAIL).await.0, StatusCode::OK);
    api.verification_tokens(EMAIL, 1).await;
    // The spec's sign-up signs the new account in at once, so a taken address cannot be
    // answered as a new one would be (docs/security.md, "Sign-up"): it is a 409, and each
    // probe costs the prober one of its sign-ups.
    for _ in 0..10 {
        let (status, problem) = signup_from(&api, "203.0.113.9", EMAIL).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(problem["detail"], "an account with this email already exists");
    }
    for email in [EMAIL, "unclaimed@example.com"] {
        assert_eq!(
            signup_from(&api, "203.0.113.9", email).await.0,
            StatusCode::TOO_MANY_REQUESTS,
            "the prober is out of sign-ups, whether the address is taken or not"
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        mails_to(&api, EMAIL),
        1,
        "the holder got one mail, their own verification"
    );
    assert_eq!(mails_to(&api, "unclaimed@example.com"), 0);
}
