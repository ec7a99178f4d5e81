//! The REST API: JSON under /api/v1, errors as `{"code": ..., "message": ...}` with
//! a stable code, and the status each belongs to; never a 500 for bad input.

pub mod dags;
pub mod runs;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde_json::json;

use crate::AppState;
use crate::auth::require_token;

pub fn router(state: AppState) -> Router<AppState> {
    let api = Router::new()
        .route("/dags", get(dags::list))
        .route("/dags/{dag_id}", get(dags::get))
        .route("/dags/{dag_id}/pause", post(dags::pause))
        .route("/dags/{dag_id}/unpause", post(dags::unpause))
        .route("/dags/{dag_id}/runs", post(runs::trigger))
        .route("/dags/{dag_id}/backfill", post(runs::backfill))
        .route("/runs/{run_id}", get(runs::get))
        .route("/runs/{run_id}/clear", post(runs::clear))
        .route("/runs/{run_id}/tasks/{task_id}/logs", get(runs::task_logs))
        .route("/runs/{run_id}/tasks/{task_id}/state", post(runs::mark))
        .route_layer(middleware::from_fn_with_state(state, require_token));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/api/openapi.yaml", get(openapi))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
}

/// The OpenAPI document of /api/v1 (public: it holds no data).
async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        include_str!("../../openapi.yaml"),
    )
}

/// 200 when the state store answers.
async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "state_store_down",
            format!("the state store does not answer: {e}"),
        )
        .into_response(),
    }
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl From<orchestrator::Error> for ApiError {
    fn from(e: orchestrator::Error) -> Self {
        use orchestrator::Error::*;
        match e {
            NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            other => {
                tracing::error!(error = %other, "The API failed.");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed; its log says why",
                )
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        orchestrator::Error::Database(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "code": self.code, "message": self.message }));
        (self.status, body).into_response()
    }
}
