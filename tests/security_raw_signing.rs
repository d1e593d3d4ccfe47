//! Raw digest signing (`eip712_digest`) signs whatever 32 bytes it is given, a
//! transaction's signing hash included: an attacker on a live keyward sent 5 ETH to an
//! address off the agent's allowlist, above its `tx_max_value`, and the agent's usage did
//! not move (issue "Security"). Turning it on hands the agent its keys, so a human must
//! re-enter their password (X-Auth-Confirm) and acknowledge it in words, and the audit
//! trail records it as such. Typed data and personal messages cannot carry a transaction:
//! their digests are prefixed (EIP-712's 0x1901, EIP-191's "\x19Ethereum Signed Message").

mod common;

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{B256, TxKind, U256};
use common::chain::{self, ETH};
use common::world::{
    PASSWORD, RAW_SIGNING_ACKNOWLEDGEMENT, World, audit_trail, change_agent, change_agent_confirming, sign_intent,
    signer_of, world,
};
use common::{Api, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

const NO_ACKNOWLEDGEMENT: &str = "raw_signing_acknowledgement must be \"RAW SIGNING HANDS OVER THE KEY\" to turn \
                                  raw_signing_enabled on: an agent that has any digest signed can sign any \
                                  transaction with its keys, outside every guardrail";

const NO_PASSWORD: &str = "re-enter your account password in the X-Auth-Confirm header";

fn problem(status: StatusCode, detail: &str) -> Value {
    json!({
        "type": "about:blank", "title": status.canonical_reason().unwrap(), "status": status.as_u16(),
        "detail": detail,
    })
}

/// The signing hash of an EIP-1559 transfer of `value` wei from the world's key (its
/// nonce `nonce`) to `to` on anvil: what a wallet signs to send it.
fn transfer_signing_hash(to: &str, value: u128, nonce: u64) -> B256 {
    TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to.parse().unwrap()),
        value: U256::from(value),
        ..TxEip1559::default()
    }
    .signature_hash()
}

/// The human creates an agent, with `X-Auth-Confirm: password` if given.
async fn create_agent(api: &Api, human: &str, body: Value, password: Option<&str>) -> (StatusCode, Value) {
    let headers: Vec<(&str, &str)> = password.map(|p| ("X-Auth-Confirm", p)).into_iter().collect();
    api.call_with_headers("POST", "/v1/agents", Some(human), Some(body), &headers)
        .await
}

async fn agent_shown(world: &World) -> Value {
    let path = format!("/v1/agents/{}", world.agent_id);
    let (status, agent) = world.api.call("GET", &path, Some(&world.human), None).await;
    assert_eq!(status, StatusCode::OK, "{agent}");
    agent
}

#[tokio::test]
async fn a_stolen_session_cannot_turn_raw_signing_on_nor_the_agent_have_a_transfer_signed_as_a_digest() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let limits = json!({"tx_to_allowlist": [world.recipient], "tx_max_value": "1"});
    assert_eq!(change_agent(&world, limits).await.0, StatusCode::OK);
    let acknowledged = json!({"raw_signing_enabled": true, "raw_signing_acknowledgement": RAW_SIGNING_ACKNOWLEDGEMENT});

    // The human's token alone, as whoever stole it has it.
    for body in [
        json!({"raw_signing_enabled": true}),
        json!({"raw_signing_enabled": true, "raw_signing_acknowledgement": "yes"}),
    ] {
        let (status, refused) = change_agent(&world, body).await;
        assert_eq!(
            (status, refused),
            (
                StatusCode::BAD_REQUEST,
                problem(StatusCode::BAD_REQUEST, NO_ACKNOWLEDGEMENT)
            )
        );
    }
    let (status, refused) = change_agent(&world, acknowledged.clone()).await;
    assert_eq!(
        (status, refused),
        (StatusCode::FORBIDDEN, problem(StatusCode::FORBIDDEN, NO_PASSWORD))
    );
    let (status, refused) = change_agent_confirming(&world, acknowledged.clone(), "wrong horse").await;
    assert_eq!(
        (status, refused),
        (StatusCode::FORBIDDEN, problem(StatusCode::FORBIDDEN, NO_PASSWORD))
    );
    // Nor a new agent with raw signing on.
    let blind = json!({"name": "blind", "intents_api_enabled": true, "raw_signing_enabled": true});
    let (status, refused) = create_agent(&world.api, &world.human, blind.clone(), None).await;
    assert_eq!(
        (status, refused),
        (
            StatusCode::BAD_REQUEST,
            problem(StatusCode::BAD_REQUEST, NO_ACKNOWLEDGEMENT)
        )
    );
    let mut blind = blind;
    blind["raw_signing_acknowledgement"] = json!(RAW_SIGNING_ACKNOWLEDGEMENT);
    let (status, refused) = create_agent(&world.api, &world.human, blind, None).await;
    assert_eq!(
        (status, refused),
        (StatusCode::FORBIDDEN, problem(StatusCode::FORBIDDEN, NO_PASSWORD))
    );

    assert_eq!(agent_shown(&world).await["raw_signing_enabled"], false);
    let (_, agents) = world.api.call("GET", "/v1/agents", Some(&world.human), None).await;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1, "no agent was created");
    assert_eq!(audit_trail(&world, "agent.enable_raw_signing").await["count"], 0);
    let failures = audit_trail(&world, "auth.failure").await;
    assert_eq!(
        failures["count"], 3,
        "each missing or wrong password is audited: {failures}"
    );
    for failure in failures["events"].as_array().unwrap() {
        assert_eq!(
            failure["details"]["reason"],
            "raw signing: X-Auth-Confirm missing or wrong"
        );
    }

    // The finding's transfer: 5 ETH, off the allowlist, over the per-transaction cap.
    let stranger = chain::fresh_address();
    let hash = transfer_signing_hash(&stranger, 5 * ETH, 0);
    let digest = json!({"intent_type": "eip712_digest", "chain": "anvil", "hash": hash.to_string()});
    let (status, refused) = sign_intent(&world, digest).await;
    assert_eq!(
        (status, refused),
        (
            StatusCode::FORBIDDEN,
            problem(
                StatusCode::FORBIDDEN,
                "raw_signing_enabled: signing a precomputed digest (blind signing) is not enabled for this agent"
            )
        )
    );
    assert_eq!(
        audit_trail(&world, "message.sign").await["count"],
        0,
        "nothing was signed"
    );
    assert_eq!(audit_trail(&world, "message.refuse").await["count"], 1);
    assert_eq!(chain::nonce(&world.signer).await, 0);
    assert_eq!(chain::balance(&stranger).await, 0);
}

