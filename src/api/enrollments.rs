//! Agent self-enrollment over HTTP: the public request, and the human's side as JSON (the
//! approval page in `crate::web` decides through the same [`decide`]).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::change::DomainError;
use domain::email::Email;
use domain::enrollment::{self, Decider, Decision, Enrollment, EnrollmentStatus, RequestEnrollment};
use domain::events::Event;
use domain::network::NetworkPrefix;
use domain::{ActorType, AgentId, EnrollmentId, OrgId, StreamId};
use projections::ReadModels;
use projections::audit::AuditQuery;
use projections::enrollments::EnrollmentHistory;
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::agents::{AgentCreatedResponse, AgentResponse, new_key};
use super::extract::{Body, PathParams, RequestContext};
use super::problem::ApiError;
use super::session::HumanSession;
use crate::app::AppState;
use crate::app::commands::Attempt;
use crate::mail;
use crate::store::{read_at, read_stream_up_to};

#[derive(Deserialize)]
pub struct EnrollRequest {
    name: String,
    human_email: Option<String>,
    description: Option<String>,
}

/// The same fields, status and wording whether or not the email has an account.
#[derive(Serialize)]
pub struct EnrollResponse {
    /// The nil UUID: the agent exists only once a human approves it.
    agent_id: Uuid,
    message: &'static str,
    approval_url: String,
}

const ENROLL_MESSAGE: &str = "Enrollment received and pending approval. If the email belongs to an account \
     that confirmed it, its owner was emailed; a human can also approve at approval_url while signed in. \
     The API key is sent to the approving human, never to this response.";

/// POST /v1/agents/enroll: public. Creates a pending enrollment; never reveals whether the
/// email has an account. What waits is capped per network and per address named
/// (`domain::enrollment`), and each network's requests are damped here, so that a flood
/// from one network fills its own share only.
pub async fn enroll(
    State(state): State<AppState>,
    context: RequestContext,
    Body(request): Body<EnrollRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>), ApiError> {
    let network = NetworkPrefix::of(context.client_ip);
    state.limits.enroll_per_network(network)?;
    let human_email = request
        .human_email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("human_email: {e}")))?;
    // Only an account that verified the address hears of enrollments naming it.
    let holder_org = human_email.as_ref().and_then(|email| {
        state
            .projector
            .read(|models| models.directory.verified_user_by_email(email).map(|user| user.org_id))
    });
    let enrollment_id = EnrollmentId::new();
    let code = approval_code()?;
    let approval_url = approval_url(&state.config.public_url, enrollment_id, &code);
    // The enrollment shows in the audit trail of the organization it names, if any.
    let metadata = context.metadata(ActorType::Anonymous, None, holder_org);
    let (_, mail) = state
        .commands
        .decide_with(&metadata, |models| {
            let backlog = models.enrollment_backlog(human_email.as_ref(), network, context.now);
            let command = RequestEnrollment {
                enrollment_id,
                name: request.name.clone(),
                description: request.description.clone(),
                human_email: human_email.clone(),
                code_hash: enrollment::code_hash(&code),
                requested_from: context.client_ip.to_string(),
            };
            let requested = enrollment::request(command, backlog, context.now)?;
            let mut changes = vec![requested.clone()];
            let holder = human_email
                .as_ref()
                .and_then(|email| models.directory.verified_user_by_email(email));
            let mail = match (holder, requested.events.first()) {
                (Some(holder), Some(Event::EnrollmentRequested(event))) => {
                    let enrollment = Enrollment::requested(event, context.now);
                    let mail =
                        mail::enrollment_approval(holder.email.clone(), holder.org_id, &enrollment, &approval_url);
                    changes.push(mail.queued());
                    Some(mail)
                }
                _ => None,
            };
            Ok((changes, mail))
        })
        .await?;
    if let Some(mail) = mail {
        state.mailer.send(mail);
    }
    let response = EnrollResponse {
        agent_id: Uuid::nil(),
        message: ENROLL_MESSAGE,
        approval_url,
    };
    Ok((StatusCode::CREATED, Json(response)))
}

/// 256 random bits: whoever holds the approval link, signed in, may decide.
fn approval_code() -> Result<String, ApiError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut_slice()).map_err(ApiError::internal)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes.as_slice()))
}

fn approval_url(public_url: &Url, enrollment: EnrollmentId, code: &str) -> String {
    let mut url = public_url.clone();
    url.set_path(&format!("/enroll/{enrollment}"));
    url.query_pairs_mut().clear().append_pair("code", code);
    url.to_string()
}

#[derive(Serialize)]
pub struct EnrollmentView {
    pub id: EnrollmentId,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    pub status: EnrollmentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    human_email: Option<String>,
    pub requested_from: String,
    pub created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<AgentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_at: Option<DateTime<Utc>>,
}

