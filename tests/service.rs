//! The service as a user starts it: the binary, its configuration, its health endpoint
//! and its error responses.

mod common;

use common::{Server, TestDb, run_keyward};

#[tokio::test]
async fn serve_on_the_embedded_default_creates_its_data_dir_and_answers_health() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("fresh/data");
    let server = Server::start(&[("KEYWARD_DATA_DIR", data_dir.to_str().unwrap())]).await;
    let response = reqwest::get(server.url("/v1/health")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["log_position"], 0);
    assert!(data_dir.join("keyward.db").exists());
}

#[tokio::test]
async fn health_reports_the_position_of_a_seeded_log_on_postgres() {
    let db = TestDb::postgres().await;
    let (code, _, stderr) = run_keyward(&["bench", "seed", "--database-url", &db.url(), "--events", "1234"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let server = Server::start(&[("KEYWARD_DATABASE_URL", &db.url())]).await;
    let body: serde_json::Value = reqwest::get(server.url("/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["log_position"], 1234);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_json() {
    let db = TestDb::sqlite();
    let server = Server::start(&[("KEYWARD_DATABASE_URL", &db.url())]).await;
    let client = reqwest::Client::new();
    for (method, path, status) in [("GET", "/v1/nothing-here", 404), ("DELETE", "/v1/health", 405)] {
        let response = client
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        assert!(response.headers().contains_key("x-request-id"));
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], status);
        assert_eq!(problem["type"], "about:blank");
        assert!(problem["title"].is_string() && problem["detail"].is_string());
    }
}

/// Each bad start-up input stops `keyward serve` with exit code 2 and one clear line,
/// never a panic or a backtrace.
#[test]
fn bad_configuration_stops_the_service_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let malformed = dir.path().join("malformed.toml");
    std::fs::write(&malformed, "listen = [1, 2\n").unwrap();
    let unknown_key = dir.path().join("unknown.toml");
    std::fs::write(&unknown_key, "databse_url = \"sqlite://x.db\"\n").unwrap();
    let missing = dir.path().join("missing.toml");
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--config", malformed.to_str().unwrap(), "serve"],
            vec![],
            "is not valid",
        ),
        (
            vec!["--config", unknown_key.to_str().unwrap(), "serve"],
            vec![],
            "unknown field `databse_url`",
        ),
        (
            vec!["--config", missing.to_str().unwrap(), "serve"],
            vec![],
            "cannot read config file",
        ),
        (
            vec!["serve"],
            vec![("KEYWARD_DATABASE_URL", "mysql://db/keyward")],
            "invalid database_url",
        ),
        (
            vec!["serve"],
            vec![("KEYWARD_DATABASE_URL", "postgres://u@host:notaport/db")],
            "malformed Postgres URL",
        ),
        (
            vec!["serve"],
            vec![("KEYWARD_DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db")],
            "Connection refused",
        ),
        (
            vec!["serve"],
            vec![("KEYWARD_LISTEN", "not-an-address")],
            "invalid listen",
        ),
    ];
    for (args, env, expected) in cases {
        let (code, _, stderr) = run_keyward(&args, &env);
        assert_eq!(code, 2, "{args:?} {env:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?} {env:?}: expected {expected:?} in {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("hunter2"),
            "a database password reached the error message: {stderr}"
        );
    }
}

#[test]
fn replay_rebuilds_up_to_a_position_or_a_moment() {
    let db = TestDb::sqlite();
    let env = [("KEYWARD_DATABASE_URL", db.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, _, stderr) = run_keyward(&["bench", "seed", "--database-url", &db.url(), "--events", "300"], &[]);
    assert_eq!(code, 0, "{stderr}");

    let (code, stdout, _) = run_keyward(&["replay"], &env);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("replayed 300 events in "), "{stdout}");
    assert!(stdout.contains("  events: 300\n"), "{stdout}");
    assert!(stdout.contains("  event types: 3\n"), "{stdout}");
    assert!(stdout.contains("  undecodable events: 0\n"), "{stdout}");

    let (code, stdout, _) = run_keyward(&["replay", "--position", "120"], &env);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("replayed 120 events in "), "{stdout}");
    assert!(stdout.contains("up to position 120 as of "), "{stdout}");

    let (code, stdout, _) = run_keyward(&["replay", "--until", "2000-01-01T00:00:00Z"], &env);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("replayed 0 events in "), "{stdout}");

    let (code, stdout, _) = run_keyward(&["replay", "--until", "2999-01-01T00:00:00+02:00"], &env);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("replayed 300 events in "), "{stdout}");

    let (code, _, stderr) = run_keyward(&["replay", "--until", "yesterday"], &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("not an RFC 3339 time"), "{stderr}");
}
