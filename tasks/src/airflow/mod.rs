//! `airflow_dag`: triggers a DAG in Apache Airflow through its stable REST API, follows
//! the run into the attempt's log until it ends, and fails when the Airflow run fails,
//! naming the Airflow tasks that failed. For teams that move to Setlist DAG by DAG: a
//! Setlist DAG can run, and depend on, the Airflow DAGs that have not moved yet.
//!
//! Airflow 3 (`airflow_version = 3`, the default) is called at `/api/v2` with a JWT from
//! `POST /auth/token`; Airflow 2 at `/api/v1` with basic auth (its `basic_auth` API
//! backend). Where Airflow is and who logs in come from an `http` connection
//! (`connection`, default `airflow`: `SETLIST_CONN_AIRFLOW=http://admin@host:8080` with
//! its password), or from `url` and `username`; the password never sits in the DAG file.

mod api;
#[cfg(test)]
mod fake;
mod follow;
mod trigger;

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use orchestrator::{ParamError, Task, TaskConfig, TaskContext};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use self::api::{Api, Auth, base_url};
use crate::connection::ConnectionKind;
use crate::settings::Settings;

/// The params of an `airflow_dag` task: which Airflow DAG, where that Airflow is, how
/// to log in to it, the run's conf and how long to wait for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AirflowDag {
    /// The Airflow DAG to trigger.
    pub dag_id: String,
    /// The `http` connection to Airflow: its URL, user and password (default: the
    /// connection named `airflow`, when `url` is not given).
    #[serde(default)]
    pub connection: Option<String>,
    /// Airflow's base URL, its API server's (Airflow 3) or webserver's (Airflow 2),
    /// such as `http://127.0.0.1:8080`, instead of the connection's.
    #[serde(default)]
    pub url: Option<String>,
    /// The major version of that Airflow: 3 (`/api/v2`, JWT) or 2 (`/api/v1`, basic auth).
    #[serde(default = "default_version")]
    pub airflow_version: u8,
    /// Who to log in as, instead of the connection's user.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable that holds the password, instead of the connection's
    /// password (a DAG file is no place for the password itself).
    #[serde(default)]
    pub password_env: Option<String>,
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
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long to wait for the run to end; then it is marked failed in Airflow and the
    /// task fails. Keep the task's own `timeout`, if any, above it.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_version() -> u8 {
    3
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
            if self.connection.is_some() {
                return Err(ParamError::at(
                    "url",
                    "and connection are both set; give one",
                ));
            }
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
        if self.token_env.is_some() && self.airflow_version == 2 {
            return Err(ParamError::at(
                "token_env",
                "is for Airflow 3 only: Airflow 2 takes username and password_env (basic auth)",
            ));
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

    fn connections(&self) -> Vec<(&'static str, String)> {
        orchestrator::registry::connection_param(self.connection.as_ref())
    }
}

/// Whether two URLs have one scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

impl AirflowDag {
    fn api(&self, settings: &Settings) -> anyhow::Result<Api> {
        let connection = match (&self.connection, &self.url) {
            (Some(name), _) => Some(settings.connections.get(name, ConnectionKind::Http)?),
            (None, None) => settings.connections.find("airflow", ConnectionKind::Http)?,
            // With its own URL, a task only borrows a fitting `airflow` connection's login.
            (None, Some(_)) => settings
                .connections
                .find("airflow", ConnectionKind::Http)
                .ok()
                .flatten(),
        };
        let url = match (&self.url, connection) {
            (Some(u), _) => u.clone(),
            (None, Some(c)) => c.http_url(),
            (None, None) => bail!(
                "no Airflow URL: set params.url or params.connection, or define the connection `airflow` (SETLIST_CONN_AIRFLOW=http://user@host:8080)"
            ),
        };
        let base = base_url(&url).map_err(|e| anyhow!("the Airflow URL {e}"))?;
        // The connection's user and password go to the connection's own Airflow only.
        let connection = connection.filter(|c| same_origin(&c.http_url(), &url));
        let user = self
            .username
            .clone()
            .or_else(|| connection.and_then(|c| c.login()));
        // Only a variable the DAG file names explicitly is read here, at the attempt.
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        // validate() keeps token_env to Airflow 3.
        let auth = match (&self.token_env, user) {
            (Some(var), _) => Auth::Token(
                env(var).with_context(|| format!("token_env names {var}, which is not set"))?,
            ),
            (None, Some(user)) => {
                let password = match &self.password_env {
                    Some(var) => env(var).with_context(|| {
                        format!("no password for Airflow user {user}: password_env names {var}, which is not set")
                    })?,
                    None => connection
                        .filter(|c| c.login().as_deref() == Some(user.as_str()))
                        .and_then(|c| c.password())
                        .map(|p| p.expose().to_string())
                        .with_context(|| {
                            format!(
                                "no password for Airflow user {user}: give the connection one (password_env or password_file in [connections.{}])",
                                connection.map_or("airflow", |c| c.name.as_str())
                            )
                        })?,
                };
                if self.airflow_version == 2 {
                    Auth::Basic { user, password }
                } else {
                    Auth::login(user, password)
                }
            }
            (None, None) => Auth::None,
        };
        Api::new(base, self.airflow_version, auth)
    }

