//! `airflow_dag`: triggers a DAG in Apache Airflow through its stable REST API, follows
//! the run into the attempt's log until it ends, and fails when the Airflow run fails,
//! naming the Airflow tasks that failed. For teams that move to Setlist DAG by DAG: a
//! Setlist DAG can run, and depend on, the Airflow DAGs that have not moved yet.
//!
//! Airflow 3 (`airflow_version = 3`, the default) is called at `/api/v2` with a JWT from
//! `POST /auth/token`; Airflow 2 at `/api/v1` with basic auth (its `basic_auth` API
//! backend). The password never sits in the DAG file: it is read from the environment
//! variable that `password_env` names.

mod api;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use orchestrator::{ParamError, Task, TaskConfig, TaskContext};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use self::api::{Api, Auth, CallError, base_url};

/// The params of an `airflow_dag` task: which Airflow DAG, where that Airflow is, how
/// to log in to it, the run's conf and how long to wait for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AirflowDag {
    /// The Airflow DAG to trigger.
    pub dag_id: String,
    /// Airflow's base URL, its API server's (Airflow 3) or webserver's (Airflow 2),
    /// such as `http://127.0.0.1:8080`; default SETLIST_AIRFLOW_URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The major version of that Airflow: 3 (`/api/v2`, JWT) or 2 (`/api/v1`, basic auth).
    #[serde(default = "default_version")]
    pub airflow_version: u8,
    /// Who to log in as; default SETLIST_AIRFLOW_USERNAME.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable that holds the password (a DAG file is no place for it).
    #[serde(default = "default_password_env")]
    pub password_env: String,
    /// The environment variable that holds a ready-made bearer token for Airflow 3,
    /// used instead of logging in (for auth managers without `/auth/token`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The Airflow run's conf, a table; default: the Setlist run's conf.
    #[serde(default)]
    pub conf: Option<Value>,
    /// Unpause the Airflow DAG when it is paused, instead of failing (a run of a paused
    /// DAG would wait forever).
    #[serde(default)]
    pub unpause: bool,
    /// The time between two looks at the run.
    #[serde(
        default = "default_poll_interval",
        with = "crate::land::humantime_serde_compat"
    )]
    pub poll_interval: Duration,
    /// How long to wait for the run to end; then it is marked failed in Airflow and the
    /// task fails. Keep the task's own `timeout`, if any, above it.
    #[serde(
        default = "default_timeout",
        with = "crate::land::humantime_serde_compat"
    )]
    pub timeout: Duration,
}

