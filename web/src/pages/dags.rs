//! The DAGs page and one DAG's page: its graph coloured by the latest run, the grid
//! of runs by tasks, run durations over time, trigger and backfill forms, its tasks.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Html;
use chrono::{DateTime, Utc};
use orchestrator::Dag;
use orchestrator::store::dags as store;

use super::{page, when};
use crate::AppState;
use crate::error::ApiError;

pub struct RunSquare {
    pub id: i64,
    pub state: String,
    pub logical_date: String,
}

pub struct DagRow {
    pub id: String,
    pub description: String,
    pub schedule: String,
    pub next_run: String,
    pub paused: bool,
    pub tags: Vec<String>,
    pub runs: Vec<RunSquare>,
}

#[derive(Template)]
#[template(path = "dags.html")]
struct DagsPage {
    dags: Vec<DagRow>,
    errors: Vec<String>,
}

fn schedule(dag: &Dag) -> String {
    match dag.schedule.expr() {
        Some(e) => format!("{e} ({})", dag.schedule.timezone().name()),
        None => "manual".into(),
    }
}

/// When the scheduler next creates a run: the next cron tick, which ends the
/// interval before it.
fn next_run(dag: &Dag) -> String {
    dag.schedule
        .interval_starting_at_or_after(Utc::now())
        .map(|i| when(Some(i.start)))
        .unwrap_or_else(|| "-".into())
}

/// The newest `per_dag` runs of each DAG, newest last.
async fn recent_runs(
    state: &AppState,
    dag_ids: &[String],
    per_dag: i64,
) -> Result<HashMap<String, Vec<RunSquare>>, ApiError> {
    let rows: Vec<(String, i64, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT dag_id, id, state::text, logical_date FROM (
             SELECT dag_id, id, state, logical_date,
                    row_number() OVER (PARTITION BY dag_id ORDER BY logical_date DESC, id DESC) AS n
             FROM setlist.dag_runs WHERE dag_id = ANY ($1)) AS r
         WHERE n <= $2 ORDER BY logical_date, id",
    )
    .bind(dag_ids)
    .bind(per_dag)
    .fetch_all(&state.pool)
    .await?;
    let mut out: HashMap<String, Vec<RunSquare>> = HashMap::new();
    for (dag, id, state, logical_date) in rows {
        out.entry(dag).or_default().push(RunSquare {
            id,
            state,
            logical_date: when(Some(logical_date)),
        });
    }
    Ok(out)
}

pub async fn list(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let bag = state.dags().await?;
    let paused = store::paused(&state.pool).await?;
    let ids: Vec<String> = bag.dags.iter().map(|d| d.id.clone()).collect();
    let mut runs = recent_runs(&state, &ids, 12).await?;
    let dags = bag
        .dags
        .iter()
        .map(|d| DagRow {
            id: d.id.clone(),
            description: d.description.clone(),
            schedule: schedule(d),
            next_run: next_run(d),
            paused: paused.get(&d.id).copied().unwrap_or(false),
            tags: d.tags.clone(),
            runs: runs.remove(&d.id).unwrap_or_default(),
        })
        .collect();
    let errors = bag.errors.iter().map(|e| e.to_string()).collect();
    page(DagsPage { dags, errors })
}

pub struct TaskRow {
    pub id: String,
    pub kind: String,
    pub depends_on: String,
    pub trigger_rule: String,
}

pub struct GridRow {
    pub task_id: String,
    pub cells: Vec<String>,
    /// A group's row (which opens into its tasks' rows), or `None`.
    pub group_of: Option<String>,
    /// The group a task's row sits in (hidden until its group row opens), or `None`.
    pub member_of: Option<String>,
}

#[derive(Template)]
#[template(path = "dag.html")]
struct DagPage {
    id: String,
    graph: super::graph::Graph,
    /// The durations chart's data, JSON: `[{"run": id, "state": s, "seconds": x, "at": date}]`.
    durations: String,
    description: String,
    schedule: String,
    paused: bool,
    runs: Vec<RunSquare>,
    grid: Vec<GridRow>,
    tasks: Vec<TaskRow>,
}

