//! Deleting an account, in process: the application layer's use case called directly, with
//! no server spawned. The human, their vaults, secrets and agent are set up through the
//! JSON API's router, also in process.

mod common;

use axum::http::Method;
use chrono::Utc;
use common::TestDb;
use common::in_process::InProcess;
use domain::change::DomainError;
use domain::secret::{Sealed, Secret};
use domain::{AgentId, Metadata, SecretPath, UserId, VaultId};
use keyward::app::AppError;
use keyward::app::account::delete_account;
use keyward::app::values::open;
use serde_json::json;

/// A human with two vaults holding a secret each, and an agent: the human's token and id,
/// the agent, and each secret as the read models hold it with its sealed value.
async fn account(keyward: &InProcess) -> (String, UserId, AgentId, Vec<(Secret, Sealed)>) {
    let human = keyward.human("ada@example.com").await;
    let me = keyward
        .call(Method::GET, "/v1/auth/me", Some(&human), json!(null))
        .await;
    let user = UserId(me["id"].as_str().unwrap().parse().unwrap());
    let mut secrets = Vec::new();
    for name in ["prod", "staging"] {
        let vault = keyward
            .call(Method::POST, "/v1/vaults", Some(&human), json!({"name": name}))
            .await;
        let vault = VaultId(vault["id"].as_str().unwrap().parse().unwrap());
        keyward
            .call(
                Method::PUT,
                &format!("/v1/vaults/{}/secrets/db/password", vault.0),
                Some(&human),
                json!({"value": format!("{name}-s3cret"), "type": "password"}),
            )
            .await;
        let path = SecretPath::parse("db/password").unwrap();
        secrets.push(keyward.state.projector.read(|models| {
            let secret = models.secrets.secret(vault, &path).unwrap().clone();
            let sealed = models.secrets.value(vault, &path, secret.version).unwrap().clone();
            (secret, sealed)
        }));
    }
    let agent = keyward
        .call(Method::POST, "/v1/agents", Some(&human), json!({"name": "bot"}))
        .await;
    let agent = AgentId(agent["agent"]["id"].as_str().unwrap().parse().unwrap());
    (human, user, agent, secrets)
}

/// Deleting an account shreds every vault's keys before the log says they are deleted,
/// so no value opens again; the user and their vaults are gone and their agent cannot
/// sign in. A second deletion finds no account.
#[tokio::test]
async fn deleting_an_account_shreds_every_vault_and_leaves_nothing_to_open() {
    let db = TestDb::sqlite();
    let keyward = InProcess::start(&db).await;
    let (_, user, agent, secrets) = account(&keyward).await;
    for (secret, sealed) in &secrets {
        let plaintext = open(&keyward.state, secret, secret.version, sealed).await.unwrap();
        assert!(plaintext.ends_with(b"-s3cret"), "the values open before");
    }

    let metadata = Metadata::system(Utc::now());
    delete_account(&keyward.state, user, Utc::now(), &metadata)
        .await
        .unwrap();

    for (secret, sealed) in &secrets {
        match open(&keyward.state, secret, secret.version, sealed).await {
            Err(AppError::Domain(DomainError::NotFound(_))) => {}
            Err(other) => panic!("{}: another failure: {other}", secret.path),
            Ok(_) => panic!("{}: opened after the account was deleted", secret.path),
        }
    }
    keyward.state.projector.read(|models| {
        assert!(models.directory.user(user).is_none());
        for (secret, _) in &secrets {
            assert!(models.secrets.secret(secret.vault_id, &secret.path).is_none());
        }
        assert!(!models.directory.agent(agent).unwrap().can_authenticate(Utc::now()));
    });
    assert!(matches!(
        delete_account(&keyward.state, user, Utc::now(), &metadata).await,
        Err(AppError::Domain(DomainError::NotFound("user")))
    ));
}
