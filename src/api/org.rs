//! The caller's organization.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::UserId;
use domain::events::OrgRole;
use domain::membership;
use domain::user::User;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Body, PathParams};
use super::problem::ApiError;
use super::session::HumanSession;
use crate::app::AppState;

#[derive(Serialize)]
pub struct OrgMemberResponse {
    id: UserId,
    email: String,
    display_name: String,
    role: OrgRole,
    auth_method: &'static str,
    created_at: DateTime<Utc>,
}

#[derive(Serialize)]
pub struct OrgMemberListResponse {
    members: Vec<OrgMemberResponse>,
}

impl From<&User> for OrgMemberResponse {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.to_string(),
            display_name: user.display_name.clone(),
            role: user.role,
            auth_method: "password",
            created_at: user.created_at,
        }
    }
}

pub async fn members(State(state): State<AppState>, session: HumanSession) -> Json<OrgMemberListResponse> {
    let members = state.projector.read(|models| {
        models
            .directory
            .members(session.user.org_id)
            .map(OrgMemberResponse::from)
            .collect()
    });
    Json(OrgMemberListResponse { members })
}

#[derive(Deserialize)]
pub struct UpdateMemberRoleRequest {
    role: OrgRole,
}

/// PATCH /v1/org/members/{user_id}: 200 with the member, also when the role is the one
/// they have (then nothing is appended).
pub async fn update_role(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(user_id): PathParams<String>,
    Body(request): Body<UpdateMemberRoleRequest>,
) -> Result<Json<OrgMemberResponse>, ApiError> {
    let target = member_id(&user_id)?;
    let actor = session.user.id;
    state
        .commands
        .decide(&session.metadata(), |models| {
            let membership = models.membership(actor, target)?;
            Ok(membership::change_role(membership, request.role)?.into_iter().collect())
        })
        .await?;
    state
        .projector
        .read(|models| {
            models
                .directory
                .user(target)
                .filter(|user| user.org_id == session.user.org_id)
                .map(OrgMemberResponse::from)
        })
        .map(Json)
        .ok_or_else(not_a_member)
}

/// DELETE /v1/org/members/{user_id}: 204; the member's credentials are refused from the
/// next request on.
pub async fn remove(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(user_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let target = member_id(&user_id)?;
    let actor = session.user.id;
    state
        .commands
        .decide(&session.metadata(), |models| {
            membership::remove_member(models.membership(actor, target)?)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A path's user id; one that is not a UUID names no member (404, as a stranger's does).
fn member_id(raw: &str) -> Result<UserId, ApiError> {
    Uuid::parse_str(raw).map(UserId).map_err(|_| not_a_member())
}

fn not_a_member() -> ApiError {
    ApiError::NotFound("member not found".into())
}
