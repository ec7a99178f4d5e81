//! Following an Airflow run to its end: its state into the attempt's log, the
//! verdict with the Airflow tasks that failed, and marking it failed in Airflow
//! when the attempt stops first.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use orchestrator::TaskContext;
use reqwest::Method;
use serde_json::{Value, json};

use super::AirflowDag;
use super::api::{Api, CallError};

/// Airflow's run states that are final.
pub(super) fn finished(state: &str) -> bool {
    matches!(state, "success" | "failed")
}

/// Task instance states that make an Airflow run fail.
pub(super) const FAILED_TASK_STATES: [&str; 2] = ["failed", "upstream_failed"];

pub(super) fn describe(tasks: &BTreeMap<String, String>) -> String {
    if tasks.is_empty() {
        return "no task instances yet".into();
    }
    tasks
        .iter()
        .map(|(t, s)| format!("{t}={s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl AirflowDag {
    /// Polls the run until it ends, logging each change of its state and its tasks'
    /// (the first page of them); returns its final state.
    pub(super) async fn follow(
        &self,
        api: &Api,
        ctx: &TaskContext,
        run_id: &str,
    ) -> anyhow::Result<String> {
        let mut seen = None;
        loop {
            match self.look(api, run_id).await {
                Ok((state, tasks, total)) => {
                    let progress = (state.clone(), tasks);
                    if seen.as_ref() != Some(&progress) {
                        let mut line =
                            format!("Airflow run {run_id} is {state}: {}", describe(&progress.1));
                        if total > progress.1.len() {
                            line.push_str(&format!(
                                " (the first {} of {total} task instances)",
                                progress.1.len()
                            ));
                        }
                        ctx.log.info(format!("{line}."));
                        seen = Some(progress);
                    }
                    if finished(&state) {
                        return Ok(state);
                    }
                }
                Err(e) if e.transient() => {
                    ctx.log
                        .info(format!("Airflow did not answer, asking again: {e}."));
                }
                Err(e) => return Err(e.into()),
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    /// The run's state, the first page of its task instances and how many it has.
    pub(super) async fn look(
        &self,
        api: &Api,
        run_id: &str,
    ) -> Result<(String, BTreeMap<String, String>, usize), CallError> {
        let run = api
            .call(
                Method::GET,
                &["dags", &self.dag_id, "dagRuns", run_id],
                &[],
                None,
            )
            .await?;
        let (tasks, total) = api.first_task_states(&self.dag_id, run_id).await?;
        Ok((
            run["state"].as_str().unwrap_or("unknown").to_string(),
            tasks,
            total,
        ))
    }

    /// What a finished run makes of the task: its output when the run succeeded (with
    /// every task's state), else an error naming every failed task.
    pub(super) async fn verdict(
        &self,
        api: &Api,
        ctx: &TaskContext,
        run_id: &str,
        page: &str,
        state: &str,
    ) -> anyhow::Result<Value> {
        let wanted: &[&str] = if state == "success" {
            &[]
        } else {
            &FAILED_TASK_STATES
        };
        let tasks = api.task_states(ctx, &self.dag_id, run_id, wanted).await;
        if state == "success" {
            let tasks = match tasks {
                Ok(tasks) => json!(tasks),
                Err(e) => {
                    ctx.log.info(format!(
                        "Could not list the tasks of Airflow run {run_id}: {e}."
                    ));
                    Value::Null
                }
            };
            return Ok(json!({
                "dag_id": self.dag_id,
                "dag_run_id": run_id,
                "state": state,
                "url": page,
                "tasks": tasks,
            }));
        }
        let failed = match tasks {
            Ok(tasks) => {
                let named: Vec<String> = tasks
                    .iter()
                    .filter(|(_, s)| FAILED_TASK_STATES.contains(&s.as_str()))
                    .map(|(t, s)| format!("{t} ({s})"))
                    .collect();
                if named.is_empty() {
                    "none named".to_string()
                } else {
                    named.join(", ")
                }
            }
            Err(e) => format!("unknown, Airflow did not list them ({e})"),
        };
        bail!(
            "Airflow run {run_id} of {} {state}: failed tasks: {failed}; see {page}",
            self.dag_id
        )
    }

    /// Marks the run failed in Airflow, so it stops when Setlist stops waiting for it,
    /// waiting at most `within` for Airflow's answer.
    pub(super) async fn stop(
        &self,
        api: &Api,
        ctx: &TaskContext,
        run_id: &str,
        why: &str,
        within: Duration,
    ) {
        let stopped = tokio::time::timeout(
            within,
            api.call(
                Method::PATCH,
                &["dags", &self.dag_id, "dagRuns", run_id],
                &[],
                Some(&json!({ "state": "failed" })),
            ),
        )
        .await;
        ctx.log.info(match stopped {
            Ok(Ok(_)) => format!("Marked Airflow run {run_id} failed: {why}."),
            Ok(Err(e)) => format!("Could not mark Airflow run {run_id} failed ({why}): {e}."),
            Err(_) => format!("Could not mark Airflow run {run_id} failed ({why}): no answer."),
        });
    }
}
