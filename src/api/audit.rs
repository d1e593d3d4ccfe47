//! The audit endpoints: the trail of the caller's org, the hash chain's verdict, and who
//! could reach a secret at any past moment, answered by replaying the log up to it.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::authz::Principal;
use domain::authz::{Conditions, Permissions, PrincipalType};
use domain::events::OrgRole;
use domain::{ActorType, ChainBreak, OrgId, PolicyId, SecretPath, UserId, VaultId};
use projections::access_review;
use projections::audit::{AuditQuery, AuditRecord};
use projections::{AccessModels, Until};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::QueryParams;
use super::page::Page;
use super::problem::ApiError;
use super::session::HumanSession;
use crate::app::AppState;
use crate::store::audit_index::AuditIndex;
use crate::verify::{self, BreakReason, Verdict};

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
    let page = Page::of(query.limit, query.offset)?;
    let filter = AuditQuery {
        action: query.action,
        actor_id: query.actor_id,
        resource_id: query.resource_id,
        from: query.from,
        to: query.to,
    };
    // The caller reads their own writes.
    index_caught_up(&state).await?;
    let (positions, count) = state
        .audit_index
        .query(&*state.store, session.user.org_id, &filter, page.offset, page.limit)
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
    /// What was checked: `organization` (the caller's org's events) or `log` (every event).
    scope: &'static str,
    scheme: ChainScheme,
}

#[derive(Deserialize)]
pub struct VerifyQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<usize>,
}

/// How many of an org's events one verification checks, unless asked (the 1claw spec's
/// default and maximum).
const VERIFY_DEFAULT_LIMIT: usize = 1000;
const VERIFY_MAX_LIMIT: usize = 10_000;

/// GET /v1/audit/verify. For the caller's org (the spec's reading): the org's events (those
/// /v1/audit/events lists) from `from` to `to`, oldest first, at most `limit`, each checked
/// where it stands in the one chain all orgs share: its own hash, its link to the event
/// before it, and the link of the event after it. Counts are of the org's events only, and
/// the work is bounded by `limit`. A platform administrator's verification walks the whole
/// log instead, as `keyward verify` does, and ignores the window. Both are rate-limited
/// (docs/security.md, "The audit endpoints").
pub async fn verify(
    State(state): State<AppState>,
    session: HumanSession,
    QueryParams(query): QueryParams<VerifyQuery>,
) -> Result<Json<AuditVerifyResponse>, ApiError> {
    if session.user.is_platform_admin(&state.config.admins) {
        state.limits.chain_walk_per_admin(session.user.id)?;
        let _walk = state.limits.log_walk()?;
        let verdict = verify::verify(&*state.store, |_| {})
            .await
            .map_err(ApiError::internal)?;
        let reason = |reason: &BreakReason| reason.to_string();
        return Ok(Json(verify_response("log", verdict, reason)));
    }
    let limit = query.limit.unwrap_or(VERIFY_DEFAULT_LIMIT);
    if limit == 0 || limit > VERIFY_MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {VERIFY_MAX_LIMIT}"
        )));
    }
    state.limits.audit_verify_per_org(session.user.org_id)?;
    index_caught_up(&state).await?;
    let head = state.store.head().await.map_err(ApiError::internal)?.position;
    let window = AuditQuery {
        from: query.from,
        to: query.to,
        ..AuditQuery::default()
    };
    let mut positions = state
        .audit_index
        .positions_in_log_order(&*state.store, session.user.org_id, &window, limit)
        .await
        .map_err(ApiError::internal)?;
    positions.retain(|position| *position <= head);
    let verdict = verify::verify_in_place(&*state.store, &positions, head)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(verify_response("organization", verdict, org_reason)))
}

fn verify_response(
    scope: &'static str,
    verdict: Verdict,
    reason: impl Fn(&BreakReason) -> String,
) -> AuditVerifyResponse {
    let scheme = ChainScheme {
        algorithm: "SHA-256",
        chain_structure: "each event hashes its stored fields and its predecessor's hash, in global position order",
        hash_field: "hash",
        link_field: "prev_hash",
    };
    match verdict {
        Verdict::Intact { events } => AuditVerifyResponse {
            chain_valid: true,
            events_verified: events,
            events_checked: events,
            broken_at_event_id: None,
            broken_reason: None,
            scope,
            scheme,
        },
        Verdict::Broken {
            events_verified,
            reason: broken,
        } => AuditVerifyResponse {
            chain_valid: false,
            events_verified,
            events_checked: events_verified + 1,
            broken_at_event_id: match &broken {
                BreakReason::Chain(chain_break) => chain_break.event_id(),
                BreakReason::Unreadable { .. } => None,
            },
            broken_reason: Some(reason(&broken)),
            scope,
            scheme,
        },
    }
}

