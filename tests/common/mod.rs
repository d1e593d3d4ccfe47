//! Shared set-up for the end-to-end tests: a fresh database per test, on SQLite or on the
//! Postgres server the test script provides.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod browser;
pub mod chain;
pub mod in_process;
pub mod mail;
pub mod process;
pub mod world;

use std::path::PathBuf;

use sqlx::Connection;

/// An event of no aggregate, numbered `n` in its payload: what the tests of the store,
/// the projector and the command runner append.
pub fn test_event(n: u64) -> domain::NewEvent {
    domain::NewEvent::new(
        "test.happened",
        1,
        &serde_json::json!({ "n": n }),
        &domain::Metadata::system(chrono::Utc::now()),
    )
    .expect("encode a test event")
}

/// The Postgres server the tests create their databases on; `scripts/test` exports it.
pub fn postgres_server_url() -> String {
    std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database of the test's own, dropped when the test ends.
pub enum TestDb {
    Sqlite { dir: tempfile::TempDir },
    Postgres { name: String },
}

impl TestDb {
    pub fn sqlite() -> Self {
        TestDb::Sqlite {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub async fn postgres() -> Self {
        let name = format!("keyward_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&postgres_server_url())
            .await
            .expect("the Postgres server of KEYWARD_TEST_POSTGRES_URL is reachable (scripts/test starts one)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        TestDb::Postgres { name }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { dir } => format!("sqlite://{}", self.sqlite_path_in(dir).display()),
            TestDb::Postgres { name } => {
                let mut url = url::Url::parse(&postgres_server_url()).expect("postgres URL");
                url.set_path(name);
                url.to_string()
            }
        }
    }

    /// The SQLite file, for tests that tamper with it.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match self {
            TestDb::Sqlite { dir } => Some(self.sqlite_path_in(dir)),
            TestDb::Postgres { .. } => None,
        }
    }

    fn sqlite_path_in(&self, dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("keyward.db")
    }

    /// Runs one SQL statement on the test database with a plain connection, outside
    /// keyward: how the tamper tests play an attacker with database access.
    pub async fn execute_sql(&self, sql: &str) -> u64 {
        match self {
            TestDb::Sqlite { .. } => {
                let mut connection = sqlx::SqliteConnection::connect(&self.url()).await.expect("open sqlite");
                sqlx::query(sql)
                    .execute(&mut connection)
                    .await
                    .expect("sql")
                    .rows_affected()
            }
            TestDb::Postgres { .. } => {
                let mut connection = sqlx::PgConnection::connect(&self.url()).await.expect("open postgres");
                sqlx::query(sql)
                    .execute(&mut connection)
                    .await
                    .expect("sql")
                    .rows_affected()
            }
        }
    }

    /// Changes the payload of the event at `position` as an attacker with database access
    /// would: `change` gets its JSON and says what to store instead. Stored as JSON text in
    /// both columns, the layout every keyward reads, whether it packs events or not.
    pub async fn tamper_with_payload(&self, position: u64, change: impl FnOnce(&str) -> String) -> u64 {
        let store = keyward::store::open(&self.url()).await.expect("open the store");
        let event = store.read_all(position - 1, 1).await.expect("read").remove(0);
        drop(store);
        let quoted = |text: &str| format!("'{}'", text.replace('\'', "''"));
        self.execute_sql(&format!(
            "UPDATE events SET payload = {}, metadata = {} WHERE position = {position}",
            quoted(&change(&event.payload)),
            quoted(&event.metadata)
        ))
        .await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { name } = self {
            let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            // Drop runs outside any runtime the test may still be tearing down.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&postgres_server_url()).await.ok()?;
                    sqlx::query(&statement).execute(&mut admin).await.ok()
                })
            })
            .join();
        }
    }
}

/// A browser-like client: it keeps cookies and does not follow redirects, so tests see them.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden input `name` in an HTML page.
pub fn hidden_input(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no {name} in {page}")) + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// The keyward binary built for this test run, with a clean KEYWARD_* environment.
/// The seconds a refusal's `Retry-After` header asks the client to wait.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

pub fn keyward() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"));
    for (key, _) in std::env::vars() {
        if key.starts_with("KEYWARD_") {
            command.env_remove(key);
        }
    }
    command.env("KEYWARD_LOG", "warn");
    command
}

/// Runs the binary to completion and returns (exit code, stdout, stderr).
pub fn run_keyward(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = keyward()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run keyward");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `keyward serve` process on a free port, killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub base_url: String,
}

