//! The server-rendered pages (askama templates in web/templates). Reads need the
//! login cookie unless reads are public; logging in takes the API token.

mod actions;
mod analytics;
mod dags;
mod graph;
mod groups;
mod health;
mod login;
mod runs;
mod tasks;

use askama::Template;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};

use crate::AppState;
use crate::error::ApiError;

pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(dags::list))
        .route("/dags/{dag_id}", get(dags::show))
        .route("/analytics", get(analytics::show))
        .route("/health", get(health::show))
        .route("/runs/{run_id}", get(runs::show))
        .route("/runs/{run_id}/tasks/{task_id}", get(tasks::show))
        .route("/runs/{run_id}/tasks/{task_id}/follow", get(tasks::follow))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_login));
    let actions = Router::new()
        .route("/dags/{dag_id}/pause", post(actions::pause))
        .route("/dags/{dag_id}/unpause", post(actions::unpause))
        .route("/dags/{dag_id}/trigger", post(actions::trigger))
        .route("/dags/{dag_id}/backfill", post(actions::backfill))
        .route("/runs/{run_id}/cancel", post(actions::cancel))
        .route("/runs/{run_id}/tasks/{task_id}/clear", post(actions::clear))
        .route("/runs/{run_id}/tasks/{task_id}/mark", post(actions::mark))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_login_to_change,
        ));
    Router::new()
        .merge(pages)
        .merge(actions)
        .route("/login", get(login::form).post(login::submit))
        .route(
            "/static/setlist.css",
            asset(CSS, include_str!("../../static/setlist.css")),
        )
        .route(
            "/static/analytics.js",
            asset(JS, include_str!("../../static/analytics.js")),
        )
        .route(
            "/static/pages.js",
            asset(JS, include_str!("../../static/pages.js")),
        )
        // Chart.js 4.6.1, vendored (MIT; web/static/vendor/chart-4.6.1.LICENSE.md).
        .route(
            "/static/vendor/chart-4.6.1.umd.min.js",
            asset(
                JS,
                include_str!("../../static/vendor/chart-4.6.1.umd.min.js"),
            ),
        )
}

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// A file of web/static, built into the binary, served with its content type.
fn asset(content_type: &'static str, body: &'static str) -> MethodRouter<AppState> {
    get(move || async move { ([(CONTENT_TYPE, content_type)], body) })
}

/// Pages need the login cookie, unless reads are public.
async fn require_login(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.config.public_reads || crate::auth::cookie_matches(&state, request.headers()) {
        next.run(request).await
    } else {
        Redirect::to("/login").into_response()
    }
}

/// Changes need the login cookie, whether or not reads are public.
async fn require_login_to_change(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if crate::auth::cookie_matches(&state, request.headers()) {
        next.run(request).await
    } else {
        Redirect::to("/login").into_response()
    }
}

/// A template rendered, or a 500 that says it could not be.
fn page(t: impl Template) -> Result<Html<String>, ApiError> {
    t.render().map(Html).map_err(|e| {
        tracing::error!(error = %e, "A page failed to render.");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the page failed to render",
        )
    })
}

/// A time for people: `2026-05-01 17:00:05` in UTC, or a dash.
fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}