#[tokio::test]
async fn with_the_password_and_the_acknowledgement_raw_signing_is_on_and_audited_as_such() {
    let world = world(TestDb::sqlite(), json!({}), &[]).await;
    let (_, me) = world.api.call("GET", "/v1/auth/me", Some(&world.human), None).await;
    let acknowledged = json!({"raw_signing_enabled": true, "raw_signing_acknowledgement": RAW_SIGNING_ACKNOWLEDGEMENT});
    let (status, shown) = change_agent_confirming(&world, acknowledged.clone(), PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["raw_signing_enabled"], true);
    let trail = audit_trail(&world, "agent.enable_raw_signing").await;
    assert_eq!(trail["count"], 1, "{trail}");
    let enabled = &trail["events"][0];
    assert_eq!(
        (
            &enabled["resource_type"],
            &enabled["resource_id"],
            &enabled["actor_id"],
            &enabled["details"]
        ),
        (
            &json!("agent"),
            &json!(world.agent_id),
            &me["id"],
            &json!({"by": me["id"]})
        )
    );
    assert_eq!(
        audit_trail(&world, "agent.update").await["count"],
        1,
        "the update is recorded too"
    );

    // Once on, a digest is signed as it is, whatever it commits to: what the human
    // acknowledged.
    let hash = transfer_signing_hash(&chain::fresh_address(), ETH, 0);
    let digest = json!({"intent_type": "eip712_digest", "chain": "anvil", "hash": hash.to_string()});
    let (status, signed) = sign_intent(&world, digest).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signer_of(&signed["signature"], &json!(hash.to_string())), world.signer);

    // Keeping it on, or turning it off, asks nothing; turning it on again asks again.
    let (status, _) = change_agent(&world, json!({"raw_signing_enabled": true, "name": "still blind"})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, shown) = change_agent(&world, json!({"raw_signing_enabled": false})).await;
    assert_eq!((status, &shown["raw_signing_enabled"]), (StatusCode::OK, &json!(false)));
    let (status, refused) = change_agent(&world, json!({"raw_signing_enabled": true})).await;
    assert_eq!(
        (status, refused),
        (
            StatusCode::BAD_REQUEST,
            problem(StatusCode::BAD_REQUEST, NO_ACKNOWLEDGEMENT)
        )
    );
    assert_eq!(audit_trail(&world, "agent.enable_raw_signing").await["count"], 1);

    // An agent created with it on, the same way.
    let mut blind = acknowledged;
    blind["name"] = json!("blind");
    let (status, created) = create_agent(&world.api, &world.human, blind, Some(PASSWORD)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["agent"]["raw_signing_enabled"], true);
    let trail = audit_trail(&world, "agent.enable_raw_signing").await;
    assert_eq!(trail["count"], 2);
    assert_eq!(
        trail["events"][0]["resource_id"], created["agent"]["id"],
        "newest first"
    );
}

#[tokio::test]
async fn typed_data_and_personal_messages_cannot_smuggle_a_transactions_signing_hash() {
    let world = world(
        TestDb::sqlite(),
        json!({"message_signing_enabled": true, "eip712_default_policy": "allow"}),
        &[],
    )
    .await;
    let hash = transfer_signing_hash(&chain::fresh_address(), 5 * ETH, 0);
    let typed = json!({
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"}],
            "Order": [{"name": "hash", "type": "bytes32"}]
        },
        "primaryType": "Order",
        "domain": {"name": "Smuggler", "chainId": 31337},
        "message": {"hash": hash.to_string()}
    });
    let (status, signed) = sign_intent(
        &world,
        json!({"intent_type": "typed_data", "chain": "anvil", "typed_data": typed}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_ne!(signed["typed_data_hash"], json!(hash.to_string()));
    assert_eq!(
        signer_of(&signed["signature"], &signed["typed_data_hash"]),
        world.signer
    );
    assert_ne!(
        signer_of(&signed["signature"], &json!(hash.to_string())),
        world.signer,
        "on chain, the transaction would come from another account"
    );

    let personal = json!({"intent_type": "personal_sign", "chain": "anvil", "message": hash.to_string()});
    let (status, signed) = sign_intent(&world, personal).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_ne!(signed["message_hash"], json!(hash.to_string()));
    assert_ne!(signer_of(&signed["signature"], &json!(hash.to_string())), world.signer);
}
