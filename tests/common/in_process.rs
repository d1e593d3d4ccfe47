//! keyward's services in process, without a server: what the tests of a use case start.
//! Set-up goes through the router, also in process.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use keyward::app::AppState;
use keyward::config::Config;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::TestDb;

/// A process's services on a database of its own, and its HTTP surface in process.
pub struct InProcess {
    pub state: AppState,
    router: Router,
    _data_dir: tempfile::TempDir,
}

impl InProcess {
    pub async fn start(db: &TestDb) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let env = HashMap::from([
            ("KEYWARD_DATABASE_URL", db.url()),
            ("KEYWARD_DATA_DIR", data_dir.path().display().to_string()),
        ]);
        let config = Config::load_with(None, |key| env.get(key).cloned()).unwrap();
        let store = keyward::store::open(&config.database_url).await.unwrap();
        let state = AppState::start(config, store).await.unwrap();
        let router = keyward::router::router(state.clone());
        Self {
            state,
            router,
            _data_dir: data_dir,
        }
    }

    /// One request through the router, as from 127.0.0.1; its JSON answer, which must be a
    /// success.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Value) -> Value {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut request = request.body(Body::from(body.to_string())).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    /// A new human's access token.
    pub async fn human(&self, email: &str) -> String {
        let signup = json!({"email": email, "password": "correct horse battery staple"});
        let human = self.call(Method::POST, "/v1/auth/signup", None, signup).await;
        human["access_token"].as_str().unwrap().to_owned()
    }
}
