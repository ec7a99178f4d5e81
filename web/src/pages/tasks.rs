//! A task attempt's log (the latest try, or ?try=N), followed live while the task
//! is not done, with the task's actions: clear it (alone or with its downstream),
//! mark it success or failed.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use orchestrator::TaskState;
use orchestrator::store::{logs, runs};
use serde::Deserialize;
use serde_json::json;

use super::page;
use crate::AppState;
use crate::error::ApiError;

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
    /// Whether the page follows the log live (the task is not done yet).
    follow: bool,
    /// The sequence number of the last line shown (lines count from 0).
    last_seq: i64,
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
    let try_number = query.try_number.unwrap_or(task.try_number);
    page(TaskPage {
        run_id,
        // A task's log no longer grows once its state is terminal.
        follow: !task.state.is_terminal() && try_number == task.try_number,
        last_seq: lines.len() as i64 - 1,
        try_number,
        tries: (1..=task.try_number).collect(),
        state: task.state.to_string(),
        task_id,
        lines: lines
            .into_iter()
            .map(|l| Line {
                at: clock(l.logged_at),
                stream: l.stream,
                line: l.line,
            })
            .collect(),
    })
}

fn clock(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%H:%M:%S%.3f").to_string()
}

#[derive(Deserialize)]
pub struct Follow {
    #[serde(rename = "try")]
    try_number: i32,
    /// The last line's sequence number the page has (-1 for none).
    #[serde(default = "none_yet")]
    after: i32,
}

fn none_yet() -> i32 {
    -1
}

/// Server-sent events of one try's new lines (`lines`, a JSON array), every half
/// second, until the task is done or a later try starts (`end`, with the task's
/// state); the page then reloads to show where the task is.
pub async fn follow(
    State(state): State<AppState>,
    Path((run_id, task_id)): Path<(i64, String)>,
    Query(query): Query<Follow>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = (state, run_id, task_id, query.try_number, query.after, false);
    let events = futures::stream::unfold(
        start,
        |(state, run, task, try_n, after, ended)| async move {
            if ended {
                return None;
            }
            let mut after = after;
            loop {
                // The task's state first, then the lines: a line written between the
                // two is still sent before the end.
                let now: Option<(TaskState, i32)> = sqlx::query_as(
                "SELECT state, try_number FROM setlist.task_instances WHERE run_id = $1 AND task_id = $2",
            )
            .bind(run)
            .bind(&task)
            .fetch_optional(&state.pool)
            .await
            .ok()
            .flatten();
                let finished = match &now {
                    Some((s, n)) => s.is_terminal() || *n > try_n,
                    None => true,
                };
                let lines = logs::since(&state.pool, run, &task, try_n, after)
                    .await
                    .unwrap_or_default();
                if let Some((seq, _)) = lines.last() {
                    after = *seq;
                }
                if !lines.is_empty() {
                    let data: Vec<_> = lines
                    .into_iter()
                    .map(|(seq, l)| json!({"seq": seq, "at": clock(l.logged_at), "stream": l.stream, "line": l.line}))
                    .collect();
                    let event = Event::default()
                        .event("lines")
                        .json_data(data)
                        .unwrap_or_default();
                    return Some((Ok(event), (state, run, task, try_n, after, false)));
                }
                if finished {
                    let task_state = now.map(|(s, _)| s.to_string()).unwrap_or_default();
                    let event = Event::default().event("end").data(task_state);
                    return Some((Ok(event), (state, run, task, try_n, after, true)));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}
