//! The REST API: JSON under /api/v1, errors as `{"code": ..., "message": ...}` with
//! a stable code, and the status each belongs to; never a 500 for bad input.

pub mod dags;
pub mod runs;

pub use crate::error::ApiError;

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
        .route("/runs/{run_id}/cancel", post(runs::cancel))
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
