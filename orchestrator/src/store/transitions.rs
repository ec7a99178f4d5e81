//! The task-instance state machine in the store. Every change of a run's tasks
//! happens in a transaction that first locks the run's row, so concurrent completions
//! of one run are serialised and a downstream task is never missed or queued twice.
//! Which moves exist is [`crate::state::TASK_TRANSITIONS`]; each one made here is
//! checked against it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::alerts::Event;
use super::{CANCEL_CHANNEL, SCHEDULER_CHANNEL, WORK_CHANNEL, notify};
use crate::dag::RetryPolicy;
use crate::error::{Error, Result};
use crate::state::{Actor, AttemptState, FailureReason, RunState, TaskState};
use crate::task::Downstream;
use crate::trigger_rule::{Decision, TriggerRule, UpstreamCounts};

#[derive(FromRow)]
struct Waiting {
    id: i64,
    task_id: String,
    trigger_rule: String,
    total: i32,
    up_success: i32,
    up_failed: i32,
    up_upstream_failed: i32,
    up_skipped: i32,
}

/// Records that `tasks` ended in `state` on their downstream tasks' counters.
async fn bump_downstream(
    conn: &mut PgConnection,
    run_id: i64,
    tasks: &[String],
    state: TaskState,
) -> Result<()> {
    if !state.is_terminal() {
        return Ok(());
    }
    // One statement for the four counters: only the ended state's branch counts how
    // many of the row's upstream tasks are among `tasks` (CASE evaluates no other).
    sqlx::query!(
        "UPDATE setlist.task_instances
         SET up_success = up_success + CASE WHEN $3 = 'success'
                 THEN (SELECT count(*) FROM unnest(upstream) u WHERE u = ANY ($2))::int ELSE 0 END,
             up_failed = up_failed + CASE WHEN $3 = 'failed'
                 THEN (SELECT count(*) FROM unnest(upstream) u WHERE u = ANY ($2))::int ELSE 0 END,
             up_upstream_failed = up_upstream_failed + CASE WHEN $3 = 'upstream_failed'
                 THEN (SELECT count(*) FROM unnest(upstream) u WHERE u = ANY ($2))::int ELSE 0 END,
             up_skipped = up_skipped + CASE WHEN $3 = 'skipped'
                 THEN (SELECT count(*) FROM unnest(upstream) u WHERE u = ANY ($2))::int ELSE 0 END
         WHERE run_id = $1 AND upstream && $2",
        run_id,
        tasks,
        state as TaskState,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that `task_id` ended in `state` and decides its downstream tasks. A task
/// that chose which tasks below it run has the others skipped first (a branch's
/// other direct downstream tasks, or everything below a short circuit); the trigger
/// rules decide the rest. Returns whether any task was queued. The caller holds the
/// run's lock.
pub(super) async fn task_ended(
    conn: &mut PgConnection,
    run_id: i64,
    task_id: &str,
    state: TaskState,
    downstream: &Downstream,
) -> Result<bool> {
    let mut changed = vec![task_id.to_string()];
    bump_downstream(conn, run_id, &changed, state).await?;
    let skipped: Vec<String> = match downstream {
        Downstream::All => Vec::new(),
        Downstream::Only(keep) => {
            sqlx::query_scalar!(
                "UPDATE setlist.task_instances SET state = 'skipped', ended_at = clock_timestamp()
                 WHERE run_id = $1 AND $2 = ANY (upstream) AND state = 'scheduled'
                   AND NOT task_id = ANY ($3)
                 RETURNING task_id",
                run_id,
                task_id,
                keep,
            )
            .fetch_all(&mut *conn)
            .await?
        }
        Downstream::None => {
            sqlx::query_scalar!(
                r#"WITH RECURSIVE below (task_id) AS (
                       SELECT task_id FROM setlist.task_instances
                       WHERE run_id = $1 AND $2 = ANY (upstream)
                       UNION
                       SELECT t.task_id FROM setlist.task_instances t
                       JOIN below b ON b.task_id = ANY (t.upstream)
                       WHERE t.run_id = $1
                   )
                   UPDATE setlist.task_instances SET state = 'skipped', ended_at = clock_timestamp()
                   WHERE run_id = $1 AND task_id IN (SELECT task_id FROM below)
                     AND state = 'scheduled'
                   RETURNING task_id AS "task_id!""#,
                run_id,
                task_id,
            )
            .fetch_all(&mut *conn)
            .await?
        }
    };
    if !skipped.is_empty() {
        TaskState::Scheduled
            .check_move(TaskState::Skipped, Actor::Engine)
            .map_err(Error::Conflict)?;
        bump_downstream(conn, run_id, &skipped, TaskState::Skipped).await?;
        changed.extend(skipped);
    }
    decide(conn, run_id, Some(changed)).await
}

/// Decides every waiting task of a run (at its start, after a clear).
pub async fn evaluate(conn: &mut PgConnection, run_id: i64) -> Result<bool> {
    decide(conn, run_id, None).await
}

/// Decides the waiting tasks of a run (all of them, or the downstream of `changed`)
/// by their trigger rules and upstream counters, following upstream_failed and
/// skipped tasks down the graph. Returns whether any task was queued.
async fn decide(
    conn: &mut PgConnection,
    run_id: i64,
    changed: Option<Vec<String>>,
) -> Result<bool> {
    let mut changed = changed;
    let mut queued_any = false;
    loop {
        let waiting: Vec<Waiting> = sqlx::query_as!(
            Waiting,
            r#"SELECT id, task_id, trigger_rule, cardinality(upstream) AS "total!",
                    up_success, up_failed, up_upstream_failed, up_skipped
             FROM setlist.task_instances
             WHERE run_id = $1 AND state = 'scheduled' AND map_parent IS NULL
               AND ($2::text[] IS NULL OR upstream && $2::text[])"#,
            run_id,
            changed.as_deref() as Option<&[String]>,
        )
        .fetch_all(&mut *conn)
        .await?;
        let (mut ready, mut upstream_failed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        for w in waiting {
            let rule = TriggerRule::parse(&w.trigger_rule).unwrap_or_default();
            let counts = UpstreamCounts {
                total: w.total.into(),
                success: w.up_success.into(),
                failed: w.up_failed.into(),
                upstream_failed: w.up_upstream_failed.into(),
                skipped: w.up_skipped.into(),
            };
            match rule.decide(counts) {
                Decision::Wait => {}
                Decision::Ready => ready.push(w.id),
                Decision::UpstreamFailed => upstream_failed.push((w.id, w.task_id)),
                Decision::Skip => skipped.push((w.id, w.task_id)),
            }
        }
        if !ready.is_empty() {
            sqlx::query!(
                "UPDATE setlist.task_instances SET state = 'queued', queued_at = clock_timestamp()
                 WHERE id = ANY ($1)",
                &ready,
            )
            .execute(&mut *conn)
            .await?;
            queued_any = true;
        }
        let mut next = Vec::new();
        for (state, reason, tasks) in [
            (
                TaskState::UpstreamFailed,
                Some(FailureReason::UpstreamFailed),
                upstream_failed,
            ),
            (TaskState::Skipped, None, skipped),
        ] {
            if tasks.is_empty() {
                continue;
            }
            let ids: Vec<i64> = tasks.iter().map(|t| t.0).collect();
            let names: Vec<String> = tasks.into_iter().map(|t| t.1).collect();
            sqlx::query!(
                "UPDATE setlist.task_instances
                 SET state = $2, failure_reason = $3, ended_at = clock_timestamp()
                 WHERE id = ANY ($1) AND state = 'scheduled'",
                &ids,
                state as TaskState,
                reason as Option<FailureReason>,
            )
            .execute(&mut *conn)
            .await?;
            bump_downstream(conn, run_id, &names, state).await?;
            next.extend(names);
        }
        if next.is_empty() {
            return Ok(queued_any);
        }
        changed = Some(next);
    }
}

/// Records that `task_id` ended in `state` (an instance of the mapped task
/// `map_parent` as an instance: its mapped task counts it), wakes the workers if a task
/// was queued, and ends the run if it may have. The caller holds the run's lock.
async fn ended(
    conn: &mut PgConnection,
    run_id: i64,
    task_id: &str,
    map_parent: Option<&str>,
    state: TaskState,
    downstream: &Downstream,
) -> Result<()> {
    let (queued, may_end) = match map_parent {
        Some(parent) => super::mapped::instance_ended(conn, run_id, parent).await?,
        None => (
            task_ended(conn, run_id, task_id, state, downstream).await?,
            true,
        ),
    };
    if queued {
        notify(conn, WORK_CHANNEL, "").await?;
    }
    // While its mapped task waits for other instances, the run cannot end: the check
    // (which reads the run's unfinished tasks) is left for the last one.
    if may_end {
        finalize_run(conn, run_id).await?;
    }
    Ok(())
}

/// Ends the run if all its tasks are done, with its alerts; returns its final state.
pub async fn finalize_run(conn: &mut PgConnection, run_id: i64) -> Result<Option<RunState>> {
    let Some(ended) = sqlx::query_file!("src/queries/finalize_run.sql", run_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let event = match ended.state {
        RunState::Success => Event::Success,
        _ => Event::Failure,
    };
    super::alerts::enqueue(conn, run_id, None, event, ended.alerts.as_ref()).await?;
    notify(conn, SCHEDULER_CHANNEL, &run_id.to_string()).await?;
    Ok(Some(ended.state))
}

pub(super) async fn lock_run(conn: &mut PgConnection, run_id: i64) -> Result<RunState> {
    sqlx::query_scalar!(
        r#"SELECT state AS "state: RunState" FROM setlist.dag_runs WHERE id = $1 FOR UPDATE"#,
        run_id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::NotFound(format!("no run with id {run_id}")))
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It returned this output, and chose which tasks below it run.
    Success {
        /// What it returned, for its downstream tasks.
        output: Value,
        /// Which of its downstream tasks run.
        downstream: Downstream,
    },
    /// A wait's condition is unmet: the task waits, holding no worker, until a worker
    /// claims its next poke at `at`.
    Wait {
        /// When the next poke is due.
        at: DateTime<Utc>,
    },
    /// It failed; retried while tries remain if the reason is retryable.
    Failed {
        /// How it failed.
        reason: FailureReason,
        /// What the task or the engine said.
        message: String,
    },
}

impl Outcome {
    /// A success with `output` that lets every downstream task run.
    pub fn success(output: Value) -> Self {
        Outcome::Success {
            output,
            downstream: Downstream::All,
        }
    }

    /// A failure for `reason` saying `message`.
    pub fn failed(reason: FailureReason, message: impl Into<String>) -> Self {
        Outcome::Failed {
            reason,
            message: message.into(),
        }
    }
}

/// What [`finish_attempt`] did with the task instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The new state: success, failed, up_for_retry or waiting.
    State(TaskState),
    /// The attempt no longer owned the task instance (the reaper retried it
    /// elsewhere); its result was recorded on the attempt and otherwise ignored.
    Superseded,
    /// A mapped task became this many instances; it ends with the last of them.
    Mapped(usize),
}

#[derive(FromRow)]
struct Owned {
    task_id: String,
    state: TaskState,
    worker_id: Option<Uuid>,
    try_number: i32,
    max_tries: i32,
    retry_delay_ms: i64,
    retry_backoff: bool,
    max_retry_delay_ms: i64,
    cancel_requested: bool,
    map_parent: Option<String>,
    alerts: Option<Value>,
    holds_pool: bool,
}

/// Records the end of try `try_number` of a task instance by `worker_id`, moves the
/// task instance on, decides its downstream tasks and ends the run when it is done.
pub async fn finish_attempt(
    pool: &PgPool,
    run_id: i64,
    ti_id: i64,
    try_number: i32,
    worker_id: Uuid,
    outcome: Outcome,
) -> Result<Finished> {
    let mut tx = pool.begin().await?;
    lock_run(&mut tx, run_id).await?;
    let ti: Owned = sqlx::query_as!(
        Owned,
        r#"SELECT task_id, state AS "state: TaskState", worker_id, try_number, max_tries,
                retry_delay_ms, retry_backoff, max_retry_delay_ms, cancel_requested, map_parent, alerts,
                holds_pool
         FROM setlist.task_instances WHERE id = $1 FOR UPDATE"#,
        ti_id
    )
    .fetch_one(&mut *tx)
    .await?;
    // A wait that a person asked to cancel ends at its poke instead of waiting on.
    let outcome = match outcome {
        Outcome::Wait { .. } if ti.cancel_requested => {
            Outcome::failed(FailureReason::Cancelled, "cancelled by request")
        }
        other => other,
    };
    let (attempt_state, error, reason) = match &outcome {
        Outcome::Success { .. } => (AttemptState::Success, None, None),
        Outcome::Wait { .. } => (AttemptState::Waiting, None, None),
        Outcome::Failed { reason, message } => {
            (AttemptState::Failed, Some(message.as_str()), Some(*reason))
        }
    };
    sqlx::query!(
        "UPDATE setlist.attempts
         SET state = $3, error = $4, failure_reason = $5, ended_at = clock_timestamp()
         WHERE ti_id = $1 AND try_number = $2 AND state = 'running'",
        ti_id,
        try_number,
        attempt_state as AttemptState,
        error,
        reason as Option<FailureReason>,
    )
    .execute(&mut *tx)
    .await?;
    let owns = ti.state == TaskState::Running
        && ti.worker_id == Some(worker_id)
        && ti.try_number == try_number;
    if !owns {
        tx.commit().await?;
        return Ok(Finished::Superseded);
    }
    if ti.holds_pool {
        super::pools::release(&mut tx, ti_id).await?;
    }
    let mut downstream = Downstream::All;
    let (state, output, retry_in) = match outcome {
        Outcome::Success {
            output,
            downstream: chosen,
        } => {
            downstream = chosen;
            (TaskState::Success, Some(output), None)
        }
        Outcome::Wait { at } => {
            let secs = (at - Utc::now()).num_milliseconds().max(0) as f64 / 1000.0;
            (TaskState::Waiting, None, Some(secs))
        }
        Outcome::Failed { reason, .. }
            if reason.is_retryable() && !ti.cancel_requested && ti.try_number < ti.max_tries =>
        {
            let policy = RetryPolicy {
                retries: 0,
                delay: Duration::from_millis(ti.retry_delay_ms as u64),
                backoff: ti.retry_backoff,
                max_delay: Duration::from_millis(ti.max_retry_delay_ms as u64),
            };
            let delay = policy.delay_after(ti.try_number as u32);
            (TaskState::UpForRetry, None, Some(delay.as_secs_f64()))
        }
        Outcome::Failed { .. } => (TaskState::Failed, None, None),
    };
    ti.state
        .check_move(state, Actor::Engine)
        .map_err(Error::Conflict)?;
    // The task instance carries the reason of a failure that ended it.
    let reason = if state == TaskState::Failed {
        reason
    } else {
        None
    };
    sqlx::query!(
        "UPDATE setlist.task_instances
         SET state = $2, output = $3, worker_id = NULL, cancel_requested = false,
             failure_reason = $5,
             ended_at = CASE WHEN $2::setlist.task_state IN ('up_for_retry', 'waiting') THEN NULL
                             ELSE clock_timestamp() END,
             retry_at = clock_timestamp() + make_interval(secs => $4)
         WHERE id = $1",
        ti_id,
        state as TaskState,
        output,
        retry_in,
        reason as Option<FailureReason>,
    )
    .execute(&mut *tx)
    .await?;
    let event = match state {
        TaskState::Failed => Some(Event::Failure),
        TaskState::Success => Some(Event::Success),
        TaskState::UpForRetry => Some(Event::Retry),
        _ => None,
    };
    if let Some(event) = event {
        super::alerts::enqueue(
            &mut tx,
            run_id,
            Some((&ti.task_id, ti.try_number)),
            event,
            ti.alerts.as_ref(),
        )
        .await?;
    }
    if matches!(state, TaskState::UpForRetry | TaskState::Waiting) {
        // Workers recompute when to wake for the retry or the poke.
        notify(&mut tx, WORK_CHANNEL, "").await?;
    } else {
        ended(
            &mut tx,
            run_id,
            &ti.task_id,
            ti.map_parent.as_deref(),
            state,
            &downstream,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Finished::State(state))
}

/// After a person changed task states (clear, mark): recounts every upstream
/// counter and, unless the run has not started, makes it running again, decides its
/// waiting tasks and ends it if nothing is left to do (a cleared task whose upstream
/// failed is upstream_failed at once). The caller holds the run's lock.
async fn reopen(conn: &mut PgConnection, run_id: i64, run_state: RunState) -> Result<()> {
    sqlx::query_file!("src/queries/recount_upstream.sql", run_id)
        .execute(&mut *conn)
        .await?;
    if run_state != RunState::Queued {
        // A run that ran again is no longer cancelled, and its dagrun_timeout counts
        // from now.
        sqlx::query!(
            "UPDATE setlist.dag_runs
             SET started_at = CASE WHEN state IN ('success', 'failed', 'cancelled')
                                   THEN clock_timestamp() ELSE started_at END,
                 state = 'running', ended_at = NULL, cancel_requested = false, end_reason = NULL
             WHERE id = $1",
            run_id
        )
        .execute(&mut *conn)
        .await?;
        if evaluate(conn, run_id).await? {
            notify(conn, WORK_CHANNEL, "").await?;
        }
        finalize_run(conn, run_id).await?;
    }
    Ok(())
}

/// Clears task instances of a run so they run again: the named tasks, and with
/// `downstream` everything below them. The run becomes running again.
pub async fn clear(
    pool: &PgPool,
    run_id: i64,
    task_ids: &[String],
    downstream: bool,
) -> Result<Vec<String>> {
    let mut tx = pool.begin().await?;
    let run_state = lock_run(&mut tx, run_id).await?;
    let rows: Vec<(String, Vec<String>, TaskState)> = sqlx::query!(
        r#"SELECT task_id, upstream, state AS "state: TaskState"
           FROM setlist.task_instances WHERE run_id = $1
           FOR UPDATE"#,
        run_id
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.task_id, r.upstream, r.state))
    .collect();
    let states: HashMap<&str, TaskState> = rows.iter().map(|(t, _, s)| (t.as_str(), *s)).collect();
    let mut selected: BTreeSet<String> = BTreeSet::new();
    for id in task_ids {
        if !states.contains_key(id.as_str()) {
            return Err(Error::NotFound(format!("run {run_id} has no task `{id}`")));
        }
        selected.insert(id.clone());
    }
    if downstream {
        loop {
            let before = selected.len();
            for (task, upstream, _) in &rows {
                if upstream.iter().any(|u| selected.contains(u)) {
                    selected.insert(task.clone());
                }
            }
            if selected.len() == before {
                break;
            }
        }
    }
    for task in &selected {
        refuse_instance(run_id, task)?;
        refuse_move(run_id, task, states[task.as_str()], TaskState::Scheduled)?;
    }
    let selected: Vec<String> = selected.into_iter().collect();
    // A mapped task maps again when it runs again.
    sqlx::query!(
        "DELETE FROM setlist.task_instances WHERE run_id = $1 AND map_parent = ANY ($2)",
        run_id,
        &selected,
    )
    .execute(&mut *tx)
    .await?;
    end_waiting_attempts(&mut tx, run_id, &selected, "cleared while waiting").await?;
    sqlx::query!(
        "UPDATE setlist.task_instances
         SET state = 'scheduled', max_tries = try_number + retries + 1, retry_at = NULL,
             queued_at = NULL, started_at = NULL, ended_at = NULL, output = NULL,
             worker_id = NULL, cancel_requested = false, failure_reason = NULL, map_pending = NULL
         WHERE run_id = $1 AND task_id = ANY ($2)",
        run_id,
        &selected,
    )
    .execute(&mut *tx)
    .await?;
    reopen(&mut tx, run_id, run_state).await?;
    tx.commit().await?;
    Ok(selected)
}

/// Ends the open attempts of waits that a person clears or marks, so no attempt is
/// left waiting for a poke that will not come.
async fn end_waiting_attempts(
    conn: &mut PgConnection,
    run_id: i64,
    task_ids: &[String],
    why: &str,
) -> Result<()> {
    sqlx::query!(
        "UPDATE setlist.attempts a
         SET state = 'failed', failure_reason = 'cancelled', error = $3, ended_at = clock_timestamp()
         FROM setlist.task_instances t
         WHERE a.ti_id = t.id AND t.run_id = $1 AND t.task_id = ANY ($2) AND a.state = 'waiting'",
        run_id,
        task_ids,
        why,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Refuses to clear or mark one instance of a mapped task: the mapped task is what
/// runs again or is marked.
fn refuse_instance(run_id: i64, task: &str) -> Result<()> {
    if let Some((parent, _)) = crate::mapping::split_instance(task) {
        return Err(Error::Conflict(format!(
            "task `{task}` of run {run_id} is one instance of the mapped task `{parent}`: clear or mark `{parent}`"
        )));
    }
    Ok(())
}

/// Refuses a person's move of `task` from `from` to `to` that the transition table
/// does not allow, saying what to do instead.
fn refuse_move(run_id: i64, task: &str, from: TaskState, to: TaskState) -> Result<()> {
    if from == TaskState::Running {
        return Err(Error::Conflict(format!(
            "task `{task}` of run {run_id} is running; cancel it first"
        )));
    }
    from.check_move(to, Actor::Person)
        .map_err(|e| Error::Conflict(format!("task `{task}` of run {run_id}: {e}")))
}

/// Sets a task instance's state by hand (a person marking it success or failed, as
/// in Airflow), then decides the tasks waiting below it and ends the run if nothing
/// is left to do; a run already ended is judged again. A running task must be
/// cancelled first, so no worker's result is overwritten.
pub async fn mark(pool: &PgPool, run_id: i64, task_id: &str, state: TaskState) -> Result<()> {
    if !matches!(state, TaskState::Success | TaskState::Failed) {
        return Err(Error::Invalid(format!(
            "a task can be marked success or failed, not `{state}`"
        )));
    }
    let mut tx = pool.begin().await?;
    let run_state = lock_run(&mut tx, run_id).await?;
    let current: Option<TaskState> = sqlx::query_scalar!(
        r#"SELECT state AS "state: TaskState" FROM setlist.task_instances
           WHERE run_id = $1 AND task_id = $2 FOR UPDATE"#,
        run_id,
        task_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let current =
        current.ok_or_else(|| Error::NotFound(format!("run {run_id} has no task `{task_id}`")))?;
    refuse_instance(run_id, task_id)?;
    refuse_move(run_id, task_id, current, state)?;
    end_waiting_attempts(
        &mut tx,
        run_id,
        &[task_id.to_string()],
        "marked while waiting",
    )
    .await?;
    sqlx::query!(
        "UPDATE setlist.task_instances
         SET state = $3, retry_at = NULL, worker_id = NULL, cancel_requested = false,
             failure_reason = NULL, ended_at = clock_timestamp()
         WHERE run_id = $1 AND task_id = $2",
        run_id,
        task_id,
        state as TaskState,
    )
    .execute(&mut *tx)
    .await?;
    reopen(&mut tx, run_id, run_state).await?;
    tx.commit().await?;
    Ok(())
}

/// Asks the worker running a task to stop it: the attempt fails and is not retried. A
/// waiting task, which no worker holds, fails at once.
pub async fn request_cancel(pool: &PgPool, run_id: i64, task_id: &str) -> Result<i64> {
    let mut tx = pool.begin().await?;
    lock_run(&mut tx, run_id).await?;
    let row: Option<(i64, TaskState)> = sqlx::query!(
        r#"SELECT id, state AS "state: TaskState" FROM setlist.task_instances
               WHERE run_id = $1 AND task_id = $2 FOR UPDATE"#,
        run_id,
        task_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| (r.id, r.state));
    let (ti_id, state) =
        row.ok_or_else(|| Error::NotFound(format!("run {run_id} has no task `{task_id}`")))?;
    if state == TaskState::Waiting {
        TaskState::Waiting
            .check_move(TaskState::Failed, Actor::Person)
            .map_err(Error::Conflict)?;
        end_waiting_attempts(
            &mut tx,
            run_id,
            &[task_id.to_string()],
            "cancelled while waiting",
        )
        .await?;
        sqlx::query!(
            "UPDATE setlist.task_instances
             SET state = 'failed', failure_reason = 'cancelled', retry_at = NULL,
                 ended_at = clock_timestamp()
             WHERE id = $1",
            ti_id
        )
        .execute(&mut *tx)
        .await?;
        let parent = crate::mapping::split_instance(task_id).map(|(p, _)| p);
        ended(
            &mut tx,
            run_id,
            task_id,
            parent,
            TaskState::Failed,
            &Downstream::All,
        )
        .await?;
        tx.commit().await?;
        return Ok(ti_id);
    }
    if state != TaskState::Running {
        return Err(Error::Conflict(format!(
            "task `{task_id}` of run {run_id} is {state}, not running"
        )));
    }
    sqlx::query!(
        "UPDATE setlist.task_instances SET cancel_requested = true WHERE id = $1",
        ti_id
    )
    .execute(&mut *tx)
    .await?;
    notify(&mut tx, CANCEL_CHANNEL, &ti_id.to_string()).await?;
    tx.commit().await?;
    Ok(ti_id)
}

/// Ends every running run whose tasks are all done: a safety net for a process that
/// died between a task's end and its run's.
pub async fn finalize_finished_runs(pool: &PgPool) -> Result<usize> {
    let ids: Vec<i64> = sqlx::query_scalar!(
        "SELECT r.id FROM setlist.dag_runs r WHERE r.state = 'running'
         AND NOT EXISTS (SELECT 1 FROM setlist.task_instances t WHERE t.run_id = r.id
                         AND t.state = ANY ($1))",
        TaskState::unfinished() as Vec<TaskState>,
    )
    .fetch_all(pool)
    .await?;
    let mut ended = 0;
    for id in ids {
        let mut tx = pool.begin().await?;
        lock_run(&mut tx, id).await?;
        if finalize_run(&mut tx, id).await?.is_some() {
            ended += 1;
        }
        tx.commit().await?;
    }
    Ok(ended)
}

/// The earliest time a retry or a wait's poke becomes due, for workers to sleep until.
pub async fn next_retry_at(pool: &PgPool) -> Result<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar!(
        "SELECT min(retry_at) FROM setlist.task_instances WHERE state IN ('up_for_retry', 'waiting')"
    )
    .fetch_one(pool)
    .await?)
}
