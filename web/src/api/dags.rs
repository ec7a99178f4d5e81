//! /api/v1/dags: the DAGs the scheduler loaded, the load errors of the rest, and pausing.

use axum::Json;
use axum::extract::{Path, State};
use orchestrator::Dag;
use orchestrator::store::dags as store;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

fn describe(dag: &Dag, paused: bool) -> Value {
    let mut v = serde_json::to_value(dag).unwrap_or_default();
    v["paused"] = paused.into();
    v
}

/// Every DAG that loads, and every problem of the files that do not.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let bag = state.dags().await?;
    let paused = store::paused(&state.pool).await?;
    let dags: Vec<Value> = bag
        .dags
        .iter()
        .map(|d| describe(d, paused.get(&d.id).copied().unwrap_or(false)))
        .collect();
    let errors: Vec<String> = bag.errors.iter().map(|e| e.to_string()).collect();
    Ok(Json(json!({ "dags": dags, "errors": errors })))
}

pub async fn get(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let dag = state.dag(&dag_id).await?;
    let paused = store::paused(&state.pool).await?;
    Ok(Json(describe(
        &dag,
        paused.get(&dag_id).copied().unwrap_or(false),
    )))
}

async fn set_paused(state: &AppState, dag_id: &str, paused: bool) -> Result<Json<Value>, ApiError> {
    state.dag(dag_id).await?;
    store::set_paused(&state.pool, dag_id, paused).await?;
    Ok(Json(json!({ "dag_id": dag_id, "paused": paused })))
}

pub async fn pause(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &dag_id, true).await
}

pub async fn unpause(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &dag_id, false).await
}
