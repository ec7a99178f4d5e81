//! The states of task instances, runs, attempts and workers, and why a task failed.
//! Each is a Rust enum and a PostgreSQL enum type of the same values (migration
//! `20261204190000_type_the_states.sql`), so a misspelt state is a compile error here
//! and an error in the database, never a silent mismatch.
//!
//! A task instance's moves are one table, [`TASK_TRANSITIONS`]: the store checks
//! every move against it, and the terminal, claimable and unfinished sets are derived
//! from it. A new state is one variant and its rows in the table.
//!
//! ```text
//! scheduled -> queued -> running -> success
//!     |                     |-----> up_for_retry -> running ...
//!     |                     |-----> waiting -> running ...   (a wait pokes again later)
//!     |                     '-----> failed
//!     '-> upstream_failed | skipped   (decided by the trigger rule, a branch or a short circuit)
//! any state but running -> scheduled (clear) | success | failed (mark)   by a person
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a task instance of a run stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[sqlx(type_name = "setlist.task_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for its upstream tasks.
    Scheduled,
    /// Ready; the next free worker claims it.
    Queued,
    /// A worker runs an attempt of it.
    Running,
    /// Its last attempt succeeded (or a person marked it so).
    Success,
    /// It failed with no tries left (or a person marked it so).
    Failed,
    /// An attempt failed and a retry is due at `retry_at`.
    UpForRetry,
    /// Its trigger rule can no longer be met because an upstream task failed.
    UpstreamFailed,
    /// Its trigger rule chose not to run it (an upstream task was skipped), or a
    /// branch or short circuit above it did.
    Skipped,
    /// A wait (sensor) that found its condition unmet: it holds no worker slot and is
    /// claimed again when its next poke is due at `retry_at`, in the same try.
    Waiting,
}

/// Who makes a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The scheduler, a worker or the reaper.
    Engine,
    /// Someone clearing or marking a task by hand (CLI, API, pages).
    Person,
}

use Actor::{Engine, Person};
use TaskState::*;

/// Every move a task instance may make, and who makes it. The store refuses any
/// other ([`TaskState::check_move`]).
pub const TASK_TRANSITIONS: &[(TaskState, TaskState, Actor)] = &[
    // The trigger rule decides a waiting task.
    (Scheduled, Queued, Engine),
    (Scheduled, UpstreamFailed, Engine),
    (Scheduled, Skipped, Engine),
    // A worker claims a ready task or a due retry.
    (Queued, Running, Engine),
    (UpForRetry, Running, Engine),
    // The attempt ends (or its worker is lost).
    (Running, Success, Engine),
    (Running, Failed, Engine),
    (Running, UpForRetry, Engine),
    // A wait releases its worker until the next poke, which a worker claims.
    (Running, Waiting, Engine),
    (Waiting, Running, Engine),
    // A mapped task over an empty list.
    (Running, Skipped, Engine),
    // Clear: run it again.
    (Scheduled, Scheduled, Person),
    (Queued, Scheduled, Person),
    (UpForRetry, Scheduled, Person),
    (Success, Scheduled, Person),
    (Failed, Scheduled, Person),
    (UpstreamFailed, Scheduled, Person),
    (Skipped, Scheduled, Person),
    (Waiting, Scheduled, Person),
    // Mark: set the outcome by hand (a running task must be cancelled first).
    (Scheduled, Success, Person),
    (Queued, Success, Person),
    (UpForRetry, Success, Person),
    (Success, Success, Person),
    (Failed, Success, Person),
    (UpstreamFailed, Success, Person),
    (Skipped, Success, Person),
    (Waiting, Success, Person),
    (Scheduled, Failed, Person),
    (Queued, Failed, Person),
    (UpForRetry, Failed, Person),
    (Success, Failed, Person),
    (Failed, Failed, Person),
    (UpstreamFailed, Failed, Person),
    (Skipped, Failed, Person),
    (Waiting, Failed, Person),
];

impl TaskState {
    /// Every state, in the order of the enum.
    pub const ALL: [TaskState; 9] = [
        Scheduled,
        Queued,
        Running,
        Success,
        Failed,
        UpForRetry,
        UpstreamFailed,
        Skipped,
        Waiting,
    ];

    /// The name the database and the API use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheduled => "scheduled",
            Queued => "queued",
            Running => "running",
            Success => "success",
            Failed => "failed",
            UpForRetry => "up_for_retry",
            UpstreamFailed => "upstream_failed",
            Skipped => "skipped",
            Waiting => "waiting",
        }
    }

    /// The state named `name`, as the database and the API write it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether `actor` may move a task instance from `self` to `to`.
    pub fn can_move(self, to: TaskState, actor: Actor) -> bool {
        TASK_TRANSITIONS
            .iter()
            .any(|&(f, t, a)| f == self && t == to && a == actor)
    }

    /// `Ok` when `actor` may move a task from `self` to `to`, else a message that
    /// says which move was refused.
    pub fn check_move(self, to: TaskState, actor: Actor) -> Result<(), String> {
        if self.can_move(to, actor) {
            Ok(())
        } else {
            Err(format!("a task that is {self} cannot become {to}"))
        }
    }

    /// A state the engine never moves a task out of: only a person's clear does.
    pub fn is_terminal(self) -> bool {
        !TASK_TRANSITIONS
            .iter()
            .any(|&(f, _, a)| f == self && a == Engine)
    }

    /// The states a worker claims from.
    pub fn is_claimable(self) -> bool {
        self.can_move(Running, Engine)
    }

    /// The terminal states, in enum order.
    pub fn terminal() -> Vec<TaskState> {
        Self::ALL.into_iter().filter(|s| s.is_terminal()).collect()
    }

    /// The states a run still waits on.
    pub fn unfinished() -> Vec<TaskState> {
        Self::ALL.into_iter().filter(|s| !s.is_terminal()).collect()
    }
}

