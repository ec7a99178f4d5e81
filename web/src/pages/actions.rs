//! What the pages change: pause and unpause a DAG, trigger a run with a conf. Each
//! needs the login cookie, even where reads are public; SameSite=Strict keeps other
//! sites from sending it.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use orchestrator::store::{dags as store, runs};
use serde::Deserialize;

use super::page;
use crate::AppState;
use crate::api::dags::find;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    message: String,
    back: String,
}

/// The page that says why an action was not done.
fn not_done(status: StatusCode, message: String, back: String) -> Response {
    (status, page(ErrorPage { message, back })).into_response()
}

async fn set_paused(state: &AppState, dag_id: &str, paused: bool) -> Response {
    let bag = state.dags();
    let result = async {
        let dag = find(&bag, dag_id).map_err(|_| format!("no DAG `{dag_id}` loads"))?;
        store::upsert(&state.pool, &dag)
            .await
            .map_err(|e| e.to_string())?;
        store::set_paused(&state.pool, dag_id, paused)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/").into_response(),
        Err(message) => not_done(StatusCode::NOT_FOUND, message, "/".into()),
    }
}

pub async fn pause(State(state): State<AppState>, Path(dag_id): Path<String>) -> Response {
    set_paused(&state, &dag_id, true).await
}

pub async fn unpause(State(state): State<AppState>, Path(dag_id): Path<String>) -> Response {
    set_paused(&state, &dag_id, false).await
}

#[derive(Deserialize)]
pub struct TriggerForm {
    #[serde(default)]
    conf: String,
}

pub async fn trigger(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Form(form): Form<TriggerForm>,
) -> Response {
    let back = format!("/dags/{dag_id}");
    let text = if form.conf.trim().is_empty() {
        "{}"
    } else {
        form.conf.as_str()
    };
    let conf: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return not_done(
                StatusCode::BAD_REQUEST,
                format!("conf is not JSON: {e}"),
                back,
            );
        }
    };
    let bag = state.dags();
    let Ok(dag) = find(&bag, &dag_id) else {
        return not_done(
            StatusCode::NOT_FOUND,
            format!("no DAG `{dag_id}` loads"),
            "/".into(),
        );
    };
    match runs::trigger(&state.pool, &dag, conf, None).await {
        Ok(run_id) => Redirect::to(&format!("/runs/{run_id}")).into_response(),
        Err(orchestrator::Error::Database(e)) => {
            tracing::error!(error = %e, "A trigger from the pages failed.");
            not_done(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the state store failed".into(),
                back,
            )
        }
        Err(e) => not_done(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), back),
    }
}