impl EnrollmentView {
    pub fn new(enrollment: &Enrollment, now: DateTime<Utc>) -> Self {
        let (agent_id, decided_at) = match enrollment.decision {
            Some(Decision::Approved { agent, at, .. }) => (Some(agent), Some(at)),
            Some(Decision::Denied { at, .. }) => (None, Some(at)),
            None => (None, None),
        };
        Self {
            id: enrollment.id,
            name: enrollment.settings.name.clone(),
            description: enrollment.settings.description.clone(),
            status: enrollment.status(now),
            human_email: enrollment.human_email.as_ref().map(|e| e.as_str().to_owned()),
            requested_from: enrollment.requested_from.clone(),
            created_at: enrollment.requested_at,
            expires_at: enrollment.expires_at,
            agent_id,
            decided_at,
        }
    }
}

#[derive(Serialize)]
pub struct EnrollmentList {
    enrollments: Vec<EnrollmentView>,
}

/// The enrollments of the caller's organization: those naming an address one of its
/// members verified, and those approved into it. Newest first. Read from their streams in
/// the log, since the read models keep only what awaits a decision (docs/cost.md): the
/// streams of the members' addresses, and those of the approvals the org's audit trail
/// holds. The work follows the org's enrollments, not the log.
pub async fn of_org(state: &AppState, org: OrgId, now: DateTime<Utc>) -> Result<Vec<EnrollmentView>, ApiError> {
    let emails = member_emails(state, org);
    let mut streams: Vec<StreamId> = emails.iter().map(enrollment::email_enrollments_stream).collect();
    super::audit::index_caught_up(state).await?;
    let approvals = AuditQuery {
        action: Some(APPROVAL_ACTION.into()),
        ..AuditQuery::default()
    };
    let (positions, _) = state
        .audit_index
        .query(&*state.store, org, &approvals, 0, usize::MAX)
        .await
        .map_err(ApiError::internal)?;
    for position in positions {
        let approval = read_at(&*state.store, position).await.map_err(ApiError::internal)?;
        streams.extend(approval.map(|recorded| recorded.stream_id));
    }
    let mut found: Vec<Enrollment> = from_streams(state, streams)
        .await?
        .into_enrollments()
        .filter(|e| e.org() == Some(org) || e.human_email.as_ref().is_some_and(|email| emails.contains(email)))
        .collect();
    found.sort_by(|a, b| b.requested_at.cmp(&a.requested_at).then(b.id.cmp(&a.id)));
    Ok(found
        .iter()
        .map(|enrollment| EnrollmentView::new(enrollment, now))
        .collect())
}

/// The audit action of an approval (projections::audit).
const APPROVAL_ACTION: &str = "agent.enroll_approve";

/// The addresses `org`'s members verified.
fn member_emails(state: &AppState, org: OrgId) -> Vec<Email> {
    state.projector.read(|models| {
        models
            .directory
            .verified_member_emails(org)
            .into_iter()
            .cloned()
            .collect()
    })
}

/// The enrollments `streams` hold, folded from the log in its order.
async fn from_streams(state: &AppState, streams: Vec<StreamId>) -> Result<EnrollmentHistory, ApiError> {
    let streams: BTreeSet<StreamId> = streams.into_iter().collect();
    let mut events = Vec::new();
    for stream in streams {
        events.extend(
            read_stream_up_to(&*state.store, &stream, u64::MAX)
                .await
                .map_err(ApiError::internal)?,
        );
    }
    events.sort_by_key(|recorded| recorded.position);
    let mut history = EnrollmentHistory::default();
    for recorded in &events {
        if let Some(Ok(event)) = Event::decode(recorded) {
            history.apply(recorded, &event);
        }
    }
    Ok(history)
}

/// Enrollment `id` as the log holds it, with the version of its stream, if it is one a
/// member of `org` could be shown: link-only (its own stream; the link's code is checked by
/// whoever asks), or naming an address a member verified. For those the read models no
/// longer keep: decided, or expired and swept.
pub async fn stored(state: &AppState, org: OrgId, id: EnrollmentId) -> Result<Option<(Enrollment, u64)>, ApiError> {
    let mut streams = vec![enrollment::link_enrollment_stream(id)];
    streams.extend(
        member_emails(state, org)
            .iter()
            .map(enrollment::email_enrollments_stream),
    );
    let history = from_streams(state, streams).await?;
    Ok(history
        .with_version(id)
        .map(|(enrollment, version)| (enrollment.clone(), version)))
}

