//! Workers claim ready task instances with `FOR UPDATE SKIP LOCKED`, wake on
//! LISTEN/NOTIFY, run them with a timeout and a cancellation token, and heartbeat.
//! [`Worker::try_execute_one`] is one claim-and-run step for deterministic tests.

mod log_writer;

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::{FromRow, PgPool};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::Result;
use crate::registry::Registry;
use crate::resources::Resources;
use crate::state::FailureReason;
use crate::store::transitions::{self, Finished, Outcome};
use crate::store::{CANCEL_CHANNEL, WORK_CHANNEL, workers};
use crate::task::{Downstream, Fatal, PokeAgain, TaskContext};

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Task instances run at once.
    pub concurrency: usize,
    /// How often the worker tells the store it is alive; keep it well under the worker timeout.
    pub heartbeat_interval: Duration,
    /// After a timeout or a cancel, how long a task gets to stop before it is dropped.
    pub cancel_grace: Duration,
    /// The longest a worker sleeps without a notification (a safety net only).
    pub max_idle: Duration,
    /// Handed to every attempt as [`TaskContext::resources`].
    pub resources: Resources,
    /// The queues it claims from (`default` unless told otherwise).
    pub queues: Vec<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 8,
            heartbeat_interval: Duration::from_secs(5),
            cancel_grace: Duration::from_secs(5),
            max_idle: Duration::from_secs(10),
            resources: Resources::new(),
            queues: vec!["default".into()],
        }
    }
}

/// A claimed task instance with everything needed to run it.
#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    /// The task instance's row id, to move its state.
    pub ti_id: i64,
    /// The attempt's row id, to store its log lines against.
    pub attempt_id: i64,
    /// The run it belongs to, to read upstream outputs from and finish against.
    pub run_id: i64,
    /// The task's id within its DAG, for its context and the logs.
    pub task_id: String,
    /// The registered task kind to build and run.
    pub kind: String,
    /// The kind's params, as JSON, to build the task from.
    pub params: Value,
    /// Ids of its upstream tasks, whose outputs it is handed.
    pub upstream: Vec<String>,
    /// Which try this is (1 for the first), handed to the task and logged.
    pub try_number: i32,
    /// All the tries it gets, so the attempt's end knows whether a retry is left.
    pub max_tries: i32,
    /// How long the attempt may run, in milliseconds; `None` for no limit.
    pub timeout_ms: Option<i64>,
    /// Whether a person asked to cancel it before it started, so it is not run at all.
    pub cancel_requested: bool,
    /// Whether its output names which of its direct downstream tasks run.
    pub branch: bool,
    /// When its try began (a wait's first poke), handed to the task in its context.
    pub started_at: DateTime<Utc>,
    /// Which poke of its try this is: 1, or more for a wait poking again.
    pub pokes: i32,
    /// A mapped task's list (as [`crate::dag::MapOver`] JSON): its attempt maps it.
    pub map_over: Option<Value>,
    /// A mapped instance's index, for its templates.
    pub map_index: Option<i32>,
    /// A mapped instance's element, for its templates.
    pub map_element: Option<Value>,
    /// The run's DAG, handed to the task in its context.
    pub dag_id: String,
    /// The run's logical date, handed to the task in its context.
    pub logical_date: DateTime<Utc>,
    /// The start of the run's data interval, handed to the task in its context.
    pub data_interval_start: DateTime<Utc>,
    /// The end of the run's data interval, handed to the task in its context.
    pub data_interval_end: DateTime<Utc>,
    /// The run's conf from trigger time, handed to the task in its context.
    pub conf: Value,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The run the attempt belonged to, so callers can tell which run moved.
    pub run_id: i64,
    /// The task it ran, for the caller's logs and checks.
    pub task_id: String,
    /// Which try it was, to tell a retry from a first run.
    pub try_number: i32,
    /// What became of the task instance, so callers see a retry or a superseded attempt.
    pub result: Finished,
}

/// Claims and runs task instances on behalf of one process; many run side by side.
pub struct Worker {
    id: Uuid,
    pool: PgPool,
    registry: Arc<Registry>,
    config: WorkerConfig,
    /// The kinds its registry has: it claims only tasks of these.
    kinds: Vec<String>,
}

