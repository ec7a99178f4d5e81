//! A mapped task in the store: its expansion into one task instance per element, and
//! the end of each instance, which queues the next one (under `max_active_mapped`) and,
//! with the last, ends the mapped task with its instances' outputs in order. Each runs
//! in the transaction that holds the run's lock, like every other move of a run's tasks.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::alerts::Event;
use super::transitions::{Finished, finalize_run, lock_run, task_ended};
use super::{WORK_CHANNEL, notify};
use crate::error::{Error, Result};
use crate::state::{Actor, FailureReason, TaskState};
use crate::task::Downstream;

/// An expansion into this many instances or more refreshes the planner's statistics.
const REFRESH_STATISTICS_AT: usize = 1000;

/// Turns the claimed mapped task `ti_id` into one instance per element: the first
/// `max_active_mapped` (or all) queued, the rest scheduled to follow. The mapped task
/// stays running, without a worker, until its last instance ends. An empty list skips
/// it. Returns how the mapped task stands.
pub async fn expand(
    pool: &PgPool,
    run_id: i64,
    ti_id: i64,
    try_number: i32,
    worker_id: Uuid,
    elements: Vec<Value>,
) -> Result<Finished> {
    let mut tx = pool.begin().await?;
    lock_run(&mut tx, run_id).await?;
    let parent = sqlx::query!(
        r#"SELECT task_id, state AS "state: TaskState", worker_id, try_number, cancel_requested
           FROM setlist.task_instances WHERE id = $1 FOR UPDATE"#,
        ti_id
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE setlist.attempts SET state = 'success', ended_at = clock_timestamp()
         WHERE ti_id = $1 AND try_number = $2 AND state = 'running'",
        ti_id,
        try_number,
    )
    .execute(&mut *tx)
    .await?;
    if parent.state != TaskState::Running
        || parent.worker_id != Some(worker_id)
        || parent.try_number != try_number
    {
        tx.commit().await?;
        return Ok(Finished::Superseded);
    }
    super::pools::release(&mut tx, ti_id).await?;
    // Its run was cancelled while the list was read: no instance starts.
    if parent.cancel_requested {
        sqlx::query!(
            "UPDATE setlist.attempts SET state = 'failed', failure_reason = 'cancelled',
                 error = 'cancelled before it mapped'
             WHERE ti_id = $1 AND try_number = $2",
            ti_id,
            try_number,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE setlist.task_instances
             SET state = 'failed', failure_reason = 'cancelled', worker_id = NULL,
                 cancel_requested = false, ended_at = clock_timestamp()
             WHERE id = $1",
            ti_id
        )
        .execute(&mut *tx)
        .await?;
        task_ended(
            &mut tx,
            run_id,
            &parent.task_id,
            TaskState::Failed,
            &Downstream::All,
        )
        .await?;
        finalize_run(&mut tx, run_id).await?;
        tx.commit().await?;
        return Ok(Finished::State(TaskState::Failed));
    }
    if elements.is_empty() {
        TaskState::Running
            .check_move(TaskState::Skipped, Actor::Engine)
            .map_err(Error::Conflict)?;
        sqlx::query!(
            "UPDATE setlist.task_instances
             SET state = 'skipped', worker_id = NULL, output = '[]', ended_at = clock_timestamp()
             WHERE id = $1",
            ti_id
        )
        .execute(&mut *tx)
        .await?;
        if task_ended(
            &mut tx,
            run_id,
            &parent.task_id,
            TaskState::Skipped,
            &Downstream::All,
        )
        .await?
        {
            notify(&mut tx, WORK_CHANNEL, "").await?;
        }
        finalize_run(&mut tx, run_id).await?;
        tx.commit().await?;
        return Ok(Finished::State(TaskState::Skipped));
    }
    let ids: Vec<String> = (0..elements.len())
        .map(|i| crate::mapping::instance_id(&parent.task_id, i))
        .collect();
    sqlx::query!(
        "INSERT INTO setlist.task_instances
            (run_id, task_id, kind, params, upstream, is_leaf, trigger_rule, retries, retry_delay_ms,
             retry_backoff, max_retry_delay_ms, timeout_ms, state, max_tries, queued_at,
             map_parent, map_index, map_element, priority, pool, pool_slots, queue)
         SELECT p.run_id, e.task_id, p.kind, p.params, '{}', false, 'all_success', p.retries,
                p.retry_delay_ms, p.retry_backoff, p.max_retry_delay_ms, p.timeout_ms,
                CASE WHEN p.max_active_mapped IS NULL OR e.i <= p.max_active_mapped
                     THEN 'queued' ELSE 'scheduled' END::setlist.task_state,
                p.retries + 1,
                CASE WHEN p.max_active_mapped IS NULL OR e.i <= p.max_active_mapped
                     THEN clock_timestamp() END,
                p.task_id, e.i - 1, e.element, p.priority, p.pool, p.pool_slots, p.queue
         FROM setlist.task_instances p,
              UNNEST($2::text[], $3::jsonb[]) WITH ORDINALITY AS e (task_id, element, i)
         WHERE p.id = $1",
        ti_id,
        &ids,
        &elements,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE setlist.task_instances SET worker_id = NULL, map_pending = $2 WHERE id = $1",
        ti_id,
        elements.len() as i32,
    )
    .execute(&mut *tx)
    .await?;
    notify(&mut tx, WORK_CHANNEL, "").await?;
    tx.commit().await?;
    // Thousands of new ready rows at once: without fresh statistics the planner may
    // think few rows are ready and sort them all for every claim instead of reading
    // the ready index in order (10,000 instances took twice as long). Autovacuum would
    // catch up within a minute; the claims need it now.
    if elements.len() >= REFRESH_STATISTICS_AT {
        sqlx::query("ANALYZE setlist.task_instances")
            .execute(pool)
            .await?;
    }
    Ok(Finished::Mapped(elements.len()))
}

