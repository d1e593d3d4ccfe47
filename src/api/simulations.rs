//! Simulations over HTTP: an agent's intents run in sequence on the chain's latest state,
//! nothing signed or sent. Every simulated call is recorded in the agent's intents
//! activity, so it shows in the audit trail.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::AgentId;
use domain::events::{Event, TransactionSimulated};
use domain::evm_chain::EvmChain;
use domain::transaction::intents_activity;
use domain::wei::Wei;
use intents::{Address, Call, Rpc, RpcError, Simulated, U256};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Body, PathParams};
use super::intent::{Intent, Prepared, check_agent, prepare};
use super::problem::ApiError;
use super::session::{AgentSession, Caller};
use crate::app::AppState;

/// What may go in one bundle; a bundle is one request to the node.
const MAX_BUNDLE: usize = 32;

#[derive(Deserialize)]
pub struct SimulateRequest {
    #[serde(flatten)]
    intent: Intent,
    gas_limit: Option<u64>,
}

#[derive(Deserialize)]
pub struct SimulateBundleRequest {
    transactions: Vec<SimulateRequest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimulationStatus {
    Success,
    Reverted,
    /// The node could not run the bundle at all (a sender cannot pay, say).
    Error,
}

/// Native value only: gas fees come on top for the sender. Amounts in wei.
#[derive(Debug, Serialize)]
pub struct BalanceChange {
    address: String,
    token: &'static str,
    token_symbol: &'static str,
    before: String,
    after: String,
    change: String,
}

#[derive(Debug, Serialize)]
pub struct SimulationResponse {
    simulation_id: Uuid,
    pub(super) status: SimulationStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    gas_used: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) revert_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    balance_changes: Vec<BalanceChange>,
    simulated_at: DateTime<Utc>,
}

#[derive(Serialize)]
pub struct BundleSimulationResponse {
    simulations: Vec<SimulationResponse>,
}

/// POST /v1/agents/{agent_id}/transactions/simulate
pub async fn simulate_one(
    State(state): State<AppState>,
    session: AgentSession,
    PathParams(agent_id): PathParams<AgentId>,
    Body(request): Body<SimulateRequest>,
) -> Result<Json<SimulationResponse>, ApiError> {
    let mut simulations = simulate_requests(&state, session, agent_id, vec![request]).await?;
    simulations
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("a simulation of one call came back empty"))
}

/// POST /v1/agents/{agent_id}/transactions/simulate-bundle: the calls in order, each on
/// the state the ones before it leave.
pub async fn simulate_bundle(
    State(state): State<AppState>,
    session: AgentSession,
    PathParams(agent_id): PathParams<AgentId>,
    Body(request): Body<SimulateBundleRequest>,
) -> Result<Json<BundleSimulationResponse>, ApiError> {
    if request.transactions.is_empty() || request.transactions.len() > MAX_BUNDLE {
        return Err(ApiError::BadRequest(format!(
            "transactions: a bundle holds 1 to {MAX_BUNDLE} transactions"
        )));
    }
    let simulations = simulate_requests(&state, session, agent_id, request.transactions).await?;
    Ok(Json(BundleSimulationResponse { simulations }))
}

async fn simulate_requests(
    state: &AppState,
    session: AgentSession,
    agent_id: AgentId,
    requests: Vec<SimulateRequest>,
) -> Result<Vec<SimulationResponse>, ApiError> {
    check_agent(&session, agent_id)?;
    let caller = Caller::Agent(session);
    let mut bundle: Option<(EvmChain, Rpc)> = None;
    let mut calls = Vec::with_capacity(requests.len());
    for request in &requests {
        let Prepared {
            chain,
            to,
            value,
            data,
            key,
            rpc,
            ..
        } = prepare(state, &caller, &request.intent).await?;
        match &bundle {
            Some((first, _)) if first.settings.chain_id != chain.settings.chain_id => {
                return Err(ApiError::BadRequest(
                    "transactions: every transaction of a bundle is on the same chain".into(),
                ));
            }
            Some(_) => {}
            None => bundle = Some((chain, rpc)),
        }
        calls.push(Call {
            from: key.address(),
            to,
            value: U256::from(value.as_u128()),
            data,
            gas_limit: request.gas_limit,
        });
    }
    let Some((chain, rpc)) = bundle else {
        return Ok(Vec::new());
    };
    simulate(state, &caller, &chain, &rpc, &calls).await
}

