//! Pools: named slot counts that limit how many tasks naming them run at once, across
//! every worker. The claim takes a task's slots (`queries/claim.sql`); [`release`]
//! gives them back in the transaction that records the attempt's end, however it ends
//! (success, failure, timeout, cancel, a wait's poke, a lost worker's reaping).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::error::Result;

/// Gives back the slots task instance `ti_id` holds, if it holds any, and wakes the
/// workers: a task that waited for them may start.
pub(super) async fn release(conn: &mut PgConnection, ti_id: i64) -> Result<()> {
    let freed = sqlx::query!(
        "WITH freed AS (
             UPDATE setlist.task_instances SET holds_pool = false
             WHERE id = $1 AND holds_pool
             RETURNING pool, pool_slots
         )
         UPDATE setlist.pools p SET used = p.used - f.pool_slots
         FROM freed f WHERE p.name = f.pool",
        ti_id
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if freed > 0 {
        super::notify(conn, super::WORK_CHANNEL, "").await?;
    }
    Ok(())
}

/// Makes the pools table say what the configuration says: each pool's slots (the
/// slots in use stay as they are); pools no longer configured are removed once
/// nothing holds them.
pub async fn sync(pool: &PgPool, pools: &BTreeMap<String, u32>) -> Result<()> {
    let names: Vec<String> = pools.keys().cloned().collect();
    let slots: Vec<i32> = pools.values().map(|s| *s as i32).collect();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO setlist.pools (name, slots) SELECT * FROM UNNEST($1::text[], $2::int[])
         ON CONFLICT (name) DO UPDATE SET slots = EXCLUDED.slots",
        &names,
        &slots,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM setlist.pools p WHERE NOT name = ANY ($1) AND used = 0
           AND NOT EXISTS (SELECT 1 FROM setlist.task_instances t WHERE t.pool = p.name
                           AND t.state IN ('scheduled', 'queued', 'up_for_retry', 'waiting'))",
        &names
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A pool as the API and the pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct PoolRow {
    /// Its name.
    pub name: String,
    /// Its slots.
    pub slots: i32,
    /// The slots running tasks hold.
    pub used: i32,
    /// Tasks ready to run that wait for its slots.
    pub waiting: i64,
}

/// Every pool, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<PoolRow>> {
    Ok(sqlx::query_as!(
        PoolRow,
        r#"SELECT p.name, p.slots, p.used,
                  (SELECT count(*) FROM setlist.task_instances t
                   WHERE t.pool = p.name AND t.state = 'queued') AS "waiting!"
           FROM setlist.pools p ORDER BY p.name"#
    )
    .fetch_all(pool)
    .await?)
}
