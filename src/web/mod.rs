//! The few pages a human uses in the browser: sign-in, the enrollment approval page that
//! `approval_url` and the emailed Allow/Deny links open, the page that confirms an email
//! address, and an overview of what awaits them. Server-rendered, no scripts. A GET never changes anything (mail scanners follow
//! links); every change is a POST form carrying the browser's CSRF token (csrf.rs).

mod csrf;
mod html;
mod session;
mod verify_email;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use domain::EnrollmentId;
use domain::enrollment::{Enrollment, EnrollmentStatus};
use domain::share::Accessor;
use serde::Deserialize;

use crate::api::ApiError;
use crate::api::enrollments::{self, Decided, Verdict};
use crate::api::extract::{PathParams, QueryParams, RequestContext};
use crate::api::shares;
use crate::app::AppState;
use csrf::FormToken;
use html::{escape, page};
use session::PageSession;

/// The value of the request's cookie `name`, if it sent one.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.to_owned())
}

/// The pages' routes, every one behind the CSRF guard.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(
            "/verify-email",
            get(verify_email::confirm_page).post(verify_email::confirm),
        )
        .route(
            "/enroll/{enrollment_id}",
            get(enrollment_page).post(enrollment_decision),
        )
        .route_layer(middleware::from_fn_with_state(state, csrf::guard))
}

/// Where to go after signing in: only paths of this site, never another host.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if is_local_path(path) => path,
        _ => "/",
    }
}

/// A path a browser cannot read as another host. Browsers read `\` as `/` and drop tabs
/// and line breaks from a URL, so `/\evil.com` and `/\t/evil.com` both leave for
/// `//evil.com`, another host: any control character, whitespace or backslash disqualifies
/// a path, and so does a leading `//`.
fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

fn sign_in_first(path_and_query: &str) -> Response {
    let next: String = url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

fn error_page(error: ApiError) -> Response {
    if let ApiError::Internal(cause) = &error {
        tracing::error!(%cause, "page failed");
    }
    let status = error.status();
    let body = format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/\">Back to keyward</a></p>",
        escape(status.canonical_reason().unwrap_or("Error")),
        escape(&error.to_string())
    );
    page(status, "Error", &body)
}

fn bad_form(rejection: FormRejection) -> Response {
    error_page(ApiError::BadRequest(format!(
        "the form is incomplete: {}",
        rejection.body_text()
    )))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

async fn login_form(token: FormToken, QueryParams(query): QueryParams<LoginQuery>) -> Response {
    login_page(StatusCode::OK, &token, local_path(query.next.as_deref()), None)
}

fn login_page(status: StatusCode, token: &FormToken, next: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in to keyward</h1>{error}\
         <form method=\"post\" action=\"/login\">{csrf}\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <p><button type=\"submit\" id=\"sign-in\">Sign in</button></p></form>",
        csrf = token.input(),
        next = escape(next),
    );
    page(status, "Sign in", &body)
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    context: RequestContext,
    token: FormToken,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return bad_form(rejection),
    };
    let next = local_path(form.next.as_deref()).to_owned();
    match crate::api::auth::page_sign_in(&state, &context, &form.email, form.password).await {
        Ok((token, ttl)) => {
            let secure = state.config.public_url.scheme() == "https";
            let mut response = Redirect::to(&next).into_response();
            if let Some(cookie) = session::set_cookie(&token, ttl, secure) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(ApiError::Unauthorized) => login_page(
            StatusCode::UNAUTHORIZED,
            &token,
            &next,
            Some("Wrong email or password."),
        ),
        Err(error) => error_page(error),
    }
}