    /// Makes sure the DAG exists and is not paused (unpausing it when told to).
    async fn check_dag(&self, api: &Api, ctx: &TaskContext) -> anyhow::Result<()> {
        let dag = match api
            .call_patiently(ctx, Method::GET, &["dags", &self.dag_id], &[], None)
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
                &[],
                Some(&json!({ "is_paused": false })),
            )
            .await?;
            ctx.log
                .info(format!("Unpaused Airflow DAG {}.", self.dag_id));
        }
        Ok(())
    }
}

#[async_trait]
impl Task for AirflowDag {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let api = self.api(&Settings::of(ctx))?;
        self.check_dag(&api, ctx).await?;
        let run_id = self.trigger(&api, ctx).await?;
        let page = api.run_page(&self.dag_id, &run_id);
        ctx.log.info(format!(
            "Triggered Airflow DAG {} as run {run_id}: {page}",
            self.dag_id
        ));
        let followed = tokio::select! {
            r = tokio::time::timeout(self.timeout, self.follow(&api, ctx, &run_id)) => r,
            _ = ctx.cancel.cancelled() => {
                // Within 3 s: the worker gives a stopped task 5 s before it moves on.
                let within = Duration::from_secs(3);
                self.stop(&api, ctx, &run_id, "the Setlist task was stopped", within).await;
                bail!("stopped while Airflow run {run_id} was running; see {page}");
            }
        };
        let state = match followed {
            Ok(state) => state?,
            Err(_) => {
                let why = format!(
                    "it did not end within {}",
                    humantime::format_duration(self.timeout)
                );
                // Nothing hurries a task that timed out; a busy Airflow may take a while.
                self.stop(&api, ctx, &run_id, &why, Duration::from_secs(30))
                    .await;
                bail!("Airflow run {run_id} of {}: {why}; see {page}", self.dag_id);
            }
        };
        self.verdict(&api, ctx, &run_id, page.as_str(), &state)
            .await
    }
}

#[cfg(test)]
mod tests {

