//! A task attempt's log (the latest try, or ?try=N).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use orchestrator::store::{logs, runs};
use serde::Deserialize;

use super::page;
use crate::AppState;
use crate::api::ApiError;

pub struct Line {
    pub at: String,
    pub stream: String,
    pub line: String,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    run_id: i64,
    task_id: String,
    state: String,
    try_number: i32,
    tries: Vec<i32>,
    lines: Vec<Line>,
}

#[derive(Deserialize)]
pub struct Try {
    #[serde(rename = "try")]
    try_number: Option<i32>,
}

pub async fn show(
    State(state): State<AppState>,
    Path((run_id, task_id)): Path<(i64, String)>,
    Query(query): Query<Try>,
) -> Result<Html<String>, ApiError> {
    let (_, tasks) = runs::get(&state.pool, run_id).await?;
    let task = tasks
        .into_iter()
        .find(|t| t.task_id == task_id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "task_not_found",
                format!("run {run_id} has no task `{task_id}`"),
            )
        })?;
    let lines = logs::attempt(&state.pool, run_id, &task_id, query.try_number).await?;
    page(TaskPage {
        run_id,
        try_number: query.try_number.unwrap_or(task.try_number),
        tries: (1..=task.try_number).collect(),
        state: task.state,
        task_id,
        lines: lines
            .into_iter()
            .map(|l| Line {
                at: l.logged_at.format("%H:%M:%S%.3f").to_string(),
                stream: l.stream,
                line: l.line,
            })
            .collect(),
    })
}