/// Ends the cookie's sign-in, so its token is refused from now on even where a copy of it
/// survives (another tab's memory, a proxy's log), then forgets the cookie. No CSRF token:
/// the cookie is SameSite=Lax, so another site's form arrives without it and ends nothing.
async fn logout(State(state): State<AppState>, context: RequestContext, headers: HeaderMap) -> Response {
    if let Some(session) = PageSession::from_headers(&state, &headers, context).await
        && let Err(error) = crate::api::auth::sign_out(&state, &session.human).await
    {
        return error_page(error);
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    response
}

#[derive(Deserialize)]
pub struct EnrollmentQuery {
    code: Option<String>,
    /// Which emailed link was followed: that button is highlighted, nothing more.
    decision: Option<String>,
}

async fn enrollment_page(
    State(state): State<AppState>,
    context: RequestContext,
    token: FormToken,
    headers: HeaderMap,
    PathParams(id): PathParams<EnrollmentId>,
    QueryParams(query): QueryParams<EnrollmentQuery>,
) -> Response {
    let now = context.now;
    let Some(session) = PageSession::from_headers(&state, &headers, context).await else {
        let mut here = format!("/enroll/{id}");
        if let Some(code) = &query.code {
            here.push_str("?code=");
            here.extend(url::form_urlencoded::byte_serialize(code.as_bytes()));
            if let Some(decision) = &query.decision {
                here.push_str("&decision=");
                here.extend(url::form_urlencoded::byte_serialize(decision.as_bytes()));
            }
        }
        return sign_in_first(&here);
    };
    let awaiting = state.projector.read(|models| models.enrollments.get(id).cloned());
    let found = match awaiting {
        Some(enrollment) => Some(enrollment),
        // Decided, or expired: the log has it.
        None => match enrollments::stored(&state, session.human.user.org_id, id).await {
            Ok(stored) => stored.map(|(enrollment, _)| enrollment),
            Err(error) => return error_page(error),
        },
    };
    let enrollment = found.filter(|enrollment| {
        state.projector.read(|models| {
            enrollments::decider(models, &session.human, enrollment, query.code.clone()).may_decide(enrollment)
        })
    });
    let Some(enrollment) = enrollment else {
        return error_page(ApiError::NotFound(
            "no such enrollment, or it is not yours to decide: open the link from the email or the agent".into(),
        ));
    };
    let body = enrollment_body(
        &session,
        &token,
        &enrollment,
        query.code.as_deref(),
        query.decision.as_deref(),
        now,
    );
    page(StatusCode::OK, "Approve agent", &body)
}

fn enrollment_body(
    session: &PageSession,
    token: &FormToken,
    enrollment: &Enrollment,
    code: Option<&str>,
    followed: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    let settings = &enrollment.settings;
    let description = settings.description.as_deref().unwrap_or("(none)");
    let mut body = format!(
        "{header}<h1>An agent asks to join your organization</h1>\
         <dl id=\"enrollment\"><dt>Agent</dt><dd id=\"agent-name\">{name}</dd>\
         <dt>Description</dt><dd id=\"agent-description\">{description}</dd>\
         <dt>Requested from</dt><dd id=\"requested-from\">{ip}</dd>\
         <dt>Requested at</dt><dd>{at}</dd>\
         <dt>Waits until</dt><dd id=\"expires-at\">{expires}</dd>\
         <dt>Status</dt><dd id=\"status\">{status}</dd></dl>",
        header = signed_in_header(session, token),
        name = escape(&settings.name),
        description = escape(description),
        ip = escape(&enrollment.requested_from),
        at = enrollment.requested_at.format("%Y-%m-%d %H:%M:%S UTC"),
        expires = enrollment.expires_at.format("%Y-%m-%d %H:%M:%S UTC"),
        status = status_text(enrollment.status(now)),
    );
    if enrollment.status(now) == EnrollmentStatus::Pending {
        let chosen = |decision: &str| {
            if followed == Some(decision) { " chosen" } else { "" }
        };
        if let Some(decision @ ("allow" | "deny")) = followed {
            body.push_str(&format!(
                "<p class=\"note\">You followed the {decision} link. Nothing has changed yet: confirm below.</p>"
            ));
        }
        let form = |decision: &str, label: &str, class: &str| {
            format!(
                "<form class=\"inline\" method=\"post\" action=\"/enroll/{id}\">{csrf}\
                 <input type=\"hidden\" name=\"code\" value=\"{code}\">\
                 <input type=\"hidden\" name=\"decision\" value=\"{decision}\">\
                 <button type=\"submit\" id=\"{decision}\" class=\"{class}{chosen}\">{label}</button></form>",
                id = enrollment.id,
                csrf = token.input(),
                code = escape(code.unwrap_or_default()),
                chosen = chosen(decision),
            )
        };
        body.push_str(&form("allow", "Allow", "allow"));
        body.push_str(&form("deny", "Deny", "deny"));
        body.push_str(
            "<p class=\"note\">An allowed agent starts with no access at all: grant it a policy afterwards. \
             Its API key is emailed to you.</p>",
        );
    }
    body
}

fn status_text(status: EnrollmentStatus) -> &'static str {
    match status {
        EnrollmentStatus::Pending => "pending your decision",
        EnrollmentStatus::Approved => "approved",
        EnrollmentStatus::Denied => "denied",
        EnrollmentStatus::Expired => "expired: nobody decided in time",
    }
}

fn signed_in_header(session: &PageSession, token: &FormToken) -> String {
    format!(
        "<header><span class=\"note\">Signed in as {email}</span>\
         <form class=\"inline\" method=\"post\" action=\"/logout\">{csrf}<button type=\"submit\">Sign out</button></form></header>",
        email = escape(session.human.user.email.as_str()),
        csrf = token.input(),
    )
}

#[derive(Deserialize)]
pub struct DecisionForm {
    decision: String,
    code: Option<String>,
}