    use super::trigger::{MAX_RUN_ID, dag_run_id};
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
        assert_eq!(p.password_env, None);
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
                json!({ "dag_id": "x", "url": "http://admin:hunter2@h:8080" }),
                "params.url: must not hold a user or password: use username and password_env",
            ),
            (
                json!({ "dag_id": "x", "url": "http://admin:hunter2@h:99999" }),
                "params.url: is not a URL (invalid port number): \"http://***@h:99999\"",
            ),
            (
                json!({ "dag_id": "x", "airflow_version": 2, "token_env": "AIRFLOW_JWT" }),
                "params.token_env: is for Airflow 3 only",
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
                "invalid value: string \"soon\", expected a duration",
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
        let ctx = context("daily etl".into(), "wait/for+it");
        assert_eq!(
            dag_run_id(&ctx, None),
            "setlist__daily_etl__42__wait_for_it__try2"
        );
        assert_eq!(
            dag_run_id(&ctx, Some("0a1b2c3d")),
            "setlist__daily_etl__42__wait_for_it__try2__0a1b2c3d"
        );
    }

    #[test]
    fn a_run_id_too_long_for_airflow_loses_its_middle_and_keeps_its_try() {
        let ctx = context("d".repeat(300), "load_everything");
        let id = dag_run_id(&ctx, None);
        assert_eq!(id.len(), MAX_RUN_ID);
        assert!(id.starts_with("setlist__ddd"), "{id}");
        assert!(id.contains(".."), "{id}");
        assert!(id.ends_with("ddd__42__load_everything__try2"), "{id}");
        let own = dag_run_id(&ctx, Some("0a1b2c3d"));
        assert_eq!(own.len(), MAX_RUN_ID);
        assert!(own.ends_with("__try2__0a1b2c3d"), "{own}");
    }

    #[test]
    fn the_conf_names_the_attempt_and_keeps_the_rest() {
        let p = params(json!({ "dag_id": "x", "conf": { "region": "EU", "setlist": 1 } })).unwrap();
        let ctx = context("daily".into(), "t");
        let conf = p.conf(&ctx, "abc");
        assert_eq!(conf["region"], "EU");
        assert_eq!(
            conf["setlist"],
            json!({
                "dag_id": "daily",
                "run_id": 42,
                "task_id": "t",
                "try_number": 2,
                "logical_date": ctx.logical_date.to_rfc3339(),
                "attempt": "abc",
            })
        );
        assert_ne!(p.conf(&ctx, "abd"), conf);
    }

    fn context(dag_id: String, task_id: &str) -> TaskContext {
        let mut ctx = TaskContext::adhoc(
            &dag_id,
            task_id,
            orchestrator::LogSink::discard(),
            tokio_util::sync::CancellationToken::new(),
        );
        ctx.run_id = 42;
        ctx.try_number = 2;
        ctx
    }

    /// An `airflow_dag` task and its context against the fake Airflow at `url`.
    fn against(url: &str) -> (AirflowDag, Api, TaskContext) {
        let p = params(json!({ "dag_id": "etl", "url": url })).unwrap();
        let api = Api::new(api::base_url(url).unwrap(), 3, Auth::None).unwrap();
        (p, api, context("daily".into(), "t"))
    }

    #[tokio::test]
    async fn a_trigger_whose_answer_was_lost_follows_the_run_it_made() {
        // The first POST creates the run but its answer is lost (a 503 here); asked
        // again, Airflow answers 409 and the run holds this attempt's conf.
        let created = std::sync::Arc::new(std::sync::Mutex::new(None::<Value>));
        let fake = fake::FakeAirflow::start({
            let created = created.clone();
            move |r| {
                let mut created = created.lock().unwrap();
                match (r.method.as_str(), created.as_ref()) {
                    ("POST", None) => {
                        *created = Some(r.body["conf"].clone());
                        (503, json!({ "detail": "lost" }))
                    }
                    ("POST", Some(_)) => (409, json!({ "detail": "exists" })),
                    ("GET", Some(conf)) => (200, json!({ "state": "queued", "conf": conf })),
                    _ => (500, json!({})),
                }
            }
        })
        .await;
        let (task, api, ctx) = against(&fake.url);
        let run_id = task.trigger(&api, &ctx).await.unwrap();
        assert_eq!(run_id, "setlist__daily__42__t__try2");
        assert_eq!(
            fake.calls(),
            [
                "POST /api/v2/dags/etl/dagRuns",
                "POST /api/v2/dags/etl/dagRuns",
                "GET /api/v2/dags/etl/dagRuns/setlist__daily__42__t__try2",
            ]
        );
    }

    #[tokio::test]
    async fn a_run_id_taken_by_another_setlist_is_left_alone() {
        // Another Setlist (or this one before its database was reset) has the run id.
        let fake = fake::FakeAirflow::start(|r| match (r.method.as_str(), r.target.as_str()) {
            ("POST", _) if r.body["dag_run_id"] == "setlist__daily__42__t__try2" => {
                (409, json!({ "detail": "exists" }))
            }
            ("POST", _) => (200, json!({ "state": "queued" })),
            ("GET", _) => (
                200,
                json!({ "state": "success", "conf": { "setlist": {
                    "run_id": 42, "logical_date": "2025-01-01T00:00:00+00:00", "try_number": 2,
                    "attempt": "someone-else" } } }),
            ),
            _ => (500, json!({})),
        })
        .await;
        let (task, api, ctx) = against(&fake.url);
        let run_id = task.trigger(&api, &ctx).await.unwrap();
        let sent = fake.requests.lock().unwrap().clone();
        let attempt = sent[0].body["conf"]["setlist"]["attempt"].as_str().unwrap();
        assert_eq!(
            run_id,
            format!("setlist__daily__42__t__try2__{}", &attempt[..8])
        );
        assert_eq!(sent[2].body["dag_run_id"], run_id.as_str());
        assert_eq!(sent[2].body["conf"], sent[0].body["conf"]);
    }

    #[tokio::test]
    async fn a_failed_run_names_its_failed_tasks_from_every_page() {
        // 150 failed task instances: two pages of Airflow's at most 100.
        let fake = fake::FakeAirflow::start(|r| {
            let offset: usize = r
                .target
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("offset="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = (offset..150.min(offset + 100))
                .map(|i| json!({ "task_id": format!("t{i:03}"), "map_index": -1, "state": "failed" }))
                .collect();
            (200, json!({ "task_instances": page, "total_entries": 150 }))
        })
        .await;
        let (task, api, ctx) = against(&fake.url);
        let err = task
            .verdict(&api, &ctx, "r", "http://page", "failed")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "Airflow run r of etl failed: failed tasks: t000 (failed), t001 (failed)"
            ),
            "{err}"
        );
        assert!(err.ends_with("t149 (failed); see http://page"), "{err}");
        assert_eq!(
            fake.calls(),
            [
                "GET /api/v2/dags/etl/dagRuns/r/taskInstances?limit=100&offset=0&state=failed&state=upstream_failed",
                "GET /api/v2/dags/etl/dagRuns/r/taskInstances?limit=100&offset=100&state=failed&state=upstream_failed",
            ]
        );
    }
}
