//! Secrets over HTTP. Every access is authorized in the four layers of DESIGN.md from the
//! token and the read models; a read is recorded in the log before its value is opened
//! (no audit record, no value); a delete destroys the secret's keys before it is logged.
//!
//! Versions: every write keeps the previous versions, which can be listed (metadata only),
//! read by number and disabled. A read of any version goes through the one read path of
//! the current value, so it is authorized, audited with the version it read and limited
//! alike; the terms of each version are those it was written with (see `domain::secret`).
//! Disabling is for good and idempotent (a disabled version disabled again is 204 and logs
//! nothing); disabling the current version makes the secret 410 until a new version is
//! written. Rotation generates a value from OS randomness and writes it through the one
//! write path of PUT; the value leaves only through a later, audited GET.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::authz::{AccessRequest, Decision, Permission};
use domain::change::{Change, DomainError};
use domain::events::SecretReadDenied;
use domain::secret::{self, Sealed, Secret, SecretType, SecretVersion};
use domain::vault::Vault;
use domain::{ExpectedVersion, SecretId, SecretPath, StreamId, VaultId};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::extract::{Body, PathParams};
use super::problem::ApiError;
use super::session::{Caller, SecretCaller};
use crate::app::AppState;
use crate::app::commands::Attempt;
use crate::app::reach::{TokenReach, authorize_in};
use crate::app::values::{open, to_event_form};

/// The largest value keyward stores: secrets, certificates and env bundles, not files of
/// any size.
const MAX_VALUE_BYTES: usize = 256 * 1024;

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
    /// Whether the version is disabled: in listings, where a disabled version explains a
    /// 410; a version just written never is.
    #[serde(skip_serializing_if = "Option::is_none")]
    is_disabled: Option<bool>,
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
            is_disabled: None,
        }
    }
}

