//! A run: its task instances with state, tries, times and a gantt bar each, and the
//! per-model and per-test results of its dbt tasks. A mapped task is one row that
//! opens into its instances. The page refreshes itself while the run is not done.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Html;
use orchestrator::store::runs;

use super::{page, when};
use crate::AppState;
use crate::error::ApiError;

pub struct TaskLine {
    pub task_id: String,
    pub state: String,
    pub tries: String,
    pub start: String,
    pub end: String,
    pub duration: String,
    pub offset_pct: String,
    pub width_pct: String,
    /// A mapped task's instances, in order (at most [`SHOWN_INSTANCES`]).
    pub instances: Vec<TaskLine>,
    /// A mapped task's instances by state, e.g. "1000 instances: 998 success, 2 failed".
    pub mapped: String,
    /// Why a queued task does not start: no live worker serves its queue and kind.
    pub note: String,
}

/// The most instances of one mapped task the page lists.
const SHOWN_INSTANCES: usize = 500;

/// One dbt node's result, from a dbt task's output.
pub struct NodeLine {
    pub node: String,
    pub resource: String,
    pub status: String,
    pub seconds: String,
    pub message: String,
}

/// The dbt results of one task.
pub struct DbtResults {
    pub task_id: String,
    pub nodes: Vec<NodeLine>,
}

/// A dbt task's output (`results`: dbt's run_results.json entries) as lines; none for
/// tasks of other kinds.
fn dbt_results(task_id: &str, output: Option<&serde_json::Value>) -> Option<DbtResults> {
    let results = output?.get("results")?.as_array()?;
    let text = |v: &serde_json::Value, k: &str| {
        v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
    };
    let nodes = results
        .iter()
        .map(|r| {
            let id = text(r, "unique_id");
            // model.setlist.fct_plays -> (model, fct_plays); tests keep their name.
            let mut parts = id.splitn(3, '.');
            let resource = parts.next().unwrap_or("").to_string();
            let node = parts.nth(1).unwrap_or(&id).to_string();
            NodeLine {
                node,
                resource,
                status: text(r, "status"),
                seconds: format!(
                    "{:.2}",
                    r.get("execution_time")
                        .and_then(|t| t.as_f64())
                        .unwrap_or(0.0)
                ),
                message: text(r, "message"),
            }
        })
        .collect();
    Some(DbtResults {
        task_id: task_id.to_string(),
        nodes,
    })
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    id: i64,
    dag_id: String,
    state: String,
    /// Whether the page refreshes itself (the run is not done).
    live: bool,
    dbt: Vec<DbtResults>,
    run_type: String,
    logical_date: String,
    interval: String,
    tasks: Vec<TaskLine>,
    /// Why the run ended as it did (a cancel's reason).
    end_reason: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let run_id = crate::api::runs::run_id(&run_id)?;
    let (run, tasks) = runs::get(&state.pool, run_id).await?;
    let serving = orchestrator::store::workers::serving(&state.pool).await?;
    // The gantt spans from the first task's start to the last one's end (or now).
    let now = chrono::Utc::now();
    let first = tasks.iter().filter_map(|t| t.started_at).min();
    let last = tasks
        .iter()
        .map(|t| t.ended_at.or(t.started_at.map(|_| now)))
        .max()
        .flatten();
    let span = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).num_milliseconds() as f64,
        _ => 0.0,
    };
    let dbt = tasks
        .iter()
        .filter_map(|t| dbt_results(&t.task_id, t.output.as_ref()))
        .collect();
    let lines: Vec<TaskLine> = tasks
        .into_iter()
        .map(|t| {
            let (offset, width) = match (first, t.started_at) {
                (Some(f), Some(s)) if span > 0.0 => {
                    let end = t.ended_at.unwrap_or(now);
                    (
                        (s - f).num_milliseconds() as f64 / span * 100.0,
                        (end - s).num_milliseconds() as f64 / span * 100.0,
                    )
                }
                _ => (0.0, 0.0),
            };
            TaskLine {
                duration: match (t.started_at, t.ended_at) {
                    (Some(s), Some(e)) => {
                        format!("{:.1} s", (e - s).num_milliseconds() as f64 / 1e3)
                    }
                    _ => "-".into(),
                },
                state: t.state.to_string(),
                tries: format!("{} of {}", t.try_number, t.max_tries),
                start: when(t.started_at),
                end: when(t.ended_at),
                offset_pct: format!("{offset:.2}"),
                width_pct: format!("{width:.2}"),
                instances: Vec::new(),
                mapped: String::new(),
                note: if t.state == orchestrator::TaskState::Queued
                    && !serving
                        .iter()
                        .any(|(q, k)| q.contains(&t.queue) && k.contains(&t.kind))
                {
                    format!("no worker for queue {} with kind {}", t.queue, t.kind)
                } else {
                    String::new()
                },
                task_id: t.task_id,
            }
        })
        .collect();
    let tasks = group_instances(lines);
    page(RunPage {
        id: run.id,
        dag_id: run.dag_id,
        live: !run.state.is_terminal(),
        state: run.state.to_string(),
        dbt,
        run_type: run.run_type.to_string(),
        logical_date: when(Some(run.logical_date)),
        interval: format!(
            "[{}, {})",
            when(Some(run.data_interval_start)),
            when(Some(run.data_interval_end))
        ),
        tasks,
        end_reason: run.end_reason,
    })
}

/// Puts each mapped instance (`task[i]`) under its mapped task's line, in index order,
/// and sums them up by state.
fn group_instances(lines: Vec<TaskLine>) -> Vec<TaskLine> {
    use orchestrator::mapping::split_instance;
    let (instances, mut tasks): (Vec<TaskLine>, Vec<TaskLine>) = lines
        .into_iter()
        .partition(|t| split_instance(&t.task_id).is_some());
    let mut by_parent: std::collections::HashMap<String, Vec<TaskLine>> = Default::default();
    for i in instances {
        let parent = split_instance(&i.task_id)
            .map_or("", |(p, _)| p)
            .to_string();
        by_parent.entry(parent).or_default().push(i);
    }
    for task in &mut tasks {
        let Some(mut mine) = by_parent.remove(&task.task_id) else {
            continue;
        };
        mine.sort_by_key(|t| split_instance(&t.task_id).map_or(0, |(_, i)| i));
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for i in &mine {
            *counts.entry(i.state.as_str()).or_default() += 1;
        }
        let by_state: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        task.mapped = format!("{} instances: {}", mine.len(), by_state.join(", "));
        if mine.len() > SHOWN_INSTANCES {
            task.mapped += &format!(" (the first {SHOWN_INSTANCES} listed)");
        }
        mine.truncate(SHOWN_INSTANCES);
        task.instances = mine;
    }
    tasks
}
