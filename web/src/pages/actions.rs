//! What the pages change: pause and unpause a DAG, trigger a run with a conf,
//! backfill, clear a task (alone or with its downstream), mark it success or failed.
//! Each needs the login cookie, even where reads are public; SameSite=Strict keeps other
//! sites from sending it.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use orchestrator::TaskState;
use orchestrator::store::{dags as store, runs, transitions};
use serde::Deserialize;

use super::page;
use crate::AppState;

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

#[derive(Deserialize)]
pub struct PauseForm {
    /// The page to return to: one of this site's paths, else the DAGs page.
    #[serde(default)]
    back: Option<String>,
}

/// `back` when it is a path on this site (never another site's address).
fn local(back: Option<String>) -> String {
    back.filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or_else(|| "/".into())
}

async fn set_paused(state: &AppState, dag_id: &str, paused: bool, back: String) -> Response {
    let result = async {
        state
            .dag(dag_id)
            .await
            .map_err(|_| format!("no DAG `{dag_id}` is loaded"))?;
        store::set_paused(&state.pool, dag_id, paused)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&back).into_response(),
        Err(message) => not_done(StatusCode::NOT_FOUND, message, "/".into()),
    }
}

pub async fn pause(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Form(form): Form<PauseForm>,
) -> Response {
    set_paused(&state, &dag_id, true, local(form.back)).await
}

pub async fn unpause(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Form(form): Form<PauseForm>,
) -> Response {
    set_paused(&state, &dag_id, false, local(form.back)).await
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
    let dag = match loaded(&state, &dag_id).await {
        Ok(dag) => dag,
        Err(page) => return *page,
    };
    match runs::trigger(&state.pool, &dag, conf, None).await {
        Ok(run_id) => Redirect::to(&format!("/runs/{run_id}")).into_response(),
        Err(e) => refused(e, back),
    }
}

/// The DAG as it loads now, or the page that says it does not.
async fn loaded(state: &AppState, dag_id: &str) -> Result<orchestrator::Dag, Box<Response>> {
    state.dag(dag_id).await.map_err(|_| {
        Box::new(not_done(
            StatusCode::NOT_FOUND,
            format!("no DAG `{dag_id}` is loaded"),
            "/".into(),
        ))
    })
}

/// The page for an engine error: 404/409/422 with its message, 500 for the store.
fn refused(e: orchestrator::Error, back: String) -> Response {
    use orchestrator::Error::*;
    let status = match &e {
        NotFound(_) => StatusCode::NOT_FOUND,
        Conflict(_) => StatusCode::CONFLICT,
        Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Database(_) | Migrate(_) => {
            tracing::error!(error = %e, "An action from the pages failed.");
            return not_done(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the state store failed".into(),
                back,
            );
        }
    };
    not_done(status, e.to_string(), back)
}

#[derive(Deserialize)]
pub struct BackfillForm {
    from: String,
    to: String,
}

/// A `datetime-local` field (`2026-05-01T15:00`, seconds optional), read as UTC.
fn utc(field: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text.trim(), f).ok())
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{field} `{text}` is not a date and time such as 2026-05-01T15:00"))
}

pub async fn backfill(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    Form(form): Form<BackfillForm>,
) -> Response {
    let back = format!("/dags/{dag_id}");
    let (from, to) = match (utc("from", &form.from), utc("to", &form.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => return not_done(StatusCode::BAD_REQUEST, e, back),
    };
    let dag = match loaded(&state, &dag_id).await {
        Ok(dag) => dag,
        Err(page) => return *page,
    };
    match runs::backfill(&state.pool, &dag, from, to).await {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(e) => refused(e, back),
    }
}

#[derive(Deserialize)]
pub struct ClearForm {
    #[serde(default)]
    downstream: Option<String>,
}

pub async fn clear(
    State(state): State<AppState>,
    Path((run_id, task_id)): Path<(i64, String)>,
    Form(form): Form<ClearForm>,
) -> Response {
    let back = format!("/runs/{run_id}/tasks/{task_id}");
    let tasks = [task_id];
    match transitions::clear(&state.pool, run_id, &tasks, form.downstream.is_some()).await {
        Ok(_) => Redirect::to(&format!("/runs/{run_id}")).into_response(),
        Err(e) => refused(e, back),
    }
}

/// Cancels a whole run from its page.
pub async fn cancel(State(state): State<AppState>, Path(run_id): Path<i64>) -> Response {
    let back = format!("/runs/{run_id}");
    match orchestrator::store::cancel::cancel_run(
        &state.pool,
        run_id,
        "cancelled from the run's page",
    )
    .await
    {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(e) => refused(e, back),
    }
}

#[derive(Deserialize)]
pub struct MarkForm {
    state: String,
}

pub async fn mark(
    State(state): State<AppState>,
    Path((run_id, task_id)): Path<(i64, String)>,
    Form(form): Form<MarkForm>,
) -> Response {
    let back = format!("/runs/{run_id}/tasks/{task_id}");
    let Some(target) = TaskState::parse(&form.state) else {
        return refused(
            orchestrator::Error::Invalid(format!("no task state `{}`", form.state)),
            back,
        );
    };
    match transitions::mark(&state.pool, run_id, &task_id, target).await {
        Ok(()) => Redirect::to(&format!("/runs/{run_id}")).into_response(),
        Err(e) => refused(e, back),
    }
}

#[cfg(test)]
mod tests {
    use super::local;

    #[test]
    fn only_paths_on_this_site_are_returned_to() {
        assert_eq!(local(Some("/dags/hello".into())), "/dags/hello");
        for elsewhere in [
            "//evil.example/x",
            "https://evil.example",
            "dags",
            "/\\evil.example",
        ] {
            assert_eq!(local(Some(elsewhere.into())), "/", "{elsewhere}");
        }
        assert_eq!(local(None), "/");
    }
}