pub async fn show(
    State(state): State<AppState>,
    Path(dag_id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let dag = state.dag(&dag_id).await?;
    let paused = store::paused(&state.pool).await?;
    let runs = recent_runs(&state, std::slice::from_ref(&dag.id), 25)
        .await?
        .remove(&dag.id)
        .unwrap_or_default();
    let run_ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let cells: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT run_id, task_id, state::text FROM setlist.task_instances
         WHERE run_id = ANY ($1) AND map_parent IS NULL",
    )
    .bind(&run_ids)
    .fetch_all(&state.pool)
    .await?;
    let states: HashMap<(i64, &str), &str> = cells
        .iter()
        .map(|(run, task, s)| ((*run, task.as_str()), s.as_str()))
        .collect();
    let cell = |run: i64, task: &str| -> String {
        states.get(&(run, task)).unwrap_or(&"none").to_string()
    };
    let (shape, node_of) = super::groups::fold(&dag.tasks);
    let mut grid: Vec<GridRow> = Vec::new();
    for t in &dag.tasks {
        if let Some(g) = &t.group
            && !grid.iter().any(|r| r.group_of.as_ref() == Some(g))
        {
            let members: Vec<&str> = dag
                .tasks
                .iter()
                .filter(|m| m.group.as_ref() == Some(g))
                .map(|m| m.id.as_str())
                .collect();
            grid.push(GridRow {
                task_id: node_of[&t.id].clone(),
                cells: run_ids
                    .iter()
                    .map(|r| {
                        let cells: Vec<String> = members.iter().map(|m| cell(*r, m)).collect();
                        super::groups::fold_state(cells.iter().map(String::as_str))
                    })
                    .collect(),
                group_of: Some(g.clone()),
                member_of: None,
            });
        }
        grid.push(GridRow {
            task_id: t.id.clone(),
            cells: run_ids.iter().map(|r| cell(*r, &t.id)).collect(),
            group_of: None,
            member_of: t.group.clone(),
        });
    }
    // Members follow their group's row.
    let order: Vec<String> = grid
        .iter()
        .filter(|r| r.member_of.is_none())
        .map(|r| r.group_of.clone().unwrap_or_else(|| r.task_id.clone()))
        .collect();
    grid.sort_by_key(|r| {
        let key = r
            .member_of
            .clone()
            .or(r.group_of.clone())
            .unwrap_or_else(|| r.task_id.clone());
        (
            order.iter().position(|o| *o == key).unwrap_or(usize::MAX),
            r.member_of.is_some(),
        )
    });
    // The graph shows the newest run's states.
    let mut latest: HashMap<String, String> = HashMap::new();
    if let Some(newest) = run_ids.last() {
        for (node, _) in &shape {
            let members: Vec<String> = dag
                .tasks
                .iter()
                .filter(|t| node_of[&t.id] == *node)
                .map(|t| cell(*newest, &t.id))
                .collect();
            latest.insert(
                node.clone(),
                super::groups::fold_state(members.iter().map(String::as_str)),
            );
        }
    }
    let graph = super::graph::layout(&shape, &latest);
    let durations = durations(&state, &dag.id).await?;
    let tasks = dag
        .tasks
        .iter()
        .map(|t| TaskRow {
            id: t.id.clone(),
            kind: t.kind.clone(),
            depends_on: if t.depends_on.is_empty() {
                "-".into()
            } else {
                t.depends_on.join(", ")
            },
            trigger_rule: serde_json::to_value(t.trigger_rule)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
        })
        .collect();
    page(DagPage {
        id: dag.id.clone(),
        graph,
        durations,
        description: dag.description.clone(),
        schedule: schedule(&dag),
        paused: paused.get(&dag.id).copied().unwrap_or(false),
        runs,
        grid,
        tasks,
    })
}

/// How long the DAG's last 100 finished runs took, oldest first, as JSON for the
/// chart.
async fn durations(state: &AppState, dag_id: &str) -> Result<String, ApiError> {
    let rows: Vec<(i64, String, f64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, state::text, extract(epoch FROM ended_at - started_at)::float8, logical_date FROM (
             SELECT id, state, started_at, ended_at, logical_date FROM setlist.dag_runs
             WHERE dag_id = $1 AND ended_at IS NOT NULL AND started_at IS NOT NULL
             ORDER BY logical_date DESC, id DESC LIMIT 100) AS r
         ORDER BY logical_date, id",
    )
    .bind(dag_id)
    .fetch_all(&state.pool)
    .await?;
    let points: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(run, state, seconds, at)| {
            serde_json::json!({ "run": run, "state": state, "seconds": seconds, "at": when(Some(at)) })
        })
        .collect();
    Ok(serde_json::Value::Array(points).to_string())
}