/// GET /v1/agents/enrollments
pub async fn list(State(state): State<AppState>, session: HumanSession) -> Result<Json<EnrollmentList>, ApiError> {
    Ok(Json(EnrollmentList {
        enrollments: of_org(&state, session.user.org_id, session.context.now).await?,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

/// What a decision produced: for an approval, the agent and its key (shown once).
#[allow(clippy::large_enum_variant)] // one per request, returned once: boxing buys nothing
pub enum Decided {
    Approved(AgentCreatedResponse),
    Denied,
}

/// `session`'s human as a decider of `enrollment`, presenting the link's `code` if any.
pub fn decider(models: &ReadModels, session: &HumanSession, enrollment: &Enrollment, code: Option<String>) -> Decider {
    Decider {
        user: session.user.id,
        org: session.user.org_id,
        email_holder_org: enrollment
            .human_email
            .as_ref()
            .and_then(|email| models.directory.verified_user_by_email(email))
            .map(|user| user.org_id),
        code,
    }
}

/// Decides an enrollment for `session`'s human, who may present the link's `code`.
/// An approved agent's key is also emailed to the approving human.
pub async fn decide(
    state: &AppState,
    session: &HumanSession,
    id: EnrollmentId,
    code: Option<String>,
    verdict: Verdict,
) -> Result<Decided, ApiError> {
    let now = session.context.now;
    let (api_key, kept) = new_key()?;
    let agent_id = AgentId::new();
    let metadata = session.metadata();
    // The read models keep only what awaits a decision: one they do not have is looked
    // up in the log, once, so that deciding it again is refused as decided (or expired),
    // not as unknown.
    let looked_up: tokio::sync::Mutex<Option<Option<(Enrollment, u64)>>> = tokio::sync::Mutex::new(None);
    let (looked_up, code) = (&looked_up, &code);
    let (_, mail) = state
        .commands
        .run::<_, _, ApiError, _>(
            || async move {
                let awaiting = state
                    .projector
                    .read(|models| models.enrollments.with_version(id, &models.streams).is_some());
                if awaiting {
                    return Ok(None);
                }
                let mut looked_up = looked_up.lock().await;
                if looked_up.is_none() {
                    *looked_up = Some(self::stored(state, session.user.org_id, id).await?);
                }
                Ok(looked_up.clone().flatten())
            },
            |stored| {
                let (changes, mail) = state.projector.read(|models| {
                    let (enrollment, version) = models
                        .enrollments
                        .with_version(id, &models.streams)
                        .or_else(|| stored.as_ref().map(|(enrollment, version)| (enrollment, *version)))
                        .ok_or(DomainError::NotFound("enrollment"))?;
                    let decider = decider(models, session, enrollment, code.clone());
                    match verdict {
                        Verdict::Deny => {
                            Ok::<_, DomainError>((vec![enrollment::deny(enrollment, version, &decider, now)?], None))
                        }
                        Verdict::Allow => {
                            let mut changes =
                                enrollment::approve(enrollment, version, &decider, agent_id, kept.clone(), now)?;
                            let mail = mail::agent_api_key(
                                session.user.email.clone(),
                                session.user.org_id,
                                agent_id,
                                &enrollment.settings.name,
                                api_key.expose_secret(),
                            );
                            changes.push(mail.queued());
                            Ok((changes, Some(mail)))
                        }
                    }
                })?;
                Ok(Attempt::changes(changes, &metadata, mail)?)
            },
        )
        .await?;
    let Some(mail) = mail else {
        return Ok(Decided::Denied);
    };
    state.mailer.send(mail);
    let agent = state
        .projector
        .read(|models| models.directory.agent(agent_id).map(AgentResponse::from))
        .ok_or_else(|| ApiError::internal("an approved agent is missing from the directory"))?;
    Ok(Decided::Approved(AgentCreatedResponse {
        agent,
        api_key: api_key.expose_secret().to_owned(),
    }))
}

/// POST /v1/agents/enrollments/{id}/approve → {agent, api_key}
pub async fn approve(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(id): PathParams<EnrollmentId>,
) -> Result<Json<AgentCreatedResponse>, ApiError> {
    match decide(&state, &session, id, None, Verdict::Allow).await? {
        Decided::Approved(created) => Ok(Json(created)),
        Decided::Denied => Err(ApiError::internal("an approval was recorded as a denial")),
    }
}

#[derive(Serialize)]
pub struct DeniedResponse {
    id: EnrollmentId,
    status: EnrollmentStatus,
}

/// POST /v1/agents/enrollments/{id}/deny
pub async fn deny(
    State(state): State<AppState>,
    session: HumanSession,
    PathParams(id): PathParams<EnrollmentId>,
) -> Result<Json<DeniedResponse>, ApiError> {
    decide(&state, &session, id, None, Verdict::Deny).await?;
    Ok(Json(DeniedResponse {
        id,
        status: EnrollmentStatus::Denied,
    }))
}
