//! The page the verification email links to: GET shows a button, POST presents the token.
//! A GET never verifies: mail scanners follow links.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::csrf::FormToken;
use super::html::{escape, page};
use super::{bad_form, error_page};
use crate::api::email_verification::verified_user;
use crate::api::extract::{QueryParams, RequestContext};
use crate::app::AppState;

#[derive(Deserialize)]
pub struct TokenInput {
    token: Option<Zeroizing<String>>,
}

pub async fn confirm_page(form_token: FormToken, QueryParams(query): QueryParams<TokenInput>) -> Response {
    let token = query.token.as_deref().map_or("", |token| token.as_str());
    let body = format!(
        "<h1>Confirm your email address</h1>\
         <p>Someone signed up for keyward with this address. If it was you, confirm it.</p>\
         <form method=\"post\" action=\"/verify-email\">{csrf}\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <p><button type=\"submit\" class=\"allow\" id=\"confirm\">Confirm my address</button></p></form>\
         <p class=\"note\">If it was not you, close this page: nothing is done with the address.</p>",
        token = escape(token),
        csrf = form_token.input(),
    );
    page(StatusCode::OK, "Confirm your email address", &body)
}

pub async fn confirm(
    State(state): State<AppState>,
    context: RequestContext,
    form: Result<Form<TokenInput>, FormRejection>,
) -> Response {
    let Form(form) = match form {
        Ok(form) => form,
        Err(rejection) => return bad_form(rejection),
    };
    let token = form.token.as_deref().map_or("", |token| token.as_str());
    match verified_user(&state, &context, token).await {
        Ok(user) => {
            let body = format!(
                "<h1>Address confirmed</h1><p id=\"verified\">{} is verified.</p>\
                 <p><a href=\"/login\">Sign in</a></p>",
                escape(user.email.as_str())
            );
            page(StatusCode::OK, "Address confirmed", &body)
        }
        Err(error) => error_page(error),
    }
}
