//! `wait_run`: waits for another DAG's run at the same logical date (or one `delta`
//! earlier, or at `logical_date`) to succeed, or for one of its tasks to (Airflow's
//! ExternalTaskSensor). A run or task that ended in a failed state fails the wait at
//! once instead of letting it poke until its timeout.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator::store::runs;
use orchestrator::{ParamError, TaskContext};
use serde::Deserialize;
use serde_json::json;

use super::{Check, Poll};
use crate::settings::Settings;

/// The params of a `wait_run` wait (besides `poke_interval` and `timeout`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitRun {
    /// The DAG whose run is waited for.
    pub dag_id: String,
    /// One task of that run; default: the whole run.
    #[serde(default)]
    pub task_id: Option<String>,
    /// The logical date of the run waited for; default: this run's, less `delta`.
    #[serde(default)]
    pub logical_date: Option<DateTime<Utc>>,
    /// How much earlier than this run's logical date the other run's is.
    #[serde(default, with = "humantime_serde")]
    pub delta: Option<Duration>,
    /// The states that end the wait (default: success).
    #[serde(default = "success")]
    pub allowed_states: Vec<String>,
    /// The states that fail it (default: failed, and upstream_failed for a task).
    #[serde(default)]
    pub failed_states: Option<Vec<String>>,
}

fn success() -> Vec<String> {
    vec!["success".into()]
}

impl WaitRun {
    fn failed_states(&self) -> Vec<String> {
        match (&self.failed_states, &self.task_id) {
            (Some(states), _) => states.clone(),
            (None, Some(_)) => vec!["failed".into(), "upstream_failed".into()],
            (None, None) => vec!["failed".into()],
        }
    }
}

#[async_trait]
impl Check for WaitRun {
    async fn check(&self, ctx: &TaskContext) -> anyhow::Result<Poll> {
        let pool = Settings::of(ctx).state().await?;
        let logical_date = match (self.logical_date, self.delta) {
            (Some(at), _) => at,
            (None, Some(d)) => ctx.logical_date - d,
            (None, None) => ctx.logical_date,
        };
        let what = match &self.task_id {
            Some(t) => format!(
                "task `{t}` of DAG `{}` at {}",
                self.dag_id,
                logical_date.to_rfc3339()
            ),
            None => format!(
                "the run of DAG `{}` at {}",
                self.dag_id,
                logical_date.to_rfc3339()
            ),
        };
        let Some((run_id, run_state)) = runs::at(&pool, &self.dag_id, logical_date).await? else {
            return Ok(Poll::NotYet(format!("no run yet: {what}")));
        };
        let state = match &self.task_id {
            None => run_state.to_string(),
            Some(task) => runs::task_state(&pool, run_id, task)
                .await?
                .with_context(|| {
                    format!("run {run_id} of DAG `{}` has no task `{task}`", self.dag_id)
                })?
                .to_string(),
        };
        if self.allowed_states.contains(&state) {
            return Ok(Poll::Met(
                json!({ "dag_id": self.dag_id, "run_id": run_id, "state": state }),
            ));
        }
        if self.failed_states().contains(&state) {
            return Err(orchestrator::Fatal(format!("{what} is {state} (run {run_id})")).into());
        }
        Ok(Poll::NotYet(format!("{what} is {state} (run {run_id})")))
    }

    fn validate(&self) -> Result<(), ParamError> {
        if self.logical_date.is_some() && self.delta.is_some() {
            return Err(ParamError::at(
                "delta",
                "give a `logical_date` or a `delta`, not both",
            ));
        }
        let names: Vec<&str> = if self.task_id.is_some() {
            orchestrator::TaskState::ALL
                .iter()
                .map(|s| s.as_str())
                .collect()
        } else {
            orchestrator::RunState::ALL
                .iter()
                .map(|s| s.as_str())
                .collect()
        };
        for (key, states) in [
            ("allowed_states", &self.allowed_states),
            ("failed_states", &self.failed_states()),
        ] {
            if let Some(bad) = states.iter().find(|s| !names.contains(&s.as_str())) {
                return Err(ParamError::at(
                    key,
                    format!("unknown state `{bad}` (known: {})", names.join(", ")),
                ));
            }
        }
        Ok(())
    }
}