/// Where a DAG run stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[sqlx(type_name = "setlist.run_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Created; waits for room under the DAG's max_active_runs.
    Queued,
    /// Its tasks are being decided and run.
    Running,
    /// Every leaf task succeeded or was skipped.
    Success,
    /// A leaf task did not succeed.
    Failed,
    /// A person, or the DAG's dagrun_timeout, cancelled it.
    Cancelled,
}

impl RunState {
    /// Every state, in the order of the enum.
    pub const ALL: [RunState; 5] = [
        RunState::Queued,
        RunState::Running,
        RunState::Success,
        RunState::Failed,
        RunState::Cancelled,
    ];

    /// The name the database and the API use.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// A run that ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Success | RunState::Failed | RunState::Cancelled
        )
    }
}

/// How one try of a task instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "setlist.attempt_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum AttemptState {
    /// Its worker runs it.
    Running,
    /// It returned an output.
    Success,
    /// It failed; [`FailureReason`] says how.
    Failed,
    /// A wait's poke found its condition unmet; the next poke continues this attempt.
    Waiting,
}

impl AttemptState {
    /// The name the database and the API use.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptState::Running => "running",
            AttemptState::Success => "success",
            AttemptState::Failed => "failed",
            AttemptState::Waiting => "waiting",
        }
    }
}

/// Whether a worker is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "setlist.worker_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Heartbeating.
    Active,
    /// Shut down cleanly.
    Stopped,
    /// Stopped heartbeating; its running attempts were failed by the reaper.
    Lost,
}

impl WorkerState {
    /// The name the database and the API use.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkerState::Active => "active",
            WorkerState::Stopped => "stopped",
            WorkerState::Lost => "lost",
        }
    }
}

/// Why an attempt or a task instance failed. Stored in its own column, so nothing
/// reads a reason back out of an error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "setlist.failure_reason", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The task returned an error or panicked.
    Error,
    /// The task ran past its timeout.
    Timeout,
    /// A person cancelled it.
    Cancelled,
    /// Its worker stopped heartbeating.
    WorkerLost,
    /// An upstream task failed, so its trigger rule can never be met.
    UpstreamFailed,
    /// The task could not be built (unknown kind, params the kind rejects), or it
    /// said a retry would fail the same way ([`crate::task::Fatal`]).
    Invalid,
}

impl FailureReason {
    /// The name the database and the API use.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureReason::Error => "error",
            FailureReason::Timeout => "timeout",
            FailureReason::Cancelled => "cancelled",
            FailureReason::WorkerLost => "worker_lost",
            FailureReason::UpstreamFailed => "upstream_failed",
            FailureReason::Invalid => "invalid",
        }
    }

    /// Whether an attempt that failed this way is retried while tries remain.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureReason::Error | FailureReason::Timeout | FailureReason::WorkerLost
        )
    }
}

macro_rules! display_as_str {
    ($($ty:ty),* $(,)?) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    )*};
}

display_as_str!(
    TaskState,
    RunState,
    AttemptState,
    WorkerState,
    FailureReason
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_states_are_those_the_engine_never_leaves() {
        assert_eq!(
            TaskState::terminal(),
            vec![Success, Failed, UpstreamFailed, Skipped]
        );
        assert_eq!(
            TaskState::unfinished(),
            vec![Scheduled, Queued, Running, UpForRetry, Waiting]
        );
    }

    #[test]
    fn workers_claim_queued_tasks_due_retries_and_due_pokes_only() {
        let claimable: Vec<_> = TaskState::ALL
            .into_iter()
            .filter(|s| s.is_claimable())
            .collect();
        assert_eq!(claimable, vec![Queued, UpForRetry, Waiting]);
    }

    #[test]
    fn a_person_never_moves_a_running_task() {
        for to in TaskState::ALL {
            assert!(!Running.can_move(to, Person), "running -> {to}");
        }
        assert_eq!(
            Running.check_move(Scheduled, Person).unwrap_err(),
            "a task that is running cannot become scheduled"
        );
    }

    #[test]
    fn an_ended_task_only_moves_again_by_hand() {
        for from in TaskState::terminal() {
            for to in TaskState::ALL {
                assert!(!from.can_move(to, Engine), "{from} -> {to} by the engine");
            }
            assert!(from.can_move(Scheduled, Person), "clear {from}");
        }
    }

    #[test]
    fn every_state_has_one_name_both_ways() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskState::parse("done"), None);
    }

    /// The SQL that the planner must see literal state lists in (the claim's partial
    /// index, the run's end) names exactly the sets the table derives.
    #[test]
    fn the_sql_state_lists_agree_with_the_table() {
        let quoted = |states: Vec<TaskState>| {
            states
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let claimable: Vec<_> = TaskState::ALL
            .into_iter()
            .filter(|s| s.is_claimable())
            .collect();
        let claim = include_str!("queries/claim.sql");
        assert!(claim.contains(&format!("state IN ({})", quoted(claimable))));
        let finalize = include_str!("queries/finalize_run.sql");
        assert!(finalize.contains(&format!("state IN ({})", quoted(TaskState::unfinished()))));
    }
}
