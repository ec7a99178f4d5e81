//! Starting the Airflow run of an attempt: its run id (Setlist's run, task and try
//! in Airflow's characters), its conf, and a trigger that follows a run it made
//! itself when the answer to its first call was lost.

use anyhow::bail;
use orchestrator::TaskContext;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::AirflowDag;
use super::api::Api;

/// The most characters Airflow keeps of a run id.
pub(super) const MAX_RUN_ID: usize = 250;

/// The Airflow run id of one attempt: which Setlist run, task and try asked for it (and
/// `suffix`, when given), in the characters Airflow allows in a run id. Too long, it
/// loses characters from its middle, never from its end (the task and the try).
pub(super) fn dag_run_id(ctx: &TaskContext, suffix: Option<&str>) -> String {
    let mut raw = format!(
        "setlist__{}__{}__{}__try{}",
        ctx.dag_id, ctx.run_id, ctx.task_id, ctx.try_number
    );
    if let Some(suffix) = suffix {
        raw = format!("{raw}__{suffix}");
    }
    // ASCII from here on, so a byte index is a character index.
    let id: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.len() <= MAX_RUN_ID {
        return id;
    }
    const CUT: &str = "..";
    let head = (MAX_RUN_ID - CUT.len()) / 2;
    let tail = MAX_RUN_ID - CUT.len() - head;
    format!("{}{CUT}{}", &id[..head], &id[id.len() - tail..])
}

/// The key of the Airflow run's conf that names the Setlist attempt behind the run.
pub(super) const CONF_KEY: &str = "setlist";

impl AirflowDag {
    /// The Airflow run's conf: `params.conf` or the Setlist run's, with the key
    /// `setlist` naming this attempt. Its `attempt` is new for each attempt, so a run
    /// that has this conf can only be this attempt's.
    pub(super) fn conf(&self, ctx: &TaskContext, attempt: &str) -> Value {
        let mut conf = self.conf.clone().unwrap_or_else(|| ctx.conf.clone());
        if let Some(map) = conf.as_object_mut() {
            map.insert(
                CONF_KEY.into(),
                json!({
                    "dag_id": ctx.dag_id,
                    "run_id": ctx.run_id,
                    "task_id": ctx.task_id,
                    "try_number": ctx.try_number,
                    "logical_date": ctx.logical_date.to_rfc3339(),
                    "attempt": attempt,
                }),
            );
        }
        conf
    }

    /// Triggers this attempt's Airflow run; returns its run id. The id names the
    /// Setlist run, task and try, but those repeat (Setlist's ids start again after its
    /// database is reset; two Setlists may share one Airflow), so an id that exists
    /// already is this attempt's only when its conf is. Another's is left alone, and
    /// the run is triggered again under an id that ends in the attempt's own letters.
    pub(super) async fn trigger(&self, api: &Api, ctx: &TaskContext) -> anyhow::Result<String> {
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let conf = self.conf(ctx, &attempt);
        let run_id = dag_run_id(ctx, None);
        let Some(clash) = self.trigger_as(api, ctx, &run_id, &conf).await? else {
            return Ok(run_id);
        };
        let own_id = dag_run_id(ctx, Some(&attempt[..8]));
        ctx.log.info(format!(
            "Airflow run {run_id} exists already and is not this attempt's ({clash}); triggering as {own_id} instead."
        ));
        match self.trigger_as(api, ctx, &own_id, &conf).await? {
            None => Ok(own_id),
            Some(clash) => bail!(
                "Airflow DAG {} has runs {run_id} and {own_id} already, and neither is this attempt's ({clash})",
                self.dag_id
            ),
        }
    }

    /// Triggers the run `run_id` with `conf`; `Some(why)` when a run of that id exists
    /// that is not this attempt's. A 409 with this attempt's conf means this attempt
    /// triggered it before and the answer was lost: that run is this attempt's.
    pub(super) async fn trigger_as(
        &self,
        api: &Api,
        ctx: &TaskContext,
        run_id: &str,
        conf: &Value,
    ) -> anyhow::Result<Option<String>> {
        let mut body = json!({ "dag_run_id": run_id, "conf": conf });
        if api.version == 3 {
            // Airflow 3 wants the key; null makes a run with no logical date, so
            // retries and concurrent Setlist runs never collide on one.
            body["logical_date"] = Value::Null;
        }
        let runs = ["dags", self.dag_id.as_str(), "dagRuns"];
        match api
            .call_patiently(ctx, Method::POST, &runs, &[], Some(&body))
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if e.status == Some(StatusCode::CONFLICT) => {
                let run = api
                    .call_patiently(
                        ctx,
                        Method::GET,
                        &["dags", &self.dag_id, "dagRuns", run_id],
                        &[],
                        None,
                    )
                    .await?;
                if run["conf"] == *conf {
                    ctx.log.info(format!(
                        "Airflow run {run_id} exists already with this attempt's conf (an answer was lost); following it."
                    ));
                    return Ok(None);
                }
                let theirs = &run["conf"][CONF_KEY];
                Ok(Some(if theirs.is_object() {
                    format!(
                        "Setlist triggered it for run {} at {}, try {}",
                        theirs["run_id"], theirs["logical_date"], theirs["try_number"]
                    )
                } else {
                    "its conf has no Setlist attempt".to_string()
                }))
            }
            Err(e) => Err(e.into()),
        }
    }
}
