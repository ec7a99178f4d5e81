//! /metrics: the state store read at scrape time, in the OpenMetrics text format.
//! Task outcomes and durations, the queue, runs, workers, what the lander wrote and
//! what load_bronze loaded. Public, like /healthz: it carries counts, no secrets.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::error::ApiError;

type Labels = Vec<(&'static str, String)>;

pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let pool = &state.pool;
    let mut registry = Registry::with_prefix("setlist");

    let tasks = Family::<Labels, Gauge>::default();
    registry.register(
        "task_instances",
        "Task instances by state (state=queued is the queue)",
        tasks.clone(),
    );
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state::text, count(*) FROM setlist.task_instances GROUP BY state")
            .fetch_all(pool)
            .await?;
    for (s, n) in rows {
        tasks.get_or_create(&vec![("state", s)]).set(n);
    }

    let runs = Family::<Labels, Gauge>::default();
    registry.register("dag_runs", "DAG runs by DAG and state", runs.clone());
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT dag_id, state::text, count(*) FROM setlist.dag_runs GROUP BY dag_id, state",
    )
    .fetch_all(pool)
    .await?;
    for (dag, s, n) in rows {
        runs.get_or_create(&vec![("dag_id", dag), ("state", s)])
            .set(n);
    }

    let attempts = Family::<Labels, Counter>::default();
    let seconds = Family::<Labels, Counter<f64, AtomicU64>>::default();
    registry.register(
        "task_attempts",
        "Finished task attempts by kind and outcome",
        attempts.clone(),
    );
    registry.register(
        "task_attempt_seconds",
        "Time spent in finished task attempts, by kind and outcome",
        seconds.clone(),
    );
    let failures = Family::<Labels, Counter>::default();
    registry.register(
        "task_failures",
        "Failed task attempts by kind and reason (error, timeout, cancelled, worker_lost, invalid)",
        failures.clone(),
    );
    let rows: Vec<(String, String, Option<String>, i64, f64)> = sqlx::query_as(
        "SELECT t.kind, a.state::text, a.failure_reason::text, count(*),
                coalesce(sum(extract(epoch FROM a.ended_at - a.started_at)), 0)::float8
         FROM setlist.attempts a JOIN setlist.task_instances t ON t.id = a.ti_id
         WHERE a.state <> 'running' GROUP BY t.kind, a.state, a.failure_reason",
    )
    .fetch_all(pool)
    .await?;
    for (kind, outcome, reason, n, secs) in rows {
        let labels = vec![("kind", kind.clone()), ("outcome", outcome)];
        attempts.get_or_create(&labels).inc_by(n as u64);
        seconds.get_or_create(&labels).inc_by(secs);
        if let Some(reason) = reason {
            failures
                .get_or_create(&vec![("kind", kind), ("reason", reason)])
                .inc_by(n as u64);
        }
    }

    let workers = Family::<Labels, Gauge>::default();
    registry.register("workers", "Workers by state", workers.clone());
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state::text, count(*) FROM setlist.workers GROUP BY state")
            .fetch_all(pool)
            .await?;
    for (s, n) in rows {
        workers.get_or_create(&vec![("state", s)]).set(n);
    }

    let landed = Family::<Labels, Counter>::default();
    registry.register("lander", "What the lander wrote, by topic", landed.clone());
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT topic, count(*), coalesce(sum(rows), 0)::bigint, coalesce(sum(dead_letters), 0)::bigint,
                coalesce(sum(bytes), 0)::bigint
         FROM setlist.raw_objects WHERE state = 'written' GROUP BY topic",
    )
    .fetch_all(pool)
    .await?;
    for (topic, objects, rows, dead, bytes) in rows {
        for (what, n) in [
            ("objects", objects),
            ("rows", rows),
            ("dead_letters", dead),
            ("bytes", bytes),
        ] {
            landed
                .get_or_create(&vec![("topic", topic.clone()), ("what", what.to_string())])
                .inc_by(n as u64);
        }
    }

    let loaded = Family::<Labels, Counter>::default();
    registry.register(
        "bronze_loaded",
        "What load_bronze tasks loaded",
        loaded.clone(),
    );
    let (objects, rows): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum((output->>'objects')::bigint), 0)::bigint, coalesce(sum((output->>'rows')::bigint), 0)::bigint
         FROM setlist.task_instances WHERE kind = 'load_bronze' AND state = 'success'",
    )
    .fetch_one(pool)
    .await?;
    loaded
        .get_or_create(&vec![("what", "objects".into())])
        .inc_by(objects as u64);
    loaded
        .get_or_create(&vec![("what", "rows".into())])
        .inc_by(rows as u64);

    let mut body = String::new();
    encode(&mut body, &registry).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the metrics could not be written",
        )
    })?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
