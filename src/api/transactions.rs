//! The Intents proxy over HTTP: an agent submits a transaction; keyward checks the agent's
//! guardrails, reserves value and nonce on the agent's stream, signs with a key the agent
//! never sees, and broadcasts.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use chrono::{DateTime, Utc};
use domain::AgentId;
use domain::transaction::intents_activity;
use domain::transaction::{TransactionRecord, TxStatus};
use intents::submission::{self, Ask, InTurn, Refusal, Request, Submission};
use intents::{Call, Fee, U256};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::agents::agent_or_its_humans;
use super::audit::index_caught_up;
use super::extract::{Body, PathParams, QueryParams};
use super::intent::{Intent, Prepared, check_agent, parse_intent, with_key};
use super::page::Page;
use super::problem::ApiError;
use super::session::{AgentSession, Caller};
use super::simulations::{SimulationStatus, simulate};
use super::transaction_log;
use crate::app::AppState;
use crate::app::broadcasts::Delivery;
use crate::app::reservations::{self, Reserved, Ticket};

/// A plain transfer's gas; calls are estimated by the node.
const TRANSFER_GAS: u64 = 21_000;
const GWEI: u128 = 1_000_000_000;

#[derive(Deserialize)]
pub struct SubmitRequest {
    #[serde(flatten)]
    pub(super) intent: Intent,
    pub(super) nonce: Option<u64>,
    pub(super) gas_limit: Option<u64>,
    /// Wei, decimal strings.
    pub(super) gas_price: Option<String>,
    pub(super) max_fee_per_gas: Option<String>,
    pub(super) max_priority_fee_per_gas: Option<String>,
    #[serde(default)]
    pub(super) simulate_first: bool,
}

#[derive(Serialize)]
pub struct TransactionResponse {
    id: Uuid,
    agent_id: AgentId,
    chain: String,
    chain_id: u64,
    from: String,
    to: String,
    value_wei: String,
    nonce: u64,
    status: TxStatus,
    tx_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_tx: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    created_at: DateTime<Utc>,
    signed_at: DateTime<Utc>,
}

impl TransactionResponse {
    fn new(record: &TransactionRecord, include_signed_tx: bool) -> Self {
        Self {
            id: record.id,
            agent_id: record.agent_id,
            chain: record.chain.clone(),
            chain_id: record.chain_id,
            from: record.from.clone(),
            to: record.to.clone(),
            value_wei: record.value.as_u128().to_string(),
            nonce: record.nonce,
            status: record.status,
            tx_hash: record.tx_hash.clone(),
            signed_tx: record.signed_bytes().filter(|_| include_signed_tx).map(str::to_owned),
            error_message: record.error.clone(),
            created_at: record.signed_at,
            signed_at: record.signed_at,
        }
    }
}

/// The Idempotency-Key header: up to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()))
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into()))
}

fn parse_wei(field: &str, text: &str) -> Result<u128, ApiError> {
    text.parse::<u128>()
        .map_err(|_| ApiError::BadRequest(format!("{field} must be an amount of wei, as a decimal string")))
}

fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Guardrail(violation) => ApiError::Forbidden(violation.to_string()),
        Refusal::Disabled => ApiError::Forbidden(refusal.to_string()),
        Refusal::NonceTaken(_) | Refusal::InFlight => ApiError::Conflict(refusal.to_string()),
        Refusal::IdempotencyKeyReused => ApiError::Unprocessable(refusal.to_string()),
    }
}

fn upstream(error: intents::RpcError) -> ApiError {
    ApiError::BadGateway(error.to_string())
}