/// Records that an instance of mapped task `parent` ended: queues the next instance
/// waiting for room, and when it was the last, ends the mapped task (failed if any
/// instance failed, skipped if all were skipped, else success, with the instances'
/// outputs in order as its output) and decides the tasks below it. Returns whether any
/// task was queued, and whether the mapped task ended (else the run cannot end yet).
/// The caller holds the run's lock.
pub(super) async fn instance_ended(
    conn: &mut PgConnection,
    run_id: i64,
    parent: &str,
) -> Result<(bool, bool)> {
    let pending = sqlx::query!(
        "UPDATE setlist.task_instances SET map_pending = map_pending - 1
         WHERE run_id = $1 AND task_id = $2
         RETURNING map_pending, max_active_mapped",
        run_id,
        parent,
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut queued = false;
    if pending.max_active_mapped.is_some() {
        queued = sqlx::query!(
            "UPDATE setlist.task_instances SET state = 'queued', queued_at = clock_timestamp()
             WHERE id = (SELECT id FROM setlist.task_instances
                         WHERE run_id = $1 AND map_parent = $2 AND state = 'scheduled'
                         ORDER BY map_index LIMIT 1)",
            run_id,
            parent,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected()
            > 0;
    }
    if pending.map_pending != Some(0) {
        return Ok((queued, false));
    }
    let ended = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE state IN ('failed', 'upstream_failed')) AS "failed!",
                  count(*) FILTER (WHERE state = 'skipped') AS "skipped!",
                  count(*) AS "all!",
                  jsonb_agg(output ORDER BY map_index) AS "outputs!"
           FROM setlist.task_instances WHERE run_id = $1 AND map_parent = $2"#,
        run_id,
        parent,
    )
    .fetch_one(&mut *conn)
    .await?;
    let (state, reason) = if ended.failed > 0 {
        (TaskState::Failed, Some(FailureReason::Error))
    } else if ended.skipped == ended.all {
        (TaskState::Skipped, None)
    } else {
        (TaskState::Success, None)
    };
    TaskState::Running
        .check_move(state, Actor::Engine)
        .map_err(Error::Conflict)?;
    let alerts = sqlx::query_scalar!(
        "UPDATE setlist.task_instances
         SET state = $3, output = $4, failure_reason = $5, ended_at = clock_timestamp()
         WHERE run_id = $1 AND task_id = $2
         RETURNING alerts",
        run_id,
        parent,
        state as TaskState,
        ended.outputs,
        reason as Option<FailureReason>,
    )
    .fetch_one(&mut *conn)
    .await?;
    let event = match state {
        TaskState::Failed => Some(Event::Failure),
        TaskState::Success => Some(Event::Success),
        _ => None,
    };
    if let Some(event) = event {
        super::alerts::enqueue(conn, run_id, Some((parent, 0)), event, alerts.as_ref()).await?;
    }
    Ok((
        task_ended(conn, run_id, parent, state, &Downstream::All).await? || queued,
        true,
    ))
}
