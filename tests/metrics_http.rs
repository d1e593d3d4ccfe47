//! Prometheus metrics at GET /metrics (docs/operations/metrics.md): served only when a token is
//! configured, and only to whoever presents it; an exposition that Prometheus's own Python
//! parser reads, whose counters move with the requests made, and whose labels name route
//! templates, never the ids or paths a request carried.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::world::{METRICS_TOKEN, submit, world};
use common::{Api, TestDb, run_keyward};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "scrape-me-with-this-0123456789";

fn python() -> String {
    std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "KEYWARD_TEST_PYTHON is not set: this test parses the exposition with prometheus_client, \
             which scripts/test installs into .tools/venv. Run it as `scripts/test metrics_http`."
        )
    })
}

/// Every sample of `exposition`, as prometheus_client's parser reads it.
fn parse(exposition: &str) -> Vec<Value> {
    const PARSE: &str = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        print(json.dumps([{'name': s.name, 'labels': s.labels, 'value': s.value}\n\
            for family in text_string_to_metric_families(sys.stdin.read()) for s in family.samples]))";
    let mut parser = Command::new(python())
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parser.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let output = parser.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the parser refused the exposition: {}\n{exposition}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The value of the sample `name` whose labels include `labels`; zero if there is none.
fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(key, value)| s["labels"][key] == *value))
        .map_or(0.0, |s| s["value"].as_f64().unwrap())
}