/// POST /v1/agents/{agent_id}/transactions
pub async fn submit(
    State(state): State<AppState>,
    session: AgentSession,
    PathParams(agent_id): PathParams<AgentId>,
    headers: HeaderMap,
    Body(request): Body<SubmitRequest>,
) -> Result<(StatusCode, HeaderMap, Json<TransactionResponse>), ApiError> {
    let until = if prefers_async(&headers) {
        Until::Queued
    } else {
        Until::Broadcast
    };
    let (status, record) = sign_and_send(&state, session, agent_id, &headers, request, until).await?;
    // Answered before the node was (not a repeat): the client is told so.
    let mut answer_headers = HeaderMap::new();
    if until == Until::Queued && record.status == TxStatus::Signed {
        answer_headers.insert(PREFERENCE_APPLIED, HeaderValue::from_static(RESPOND_ASYNC));
    }
    Ok((status, answer_headers, Json(TransactionResponse::new(&record, true))))
}

const PREFER: HeaderName = HeaderName::from_static("prefer");
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");
const RESPOND_ASYNC: &str = "respond-async";

/// Whether the request says `Prefer: respond-async` (RFC 7240): preferences are
/// comma-separated, each a token with optional `;` parameters, in any case.
fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all(PREFER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|preference| preference.split(';').next())
        .any(|token| token.trim().eq_ignore_ascii_case(RESPOND_ASYNC))
}

/// How far a submission goes before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Signed, for the agent to broadcast itself (POST .../transactions/sign).
    SignedOnly,
    /// Signed and durably queued for broadcast: the client asked not to wait for the node
    /// (`Prefer: respond-async`). The answer says "signed", as the log does; the outcome
    /// shows on GET, and a transaction queued when keyward stopped is sent when it starts.
    Queued,
    /// The node's answer recorded: "broadcast", or 502 when the node refused.
    Broadcast,
}

#[derive(Serialize)]
pub struct SignedOnlyResponse {
    signed_tx: String,
    tx_hash: String,
    from: String,
    to: String,
    chain: String,
    chain_id: u64,
    nonce: u64,
    value_wei: String,
    status: TxStatus,
}

/// POST /v1/agents/{agent_id}/transactions/sign: signed under the same guardrails and
/// reservations, for the agent to broadcast itself.
pub async fn sign(
    State(state): State<AppState>,
    session: AgentSession,
    PathParams(agent_id): PathParams<AgentId>,
    headers: HeaderMap,
    Body(request): Body<SubmitRequest>,
) -> Result<(StatusCode, Json<SignedOnlyResponse>), ApiError> {
    // 200 whether first or a repeat: the spec answers a signature with 200.
    let (_, record) = sign_only(&state, session, agent_id, &headers, request).await?;
    Ok((
        StatusCode::OK,
        Json(SignedOnlyResponse {
            signed_tx: record.signed_tx,
            tx_hash: record.tx_hash,
            from: record.from,
            to: record.to,
            chain: record.chain,
            chain_id: record.chain_id,
            nonce: record.nonce,
            value_wei: record.value.as_u128().to_string(),
            status: record.status,
        }),
    ))
}

/// Signs under the agent's guardrails and reservations, for the agent to broadcast: the
/// transaction as recorded, with 201, or 200 for a repeat of an Idempotency-Key.
pub(super) async fn sign_only(
    state: &AppState,
    session: AgentSession,
    agent_id: AgentId,
    headers: &HeaderMap,
    request: SubmitRequest,
) -> Result<(StatusCode, TransactionRecord), ApiError> {
    sign_and_send(state, session, agent_id, headers, request, Until::SignedOnly).await
}

