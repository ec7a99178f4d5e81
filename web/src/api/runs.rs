//! /api/v1 runs: trigger one with a conf, read one with its task instances.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orchestrator::TaskState;
use orchestrator::store::{logs, runs, transitions};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// The body of a trigger; all of it optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    conf: Option<Value>,
    #[serde(default)]
    logical_date: Option<DateTime<Utc>>,
}

/// POST /api/v1/dags/{dag_id}/runs: 201 with the new run's id.
pub async fn trigger(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: TriggerBody = if body.iter().all(u8::is_ascii_whitespace) {
        TriggerBody::default()
    } else {
        self::body(&body)?
    };
    let conf = body.conf.unwrap_or_else(|| json!({}));
    if !conf.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "conf_not_object",
            "conf must be a JSON object",
        ));
    }
    let dag = state.dag(&dag_id).await?;
    let run_id = runs::trigger(&state.pool, &dag, conf, body.logical_date).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "dag_id": dag_id, "run_id": run_id })),
    ))
}

pub(crate) fn run_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_run_id",
            format!("`{text}` is not a run id (a whole number)"),
        )
    })
}

/// A JSON body, or a 400 that says what is wrong with it.
fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body is not what this call takes: {e}"),
        )
    })
}

/// GET /api/v1/runs/{run_id}: the run and its task instances.
pub async fn get(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run_id = self::run_id(&run_id)?;
    let (run, tasks) = runs::get(&state.pool, run_id).await?;
    let tasks: Vec<Value> = tasks
        .into_iter()
        .map(|t| {
            json!({
                "task_id": t.task_id,
                "kind": t.kind,
                "state": t.state,
                "try_number": t.try_number,
                "max_tries": t.max_tries,
                "queued_at": t.queued_at,
                "started_at": t.started_at,
                "ended_at": t.ended_at,
                "output": t.output,
            })
        })
        .collect();
    Ok(Json(json!({
        "run_id": run.id,
        "dag_id": run.dag_id,
        "logical_date": run.logical_date,
        "data_interval_start": run.data_interval_start,
        "data_interval_end": run.data_interval_end,
        "run_type": run.run_type,
        "state": run.state,
        "conf": run.conf,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "tasks": tasks,
    })))
}

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    #[serde(rename = "try")]
    try_number: Option<String>,
}

/// GET /api/v1/runs/{run_id}/tasks/{task_id}/logs[?try=N]: one attempt's lines
/// (the latest attempt unless `try` says which).
pub async fn task_logs(
    State(state): State<AppState>,
    Path((run_id, task_id)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    let run_id = self::run_id(&run_id)?;
    let (_, tasks) = runs::get(&state.pool, run_id).await?;
    if !tasks.iter().any(|t| t.task_id == task_id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "task_not_found",
            format!("run {run_id} has no task `{task_id}`"),
        ));
    }
    let try_number = match query.try_number.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<i32>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_try",
                format!("try=`{text}` is not a try number (1, 2, ...)"),
            )
        })?),
    };
    let lines = logs::attempt(&state.pool, run_id, &task_id, try_number).await?;
    Ok(Json(
        json!({ "run_id": run_id, "task_id": task_id, "lines": lines }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClearBody {
    task_ids: Vec<String>,
    #[serde(default)]
    downstream: bool,
}

/// POST /api/v1/runs/{run_id}/clear: runs the named tasks again (and, with
/// `downstream`, every task below them).
pub async fn clear(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let run_id = self::run_id(&run_id)?;
    let request: ClearBody = body(&bytes)?;
    if request.task_ids.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_tasks",
            "task_ids names no task to clear",
        ));
    }
    let cleared =
        transitions::clear(&state.pool, run_id, &request.task_ids, request.downstream).await?;
    Ok(Json(json!({ "run_id": run_id, "cleared": cleared })))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[serde(default)]
    reason: Option<String>,
}

/// POST /api/v1/runs/{run_id}/cancel: cancels a whole run.
pub async fn cancel(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let run_id = self::run_id(&run_id)?;
    let request: CancelBody = if bytes.is_empty() {
        CancelBody::default()
    } else {
        body(&bytes)?
    };
    let reason = request
        .reason
        .unwrap_or_else(|| "cancelled through the API".into());
    let done = orchestrator::store::cancel::cancel_run(&state.pool, run_id, &reason).await?;
    Ok(Json(json!({
        "run_id": run_id,
        "state": done.state,
        "cancelled": done.stopped,
        "stopping": done.stopping,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkBody {
    state: String,
}

/// POST /api/v1/runs/{run_id}/tasks/{task_id}/state: marks a task success or
/// failed by hand; the tasks below it are decided again.
pub async fn mark(
    State(state): State<AppState>,
    Path((run_id, task_id)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let run_id = self::run_id(&run_id)?;
    let request: MarkBody = body(&bytes)?;
    let Some(target @ (TaskState::Success | TaskState::Failed)) = TaskState::parse(&request.state)
    else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_state",
            format!(
                "state `{}` cannot be set by hand; use success or failed",
                request.state
            ),
        ));
    };
    transitions::mark(&state.pool, run_id, &task_id, target).await?;
    Ok(Json(
        json!({ "run_id": run_id, "task_id": task_id, "state": request.state }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// POST /api/v1/dags/{dag_id}/backfill: a run for every interval starting in
/// [from, to) that has none.
pub async fn backfill(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: BackfillBody = body(&bytes)?;
    let dag = state.dag(&dag_id).await?;
    let done = runs::backfill(&state.pool, &dag, request.from, request.to).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "dag_id": dag_id, "created": done.created, "existing": done.existing })),
    ))
}