async fn scrape(api: &Api, token: Option<&str>) -> reqwest::Response {
    let mut request = api.client.get(api.server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn samples(api: &Api) -> (String, Vec<Value>) {
    samples_with(api, TOKEN).await
}

async fn samples_with(api: &Api, token: &str) -> (String, Vec<Value>) {
    let response = scrape(api, Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let exposition = response.text().await.unwrap();
    let parsed = parse(&exposition);
    (exposition, parsed)
}

#[tokio::test]
async fn the_counters_move_with_requests_and_name_route_templates_only() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_METRICS_TOKEN", TOKEN)]).await;
    let signups = [("method", "POST"), ("route", "/v1/auth/signup"), ("status", "200")];
    let refusals = [("route", "/v1/vaults")];

    let human = api.signup("ada@example.com", "correct horse").await;
    let (status, _) = api.call("GET", "/v1/vaults", Some("not-a-token"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, before) = samples(&api).await;
    assert_eq!(sample(&before, "keyward_http_requests_total", &signups), 1.0);
    assert_eq!(sample(&before, "keyward_authentication_refusals_total", &refusals), 1.0);

    api.signup("bob@example.com", "correct horse").await;
    api.call("GET", "/v1/vaults", Some("still-not-a-token"), None).await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap();
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{vault}/secrets/db/password"),
            Some(&human),
            Some(json!({"value": "hunter2"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, after) = samples(&api).await;
    assert_eq!(sample(&after, "keyward_http_requests_total", &signups), 2.0);
    assert_eq!(sample(&after, "keyward_authentication_refusals_total", &refusals), 2.0);
    let timed = [("method", "POST"), ("route", "/v1/auth/signup")];
    assert_eq!(
        sample(&after, "keyward_http_request_duration_seconds_count", &timed),
        2.0
    );
    assert!(sample(&after, "keyward_http_request_duration_seconds_sum", &timed) > 0.0);
    let secret_route = [("route", "/v1/vaults/{vault_id}/secrets/{*path}"), ("status", "201")];
    assert_eq!(sample(&after, "keyward_http_requests_total", &secret_route), 1.0);

    // The log: commits, their sizes and times, and the read models' place in it.
    assert!(sample(&after, "keyward_append_batch_events_count", &[]) >= 1.0);
    assert!(
        sample(&after, "keyward_append_batch_events_sum", &[])
            >= sample(&after, "keyward_append_batch_events_count", &[])
    );
    assert!(sample(&after, "keyward_append_commit_seconds_sum", &[]) > 0.0);
    let (_, health) = api.call("GET", "/v1/health", None, None).await;
    let position = sample(&after, "keyward_log_position", &[]);
    assert!(position > 0.0 && position <= health["log_position"].as_f64().unwrap());
    // The mailer may be recording a sign-up mail's outcome as the scrape is answered.
    let lag = after.iter().find(|s| s["name"] == "keyward_projector_lag_events");
    assert!(lag.is_some_and(|lag| lag["value"].as_f64().unwrap() < 10.0), "{lag:?}");

    // Nothing a request carried reaches the exposition, an invented method included: each
    // label value would be a series kept for the life of the process.
    for n in 0..3 {
        let method = reqwest::Method::from_bytes(format!("PROBE{n}").as_bytes()).unwrap();
        let url = api.server.url(&format!("/v1/vaults/{vault}"));
        api.client.request(method, url).send().await.unwrap();
    }
    let (exposition, after) = samples(&api).await;
    let invented: f64 = after
        .iter()
        .filter(|s| s["name"] == "keyward_http_requests_total" && s["labels"]["method"] == "other")
        .map(|s| s["value"].as_f64().unwrap())
        .sum();
    assert_eq!(invented, 3.0);
    for carried in [
        vault,
        "db/password",
        "hunter2",
        human.as_str(),
        TOKEN,
        "ada@example.com",
        "PROBE",
    ] {
        assert!(!exposition.contains(carried), "the exposition shows {carried:?}");
    }
}

#[tokio::test]
async fn metrics_are_served_only_to_the_tokens_holder() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[("KEYWARD_METRICS_TOKEN", TOKEN)]).await;
    assert_eq!(scrape(&api, None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        scrape(&api, Some("scrape-me-with-this-012345678X")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A human's own token is no metrics token.
    let human = api.signup("ada@example.com", "correct horse").await;
    assert_eq!(scrape(&api, Some(&human)).await.status(), StatusCode::UNAUTHORIZED);
    let response = scrape(&api, Some(TOKEN)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );

    // Without a token configured there is nothing at /metrics, whatever is presented.
    let unconfigured = TestDb::sqlite();
    let api = Api::start(&unconfigured).await;
    assert_eq!(scrape(&api, Some(TOKEN)).await.status(), StatusCode::NOT_FOUND);

    // A token short enough to guess is refused at start-up.
    let short = TestDb::sqlite();
    let data_dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_keyward(
        &["serve"],
        &[
            ("KEYWARD_DATABASE_URL", &short.url()),
            ("KEYWARD_DATA_DIR", data_dir.path().to_str().unwrap()),
            ("KEYWARD_METRICS_TOKEN", "guessable"),
        ],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("metrics_token"), "{stderr}");
}

#[tokio::test]
async fn sends_to_the_node_and_emails_are_counted_by_outcome() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let transfer = json!({"chain": "anvil", "to": world.recipient, "value": "0.5"});
    let (status, tx) = submit(&world, transfer).await;
    assert_eq!(status, StatusCode::CREATED, "{tx}");
    let (_, after) = samples_with(&world.api, METRICS_TOKEN).await;
    let taken = [("outcome", "taken")];
    assert_eq!(sample(&after, "keyward_intents_broadcast_total", &taken), 1.0);
    assert_eq!(
        sample(&after, "keyward_intents_broadcast_total", &[("outcome", "refused")]),
        0.0
    );
    assert!(sample(&after, "keyward_node_send_seconds_count", &[]) >= 1.0);
    assert!(sample(&after, "keyward_node_send_seconds_sum", &[]) > 0.0);

    // The sign-up's verification email, at least: queued, then sent, the queue empty again.
    let mut mails = (0.0, 0.0, f64::NAN);
    for _ in 0..100 {
        let (_, now) = samples_with(&world.api, METRICS_TOKEN).await;
        mails = (
            sample(&now, "keyward_mail_total", &[("outcome", "sent")]),
            sample(&now, "keyward_mail_total", &[("outcome", "failed")]),
            sample(&now, "keyward_mail_queue_depth", &[]),
        );
        if mails.0 >= 1.0 && mails.2 == 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        mails.0 >= 1.0 && mails.1 == 0.0 && mails.2 == 0.0,
        "sent, failed, queued: {mails:?}"
    );
}