/// Decides, signs and (unless sign-only) broadcasts, answering as far as `until` says; the
/// transaction as recorded, with 201, or 200 for a repeat of an Idempotency-Key.
async fn sign_and_send(
    state: &AppState,
    session: AgentSession,
    agent_id: AgentId,
    headers: &HeaderMap,
    request: SubmitRequest,
    until: Until,
) -> Result<(StatusCode, TransactionRecord), ApiError> {
    let idempotency_key = idempotency_key(headers)?;
    check_agent(&session, agent_id)?;
    let now = session.context.now;
    let caller = Caller::Agent(session);
    let parsed = parse_intent(state, &request.intent)?;
    let request_digest = Request {
        sign_only: until == Until::SignedOnly,
        chain: &parsed.chain.settings.name,
        chain_id: parsed.chain.settings.chain_id,
        to: parsed.to,
        value: parsed.value,
        data: &parsed.data,
        signing_key_path: request.intent.signing_key_path.as_deref(),
        nonce: request.nonce,
        gas_limit: request.gas_limit,
        gas_price: request.gas_price.as_deref(),
        max_fee_per_gas: request.max_fee_per_gas.as_deref(),
        max_priority_fee_per_gas: request.max_priority_fee_per_gas.as_deref(),
        simulate_first: request.simulate_first,
    }
    .digest();
    let ask = Ask {
        chain: &parsed.chain.settings.name,
        chain_id: parsed.chain.settings.chain_id,
        to: parsed.to,
        value: parsed.value,
        data: &parsed.data,
        idempotency_key: idempotency_key.as_deref(),
        request_digest: &request_digest,
    };
    if let Some(earlier) = screen(state, &caller, agent_id, &ask, now).await? {
        return repeated(state, agent_id, earlier);
    }
    let Prepared {
        chain,
        to,
        value,
        data,
        key_path,
        key,
        rpc,
    } = with_key(state, &caller, &request.intent, parsed).await?;
    if request.simulate_first {
        let call = Call {
            from: key.address(),
            to,
            value: U256::from(value.as_u128()),
            data: data.clone(),
            gas_limit: request.gas_limit,
        };
        let [simulation] = <[_; 1]>::try_from(simulate(state, &caller, &chain, &rpc, &[call]).await?)
            .map_err(|_| ApiError::internal("a simulation of one call came back with another number"))?;
        if simulation.status != SimulationStatus::Success {
            return Err(ApiError::Unprocessable(format!(
                "the simulation reverted, nothing was signed: {}",
                simulation.revert_reason.unwrap_or_default()
            )));
        }
    }
    let from = key.address();
    let pending_nonce = state
        .pending_nonces
        .get(&rpc, chain.settings.chain_id, from)
        .await
        .map_err(upstream)?;
    let fee = match (
        &request.gas_price,
        &request.max_fee_per_gas,
        &request.max_priority_fee_per_gas,
    ) {
        (Some(price), None, None) => Fee::Legacy {
            gas_price: parse_wei("gas_price", price)?,
        },
        (None, Some(max), Some(priority)) => {
            let (max_fee_per_gas, max_priority_fee_per_gas) = (
                parse_wei("max_fee_per_gas", max)?,
                parse_wei("max_priority_fee_per_gas", priority)?,
            );
            // A node refuses it anyway, after it was signed and its nonce reserved.
            if max_priority_fee_per_gas > max_fee_per_gas {
                return Err(ApiError::BadRequest(
                    "max_priority_fee_per_gas must not exceed max_fee_per_gas".into(),
                ));
            }
            Fee::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            }
        }
        (None, None, None) => {
            // Room for the base fee to double, and a tip the node's price suggests.
            let price = rpc.gas_price().await.map_err(upstream)?;
            let tip = GWEI.min(price);
            Fee::Eip1559 {
                max_fee_per_gas: price.saturating_mul(2).saturating_add(tip),
                max_priority_fee_per_gas: tip,
            }
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give gas_price (legacy), or max_fee_per_gas with max_priority_fee_per_gas (EIP-1559), or neither"
                    .into(),
            ));
        }
    };
    let gas_limit = match request.gas_limit {
        Some(limit) => limit,
        None if data.is_empty() => TRANSFER_GAS,
        None => rpc
            .estimate_gas(key.address(), to, value.as_u128(), &data)
            .await
            .map_err(|error| match error {
                // The node ran the call and it reverted: the request's fault, not the node's.
                intents::RpcError::Refused(reason) => {
                    ApiError::Unprocessable(format!("the call cannot be estimated, nothing was signed: {reason}"))
                }
                error => upstream(error),
            })?,
    };
    let submission = Submission {
        tx_id: Uuid::now_v7(),
        chain: chain.settings.name.clone(),
        chain_id: chain.settings.chain_id,
        to,
        value,
        data,
        gas_limit,
        fee,
        nonce: request.nonce,
        signing_key_path: key_path,
        idempotency_key,
        request_digest,
        sign_only: until == Until::SignedOnly,
    };
    let ticket = Ticket {
        submission,
        from,
        chain_pending_nonce: pending_nonce,
        key,
        rpc,
        metadata: caller.metadata(),
        now,
    };
    let tx_id = ticket.submission.tx_id;
    let receipt = match reservations::reserve(state, agent_id, ticket).await? {
        Ok(Reserved::Signed) => return Ok((StatusCode::CREATED, recorded(state, agent_id, tx_id)?)),
        Ok(Reserved::Broadcasting(_)) if until == Until::Queued => {
            return Ok((StatusCode::CREATED, recorded(state, agent_id, tx_id)?));
        }
        Ok(Reserved::Broadcasting(receipt)) => receipt,
        Ok(Reserved::Repeat(earlier)) => return repeated(state, agent_id, earlier),
        Err(refusal) => return Err(refused(refusal)),
    };
    let delivery = receipt
        .await
        .map_err(|_| ApiError::internal("the broadcast ended without recording an outcome"))??;
    let mut record = recorded(state, agent_id, tx_id)?;
    match delivery {
        Delivery::Recorded if record.status == TxStatus::Failed => Err(not_accepted(record)),
        Delivery::Recorded => Ok((StatusCode::CREATED, record)),
        // Signed, and perhaps on its way: not a failure to retry with another
        // transaction. The outcome shows on GET once the node answers.
        Delivery::Unanswered(error) => {
            record.error = Some(format!(
                "the node did not answer ({error}); keyward sends the transaction again until it does"
            ));
            Ok((StatusCode::CREATED, record))
        }
        // The node answered, but the log refused its answer for now: the transaction is
        // reserved and the chain has it (or refused it), so an error would invite a second
        // transaction paying again. "signed", as the log holds it; GET shows the outcome
        // once keyward, which keeps trying, has recorded it.
        Delivery::Unrecorded { refused } => {
            let answered = match refused {
                None => "the node took the transaction".to_owned(),
                Some(reason) => format!("the node refused the transaction ({reason})"),
            };
            record.error = Some(format!(
                "{answered}, but its answer could not be recorded yet; keyward records it as soon as it can"
            ));
            Ok((StatusCode::CREATED, record))
        }
    }
}

