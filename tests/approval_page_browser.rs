//! The approval page in a real headless Chromium: the human follows the agent's
//! approval_url, signs in, sees who asks, and clicks Allow. A screenshot of the page is
//! kept in target/test-artifacts/ for people to look at.

mod common;

use common::browser::{Browser, artifacts_dir};
use common::{Api, TestDb, mail};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_human_signs_in_sees_the_agent_and_clicks_allow() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let ada = format!("ada-{}@example.com", uuid::Uuid::now_v7().simple());
    let human = api.signup_verified(&ada, "correct horse").await;
    let (status, enrolled) = api
        .call(
            "POST",
            "/v1/agents/enroll",
            None,
            Some(json!({"name": "release-bot", "human_email": ada, "description": "tags and ships releases"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{enrolled}");
    let approval_url = enrolled["approval_url"].as_str().unwrap();

    let browser = Browser::start().await;
    browser.open(approval_url).await;
    let login = api.server.url("/login?next=");
    browser.wait_for_url(&login).await.expect("sign in comes first");
    browser.type_into("#email", &ada).await;
    browser.type_into("#password", "correct horse").await;
    browser.click("#sign-in").await;

    if let Err(landed) = browser.wait_for_url(approval_url).await {
        let page = browser.text("body").await;
        panic!("not back on the approval page but on {landed}: {page}");
    }
    assert_eq!(browser.text("#agent-name").await, "release-bot");
    assert_eq!(browser.text("#agent-description").await, "tags and ships releases");
    assert_eq!(browser.text("#requested-from").await, "127.0.0.1");
    assert_eq!(browser.text("#status").await, "pending your decision");
    let png = browser.screenshot(&artifacts_dir().join("approval-page.png")).await;
    assert!(png > 1000, "a screenshot of {png} bytes shows nothing");

    browser.click("#allow").await;
    assert_eq!(browser.text("#outcome").await, "Agent allowed");
    browser
        .screenshot(&artifacts_dir().join("approval-page-allowed.png"))
        .await;
    browser.quit().await;

    let (_, listed) = api.call("GET", "/v1/agents/enrollments", Some(&human), None).await;
    assert_eq!(listed["enrollments"][0]["status"], "approved");
    let (_, agents) = api.call("GET", "/v1/agents", Some(&human), None).await;
    assert_eq!(agents["agents"][0]["name"], "release-bot");
    mail::wait_for(&api.outbox(), &ada, "API key for agent").await;
}
