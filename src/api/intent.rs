//! An intent as a request names it (chain, recipient, value, calldata, key), parsed on an
//! enabled chain and joined with the key it is signed with: what submitting, signing and
//! simulating a transaction all start from.

use domain::evm_chain::EvmChain;
use domain::wei::Wei;
use domain::{AgentId, SecretPath, VaultId};
use intents::{Address, Bytes, PrivateKey, Rpc};
use serde::Deserialize;

use super::problem::ApiError;
use super::secrets::{Purpose, may_read, read_value};
use super::session::{AgentSession, Caller};
use super::signing_keys;
use crate::app::AppState;
use crate::app::chains::enabled_chain;

pub(super) fn parse_address(text: &str) -> Result<Address, ApiError> {
    let hex = text
        .strip_prefix("0x")
        .filter(|hex| hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    hex.and_then(|_| text.parse().ok())
        .ok_or_else(|| ApiError::BadRequest(format!("to: {text:?} is not a 0x-prefixed 20-byte address")))
}

fn parse_data(text: Option<&str>) -> Result<Bytes, ApiError> {
    let Some(text) = text.filter(|t| !t.is_empty() && *t != "0x") else {
        return Ok(Bytes::new());
    };
    intents::hex::decode(text)
        .map(Bytes::from)
        .map_err(|_| ApiError::BadRequest("data must be hex-encoded calldata".into()))
}

/// The vault holding `path` among those the agent's token reaches: the first the agent
/// may read it in, else the first holding it at all, whose read then explains the refusal.
fn key_vault(state: &AppState, caller: &Caller, path: &SecretPath) -> Result<VaultId, ApiError> {
    state
        .projector
        .read(|models| {
            let reach = caller.reach(models);
            let candidates: Vec<VaultId> = if reach.vault_ids.is_empty() {
                models
                    .directory
                    .vaults_of(caller.org_id())
                    .iter()
                    .map(|v| v.id)
                    .collect()
            } else {
                reach.vault_ids.clone()
            };
            // Also within the agent's binding as it stands now.
            let mut holding = candidates
                .into_iter()
                .filter(|vault| reach.binds_to(*vault) && models.secrets.secret(*vault, path).is_some())
                .peekable();
            let first = holding.peek().copied();
            holding
                .find(|vault| may_read(models, caller, &reach, *vault, path))
                .or(first)
        })
        .ok_or_else(|| ApiError::NotFound(format!("no signing key at {path} in the agent's vaults")))
}

/// The private key at `path`, read through the normal authorization chain.
async fn signing_key(state: &AppState, caller: &Caller, path: &SecretPath) -> Result<PrivateKey, ApiError> {
    let vault = key_vault(state, caller, path)?;
    let secret = read_value(state, caller, vault, path, None, Purpose::Sign).await?;
    if !secret.secret_type.is_signing_key_material() {
        return Err(ApiError::BadRequest(format!(
            "signing_key_path {path} is not a private_key secret"
        )));
    }
    let key = PrivateKey::parse_hex(&secret.value).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(state.known_addresses.pair((secret.id, secret.version), key))
}

/// Only the agent itself, with the Intents API enabled, submits or simulates.
pub(super) fn check_agent(session: &AgentSession, agent_id: AgentId) -> Result<(), ApiError> {
    if session.agent.id != agent_id {
        return Err(ApiError::Forbidden("an agent submits only its own transactions".into()));
    }
    if !session.agent.settings.intents_api_enabled {
        return Err(ApiError::Forbidden(
            "the Intents API is not enabled for this agent".into(),
        ));
    }
    Ok(())
}

/// What every intent names, as the request wrote it: where, to whom, how much (ETH, as
/// a decimal string), what to call, and with which key.
#[derive(Deserialize)]
pub(super) struct Intent {
    pub(super) chain: String,
    pub(super) to: String,
    pub(super) value: String,
    pub(super) data: Option<String>,
    pub(super) signing_key_path: Option<String>,
}

/// An intent parsed, with its chain's node and the key to sign with: the one at
/// `signing_key_path`, else the agent's provisioned key, else `keys/<chain>-signer`.
pub(super) struct Prepared {
    pub chain: EvmChain,
    pub to: Address,
    pub value: Wei,
    pub data: Bytes,
    /// The key's name in the log: a vault path, or a provisioned key and its version.
    pub key_path: String,
    pub key: PrivateKey,
    pub rpc: Rpc,
}

/// An intent's fields parsed, on an enabled chain: all a screen needs.
pub(super) struct Parsed {
    pub chain: EvmChain,
    pub to: Address,
    pub value: Wei,
    pub data: Bytes,
}

pub(super) fn parse_intent(state: &AppState, intent: &Intent) -> Result<Parsed, ApiError> {
    let chain = enabled_chain(state, &intent.chain)
        .ok_or_else(|| ApiError::BadRequest(format!("chain: no enabled chain named {:?}", intent.chain)))?;
    let to = parse_address(&intent.to)?;
    let value = Wei::from_eth_str(&intent.value).map_err(|e| ApiError::BadRequest(format!("value: {e}")))?;
    let data = parse_data(intent.data.as_deref())?;
    Ok(Parsed { chain, to, value, data })
}

pub(super) async fn prepare(state: &AppState, caller: &Caller, intent: &Intent) -> Result<Prepared, ApiError> {
    let parsed = parse_intent(state, intent)?;
    with_key(state, caller, intent, parsed).await
}

/// A parsed intent with the key it is signed with and its chain's node.
pub(super) async fn with_key(
    state: &AppState,
    caller: &Caller,
    intent: &Intent,
    parsed: Parsed,
) -> Result<Prepared, ApiError> {
    let Parsed { chain, to, value, data } = parsed;
    let (key, key_path) = key_for(state, caller, &chain, intent.signing_key_path.as_deref()).await?;
    let rpc = state.rpc.rpc(&chain.settings.rpc_url);
    Ok(Prepared {
        chain,
        to,
        value,
        data,
        key_path,
        key,
        rpc,
    })
}

/// The key to sign with on `chain`, and its name in the log: the one at
/// `signing_key_path`, else the agent's provisioned key, else `keys/<chain>-signer`.
pub(super) async fn key_for(
    state: &AppState,
    caller: &Caller,
    chain: &EvmChain,
    signing_key_path: Option<&str>,
) -> Result<(PrivateKey, String), ApiError> {
    if let (None, Caller::Agent(session)) = (signing_key_path, caller)
        && let Some(provisioned) = signing_keys::active_key(state, session.agent.id).await?
    {
        return Ok(provisioned);
    }
    let path = signing_key_path.map_or_else(|| format!("keys/{}-signer", chain.settings.name), str::to_owned);
    let path = SecretPath::parse(&path).map_err(|e| ApiError::BadRequest(format!("signing_key_path: {e}")))?;
    Ok((signing_key(state, caller, &path).await?, path.to_string()))
}