impl Server {
    /// CPU time the server process has used so far, user and system, from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // The fields after the parenthesized command name; utime and stime are 14 and 15.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0
    }

    pub async fn start(env: &[(&str, &str)]) -> Server {
        Self::start_with_stderr(env, std::process::Stdio::inherit()).await
    }

    /// Starts a server whose logs go to `stderr`, for tests that search them.
    pub async fn start_with_stderr(env: &[(&str, &str)], stderr: impl Into<std::process::Stdio>) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = keyward()
            .arg("serve")
            .env("KEYWARD_LISTEN", &listen)
            .envs(env.iter().copied())
            .stderr(stderr)
            .spawn()
            .expect("spawn keyward serve");
        let server = Server {
            child,
            base_url: format!("http://{listen}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = client.get(server.url("/v1/health")).send().await
                && response.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("keyward serve did not answer /v1/health within 10 s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// SIGTERM, as an operator stops the service, and waits for it to finish shutting down.
    pub fn stop(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM");
        let _ = self.child.wait();
    }

    /// `kill -9`: no shutdown, no flush, no destructor in the server.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One service that outlives its servers: servers started one after another (a restart),
/// or side by side (replicas), on the same log and data directory. Its tokens name
/// `public_url` as their issuer, which stays put while the ports change.
pub struct Service {
    settings: Vec<(String, String)>,
    data_dir: tempfile::TempDir,
}

impl Service {
    /// The service on `db`, with more settings in `more`.
    pub fn new(db: &TestDb, more: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut settings = vec![
            ("KEYWARD_DATABASE_URL".to_owned(), db.url()),
            (
                "KEYWARD_DATA_DIR".to_owned(),
                data_dir.path().to_str().unwrap().to_owned(),
            ),
            ("KEYWARD_PUBLIC_URL".to_owned(), "http://keyward.test".to_owned()),
        ];
        settings.extend(more.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        Self { settings, data_dir }
    }

    /// A new server of the service, and a client of it.
    pub async fn start(&self) -> Api {
        let env: Vec<(&str, &str)> = self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Api::new(Server::start(&env).await, self.data_dir.path().to_owned())
    }
}

/// An HTTP client of one server, asserting that every error it sees is problem+json.
pub struct Api {
    pub client: reqwest::Client,
    pub server: Server,
    /// The server's data directory; without an SMTP server its emails land in `outbox/`.
    pub data_dir: PathBuf,
}

impl Api {
    /// A server of its own on `db`.
    pub async fn start(db: &TestDb) -> Self {
        Self::start_with(db, &[]).await
    }

    /// A server of its own on `db`, with more settings in `env`.
    pub async fn start_with(db: &TestDb, env: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().unwrap().keep();
        let mut settings = vec![
            ("KEYWARD_DATABASE_URL", db.url()),
            ("KEYWARD_DATA_DIR", data_dir.to_str().unwrap().to_owned()),
        ];
        settings.extend(env.iter().map(|(key, value)| (*key, (*value).to_owned())));
        let settings: Vec<(&str, &str)> = settings.iter().map(|(key, value)| (*key, value.as_str())).collect();
        Self::new(Server::start(&settings).await, data_dir)
    }

    /// A client of `server`, which keeps its data in `data_dir`.
    pub fn new(server: Server, data_dir: PathBuf) -> Self {
        Self {
            client: reqwest::Client::new(),
            server,
            data_dir,
        }
    }

    /// The server's mail outbox, where emails go without an SMTP server.
    pub fn outbox(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.call_with_headers(method, path, token, body, &[]).await
    }

    /// [`Api::call`] with more request headers.
    pub async fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = self.client.request(method.parse().unwrap(), self.server.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let is_problem = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        if status.is_client_error() || status.is_server_error() {
            assert!(
                is_problem,
                "{method} {path}: error {status} is not problem+json: {text}"
            );
            assert_eq!(value["status"], status.as_u16(), "{text}");
        }
        (status, value)
    }

    /// A browser-like client signed in through the login form: it holds the session
    /// cookie and does not follow redirects, so tests see them.
    pub async fn signed_in_browser(&self, email: &str, password: &str) -> reqwest::Client {
        let client = browser();
        self.sign_in_through_form(&client, email, password).await;
        client
    }

    /// Signs in through the login form, as [`Api::signed_in_browser`] does: the token the
    /// session cookie holds, for tests that present it elsewhere.
    pub async fn page_session_token(&self, email: &str, password: &str) -> String {
        use reqwest::cookie::CookieStore;
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        self.sign_in_through_form(&client, email, password).await;
        let url = self.server.url("/").parse().unwrap();
        let cookies = jar.cookies(&url).expect("the sign-in set a cookie");
        cookies
            .to_str()
            .unwrap()
            .split(';')
            .find_map(|pair| pair.trim().strip_prefix("keyward_session="))
            .expect("a keyward_session cookie")
            .to_owned()
    }

    async fn sign_in_through_form(&self, client: &reqwest::Client, email: &str, password: &str) {
        let csrf = self.form_token(client, "/login").await;
        let response = client
            .post(self.server.url("/login"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", email),
                ("password", password),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            reqwest::StatusCode::SEE_OTHER,
            "sign-in through the form"
        );
    }

    /// Opens the page at `path` in `browser` and returns the CSRF token its forms carry:
    /// what a form posted from that browser must present (src/web/csrf.rs).
    pub async fn form_token(&self, browser: &reqwest::Client, path: &str) -> String {
        let response = browser.get(self.server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {path}");
        hidden_input(&response.text().await.unwrap(), "csrf")
    }

    /// Exchanges an agent's API key for an access token.
    pub async fn agent_token(&self, api_key: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/v1/auth/agent-token",
                None,
                Some(serde_json::json!({ "api_key": api_key })),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Signs a human up and returns their access token.
    pub async fn signup(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/v1/auth/signup",
                None,
                Some(serde_json::json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Signs up and proves the address with the token mailed to the server's outbox: the
    /// access token of the sign-in the verification starts.
    pub async fn signup_verified(&self, email: &str, password: &str) -> String {
        self.signup(email, password).await;
        let token = self.verification_tokens(email, 1).await.remove(0);
        let (status, body) = self.verify_email(&token).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The tokens of the `count` verification emails to `email` in the outbox, once there.
    pub async fn verification_tokens(&self, email: &str, count: usize) -> Vec<String> {
        mail::wait_for_count(&self.outbox(), email, "Confirm your email", count)
            .await
            .iter()
            .map(|mail| {
                format!(
                    "ev_{}",
                    mail.line_after("ev_").expect("the token is on a line of its own")
                )
            })
            .collect()
    }

    pub async fn verify_email(&self, token: &str) -> (reqwest::StatusCode, serde_json::Value) {
        self.call(
            "POST",
            "/v1/auth/verify-email",
            None,
            Some(serde_json::json!({ "token": token })),
        )
        .await
    }
}
