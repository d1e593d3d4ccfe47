//! A human's session in the browser: the session token in an HttpOnly cookie. The token is
//! issued for the pages only (`aud` `keyward-page`), in a sign-in of its own that signing
//! out ends: the API refuses it as a bearer token. (The CSRF token its forms carry is the
//! browser's, not the session's: csrf.rs.)

use axum::http::{HeaderMap, HeaderValue};

use crate::api::extract::RequestContext;
use crate::api::session::HumanSession;
use crate::app::AppState;

pub const COOKIE: &str = "keyward_session";

/// The signed-in human.
pub struct PageSession {
    pub human: HumanSession,
}

impl PageSession {
    /// The session of the request's cookie, if it holds a live session of the pages.
    pub async fn from_headers(state: &AppState, headers: &HeaderMap, context: RequestContext) -> Option<Self> {
        let token = session_cookie(headers)?;
        let human = HumanSession::from_page_token(state, &token, context).await.ok()?;
        Some(Self { human })
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    super::cookie(headers, COOKIE).filter(|value| !value.is_empty())
}

/// The Set-Cookie value that starts a session. Lax, so the link in an email arrives
/// signed in; forms are guarded by the CSRF token (csrf.rs).
pub fn set_cookie(token: &str, max_age_seconds: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}"
    ))
    .ok()
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("keyward_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; keyward_session=abc.def; x=1"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc.def"));
        headers.insert(header::COOKIE, HeaderValue::from_static("keyward_session="));
        assert_eq!(session_cookie(&headers), None);
    }
}
