//! Worker registration, heartbeats and the reaper.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::transitions::{Outcome, finish_attempt};
use crate::error::Result;
use crate::state::{FailureReason, WorkerState};

/// Announces a worker, the queues it serves and the kinds it has.
pub async fn register(
    pool: &PgPool,
    id: Uuid,
    concurrency: usize,
    queues: &[String],
    kinds: &[String],
) -> Result<()> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    sqlx::query!(
        "INSERT INTO setlist.workers (id, hostname, pid, concurrency, state, queues, kinds)
         VALUES ($1, $2, $3, $4, 'active', $5, $6)",
        id,
        hostname,
        std::process::id() as i32,
        concurrency as i32,
        queues,
        kinds,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The queues and kinds of each active worker, for telling a task no worker can run.
pub async fn serving(pool: &PgPool) -> Result<Vec<(Vec<String>, Vec<String>)>> {
    Ok(sqlx::query!(
        "SELECT queues, coalesce(kinds, '{}') AS \"kinds!\" FROM setlist.workers WHERE state = 'active'"
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.queues, r.kinds))
    .collect())
}

/// Records that the worker is alive. Returns false if the reaper had given it up,
/// in which case its running attempts were already retried elsewhere.
pub async fn heartbeat(pool: &PgPool, id: Uuid) -> Result<bool> {
    let previous: Option<WorkerState> = sqlx::query_scalar!(
        r#"UPDATE setlist.workers w SET last_heartbeat = clock_timestamp(), state = 'active'
           FROM (SELECT state FROM setlist.workers WHERE id = $1 FOR UPDATE) old
           WHERE w.id = $1 RETURNING old.state AS "state: WorkerState""#,
        id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(previous == Some(WorkerState::Active))
}

/// Marks a worker as stopped on a clean shutdown.
pub async fn deregister(pool: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query!(
        "UPDATE setlist.workers SET state = 'stopped' WHERE id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives up on workers silent for longer than `timeout` and fails their running
/// attempts, which retries them where tries remain. Returns the attempts reaped.
pub async fn reap_lost(pool: &PgPool, timeout: Duration) -> Result<usize> {
    let lost: Vec<Uuid> = sqlx::query_scalar!(
        "UPDATE setlist.workers SET state = 'lost'
         WHERE state = 'active' AND last_heartbeat < clock_timestamp() - make_interval(secs => $1)
         RETURNING id",
        timeout.as_secs_f64(),
    )
    .fetch_all(pool)
    .await?;
    // Also sweep running attempts of workers that are already lost or stopped (a
    // previous reaper that died half way, a worker that exited uncleanly).
    let orphans = sqlx::query!(
        r#"SELECT t.id, t.run_id, t.try_number, w.id AS "worker!" FROM setlist.task_instances t
           JOIN setlist.workers w ON w.id = t.worker_id
           WHERE t.state = 'running' AND w.state IN ('lost', 'stopped')"#,
    )
    .fetch_all(pool)
    .await?;
    for id in &lost {
        tracing::warn!(worker = %id, timeout_s = timeout.as_secs_f64(), "Worker stopped heartbeating; retrying its work.");
    }
    let mut reaped = 0;
    for orphan in orphans {
        let (ti_id, run_id, try_number, worker) =
            (orphan.id, orphan.run_id, orphan.try_number, orphan.worker);
        let reason = format!(
            "worker {worker} was lost (no heartbeat for {}s)",
            timeout.as_secs_f64()
        );
        finish_attempt(
            pool,
            run_id,
            ti_id,
            try_number,
            worker,
            Outcome::failed(FailureReason::WorkerLost, reason),
        )
        .await?;
        reaped += 1;
    }
    Ok(reaped)
}
