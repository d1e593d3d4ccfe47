//! The audit endpoints: the trail of the caller's org, the hash chain's verdict, and who
//! could reach a secret at any past moment, answered by replaying the log up to it.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::authz::{Conditions, Permissions, PrincipalType};
use domain::events::OrgRole;
use domain::{ActorType, OrgId, PolicyId, SecretPath, VaultId};
use projections::access_review;
use projections::audit::{AuditQuery, AuditRecord};
use projections::{AccessModels, Until};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::AppState;
use super::extract::QueryParams;
use super::problem::ApiError;
use super::session::HumanSession;
use crate::store::audit_index::AuditIndex;
use crate::verify::{self, BreakReason, Verdict};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// How long a query waits for the audit index to reach what the caller has seen.
const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Deserialize)]
pub struct EventsQuery {
    action: Option<String>,
    actor_id: Option<String>,
    resource_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Serialize)]
pub struct AuditEvent {
    id: Uuid,
    action: &'static str,
    actor_id: Option<String>,
    actor_type: ActorType,
    resource_type: &'static str,
    resource_id: String,
    org_id: Option<OrgId>,
    details: serde_json::Value,
    ip_address: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<&AuditRecord> for AuditEvent {
    fn from(record: &AuditRecord) -> Self {
        Self {
            id: record.id,
            action: record.action,
            actor_id: record.actor_id.clone(),
            actor_type: record.actor_type,
            resource_type: record.resource_type,
            resource_id: record.resource_id.clone(),
            org_id: record.org_id,
            details: record.details.clone(),
            ip_address: record.ip_address.map(|ip| ip.to_string()),
            created_at: record.created_at,
        }
    }
}

#[derive(Serialize)]
pub struct AuditEventsResponse {
    events: Vec<AuditEvent>,
    count: usize,
}

/// GET /v1/audit/events: the caller's org only, newest first.
pub async fn events(
    State(state): State<AppState>,
    session: HumanSession,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<Json<AuditEventsResponse>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let filter = AuditQuery {
        action: query.action,
        actor_id: query.actor_id,
        resource_id: query.resource_id,
        from: query.from,
        to: query.to,
    };
    // The caller reads their own writes: the index has caught up with what the read models
    // had when the request came.
    let seen = state.projector.position();
    if !state.audit_index.caught_up_to(seen, INDEX_WAIT).await {
        return Err(ApiError::Unavailable {
            detail: "the audit index is catching up with the log".into(),
            retry_after_seconds: 1,
        });
    }
    let offset = query.offset.unwrap_or(0);
    let (positions, count) = state
        .audit_index
        .query(session.user.org_id, &filter, offset, limit)
        .await
        .map_err(ApiError::internal)?;
    let records = AuditIndex::records(&*state.store, &positions)
        .await
        .map_err(ApiError::internal)?;
    let events = records.iter().map(AuditEvent::from).collect();
    Ok(Json(AuditEventsResponse { events, count }))
}

#[derive(Serialize)]
pub struct ChainScheme {
    algorithm: &'static str,
    chain_structure: &'static str,
    hash_field: &'static str,
    link_field: &'static str,
}

#[derive(Serialize)]
pub struct AuditVerifyResponse {
    chain_valid: bool,
    events_verified: u64,
    events_checked: u64,
    broken_at_event_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    broken_reason: Option<String>,
    scheme: ChainScheme,
}

/// GET /v1/audit/verify: walks the whole log's hash chain. The chain is one for all orgs,
/// so any org's answer covers every event; it reveals counts, never contents.
pub async fn verify(
    State(state): State<AppState>,
    _session: HumanSession,
) -> Result<Json<AuditVerifyResponse>, ApiError> {
    let verdict = verify::verify(&*state.store, |_| {})
        .await
        .map_err(ApiError::internal)?;
    let scheme = ChainScheme {
        algorithm: "SHA-256",
        chain_structure: "each event hashes its stored fields and its predecessor's hash, in global position order",
        hash_field: "hash",
        link_field: "prev_hash",
    };
    Ok(Json(match verdict {
        Verdict::Intact { events } => AuditVerifyResponse {
            chain_valid: true,
            events_verified: events,
            events_checked: events,
            broken_at_event_id: None,
            broken_reason: None,
            scheme,
        },
        Verdict::Broken {
            events_verified,
            reason,
        } => AuditVerifyResponse {
            chain_valid: false,
            events_verified,
            events_checked: events_verified + 1,
            broken_at_event_id: match &reason {
                BreakReason::Chain(chain_break) => chain_break.event_id(),
                BreakReason::Unreadable { .. } => None,
            },
            broken_reason: Some(reason.to_string()),
            scheme,
        },
    }))
}

#[derive(Deserialize)]
pub struct AccessReviewQuery {
    vault_id: VaultId,
    path: String,
    at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
pub struct ReviewedPrincipal {
    principal_type: PrincipalType,
    principal_id: Uuid,
    permissions: Permissions,
    policy_id: Option<PolicyId>,
    #[serde(skip_serializing_if = "Conditions::is_empty")]
    conditions: Conditions,
}

#[derive(Serialize)]
pub struct AccessReviewResponse {
    vault_id: VaultId,
    path: String,
    at: DateTime<Utc>,
    principals: Vec<ReviewedPrincipal>,
}

/// GET /v1/audit/access-review: every principal that could read or write the secret at
/// `at` (default now), from the log replayed up to that moment. For the org's owners and
/// admins and the vault's owner; a vault of another org is 404.
pub async fn access_review(
    State(state): State<AppState>,
    session: HumanSession,
    QueryParams(query): QueryParams<AccessReviewQuery>,
) -> Result<Json<AccessReviewResponse>, ApiError> {
    let path = SecretPath::parse(query.path).map_err(|e| ApiError::BadRequest(format!("path: {e}")))?;
    let at = query.at.unwrap_or(session.context.now);
    let models: AccessModels = crate::replay::build_into(state.store.clone(), Until::Time(at), |_| {})
        .await
        .map_err(ApiError::internal)?;
    let not_found = || ApiError::NotFound("vault not found at that moment".into());
    let vault = models
        .directory
        .vault_in_org(query.vault_id, session.user.org_id)
        .ok_or_else(not_found)?;
    let reviews = vault.created_by == domain::authz::Principal::user(session.user.id)
        || matches!(session.user.role, OrgRole::Owner | OrgRole::Admin);
    if !reviews {
        return Err(ApiError::Forbidden(
            "access reviews are for the vault's owner and the org's admins".into(),
        ));
    }
    let reviewed =
        access_review::review(&models.directory, &models.access, query.vault_id, &path, at).ok_or_else(not_found)?;
    let principals = reviewed
        .into_iter()
        .map(|access| ReviewedPrincipal {
            principal_type: access.principal.kind,
            principal_id: access.principal.id,
            permissions: access.permissions,
            policy_id: access.policy_id,
            conditions: access.conditions,
        })
        .collect();
    Ok(Json(AccessReviewResponse {
        vault_id: query.vault_id,
        path: path.to_string(),
        at,
        principals,
    }))
}
