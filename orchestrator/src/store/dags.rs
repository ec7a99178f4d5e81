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
/// that did not load. One statement, so one snapshot of both tables and one round trip.
/// A definition this version cannot read (written by another version of Setlist) is
/// reported as a problem of its file, never dropped silently.
pub async fn parsed(pool: &PgPool) -> Result<DagBag> {
    let row = sqlx::query!(
        r#"SELECT
             (SELECT coalesce(jsonb_agg(jsonb_build_array(dag_id, definition, file_path) ORDER BY dag_id), '[]')
              FROM setlist.dags WHERE is_active) AS "dags!",
             (SELECT coalesce(jsonb_agg(jsonb_build_array(file_path, line, col, message)
                                        ORDER BY file_path, line, col, message), '[]')
              FROM setlist.dag_import_errors) AS "errors!""#
    )
    .fetch_one(pool)
    .await?;
    let rows: Vec<(String, serde_json::Value, String)> =
        serde_json::from_value(row.dags).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut bag = DagBag {
        dags: Vec::with_capacity(rows.len()),
        errors: diagnostics(row.errors)?,
        unreadable: false,
    };
    for (dag_id, definition, file_path) in rows {
        match read(&dag_id, definition, &file_path) {
            Ok(dag) => bag.dags.push(dag),
            Err(problem) => bag.errors.push(problem),
        }
    }
    Ok(bag)
}

/// A stored definition as a [`Dag`], or the problem of its file that says why not.
fn read(
    dag_id: &str,
    definition: serde_json::Value,
    file_path: &str,
) -> std::result::Result<Dag, Diagnostic> {
    match serde_json::from_value::<Dag>(definition) {
        Ok(mut dag) => {
            dag.file = PathBuf::from(file_path);
            Ok(dag)
        }
        Err(e) => Err(Diagnostic {
            file: PathBuf::from(file_path),
            line: 1,
            column: 1,
            message: format!(
                "the stored definition of DAG `{dag_id}` cannot be read by this version ({e}); \
                 the scheduler stores it again at its next parse"
            ),
        }),
    }
}

/// The active DAGs' ids with the digest of their definitions, and the load problems:
/// what a reader that keeps parsed DAGs needs to know whether they are still current.
/// One statement, one snapshot.
pub async fn index(pool: &PgPool) -> Result<(Vec<(String, String)>, Vec<Diagnostic>)> {
    let row = sqlx::query!(
        r#"SELECT
             (SELECT coalesce(jsonb_agg(jsonb_build_array(dag_id, definition_hash) ORDER BY dag_id), '[]')
              FROM setlist.dags WHERE is_active) AS "dags!",
             (SELECT coalesce(jsonb_agg(jsonb_build_array(file_path, line, col, message)
                                        ORDER BY file_path, line, col, message), '[]')
              FROM setlist.dag_import_errors) AS "errors!""#
    )
    .fetch_one(pool)
    .await?;
    let dags: Vec<(String, String)> =
        serde_json::from_value(row.dags).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok((dags, diagnostics(row.errors)?))
}

fn diagnostics(errors: serde_json::Value) -> Result<Vec<Diagnostic>> {
    let errors: Vec<(String, i32, i32, String)> =
        serde_json::from_value(errors).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(errors
        .into_iter()
        .map(|(file, line, col, message)| Diagnostic {
            file: PathBuf::from(file),
            line: line.max(1) as usize,
            column: col.max(1) as usize,
            message,
        })
        .collect())
}

/// The active DAG named `id`, as the scheduler last parsed it (one query by id).
pub async fn active(pool: &PgPool, id: &str) -> Result<Option<Dag>> {
    let row = sqlx::query!(
        "SELECT definition, file_path FROM setlist.dags WHERE dag_id = $1 AND is_active",
        id
    )
    .fetch_optional(pool)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => read(id, r.definition, &r.file_path)
            .map(Some)
            .map_err(|d| Error::Invalid(d.message)),
    }
}

/// The active DAG named `id`, as the scheduler last parsed it; the error lists the DAGs
/// there are.
pub async fn get(pool: &PgPool, id: &str) -> Result<Dag> {
    if let Some(dag) = active(pool, id).await? {
        return Ok(dag);
    }
    let bag = parsed(pool).await?;
    let known: Vec<&str> = bag.dags.iter().map(|d| d.id.as_str()).collect();
    Err(Error::NotFound(format!(
        "no DAG `{id}` in the state store (loaded: {}); a scheduler, or `setlist dags sync`, records the DAG folder's",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )))
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