/// Why an org's verification failed, in words that name only the org's own events: no
/// log position, which would tell how busy other tenants are.
fn org_reason(reason: &BreakReason) -> String {
    match reason {
        BreakReason::Chain(ChainBreak::ContentChanged { event_id, .. }) => {
            format!("event {event_id}: its stored contents do not match its hash")
        }
        BreakReason::Chain(ChainBreak::BrokenLink { event_id, .. } | ChainBreak::PositionGap { event_id, .. }) => {
            format!(
                "event {event_id}: its link does not match the hash of the event before it, or that event is missing"
            )
        }
        BreakReason::Chain(ChainBreak::Unlinked { event_id, .. }) => {
            format!("event {event_id}: the event after it is missing or does not link to its hash")
        }
        BreakReason::Chain(ChainBreak::Missing { .. }) => {
            "an event of this organization is missing from the log".into()
        }
        BreakReason::Chain(ChainBreak::TruncatedTail { .. }) => "events at the end of the log were deleted".into(),
        BreakReason::Unreadable { .. } => "an event of this organization, or one beside it, cannot be read".into(),
    }
}

/// Waits for the audit index to reach what the read models had when the request came, so
/// the caller's own writes are in it; 503 if it does not within [`INDEX_WAIT`].
pub(crate) async fn index_caught_up(state: &AppState) -> Result<(), ApiError> {
    let seen = state.projector.position();
    if !state.audit_index.caught_up_to(seen, INDEX_WAIT).await {
        return Err(ApiError::Unavailable {
            detail: "the audit index is catching up with the log".into(),
            retry_after_seconds: 1,
        });
    }
    Ok(())
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

/// Whether `vault` was `org`'s, and if so whether `user` created it, from the org's audit
/// trail: how a vault no longer in the live models is known to have been the org's.
async fn deleted_vault_created_by(
    state: &AppState,
    org: OrgId,
    vault: VaultId,
    user: UserId,
) -> Result<Option<bool>, ApiError> {
    index_caught_up(state).await?;
    let creation = AuditQuery {
        action: Some("vault.create".into()),
        resource_id: Some(vault.to_string()),
        ..AuditQuery::default()
    };
    let (positions, _) = state
        .audit_index
        .query(&*state.store, org, &creation, 0, 1)
        .await
        .map_err(ApiError::internal)?;
    let records = AuditIndex::records(&*state.store, &positions)
        .await
        .map_err(ApiError::internal)?;
    Ok(records.first().map(|record| {
        record.actor_type == ActorType::User && record.actor_id.as_deref() == Some(user.to_string().as_str())
    }))
}

/// GET /v1/audit/access-review: every principal that could read or write the secret at
/// `at` (default now), from the events that shaped access up to that moment
/// ([`AccessModels`], docs/cost.md). For the org's owners and admins and the vault's owner;
/// a vault the org never had is 404. Who may ask is settled on the live models and the
/// audit index before anything of the log is read: a stranger gets a 404 or 403 for the
/// price of a lookup, and the reviews an org may ask for are rate-limited.
pub async fn access_review(
    State(state): State<AppState>,
    session: HumanSession,
    QueryParams(query): QueryParams<AccessReviewQuery>,
) -> Result<Json<AccessReviewResponse>, ApiError> {
    let path = SecretPath::parse(query.path).map_err(|e| ApiError::BadRequest(format!("path: {e}")))?;
    let at = query.at.unwrap_or(session.context.now);
    let org = session.user.org_id;
    let live = state.projector.read(|models| {
        models
            .directory
            .vault_in_org(query.vault_id, org)
            .map(|vault| vault.created_by)
    });
    let created_by_caller = match live {
        Some(created_by) => created_by == Principal::user(session.user.id),
        // A vault the org deleted is reviewed at moments it still stood; its creation is in
        // the org's trail.
        None => deleted_vault_created_by(&state, org, query.vault_id, session.user.id)
            .await?
            .ok_or_else(|| ApiError::NotFound("vault not found".into()))?,
    };
    if !(created_by_caller || matches!(session.user.role, OrgRole::Owner | OrgRole::Admin)) {
        return Err(ApiError::Forbidden(
            "access reviews are for the vault's owner and the org's admins".into(),
        ));
    }
    state.limits.access_review_per_org(org)?;
    let models: AccessModels = crate::replay::build_into(state.store.clone(), Until::Time(at), |_| {})
        .await
        .map_err(ApiError::internal)?;
    let not_found = || ApiError::NotFound("vault not found at that moment".into());
    models
        .directory
        .vault_in_org(query.vault_id, org)
        .ok_or_else(not_found)?;
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
