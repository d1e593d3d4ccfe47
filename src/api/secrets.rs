//! Secrets over HTTP. Every access is authorized in the four layers of DESIGN.md from the
//! token and the read models; a read is recorded in the log before its value is opened
//! (no audit record, no value); a delete destroys the secret's keys before it is logged.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::authz::{AccessRequest, Decision, Permission, VaultFacts, authorize};
use domain::change::{Change, DomainError};
use domain::events::SecretReadDenied;
use domain::secret::{self, Sealed, Secret, SecretType};
use domain::vault::Vault;
use domain::{ExpectedVersion, SecretId, SecretPath, StreamId, VaultId};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::AppState;
use super::extract::{Body, PathParams};
use super::problem::ApiError;
use super::session::Caller;
use crate::crypto::{CryptoError, SealedValue};

/// The largest value keyward stores: secrets, certificates and env bundles, not files of
/// any size.
const MAX_VALUE_BYTES: usize = 256 * 1024;
/// A write is retried this often when another write to the path came first.
const WRITE_ATTEMPTS: usize = 3;

#[derive(Deserialize)]
pub struct PutSecretRequest {
    #[serde(rename = "type")]
    secret_type: Option<SecretType>,
    value: Zeroizing<String>,
    metadata: Option<serde_json::Value>,
    expires_at: Option<DateTime<Utc>>,
    max_access_count: Option<u64>,
}

