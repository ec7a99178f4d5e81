//! The `dags` and `dag_import_errors` tables: what the scheduler's last parse of the
//! DAG folder found (the DAGs that loaded, the problems of the files that did not) and
//! whether each DAG is paused. Only the scheduler (and `setlist dags sync`) parses the
//! files; the pages, the API and the CLI read [`parsed`].

use std::collections::HashMap;
use std::path::PathBuf;

use sqlx::{PgExecutor, PgPool};

use crate::dag::{Dag, DagBag, Diagnostic};
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

/// Records `dag` if the store has no DAG of its id: for runs of a DAG that did not
/// come from the store (a test's, a one-off's). A stored definition is left alone, so
/// a caller holding an older copy never writes it back over the scheduler's newer one.
pub async fn ensure(db: impl PgExecutor<'_>, dag: &Dag) -> Result<()> {
    let definition = serde_json::to_value(dag).expect("a Dag always serialises");
    sqlx::query!(
        "INSERT INTO setlist.dags (dag_id, definition_hash, definition, file_path)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (dag_id) DO NOTHING",
        dag.id,
        dag.definition_hash(),
        definition,
        dag.file.display().to_string(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a parse of the whole folder in one transaction: every DAG of `bag` (active
/// from now on), every other DAG no longer active (its file was removed or no longer
/// loads; its runs stay), and `bag`'s problems instead of the last parse's. Parses
/// are recorded one at a time (a scheduler's and a `setlist dags sync`). A folder that
/// could not be read deactivates nothing: it says nothing of the DAGs.
pub async fn record_parse(pool: &PgPool, bag: &DagBag) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('setlist.record_parse')) AS locked")
        .fetch_one(&mut *tx)
        .await?;
    for dag in &bag.dags {
        upsert(&mut *tx, dag).await?;
    }
    let ids: Vec<String> = bag.dags.iter().map(|d| d.id.clone()).collect();
    if !bag.unreadable {
        sqlx::query!(
            "UPDATE setlist.dags SET is_active = (dag_id = ANY ($1))
             WHERE is_active IS DISTINCT FROM (dag_id = ANY ($1))",
            &ids
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!("DELETE FROM setlist.dag_import_errors")
        .execute(&mut *tx)
        .await?;
    let files: Vec<String> = bag
        .errors
        .iter()
        .map(|e| e.file.display().to_string())
        .collect();
    let lines: Vec<i32> = bag.errors.iter().map(|e| clamp(e.line)).collect();
    let cols: Vec<i32> = bag.errors.iter().map(|e| clamp(e.column)).collect();
    let messages: Vec<String> = bag.errors.iter().map(|e| e.message.clone()).collect();
    sqlx::query!(
        "INSERT INTO setlist.dag_import_errors (file_path, line, col, message)
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::int[], $4::text[])",
        &files,
        &lines,
        &cols,
        &messages,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

fn clamp(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What the last parse found: the active DAGs by id, and the problems of the files
/// that did not load. A definition this version cannot read (written by another
/// version of Setlist) is reported as a problem of its file, never dropped silently.
pub async fn parsed(pool: &PgPool) -> Result<DagBag> {
    // One snapshot for both tables, so a parse recorded in between is seen whole or not.
    let mut tx = pool.begin().await?;
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query!(
        "SELECT dag_id, definition, file_path FROM setlist.dags
         WHERE is_active ORDER BY dag_id"
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut bag = DagBag {
        dags: Vec::with_capacity(rows.len()),
        errors: import_errors(&mut *tx).await?,
        unreadable: false,
    };
    tx.commit().await?;
    for row in rows {
        match serde_json::from_value::<Dag>(row.definition) {
            Ok(mut dag) => {
                dag.file = PathBuf::from(row.file_path);
                bag.dags.push(dag);
            }
            Err(e) => bag.errors.push(Diagnostic {
                file: PathBuf::from(row.file_path),
                line: 1,
                column: 1,
                message: format!(
                    "the stored definition of DAG `{}` cannot be read by this version ({e}); \
                     the scheduler stores it again at its next parse",
                    row.dag_id
                ),
            }),
        }
    }
    Ok(bag)
}

/// The active DAG named `id`, as the scheduler last parsed it.
pub async fn get(pool: &PgPool, id: &str) -> Result<Dag> {
    let bag = parsed(pool).await?;
    bag.get(id).cloned().ok_or_else(|| {
        let known: Vec<&str> = bag.dags.iter().map(|d| d.id.as_str()).collect();
        Error::NotFound(format!(
            "no DAG `{id}` in the state store (loaded: {}); a scheduler, or `setlist dags sync`, records the DAG folder's",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ))
    })
}

/// The problems of the files that did not load at the last parse, in file and line order.
pub async fn import_errors(db: impl PgExecutor<'_>) -> Result<Vec<Diagnostic>> {
    let rows = sqlx::query!(
        "SELECT file_path, line, col, message FROM setlist.dag_import_errors
         ORDER BY file_path, line, col, message"
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Diagnostic {
            file: PathBuf::from(r.file_path),
            line: r.line.max(1) as usize,
            column: r.col.max(1) as usize,
            message: r.message,
        })
        .collect())
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
