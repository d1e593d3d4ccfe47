//! Forms posted from other sites. Every form of these pages carries, in its `csrf` field,
//! the value of a cookie only this site can read (`keyward_csrf`: HttpOnly, SameSite=Lax),
//! and every POST to these pages must present both, equal. Another site can make a browser
//! send a form here, but cannot know that value; a Lax cookie is not even sent with its
//! POST. Before that, a POST the browser marks as sent by another site (`Sec-Fetch-Site`)
//! is refused outright.
//!
//! The cookie is the browser's, not the session's, so it guards the sign-in form as well:
//! without it, any site could sign a visitor's browser into the site's own account (login
//! CSRF) and have them approve an agent or read shares there. One guard, a layer over every
//! route of the pages, so no form can be added without it.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error_page;
use crate::api::ApiError;
use crate::app::AppState;

pub const COOKIE: &str = "keyward_csrf";
/// The form field that must hold the cookie's value.
pub const FIELD: &str = "csrf";
/// The largest form the pages take: a sign-in's password is at most 1 KiB.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The value this browser's forms carry, for the page being rendered.
#[derive(Debug, Clone)]
pub struct FormToken(String);

impl FormToken {
    /// The hidden input every form of these pages starts with.
    pub fn input(&self) -> String {
        format!("<input type=\"hidden\" name=\"{FIELD}\" value=\"{}\">", self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for FormToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<FormToken>()
            .cloned()
            .ok_or_else(|| error_page(ApiError::internal("a page was routed around the CSRF guard")))
    }
}

/// The layer over every page: refuses a POST without this browser's token, and hands each
/// page the token its forms carry, setting the cookie if the browser had none.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let cookie = cookie_token(request.headers());
    let (mut parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        let from_elsewhere = parts
            .headers
            .get("sec-fetch-site")
            .is_some_and(|site| !matches!(site.as_bytes(), b"same-origin" | b"none"));
        if from_elsewhere {
            return refused();
        }
        let Ok(form) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return error_page(ApiError::BadRequest(format!(
                "the form is larger than {MAX_FORM_BYTES} bytes"
            )));
        };
        let presented = url::form_urlencoded::parse(&form)
            .find(|(name, _)| name == FIELD)
            .map(|(_, value)| value);
        let matches = match (&cookie, presented) {
            (Some(cookie), Some(presented)) => domain::constant_time::eq(cookie.as_bytes(), presented.as_bytes()),
            _ => false,
        };
        if !matches {
            return refused();
        }
        Body::from(form)
    } else {
        body
    };
    let (token, new) = match cookie {
        Some(token) => (token, false),
        None => match new_token() {
            Ok(token) => (token, true),
            Err(error) => return error_page(error),
        },
    };
    parts.extensions.insert(FormToken(token.clone()));
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if new {
        let secure = state.config.public_url.scheme() == "https";
        if let Some(cookie) = set_cookie(&token, secure) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

fn refused() -> Response {
    error_page(ApiError::Forbidden(
        "this form is stale or came from another site: reload the page and try again".into(),
    ))
}

/// 32 random bytes, hex.
fn new_token() -> Result<String, ApiError> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(ApiError::internal)?;
    Ok(hex::encode(random))
}

/// The browser's token, if its cookie holds one this site could have set.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    super::cookie(headers, COOKIE)
        .filter(|value| value.len() == 64 && value.bytes().all(|byte| byte.is_ascii_hexdigit()))
}

/// Lax like the session's cookie, so the page an emailed link opens finds it; no Max-Age,
/// so it ends with the browser.
fn set_cookie(token: &str, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{secure}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_token_this_site_could_have_set_is_read_from_the_cookies() {
        let token = "0123456789abcdef".repeat(4);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; {COOKIE}={token}; x=1")).unwrap(),
        );
        assert_eq!(cookie_token(&headers), Some(token.clone()));
        for bad in [
            "",
            "abc",
            &"g".repeat(64),
            &format!("{token}0"),
            &format!("\"{}\"", &token[2..]),
        ] {
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("{COOKIE}={bad}")).unwrap(),
            );
            assert_eq!(cookie_token(&headers), None, "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_new_each_time_and_fit_the_cookie() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("{COOKIE}={a}")).unwrap());
        assert_eq!(cookie_token(&headers), Some(a));
    }
}
