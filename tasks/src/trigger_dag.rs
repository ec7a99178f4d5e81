//! `trigger_dag`: starts a run of another Setlist DAG with a conf (Airflow's
//! TriggerDagRunOperator), at this run's logical date unless told otherwise, so that
//! a retry finds the run its first try started instead of starting another. With
//! `wait = true` it is a wait: it pokes the run until it ends (holding no worker slot
//! meanwhile) and fails when the run failed.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orchestrator::store::dags;
use orchestrator::store::runs::{self, RunType};
use orchestrator::{Fatal, ParamError, RunState, TaskContext};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::settings::Settings;
use crate::wait::{Check, Poll};

/// The params of a `trigger_dag` task (a wait's `poke_interval` and `timeout` apply
/// when it waits).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDag {
    /// The DAG to start.
    pub dag_id: String,
    /// The run's conf (templates render in it first).
    #[serde(default)]
    pub conf: BTreeMap<String, Value>,
    /// The run's logical date; default: this run's.
    #[serde(default)]
    pub logical_date: Option<DateTime<Utc>>,
    /// Wait for the run to end, and fail if it failed.
    #[serde(default)]
    pub wait: bool,
}

#[async_trait]
impl Check for TriggerDag {
    async fn check(&self, ctx: &TaskContext) -> anyhow::Result<Poll> {
        let pool = Settings::of(ctx).state().await?;
        let logical_date = self.logical_date.unwrap_or(ctx.logical_date);
        if self.dag_id == ctx.dag_id && logical_date == ctx.logical_date {
            return Err(Fatal(
                "a run cannot trigger its own DAG at its own logical date: give another `logical_date`".into(),
            )
            .into());
        }
        let (run_id, state) = match runs::at(&pool, &self.dag_id, logical_date).await? {
            Some(found) => found,
            None => {
                let dag = dags::get(&pool, &self.dag_id).await?;
                let conf = Value::Object(self.conf.clone().into_iter().collect());
                let run_id = match runs::trigger_as(
                    &pool,
                    &dag,
                    conf,
                    Some(logical_date),
                    RunType::Triggered,
                )
                .await
                {
                    Ok(id) => id,
                    // Another try (or a person) started it a moment ago: follow that one.
                    Err(orchestrator::Error::Conflict(_)) => {
                        runs::at(&pool, &self.dag_id, logical_date)
                            .await?
                            .map(|r| r.0)
                            .ok_or_else(|| {
                                anyhow::anyhow!(
                                    "the run of `{}` at {logical_date} vanished",
                                    self.dag_id
                                )
                            })?
                    }
                    Err(e) => return Err(e.into()),
                };
                ctx.log.info(format!(
                    "Triggered run {run_id} of DAG `{}` at {}.",
                    self.dag_id,
                    logical_date.to_rfc3339()
                ));
                (run_id, RunState::Queued)
            }
        };
        let output = json!({ "dag_id": self.dag_id, "run_id": run_id, "logical_date": logical_date, "state": state });
        if !self.wait || state == RunState::Success {
            return Ok(Poll::Met(output));
        }
        if state == RunState::Failed {
            return Err(Fatal(format!("run {run_id} of DAG `{}` failed", self.dag_id)).into());
        }
        Ok(Poll::NotYet(format!(
            "run {run_id} of DAG `{}` is {state}",
            self.dag_id
        )))
    }

    fn validate(&self) -> Result<(), ParamError> {
        if self.dag_id.trim().is_empty() {
            return Err(ParamError::at("dag_id", "must name a DAG"));
        }
        Ok(())
    }
}