async fn enrollment_decision(
    State(state): State<AppState>,
    context: RequestContext,
    token: FormToken,
    headers: HeaderMap,
    PathParams(id): PathParams<EnrollmentId>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    let Some(session) = PageSession::from_headers(&state, &headers, context).await else {
        return sign_in_first(&format!("/enroll/{id}"));
    };
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return bad_form(rejection),
    };
    let verdict = match form.decision.as_str() {
        "allow" => Verdict::Allow,
        "deny" => Verdict::Deny,
        _ => return error_page(ApiError::BadRequest("decision must be allow or deny".into())),
    };
    let code = form.code.filter(|code| !code.is_empty());
    match enrollments::decide(&state, &session.human, id, code, verdict).await {
        Ok(Decided::Approved(_)) => {
            let body = format!(
                "{header}<h1 id=\"outcome\">Agent allowed</h1>\
                 <p>The agent was registered in your organization with no access. Its API key was emailed to \
                 {email}; grant it a policy to let it read secrets.</p><p><a href=\"/\">Back to keyward</a></p>",
                header = signed_in_header(&session, &token),
                email = escape(session.human.user.email.as_str()),
            );
            page(StatusCode::OK, "Agent allowed", &body)
        }
        Ok(Decided::Denied) => {
            let body = format!(
                "{header}<h1 id=\"outcome\">Agent denied</h1><p>The enrollment was refused; nothing was created.</p>\
                 <p><a href=\"/\">Back to keyward</a></p>",
                header = signed_in_header(&session, &token)
            );
            page(StatusCode::OK, "Agent denied", &body)
        }
        Err(error) => error_page(error),
    }
}

/// What awaits the signed-in human: their organization's enrollments and what was shared
/// with them.
async fn home(
    State(state): State<AppState>,
    context: RequestContext,
    token: FormToken,
    headers: HeaderMap,
) -> Response {
    let now = context.now;
    let Some(session) = PageSession::from_headers(&state, &headers, context).await else {
        return sign_in_first("/");
    };
    let views = match enrollments::of_org(&state, session.human.user.org_id, now).await {
        Ok(views) => views,
        Err(error) => return error_page(error),
    };
    let rows: String = views
        .iter()
        .map(|view| {
            format!(
                "<tr><td><a href=\"/enroll/{id}\">{name}</a></td><td>{status}</td><td>{from}</td><td>{at}</td></tr>",
                id = view.id,
                name = escape(&view.name),
                status = status_text(view.status),
                from = escape(&view.requested_from),
                at = view.created_at.format("%Y-%m-%d %H:%M UTC"),
            )
        })
        .collect();
    let table = if rows.is_empty() {
        "<p class=\"note\">No agent has asked to join.</p>".to_owned()
    } else {
        format!(
            "<table id=\"enrollments\"><tr><th>Agent</th><th>Status</th><th>From</th><th>Requested</th></tr>{rows}</table>"
        )
    };
    let accessor = Accessor::User {
        id: session.human.user.id,
        email: session.human.user.email.clone(),
    };
    let shares = shares::inbound_of(&state, &accessor, now);
    let share_rows: String = shares
        .iter()
        .map(|share| {
            let uses = match share.max_access_count {
                Some(limit) => format!("{} of {limit}", share.access_count),
                None => share.access_count.to_string(),
            };
            let state = match (share.is_expired, share.is_accepted) {
                (true, _) => "expired",
                (false, true) => "accepted",
                (false, false) => "new",
            };
            format!(
                "<tr><td>{path}</td><td>{by}</td><td>{uses}</td><td>{expires}</td><td>{state}</td>\
                 <td><code>GET /v1/share/{id}</code></td></tr>",
                path = escape(&share.secret_path),
                by = escape(&share.shared_by.to_string()),
                expires = share.expires_at.format("%Y-%m-%d %H:%M UTC"),
                id = share.id,
            )
        })
        .collect();
    let share_table = if share_rows.is_empty() {
        "<p class=\"note\">Nothing was shared with you.</p>".to_owned()
    } else {
        format!(
            "<table id=\"inbound-shares\"><tr><th>Secret</th><th>From</th><th>Opened</th><th>Expires</th>\
             <th>State</th><th>Open with</th></tr>{share_rows}</table>"
        )
    };
    let body = format!(
        "{header}<h1>keyward</h1><h2>Agent enrollments</h2>{table}<h2>Shared with you</h2>{share_table}",
        header = signed_in_header(&session, &token)
    );
    page(StatusCode::OK, "keyward", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_goes_back_to_paths_of_this_site() {
        for path in ["/", "/enroll/0190?code=abc", "/a//b", "/%09/evil.com"] {
            assert_eq!(local_path(Some(path)), path);
        }
    }

    #[test]
    fn sign_in_never_goes_to_another_host() {
        for next in [
            "//evil.com",
            "/\\evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\r\n/evil.com",
            "/\u{0}/evil.com",
            "/\u{7f}/evil.com",
            "/\u{85}/evil.com",
            "/ /evil.com",
            "/\u{a0}/evil.com",
            "/\u{2028}/evil.com",
            "https://evil.com",
            "evil.com",
            "",
        ] {
            assert_eq!(local_path(Some(next)), "/", "{next:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