impl Worker {
    /// Registers a new worker in the state store.
    pub async fn register(
        pool: PgPool,
        registry: Arc<Registry>,
        config: WorkerConfig,
    ) -> Result<Self> {
        let id = Uuid::new_v4();
        let kinds: Vec<String> = registry.kinds().map(String::from).collect();
        workers::register(&pool, id, config.concurrency, &config.queues, &kinds).await?;
        Ok(Self {
            id,
            pool,
            registry,
            config,
            kinds,
        })
    }

    /// Its id in the state store, for logs and the workers page.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Claims the next ready task instance of its queues and kinds, if any.
    pub async fn claim(&self) -> Result<Option<Claimed>> {
        Ok(sqlx::query_file_as!(
            Claimed,
            "src/queries/claim.sql",
            self.id,
            &self.config.queues,
            &self.kinds,
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Claims one task instance and runs it to the end. `None` when nothing is ready.
    pub async fn try_execute_one(&self) -> Result<Option<Executed>> {
        match self.claim().await? {
            Some(claimed) => Ok(Some(self.execute(claimed, CancellationToken::new()).await?)),
            None => Ok(None),
        }
    }

    /// Runs a claimed attempt and records its end.
    pub async fn execute(&self, c: Claimed, cancel: CancellationToken) -> Result<Executed> {
        if let Some(map_over) = c.map_over.clone() {
            return self.map(c, map_over).await;
        }
        let outcome = self.attempt(&c, cancel).await?;
        if let Outcome::Failed { reason, message } = &outcome {
            tracing::info!(dag = %c.dag_id, run = c.run_id, task = %c.task_id, try_number = c.try_number, %reason, error = %message, "Task attempt failed.");
        }
        let result = transitions::finish_attempt(
            &self.pool,
            c.run_id,
            c.ti_id,
            c.try_number,
            self.id,
            outcome,
        )
        .await?;
        Ok(Executed {
            run_id: c.run_id,
            task_id: c.task_id,
            try_number: c.try_number,
            result,
        })
    }

    /// The attempt of a mapped task: resolves its list and turns it into instances.
    async fn map(&self, c: Claimed, map_over: Value) -> Result<Executed> {
        let (log, writer) = log_writer::spawn(self.pool.clone(), c.attempt_id, false);
        let upstream_outputs = self.upstream_outputs(&c).await?;
        let run_params = self.run_params(c.run_id).await?;
        let elements = serde_json::from_value::<crate::dag::MapOver>(map_over)
            .map_err(|e| format!("map_over: {e}"))
            .and_then(|m| crate::mapping::resolve(&m, &upstream_outputs, &run_params, &c.conf));
        let result = match elements {
            Ok(elements) => {
                log.info(format!("Mapped into {} instance(s).", elements.len()));
                crate::store::mapped::expand(
                    &self.pool,
                    c.run_id,
                    c.ti_id,
                    c.try_number,
                    self.id,
                    elements,
                )
                .await?
            }
            Err(message) => {
                log.info(format!(
                    "Attempt {} failed (invalid): {message}",
                    c.try_number
                ));
                transitions::finish_attempt(
                    &self.pool,
                    c.run_id,
                    c.ti_id,
                    c.try_number,
                    self.id,
                    Outcome::failed(FailureReason::Invalid, message),
                )
                .await?
            }
        };
        drop(log);
        let _ = writer.await;
        Ok(Executed {
            run_id: c.run_id,
            task_id: c.task_id,
            try_number: c.try_number,
            result,
        })
    }

    /// The run's params, fixed when it was created.
    async fn run_params(&self, run_id: i64) -> Result<Value> {
        Ok(
            sqlx::query_scalar!("SELECT params FROM setlist.dag_runs WHERE id = $1", run_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The outputs of a claimed task's upstream tasks that succeeded; a mapped
    /// instance's are its mapped task's.
    async fn upstream_outputs(&self, c: &Claimed) -> Result<BTreeMap<String, Value>> {
        // A mapped instance has no upstream of its own: it reads its mapped task's, in
        // two lookups by key (the run's rows are never scanned, however many instances).
        let parent_upstream: Vec<String>;
        let upstream = match crate::mapping::split_instance(&c.task_id) {
            Some((parent, _)) => {
                parent_upstream = sqlx::query_scalar!(
                    "SELECT upstream FROM setlist.task_instances WHERE run_id = $1 AND task_id = $2",
                    c.run_id,
                    parent,
                )
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or_default();
                &parent_upstream
            }
            None => &c.upstream,
        };
        if upstream.is_empty() {
            return Ok(BTreeMap::new());
        }
        Ok(sqlx::query!(
            r#"SELECT task_id, output AS "output!" FROM setlist.task_instances
               WHERE run_id = $1 AND task_id = ANY ($2) AND state = 'success' AND output IS NOT NULL"#,
            c.run_id,
            upstream,
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| (r.task_id, r.output))
        .collect())
    }

    async fn attempt(&self, c: &Claimed, cancel: CancellationToken) -> Result<Outcome> {
        // Fetched only for a kind that reads them or templates that name them.
        let upstream_outputs = if self.registry.reads_upstream(&c.kind)
            || crate::template::mentions(&c.params, "upstream")
        {
            self.upstream_outputs(c).await?
        } else {
            BTreeMap::new()
        };
        // Templated strings render against this attempt's context; params without
        // templates are used as they are, at no cost.
        let templated = crate::template::has_templates(&c.params);
        let params = if templated {
            let run_params = self.run_params(c.run_id).await?;
            let mut context = crate::template::Context::new(
                &c.dag_id,
                c.run_id,
                &c.task_id,
                c.try_number,
                c.logical_date,
                (c.data_interval_start, c.data_interval_end),
                &c.conf,
                &run_params,
                &upstream_outputs,
            );
            if let Some(index) = c.map_index {
                context = context.mapped(index, c.map_element.clone().unwrap_or_default());
            }
            match crate::template::render(&c.params, &context) {
                Ok(rendered) => rendered,
                Err(e) => return Ok(Outcome::failed(FailureReason::Invalid, e.to_string())),
            }
        } else {
            c.params.clone()
        };
        let task = match self.registry.build(&c.kind, &params) {
            Some(Ok(task)) => task,
            Some(Err(e)) => {
                return Ok(Outcome::failed(
                    FailureReason::Invalid,
                    format!("invalid params: {e}"),
                ));
            }
            None => {
                return Ok(Outcome::failed(
                    FailureReason::Invalid,
                    format!("this worker has no task kind \"{}\"", c.kind),
                ));
            }
        };
        if c.cancel_requested {
            return Ok(Outcome::failed(
                FailureReason::Cancelled,
                "cancelled before it started",
            ));
        }
        let (log, writer) = log_writer::spawn(self.pool.clone(), c.attempt_id, c.pokes > 1);
        if templated {
            log.info(format!("Rendered params: {params}"));
        }
        let ctx = TaskContext {
            dag_id: c.dag_id.clone(),
            run_id: c.run_id,
            task_id: c.task_id.clone(),
            logical_date: c.logical_date,
            data_interval_start: c.data_interval_start,
            data_interval_end: c.data_interval_end,
            try_number: c.try_number,
            try_started_at: c.started_at,
            params,
            conf: c.conf.clone(),
            upstream_outputs,
            log,
            cancel: cancel.clone(),
            resources: self.config.resources.clone(),
            downstream: Default::default(),
        };
        let timeout = c.timeout_ms.map(|ms| Duration::from_millis(ms as u64));
        let mut outcome = self.race(task.as_ref(), &ctx, timeout, c.ti_id).await?;
        if let Outcome::Success { output, downstream } = &mut outcome {
            if c.branch {
                ctx.follow_only(match chosen_branches(output) {
                    Ok(ids) => ids,
                    Err(e) => {
                        return self
                            .end_with(ctx, writer, c, Outcome::failed(FailureReason::Invalid, e.0))
                            .await;
                    }
                });
            }
            *downstream = ctx.downstream.lock().expect("not poisoned").clone();
            if let Downstream::Only(ids) = downstream {
                if let Err(e) = self.check_branch(c, ids).await? {
                    outcome = Outcome::failed(FailureReason::Invalid, e.0);
                } else {
                    ctx.log.info(format!(
                        "The branch follows: {}",
                        if ids.is_empty() {
                            "none".into()
                        } else {
                            ids.join(", ")
                        }
                    ));
                }
            }
        }
        self.end_with(ctx, writer, c, outcome).await
    }

    /// Logs how the attempt ended and waits for its log lines to be stored.
    async fn end_with(
        &self,
        ctx: TaskContext,
        writer: tokio::task::JoinHandle<()>,
        c: &Claimed,
        outcome: Outcome,
    ) -> Result<Outcome> {
        match &outcome {
            Outcome::Failed { reason, message } => ctx.log.info(format!(
                "Attempt {} failed ({reason}): {message}",
                c.try_number
            )),
            Outcome::Wait { .. } | Outcome::Success { .. } => {}
        }
        drop(ctx);
        let _ = writer.await;
        Ok(outcome)
    }

    /// `Ok(Err(..))` when a branch chose a task that is not directly below it.
    async fn check_branch(
        &self,
        c: &Claimed,
        ids: &[String],
    ) -> Result<std::result::Result<(), Fatal>> {
        let below: Vec<String> = sqlx::query_scalar!(
            "SELECT task_id FROM setlist.task_instances WHERE run_id = $1 AND $2 = ANY (upstream)
             ORDER BY task_id",
            c.run_id,
            c.task_id,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(match ids.iter().find(|id| !below.contains(id)) {
            None => Ok(()),
            Some(bad) => Err(Fatal(format!(
                "the branch chose `{bad}`, which is not a direct downstream task of `{}` (those are: {})",
                c.task_id,
                if below.is_empty() {
                    "none".to_string()
                } else {
                    below.join(", ")
                }
            ))),
        })
    }

    /// Runs the task against its timeout and its cancellation token. A panic in the
    /// task fails the attempt with the panic's message; the worker goes on.
    async fn race(
        &self,
        task: &dyn crate::task::Task,
        ctx: &TaskContext,
        timeout: Option<Duration>,
        ti_id: i64,
    ) -> Result<Outcome> {
        let cancel = &ctx.cancel;
        let run = AssertUnwindSafe(task.run(ctx)).catch_unwind();
        tokio::pin!(run);
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        /// Why the task was stopped before it ended by itself.
        enum Stop {
            Timeout,
            Cancel,
        }
        // A cancel is looked at first: a task that stops because of it (a killed
        // process) must fail as cancelled, not with the error its stop raised.
        let stopped = tokio::select! {
            biased;
            _ = cancel.cancelled() => Stop::Cancel,
            ended = &mut run => return Ok(ended_by_itself(ended, &ctx.log)),
            _ = deadline => Stop::Timeout,
        };
        // Ask the task to stop and give it a moment to clean up.
        ctx.cancel.cancel();
        let _ = tokio::time::timeout(self.config.cancel_grace, &mut run).await;
        Ok(match stopped {
            Stop::Timeout => Outcome::failed(
                FailureReason::Timeout,
                format!(
                    "timed out after {}",
                    humantime::format_duration(timeout.unwrap_or_default())
                ),
            ),
            Stop::Cancel => {
                let by_person: bool = sqlx::query_scalar!(
                    "SELECT cancel_requested FROM setlist.task_instances WHERE id = $1",
                    ti_id
                )
                .fetch_one(&self.pool)
                .await?;
                if by_person {
                    Outcome::failed(FailureReason::Cancelled, "cancelled by request")
                } else {
                    // The worker is shutting down: the attempt is retried where tries remain.
                    Outcome::failed(FailureReason::Error, "stopped: the worker shut down")
                }
            }
        })
    }

    /// Runs until `shutdown`, up to `concurrency` task instances at a time. On
    /// shutdown running tasks are cancelled (and retried where tries remain).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen_all([WORK_CHANNEL, CANCEL_CHANNEL]).await?;
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        let mut running: HashMap<i64, CancellationToken> = HashMap::new();
        let mut tasks: JoinSet<(i64, Result<Executed>)> = JoinSet::new();
        // Which task instance each spawned attempt runs, for an attempt that panics in
        // the engine's own code (the task's panics are caught in `race`).
        let mut spawned: HashMap<tokio::task::Id, i64> = HashMap::new();
        tracing::info!(worker = %self.id, concurrency = self.config.concurrency, "Worker started.");
        loop {
            let mut claimed_any = false;
            while running.len() < self.config.concurrency && !shutdown.is_cancelled() {
                match self.claim().await {
                    Ok(Some(c)) => {
                        claimed_any = true;
                        let token = shutdown.child_token();
                        running.insert(c.ti_id, token.clone());
                        let me = Arc::clone(&self);
                        let ti_id = c.ti_id;
                        let handle =
                            tasks.spawn(async move { (ti_id, me.execute(c, token).await) });
                        spawned.insert(handle.id(), ti_id);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "Claim failed; retrying shortly.");
                        break;
                    }
                }
            }
            let idle = if claimed_any || running.len() >= self.config.concurrency {
                self.config.max_idle
            } else {
                self.until_next_retry().await
            };
            tokio::select! {
                _ = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
                n = listener.recv() => match n {
                    Ok(n) if n.channel() == CANCEL_CHANNEL => {
                        if let Some(token) = n.payload().parse().ok().and_then(|id: i64| running.get(&id)) {
                            token.cancel();
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "Lost the notification connection; reconnecting."),
                },
                Some(done) = tasks.join_next_with_id() => match done {
                    Ok((id, (ti_id, result))) => {
                        spawned.remove(&id);
                        running.remove(&ti_id);
                        if let Err(e) = result {
                            tracing::error!(ti_id, error = %e, "Could not record a task's end; the reaper will retry it.");
                        }
                    }
                    Err(e) => {
                        let ti_id = spawned.remove(&e.id());
                        if let Some(ti_id) = ti_id {
                            running.remove(&ti_id);
                        }
                        tracing::error!(?ti_id, error = %e, "An attempt ended without recording its end; the reaper will retry it.");
                    }
                },
                _ = heartbeat.tick() => {
                    match workers::heartbeat(&self.pool, self.id).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(worker = %self.id, "This worker had been given up as lost; its earlier work was retried elsewhere."),
                        Err(e) => tracing::warn!(error = %e, "Heartbeat failed."),
                    }
                }
                _ = tokio::time::sleep(idle) => {}
            }
            if shutdown.is_cancelled() && running.is_empty() {
                break;
            }
        }
        workers::deregister(&self.pool, self.id).await?;
        tracing::info!(worker = %self.id, "Worker stopped.");
        Ok(())
    }

    /// How long to sleep before the earliest due retry, at most `max_idle`.
    async fn until_next_retry(&self) -> Duration {
        match transitions::next_retry_at(&self.pool).await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(self.config.max_idle),
            Ok(None) => self.config.max_idle,
            Err(_) => Duration::from_secs(1),
        }
    }
}

/// The outcome of a task that ended without being stopped: its output, its error, or
/// the message of its panic (also written to the attempt's log).
fn ended_by_itself(
    ended: std::thread::Result<anyhow::Result<Value>>,
    log: &crate::task::LogSink,
) -> Outcome {
    match ended {
        Ok(Ok(output)) => Outcome::success(output),
        Ok(Err(e)) => {
            if let Some(poke) = e.downcast_ref::<PokeAgain>() {
                log.info(format!(
                    "Not yet: {}; the next poke is due at {}",
                    poke.what,
                    poke.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ));
                Outcome::Wait { at: poke.at }
            } else if e.downcast_ref::<Fatal>().is_some() {
                Outcome::failed(FailureReason::Invalid, format!("{e:#}"))
            } else {
                Outcome::failed(FailureReason::Error, format!("{e:#}"))
            }
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            log.write(
                crate::task::LogStream::Stderr,
                format!("The task panicked: {message}"),
            );
            Outcome::failed(FailureReason::Error, format!("panicked: {message}"))
        }
    }
}

/// The direct downstream tasks a branching task's output names: a task id, a list of
/// them, or an object whose `follow` is either.
fn chosen_branches(output: &Value) -> std::result::Result<Vec<String>, Fatal> {
    let chosen = match output {
        Value::Object(map) => map.get("follow").unwrap_or(&Value::Null),
        other => other,
    };
    let ids = match chosen {
        Value::String(id) => Some(vec![id.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(String::from))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    ids.ok_or_else(|| {
        Fatal(format!(
            "a branching task's output must name the tasks to follow: a task id, a list of them, or {{\"follow\": ...}}; it returned {output}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::chosen_branches;

    #[test]
    fn a_branch_output_names_one_task_a_list_or_follow() {
        assert_eq!(chosen_branches(&json!("a")).unwrap(), ["a"]);
        assert_eq!(chosen_branches(&json!(["a", "b"])).unwrap(), ["a", "b"]);
        assert_eq!(
            chosen_branches(&json!({"follow": "b", "rows": 3})).unwrap(),
            ["b"]
        );
        assert_eq!(
            chosen_branches(&json!({"follow": []})).unwrap(),
            Vec::<String>::new()
        );
        let e = chosen_branches(&json!({"rows": 3})).unwrap_err();
        assert!(e.0.contains("must name the tasks to follow"), "{}", e.0);
        assert!(chosen_branches(&json!([1])).is_err());
    }
}