fn default_version() -> u8 {
    3
}
fn default_password_env() -> String {
    "SETLIST_AIRFLOW_PASSWORD".into()
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_timeout() -> Duration {
    Duration::from_secs(3600)
}

/// Airflow's own rule for DAG ids (`KEY_REGEX`, `^[\w.-]+$`).
fn is_airflow_key(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl TaskConfig for AirflowDag {
    fn validate(&self) -> Result<(), ParamError> {
        if !is_airflow_key(&self.dag_id) {
            return Err(ParamError::at(
                "dag_id",
                format!(
                    "{:?} is not an Airflow DAG id: letters, digits, _ . and - only",
                    self.dag_id
                ),
            ));
        }
        if let Some(url) = &self.url {
            base_url(url).map_err(|e| ParamError::at("url", e))?;
        }
        if !matches!(self.airflow_version, 2 | 3) {
            return Err(ParamError::at("airflow_version", "must be 2 or 3"));
        }
        if self
            .username
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return Err(ParamError::at("username", "must not be empty"));
        }
        if self.conf.as_ref().is_some_and(|c| !c.is_object()) {
            return Err(ParamError::at(
                "conf",
                "must be a table (a JSON object), as Airflow wants",
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(ParamError::at("poll_interval", "must be more than 0s"));
        }
        if self.timeout < self.poll_interval {
            return Err(ParamError::at(
                "timeout",
                "must be at least poll_interval, or the run is never looked at",
            ));
        }
        Ok(())
    }
}

/// The Airflow run id of one attempt: which Setlist run, task and try asked for it,
/// in the characters Airflow allows in a run id.
fn dag_run_id(ctx: &TaskContext) -> String {
    let raw = format!(
        "setlist__{}__{}__{}__try{}",
        ctx.dag_id, ctx.run_id, ctx.task_id, ctx.try_number
    );
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(250)
        .collect()
}

/// Airflow's run states that are final.
fn finished(state: &str) -> bool {
    matches!(state, "success" | "failed")
}

/// Task instance states that make an Airflow run fail.
const FAILED_TASK_STATES: [&str; 2] = ["failed", "upstream_failed"];

impl AirflowDag {
    fn api(&self) -> anyhow::Result<Api> {
        let url = match &self.url {
            Some(u) => u.clone(),
            None => std::env::var("SETLIST_AIRFLOW_URL")
                .map_err(|_| anyhow!("no Airflow URL: set params.url or SETLIST_AIRFLOW_URL"))?,
        };
        let base = base_url(&url).map_err(|e| anyhow!("the Airflow URL {e}"))?;
        let user = self
            .username
            .clone()
            .or_else(|| std::env::var("SETLIST_AIRFLOW_USERNAME").ok());
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let auth = match (&self.token_env, user) {
            (Some(var), _) if self.airflow_version == 3 => Auth::Token(
                env(var).with_context(|| format!("token_env names {var}, which is not set"))?,
            ),
            (_, Some(user)) => {
                let password = env(&self.password_env).with_context(|| {
                    format!(
                        "no password for Airflow user {user}: set {}",
                        self.password_env
                    )
                })?;
                if self.airflow_version == 2 {
                    Auth::Basic { user, password }
                } else {
                    Auth::Login {
                        user,
                        password,
                        token: None,
                    }
                }
            }
            _ => Auth::None,
        };
        Api::new(base, self.airflow_version, auth)
    }

    /// Makes sure the DAG exists and is not paused (unpausing it when told to).
    async fn check_dag(&self, api: &mut Api, ctx: &TaskContext) -> anyhow::Result<()> {
        let dag = match api
            .call_patiently(ctx, Method::GET, &["dags", &self.dag_id], None)
            .await
        {
            Err(e) if e.status == Some(StatusCode::NOT_FOUND) => bail!(
                "Airflow has no DAG {} (is its file in the DAGs folder, and parsed without errors?)",
                self.dag_id
            ),
            other => other?,
        };
        if dag["is_paused"] == json!(true) {
            if !self.unpause {
                bail!(
                    "Airflow DAG {} is paused, so its run would never start: unpause it, or set unpause = true",
                    self.dag_id
                );
            }
            api.call_patiently(
                ctx,
                Method::PATCH,
                &["dags", &self.dag_id],
                Some(&json!({ "is_paused": false })),
            )
            .await?;
            ctx.log
                .info(format!("Unpaused Airflow DAG {}.", self.dag_id));
        }
        Ok(())
    }

    /// Polls the run until it ends, logging each change; returns its state and its
    /// tasks' states.
    async fn follow(
        &self,
        api: &mut Api,
        ctx: &TaskContext,
        run_id: &str,
    ) -> anyhow::Result<(String, BTreeMap<String, String>)> {
        let mut seen = None;
        loop {
            match self.look(api, run_id).await {
                Ok((state, tasks)) => {
                    let progress = (state.clone(), tasks.clone());
                    if seen.as_ref() != Some(&progress) {
                        ctx.log.info(format!(
                            "Airflow run {run_id} is {state}: {}.",
                            describe(&tasks)
                        ));
                        seen = Some(progress);
                    }
                    if finished(&state) {
                        return Ok((state, tasks));
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

    async fn look(
        &self,
        api: &mut Api,
        run_id: &str,
    ) -> Result<(String, BTreeMap<String, String>), CallError> {
        let run = api
            .call(
                Method::GET,
                &["dags", &self.dag_id, "dagRuns", run_id],
                None,
            )
            .await?;
        let tis = api
            .call(
                Method::GET,
                &["dags", &self.dag_id, "dagRuns", run_id, "taskInstances"],
                None,
            )
            .await?;
        let tasks = tis["task_instances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let id = t["task_id"].as_str()?;
                // A mapped task has one instance per index; name each.
                let id = match t["map_index"].as_i64() {
                    Some(i) if i >= 0 => format!("{id}[{i}]"),
                    _ => id.to_string(),
                };
                Some((id, t["state"].as_str().unwrap_or("none").to_string()))
            })
            .collect();
        Ok((
            run["state"].as_str().unwrap_or("unknown").to_string(),
            tasks,
        ))
    }

    /// Marks the run failed in Airflow, so it stops when Setlist stops waiting for it.
    async fn stop(&self, api: &mut Api, ctx: &TaskContext, run_id: &str, why: &str) {
        let stopped = tokio::time::timeout(
            Duration::from_secs(5),
            api.call(
                Method::PATCH,
                &["dags", &self.dag_id, "dagRuns", run_id],
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

fn describe(tasks: &BTreeMap<String, String>) -> String {
    if tasks.is_empty() {
        return "no task instances yet".into();
    }
    tasks
        .iter()
        .map(|(t, s)| format!("{t}={s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl Task for AirflowDag {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let mut api = self.api()?;
        self.check_dag(&mut api, ctx).await?;
        let run_id = dag_run_id(ctx);
        let conf = self.conf.clone().unwrap_or_else(|| ctx.conf.clone());
        let mut body = json!({ "dag_run_id": run_id, "conf": conf });
        if api.version == 3 {
            // Airflow 3 wants the key; null makes a run with no logical date, so
            // retries and concurrent Setlist runs never collide on one.
            body["logical_date"] = Value::Null;
        }
        let path = ["dags", self.dag_id.as_str(), "dagRuns"];
        match api
            .call_patiently(ctx, Method::POST, &path, Some(&body))
            .await
        {
            // This attempt triggered it already (an answer was lost): follow that run.
            Err(e) if e.status == Some(StatusCode::CONFLICT) => ctx.log.info(format!(
                "Airflow run {run_id} exists already; following it."
            )),
            other => {
                other?;
            }
        }
        let page = api.run_page(&self.dag_id, &run_id);
        ctx.log.info(format!(
            "Triggered Airflow DAG {} as run {run_id}: {page}",
            self.dag_id
        ));
        let followed = tokio::select! {
            r = tokio::time::timeout(self.timeout, self.follow(&mut api, ctx, &run_id)) => r,
            _ = ctx.cancel.cancelled() => {
                self.stop(&mut api, ctx, &run_id, "the Setlist task was stopped").await;
                bail!("stopped while Airflow run {run_id} was running; see {page}");
            }
        };
        let (state, tasks) = match followed {
            Ok(r) => r?,
            Err(_) => {
                let why = format!(
                    "it did not end within {}",
                    humantime::format_duration(self.timeout)
                );
                self.stop(&mut api, ctx, &run_id, &why).await;
                bail!("Airflow run {run_id} of {}: {why}; see {page}", self.dag_id);
            }
        };
        if state != "success" {
            let failed: Vec<String> = tasks
                .iter()
                .filter(|(_, s)| FAILED_TASK_STATES.contains(&s.as_str()))
                .map(|(t, s)| format!("{t} ({s})"))
                .collect();
            bail!(
                "Airflow run {run_id} of {} {state}: failed tasks: {}; see {page}",
                self.dag_id,
                if failed.is_empty() {
                    "none named".to_string()
                } else {
                    failed.join(", ")
                }
            );
        }
        Ok(json!({
            "dag_id": self.dag_id,
            "dag_run_id": run_id,
            "state": state,
            "url": page.as_str(),
            "tasks": tasks,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Result<AirflowDag, String> {
        let p: AirflowDag = serde_json::from_value(v).map_err(|e| e.to_string())?;
        p.validate().map_err(|e| e.to_string())?;
        Ok(p)
    }

    #[test]
    fn params_take_defaults_and_durations_as_people_write_them() {
        let p =
            params(json!({ "dag_id": "etl.daily-v2", "poll_interval": "500ms", "timeout": "2h" }))
                .unwrap();
        assert_eq!(p.airflow_version, 3);
        assert_eq!(p.password_env, "SETLIST_AIRFLOW_PASSWORD");
        assert_eq!(p.poll_interval, Duration::from_millis(500));
        assert_eq!(p.timeout, Duration::from_secs(7200));
        assert!(p.conf.is_none() && !p.unpause);
    }

    #[test]
    fn bad_params_are_named_with_what_is_wrong() {
        let cases = [
            (
                json!({ "dag_id": "a b" }),
                "params.dag_id: \"a b\" is not an Airflow DAG id",
            ),
            (
                json!({ "dag_id": "" }),
                "params.dag_id: \"\" is not an Airflow DAG id",
            ),
            (
                json!({ "dag_id": "x", "url": "ftp://h" }),
                "params.url: must be an http:// or https:// URL",
            ),
            (
                json!({ "dag_id": "x", "url": "127.0.0.1:8080" }),
                "params.url: is not a URL (relative URL without a base)",
            ),
            (
                json!({ "dag_id": "x", "airflow_version": 1 }),
                "params.airflow_version: must be 2 or 3",
            ),
            (
                json!({ "dag_id": "x", "conf": [1] }),
                "params.conf: must be a table",
            ),
            (
                json!({ "dag_id": "x", "poll_interval": "0s" }),
                "params.poll_interval: must be more than 0s",
            ),
            (
                json!({ "dag_id": "x", "poll_interval": "10s", "timeout": "1s" }),
                "params.timeout: must be at least poll_interval",
            ),
            (
                json!({ "dag_id": "x", "username": " " }),
                "params.username: must not be empty",
            ),
            (
                json!({ "dag_id": "x", "password": "secret" }),
                "unknown field `password`",
            ),
            (
                json!({ "dag_id": "x", "timeout": "soon" }),
                "expected number",
            ),
        ];
        for (v, want) in cases {
            let err = params(v.clone())
                .err()
                .unwrap_or_else(|| panic!("{v} was accepted"));
            assert!(err.contains(want), "{v}: {err}");
        }
    }

    #[test]
    fn a_run_id_names_the_setlist_attempt_in_airflows_characters() {
        let ctx = TaskContext {
            dag_id: "daily etl".into(),
            run_id: 42,
            task_id: "wait/for+it".into(),
            logical_date: chrono::Utc::now(),
            data_interval_start: chrono::Utc::now(),
            data_interval_end: chrono::Utc::now(),
            try_number: 2,
            params: json!({}),
            conf: json!({}),
            upstream_outputs: BTreeMap::new(),
            log: orchestrator::LogSink::discard(),
            cancel: tokio_util::sync::CancellationToken::new(),
        };
        assert_eq!(
            dag_run_id(&ctx),
            "setlist__daily_etl__42__wait_for_it__try2"
        );
    }
}
