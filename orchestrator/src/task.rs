//! The contract between the engine and the code a task runs.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::resources::Resources;

/// A unit of work. Each task kind is a config struct (deserialised from the DAG's
/// `params`) that implements this trait; it is a trait object so the engine never
/// needs to know the kinds that exist.
#[async_trait]
pub trait Task: Send + Sync {
    /// Runs one attempt. The returned JSON becomes the task's output, which its
    /// downstream tasks read from [`TaskContext::upstream_outputs`]. A task should
    /// return soon after `ctx.cancel` fires; the worker drops it after a grace period.
    ///
    /// Two errors mean more than a failure: [`PokeAgain`] (a wait whose condition is
    /// unmet: the task releases its worker and is claimed again later) and [`Fatal`]
    /// (a failure a retry would not cure: it is not retried).
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value>;
}

/// Returned by a wait (sensor) whose condition is not met yet: the worker ends the
/// poke, the task instance becomes `waiting` and holds no worker slot, and a worker
/// claims it again at `at`, in the same try (Airflow's reschedule mode).
#[derive(Debug, thiserror::Error)]
#[error("not yet ({what}); poking again at {at}")]
pub struct PokeAgain {
    /// When the next poke is due.
    pub at: DateTime<Utc>,
    /// What the poke found, for the attempt's log.
    pub what: String,
}

/// A failure that a retry would meet again (a 404, a malformed request): the task
/// fails at once, whatever retries it has left.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// Which of its downstream tasks a task that succeeded lets run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Downstream {
    /// All of them, as their trigger rules decide (the usual case).
    #[default]
    All,
    /// Only these direct downstream tasks; the other direct downstream tasks are
    /// skipped, and their trigger rules carry the skip further (a branch).
    Only(Vec<String>),
    /// None: every task below it is skipped, whatever its trigger rule (a short
    /// circuit).
    None,
}

/// Everything an attempt knows about the run it belongs to.
#[derive(Debug)]
pub struct TaskContext {
    /// The DAG the run belongs to, for log lines and for names a task derives (paths, tables).
    pub dag_id: String,
    /// The run's id in the state store, to tell runs of one DAG apart.
    pub run_id: i64,
    /// This task's id within the DAG.
    pub task_id: String,
    /// The run's logical date: the start of its data interval for scheduled runs.
    pub logical_date: DateTime<Utc>,
    /// The half-open data interval `[start, end)` this run processes.
    pub data_interval_start: DateTime<Utc>,
    /// The exclusive end of the data interval.
    pub data_interval_end: DateTime<Utc>,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub try_number: i32,
    /// When this try began: for a wait, its first poke (a wait's timeout counts from it).
    pub try_started_at: DateTime<Utc>,
    /// The task's `params` table, as JSON.
    pub params: Value,
    /// The run's JSON conf, given at trigger time (`{}` for scheduled runs).
    pub conf: Value,
    /// Outputs of the upstream tasks that succeeded, by task id.
    pub upstream_outputs: BTreeMap<String, Value>,
    /// Lines written here are stored with the attempt.
    pub log: LogSink,
    /// Fires on timeout, on a manual cancel and on worker shutdown.
    pub cancel: CancellationToken,
    /// Settings and shared clients the worker's process handed down.
    pub resources: Resources,
    /// Which downstream tasks run after a success; set by [`TaskContext::follow_only`]
    /// and [`TaskContext::skip_downstream`].
    pub downstream: Mutex<Downstream>,
}

impl TaskContext {
    /// A context for running a task outside any DAG run (a one-off, a benchmark, a
    /// test): run 0, try 1, now as its logical date and data interval, and no params,
    /// conf or upstream outputs.
    pub fn adhoc(dag_id: &str, task_id: &str, log: LogSink, cancel: CancellationToken) -> Self {
        let now = Utc::now();
        Self {
            dag_id: dag_id.into(),
            run_id: 0,
            task_id: task_id.into(),
            logical_date: now,
            data_interval_start: now,
            data_interval_end: now,
            try_number: 1,
            try_started_at: now,
            params: Value::Object(Default::default()),
            conf: Value::Object(Default::default()),
            upstream_outputs: BTreeMap::new(),
            log,
            cancel,
            resources: Resources::new(),
            downstream: Mutex::new(Downstream::All),
        }
    }

    /// Lets only `ids` of the direct downstream tasks run after this attempt succeeds
    /// (a branch); the worker fails the attempt if one of them is not a direct
    /// downstream task.
    pub fn follow_only(&self, ids: Vec<String>) {
        *self.downstream.lock().expect("not poisoned") = Downstream::Only(ids);
    }

    /// Skips every task below this one after it succeeds (a short circuit).
    pub fn skip_downstream(&self) {
        *self.downstream.lock().expect("not poisoned") = Downstream::None;
    }

    /// This context with `resources`.
    pub fn with_resources(mut self, resources: Resources) -> Self {
        self.resources = resources;
        self
    }
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The child process's standard output.
    Stdout,
    /// The child process's standard error.
    Stderr,
    /// Lines the task or the engine writes itself.
    Task,
}

impl LogStream {
    /// The name the state store and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Task => "task",
        }
    }
}

/// One log line on its way to the state store.
#[derive(Debug)]
pub struct LogLine {
    /// When the line was written, so batching does not reorder or re-time it.
    pub at: DateTime<Utc>,
    /// Which stream it came from, so pages can tell errors from output.
    pub stream: LogStream,
    /// The text as the task or its process wrote it.
    pub line: String,
}

/// A cheap, cloneable handle that sends log lines to the attempt's log writer.
/// Writing never blocks the task; lines are stored in batches.
#[derive(Debug, Clone)]
pub struct LogSink {
    tx: Option<mpsc::UnboundedSender<LogLine>>,
}

impl LogSink {
    /// A sink that feeds `tx`.
    pub fn new(tx: mpsc::UnboundedSender<LogLine>) -> Self {
        Self { tx: Some(tx) }
    }

    /// A sink that drops every line, for running a task outside a worker.
    pub fn discard() -> Self {
        Self { tx: None }
    }

    /// Sends `line` as from `stream`; dropped silently if the writer has gone.
    pub fn write(&self, stream: LogStream, line: impl Into<String>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(LogLine {
                at: Utc::now(),
                stream,
                line: line.into(),
            });
        }
    }

    /// A line from the task itself.
    pub fn info(&self, line: impl Into<String>) {
        self.write(LogStream::Task, line);
    }
}