fn not_accepted(record: TransactionRecord) -> ApiError {
    ApiError::BadGateway(format!(
        "the chain did not accept the transaction; its value stays counted against the agent's limits for their window, since the same signed transaction could still be mined: {}",
        record.error.unwrap_or_default()
    ))
}

/// The answer to a repeat of an Idempotency-Key: what the first request was answered,
/// with 200 for a transaction made, the same 502 for one the chain did not accept.
fn repeated(state: &AppState, agent_id: AgentId, earlier: Uuid) -> Result<(StatusCode, TransactionRecord), ApiError> {
    let record = state
        .projector
        .read(|models| models.transactions.get(agent_id, earlier).cloned())
        .ok_or_else(|| ApiError::internal("a repeated transaction is missing from the read model"))?;
    if record.status == TxStatus::Failed {
        return Err(not_accepted(record));
    }
    Ok((StatusCode::OK, record))
}

/// Answers what can be answered from the log alone before any key is read or the node
/// asked: a repeat of an Idempotency-Key (the earlier transaction), one still in flight
/// (409), the key used for a different request (422), a guardrail's refusal (403,
/// recorded in the agent's activity). The reservation turn asks again and its answer
/// holds; this one only spares the work.
async fn screen(
    state: &AppState,
    caller: &Caller,
    agent_id: AgentId,
    ask: &Ask<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, ApiError> {
    let screened = state.projector.read(|models| {
        let agent = models
            .directory
            .agent(agent_id)
            .ok_or_else(|| ApiError::NotFound("agent not found".into()))?;
        let transactions = &models.transactions;
        Ok::<_, ApiError>(InTurn::new(agent, transactions.history(agent_id), transactions.nonces()).screen(ask, now))
    })?;
    match screened {
        Ok(earlier) => Ok(earlier),
        Err(Refusal::Guardrail(violation)) => {
            let change = intents_activity(agent_id, vec![submission::rejected(agent_id, ask, &violation).into()]);
            state.commands.execute(vec![change], &caller.metadata()).await?;
            Err(refused(Refusal::Guardrail(violation)))
        }
        Err(refusal) => Err(refused(refusal)),
    }
}

fn recorded(state: &AppState, agent_id: AgentId, tx_id: Uuid) -> Result<TransactionRecord, ApiError> {
    state
        .projector
        .read(|models| models.transactions.get(agent_id, tx_id).cloned())
        .ok_or_else(|| ApiError::internal("a signed transaction is missing from the read model"))
}

#[derive(Deserialize)]
pub struct TransactionQuery {
    include_signed_tx: Option<String>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    include_signed_tx: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// Whether the answer carries the signed transaction: only for the literal `true` or `1`
/// of `include_signed_tx`, any other value leaves it out.
fn includes_signed_tx(include_signed_tx: Option<&str>) -> bool {
    matches!(include_signed_tx, Some("true" | "1"))
}

/// As 1claw's document has it, with no total: a page shorter than `limit` is the last.
#[derive(Serialize)]
pub struct TransactionListResponse {
    transactions: Vec<TransactionResponse>,
}

/// GET /v1/agents/{agent_id}/transactions: newest first, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(agent_id): PathParams<AgentId>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<TransactionListResponse>, ApiError> {
    agent_or_its_humans(&state, &caller, agent_id)?;
    let page = Page::of(query.limit, query.offset)?;
    // The read models keep only recent and unsettled transactions: the whole history is
    // the log's, read up to what the models have applied.
    let applied = state.projector.position();
    index_caught_up(&state).await?;
    let records = transaction_log::page(
        &*state.store,
        &state.audit_index,
        (caller.org_id(), agent_id),
        applied,
        page.offset,
        page.limit,
    )
    .await
    .map_err(ApiError::internal)?;
    let transactions = records
        .iter()
        .map(|record| TransactionResponse::new(record, includes_signed_tx(query.include_signed_tx.as_deref())))
        .collect();
    Ok(Json(TransactionListResponse { transactions }))
}

/// GET /v1/agents/{agent_id}/transactions/{tx_id}
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((agent_id, tx_id)): PathParams<(AgentId, Uuid)>,
    QueryParams(query): QueryParams<TransactionQuery>,
) -> Result<Json<TransactionResponse>, ApiError> {
    agent_or_its_humans(&state, &caller, agent_id)?;
    let (kept, applied) = state.projector.read(|models| {
        let kept = models.transactions.get(agent_id, tx_id).cloned();
        (kept, models.position())
    });
    // Forgotten by the read models once past the windows: the log still has it.
    let record = match kept {
        Some(record) => Some(record),
        None => {
            index_caught_up(&state).await?;
            transaction_log::transaction(
                &*state.store,
                &state.audit_index,
                (caller.org_id(), agent_id),
                tx_id,
                applied,
            )
            .await
            .map_err(ApiError::internal)?
        }
    };
    record
        .map(|record| {
            Json(TransactionResponse::new(
                &record,
                includes_signed_tx(query.include_signed_tx.as_deref()),
            ))
        })
        .ok_or_else(|| ApiError::NotFound("transaction not found".into()))
}