#[derive(Serialize)]
pub struct SecretMetadataResponse {
    id: SecretId,
    path: String,
    #[serde(rename = "type")]
    secret_type: SecretType,
    version: u64,
    metadata: serde_json::Value,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

impl From<&Secret> for SecretMetadataResponse {
    fn from(secret: &Secret) -> Self {
        Self {
            id: secret.id,
            path: secret.path.to_string(),
            secret_type: secret.secret_type,
            version: secret.version,
            metadata: metadata_object(&secret.metadata),
            created_at: secret.created_at,
            expires_at: secret.expires_at,
        }
    }
}

fn metadata_object(metadata: &serde_json::Value) -> serde_json::Value {
    if metadata.is_null() {
        serde_json::json!({})
    } else {
        metadata.clone()
    }
}

#[derive(Serialize)]
pub struct SecretResponse {
    id: SecretId,
    path: String,
    #[serde(rename = "type")]
    secret_type: SecretType,
    value: Zeroizing<String>,
    version: u64,
    metadata: serde_json::Value,
    created_by: String,
    created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
pub struct SecretListResponse {
    secrets: Vec<SecretMetadataResponse>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    prefix: Option<String>,
}

fn parse_path(raw: &str) -> Result<SecretPath, ApiError> {
    SecretPath::parse(raw).map_err(|e| ApiError::BadRequest(format!("secret path: {e}")))
}

/// A vault of the caller's org; any other is a 404, so vault ids cannot be probed.
fn visible_vault(models: &ReadModels, caller: &Caller, vault_id: VaultId) -> Result<Vault, ApiError> {
    models
        .directory
        .vault(vault_id)
        .filter(|vault| vault.org_id == caller.org_id())
        .cloned()
        .ok_or_else(|| ApiError::NotFound("vault not found".into()))
}

/// The four layers, decided on one snapshot of the read models.
fn decide_access(
    models: &ReadModels,
    caller: &Caller,
    vault: &Vault,
    path: &SecretPath,
    permission: Permission,
) -> Decision {
    let reach = caller.reach();
    let context = caller.context();
    let request = AccessRequest {
        principal: caller.principal(),
        vault_id: vault.id,
        path,
        permission,
        client_ip: context.client_ip,
        now: context.now,
    };
    let policies = models.access.policies_of(vault.id).map(|granted| &granted.policy);
    authorize(
        &reach.scope(),
        &request,
        &VaultFacts {
            owner: vault.created_by,
        },
        policies,
    )
}

/// The refusal a caller sees: the layer, not the policy details behind it (those are for
/// the vault's owner, through the explain endpoint).
fn refused(decision: &Decision) -> ApiError {
    ApiError::Forbidden(format!("access denied ({})", decision.layer))
}

pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((vault_id, raw_path)): PathParams<(VaultId, String)>,
    Body(request): Body<PutSecretRequest>,
) -> Result<(StatusCode, Json<SecretMetadataResponse>), ApiError> {
    let path = parse_path(&raw_path)?;
    if request.value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "value must be at most {MAX_VALUE_BYTES} bytes"
        )));
    }
    let vault = state
        .projector
        .read(|models| visible_vault(models, &caller, vault_id))?;
    let decision = state
        .projector
        .read(|models| decide_access(models, &caller, &vault, &path, Permission::Write));
    if !decision.allowed {
        return Err(refused(&decision));
    }
    let metadata = caller.metadata();
    let new_id = SecretId::new();
    let mut attempt = 1;
    loop {
        let (current, stream_version) = state.projector.read(|models| {
            (
                models.secrets.secret(vault_id, &path).cloned(),
                models.secrets.stream_version(vault_id, &path),
            )
        });
        let version = secret::next_version(current.as_ref());
        let sealed = state
            .envelope
            .seal(vault_id, path.as_str(), version, request.value.as_bytes())
            .await
            .map_err(ApiError::internal)?;
        let command = secret::WriteSecret {
            vault_id,
            path: path.clone(),
            secret_type: request.secret_type.unwrap_or(SecretType::Generic),
            sealed: to_event_form(&sealed)?,
            metadata: request.metadata.clone().unwrap_or(serde_json::Value::Null),
            expires_at: request.expires_at,
            max_access_count: request.max_access_count,
            written_by: caller.principal(),
        };
        let change = secret::write(current.as_ref(), stream_version, command, new_id, caller.context().now)?;
        match state.commands.execute(vec![change], &metadata).await {
            Err(crate::commands::CommandError::Append(crate::store::AppendError::WrongExpectedVersion { .. }))
                if attempt < WRITE_ATTEMPTS =>
            {
                attempt += 1;
                let head = state.store.head().await.map_err(ApiError::internal)?;
                state.projector.caught_up_to(head.position).await;
            }
            outcome => {
                outcome?;
                break;
            }
        }
    }
    let written = state
        .projector
        .read(|models| models.secrets.secret(vault_id, &path).map(SecretMetadataResponse::from))
        .ok_or_else(|| ApiError::internal("a written secret is missing from the read model"))?;
    Ok((StatusCode::CREATED, Json(written)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((vault_id, raw_path)): PathParams<(VaultId, String)>,
) -> Result<Json<SecretResponse>, ApiError> {
    let path = parse_path(&raw_path)?;
    let vault = state
        .projector
        .read(|models| visible_vault(models, &caller, vault_id))?;
    let decision = state
        .projector
        .read(|models| decide_access(models, &caller, &vault, &path, Permission::Read));
    if !decision.allowed {
        record_denied_read(&state, &caller, vault_id, &path, &decision).await?;
        return Err(refused(&decision));
    }
    let signs_intents = matches!(&caller, Caller::Agent(session) if session.agent.settings.intents_api_enabled);
    let by = caller.principal();
    let now = caller.context().now;
    let (_, (secret, sealed)) = state
        .commands
        .decide_with(&caller.metadata(), |models| {
            let secret = models
                .secrets
                .secret(vault_id, &path)
                .ok_or(DomainError::NotFound("secret"))?;
            if signs_intents && secret.secret_type.is_signing_key_material() {
                return Err(DomainError::Forbidden(
                    "agents with the Intents API enabled sign through keyward and never read key material".into(),
                ));
            }
            let sealed = models
                .secrets
                .current_value(vault_id, &path)
                .ok_or(DomainError::NotFound("secret"))?;
            let change = secret::read(secret, by, now).map_err(|refusal| DomainError::Gone(refusal.to_string()))?;
            Ok((vec![change], (secret.clone(), sealed.clone())))
        })
        .await?;
    // The read is in the log: only now is the value opened.
    let plaintext = open(&state, &secret, &sealed).await?;
    let value = String::from_utf8(plaintext.to_vec()).map_err(|_| ApiError::internal("a stored value is not UTF-8"))?;
    Ok(Json(SecretResponse {
        id: secret.id,
        path: secret.path.to_string(),
        secret_type: secret.secret_type,
        value: Zeroizing::new(value),
        version: secret.version,
        metadata: metadata_object(&secret.metadata),
        created_by: secret.written_by.id.to_string(),
        created_at: secret.created_at,
        expires_at: secret.expires_at,
    }))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((vault_id, raw_path)): PathParams<(VaultId, String)>,
) -> Result<StatusCode, ApiError> {
    let path = parse_path(&raw_path)?;
    let vault = state
        .projector
        .read(|models| visible_vault(models, &caller, vault_id))?;
    let decision = state
        .projector
        .read(|models| decide_access(models, &caller, &vault, &path, Permission::Write));
    if !decision.allowed {
        return Err(refused(&decision));
    }
    if state
        .projector
        .read(|models| models.secrets.secret(vault_id, &path).is_none())
    {
        return Err(ApiError::NotFound("secret not found".into()));
    }
    // Keys first: once the log says deleted, no value may be recoverable, whatever happens
    // after.
    state
        .envelope
        .shred_secret(vault_id, path.as_str())
        .await
        .map_err(ApiError::internal)?;
    let by = caller.principal();
    state
        .commands
        .decide(&caller.metadata(), |models| {
            let secret = models
                .secrets
                .secret(vault_id, &path)
                .ok_or(DomainError::NotFound("secret"))?;
            Ok(vec![secret::delete(secret, by)])
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /v1/vaults/{id}/secrets: metadata of the secrets the caller may read or write,
/// never a value.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(vault_id): PathParams<VaultId>,
    super::extract::QueryParams(query): super::extract::QueryParams<ListQuery>,
) -> Result<Json<SecretListResponse>, ApiError> {
    let prefix = query.prefix.unwrap_or_default();
    let secrets = state.projector.read(|models| {
        let vault = visible_vault(models, &caller, vault_id)?;
        Ok::<_, ApiError>(
            models
                .secrets
                .list(vault_id, &prefix)
                .into_iter()
                .filter(|secret| {
                    [Permission::Read, Permission::Write]
                        .into_iter()
                        .any(|permission| decide_access(models, &caller, &vault, &secret.path, permission).allowed)
                })
                .map(SecretMetadataResponse::from)
                .collect(),
        )
    })?;
    Ok(Json(SecretListResponse { secrets }))
}

async fn record_denied_read(
    state: &AppState,
    caller: &Caller,
    vault_id: VaultId,
    path: &SecretPath,
    decision: &Decision,
) -> Result<(), ApiError> {
    let denied = SecretReadDenied {
        vault_id,
        path: path.clone(),
        by: caller.principal(),
        layer: decision.layer.to_string(),
        reason: decision.reason.clone(),
    };
    let stream = StreamId::for_aggregate("audit", format!("access-{vault_id}")).map_err(ApiError::internal)?;
    state
        .commands
        .execute(
            vec![Change::new(stream, ExpectedVersion::Any, denied)],
            &caller.metadata(),
        )
        .await?;
    Ok(())
}

async fn open(state: &AppState, secret: &Secret, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let sealed = from_event_form(sealed)?;
    match state
        .envelope
        .open(secret.vault_id, secret.path.as_str(), secret.version, &sealed)
        .await
    {
        Ok(plaintext) => Ok(plaintext),
        // Deleted between the read decision and now: its keys are gone with it.
        Err(CryptoError::KeyDestroyed { .. }) => Err(ApiError::NotFound("secret not found".into())),
        Err(other) => Err(ApiError::internal(other)),
    }
}

/// Events carry the sealed value as base64 text; the crypto module's type and the
/// domain's share that JSON form.
fn to_event_form(sealed: &SealedValue) -> Result<Sealed, ApiError> {
    serde_json::to_value(sealed)
        .and_then(serde_json::from_value)
        .map_err(ApiError::internal)
}

fn from_event_form(sealed: &Sealed) -> Result<SealedValue, ApiError> {
    serde_json::to_value(sealed)
        .and_then(serde_json::from_value)
        .map_err(ApiError::internal)
}
