//! Cancelling a whole run: by a person (CLI, API, pages) or by its DAG's
//! `dagrun_timeout`. Under the run's lock, every task not running fails as cancelled
//! (a mapped task's waiting instances too), every running one is asked to stop and ends
//! within its grace period, nothing below them starts, and the run ends `cancelled`
//! with its reason once the last running attempt has ended.

use sqlx::PgPool;

use super::transitions::{finalize_run, lock_run};
use super::{CANCEL_CHANNEL, notify};
use crate::error::{Error, Result};
use crate::state::{Actor, RunState, TaskState};

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    /// Tasks that had not started (or were waiting), now failed as cancelled.
    pub stopped: Vec<String>,
    /// Running tasks asked to stop.
    pub stopping: Vec<String>,
    /// The run's state after the cancel: cancelled, or running until those stop.
    pub state: RunState,
}

/// Cancels run `run_id`, keeping `reason` as how it ended.
pub async fn cancel_run(pool: &PgPool, run_id: i64, reason: &str) -> Result<Cancelled> {
    let mut tx = pool.begin().await?;
    let state = lock_run(&mut tx, run_id).await?;
    if state.is_terminal() {
        return Err(Error::Conflict(format!("run {run_id} is {state} already")));
    }
    sqlx::query!(
        "UPDATE setlist.dag_runs SET cancel_requested = true, end_reason = $2,
             state = CASE WHEN state = 'queued' THEN 'running'::setlist.run_state ELSE state END,
             started_at = coalesce(started_at, clock_timestamp())
         WHERE id = $1",
        run_id,
        reason,
    )
    .execute(&mut *tx)
    .await?;
    for from in [
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::UpForRetry,
        TaskState::Waiting,
    ] {
        from.check_move(TaskState::Failed, Actor::Person)
            .map_err(Error::Conflict)?;
    }
    sqlx::query!(
        "UPDATE setlist.attempts a
         SET state = 'failed', failure_reason = 'cancelled', error = $2, ended_at = clock_timestamp()
         FROM setlist.task_instances t
         WHERE a.ti_id = t.id AND t.run_id = $1 AND a.state = 'waiting'",
        run_id,
        reason,
    )
    .execute(&mut *tx)
    .await?;
    let stopped: Vec<String> = sqlx::query_scalar!(
        "UPDATE setlist.task_instances
         SET state = 'failed', failure_reason = 'cancelled', retry_at = NULL,
             ended_at = clock_timestamp()
         WHERE run_id = $1 AND state IN ('scheduled', 'queued', 'up_for_retry', 'waiting')
         RETURNING task_id",
        run_id,
    )
    .fetch_all(&mut *tx)
    .await?;
    // A mapped task with no instance running any more ends now; one with running
    // instances ends with the last of them.
    sqlx::query!(
        "UPDATE setlist.task_instances p
         SET map_pending = (SELECT count(*) FROM setlist.task_instances i
                            WHERE i.run_id = p.run_id AND i.map_parent = p.task_id
                              AND i.state = 'running')
         WHERE p.run_id = $1 AND p.state = 'running' AND p.map_pending IS NOT NULL",
        run_id,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE setlist.task_instances
         SET state = 'failed', failure_reason = 'cancelled', ended_at = clock_timestamp()
         WHERE run_id = $1 AND state = 'running' AND map_pending = 0",
        run_id,
    )
    .execute(&mut *tx)
    .await?;
    let running: Vec<(i64, String)> = sqlx::query!(
        "UPDATE setlist.task_instances SET cancel_requested = true
         WHERE run_id = $1 AND state = 'running' AND worker_id IS NOT NULL
         RETURNING id, task_id",
        run_id,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.task_id))
    .collect();
    for (id, _) in &running {
        notify(&mut tx, CANCEL_CHANNEL, &id.to_string()).await?;
    }
    let state = finalize_run(&mut tx, run_id)
        .await?
        .unwrap_or(RunState::Running);
    tx.commit().await?;
    Ok(Cancelled {
        stopped,
        stopping: running.into_iter().map(|r| r.1).collect(),
        state,
    })
}

/// Cancels every running run that has been going longer than its DAG's
/// `dagrun_timeout`; returns how many.
pub async fn time_out_runs(pool: &PgPool) -> Result<usize> {
    let late = sqlx::query!(
        "SELECT id, timeout_ms AS \"timeout_ms!\" FROM setlist.dag_runs
         WHERE state = 'running' AND NOT cancel_requested AND timeout_ms IS NOT NULL
           AND started_at + make_interval(secs => timeout_ms / 1000.0) < clock_timestamp()"
    )
    .fetch_all(pool)
    .await?;
    let mut cancelled = 0;
    for run in late {
        let limit =
            humantime::format_duration(std::time::Duration::from_millis(run.timeout_ms as u64));
        match cancel_run(
            pool,
            run.id,
            &format!("dagrun_timeout: still going after {limit}"),
        )
        .await
        {
            Ok(_) => {
                tracing::warn!(run = run.id, %limit, "A run outlived its dagrun_timeout; cancelled it.");
                cancelled += 1;
            }
            // It ended meanwhile.
            Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(cancelled)
}
