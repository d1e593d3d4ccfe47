//! keyward's OpenAPI document (GET /v1/openapi.json) against the server itself: every
//! operation it lists is routed, and schemathesis, fuzzing them all, finds no server error and
//! no error that is not RFC 7807 problem+json.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process::run_bounded;
use common::{Api, Server, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

const EMAIL: &str = "fuzz@example.com";
const PASSWORD: &str = "correct horse battery";
/// The run takes about 20 s on 2 cores; past this it is killed and the test fails.
const FUZZ_TIME_LIMIT: Duration = Duration::from_secs(240);

/// (method, path) of every operation in the served document.
async fn documented_operations(api: &Api) -> Vec<(String, String)> {
    let response = api.client.get(api.server.url("/v1/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["info"]["title"], "keyward");
    assert_eq!(document["servers"], json!([{"url": "/"}]));
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

async fn login(api: &Api) -> String {
    let (status, body) = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(json!({"email": EMAIL, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let token = api.signup(EMAIL, PASSWORD).await;
    let operations = documented_operations(&api).await;
    assert!(operations.len() >= 30, "{operations:?}");
    for own in [
        ("GET", "/v1/health"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/vaults"),
    ] {
        assert!(
            operations.contains(&(own.0.to_owned(), own.1.to_owned())),
            "{own:?} is not documented"
        );
    }

    let dummy_id = "0190e1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b";
    let mut unrouted = Vec::new();
    for (method, template) in &operations {
        let mut path = template.clone();
        while let Some(start) = path.find('{') {
            let end = start + path[start..].find('}').unwrap();
            let value = if &path[start..=end] == "{path}" {
                "db/password"
            } else {
                dummy_id
            };
            path.replace_range(start..=end, value);
        }
        // Logging out revokes the token it is called with: that one call gets its own.
        let token = if (method.as_str(), template.as_str()) == ("DELETE", "/v1/auth/token") {
            login(&api).await
        } else {
            token.clone()
        };
        let body = matches!(method.as_str(), "POST" | "PUT" | "PATCH").then(|| json!({}));
        // `call` also asserts that every error is problem+json.
        let (status, answer) = api.call(method, &path, Some(&token), body).await;
        let router_fallback = status == StatusCode::NOT_FOUND && answer["detail"] == "no such resource";
        if router_fallback || status == StatusCode::METHOD_NOT_ALLOWED {
            unrouted.push(format!("{method} {template} ({method} {path} -> {status} {answer})"));
        }
    }
    assert!(
        unrouted.is_empty(),
        "documented in /v1/openapi.json but not routed:\n{}",
        unrouted.join("\n")
    );

    // And the router's fallbacks are what the check above tells apart.
    let (status, answer) = api.call("GET", "/v1/no-such-thing", Some(&token), None).await;
    assert_eq!(
        (status, answer["detail"].as_str()),
        (StatusCode::NOT_FOUND, Some("no such resource"))
    );
    let (status, _) = api.call("PATCH", "/v1/vaults", Some(&token), Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

fn schemathesis() -> String {
    std::env::var("KEYWARD_TEST_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!(
            "KEYWARD_TEST_SCHEMATHESIS is not set: this test fuzzes keyward with schemathesis, which \
             scripts/test installs into .tools/venv. Run it as `scripts/test schemathesis`, or set \
             KEYWARD_TEST_SCHEMATHESIS to a schemathesis executable (4.32.5)."
        )
    })
}

/// Checks: schemathesis's `not_a_server_error` (no 5xx) and `content_type_conformance` (a
/// documented status comes with a documented media type), and `errors_are_problem_json` from
/// tests/fuzz/hooks.py (every 4xx/5xx is problem+json with the response's status). Not
/// `status_code_conformance` nor `response_schema_conformance`: the 1claw document leaves out
/// most 401/400/404s and is looser than keyward's validation, so they flag the spec, not keyward.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_only_problem_json_errors() {
    let schemathesis = schemathesis();
    let db = TestDb::sqlite();
    let data_dir = tempfile::tempdir().unwrap();
    let server_log = tempfile::NamedTempFile::new().unwrap();
    let server = Server::start_with_stderr(
        &[
            ("KEYWARD_DATABASE_URL", &db.url()),
            ("KEYWARD_DATA_DIR", data_dir.path().to_str().unwrap()),
            // The hooks sign each throwaway account up as a client of its own, named in
            // X-Forwarded-For: sign-ups run out per client (docs/security.md, "Sign-up").
            ("KEYWARD_TRUSTED_PROXIES", "127.0.0.1"),
            // The run's anvil, so the operations that ask the node reach it: with no chain
            // configured keyward would ask 127.0.0.1:8545 and rightly answer 502.
            ("KEYWARD_CHAINS", &common::chain::chains_setting(&[])),
        ],
        server_log.reopen().unwrap(),
    )
    .await;
    let api = Api::new(server, data_dir.path().to_owned());
    api.signup(EMAIL, PASSWORD).await;
    let operations = documented_operations(&api).await.len();

    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/hooks.py");
    let work_dir = tempfile::tempdir().unwrap(); // schemathesis and hypothesis may leave files in their cwd
    let mut command = Command::new(&schemathesis);
    command
        .current_dir(work_dir.path())
        .args(["run", &api.server.url("/v1/openapi.json")])
        .args([
            "--checks",
            "not_a_server_error,content_type_conformance,errors_are_problem_json",
        ])
        .args(["--max-examples", "30", "--seed", "20260101", "--workers", "1"])
        .args(["--request-timeout", "10", "--generation-database", "none", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .env("KEYWARD_FUZZ_BASE_URL", &api.server.base_url)
        .env("KEYWARD_FUZZ_EMAIL", EMAIL)
        .env("KEYWARD_FUZZ_PASSWORD", PASSWORD)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "120");
    let (success, output) = run_bounded(command, FUZZ_TIME_LIMIT);
    let server_log = std::fs::read_to_string(server_log.path()).unwrap_or_default();
    assert!(
        success,
        "schemathesis found problems (seed 20260101; reproduce with `scripts/test schemathesis`):\n{output}\n\
         keyward's log:\n{server_log}"
    );
    // All of them but GET /v1/openapi.json, the document schemathesis was loaded from.
    let fuzzed = operations - 1;
    assert!(
        output.contains(&format!("Selected: {fuzzed}/{fuzzed}")) && output.contains(&format!("Tested: {fuzzed}")),
        "schemathesis did not test all {fuzzed} documented operations:\n{output}"
    );
    assert!(
        !server_log.contains("panicked"),
        "keyward panicked under fuzzing:\n{server_log}"
    );
    println!("{output}");
}
