//! Datasets: named data that producers announce changes of, so DAGs can run when
//! their input changes instead of (or besides) on a clock. A DAG lists the datasets
//! it is `triggered_by`; each tick, a DAG with unseen events gets one run, unless one
//! of its triggered runs is still queued (it will see the new data anyway).

use chrono::{SubsecRound, Utc};
use sqlx::{PgConnection, PgPool};

use super::SCHEDULER_CHANNEL;
use super::notify;
use super::runs::{self, RunType};
use crate::dag::Dag;
use crate::error::Result;
use crate::schedule::Interval;

/// Records that `dataset` changed and wakes the schedulers.
pub async fn publish(conn: &mut PgConnection, dataset: &str) -> Result<()> {
    sqlx::query!(
        "INSERT INTO setlist.dataset_events (dataset) VALUES ($1)",
        dataset
    )
    .execute(&mut *conn)
    .await?;
    notify(conn, SCHEDULER_CHANNEL, "dataset").await
}

/// Creates a triggered run of `dag` if a dataset it watches changed since its last
/// triggered run and none of its triggered runs waits in the queue (a waiting one
/// absorbs the change). Returns the new run.
pub async fn trigger_if_changed(pool: &PgPool, dag: &Dag) -> Result<Option<i64>> {
    if dag.triggered_by.is_empty() {
        return Ok(None);
    }
    let mut tx = pool.begin().await?;
    super::dags::upsert(&mut *tx, dag).await?;
    let seen: i64 = sqlx::query_scalar!(
        "SELECT last_dataset_event FROM setlist.dags WHERE dag_id = $1 FOR UPDATE",
        dag.id
    )
    .fetch_one(&mut *tx)
    .await?;
    let latest: Option<i64> = sqlx::query_scalar!(
        "SELECT max(id) FROM setlist.dataset_events WHERE dataset = ANY ($1)",
        &dag.triggered_by
    )
    .fetch_one(&mut *tx)
    .await?;
    let Some(latest) = latest.filter(|l| *l > seen) else {
        return Ok(None);
    };
    let waiting: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM setlist.dag_runs WHERE dag_id = $1 AND run_type = 'triggered' AND state = 'queued') AS "waiting!""#,
        dag.id
    )
    .fetch_one(&mut *tx)
    .await?;
    // A queued triggered run has not started yet, so it will see this data too.
    let run = if waiting {
        None
    } else {
        let now = Utc::now().trunc_subsecs(6);
        let interval = Interval {
            start: now,
            end: now,
        };
        runs::create(
            &mut tx,
            dag,
            now,
            interval,
            RunType::Triggered,
            &serde_json::json!({}),
        )
        .await?
    };
    sqlx::query!(
        "UPDATE setlist.dags SET last_dataset_event = $2 WHERE dag_id = $1",
        dag.id,
        latest
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(run)
}
