//! RFC 7807 problem+json: the one place where errors become HTTP responses.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::change::DomainError;
use domain::share::AccessRefused;
use serde::Serialize;

use crate::app::AppError;
use crate::app::commands::CommandError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    /// A problem identified by its status alone (RFC 7807 `about:blank`).
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response()
    }
}

/// Every way a request can fail. Details are written for the caller: they never hold a
/// secret value, a key or a token, and 401s never say which part of the credentials
/// was wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid or missing credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("too many requests; retry in {retry_after_seconds} s")]
    TooManyRequests { retry_after_seconds: u64 },
    /// Understood, but it cannot be done as asked: the chain says it would fail (a simulation
    /// reverted, a call cannot be estimated), or its Idempotency-Key was used for another request.
    #[error("{0}")]
    Unprocessable(String),
    /// A server keyward depends on (a chain's RPC node) failed or refused.
    #[error("{0}")]
    BadGateway(String),
    /// Not answerable yet, but soon: a read model behind the log (the audit index catching up).
    #[error("{detail}; retry in {retry_after_seconds} s")]
    Unavailable { detail: String, retry_after_seconds: u64 },
    /// A fault of keyward or its database: logged in full, answered without detail.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        ApiError::Internal(error.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        let mut response = Problem::new(self.status(), self.to_string()).into_response();
        match &self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_seconds }
            | ApiError::Unavailable {
                retry_after_seconds, ..
            } => {
                if let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid(detail) => ApiError::BadRequest(detail),
            DomainError::Conflict(detail) => ApiError::Conflict(detail),
            DomainError::Forbidden(detail) => ApiError::Forbidden(detail),
            DomainError::Gone(detail) => ApiError::Gone(detail),
            DomainError::TooSoon { retry_after_seconds } => ApiError::TooManyRequests { retry_after_seconds },
            DomainError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        AppError::from(error).into()
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Domain(domain) => domain.into(),
            AppError::Contended(what) => ApiError::Conflict(format!("{what}; retry")),
            AppError::ShareRefused(refusal) => match refusal {
                // A share its sharer no longer stands behind is over, as a revoked one is.
                // A locked share is not found either (`visible_to` in domain/src/share.rs).
                AccessRefused::NotFound | AccessRefused::SharerWithdrawn => {
                    ApiError::NotFound("share not found".into())
                }
                AccessRefused::Expired(_) | AccessRefused::UsedUp(_) => ApiError::Gone(refusal.to_string()),
                AccessRefused::Passphrase | AccessRefused::Address => ApiError::Forbidden(refusal.to_string()),
            },
            AppError::Throttled { retry_after_seconds } => ApiError::TooManyRequests { retry_after_seconds },
            AppError::Unavailable {
                detail,
                retry_after_seconds,
            } => ApiError::Unavailable {
                detail,
                retry_after_seconds,
            },
            AppError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadRequest(without_values(&rejection.body_text()))
    }
}

/// Serde quotes the offending value in its messages (``invalid type: integer `1234`,
/// expected a string``); that value may be a secret sent in the wrong shape, so it is cut
/// out. Field names stay: they are what tells the caller what to fix.
fn without_values(message: &str) -> String {
    const MARKERS: [&str; 3] = ["invalid type: ", "invalid value: ", "unknown variant "];
    let Some(start) = MARKERS
        .iter()
        .find_map(|marker| message.find(marker).map(|at| at + marker.len()))
    else {
        return message.to_owned();
    };
    let end = message[start..]
        .find(", expected")
        .map_or(message.len(), |offset| start + offset);
    let mut quote = None;
    let mut offending = String::new();
    for c in message[start..end].chars() {
        match quote {
            Some(open) if c == open => {
                quote = None;
                offending.push_str("(withheld)");
            }
            Some(_) => {}
            None if c == '`' || c == '"' => quote = Some(c),
            None => offending.push(c),
        }
    }
    format!("{}{offending}{}", &message[..start], &message[end..])
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

pub async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "no such resource")
}

pub async fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this resource")
}

#[cfg(test)]
mod tests {
    use super::without_values;

    #[test]
    fn offending_values_are_cut_from_body_errors() {
        assert_eq!(
            without_values("value: invalid type: integer `8472910`, expected a string at line 1 column 15"),
            "value: invalid type: integer (withheld), expected a string at line 1 column 15"
        );
        assert_eq!(
            without_values("type: unknown variant `hunter2`, expected one of `password`, `note`"),
            "type: unknown variant (withheld), expected one of `password`, `note`"
        );
        assert_eq!(
            without_values("missing field `name` at line 1"),
            "missing field `name` at line 1"
        );
        assert_eq!(
            without_values(r#"x: invalid value: string "s3cret", expected uuid"#),
            "x: invalid value: string (withheld), expected uuid"
        );
    }
}
