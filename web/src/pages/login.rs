//! Logging in with the API token sets an HttpOnly, SameSite=Strict cookie.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page;
use crate::AppState;
use crate::auth::COOKIE;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    failed: bool,
}

pub async fn form() -> Response {
    page(LoginPage { failed: false }).into_response()
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

pub async fn submit(State(state): State<AppState>, Form(login): Form<Login>) -> Response {
    if !state.config.token.matches(&login.token) {
        return page(LoginPage { failed: true }).into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        login.token
    );
    ([(SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}
