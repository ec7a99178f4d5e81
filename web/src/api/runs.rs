//! /api/v1 runs: trigger one with a conf, read one with its task instances.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orchestrator::store::runs;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::dags::find;
use crate::AppState;

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
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the body is not a trigger request: {e}"),
            )
        })?
    };
    let conf = body.conf.unwrap_or_else(|| json!({}));
    if !conf.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "conf_not_object",
            "conf must be a JSON object",
        ));
    }
    let bag = orchestrator::dag::load_dir(&state.config.dags_dir, &state.registry);
    let dag = find(&bag, &dag_id)?;
    let run_id = runs::trigger(&state.pool, &dag, conf, body.logical_date).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "dag_id": dag_id, "run_id": run_id })),
    ))
}

/// GET /api/v1/runs/{run_id}: the run and its task instances.
pub async fn get(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run_id: i64 = run_id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_run_id",
            format!("`{run_id}` is not a run id (a whole number)"),
        )
    })?;
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
