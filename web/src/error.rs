//! The one error every handler returns: a stable code, a message and the HTTP status
//! they belong to, rendered as `{"code": ..., "message": ...}`. Pages, the API, auth
//! and metrics all use it, so it lives beside none of them.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