/// Runs `calls` on the chain, records each, and answers for each. Shared with
/// `simulate_first`, which signs nothing unless its one call succeeds.
pub(super) async fn simulate(
    state: &AppState,
    caller: &Caller,
    chain: &EvmChain,
    rpc: &Rpc,
    calls: &[Call],
) -> Result<Vec<SimulationResponse>, ApiError> {
    let Caller::Agent(session) = caller else {
        return Err(ApiError::internal("only agents simulate"));
    };
    let outcomes = match rpc.simulate(calls).await {
        Ok(simulated) => simulated.into_iter().map(Ok).collect(),
        Err(RpcError::Refused(reason)) => vec![Err(reason); calls.len()],
        Err(unavailable) => return Err(ApiError::BadGateway(unavailable.to_string())),
    };
    let mut balances = Balances::before(rpc, &outcomes).await?;
    let simulated_at = session.context.now;
    let responses: Vec<SimulationResponse> = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(simulated) => SimulationResponse {
                simulation_id: Uuid::now_v7(),
                status: if simulated.succeeded {
                    SimulationStatus::Success
                } else {
                    SimulationStatus::Reverted
                },
                gas_used: Some(simulated.gas_used),
                revert_reason: simulated.revert_reason.clone(),
                error: None,
                balance_changes: balances.apply(&simulated),
                simulated_at,
            },
            Err(reason) => SimulationResponse {
                simulation_id: Uuid::now_v7(),
                status: SimulationStatus::Error,
                gas_used: None,
                revert_reason: None,
                error: Some(format!("the chain could not run the bundle: {reason}")),
                balance_changes: Vec::new(),
                simulated_at,
            },
        })
        .collect();
    let recorded = calls
        .iter()
        .zip(&responses)
        .map(|(call, response)| {
            Event::from(TransactionSimulated {
                agent_id: session.agent.id,
                chain: chain.settings.name.clone(),
                to: format!("{:#x}", call.to),
                value_wei: Wei::from_wei(call.value.to::<u128>()),
                succeeded: response.status == SimulationStatus::Success,
                gas_used: response.gas_used,
                revert_reason: response.revert_reason.clone().or_else(|| response.error.clone()),
            })
        })
        .collect();
    let change = intents_activity(session.agent.id, recorded);
    state.commands.execute(vec![change], &caller.metadata()).await?;
    Ok(responses)
}

/// The native balances a bundle touches, as they stand before it and after each call.
struct Balances(HashMap<Address, U256>);

impl Balances {
    async fn before(rpc: &Rpc, outcomes: &[Result<Simulated, String>]) -> Result<Self, ApiError> {
        let mut balances = HashMap::new();
        for (address, _) in outcomes.iter().flatten().flat_map(|s| &s.balance_changes) {
            if !balances.contains_key(address) {
                let balance = rpc
                    .balance(*address)
                    .await
                    .map_err(|e| ApiError::BadGateway(e.to_string()))?;
                balances.insert(*address, balance);
            }
        }
        Ok(Self(balances))
    }

    fn apply(&mut self, simulated: &Simulated) -> Vec<BalanceChange> {
        simulated
            .balance_changes
            .iter()
            .map(|(address, change)| {
                let before = self.0.get(address).copied().unwrap_or_default();
                let after = if change.is_negative() {
                    before.saturating_sub(change.unsigned_abs())
                } else {
                    before.saturating_add(change.unsigned_abs())
                };
                self.0.insert(*address, after);
                BalanceChange {
                    address: format!("{address:#x}"),
                    token: "native",
                    token_symbol: "ETH",
                    before: before.to_string(),
                    after: after.to_string(),
                    change: change.to_string(),
                }
            })
            .collect()
    }
}
