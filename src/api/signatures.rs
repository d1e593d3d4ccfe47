//! POST /v1/agents/{agent_id}/sign, the unified signing intent. A transaction is signed
//! as POST .../transactions/sign signs it: same guardrails, reservations and nonces. A
//! message, typed data or a digest is judged against the agent's signing settings (each
//! kind off until a human turns it on), recorded, and only then signed.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use domain::events::{Event, MessageRefused, MessageSigned};
use domain::transaction::intents_activity;
use domain::{AgentId, Metadata};
use intents::Violation;
use intents::hex;
use intents::message::{Message, sign_digest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{Body, PathParams};
use super::intent::{Intent, check_agent, key_for};
use super::problem::ApiError;
use super::session::{AgentSession, Caller};
use super::transactions::{SubmitRequest, sign_only};
use crate::app::AppState;
use crate::app::chains::enabled_chain;

#[derive(Deserialize)]
pub struct SignIntentRequest {
    intent_type: String,
    chain: String,
    signing_key_path: Option<String>,
    /// personal_sign: the message's bytes, hex.
    message: Option<String>,
    typed_data: Option<Value>,
    /// eip712_digest: 0x and 32 bytes of hex.
    hash: Option<String>,
    #[serde(flatten)]
    transaction: TransactionFields,
}

/// What a `transaction` intent gives: POST .../transactions/sign's fields, and the
/// EIP-2718 type with what only the types keyward does not build carry.
#[derive(Deserialize)]
struct TransactionFields {
    tx_type: Option<u8>,
    to: Option<String>,
    /// ETH, a decimal string, as for POST .../transactions.
    value: Option<String>,
    data: Option<String>,
    nonce: Option<u64>,
    gas_limit: Option<u64>,
    gas_price: Option<String>,
    max_fee_per_gas: Option<String>,
    max_priority_fee_per_gas: Option<String>,
    access_list: Option<Vec<Value>>,
    max_fee_per_blob_gas: Option<String>,
    blob_versioned_hashes: Option<Vec<String>>,
    authorization_list: Option<Vec<Value>>,
}

#[derive(Serialize)]
pub struct SignIntentResponse {
    intent_type: &'static str,
    chain: String,
    from: String,
    signature: Option<String>,
    signed_tx: Option<String>,
    tx_hash: Option<String>,
    message_hash: Option<String>,
    typed_data_hash: Option<String>,
    tx_type: Option<u8>,
}

pub async fn sign(
    State(state): State<AppState>,
    session: AgentSession,
    PathParams(agent_id): PathParams<AgentId>,
    headers: HeaderMap,
    Body(request): Body<SignIntentRequest>,
) -> Result<Json<SignIntentResponse>, ApiError> {
    check_agent(&session, agent_id)?;
    if request.intent_type == "transaction" {
        return sign_transaction(&state, session, agent_id, &headers, request).await;
    }
    sign_message(&state, session, agent_id, request).await
}

/// The message, typed data or digest a request asks to have signed.
fn message_of(request: SignIntentRequest) -> Result<Message, ApiError> {
    let intent_type = request.intent_type.as_str();
    match intent_type {
        "personal_sign" => Message::personal(&required(request.message, "message", intent_type)?),
        "typed_data" => Message::typed(required(request.typed_data, "typed_data", intent_type)?),
        "eip712_digest" => Message::digest(&required(request.hash, "hash", intent_type)?),
        other => {
            return Err(ApiError::BadRequest(format!(
                "intent_type {other:?} is not one of personal_sign, typed_data, eip712_digest, transaction"
            )));
        }
    }
    .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Judged against the agent's settings before the key is read (a refusal costs no
/// decryption), recorded, and only then signed.
async fn sign_message(
    state: &AppState,
    session: AgentSession,
    agent_id: AgentId,
    request: SignIntentRequest,
) -> Result<Json<SignIntentResponse>, ApiError> {
    let chain = enabled_chain(state, &request.chain)
        .ok_or_else(|| ApiError::BadRequest(format!("chain: no enabled chain named {:?}", request.chain)))?;
    let signing_key_path = request.signing_key_path.clone();
    let message = message_of(request)?;
    let judged = message.check(&session.agent.settings, chain.settings.chain_id);
    let caller = Caller::Agent(session);
    let metadata = caller.metadata();
    if let Err(violation) = judged {
        let refused = refusal(agent_id, &chain.settings.name, &message, &violation);
        record(state, agent_id, refused, &metadata).await?;
        return Err(ApiError::Forbidden(violation.to_string()));
    }
    let hash = message.hash().map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (key, key_path) = key_for(state, &caller, &chain, signing_key_path.as_deref()).await?;
    let from = format!("0x{}", hex::encode(key.address()));
    let signed = MessageSigned {
        agent_id,
        chain: chain.settings.name.clone(),
        chain_id: chain.settings.chain_id,
        intent_type: message.intent_type().to_owned(),
        from: from.clone(),
        hash: hash.to_string(),
        signing_key_path: key_path,
    };
    // The key's use is in the log before its signature leaves.
    record(state, agent_id, signed, &metadata).await?;
    let signature = sign_digest(&key, hash).map_err(ApiError::internal)?;
    let hash = Some(hash.to_string());
    let typed = matches!(message, Message::Typed(_));
    Ok(Json(SignIntentResponse {
        intent_type: message.intent_type(),
        chain: chain.settings.name,
        from,
        signature: Some(format!("0x{}", hex::encode(signature))),
        signed_tx: None,
        tx_hash: None,
        message_hash: if typed { None } else { hash.clone() },
        typed_data_hash: if typed { hash } else { None },
        tx_type: None,
    }))
}

fn required<T>(field: Option<T>, name: &str, intent_type: &str) -> Result<T, ApiError> {
    field.ok_or_else(|| ApiError::BadRequest(format!("{name} is required for intent_type {intent_type:?}")))
}

fn refusal(agent_id: AgentId, chain: &str, message: &Message, violation: &Violation) -> MessageRefused {
    MessageRefused {
        agent_id,
        chain: chain.to_owned(),
        intent_type: message.intent_type().to_owned(),
        rule: violation.rule.to_owned(),
        detail: violation.detail.clone(),
    }
}

/// Appends `event` to the agent's intents activity, where audit records that reserve
/// nothing go.
async fn record(
    state: &AppState,
    agent_id: AgentId,
    event: impl Into<Event>,
    metadata: &Metadata,
) -> Result<(), ApiError> {
    let change = intents_activity(agent_id, vec![event.into()]);
    state.commands.execute(vec![change], metadata).await?;
    Ok(())
}

/// A `transaction` intent, signed as POST .../transactions/sign signs it. keyward builds
/// legacy (type 0) and EIP-1559 (type 2) transactions; the type follows the fees given
/// when none is named.
async fn sign_transaction(
    state: &AppState,
    session: AgentSession,
    agent_id: AgentId,
    headers: &HeaderMap,
    request: SignIntentRequest,
) -> Result<Json<SignIntentResponse>, ApiError> {
    let fields = request.transaction;
    let unsupported = |what: &str| {
        ApiError::BadRequest(format!(
            "{what} is not supported: keyward signs EIP-2718 types 0 (legacy) and 2 (EIP-1559)"
        ))
    };
    if fields.access_list.is_some_and(|list| !list.is_empty()) {
        return Err(unsupported("access_list"));
    }
    if fields.authorization_list.is_some_and(|list| !list.is_empty()) {
        return Err(unsupported("authorization_list (EIP-7702)"));
    }
    if fields.max_fee_per_blob_gas.is_some() || fields.blob_versioned_hashes.is_some_and(|hashes| !hashes.is_empty()) {
        return Err(unsupported("a blob transaction (EIP-4844)"));
    }
    match (fields.tx_type, &fields.gas_price) {
        (None | Some(0), Some(_)) | (None | Some(2), None) => {}
        (Some(0), None) => return Err(ApiError::BadRequest("tx_type 0 (legacy) needs gas_price".into())),
        (Some(2), Some(_)) => {
            return Err(ApiError::BadRequest(
                "tx_type 2 (EIP-1559) takes max_fee_per_gas and max_priority_fee_per_gas, not gas_price".into(),
            ));
        }
        (Some(other), _) => return Err(unsupported(&format!("tx_type {other}"))),
    }
    let to = required(fields.to, "to", "transaction")?;
    let submit = SubmitRequest {
        intent: Intent {
            chain: request.chain,
            to,
            value: fields.value.unwrap_or_else(|| "0".into()),
            data: fields.data,
            signing_key_path: request.signing_key_path,
        },
        nonce: fields.nonce,
        gas_limit: fields.gas_limit,
        gas_price: fields.gas_price,
        max_fee_per_gas: fields.max_fee_per_gas,
        max_priority_fee_per_gas: fields.max_priority_fee_per_gas,
        simulate_first: false,
    };
    let (_, record) = sign_only(state, session, agent_id, headers, submit).await?;
    // An EIP-2718 typed envelope starts with its type byte; a legacy one is an RLP list.
    let tx_type = if record.signed_tx.starts_with("0x02") { 2 } else { 0 };
    Ok(Json(SignIntentResponse {
        intent_type: "transaction",
        chain: record.chain,
        from: record.from,
        signature: None,
        signed_tx: Some(record.signed_tx),
        tx_hash: Some(record.tx_hash),
        message_hash: None,
        typed_data_hash: None,
        tx_type: Some(tx_type),
    }))
}
