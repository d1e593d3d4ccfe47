//! The caller's organization.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::UserId;
use domain::events::OrgRole;
use serde::Serialize;

use super::AppState;
use super::session::HumanSession;

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

pub async fn members(State(state): State<AppState>, session: HumanSession) -> Json<OrgMemberListResponse> {
    let members = state.projector.read(|models| {
        models
            .directory
            .members(session.user.org_id)
            .map(|user| OrgMemberResponse {
                id: user.id,
                email: user.email.to_string(),
                display_name: user.display_name.clone(),
                role: user.role,
                auth_method: "password",
                created_at: user.created_at,
            })
            .collect()
    });
    Json(OrgMemberListResponse { members })
}
