//! The `dags` table: what loaded from the files, and whether each DAG is paused.

use std::collections::HashMap;

use sqlx::{PgExecutor, PgPool};

use crate::dag::{Dag, DagBag};
use crate::error::{Error, Result};

/// Records a DAG's current definition; leaves its paused flag alone.
pub async fn upsert(db: impl PgExecutor<'_>, dag: &Dag) -> Result<()> {
    let definition = serde_json::to_value(dag).expect("a Dag always serialises");
    sqlx::query!(
        "INSERT INTO setlist.dags (dag_id, definition_hash, definition, file_path)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (dag_id) DO UPDATE
         SET definition_hash = EXCLUDED.definition_hash, definition = EXCLUDED.definition,
             file_path = EXCLUDED.file_path, updated_at = clock_timestamp()
         WHERE setlist.dags.definition_hash IS DISTINCT FROM EXCLUDED.definition_hash
            OR setlist.dags.file_path IS DISTINCT FROM EXCLUDED.file_path",
        dag.id,
        dag.definition_hash(),
        definition,
        dag.file.display().to_string(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records every DAG of `bag`.
pub async fn sync(pool: &PgPool, bag: &DagBag) -> Result<()> {
    for dag in &bag.dags {
        upsert(pool, dag).await?;
    }
    Ok(())
}

/// Pauses or unpauses a DAG. A paused DAG gets no new scheduled runs and none of its
/// queued runs start.
pub async fn set_paused(pool: &PgPool, dag_id: &str, paused: bool) -> Result<()> {
    let updated = sqlx::query!(
        "UPDATE setlist.dags SET is_paused = $2 WHERE dag_id = $1",
        dag_id,
        paused
    )
    .execute(pool)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(Error::NotFound(format!(
            "no DAG `{dag_id}` in the state store (has a scheduler loaded its file?)"
        )));
    }
    Ok(())
}

/// `dag_id -> is_paused` for every DAG the store knows.
pub async fn paused(pool: &PgPool) -> Result<HashMap<String, bool>> {
    let rows = sqlx::query!("SELECT dag_id, is_paused FROM setlist.dags")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|r| (r.dag_id, r.is_paused)).collect())
}