impl SecretMetadataResponse {
    /// One version of `secret`, with when it was written and whether it is disabled.
    fn of_version(secret: &Secret, version: &SecretVersion) -> Self {
        Self {
            id: secret.id,
            path: secret.path.to_string(),
            secret_type: version.secret_type,
            version: version.version,
            metadata: metadata_object(&version.metadata),
            created_at: version.created_at,
            expires_at: version.expires_at,
            is_disabled: Some(version.disabled),
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
    pub(super) id: SecretId,
    path: String,
    #[serde(rename = "type")]
    pub(super) secret_type: SecretType,
    pub(super) value: Zeroizing<String>,
    pub(super) version: u64,
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

#[derive(Serialize)]
pub struct SecretVersionListResponse {
    versions: Vec<SecretMetadataResponse>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    prefix: Option<String>,
}

#[derive(Deserialize)]
pub struct RotateSecretRequest {
    length: Option<u64>,
    charset: Option<Charset>,
    /// The type of the new version; the secret's current type if absent.
    #[serde(rename = "type")]
    secret_type: Option<SecretType>,
}

/// The characters a rotated value is drawn from, uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Charset {
    Hex,
    /// The standard base64 alphabet, without padding.
    Base64,
    Alphanumeric,
    /// Printable ASCII without the space: `!` to `~`.
    Ascii,
}

impl Charset {
    fn alphabet(self) -> Vec<u8> {
        match self {
            Charset::Hex => (b'0'..=b'9').chain(b'a'..=b'f').collect(),
            Charset::Base64 => (b'A'..=b'Z')
                .chain(b'a'..=b'z')
                .chain(b'0'..=b'9')
                .chain([b'+', b'/'])
                .collect(),
            Charset::Alphanumeric => (b'A'..=b'Z').chain(b'a'..=b'z').chain(b'0'..=b'9').collect(),
            Charset::Ascii => (b'!'..=b'~').collect(),
        }
    }
}

/// The length of a rotated value unless the request names one, and the lengths it may name.
const DEFAULT_ROTATED_LENGTH: u64 = 32;
const ROTATED_LENGTHS: std::ops::RangeInclusive<u64> = 8..=1024;

fn parse_path(raw: &str) -> Result<SecretPath, ApiError> {
    SecretPath::parse(raw).map_err(|e| ApiError::BadRequest(format!("secret path: {e}")))
}

/// `<path>/<version>`, as the version routes capture it: the last segment is the version,
/// a positive integer in decimal digits.
fn parse_path_and_version(raw: &str) -> Result<(SecretPath, u64), ApiError> {
    let (path, version) = raw
        .rsplit_once('/')
        .ok_or_else(|| ApiError::BadRequest("expected a secret path followed by /<version>".into()))?;
    let version = Some(version)
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u64>().ok())
        .filter(|version| *version >= 1)
        .ok_or_else(|| ApiError::BadRequest("version must be a positive integer".into()))?;
    Ok((parse_path(path)?, version))
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

/// Whether the four layers let `caller`, of `reach` (`Caller::reach` on `models`), read
/// the secret at `path` in `vault_id`.
pub(super) fn may_read(
    models: &ReadModels,
    caller: &Caller,
    reach: &TokenReach,
    vault_id: VaultId,
    path: &SecretPath,
) -> bool {
    visible_vault(models, caller, vault_id)
        .is_ok_and(|vault| decide_access(models, caller, reach, &vault, path, Permission::Read).allowed)
}

/// The four layers, decided on one snapshot of the read models, for `caller` of `reach`
/// (`Caller::reach` on the same snapshot).
fn decide_access(
    models: &ReadModels,
    caller: &Caller,
    reach: &TokenReach,
    vault: &Vault,
    path: &SecretPath,
    permission: Permission,
) -> Decision {
    let context = caller.context();
    let request = AccessRequest {
        principal: caller.principal(),
        vault_id: vault.id,
        path,
        permission,
        client_ip: context.client_ip,
        now: context.now,
    };
    authorize_in(models, reach, vault, &request)
}

/// The refusal a caller sees: the layer, not the policy details behind it (those are for
/// the vault's owner, through the explain endpoint).
fn refused(decision: &Decision) -> ApiError {
    ApiError::Forbidden(format!("access denied ({})", decision.layer))
}

/// The four layers' decision on `permission` for `path`, in a vault the caller can see
/// (any other is a 404).
fn access(
    state: &AppState,
    caller: &Caller,
    vault_id: VaultId,
    path: &SecretPath,
    permission: Permission,
) -> Result<Decision, ApiError> {
    state.projector.read(|models| {
        let vault = visible_vault(models, caller, vault_id)?;
        Ok(decide_access(
            models,
            caller,
            &caller.reach(models),
            &vault,
            path,
            permission,
        ))
    })
}

/// [`access`], refusing with 403 unless allowed.
pub(super) fn require(
    state: &AppState,
    caller: &Caller,
    vault_id: VaultId,
    path: &SecretPath,
    permission: Permission,
) -> Result<(), ApiError> {
    let decision = access(state, caller, vault_id, path, permission)?;
    if decision.allowed {
        Ok(())
    } else {
        Err(refused(&decision))
    }
}

/// What a write sets beside the value.
struct Terms {
    secret_type: SecretType,
    metadata: serde_json::Value,
    expires_at: Option<DateTime<Utc>>,
    max_access_count: Option<u64>,
}

/// Writes `value` as the next version of the secret at `path`, for a caller allowed to
/// write there. `terms` decides what the version carries from the secret as it stands
/// (`None` if there is none), or refuses; it is asked again when another write to the
/// path came first.
async fn write_version(
    state: &AppState,
    caller: &Caller,
    vault_id: VaultId,
    path: &SecretPath,
    value: &[u8],
    terms: impl Fn(Option<&Secret>) -> Result<Terms, ApiError>,
) -> Result<SecretMetadataResponse, ApiError> {
    let metadata = caller.metadata();
    let new_id = SecretId::new();
    let terms = &terms;
    state
        .commands
        .run::<_, _, ApiError, _>(
            // The value is sealed for the version it becomes, so each attempt reads the
            // secret as it stands and seals again; the append expects what it read.
            || async move {
                let (current, stream_version) = state.projector.read(|models| {
                    (
                        models.secrets.secret(vault_id, path).cloned(),
                        models.secrets.stream_version(vault_id, path),
                    )
                });
                let terms = terms(current.as_ref())?;
                let version = secret::next_version(current.as_ref());
                let sealed = state
                    .envelope
                    .seal(vault_id, path.as_str(), version, value)
                    .await
                    .map_err(ApiError::internal)?;
                Ok((current, stream_version, terms, sealed))
            },
            |(current, stream_version, terms, sealed)| {
                let command = secret::WriteSecret {
                    vault_id,
                    path: path.clone(),
                    secret_type: terms.secret_type,
                    sealed: to_event_form(&sealed)?,
                    metadata: terms.metadata,
                    expires_at: terms.expires_at,
                    max_access_count: terms.max_access_count,
                    written_by: caller.principal(),
                };
                let change = secret::write(current.as_ref(), stream_version, command, new_id, caller.context().now)?;
                Ok(Attempt::changes(vec![change], &metadata, ())?)
            },
        )
        .await?;
    state
        .projector
        .read(|models| models.secrets.secret(vault_id, path).map(SecretMetadataResponse::from))
        .ok_or_else(|| ApiError::internal("a written secret is missing from the read model"))
}

pub async fn put(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    PathParams((vault_id, raw_path)): PathParams<(VaultId, String)>,
    Body(request): Body<PutSecretRequest>,
) -> Result<(StatusCode, Json<SecretMetadataResponse>), ApiError> {
    let path = parse_path(&raw_path)?;
    if request.value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::BadRequest(format!(
            "value must be at most {MAX_VALUE_BYTES} bytes"
        )));
    }
    require(&state, &caller, vault_id, &path, Permission::Write)?;
    let written = write_version(&state, &caller, vault_id, &path, request.value.as_bytes(), |_| {
        Ok(Terms {
            secret_type: request.secret_type.unwrap_or(SecretType::Generic),
            metadata: request.metadata.clone().unwrap_or(serde_json::Value::Null),
            expires_at: request.expires_at,
            max_access_count: request.max_access_count,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(written)))
}

/// POST /v1/vaults/{id}/secret-rotate/{path}: a new version of an existing secret with a
/// value generated here. The version keeps the secret's type (unless the request names
/// one), metadata and `max_access_count`, and its expiry while that lies ahead (rotating
/// an expired secret renews it). The answer is metadata only.
pub async fn rotate(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    PathParams((vault_id, raw_path)): PathParams<(VaultId, String)>,
    body: Result<Option<Json<RotateSecretRequest>>, JsonRejection>,
) -> Result<(StatusCode, Json<SecretMetadataResponse>), ApiError> {
    let path = parse_path(&raw_path)?;
    let request = body?.map(|Json(request)| request);
    let (length, charset, secret_type) = match request {
        Some(request) => (request.length, request.charset, request.secret_type),
        None => (None, None, None),
    };
    let length = length.unwrap_or(DEFAULT_ROTATED_LENGTH);
    if !ROTATED_LENGTHS.contains(&length) {
        return Err(ApiError::BadRequest(format!(
            "length must be between {} and {}",
            ROTATED_LENGTHS.start(),
            ROTATED_LENGTHS.end()
        )));
    }
    require(&state, &caller, vault_id, &path, Permission::Write)?;
    let value = generate_value(length, charset.unwrap_or(Charset::Hex))?;
    let now = caller.context().now;
    let written = write_version(&state, &caller, vault_id, &path, value.as_bytes(), |current| {
        let current = current.ok_or_else(|| ApiError::NotFound("secret not found".into()))?;
        Ok(Terms {
            secret_type: secret_type.unwrap_or(current.secret_type),
            metadata: current.metadata.clone(),
            expires_at: current.expires_at.filter(|expiry| *expiry > now),
            max_access_count: current.max_access_count,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(written)))
}

/// `length` characters drawn uniformly from `charset` with OS randomness: random bytes
/// outside the largest multiple of the alphabet's size are dropped, so no character is
/// likelier than another.
fn generate_value(length: u64, charset: Charset) -> Result<Zeroizing<String>, ApiError> {
    let alphabet = charset.alphabet();
    let size = alphabet.len();
    let usable = 256 - 256 % size;
    let length = usize::try_from(length).map_err(ApiError::internal)?;
    let mut value = Zeroizing::new(String::with_capacity(length));
    let mut random = Zeroizing::new([0u8; 64]);
    while value.len() < length {
        getrandom::fill(random.as_mut_slice()).map_err(ApiError::internal)?;
        for byte in random.iter().map(|byte| usize::from(*byte)) {
            if byte < usable && value.len() < length {
                value.push(char::from(alphabet[byte % size]));
            }
        }
    }
    Ok(value)
}

pub async fn get(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    PathParams((vault_id, raw_path)): PathParams<(VaultId, String)>,
) -> Result<Json<SecretResponse>, ApiError> {
    let path = parse_path(&raw_path)?;
    read_value(&state, &caller, vault_id, &path, None, Purpose::Reveal)
        .await
        .map(Json)
}

/// GET /v1/vaults/{id}/secret-version/{path}/{version}: the value of one version. It
/// reports when that version was written, as the version list does.
pub async fn get_version(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    PathParams((vault_id, raw)): PathParams<(VaultId, String)>,
) -> Result<Json<SecretResponse>, ApiError> {
    let (path, version) = parse_path_and_version(&raw)?;
    read_value(&state, &caller, vault_id, &path, Some(version), Purpose::Reveal)
        .await
        .map(Json)
}

/// Why a value is read: to hand it to the caller, or to sign with it inside keyward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Reveal,
    /// The intents proxy signs with the key; the value never leaves the server, so the
    /// rule that intents agents never read key material does not apply. Every other
    /// layer of authorization does.
    Sign,
}

/// The secret at `path`, its `version` (or current one) and that version's sealed value.
fn lookup_version<'m>(
    models: &'m ReadModels,
    vault_id: VaultId,
    path: &SecretPath,
    version: Option<u64>,
) -> Result<(&'m Secret, &'m SecretVersion, &'m Sealed), DomainError> {
    let secret = models
        .secrets
        .secret(vault_id, path)
        .ok_or(DomainError::NotFound("secret"))?;
    let number = version.unwrap_or(secret.version);
    let read = models
        .secrets
        .version(vault_id, path, number)
        .ok_or(DomainError::NotFound("secret version"))?;
    let sealed = models
        .secrets
        .value(vault_id, path, number)
        .ok_or(DomainError::NotFound("secret version"))?;
    Ok((secret, read, sealed))
}

/// The one read of a value: `version`, or the current one. Authorized (a refusal is
/// audited), recorded in the log, and only then opened.
pub(super) async fn read_value(
    state: &AppState,
    caller: &Caller,
    vault_id: VaultId,
    path: &SecretPath,
    version: Option<u64>,
    purpose: Purpose,
) -> Result<SecretResponse, ApiError> {
    let decision = access(state, caller, vault_id, path, Permission::Read)?;
    if !decision.allowed {
        record_denied_read(state, caller, vault_id, path, &decision).await?;
        return Err(refused(&decision));
    }
    let signs_intents = purpose == Purpose::Reveal
        && matches!(caller, Caller::Agent(session) if session.agent.settings.intents_api_enabled);
    let by = caller.principal();
    let now = caller.context().now;
    let lookup = |models: &ReadModels| {
        let (secret, read, sealed) = lookup_version(models, vault_id, path, version)?;
        if signs_intents && (secret.secret_type.is_signing_key_material() || read.secret_type.is_signing_key_material())
        {
            return Err(DomainError::Forbidden(
                "agents with the Intents API enabled sign through keyward and never read key material".into(),
            ));
        }
        let change = secret::read(secret, read, by, now).map_err(|refusal| DomainError::Gone(refusal.to_string()))?;
        Ok((change, (secret.clone(), read.clone(), sealed.clone())))
    };
    // A key used to sign is not handed out: its use is recorded by the transaction it
    // signs, durable before anything signed leaves. Only a counted key (an access
    // limit) records each use as a read, so the limit holds.
    let unrecorded = match purpose {
        Purpose::Sign => Some(state.projector.read(|models| lookup(models).map(|(_, found)| found))?)
            .filter(|(_, read, _)| read.max_access_count.is_none()),
        Purpose::Reveal => None,
    };
    let (secret, read, sealed) = match unrecorded {
        Some(found) => found,
        None => {
            let (_, found) = state
                .commands
                .decide_with(&caller.metadata(), |models| {
                    lookup(models).map(|(change, found)| (vec![change], found))
                })
                .await?;
            found
        }
    };
    // A read appended without claiming the stream (no access limit) may land just after the
    // version was disabled: the disable wins.
    let disabled = state.projector.read(|models| {
        models
            .secrets
            .secret(vault_id, path)
            .is_some_and(|live| live.id == secret.id)
            && models
                .secrets
                .version(vault_id, path, read.version)
                .is_some_and(|now| now.disabled)
    });
    if disabled {
        return Err(ApiError::Gone(secret::ReadRefused::Disabled(read.version).to_string()));
    }
    // The read is in the log (a signing key's use is about to be): only now is the value
    // opened.
    let plaintext = open(state, &secret, read.version, &sealed).await?;
    let value = String::from_utf8(plaintext.to_vec()).map_err(|_| ApiError::internal("a stored value is not UTF-8"))?;
    Ok(SecretResponse {
        id: secret.id,
        path: secret.path.to_string(),
        secret_type: read.secret_type,
        value: Zeroizing::new(value),
        version: read.version,
        metadata: metadata_object(&read.metadata),
        created_by: read.written_by.id.to_string(),
        created_at: if version.is_some() {
            read.created_at
        } else {
            secret.created_at
        },
        expires_at: read.expires_at,
    })
}

/// GET /v1/vaults/{id}/secret-versions/{path}: every version, oldest first, metadata only.
pub async fn list_versions(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    PathParams((vault_id, raw_path)): PathParams<(VaultId, String)>,
) -> Result<Json<SecretVersionListResponse>, ApiError> {
    let path = parse_path(&raw_path)?;
    require(&state, &caller, vault_id, &path, Permission::Read)?;
    let versions = state.projector.read(|models| {
        let secret = models
            .secrets
            .secret(vault_id, &path)
            .ok_or_else(|| ApiError::NotFound("secret not found".into()))?;
        Ok::<_, ApiError>(
            models
                .secrets
                .versions(vault_id, &path)
                .map(|version| SecretMetadataResponse::of_version(secret, version))
                .collect(),
        )
    })?;
    Ok(Json(SecretVersionListResponse { versions }))
}

/// POST /v1/vaults/{id}/secret-version-disable/{path}/{version}: 204, also when the
/// version was disabled already.
pub async fn disable_version(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    PathParams((vault_id, raw)): PathParams<(VaultId, String)>,
) -> Result<StatusCode, ApiError> {
    let (path, version) = parse_path_and_version(&raw)?;
    require(&state, &caller, vault_id, &path, Permission::Write)?;
    let by = caller.principal();
    state
        .commands
        .decide(&caller.metadata(), |models| {
            let secret = models
                .secrets
                .secret(vault_id, &path)
                .ok_or(DomainError::NotFound("secret"))?;
            let version = models
                .secrets
                .version(vault_id, &path, version)
                .ok_or(DomainError::NotFound("secret version"))?;
            Ok(secret::disable_version(secret, version, by).into_iter().collect())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    PathParams((vault_id, raw_path)): PathParams<(VaultId, String)>,
) -> Result<StatusCode, ApiError> {
    let path = parse_path(&raw_path)?;
    require(&state, &caller, vault_id, &path, Permission::Write)?;
    if state
        .projector
        .read(|models| models.secrets.secret(vault_id, &path).is_none())
    {
        return Err(ApiError::NotFound("secret not found".into()));
    }
    let (by, metadata, path, state) = (caller.principal(), caller.metadata(), &path, &state);
    state
        .commands
        .run::<_, _, ApiError, _>(
            // Keys first: once the log says deleted, no value may be recoverable, whatever
            // happens after. A write appended since the versions were read brought a key
            // the shredding may not have seen: then the keys go again.
            || async move {
                let shredded_through = state
                    .projector
                    .read(|models| models.secrets.stream_version(vault_id, path));
                state
                    .envelope
                    .shred_secret(vault_id, path.as_str())
                    .await
                    .map_err(ApiError::internal)?;
                Ok(shredded_through)
            },
            |shredded_through| {
                let change = state.projector.read(|models| {
                    let secret = models
                        .secrets
                        .secret(vault_id, path)
                        .ok_or(DomainError::NotFound("secret"))?;
                    let written_since = models.secrets.stream_version(vault_id, path) != shredded_through;
                    Ok::<_, DomainError>((!written_since).then(|| secret::delete(secret, by)))
                })?;
                match change {
                    Some(change) => Ok(Attempt::changes(vec![change], &metadata, ())?),
                    None => Ok(Attempt::Stale(
                        "the secret kept being written while it was being deleted",
                    )),
                }
            },
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /v1/vaults/{id}/secrets: metadata of the secrets the caller may read or write,
/// never a value.
pub async fn list(
    State(state): State<AppState>,
    SecretCaller(caller): SecretCaller,
    PathParams(vault_id): PathParams<VaultId>,
    super::extract::QueryParams(query): super::extract::QueryParams<ListQuery>,
) -> Result<Json<SecretListResponse>, ApiError> {
    let prefix = query.prefix.unwrap_or_default();
    let secrets = state.projector.read(|models| {
        let vault = visible_vault(models, &caller, vault_id)?;
        let reach = caller.reach(models);
        Ok::<_, ApiError>(
            models
                .secrets
                .list(vault_id, &prefix)
                .into_iter()
                .filter(|secret| {
                    [Permission::Read, Permission::Write].into_iter().any(|permission| {
                        decide_access(models, &caller, &reach, &vault, &secret.path, permission).allowed
                    })
                })
                .map(|secret| SecretMetadataResponse {
                    is_disabled: models
                        .secrets
                        .version(vault_id, &secret.path, secret.version)
                        .map(|current| current.disabled),
                    ..SecretMetadataResponse::from(secret)
                })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_the_length_and_only_the_characters_asked_for() {
        for (charset, size) in [
            (Charset::Hex, 16),
            (Charset::Base64, 64),
            (Charset::Alphanumeric, 62),
            (Charset::Ascii, 94),
        ] {
            let alphabet = charset.alphabet();
            assert_eq!(alphabet.len(), size, "{charset:?}");
            for length in [8, 33, 1024] {
                let value = generate_value(length, charset).unwrap();
                assert_eq!(value.len() as u64, length, "{charset:?}");
                assert!(value.bytes().all(|c| alphabet.contains(&c)), "{charset:?}: {}", *value);
            }
        }
        assert!(Charset::Ascii.alphabet().iter().all(|c| c.is_ascii_graphic()));
    }

    #[test]
    fn generated_values_use_the_whole_alphabet_and_differ() {
        for charset in [Charset::Hex, Charset::Base64, Charset::Alphanumeric, Charset::Ascii] {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..8 {
                seen.extend(generate_value(1024, charset).unwrap().bytes());
            }
            // 8192 uniform draws from at most 94 characters miss one with probability below 1e-35.
            assert_eq!(seen.len(), charset.alphabet().len(), "{charset:?}");
        }
        assert_ne!(
            *generate_value(32, Charset::Hex).unwrap(),
            *generate_value(32, Charset::Hex).unwrap()
        );
    }

    #[test]
    fn the_last_segment_is_the_version_and_must_be_a_positive_integer() {
        let (path, version) = parse_path_and_version("db/password/12").unwrap();
        assert_eq!((path.as_str(), version), ("db/password", 12));
        for bad in [
            "db/0",
            "db/-1",
            "db/x",
            "db/+1",
            "db/",
            "db/1.0",
            "7",
            "db/99999999999999999999999",
            "/1",
        ] {
            assert!(
                matches!(parse_path_and_version(bad), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
