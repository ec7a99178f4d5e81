//! The DAG model: what a validated TOML DAG file becomes.

mod alerts;
mod cycle;
mod diagnostic;
mod header;
mod load;
mod task_table;
mod walk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use alerts::Alerts;
pub use diagnostic::Diagnostic;
pub use load::{DagBag, Fingerprint, fingerprint, load_dir, load_file, parse_dag};

use crate::schedule::Schedule;
use crate::trigger_rule::TriggerRule;

/// A validated DAG. It round-trips through the state store's JSON, so every process
/// but the scheduler reads DAGs from the store, never from the files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dag {
    /// The name runs, the CLI and the API refer to the DAG by; unique across the folder.
    pub id: String,
    /// Free text for the pages, saying what the DAG does.
    pub description: String,
    /// Labels for filtering DAGs on the pages and in the CLI.
    pub tags: Vec<String>,
    /// When the scheduler creates runs by itself (or never, for manual DAGs).
    pub schedule: Schedule,
    /// The first logical date the scheduler may create a run for.
    pub start_date: Option<DateTime<Utc>>,
    /// Whether the scheduler fills every missed interval since the last run (or
    /// `start_date`), or only the latest one.
    pub catchup: bool,
    /// At most this many runs of the DAG are running at once; the rest wait queued.
    pub max_active_runs: u32,
    /// Datasets whose changes start a run (see [`crate::store::datasets`]).
    pub triggered_by: Vec<String>,
    /// Values templates read as `params.x`; a run's conf may replace each by name.
    #[serde(default = "empty_object", skip_serializing_if = "is_empty_object")]
    pub params: serde_json::Value,
    /// The notify connections that hear of a run's outcome.
    #[serde(default, skip_serializing_if = "Alerts::is_empty")]
    pub alerts: Alerts,
    /// How long a run may go on before it is cancelled; `None` for no limit.
    #[serde(
        default,
        with = "duration_ms_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub dagrun_timeout: Option<Duration>,
    /// Its tasks' claim priority where they set none: higher first (default 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// Tasks in file order.
    pub tasks: Vec<TaskSpec>,
    /// The file the DAG was loaded from, for messages that point back at it (kept in
    /// the store's `file_path` column, not in the definition).
    #[serde(skip)]
    pub file: PathBuf,
}

/// One `[[task]]` with the `[defaults]` already applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The name other tasks' `depends_on` and the run's task instances refer to it by.
    pub id: String,
    /// The registered task kind that runs it (see [`crate::registry::Registry`]).
    pub kind: String,
    /// Ids of the tasks that must finish before this one is decided.
    pub depends_on: Vec<String>,
    /// Which upstream outcomes let this task start.
    pub trigger_rule: TriggerRule,
    /// The kind's own settings, handed to it as JSON.
    pub params: serde_json::Value,
    /// How a failed attempt is tried again.
    pub retry: RetryPolicy,
    /// How long an attempt may run before it is cancelled; `None` for no limit.
    #[serde(with = "duration_ms_opt")]
    pub timeout: Option<Duration>,
    /// Whether its output names which of its direct downstream tasks run (a branch):
    /// a task id, a list of them, or an object whose `follow` is either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub branch: bool,
    /// Where the list comes from that maps this task into one instance per element
    /// (`None`: the task is not mapped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_over: Option<MapOver>,
    /// At most this many of its mapped instances run at once (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_mapped: Option<u32>,
    /// The task group it belongs to, folded into one box in the graph and one row in
    /// the grid; `depends_on = ["group:NAME"]` depends on the group's last tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The notify connections that hear of this task's failure, success or retry.
    #[serde(default, skip_serializing_if = "Alerts::is_empty")]
    pub alerts: Alerts,
    /// Its claim priority (default: the DAG's): of the tasks ready, workers take the
    /// highest first, then the oldest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// The pool whose slots it takes while it runs (`None`: no pool, no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// How many of its pool's slots it takes (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub pool_slots: u32,
    /// The queue it waits in; only workers serving it claim it (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// The list a mapped task runs once per element of, as a DAG file writes it:
/// `map_over = ["eu", "us"]`, or a path into what the run knows,
/// `map_over = "upstream.list_files.output.files"`, `"params.regions"`, `"conf.days"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MapOver {
    /// The elements themselves.
    List(Vec<serde_json::Value>),
    /// A dotted path whose first part is `upstream` (then a direct upstream task and
    /// its `output`), `params` or `conf`.
    Path(String),
}

/// How often and how soon a failed task is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// How many more tries a failed task gets after its first.
    pub retries: u32,
    /// The wait before a retry (the first one, when `backoff` is on).
    #[serde(with = "duration_ms")]
    pub delay: Duration,
    /// Doubles the delay after each failed try, up to `max_delay`.
    pub backoff: bool,
    /// The longest wait `backoff` may grow to.
    #[serde(with = "duration_ms")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 0,
            delay: Duration::from_secs(300),
            backoff: false,
            max_delay: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The wait before try `failed_try + 1`, after try `failed_try` (1-based) failed.
    pub fn delay_after(&self, failed_try: u32) -> Duration {
        if !self.backoff {
            return self.delay;
        }
        let factor = 2u32.saturating_pow(failed_try.saturating_sub(1));
        self.delay.saturating_mul(factor).min(self.max_delay)
    }
}

impl Dag {
    /// The file's name relative to nothing in particular, for messages.
    pub fn file_name(&self) -> &Path {
        &self.file
    }

    /// A digest of the validated definition, so a changed file is noticed.
    pub fn definition_hash(&self) -> String {
        use sha2::Digest;
        let json = serde_json::to_vec(self).expect("a Dag always serialises");
        format!("{:x}", sha2::Sha256::digest(json))
    }

    /// The task named `id`, for code that holds a task id and needs its spec.
    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// Tasks that no other task depends on; they decide a run's final state.
    pub fn is_leaf(&self, id: &str) -> bool {
        !self
            .tasks
            .iter()
            .any(|t| t.depends_on.iter().any(|d| d == id))
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

fn is_empty_object(v: &serde_json::Value) -> bool {
    v.as_object().is_some_and(|m| m.is_empty())
}

mod duration_ms {
    use std::time::Duration;

    use serde::Deserialize;

    /// Writes a duration as whole milliseconds, for the JSON a DAG hashes and serves as.
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// Reads whole milliseconds back.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

mod duration_ms_opt {
    use std::time::Duration;

    use serde::Deserialize;

    /// Writes an optional duration as whole milliseconds, or null.
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    /// Reads whole milliseconds, or null, back.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|ms| ms.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_and_caps() {
        let policy = RetryPolicy {
            retries: 10,
            delay: Duration::from_secs(1),
            backoff: true,
            max_delay: Duration::from_secs(5),
        };
        let delays: Vec<u64> = (1..=5).map(|t| policy.delay_after(t).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    #[test]
    fn fixed_delay_without_backoff() {
        let policy = RetryPolicy {
            delay: Duration::from_secs(3),
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delay_after(4), Duration::from_secs(3));
    }
}
